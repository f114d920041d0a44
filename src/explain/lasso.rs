//! The linear decoder behind the keywords: a multi-output Lasso from the reduced text embedding
//! to the bag of words,
//!
//!   W = argmin_W  1/(2n) ‖Y − X W‖²_F + λ ‖W‖₁        (X: n × d, Y: n × V, W: d × V),
//!
//! with scikit-learn's `Lasso` scaling (the L1 penalty is element-wise, so every word is its own
//! Lasso). It is solved by cyclic coordinate descent on the Gram form: with G = XᵀX / n and
//! C = XᵀY / n, the update of w_jv is soft(C_jv − Σ_{l≠j} G_jl w_lv, λ) / G_jj — O(d²) per
//! sweep per word, independent of n once G and C are built from the sparse Y.

/// Soft thresholding: sign(z) · max(|z| − λ, 0).
fn soft(z: f64, lambda: f64) -> f64 {
    if z > lambda {
        z - lambda
    } else if z < -lambda {
        z + lambda
    } else {
        0.0
    }
}

/// Solves every output's Lasso from the Gram form: `g` is d × d, `c` is d × V (both already
/// divided by n). `w` (d × V) is the warm start and the result. Stops an output when a sweep
/// changes no coefficient by more than `tol` (relative to its largest coefficient), or after
/// `max_sweeps`.
pub fn lasso_gram(g: &[f64], c: &[f64], d: usize, v: usize, lambda: f64, w: &mut [f64], tol: f64, max_sweeps: usize) {
    for out in 0..v {
        for _ in 0..max_sweeps {
            let (mut change, mut size) = (0.0f64, 0.0f64);
            for j in 0..d {
                if g[j * d + j] <= 0.0 {
                    continue;
                }
                let mut rho = c[j * v + out];
                for l in 0..d {
                    if l != j {
                        rho -= g[j * d + l] * w[l * v + out];
                    }
                }
                let new = soft(rho, lambda) / g[j * d + j];
                change = change.max((new - w[j * v + out]).abs());
                size = size.max(new.abs());
                w[j * v + out] = new;
            }
            if change <= tol * size.max(1e-12) {
                break;
            }
        }
    }
}

/// Gram-form statistics of rows `rows` of X (n × d) against the standardized sparse targets:
/// G = XᵀX / m and C_jv = Σ_i x_ij (y_iv − m_v) / (s_v m), where y is 0/1 presence, m_v and s_v
/// the presence mean and standard deviation, and m the number of rows.
pub fn gram_stats(
    x: &[f64],
    d: usize,
    docs: &[Vec<u32>],
    rows: &[usize],
    mean: &[f64],
    sd: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let v = mean.len();
    let m = rows.len().max(1) as f64;
    let mut g = vec![0.0; d * d];
    let mut c = vec![0.0; d * v];
    let mut xsum = vec![0.0; d];
    for &i in rows {
        let xi = &x[i * d..(i + 1) * d];
        for a in 0..d {
            xsum[a] += xi[a];
            for b in 0..d {
                g[a * d + b] += xi[a] * xi[b];
            }
        }
        for &t in &docs[i] {
            for a in 0..d {
                c[a * v + t as usize] += xi[a];
            }
        }
    }
    g.iter_mut().for_each(|x| *x /= m);
    for a in 0..d {
        for t in 0..v {
            c[a * v + t] = (c[a * v + t] - xsum[a] * mean[t]) / (sd[t] * m);
        }
    }
    (g, c)
}

/// Held-out mean squared error per (row, word) of `w` on rows described by their Gram stats and
/// Σ ỹ² (the standardized targets' sum of squares divided by m).
pub fn heldout_mse(g: &[f64], c: &[f64], yy: f64, d: usize, v: usize, w: &[f64]) -> f64 {
    // (1/m) Σ_v ‖ỹ_v − X w_v‖² = Σ ỹ²/m − 2 Σ_v w_vᵀ c_v + Σ_v w_vᵀ G w_v
    let mut total = yy;
    for t in 0..v {
        let mut lin = 0.0;
        let mut quad = 0.0;
        for a in 0..d {
            let wa = w[a * v + t];
            if wa == 0.0 {
                continue;
            }
            lin += wa * c[a * v + t];
            for b in 0..d {
                quad += wa * g[a * d + b] * w[b * v + t];
            }
        }
        total += quad - 2.0 * lin;
    }
    total / v.max(1) as f64
}
