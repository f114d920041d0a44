// gram — column sums and XᵀX of an embedding matrix about a shift s (the PCA covariance),
// as per-chunk partials that the host reduces in f64 and converts back to raw moments.
//
// CPU twin: `backend::cpu::gram_block`.
// Host mirror of `GramDims`: `backend::gpu::kernels::GramDims` — keep the two in sync.
//
// Entry point `gram`: one workgroup per (upper-triangle 64 × 64 tile pair, row chunk). Rows are
// staged through workgroup memory 16 at a time; each of the 16 × 16 invocations accumulates a
// 4 × 4 block of Σ (x − s)_a (x − s)_b in registers. With `accumulate` set the result is added
// to the slot (the host streams row blocks through the same slots), else it overwrites it.
//
// Entry point `column_sums`: Σ (x − s)_a per column and row chunk, accumulated the same way.
//
// Rows the host marks missing are removed before upload: shaders never see NaN.

const TS: u32 = 64u;
const TK: u32 = 16u;

struct GramDims {
    n: u32,          // rows in this upload
    dim: u32,        // columns
    chunk_rows: u32, // rows per workgroup along y
    n_tiles: u32,    // ceil(dim / TS)
    accumulate: u32, // 0: overwrite the slots, 1: add to them
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: GramDims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
// (chunk × pairs) × TS × TS partial tiles.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// chunk × dim partial column sums.
@group(0) @binding(4) var<storage, read_write> sums: array<f32>;

var<workgroup> sa: array<f32, TK * TS>;
var<workgroup> sb: array<f32, TK * TS>;

fn centered(row: u32, col: u32, end: u32) -> f32 {
    if row < end && col < dims.dim {
        return x[row * dims.dim + col] - shift[col];
    }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn gram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let pair = wid.x;
    let chunk = wid.y;
    // pair → (ta, tb), ta ≤ tb, in row-major upper-triangle order.
    var ta = 0u;
    var rem = pair;
    while rem >= dims.n_tiles - ta {
        rem -= dims.n_tiles - ta;
        ta++;
    }
    let tb = ta + rem;
    let tid = lid.y * 16u + lid.x;
    let start = chunk * dims.chunk_rows;
    let end = min(start + dims.chunk_rows, dims.n);

    var acc: array<f32, 16>;
    for (var r0 = start; r0 < end; r0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let idx = tid + l * 256u;
            let r = idx / TS;
            let c = idx % TS;
            sa[idx] = centered(r0 + r, ta * TS + c, end);
            sb[idx] = centered(r0 + r, tb * TS + c, end);
        }
        workgroupBarrier();
        for (var r = 0u; r < TK; r++) {
            for (var i = 0u; i < 4u; i++) {
                let av = sa[r * TS + lid.y * 4u + i];
                for (var jj = 0u; jj < 4u; jj++) {
                    acc[i * 4u + jj] += av * sb[r * TS + lid.x * 4u + jj];
                }
            }
        }
        workgroupBarrier();
    }

    let base = (chunk * nwg.x + pair) * TS * TS;
    for (var i = 0u; i < 4u; i++) {
        for (var jj = 0u; jj < 4u; jj++) {
            let at = base + (lid.y * 4u + i) * TS + lid.x * 4u + jj;
            if dims.accumulate != 0u {
                out[at] += acc[i * 4u + jj];
            } else {
                out[at] = acc[i * 4u + jj];
            }
        }
    }
}

@compute @workgroup_size(256)
fn column_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = wid.x * 256u + lid;
    let chunk = wid.y;
    if col >= dims.dim {
        return;
    }
    let start = chunk * dims.chunk_rows;
    let end = min(start + dims.chunk_rows, dims.n);
    var s = 0.0;
    for (var row = start; row < end; row++) {
        s += x[row * dims.dim + col] - shift[col];
    }
    let at = chunk * dims.dim + col;
    if dims.accumulate != 0u {
        sums[at] += s;
    } else {
        sums[at] = s;
    }
}
