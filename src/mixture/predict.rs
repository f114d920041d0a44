//! Class posteriors and expected metrics for rows under fitted parameters.
//!
//! The expected value of continuous coordinate c for row i conditions on everything else the
//! row shows — its categoricals and its *other* observed continuous coordinates — and never on
//! coordinate c itself (so it is an honest prediction even for rows where the metric is known):
//!
//! ```text
//! E[u_c | rest] = Σ_k p(k | rest) · (μ_kc + Σ_{c,o} Σ_oo⁻¹ (u_o − μ_k,o)),   o = observed \ {c}
//! ```
//!
//! Both factors come from the same kernels as the fit: p(k | rest) is an E-step on the data
//! with coordinate c masked, and the regression Σ_{c,o} Σ_oo⁻¹ is column c of the fill matrix
//! A_{o,k} the M-step uses. A metric modelled on the log scale needs the conditional variance
//! too ([`expected_with`]): the mean of a log-normal is exp(m + v/2), not exp(m).

use rayon::prelude::*;

use super::params::Params;
use crate::backend::{Backend, MixtureData, Posteriors, e_step_one};
use crate::foundation::error::Result;

/// Posteriors and row log-likelihoods of every row under `params`.
pub fn posteriors<B: Backend>(backend: &B, data: &MixtureData, params: &Params) -> Result<Posteriors> {
    let dev = backend.upload(data)?;
    posteriors_resident(backend, &dev, data, params)
}

/// [`posteriors`] of rows already uploaded to the backend (`dev` holds `data`), so several models
/// can score the same rows with one upload.
pub fn posteriors_resident<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    params: &Params,
) -> Result<Posteriors> {
    let kp = params.kernel_params(&data.patterns)?;
    let mut resp = backend.alloc_resp(dev, params.k)?;
    e_step_one(backend, dev, &kp, &mut resp)?;
    let mut post = backend.read_posteriors(dev, &resp)?;
    // Row log-likelihoods on the data's own scale.
    if data.log_jacobian.len() == data.n {
        post.row_loglik.iter_mut().zip(&data.log_jacobian).for_each(|(l, j)| *l += j);
    }
    Ok(post)
}

/// E[u_c | everything else observed in the row], in the model's (standardized) units.
pub fn expected_coordinate<B: Backend>(backend: &B, data: &MixtureData, params: &Params, c: usize) -> Result<Vec<f64>> {
    expected_with(backend, data, params, c, &|m, _| m)
}

/// E[g(u_c) | everything else observed in the row] = Σ_k p(k | rest) · g(m_k, v_k), where within
/// class k the coordinate given the rest is N(m_k, v_k): m_k = μ_kc + Σ_{c,o} Σ_oo⁻¹ (u_o − μ_k,o)
/// and v_k = Σ_cc − Σ_{c,o} Σ_oo⁻¹ Σ_{o,c}. `g` is the class-conditional expectation of the
/// quantity wanted: `m` itself for u_c, `exp(a + b m + b² v / 2)` for a log-modelled metric
/// (the mean of a log-normal), ...
pub fn expected_with<B: Backend>(
    backend: &B,
    data: &MixtureData,
    params: &Params,
    c: usize,
    g: &(dyn Fn(f64, f64) -> f64 + Sync),
) -> Result<Vec<f64>> {
    let (n, p, k) = (data.n, data.p, params.k);
    assert!(c < p);
    // The data with coordinate c hidden.
    let mut masked = data.clone();
    let mut observed = vec![false; n * p];
    for i in 0..n {
        let mask = &data.patterns[data.pattern[i] as usize];
        observed[i * p..(i + 1) * p].copy_from_slice(mask);
        observed[i * p + c] = false;
        masked.x[i * p + c] = 0.0;
    }
    masked.set_patterns(&observed);
    let post = posteriors(backend, &masked, params)?;
    let kp = params.kernel_params(&masked.patterns)?;
    let var: Vec<f64> = (0..masked.patterns.len())
        .flat_map(|o| (0..k).map(move |kk| (o, kk)))
        // Patterns where c is observed (the complete one is always listed) have no row here.
        .map(
            |(o, kk)| {
                if masked.patterns[o][c] { Ok(0.0) } else { params.conditional_variance(kk, &masked.patterns[o], c) }
            },
        )
        .collect::<Result<_>>()?;
    Ok((0..n)
        .into_par_iter()
        .map(|i| {
            let o = masked.pattern[i] as usize;
            let mask = &masked.patterns[o];
            let x = &masked.x[i * p..(i + 1) * p];
            (0..k)
                .map(|kk| {
                    let mu = &params.means[kk * p..(kk + 1) * p];
                    let a = kp.fill(o, kk);
                    let reg: f64 = (0..p).filter(|&t| mask[t]).map(|t| (x[t] - mu[t]) * a[t * p + c]).sum();
                    post.resp[i * k + kk] * g(mu[c] + reg, var[o * k + kk])
                })
                .sum()
        })
        .collect())
}
