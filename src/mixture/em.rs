//! The EM driver: one fit per (K, restart), every K of the requested range, and the winner by
//! an information criterion. It talks to the data only through a [`Backend`].
//!
//! One iteration is: build [`KernelParams`] on the host (Cholesky factors, O(K p³)) → `e_step`
//! on the backend → convergence test → `m_stats` on the backend → M-step on the host.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::init::{InitFeatures, kmeans};
use super::params::{MStepEvent, Params};
use super::{CovType, Criteria, Criterion, n_params};
use crate::backend::{Backend, KernelParams, MixtureData, Posteriors};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Validated fitting options.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitConfig {
    /// Smallest and largest K, inclusive.
    pub k_min: usize,
    pub k_max: usize,
    /// Restarts per K.
    pub n_init: usize,
    /// Maximum E-steps per restart.
    pub max_iter: usize,
    /// Convergence: stop when the per-row change of the objective is below this.
    pub tol: f64,
    pub seed: u64,
    pub cov_type: CovType,
    /// Ridge added to covariance diagonals, in standardized units (every continuous column has
    /// unit variance, so 1e-6 is 1e-6 of each column's variance).
    pub reg: f64,
    pub criterion: Criterion,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            k_min: 2,
            k_max: 8,
            n_init: 5,
            max_iter: 300,
            tol: 1e-6,
            seed: 0,
            cov_type: CovType::Full,
            reg: 1e-6,
            criterion: Criterion::Bic,
        }
    }
}

impl FitConfig {
    pub fn check(&self, n_rows: usize) -> Result<()> {
        if self.k_min == 0 || self.k_max < self.k_min {
            return Err(Error::config("--k: the range must be 1 ≤ from ≤ to"));
        }
        if self.k_max > n_rows {
            return Err(Error::TooManyClasses { k: self.k_max, n: n_rows });
        }
        if self.n_init == 0 {
            return Err(Error::config("--n-init must be at least 1"));
        }
        if self.max_iter == 0 {
            return Err(Error::config("--max-iter must be at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::config("--tol must be a finite number ≥ 0"));
        }
        if !(self.reg >= 0.0 && self.reg.is_finite()) {
            return Err(Error::config("--reg must be a finite number ≥ 0"));
        }
        Ok(())
    }
}

/// Progress reports from a sweep (the CLI draws them with indicatif).
pub trait Progress: Sync {
    fn sweep_started(&self, _total_runs: usize) {}
    fn run_started(&self, _k: usize, _restart: usize, _n_init: usize) {}
    fn iteration(&self, _k: usize, _restart: usize, _iter: usize, _loglik: f64) {}
    fn run_finished(&self) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// One line of `selection.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub k: usize,
    /// 1-based restart number.
    pub restart: usize,
    pub loglik: f64,
    pub n_params: usize,
    pub criteria: Criteria,
    /// Number of E-steps.
    pub iterations: usize,
    pub converged: bool,
    pub seconds: f64,
    /// Objective ℓ + log prior(α) after each E-step (non-decreasing for exact EM).
    pub trace: Vec<f64>,
    /// 1-based classes that ended with (almost) no weight.
    pub empty_classes: Vec<usize>,
    pub warnings: Vec<String>,
}

/// The outcome of a whole sweep.
#[derive(Debug)]
pub struct Sweep {
    pub runs: Vec<RunRecord>,
    /// Index into `runs` of the winner.
    pub best: usize,
    pub params: Params,
    pub posteriors: Posteriors,
    pub criterion: Criterion,
    /// The best restart's parameters for every K of the range, in order (`segmix compare`
    /// scores each K).
    pub best_per_k: Vec<Params>,
}

impl Sweep {
    pub fn best_run(&self) -> &RunRecord {
        &self.runs[self.best]
    }
}

/// Memory for the responsibilities of fits that run in lockstep (n × ΣK × 8 bytes).
const LOCKSTEP_BYTES: usize = 1 << 30;

/// A fit in progress.
pub(crate) struct Run<R> {
    k: usize,
    restart: usize,
    pub(crate) theta: Params,
    pub(crate) resp: R,
    trace: Vec<f64>,
    events: Vec<MStepEvent>,
    iterations: usize,
    converged: bool,
    done: bool,
    /// Time attributed to this fit: its initialisation, its M-steps and its share (K / ΣK) of
    /// every batched pass.
    seconds: f64,
    loglik: f64,
    entropy: f64,
}

/// k-means++ initialisation and the first M-step from its hard labels.
pub(crate) fn start_run<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    feat: &InitFeatures,
    k: usize,
    restart: usize,
    cfg: &FitConfig,
) -> Result<Run<B::Resp>> {
    let t0 = Instant::now();
    let n = data.n;
    let mut rng = Rng::derive(cfg.seed, k as u64, restart as u64);
    let km = kmeans(feat, k, &mut rng);
    let mut hard = vec![0.0; n * k];
    for (i, &c) in km.labels.iter().enumerate() {
        hard[i * k + c as usize] = 1.0;
    }
    let mut resp = backend.alloc_resp(dev, k)?;
    backend.set_resp(dev, &mut resp, &hard)?;
    drop(hard);
    let theta0 = Params::initial(data, k, &km.centers, cfg.cov_type, cfg.reg);
    let stats = backend.m_stats(dev, &theta0.kernel_params(&data.patterns)?, &resp)?;
    let (theta, events) = theta0.m_step(&stats, &data.patterns, n)?;
    Ok(Run {
        k,
        restart,
        theta,
        resp,
        trace: Vec::new(),
        events,
        iterations: 0,
        converged: false,
        done: false,
        seconds: t0.elapsed().as_secs_f64(),
        loglik: f64::NEG_INFINITY,
        entropy: 0.0,
    })
}

/// Fits the given (K, restart) pairs in lockstep: each iteration is one batched pass over the
/// data for every fit that has not converged. Returns, in order, each fit's record, final
/// parameters and the responsibilities of its final E-step (consistent with the parameters).
pub fn fit_runs<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    feat: &InitFeatures,
    pairs: &[(usize, usize)],
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Vec<(RunRecord, Params, B::Resp)>> {
    let n = data.n;
    let mut runs = Vec::with_capacity(pairs.len());
    for &(k, restart) in pairs {
        progress.run_started(k, restart, cfg.n_init);
        runs.push(start_run(backend, dev, data, feat, k, restart, cfg)?);
    }
    loop {
        let active: Vec<&mut Run<B::Resp>> = runs.iter_mut().filter(|r| !r.done).collect();
        if active.is_empty() {
            break;
        }
        let kps = active.iter().map(|r| r.theta.kernel_params(&data.patterns)).collect::<Result<Vec<_>>>()?;
        let total_k: usize = active.iter().map(|r| r.k).sum();
        let t = Instant::now();
        let mut active = active;
        // The statistics of the next M-step come from the same pass as this E-step.
        let results = {
            let mut models: Vec<(&KernelParams, &mut B::Resp)> =
                kps.iter().zip(active.iter_mut()).map(|(kp, r)| (kp, &mut r.resp)).collect();
            backend.e_step_stats_batch(dev, &mut models)?
        };
        let pass = t.elapsed().as_secs_f64();
        for (run, (s, stats)) in active.into_iter().zip(results) {
            run.seconds += pass * run.k as f64 / total_k as f64;
            run.iterations += 1;
            let objective = s.loglik + run.theta.log_prior();
            progress.iteration(run.k, run.restart, run.iterations, s.loglik);
            if let Some(&prev) = run.trace.last() {
                if (objective - prev).abs() <= cfg.tol * n as f64 {
                    run.converged = true;
                }
            }
            run.trace.push(objective);
            if run.converged || run.iterations >= cfg.max_iter {
                run.done = true;
                run.loglik = s.loglik;
                run.entropy = s.entropy;
                progress.run_finished();
                continue;
            }
            let t = Instant::now();
            let (next, ev) = run.theta.m_step(&stats, &data.patterns, n)?;
            run.theta = next;
            run.events.extend(ev);
            run.seconds += t.elapsed().as_secs_f64();
        }
    }
    Ok(runs.into_iter().map(|run| finish(run, data, cfg)).collect())
}

/// Turns a finished fit into its record (criteria, warnings).
fn finish<R>(run: Run<R>, data: &MixtureData, cfg: &FitConfig) -> (RunRecord, Params, R) {
    let (n, p, k, restart) = (data.n, data.p, run.k, run.restart);
    let theta = run.theta;
    let mut warnings = Vec::new();
    let mut empty: Vec<usize> = run
        .events
        .iter()
        .filter_map(|e| match e {
            MStepEvent::Empty { class } if theta.weights[*class] * (n as f64) < 1e-10 * n as f64 + 1e-300 => {
                Some(class + 1)
            }
            _ => None,
        })
        .collect();
    empty.sort_unstable();
    empty.dedup();
    for c in &empty {
        warnings.push(format!("K={k} restart {restart}: class {c} is empty (no row has weight in it)"));
    }
    if let Some(MStepEvent::RegRaised { to, .. }) =
        run.events.iter().rev().find(|e| matches!(e, MStepEvent::RegRaised { .. }))
    {
        warnings.push(format!(
            "K={k} restart {restart}: the covariance ridge was raised from {} to {to} to keep every \
             class covariance positive definite (a class collapsed onto too few rows)",
            cfg.reg
        ));
    }
    if p > 0 && theta.cov_type != CovType::Tied {
        for kk in 0..k {
            let mass = theta.weights[kk] * n as f64;
            if mass >= 1e-10 * n as f64 && mass < (p + 1) as f64 {
                warnings.push(format!(
                    "K={k} restart {restart}: class {} holds {mass:.1} rows for {p} continuous dimensions; \
                     its covariance is mostly the ridge (collapsed class)",
                    kk + 1
                ));
            }
        }
    }
    let np = n_params(k, p, &data.n_levels, cfg.cov_type);
    let record = RunRecord {
        k,
        restart,
        loglik: run.loglik,
        n_params: np,
        criteria: Criteria::new(run.loglik, run.entropy, np, n, k),
        iterations: run.iterations,
        converged: run.converged,
        seconds: run.seconds,
        trace: run.trace,
        empty_classes: empty,
        warnings,
    };
    (record, theta, run.resp)
}

/// Fits one (K, restart) pair.
pub fn fit_one<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    feat: &InitFeatures,
    k: usize,
    restart: usize,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<(RunRecord, Params, B::Resp)> {
    Ok(fit_runs(backend, dev, data, feat, &[(k, restart)], cfg, progress)?.remove(0))
}

/// Fits every K in the configured range with `n_init` restarts each and keeps the model with
/// the lowest criterion. Fits run in lockstep batches (as many as fit [`LOCKSTEP_BYTES`] of
/// responsibilities), sharing every pass over the data.
pub fn fit_sweep<B: Backend>(
    backend: &B,
    data: &MixtureData,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Sweep> {
    cfg.check(data.n)?;
    let dev = backend.upload(data)?;
    let feat = InitFeatures::new(data);
    let pairs: Vec<(usize, usize)> =
        (cfg.k_min..=cfg.k_max).flat_map(|k| (1..=cfg.n_init).map(move |r| (k, r))).collect();
    let mut batches: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
    let mut cols = 0;
    for &(k, r) in &pairs {
        if cols > 0 && (cols + k) * data.n * 8 > LOCKSTEP_BYTES {
            batches.push(Vec::new());
            cols = 0;
        }
        batches.last_mut().expect("a batch").push((k, r));
        cols += k;
    }
    let mut runs = Vec::new();
    let mut best: Option<(f64, usize, Params)> = None;
    let mut per_k: Vec<Option<(f64, Params)>> = vec![None; cfg.k_max - cfg.k_min + 1];
    progress.sweep_started(pairs.len());
    for batch in &batches {
        for (record, params, _resp) in fit_runs(backend, &dev, data, &feat, batch, cfg, progress)? {
            let score = record.criteria.get(cfg.criterion);
            let slot = &mut per_k[record.k - cfg.k_min];
            if slot.as_ref().is_none_or(|b| score < b.0) {
                *slot = Some((score, params.clone()));
            }
            if best.as_ref().is_none_or(|b| score < b.0) {
                best = Some((score, runs.len(), params));
            }
            runs.push(record);
        }
    }
    let (_, best, params) = best.expect("at least one run");
    // The winner's posteriors come from the same single-model E-step `predict` runs, so a model
    // scores its training rows exactly as `assignments.csv` says.
    let posteriors = super::predict::posteriors_resident(backend, &dev, data, &params)?;
    let best_per_k = per_k.into_iter().map(|b| b.expect("every K was fitted").1).collect();
    Ok(Sweep { runs, best, params, posteriors, criterion: cfg.criterion, best_per_k })
}
