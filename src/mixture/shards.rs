//! EM over rows held in shards: the worker protocol of a fit past one machine.
//!
//! Each shard keeps its rows where it computes (uploaded once) and answers every E-step with
//! additive statistics — the [`EStepSummary`] and the [`SuffStats`] of the M-step that follows —
//! for the parameters the driver sends. The driver merges the answers *in shard order* (so the
//! result never depends on which shard answered first) and runs the M-step on the host, as the
//! in-process EM does. The statistics are per missing-value pattern, so every shard indexes one
//! global pattern table ([`union_patterns`], [`MixtureData::use_patterns`]).
//!
//! [`LocalShards`] holds its shards in this process (one backend upload each); a distributed
//! front end implements [`Shards`] with one remote worker per shard.

use crate::backend::{Backend, EStepSummary, KernelParams, MixtureData, SuffStats, e_step_stats_one};
use crate::foundation::error::{Error, Result};

use super::em::{FitConfig, Progress};
use super::params::Params;

/// The missing-value patterns of several shards as one table: the complete pattern first, then
/// every other pattern in shard order and order of first appearance.
pub fn union_patterns<'a>(shards: impl IntoIterator<Item = &'a [Vec<bool>]>) -> Vec<Vec<bool>> {
    let mut out: Vec<Vec<bool>> = Vec::new();
    for patterns in shards {
        if out.is_empty()
            && let Some(first) = patterns.first()
        {
            out.push(vec![true; first.len()]);
        }
        for p in patterns {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    out
}

/// What the driver knows of the rows over every shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedRows {
    /// Rows over every shard.
    pub n: usize,
    /// The global pattern table every shard's rows index.
    pub patterns: Vec<Vec<bool>>,
    /// Σ ln |du/dv| over every shard's rows (turns ℓ of the standardized block into ℓ of the
    /// data on its own scale).
    pub log_jacobian: f64,
}

/// Rows split across shards, answering E-steps in shard order.
pub trait Shards {
    fn rows(&self) -> &ShardedRows;
    /// Each shard's E-step with the statistics of the M-step that follows, in shard order.
    fn e_step(&mut self, params: &KernelParams) -> Result<Vec<(EStepSummary, SuffStats)>>;
}

/// Shards in this process, each uploaded once to `backend`.
pub struct LocalShards<'b, B: Backend> {
    backend: &'b B,
    shards: Vec<(B::Data, B::Resp)>,
    rows: ShardedRows,
}

impl<B: Backend> std::fmt::Debug for LocalShards<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalShards").field("shards", &self.shards.len()).field("n", &self.rows.n).finish()
    }
}

impl<'b, B: Backend> LocalShards<'b, B> {
    /// Uploads `parts` (their patterns remapped to one global table) for a K-class model.
    pub fn new(backend: &'b B, mut parts: Vec<MixtureData>, k: usize) -> Result<Self> {
        let patterns = union_patterns(parts.iter().map(|d| d.patterns.as_slice()));
        let mut shards = Vec::with_capacity(parts.len());
        let (mut n, mut jacobian) = (0, 0.0);
        for part in &mut parts {
            part.use_patterns(&patterns)?;
            n += part.n;
            jacobian += part.total_log_jacobian();
            let dev = backend.upload(part)?;
            let resp = backend.alloc_resp(&dev, k)?;
            shards.push((dev, resp));
        }
        Ok(LocalShards { backend, shards, rows: ShardedRows { n, patterns, log_jacobian: jacobian } })
    }
}

impl<B: Backend> Shards for LocalShards<'_, B> {
    fn rows(&self) -> &ShardedRows {
        &self.rows
    }
    fn e_step(&mut self, params: &KernelParams) -> Result<Vec<(EStepSummary, SuffStats)>> {
        self.shards.iter_mut().map(|(dev, resp)| e_step_stats_one(self.backend, dev, params, resp)).collect()
    }
}

/// One EM run over shards.
#[derive(Debug, Clone)]
pub struct ShardedRun {
    /// The parameters of the last E-step (as the in-process EM keeps them).
    pub params: Params,
    /// ℓ on the data's own scale at `params`.
    pub loglik: f64,
    /// Σ −r ln r at `params` (ICL's entropy).
    pub entropy: f64,
    pub iterations: usize,
    pub converged: bool,
    /// ℓ + log prior(α) after each E-step.
    pub trace: Vec<f64>,
}

/// Runs EM from `start` over `shards` until the objective changes by at most `cfg.tol` per row
/// or `cfg.max_iter` E-steps: each iteration sends the kernel parameters, merges the shards'
/// statistics in shard order, and runs the M-step here. `progress` hears every iteration and may
/// cancel.
pub fn run_em(shards: &mut dyn Shards, start: Params, cfg: &FitConfig, progress: &dyn Progress) -> Result<ShardedRun> {
    let (n, jacobian) = (shards.rows().n, shards.rows().log_jacobian);
    let mut theta = start;
    let mut trace: Vec<f64> = Vec::new();
    loop {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let kp = theta.kernel_params(&shards.rows().patterns)?;
        let answers = shards.e_step(&kp)?;
        let mut merged = answers.into_iter();
        let (mut summary, mut stats) =
            merged.next().ok_or_else(|| Error::config("an EM over shards needs at least one shard"))?;
        for (s, st) in merged {
            summary = summary.merge(s);
            stats = stats.merge(&st);
        }
        let loglik = summary.loglik + jacobian;
        let objective = loglik + theta.log_prior();
        progress.iteration(theta.k, 1, trace.len() + 1, loglik);
        let converged = trace.last().is_some_and(|&prev| (objective - prev).abs() <= cfg.tol * n as f64);
        trace.push(objective);
        if converged || trace.len() >= cfg.max_iter {
            return Ok(ShardedRun {
                params: theta,
                loglik,
                entropy: summary.entropy,
                iterations: trace.len(),
                converged,
                trace,
            });
        }
        theta = theta.m_step(&stats, &shards.rows().patterns, n)?.0;
    }
}
