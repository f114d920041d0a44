// project — (X − m) W + b for a block of rows, GELU optional: embeddings into the reduced (PCA)
// space (b = 0), and every linear layer of the sentence encoder (m = 0, GELU after the first
// feed-forward layer).
//
// CPU twin: `backend::cpu::CpuBackend::project` (and, for the encoder, candle's matmul in
// `embed::bert`).
// Host mirror of `ProjDims`: `backend::gpu::kernels::ProjDims` — keep the two in sync.
//
// A tiled matmul: each workgroup computes a 64 × 64 output tile; the K dimension (the embedding
// width) is staged through workgroup memory 16 at a time, centring X on the way in, and each of
// the 16 × 16 invocations accumulates a 4 × 4 block in registers. Row tiles run along x and y
// (y only past the device's per-dimension workgroup limit), column tiles along z.
//
// Rows the host marks missing are zeroed before upload and set to NaN after read-back.

const TS: u32 = 64u;
const TK: u32 = 16u;

struct ProjDims {
    n: u32,    // rows in this upload
    dim: u32,  // input width
    d: u32,    // output columns
    gelu: u32, // apply GELU to the result
}

@group(0) @binding(0) var<uniform> dims: ProjDims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
// dim × d, row-major.
@group(0) @binding(3) var<storage, read> w: array<f32>;
// n × d, row-major.
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// d: added to every row.
@group(0) @binding(5) var<storage, read> bias: array<f32>;

var<workgroup> sx: array<f32, TS * TK>;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), for the exact GELU x Φ(x).
fn erf(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
    return sign(x) * y;
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
}
var<workgroup> sw: array<f32, TK * TS>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let r0 = (wid.x + wid.y * nwg.x) * TS;
    let c0 = wid.z * TS;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < dims.dim; k0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let idx = tid + l * 256u;
            // X tile: TS rows × TK columns.
            let r = idx / TK;
            let kx = idx % TK;
            var v = 0.0;
            if r0 + r < dims.n && k0 + kx < dims.dim {
                v = x[(r0 + r) * dims.dim + k0 + kx] - mean[k0 + kx];
            }
            sx[idx] = v;
            // W tile: TK rows × TS columns.
            let kw = idx / TS;
            let c = idx % TS;
            var u = 0.0;
            if k0 + kw < dims.dim && c0 + c < dims.d {
                u = w[(k0 + kw) * dims.d + c0 + c];
            }
            sw[idx] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            for (var i = 0u; i < 4u; i++) {
                let av = sx[(lid.y * 4u + i) * TK + kk];
                for (var jj = 0u; jj < 4u; jj++) {
                    acc[i * 4u + jj] += av * sw[kk * TS + lid.x * 4u + jj];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + lid.y * 4u + i;
        for (var jj = 0u; jj < 4u; jj++) {
            let col = c0 + lid.x * 4u + jj;
            if row < dims.n && col < dims.d {
                var v = acc[i * 4u + jj] + bias[col];
                if dims.gelu != 0u {
                    v = gelu(v);
                }
                out[row * dims.d + col] = v;
            }
        }
    }
}
