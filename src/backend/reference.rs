//! CPU references of the mixture kernels: one function per WGSL entry point, of the same name
//! and on the same inputs (the uploaded [`MixtureData`] and the packed [`KernelParams`]), written
//! as the shader's arithmetic in its plainest form, one row and one class at a time, in f64.
//!
//! | WGSL entry point          | reference     |
//! |---------------------------|---------------|
//! | `e_step.wgsl` `e_step`    | [`e_step`]    |
//! | `m_stats.wgsl` `moments`  | [`moments`]   |
//! | `m_stats.wgsl` `counts`   | [`counts`]    |
//!
//! They are the oracles: the fast CPU backend ([`super::cpu`], quadratic features and GEMM) and
//! the GPU backend are both tested against them, and the references themselves against the
//! model's definitions (marginal Gaussians of the observed coordinates, conditional-mean fills)
//! in the library's tests. Nothing in a fit calls them: they are O(N K p²) with no blocking.

use super::{KernelParams, MixtureData, Posteriors, SuffStats};
use crate::foundation::MISSING_CODE;

/// Per row and class the joint log-density
/// log π_k + Σ_j log α_kj\[x_ij\] + log det U_{o,k} − |o|/2 ln 2π − ½ ‖(x_i − μ_k) U_{o,k}‖²
/// (deviation zeroed at missing coordinates), then the row's log-sum-exp: responsibilities and
/// row log-likelihoods, in input row order.
pub fn e_step(data: &MixtureData, params: &KernelParams) -> Posteriors {
    let (n, k, p) = (data.n, params.k, data.p);
    let offsets = data.level_offsets();
    let tl = data.total_levels();
    let mut resp = vec![0.0; n * k];
    let mut row_loglik = vec![0.0; n];
    let mut lp = vec![0.0; k];
    let mut d = vec![0.0; p];
    for i in 0..n {
        let pat = data.pattern[i] as usize;
        let observed = &data.patterns[pat];
        for (c, lp_c) in lp.iter_mut().enumerate() {
            let mut v = params.log_weights[c] + params.log_norm[pat * k + c];
            for (j, off) in offsets[..data.n_cat()].iter().enumerate() {
                let code = data.codes[i * data.n_cat() + j];
                if code != MISSING_CODE {
                    v += params.log_alpha[c * tl + off + code as usize];
                }
            }
            for a in 0..p {
                d[a] = if observed[a] { data.x[i * p + a] - params.means[c * p + a] } else { 0.0 };
            }
            // ‖d U‖² with U upper triangular: y_t = Σ_{a ≤ t} d_a U_at.
            let u = params.prec_chol(pat, c);
            let quad: f64 = (0..p)
                .map(|t| {
                    let y: f64 = (0..=t).map(|a| d[a] * u[a * p + t]).sum();
                    y * y
                })
                .sum();
            *lp_c = v - 0.5 * quad;
        }
        let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + lp.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        row_loglik[i] = lse;
        for c in 0..k {
            resp[i * k + c] = (lp[c] - lse).exp();
        }
    }
    Posteriors { k, resp, row_loglik }
}

/// Per class, Σ_i r_ik d̂_ik (K × p) and Σ_i r_ik d̂_ik d̂_ikᵀ (K × p × p, both triangles), where
/// d̂ = d₀ A_{o,k} is the conditional-mean fill of the observed deviation d₀ = x − μ_k (zero at
/// missing coordinates; A is the identity for the complete pattern). `resp` is n × K in input
/// row order.
pub fn moments(data: &MixtureData, params: &KernelParams, resp: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (n, k, p) = (data.n, params.k, data.p);
    let mut sum_d = vec![0.0; k * p];
    let mut sum_dd = vec![0.0; k * p * p];
    let mut d0 = vec![0.0; p];
    let mut dhat = vec![0.0; p];
    for i in 0..n {
        let pat = data.pattern[i] as usize;
        let observed = &data.patterns[pat];
        for c in 0..k {
            let r = resp[i * k + c];
            for b in 0..p {
                d0[b] = if observed[b] { data.x[i * p + b] - params.means[c * p + b] } else { 0.0 };
            }
            if pat == 0 {
                dhat.copy_from_slice(&d0);
            } else {
                let fill = params.fill(pat, c);
                for a in 0..p {
                    dhat[a] = (0..p).map(|b| d0[b] * fill[b * p + a]).sum();
                }
            }
            for a in 0..p {
                sum_d[c * p + a] += r * dhat[a];
                for b in 0..p {
                    sum_dd[(c * p + a) * p + b] += r * dhat[a] * dhat[b];
                }
            }
        }
    }
    (sum_d, sum_dd)
}

/// Responsibility mass: N_k = Σ_i r_ik (K), Σ_i r_ik [x_ij = l] (K × total levels) and
/// Σ_{i in pattern o} r_ik (K × patterns). `resp` is n × K in input row order.
pub fn counts(data: &MixtureData, resp: &[f64], k: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let offsets = data.level_offsets();
    let (tl, np) = (data.total_levels(), data.patterns.len());
    let mut nk = vec![0.0; k];
    let mut cat = vec![0.0; k * tl];
    let mut pattern_mass = vec![0.0; k * np];
    for i in 0..data.n {
        for c in 0..k {
            let r = resp[i * k + c];
            nk[c] += r;
            pattern_mass[c * np + data.pattern[i] as usize] += r;
            for (j, off) in offsets[..data.n_cat()].iter().enumerate() {
                let code = data.codes[i * data.n_cat() + j];
                if code != MISSING_CODE {
                    cat[c * tl + off + code as usize] += r;
                }
            }
        }
    }
    (nk, cat, pattern_mass)
}

/// [`moments`] and [`counts`] together: the [`SuffStats`] a backend's `m_stats` returns.
pub fn m_stats(data: &MixtureData, params: &KernelParams, resp: &[f64]) -> SuffStats {
    let (sum_d, sum_dd) = moments(data, params, resp);
    let (nk, cat, pattern_mass) = counts(data, resp, params.k);
    SuffStats { k: params.k, p: data.p, nk, sum_d, sum_dd, cat, pattern_mass }
}
