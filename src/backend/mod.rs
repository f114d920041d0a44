//! The seam between the mathematics and the hardware.
//!
//! Everything heavy in segmix is one of four batched kernels, and nothing else touches the
//! data at full size:
//!
//! | kernel    | computes                                                                 | cost        |
//! |-----------|--------------------------------------------------------------------------|-------------|
//! | `gram`    | column sums and XᵀX of an embedding matrix (PCA covariance)              | O(N D²)     |
//! | `project` | (X − m) W, embeddings → reduced space                                    | O(N D d)    |
//! | `e_step`  | per row and class: log π_k + Σ_j log α_kj\[x_ij\] + log N(u_o | μ_k,o, Σ_k,oo), then a row-wise log-sum-exp → responsibilities, row log-likelihoods | O(N K p²) |
//! | `m_stats` | the additive sufficient statistics of the M-step                         | O(N K p²)   |
//!
//! A backend holds the data resident (uploaded once per fit, [`Backend::upload`]) and a
//! responsibility buffer per model size ([`Backend::alloc_resp`]). [`Backend::e_step`] is the one
//! E-step entry: every model of a pass (a K sweep's fits run in lockstep) in one pass over the
//! data, with the next M-step's statistics when [`Pass::WithStats`] asks for them. Each EM
//! iteration sends only a [`KernelParams`] per model and reads back only a [`SuffStats`] and an
//! [`EStepSummary`]; the host turns them into new parameters (Cholesky factors, O(K p³)) in
//! `mixture::em`. `gram` and `project` run on the text vectors where [`Backend::place`] put them
//! (`foundation::vectors`: host GEMMs, or the device toolkit's kernels on resident rows, where
//! the GPU encoder also leaves its vectors).
//!
//! ## Missing values
//! Rows are grouped by their *pattern* (which continuous coordinates are observed). For a row
//! with observed set o the Gaussian factor is the marginal N(u_o | μ_o, Σ_oo). The host embeds
//! the precision Cholesky factor of Σ_oo into a p × p matrix with zero rows and columns at the
//! missing coordinates, and the kernel zeroes the deviation there, so one uniform kernel computes
//! every pattern: ‖d₀ U_o‖² = d_oᵀ Σ_oo⁻¹ d_o.
//!
//! For the M-step, exact EM fills a missing block with its conditional mean and adds its
//! conditional covariance. The fill is linear in the observed deviation: d̂ = d₀ A_o with
//! A_o = [I, Σ_oo⁻¹ Σ_om] on the observed rows and zero on the missing rows, so `m_stats`
//! accumulates Σ r d̂ and Σ r d̂ d̂ᵀ, and the per-(class, pattern) responsibility mass lets the
//! host add Σ_o R_ko (Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om) without another pass over the data.
//!
//! ## Precision
//! Every WGSL entry point has a CPU reference of the same name and inputs ([`reference`](mod@reference): plain
//! per-row loops in f64), the oracle both backends are tested against. The CPU backend computes
//! in f64 throughout, by GEMMs on quadratic features rather than per row.
//! Statistics are accumulated about the current class means (the *shift*), which keeps the
//! scatter well conditioned in single precision on a GPU.
//!
//! ## Determinism
//! Backends reduce per-block partial statistics in a fixed tree whose shape depends only on
//! the data size, never on thread timing, so a CPU fit is bit-for-bit reproducible.

pub mod cpu;
pub mod device;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod reference;

use crate::foundation::error::Result;
pub use crate::foundation::linalg::Gram;
pub use crate::foundation::vectors::Vectors;
pub use cpu::CpuBackend;
pub use device::{AnyBackend, DeviceChoice};
#[cfg(feature = "gpu")]
pub use gpu::GpuBackend;

/// The host-side copy of everything a mixture fit reads per row. Built by
/// `data::prepare` for `fit` and `predict` alike.
#[derive(Debug, Clone, Default)]
pub struct MixtureData {
    /// Number of rows.
    pub n: usize,
    /// Continuous dimensions (reduced text + standardized metrics).
    pub p: usize,
    /// n × p, row-major; missing coordinates hold 0.0 (the kernels never read them).
    pub x: Vec<f64>,
    /// Pattern index of each row (an index into `patterns`).
    pub pattern: Vec<u32>,
    /// Observed masks; `patterns[0]` is always the complete pattern.
    pub patterns: Vec<Vec<bool>>,
    /// Number of levels of each categorical column.
    pub n_levels: Vec<usize>,
    /// n × J category codes, [`crate::foundation::MISSING_CODE`] for missing.
    pub codes: Vec<u32>,
    /// ln |du_i/dv_i| of each row: what turns the density of its standardized coordinates into
    /// the density of its values on the data's own scale (−Σ ln sd over observed metrics, the
    /// log transforms' derivatives, −Σ ln scale over observed text scores). Empty means 0.
    pub log_jacobian: Vec<f64>,
    /// Per continuous coordinate, the smallest variance any class may have on it (standardized
    /// units; see `data::prepare::NumericSchema::resolution`). Empty means none.
    pub var_floor: Vec<f64>,
    /// Names of the continuous coordinates, for messages (empty: "coordinate t").
    pub names: Vec<String>,
    /// The standardization scale of each continuous coordinate (sd of a metric, √eigenvalue of
    /// a PCA score): x · scale is in the data's own units. Empty means 1.
    pub scale: Vec<f64>,
}

impl MixtureData {
    /// Σ_i ln |du_i/dv_i|: added to a log-likelihood of the standardized block, it gives the
    /// log-likelihood of the data on its own scale.
    pub fn total_log_jacobian(&self) -> f64 {
        self.log_jacobian.iter().sum()
    }
    /// The name of continuous coordinate `t`.
    pub fn coordinate_name(&self, t: usize) -> String {
        self.names.get(t).cloned().unwrap_or_else(|| format!("coordinate {}", t + 1))
    }
    /// Number of categorical columns.
    pub fn n_cat(&self) -> usize {
        self.n_levels.len()
    }
    /// Offsets of each categorical column in a flattened level axis (length J + 1).
    pub fn level_offsets(&self) -> Vec<usize> {
        let mut off = vec![0];
        for &l in &self.n_levels {
            off.push(off.last().unwrap() + l);
        }
        off
    }
    pub fn total_levels(&self) -> usize {
        self.n_levels.iter().sum()
    }
    /// Sets `value` at row `i`'s observed levels in `dst` (one slot per level, `offsets` from
    /// [`MixtureData::level_offsets`]); missing categoricals leave their slots untouched.
    pub fn one_hot_row(&self, i: usize, offsets: &[usize], dst: &mut [f64], value: f64) {
        let j = self.n_cat();
        for (jj, &c) in self.codes[i * j..(i + 1) * j].iter().enumerate() {
            if c != crate::foundation::MISSING_CODE {
                dst[offsets[jj] + c as usize] = value;
            }
        }
    }
    /// The n × total_levels one-hot matrix of the categoricals (all zeros where missing).
    pub fn one_hot(&self) -> Vec<f64> {
        let (tl, off) = (self.total_levels(), self.level_offsets());
        let mut x = vec![0.0; self.n * tl];
        for i in 0..self.n {
            self.one_hot_row(i, &off, &mut x[i * tl..(i + 1) * tl], 1.0);
        }
        x
    }
    /// The categorical columns alone (`p` = 0), each cut to at most `max` levels (`max` ≥ 2): its
    /// `max − 1` most frequent levels kept (ties by code), the rest pooled into one level. The
    /// feature spaces whose width grows with the levels — k-means starts, the report's map — read
    /// this, so an identifier-like column costs them O(n · max), not O(n · levels).
    pub fn pooled_categories(&self, max: usize) -> MixtureData {
        use crate::foundation::MISSING_CODE;
        let (max, j) = (max.max(2), self.n_cat());
        let mut out =
            MixtureData { n: self.n, n_levels: self.n_levels.clone(), codes: self.codes.clone(), ..Default::default() };
        for (jj, &l) in self.n_levels.iter().enumerate().filter(|&(_, &l)| l > max) {
            let mut count = vec![0usize; l];
            for i in 0..self.n {
                let c = self.codes[i * j + jj];
                if c != MISSING_CODE {
                    count[c as usize] += 1;
                }
            }
            let mut order: Vec<usize> = (0..l).collect();
            order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
            let mut map = vec![(max - 1) as u32; l];
            for (new, &old) in order.iter().take(max - 1).enumerate() {
                map[old] = new as u32;
            }
            for i in 0..self.n {
                let c = &mut out.codes[i * j + jj];
                if *c != MISSING_CODE {
                    *c = map[*c as usize];
                }
            }
            out.n_levels[jj] = max;
        }
        out
    }
    /// The rows `idx` (in that order) as a table of their own.
    pub fn rows(&self, idx: &[usize]) -> MixtureData {
        let (p, j) = (self.p, self.n_cat());
        let mut out = MixtureData {
            n: idx.len(),
            p,
            x: idx.iter().flat_map(|&i| self.x[i * p..(i + 1) * p].iter().copied()).collect(),
            n_levels: self.n_levels.clone(),
            codes: idx.iter().flat_map(|&i| self.codes[i * j..(i + 1) * j].iter().copied()).collect(),
            log_jacobian: if self.log_jacobian.is_empty() {
                Vec::new()
            } else {
                idx.iter().map(|&i| self.log_jacobian[i]).collect()
            },
            var_floor: self.var_floor.clone(),
            names: self.names.clone(),
            scale: self.scale.clone(),
            ..MixtureData::default()
        };
        let observed: Vec<bool> =
            idx.iter().flat_map(|&i| self.patterns[self.pattern[i] as usize].iter().copied()).collect();
        out.set_patterns(&observed);
        out
    }
    /// Re-indexes the rows' patterns into `global`, a table that holds every pattern of these
    /// rows with the complete one first (a shard of a table split across workers uses the table's
    /// one pattern table, so the workers' statistics add up).
    pub fn use_patterns(&mut self, global: &[Vec<bool>]) -> Result<()> {
        let map = self
            .patterns
            .iter()
            .map(|p| {
                global.iter().position(|g| g == p).map(|i| i as u32).ok_or_else(|| {
                    crate::foundation::error::Error::config(
                        "internal: a shard's missing-value pattern is not in the global table",
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        self.pattern.iter_mut().for_each(|p| *p = map[*p as usize]);
        self.patterns = global.to_vec();
        Ok(())
    }

    /// Builds the pattern table from a mask of observed continuous values (n × p, row-major).
    pub fn set_patterns(&mut self, observed: &[bool]) {
        let p = self.p;
        let mut index: std::collections::HashMap<Vec<bool>, u32> = std::collections::HashMap::new();
        self.patterns = vec![vec![true; p]];
        index.insert(vec![true; p], 0);
        self.pattern = (0..self.n)
            .map(|i| {
                let m = &observed[i * p..(i + 1) * p];
                if let Some(&id) = index.get(m) {
                    return id;
                }
                let id = self.patterns.len() as u32;
                self.patterns.push(m.to_vec());
                index.insert(m.to_vec(), id);
                id
            })
            .collect();
    }
}

/// What the kernels need of the current parameters, laid out flat. Rebuilt on the host each
/// iteration (see `mixture::params::Params::kernel_params`).
#[derive(Debug, Clone)]
pub struct KernelParams {
    pub k: usize,
    pub p: usize,
    pub n_patterns: usize,
    /// log π_k, length K.
    pub log_weights: Vec<f64>,
    /// log α, K × total_levels (classes outer).
    pub log_alpha: Vec<f64>,
    /// Class means (also the shift of the statistics), K × p.
    pub means: Vec<f64>,
    /// Embedded precision Cholesky factors U_{o,k}, n_patterns × K × p × p.
    pub prec_chol: Vec<f64>,
    /// log det U_{o,k} − |o|/2 · ln 2π, n_patterns × K.
    pub log_norm: Vec<f64>,
    /// Conditional-mean fill matrices A_{o,k}, n_patterns × K × p × p (identity for the
    /// complete pattern, which kernels may skip).
    pub fill: Vec<f64>,
}

impl KernelParams {
    /// Checks that these parameters fit data of width `p` with `n_patterns` missing-value
    /// patterns and `total_levels` categorical levels, scored into a K-class buffer.
    pub fn check(&self, k: usize, p: usize, n_patterns: usize, total_levels: usize) -> Result<()> {
        let ok = self.k == k
            && self.p == p
            && self.n_patterns == n_patterns
            && self.means.len() == k * p
            && self.log_alpha.len() == k * total_levels;
        if ok { Ok(()) } else { Err(crate::Error::config("kernel parameters do not match the uploaded data")) }
    }

    pub fn prec_chol(&self, pattern: usize, k: usize) -> &[f64] {
        let pp = self.p * self.p;
        let at = (pattern * self.k + k) * pp;
        &self.prec_chol[at..at + pp]
    }
    pub fn fill(&self, pattern: usize, k: usize) -> &[f64] {
        let pp = self.p * self.p;
        let at = (pattern * self.k + k) * pp;
        &self.fill[at..at + pp]
    }
}

/// Result of one E-step, summed over rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EStepSummary {
    /// Σ_i log p(x_i).
    pub loglik: f64,
    /// Σ_i Σ_k −r_ik ln r_ik (the classification entropy used by ICL).
    pub entropy: f64,
}

impl EStepSummary {
    pub fn merge(self, o: Self) -> Self {
        EStepSummary { loglik: self.loglik + o.loglik, entropy: self.entropy + o.entropy }
    }
}

/// Additive sufficient statistics of the M-step, about the shift μ_k of the [`KernelParams`]
/// they were computed with. Chunks, threads and devices all combine through [`SuffStats::merge`].
#[derive(Debug, Clone, PartialEq)]
pub struct SuffStats {
    pub k: usize,
    pub p: usize,
    /// N_k = Σ_i r_ik.
    pub nk: Vec<f64>,
    /// Σ_i r_ik d̂_ik, K × p.
    pub sum_d: Vec<f64>,
    /// Σ_i r_ik d̂_ik d̂_ikᵀ, K × p × p.
    pub sum_dd: Vec<f64>,
    /// Σ_i r_ik [x_ij = l], K × total_levels.
    pub cat: Vec<f64>,
    /// Σ_{i in pattern o} r_ik, K × n_patterns.
    pub pattern_mass: Vec<f64>,
}

impl SuffStats {
    pub fn zeros(k: usize, p: usize, total_levels: usize, n_patterns: usize) -> Self {
        SuffStats {
            k,
            p,
            nk: vec![0.0; k],
            sum_d: vec![0.0; k * p],
            sum_dd: vec![0.0; k * p * p],
            cat: vec![0.0; k * total_levels],
            pattern_mass: vec![0.0; k * n_patterns],
        }
    }
    pub fn merge(mut self, o: &SuffStats) -> Self {
        let add = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.nk, &o.nk);
        add(&mut self.sum_d, &o.sum_d);
        add(&mut self.sum_dd, &o.sum_dd);
        add(&mut self.cat, &o.cat);
        add(&mut self.pattern_mass, &o.pattern_mass);
        self
    }
}

/// The error for an E-step whose log-likelihood is not finite, naming the (input) row when known.
pub(crate) fn non_finite(row: Option<usize>, k: usize) -> crate::foundation::error::Error {
    crate::foundation::error::Error::Numerical(format!(
        "row {} has a non-finite log-likelihood under all {k} classes; check the input for \
         extreme values, or increase --reg",
        row.map_or("?".to_string(), |r| r.to_string())
    ))
}

/// Posteriors read back from a backend, in input row order.
#[derive(Debug, Clone)]
pub struct Posteriors {
    pub k: usize,
    /// n × K responsibilities.
    pub resp: Vec<f64>,
    /// Per-row log-likelihood.
    pub row_loglik: Vec<f64>,
}

impl Posteriors {
    /// The most probable class (0-based) of every row, the first on ties.
    pub fn labels(&self) -> Vec<usize> {
        self.resp.chunks(self.k).map(|r| crate::foundation::stats::argmax(r).0).collect()
    }
}

/// What an E-step pass computes besides the responsibilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Responsibilities and row log-likelihoods only.
    Posteriors,
    /// Also the M-step statistics of the new responsibilities.
    WithStats,
}

/// [`Backend::e_step`] of one model, responsibilities only.
pub fn e_step_one<B: Backend + ?Sized>(
    backend: &B,
    data: &B::Data,
    params: &KernelParams,
    resp: &mut B::Resp,
) -> Result<EStepSummary> {
    let mut out = backend.e_step(data, &mut [(params, resp)], Pass::Posteriors)?;
    Ok(out.remove(0).0)
}

/// [`Backend::e_step`] of one model with the statistics of the M-step that follows.
pub fn e_step_stats_one<B: Backend + ?Sized>(
    backend: &B,
    data: &B::Data,
    params: &KernelParams,
    resp: &mut B::Resp,
) -> Result<(EStepSummary, SuffStats)> {
    let mut out = backend.e_step(data, &mut [(params, resp)], Pass::WithStats)?;
    let (summary, stats) = out.remove(0);
    Ok((summary, stats.ok_or_else(missing_stats)?))
}

/// The error of a backend that did not return the statistics a [`Pass::WithStats`] asked for.
pub(crate) fn missing_stats() -> crate::foundation::error::Error {
    crate::foundation::error::Error::Numerical("internal: the backend returned no M-step statistics".into())
}

/// What every backend implements. See the module documentation for shapes and semantics.
pub trait Backend: Sync {
    /// Data resident on the device for one fit.
    type Data: Send + Sync;
    /// A responsibility buffer (n × K) resident on the device.
    type Resp: Send + Sync;

    /// A short description for logs and reports (e.g. `cpu (2 threads)`).
    fn describe(&self) -> String;

    /// Uploads the rows once per fit.
    fn upload(&self, data: &MixtureData) -> Result<Self::Data>;

    /// Allocates a responsibility buffer for K classes.
    fn alloc_resp(&self, data: &Self::Data, k: usize) -> Result<Self::Resp>;

    /// Overwrites the responsibilities (n × K, input row order) — used by initialisation.
    fn set_resp(&self, data: &Self::Data, resp: &mut Self::Resp, values: &[f64]) -> Result<()>;

    /// The E-step of every model in `models` in one pass over the data (the fits of a K sweep
    /// run in lockstep): responsibilities and row log-likelihoods into each model's `resp`, and,
    /// for [`Pass::WithStats`], the [`SuffStats`] of those responsibilities about the means in
    /// its params (the statistics of the M-step that follows), one result per model in order.
    /// Backends share the per-row work (reading rows, building features) across models.
    fn e_step(
        &self,
        data: &Self::Data,
        models: &mut [(&KernelParams, &mut Self::Resp)],
        pass: Pass,
    ) -> Result<Vec<(EStepSummary, Option<SuffStats>)>>;

    /// M-step statistics from the responsibilities in `resp`, about the means in `params`.
    fn m_stats(&self, data: &Self::Data, params: &KernelParams, resp: &Self::Resp) -> Result<SuffStats>;

    /// Reads responsibilities and row log-likelihoods back in input row order.
    fn read_posteriors(&self, data: &Self::Data, resp: &Self::Resp) -> Result<Posteriors>;

    /// The text vectors where this backend computes, for the PCA's Gram matrix and projection
    /// ([`Vectors::gram`], [`Vectors::project`] run where the vectors live): the CPU keeps host
    /// vectors on the host, a GPU uploads them once; vectors already resident stay put.
    fn place(&self, vectors: Vectors) -> Result<Vectors>;
}
