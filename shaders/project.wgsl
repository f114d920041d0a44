// project — (X − m) W + b for a block of rows, GELU optional: embeddings into the reduced (PCA)
// space (b = 0), and every linear layer of the sentence encoder (m = 0, GELU after the first
// feed-forward layer).
//
// CPU reference: `foundation::reference::project`.
// Host mirror of `ProjDims`: `foundation::gpu::linear::ProjDims` (the layout test compares every field offset).
//
// A tiled matmul: each workgroup computes a 64 × 64 output tile; the K dimension (the input
// width) is staged through workgroup memory 16 at a time, centring X on the way in, and each of
// the 16 × 16 invocations accumulates a 4 × 4 block in registers. Both tiles are stored as vec4
// (X transposed, four rows per vec4; W four columns per vec4), so each step of the inner loop is
// two vector loads from workgroup memory for 16 FMAs. Row tiles run along x and y (y only past
// the device's per-dimension workgroup limit), column tiles along z.
//
// Rows without a vector are never uploaded: the shader sees no NaN.

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

// X tile transposed: sx[kk * 16 + q] holds rows 4q .. 4q + 3 at input column k0 + kk.
var<workgroup> sx: array<vec4<f32>, TK * 16u>;
// W tile: sw[kk * 16 + q] holds output columns 4q .. 4q + 3 at input row k0 + kk.
var<workgroup> sw: array<vec4<f32>, TK * 16u>;

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
fn x_at(row: u32, k: u32) -> f32 {
    if row < dims.n && k < dims.dim {
        return x[row * dims.dim + k] - mean[k];
    }
    return 0.0;
}

fn w_at(k: u32, col: u32) -> f32 {
    if k < dims.dim && col < dims.d {
        return w[k * dims.d + col];
    }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn project(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let r0 = (wid.x + wid.y * nwg.x) * TS;
    let c0 = wid.z * TS;
    let tid = lid.y * 16u + lid.x;
    // Loader roles: consecutive invocations fill consecutive vec4 slots (no bank conflicts).
    let q = tid % 16u;
    let kk = tid / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < dims.dim; k0 += TK) {
        let r = r0 + 4u * q;
        sx[kk * 16u + q] = vec4(x_at(r, k0 + kk), x_at(r + 1u, k0 + kk), x_at(r + 2u, k0 + kk), x_at(r + 3u, k0 + kk));
        let c = c0 + 4u * q;
        sw[kk * 16u + q] = vec4(w_at(k0 + kk, c), w_at(k0 + kk, c + 1u), w_at(k0 + kk, c + 2u), w_at(k0 + kk, c + 3u));
        workgroupBarrier();
        for (var t = 0u; t < TK; t++) {
            let av = sx[t * 16u + lid.y];
            let bv = sw[t * 16u + lid.x];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + lid.y * 4u + i;
        for (var jj = 0u; jj < 4u; jj++) {
            let col = c0 + lid.x * 4u + jj;
            if row < dims.n && col < dims.d {
                var v = acc[i][jj] + bias[col];
                if dims.gelu != 0u {
                    v = gelu(v);
                }
                out[row * dims.d + col] = v;
            }
        }
    }
}
