//! The joint latent class model and its fitting.
//!
//! Row i has categorical values x_ij (columns j = 1..J with L_j levels) and a continuous block
//! u_i ∈ ℝᵖ (reduced text embedding and standardized metrics, possibly partly missing):
//!
//! ```text
//! log L = Σ_i log Σ_k π_k · Π_j α_kj[x_ij] · N(u_i,o | μ_k,o, Σ_k,oo)
//! ```
//!
//! Categoricals and the Gaussian block are conditionally independent given the class; a missing
//! categorical drops its factor and missing continuous coordinates are integrated out.
//!
//! * [`params`] — parameters, the host side of the M-step, the kernel parameter layout;
//! * [`init`] — k-means++ initialisation;
//! * [`em`] — the EM driver over a [`crate::backend::Backend`], restarts and the K sweep;
//! * [`predict`] — posteriors and expected metrics for new rows.

pub mod em;
pub mod init;
pub mod params;
pub mod predict;
pub mod shards;

use serde::{Deserialize, Serialize};

use crate::foundation::choice::Choice;
use crate::foundation::error::{Error, Result};

/// Structure of the class covariance matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CovType {
    /// Each class has its own unrestricted covariance (mclust's VVV).
    Full,
    /// Each class has its own diagonal covariance.
    Diag,
    /// Each class has its own single variance σ_k² I.
    Spherical,
    /// One unrestricted covariance shared by all classes.
    Tied,
}

impl Choice for CovType {
    const ALL: &'static [CovType] = &[CovType::Full, CovType::Diag, CovType::Spherical, CovType::Tied];

    fn name(self) -> &'static str {
        match self {
            CovType::Full => "full",
            CovType::Diag => "diag",
            CovType::Spherical => "spherical",
            CovType::Tied => "tied",
        }
    }

    fn help(self) -> &'static str {
        match self {
            CovType::Full => "each class has its own unrestricted covariance (mclust's VVV)",
            CovType::Diag => "each class has its own diagonal covariance",
            CovType::Spherical => "each class has its own single variance",
            CovType::Tied => "one unrestricted covariance shared by all classes",
        }
    }
}

/// The information criterion that picks the winning model (lower is better for all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    Bic,
    Icl,
    Aic,
}

impl Choice for Criterion {
    const ALL: &'static [Criterion] = &[Criterion::Bic, Criterion::Icl, Criterion::Aic];

    fn name(self) -> &'static str {
        match self {
            Criterion::Bic => "bic",
            Criterion::Icl => "icl",
            Criterion::Aic => "aic",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Criterion::Bic => "Bayesian information criterion",
            Criterion::Icl => "integrated completed likelihood (BIC plus the classification entropy)",
            Criterion::Aic => "Akaike information criterion",
        }
    }
}

/// Number of free parameters of the model, exactly:
///
/// ```text
/// (K − 1)                    class weights
/// + K · Σ_j (L_j − 1)        categorical probabilities
/// + K · p                    means
/// + covariance:  full       K · p(p+1)/2
///                diag       K · p
///                spherical  K
///                tied       p(p+1)/2
/// ```
///
/// (The covariance term is 0 when p = 0.)
pub fn n_params(k: usize, p: usize, n_levels: &[usize], cov: CovType) -> usize {
    let weights = k - 1;
    let cats: usize = k * n_levels.iter().map(|&l| l.saturating_sub(1)).sum::<usize>();
    let means = k * p;
    let covs = if p == 0 {
        0
    } else {
        match cov {
            CovType::Full => k * p * (p + 1) / 2,
            CovType::Diag => k * p,
            CovType::Spherical => k,
            CovType::Tied => p * (p + 1) / 2,
        }
    };
    weights + cats + means + covs
}

/// Information criteria of one fitted model (lower is better).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// BIC = −2ℓ + n_params · ln n.
    pub bic: f64,
    /// ICL = BIC + 2 · EN, EN = −Σ_i Σ_k r_ik ln r_ik (Biernacki, Celeux & Govaert 2000).
    pub icl: f64,
    /// AIC = −2ℓ + 2 · n_params.
    pub aic: f64,
    /// CAIC = −2ℓ + n_params · (ln n + 1).
    pub caic: f64,
    /// Sample-size adjusted BIC = −2ℓ + n_params · ln((n + 2) / 24).
    pub sabic: f64,
    /// Relative entropy 1 − EN / (n ln K) ∈ [0, 1]; 1 is perfectly separated classes.
    pub relative_entropy: f64,
}

impl Criteria {
    pub fn new(loglik: f64, entropy: f64, n_params: usize, n: usize, k: usize) -> Self {
        let (np, nf) = (n_params as f64, n as f64);
        let bic = -2.0 * loglik + np * nf.ln();
        Criteria {
            bic,
            icl: bic + 2.0 * entropy,
            aic: -2.0 * loglik + 2.0 * np,
            caic: -2.0 * loglik + np * (nf.ln() + 1.0),
            sabic: -2.0 * loglik + np * ((nf + 2.0) / 24.0).ln(),
            relative_entropy: if k > 1 { 1.0 - entropy / (nf * (k as f64).ln()) } else { 1.0 },
        }
    }
    pub fn get(&self, c: Criterion) -> f64 {
        match c {
            Criterion::Bic => self.bic,
            Criterion::Icl => self.icl,
            Criterion::Aic => self.aic,
        }
    }
}

/// Parses `4`, `2..8` or `2..=8` (both inclusive) into an inclusive range of class counts.
pub fn parse_k_range(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::config(format!("--k {s:?}: write one number (4) or an inclusive range (2..8)"));
    let s = s.trim();
    let (a, b) =
        if let Some((a, b)) = s.split_once("..") { (a.trim(), b.trim().trim_start_matches('=')) } else { (s, s) };
    let a: usize = a.parse().map_err(|_| bad())?;
    let b: usize = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(Error::config(format!("--k {s:?}: the range must be 1 ≤ from ≤ to")));
    }
    Ok((a, b))
}
