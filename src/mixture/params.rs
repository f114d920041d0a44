//! Mixture parameters and the host side of the M-step.

use serde::{Deserialize, Serialize};

use super::CovType;
use crate::backend::{KernelParams, MixtureData, SuffStats};
use crate::foundation::choice::Choice;
use crate::foundation::error::{Error, Result};
use crate::foundation::linalg;

/// ln 2π.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Parameters of a fitted (or initial) mixture. Covariances are stored as full p × p matrices
/// whatever the covariance type; the type only constrains their structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub k: usize,
    pub p: usize,
    pub cov_type: CovType,
    /// Ridge added to every covariance diagonal (after any automatic raise).
    pub reg: f64,
    /// π_k, length K.
    pub weights: Vec<f64>,
    /// Levels per categorical column.
    pub n_levels: Vec<usize>,
    /// α_kjl, K × total_levels (classes outer; each column's levels contiguous).
    pub alpha: Vec<f64>,
    /// μ_k, K × p.
    pub means: Vec<f64>,
    /// Σ_k, K × p × p.
    pub covariances: Vec<f64>,
    /// Per coordinate, a variance added to every covariance diagonal besides the ridge: h²/12 for
    /// a column recorded at resolution h (standardized units; empty means none). It keeps a class
    /// from collapsing onto one value of a rating or a count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub var_floor: Vec<f64>,
}

/// What happened in one M-step that the user should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum MStepEvent {
    /// Class k received (almost) no responsibility; its parameters were kept.
    Empty { class: usize },
    /// The ridge had to be raised to keep every covariance positive definite.
    RegRaised { from: f64, to: f64 },
}

/// The observed/missing split of one pattern with the conditional quantities of one class:
/// B = Σ_oo⁻¹ Σ_om and C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om.
struct Conditional {
    obs: Vec<usize>,
    mis: Vec<usize>,
    /// Lower Cholesky factor of Σ_oo.
    l_oo: Vec<f64>,
    /// |o| × |m|.
    b: Vec<f64>,
    /// |m| × |m|.
    c: Vec<f64>,
}

fn conditional(sigma: &[f64], p: usize, observed: &[bool]) -> Option<Conditional> {
    let obs: Vec<usize> = (0..p).filter(|&t| observed[t]).collect();
    let mis: Vec<usize> = (0..p).filter(|&t| !observed[t]).collect();
    let (no, nm) = (obs.len(), mis.len());
    let s_oo: Vec<f64> = obs.iter().flat_map(|&a| obs.iter().map(move |&b| sigma[a * p + b])).collect();
    let l_oo = if no > 0 { linalg::cholesky(&s_oo, no)? } else { Vec::new() };
    let s_om: Vec<f64> = obs.iter().flat_map(|&a| mis.iter().map(move |&b| sigma[a * p + b])).collect();
    let b = if no > 0 && nm > 0 { linalg::cholesky_solve(&l_oo, no, &s_om, nm) } else { vec![0.0; no * nm] };
    let mut c = vec![0.0; nm * nm];
    for (x, &ma) in mis.iter().enumerate() {
        for (y, &mb) in mis.iter().enumerate() {
            let corr: f64 = (0..no).map(|t| s_om[t * nm + x] * b[t * nm + y]).sum();
            c[x * nm + y] = sigma[ma * p + mb] - corr;
        }
    }
    Some(Conditional { obs, mis, l_oo, b, c })
}

impl Params {
    /// Parameters for the first M-step of a fit: `centers` (K × p, e.g. k-means centres) as
    /// the means — they are the shift of the first statistics — identity covariances (used only
    /// to fill missing coordinates of that first pass), uniform weights and α.
    pub fn initial(data: &MixtureData, k: usize, centers: &[f64], cov_type: CovType, reg: f64) -> Params {
        let p = data.p;
        let mut covariances = vec![0.0; k * p * p];
        for kk in 0..k {
            for a in 0..p {
                covariances[kk * p * p + a * p + a] = 1.0;
            }
        }
        let alpha =
            (0..k).flat_map(|_| data.n_levels.iter().flat_map(|&l| std::iter::repeat_n(1.0 / l as f64, l))).collect();
        Params {
            k,
            p,
            cov_type,
            reg,
            weights: vec![1.0 / k as f64; k],
            n_levels: data.n_levels.clone(),
            alpha,
            means: if p > 0 { centers[..k * p].to_vec() } else { Vec::new() },
            covariances,
            var_floor: if data.var_floor.iter().any(|&f| f > 0.0) { data.var_floor.clone() } else { Vec::new() },
        }
    }

    pub fn total_levels(&self) -> usize {
        self.n_levels.iter().sum()
    }

    /// Checks everything [`Params`] promises, for parameters read from a file: shapes,
    /// finiteness, weights and categorical probabilities that sum to 1, covariances that are
    /// symmetric, positive definite and of their type's structure. The message names the field
    /// and the class.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (k, p) = (self.k, self.p);
        let pp = p * p;
        let tl = self.total_levels();
        if k == 0 {
            return Err("params.k is 0; a model has at least one class".into());
        }
        if p == 0 && self.n_levels.is_empty() {
            return Err("the model has no modelled column (params.p = 0 and no categorical column)".into());
        }
        let shape = |name: &str, found: usize, want: usize, of: &str| {
            if found == want {
                Ok(())
            } else {
                Err(format!("params.{name} has {found} values; K = {k} and p = {p} need {want} ({of})"))
            }
        };
        shape("weights", self.weights.len(), k, "K")?;
        shape("means", self.means.len(), k * p, "K × p")?;
        shape("covariances", self.covariances.len(), k * pp, "K × p × p")?;
        shape("alpha", self.alpha.len(), k * tl, "K × the levels of every categorical column")?;
        if !self.var_floor.is_empty() {
            shape("var_floor", self.var_floor.len(), p, "p, or none")?;
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return Err(format!("params.reg is {}; it must be a finite number ≥ 0", self.reg));
        }
        if let Some(j) = self.n_levels.iter().position(|&l| l == 0) {
            return Err(format!("params.n_levels[{j}] is 0; a categorical column has at least one level"));
        }
        let class = |i: usize, per: usize| i.checked_div(per).map_or(1, |c| c + 1);
        if let Some((i, w)) = self.weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(format!("params.weights: class {} has weight {w}; weights are probabilities", i + 1));
        }
        let total: f64 = self.weights.iter().sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(format!("params.weights sum to {total}, not 1"));
        }
        if let Some((i, v)) = self.means.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(format!("params.means: class {} coordinate {} is {v}", class(i, p), i % p.max(1) + 1));
        }
        if let Some((i, v)) = self.var_floor.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(format!("params.var_floor[{i}] is {v}; it must be a finite number ≥ 0"));
        }
        for kk in 0..k {
            let mut off = 0;
            for (j, &l) in self.n_levels.iter().enumerate() {
                let a = &self.alpha[kk * tl + off..kk * tl + off + l];
                if let Some(v) = a.iter().find(|v| !(v.is_finite() && (0.0..=1.0).contains(*v))) {
                    return Err(format!(
                        "params.alpha: class {} categorical column {} has probability {v}",
                        kk + 1,
                        j + 1
                    ));
                }
                let s: f64 = a.iter().sum();
                if (s - 1.0).abs() > 1e-6 {
                    return Err(format!(
                        "params.alpha: class {}'s probabilities for categorical column {} sum to {s}, not 1",
                        kk + 1,
                        j + 1
                    ));
                }
                off += l;
            }
            self.validate_covariance(kk)?;
        }
        if self.cov_type == CovType::Tied && (1..k).any(|kk| self.covariance(kk) != self.covariance(0)) {
            return Err("params.covariances: the model is \"tied\" but its classes' covariances differ".into());
        }
        Ok(())
    }

    /// Class `kk`'s covariance: finite, symmetric, of the covariance type's structure and
    /// positive definite.
    fn validate_covariance(&self, kk: usize) -> std::result::Result<(), String> {
        let p = self.p;
        let s = self.covariance(kk);
        let at = |a: usize, b: usize| s[a * p + b];
        let class = kk + 1;
        if let Some(i) = s.iter().position(|v| !v.is_finite()) {
            return Err(format!("params.covariances: class {class} entry ({}, {}) is {}", i / p + 1, i % p + 1, s[i]));
        }
        for a in 0..p {
            for b in 0..a {
                let (x, y) = (at(a, b), at(b, a));
                let tol = 1e-9 * (at(a, a) * at(b, b)).abs().sqrt().max(x.abs()).max(f64::MIN_POSITIVE);
                if (x - y).abs() > tol {
                    return Err(format!(
                        "params.covariances: class {class} is not symmetric (entry ({}, {}) is {x}, ({}, {}) is {y})",
                        a + 1,
                        b + 1,
                        b + 1,
                        a + 1
                    ));
                }
                if matches!(self.cov_type, CovType::Diag | CovType::Spherical) && x != 0.0 {
                    return Err(format!(
                        "params.covariances: the model is \"{}\" but class {class} has off-diagonal entry ({}, {}) = {x}",
                        self.cov_type.name(),
                        a + 1,
                        b + 1
                    ));
                }
            }
        }
        if self.cov_type == CovType::Spherical && (1..p).any(|a| at(a, a) != at(0, 0)) {
            return Err(format!("params.covariances: the model is \"spherical\" but class {class}'s variances differ"));
        }
        if p > 0 && linalg::cholesky(s, p).is_none() {
            return Err(format!("params.covariances: class {class}'s covariance is not positive definite"));
        }
        Ok(())
    }

    /// Var(u_c | u_o) in class k for the observed set `observed` (c must not be in it):
    /// Σ_cc − Σ_co Σ_oo⁻¹ Σ_oc.
    pub fn conditional_variance(&self, k: usize, observed: &[bool], c: usize) -> Result<f64> {
        debug_assert!(!observed[c]);
        let cond = conditional(self.covariance(k), self.p, observed)
            .ok_or_else(|| Error::Numerical(format!("class {}: covariance is not positive definite", k + 1)))?;
        let at = cond.mis.iter().position(|&m| m == c).expect("c is missing in the pattern");
        Ok(cond.c[at * cond.mis.len() + at])
    }

    pub fn covariance(&self, k: usize) -> &[f64] {
        let pp = self.p * self.p;
        &self.covariances[k * pp..(k + 1) * pp]
    }

    /// Lays the parameters out for the kernels: log weights, log α, means, and per (pattern,
    /// class) the embedded precision Cholesky factor, its log normaliser and the fill matrix A.
    /// Fails, naming the class, when a covariance (or a principal sub-matrix) is not positive
    /// definite.
    pub fn kernel_params(&self, patterns: &[Vec<bool>]) -> Result<KernelParams> {
        let (k, p) = (self.k, self.p);
        let pp = p * p;
        let np = patterns.len();
        let mut prec_chol = vec![0.0; np * k * pp];
        let mut log_norm = vec![0.0; np * k];
        let mut fill = vec![0.0; np * k * pp];
        for (o, mask) in patterns.iter().enumerate() {
            for kk in 0..k {
                let cond = conditional(self.covariance(kk), p, mask).ok_or_else(|| {
                    Error::Numerical(format!(
                        "class {}: covariance is not positive definite; increase --reg or decrease --k",
                        kk + 1
                    ))
                })?;
                let no = cond.obs.len();
                let at = (o * k + kk) * pp;
                // U_o = L_oo⁻ᵀ embedded at the observed rows and columns.
                let mut log_det_u = 0.0;
                if no > 0 {
                    let linv = linalg::lower_inverse(&cond.l_oo, no);
                    for (a, &ra) in cond.obs.iter().enumerate() {
                        for (b, &cb) in cond.obs.iter().enumerate() {
                            prec_chol[at + ra * p + cb] = linv[b * no + a];
                        }
                        log_det_u -= cond.l_oo[a * no + a].ln();
                    }
                }
                log_norm[o * k + kk] = log_det_u - 0.5 * no as f64 * LN_2PI;
                // A: identity on the observed block, B = Σ_oo⁻¹ Σ_om to the missing columns.
                let nm = cond.mis.len();
                for (a, &ra) in cond.obs.iter().enumerate() {
                    fill[at + ra * p + ra] = 1.0;
                    for (c, &mc) in cond.mis.iter().enumerate() {
                        fill[at + ra * p + mc] = cond.b[a * nm + c];
                    }
                }
            }
        }
        let log_alpha = self.alpha.iter().map(|a| a.ln()).collect();
        Ok(KernelParams {
            k,
            p,
            n_patterns: np,
            log_weights: self.weights.iter().map(|w| w.ln()).collect(),
            log_alpha,
            means: self.means.clone(),
            prec_chol,
            log_norm,
            fill,
        })
    }

    /// Σ_k Σ_j Σ_l ln α_kjl: the log density (up to a constant) of the symmetric Dirichlet(2)
    /// prior whose MAP estimate is the Laplace-smoothed α. EM increases ℓ + this at every step.
    pub fn log_prior(&self) -> f64 {
        self.alpha.iter().map(|a| a.ln()).sum()
    }

    /// The M-step: new parameters from statistics computed about `self.means` (the shift), for
    /// `n` rows. `patterns` must be the pattern table the statistics were computed with.
    ///
    /// ```text
    /// π_k = N_k / n
    /// α_kjl = (n_kjl + 1) / (N_kj + L_j)                       Laplace smoothing
    /// μ_k = shift_k + δ_k,   δ_k = Σ r d̂ / N_k
    /// S_k = Σ r d̂ d̂ᵀ − N_k δ_k δ_kᵀ + Σ_o R_ko C_ko           scatter about μ_k
    /// full: Σ_k = S_k/N_k + reg I   diag: diag(S_k/N_k) + reg   spherical: tr(S_k/N_k)/p + reg
    /// tied: Σ = Σ_k S_k / n + reg I
    /// and every type: + diag(var_floor) (the resolution floor of tied-valued columns)
    /// ```
    pub fn m_step(&self, stats: &SuffStats, patterns: &[Vec<bool>], n: usize) -> Result<(Params, Vec<MStepEvent>)> {
        let (k, p) = (self.k, self.p);
        let pp = p * p;
        let nf = n as f64;
        let mut next = self.clone();
        let empty_below = 1e-10 * nf.max(1.0);
        let empty: Vec<bool> = stats.nk.iter().map(|&nk| nk < empty_below).collect();
        let mut events: Vec<MStepEvent> =
            (0..k).filter(|&kk| empty[kk]).map(|kk| MStepEvent::Empty { class: kk }).collect();
        for kk in 0..k {
            next.weights[kk] = stats.nk[kk] / nf;
        }
        self.update_alpha(&mut next, stats);
        if p == 0 {
            return Ok((next, events));
        }
        let mut scatter = vec![0.0; k * pp];
        for kk in (0..k).filter(|&kk| !empty[kk]) {
            let nk = stats.nk[kk];
            let delta: Vec<f64> = stats.sum_d[kk * p..(kk + 1) * p].iter().map(|s| s / nk).collect();
            for t in 0..p {
                next.means[kk * p + t] = self.means[kk * p + t] + delta[t];
            }
            self.class_scatter(kk, stats, patterns, &delta, &mut scatter[kk * pp..(kk + 1) * pp])?;
        }
        self.structure(&mut next, stats, &scatter, &empty, nf);
        if let Some(raised) = self.add_ridge(&mut next, &empty)? {
            events.push(raised);
        }
        Ok((next, events))
    }

    /// α_kjl = (n_kjl + 1) / (N_kj + L_j): Laplace-smoothed categorical probabilities.
    fn update_alpha(&self, next: &mut Params, stats: &SuffStats) {
        let tl = self.total_levels();
        let mut off = 0;
        for &l in &self.n_levels {
            for kk in 0..self.k {
                let counts = &stats.cat[kk * tl + off..kk * tl + off + l];
                let total: f64 = counts.iter().sum();
                for (lv, &c) in counts.iter().enumerate() {
                    next.alpha[kk * tl + off + lv] = (c + 1.0) / (total + l as f64);
                }
            }
            off += l;
        }
    }

    /// S_k = Σ r d̂ d̂ᵀ − N_k δ δᵀ + Σ_o R_ko C_ko into `s` (p × p): the scatter of class `kk`
    /// about its new mean, with the conditional covariance of each pattern's missing block.
    fn class_scatter(
        &self,
        kk: usize,
        stats: &SuffStats,
        patterns: &[Vec<bool>],
        delta: &[f64],
        s: &mut [f64],
    ) -> Result<()> {
        let p = self.p;
        let (nk, pp) = (stats.nk[kk], p * p);
        for a in 0..p {
            for b in 0..p {
                s[a * p + b] = stats.sum_dd[kk * pp + a * p + b] - nk * delta[a] * delta[b];
            }
        }
        // Conditional covariance of the missing block, weighted by the pattern mass.
        for (o, mask) in patterns.iter().enumerate() {
            let mass = stats.pattern_mass[kk * patterns.len() + o];
            if mass <= 0.0 || mask.iter().all(|&m| m) {
                continue;
            }
            let cond = conditional(self.covariance(kk), p, mask)
                .ok_or_else(|| Error::Numerical(format!("class {}: covariance lost positive definiteness", kk + 1)))?;
            let nm = cond.mis.len();
            for (x, &ma) in cond.mis.iter().enumerate() {
                for (y, &mb) in cond.mis.iter().enumerate() {
                    s[ma * p + mb] += mass * cond.c[x * nm + y];
                }
            }
        }
        // Symmetrise: GEMM accumulation leaves last-bit asymmetry.
        for a in 0..p {
            for b in 0..a {
                let v = 0.5 * (s[a * p + b] + s[b * p + a]);
                s[a * p + b] = v;
                s[b * p + a] = v;
            }
        }
        Ok(())
    }

    /// The covariances of the non-empty classes from their scatters, by covariance type (before
    /// the ridge).
    fn structure(&self, next: &mut Params, stats: &SuffStats, scatter: &[f64], empty: &[bool], nf: f64) {
        let (k, p) = (self.k, self.p);
        let pp = p * p;
        if self.cov_type == CovType::Tied {
            let mut pooled = vec![0.0; pp];
            for kk in (0..k).filter(|&kk| !empty[kk]) {
                for t in 0..pp {
                    pooled[t] += scatter[kk * pp + t] / nf;
                }
            }
            for kk in 0..k {
                next.covariances[kk * pp..(kk + 1) * pp].copy_from_slice(&pooled);
            }
            return;
        }
        for kk in (0..k).filter(|&kk| !empty[kk]) {
            let nk = stats.nk[kk];
            let s = &scatter[kk * pp..(kk + 1) * pp];
            let c = &mut next.covariances[kk * pp..(kk + 1) * pp];
            match self.cov_type {
                CovType::Full | CovType::Tied => c.iter_mut().zip(s).for_each(|(c, s)| *c = s / nk),
                CovType::Diag => {
                    c.fill(0.0);
                    for a in 0..p {
                        c[a * p + a] = s[a * p + a] / nk;
                    }
                }
                CovType::Spherical => {
                    let var = (0..p).map(|a| s[a * p + a]).sum::<f64>() / (nk * p as f64);
                    c.fill(0.0);
                    for a in 0..p {
                        c[a * p + a] = var;
                    }
                }
            }
        }
    }

    /// Adds the ridge (and the resolution floors) to every covariance, raising the ridge ×10
    /// until all are positive definite; empty classes keep their previous covariance. Returns the
    /// event when the ridge had to be raised.
    fn add_ridge(&self, next: &mut Params, empty: &[bool]) -> Result<Option<MStepEvent>> {
        let (k, p) = (self.k, self.p);
        let pp = p * p;
        let tied = self.cov_type == CovType::Tied;
        let base = next.covariances.clone();
        let mut reg = self.reg;
        loop {
            next.covariances.copy_from_slice(&base);
            for kk in (0..k).filter(|&kk| !empty[kk] || tied) {
                for a in 0..p {
                    next.covariances[kk * pp + a * p + a] += reg + self.var_floor.get(a).copied().unwrap_or(0.0);
                }
            }
            // Empty classes keep their previous covariance (which already holds a ridge).
            for kk in (0..k).filter(|&kk| empty[kk] && !tied) {
                next.covariances[kk * pp..(kk + 1) * pp].copy_from_slice(self.covariance(kk));
            }
            if (0..k).all(|kk| linalg::cholesky(next.covariance(kk), p).is_some()) {
                break;
            }
            let raised = if reg > 0.0 { reg * 10.0 } else { 1e-10 };
            if raised > 1e6 {
                return Err(Error::Numerical(
                    "a class covariance stays singular even with a ridge of 1e6; decrease the \
                     number of classes (--k) or remove constant columns"
                        .into(),
                ));
            }
            reg = raised;
        }
        if reg == self.reg {
            return Ok(None);
        }
        next.reg = reg;
        Ok(Some(MStepEvent::RegRaised { from: self.reg, to: reg }))
    }
}
