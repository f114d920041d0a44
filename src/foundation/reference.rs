//! CPU references of the device toolkit's linear-algebra kernels: one function per WGSL entry
//! point, of the same name and on the same inputs (the storage buffers the shader binds), in
//! f64 and in the plainest loop order.
//!
//! | WGSL entry point              | reference          |
//! |-------------------------------|--------------------|
//! | `gram.wgsl` `gram`            | [`gram`]           |
//! | `gram.wgsl` `column_sums`     | [`column_sums`]    |
//! | `project.wgsl` `project`      | [`project`]        |
//!
//! The shaders write per-chunk partials that the host reduces; a reference returns the reduced
//! result (what the host then holds). The fast host path ([`crate::foundation::vectors`], GEMM
//! in blocks) and the GPU kernels are tested against these.

/// Σ_i w_i (x_i − s)(x_i − s)ᵀ over the n × dim rows `x` (dim × dim, both triangles), with
/// `weights` the row weights (`None`: every row weighs 1).
pub fn gram(x: &[f32], dim: usize, shift: &[f32], weights: Option<&[f32]>) -> Vec<f64> {
    let n = rows(x, dim);
    let mut out = vec![0.0; dim * dim];
    for i in 0..n {
        let w = weights.map_or(1.0, |w| w[i] as f64);
        let y: Vec<f64> = (0..dim).map(|a| x[i * dim + a] as f64 - shift[a] as f64).collect();
        for a in 0..dim {
            for b in 0..dim {
                out[a * dim + b] += w * y[a] * y[b];
            }
        }
    }
    out
}

/// Σ_i w_i (x_i − s) over the n × dim rows `x`.
pub fn column_sums(x: &[f32], dim: usize, shift: &[f32], weights: Option<&[f32]>) -> Vec<f64> {
    let n = rows(x, dim);
    let mut out = vec![0.0; dim];
    for i in 0..n {
        let w = weights.map_or(1.0, |w| w[i] as f64);
        for a in 0..dim {
            out[a] += w * (x[i * dim + a] as f64 - shift[a] as f64);
        }
    }
    out
}

/// (X − m) W + b for the n × dim rows `x` (W: dim × d row-major, b: d), then GELU
/// (x Φ(x), with the shader's erf) when `gelu`: n × d.
pub fn project(x: &[f32], dim: usize, mean: &[f32], w: &[f32], d: usize, bias: &[f32], gelu: bool) -> Vec<f64> {
    let n = rows(x, dim);
    let mut out = vec![0.0; n * d];
    for i in 0..n {
        for c in 0..d {
            let mut s = bias[c] as f64;
            for t in 0..dim {
                s += (x[i * dim + t] as f64 - mean[t] as f64) * w[t * d + c] as f64;
            }
            out[i * d + c] = if gelu { gelu_erf(s) } else { s };
        }
    }
    out
}

/// GELU x Φ(x) = ½ x (1 + erf(x/√2)), with erf by Abramowitz & Stegun 7.1.26 as in
/// `project.wgsl` (|error| < 1.5e-7).
pub fn gelu_erf(x: f64) -> f64 {
    let z = (x * std::f64::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    let erf = (1.0 - poly * (-z * z).exp()).copysign(x);
    0.5 * x * (1.0 + erf)
}

fn rows(x: &[f32], dim: usize) -> usize {
    if dim == 0 {
        0
    } else {
        assert_eq!(x.len() % dim, 0, "x is not a whole number of {dim}-wide rows");
        x.len() / dim
    }
}
