// gram — column sums and XᵀX of an embedding matrix about a shift s (the PCA covariance),
// as per-chunk partials that the host reduces in f64 and converts back to raw moments.
//
// CPU references: `foundation::reference::gram` and `foundation::reference::column_sums`.
// Host mirror of `GramDims`: `foundation::gpu::linear::GramDims` (the layout test compares every field offset).
//
// Entry point `gram`: one workgroup per (upper-triangle 64 × 64 tile pair, row chunk). Rows are
// staged through workgroup memory 16 at a time, as vec4 (four columns each), so each step of the
// inner loop is two vector loads for 16 FMAs; each of the 16 × 16 invocations accumulates a
// 4 × 4 block of Σ w (x − s)_a (x − s)_b in registers. With `accumulate` set the result is added
// to the slot (the host streams row blocks, or the segments of a resident matrix, through the
// same slots), else it overwrites it.
//
// Entry point `column_sums`: Σ w (x − s)_a per column and row chunk, accumulated the same way.
//
// Row weights w: 1, or with `weighted` set the row's multiplicity (a resident matrix of
// distinct sentence vectors stands for every row that repeats its text).
//
// Rows without a vector are never uploaded: shaders never see NaN.

const TS: u32 = 64u;
const TK: u32 = 16u;

struct GramDims {
    n: u32,          // rows in this upload
    dim: u32,        // columns
    chunk_rows: u32, // rows per workgroup along y
    n_tiles: u32,    // ceil(dim / TS)
    accumulate: u32, // 0: overwrite the slots, 1: add to them
    weighted: u32,   // 0: unit weights, 1: row weights from `weights`
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
// One weight per row when `weighted` is set (else a placeholder).
@group(0) @binding(5) var<storage, read> weights: array<f32>;

// sa[r * 16 + q]: columns 4q .. 4q + 3 of tile ta at staged row r, times the row weight.
var<workgroup> sa: array<vec4<f32>, TK * 16u>;
// sb[r * 16 + q]: the same for tile tb.
var<workgroup> sb: array<vec4<f32>, TK * 16u>;

fn centered(row: u32, col: u32, end: u32) -> f32 {
    if row < end && col < dims.dim {
        return x[row * dims.dim + col] - shift[col];
    }
    return 0.0;
}

fn weight(row: u32) -> f32 {
    if dims.weighted != 0u {
        return weights[row];
    }
    return 1.0;
}

fn centered4(row: u32, col: u32, end: u32) -> vec4<f32> {
    return vec4(centered(row, col, end), centered(row, col + 1u, end), centered(row, col + 2u, end), centered(row, col + 3u, end));
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

    // Loader roles: consecutive invocations fill consecutive vec4 slots.
    let q = tid % 16u;
    let rr = tid / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var r0 = start; r0 < end; r0 += TK) {
        var wr = 0.0;
        if r0 + rr < end {
            wr = weight(r0 + rr);
        }
        sa[rr * 16u + q] = centered4(r0 + rr, ta * TS + 4u * q, end) * wr;
        sb[rr * 16u + q] = centered4(r0 + rr, tb * TS + 4u * q, end);
        workgroupBarrier();
        for (var r = 0u; r < TK; r++) {
            let av = sa[r * 16u + lid.y];
            let bv = sb[r * 16u + lid.x];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
        workgroupBarrier();
    }

    let base = (chunk * nwg.x + pair) * TS * TS;
    for (var i = 0u; i < 4u; i++) {
        for (var jj = 0u; jj < 4u; jj++) {
            let at = base + (lid.y * 4u + i) * TS + lid.x * 4u + jj;
            if dims.accumulate != 0u {
                out[at] += acc[i][jj];
            } else {
                out[at] = acc[i][jj];
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
        s += weight(row) * (x[row * dims.dim + col] - shift[col]);
    }
    let at = chunk * dims.dim + col;
    if dims.accumulate != 0u {
        sums[at] += s;
    } else {
        sums[at] = s;
    }
}
