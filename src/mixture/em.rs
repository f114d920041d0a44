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
            return Err(Error::TooManyClasses {
                k: self.k_max,
                n: n_rows,
            });
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
}

impl Sweep {
    pub fn best_run(&self) -> &RunRecord {
        &self.runs[self.best]
    }
}

/// Parameters for the first M-step: k-means centres as the shift, identity covariances (only
/// used to fill missing coordinates), uniform weights and α.
fn initial_params(data: &MixtureData, k: usize, centers: &[f64], cfg: &FitConfig) -> Params {
    let p = data.p;
    let mut cov = vec![0.0; k * p * p];
    for kk in 0..k {
        for a in 0..p {
            cov[kk * p * p + a * p + a] = 1.0;
        }
    }
    let alpha = (0..k)
        .flat_map(|_| {
            data.n_levels
                .iter()
                .flat_map(|&l| std::iter::repeat_n(1.0 / l as f64, l))
        })
        .collect();
    Params {
        k,
        p,
        cov_type: cfg.cov_type,
        reg: cfg.reg,
        weights: vec![1.0 / k as f64; k],
        n_levels: data.n_levels.clone(),
        alpha,
        means: if p > 0 { centers.to_vec() } else { Vec::new() },
        covariances: cov,
    }
}

fn kernel_params(theta: &Params, data: &MixtureData) -> Result<KernelParams> {
    theta.kernel_params(&data.patterns).map_err(|k| {
        Error::Numerical(format!(
            "class {}: covariance is not positive definite; increase --reg or decrease --k",
            k + 1
        ))
    })
}

/// Fits one (K, restart) pair. Returns its record, final parameters and the responsibility
/// buffer of the final E-step (consistent with the returned parameters).
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

    let theta0 = initial_params(data, k, &km.centers, cfg);
    let stats = backend.m_stats(dev, &kernel_params(&theta0, data)?, &resp)?;
    let (mut theta, mut events) = theta0.m_step(&stats, &data.patterns, n)?;

    let mut trace: Vec<f64> = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    let (loglik, entropy) = loop {
        iterations += 1;
        let kp = kernel_params(&theta, data)?;
        // The statistics of the next M-step come from the same pass as this E-step.
        let (s, stats) = backend.e_step_stats(dev, &kp, &mut resp)?;
        let objective = s.loglik + theta.log_prior();
        progress.iteration(k, restart, iterations, s.loglik);
        if let Some(&prev) = trace.last() {
            if (objective - prev).abs() <= cfg.tol * n as f64 {
                converged = true;
            }
        }
        trace.push(objective);
        if converged || iterations >= cfg.max_iter {
            break (s.loglik, s.entropy);
        }
        let (next, ev) = theta.m_step(&stats, &data.patterns, n)?;
        theta = next;
        events.extend(ev);
    };

    let mut warnings = Vec::new();
    let mut empty: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            MStepEvent::Empty { class }
                if theta.weights[*class] * (n as f64) < 1e-10 * n as f64 + 1e-300 =>
            {
                Some(class + 1)
            }
            _ => None,
        })
        .collect();
    empty.sort_unstable();
    empty.dedup();
    for c in &empty {
        warnings.push(format!(
            "K={k} restart {restart}: class {c} is empty (no row has weight in it)"
        ));
    }
    if let Some(MStepEvent::RegRaised { to, .. }) = events
        .iter()
        .rev()
        .find(|e| matches!(e, MStepEvent::RegRaised { .. }))
    {
        warnings.push(format!(
            "K={k} restart {restart}: the covariance ridge was raised from {} to {to} to keep every \
             class covariance positive definite (a class collapsed onto too few rows)",
            cfg.reg
        ));
    }
    let p = data.p;
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
        loglik,
        n_params: np,
        criteria: Criteria::new(loglik, entropy, np, n, k),
        iterations,
        converged,
        seconds: t0.elapsed().as_secs_f64(),
        trace,
        empty_classes: empty,
        warnings,
    };
    Ok((record, theta, resp))
}

/// Fits every K in the configured range with `n_init` restarts each and keeps the model with
/// the lowest criterion.
pub fn fit_sweep<B: Backend>(
    backend: &B,
    data: &MixtureData,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Sweep> {
    cfg.check(data.n)?;
    let dev = backend.upload(data)?;
    let feat = InitFeatures::new(data);
    let mut runs = Vec::new();
    let mut best: Option<(f64, usize, Params, B::Resp)> = None;
    progress.sweep_started((cfg.k_max - cfg.k_min + 1) * cfg.n_init);
    for k in cfg.k_min..=cfg.k_max {
        for restart in 1..=cfg.n_init {
            progress.run_started(k, restart, cfg.n_init);
            let (record, params, resp) =
                fit_one(backend, &dev, data, &feat, k, restart, cfg, progress)?;
            progress.run_finished();
            let score = record.criteria.get(cfg.criterion);
            if best.as_ref().is_none_or(|b| score < b.0) {
                best = Some((score, runs.len(), params, resp));
            }
            runs.push(record);
        }
    }
    let (_, best, params, resp) = best.expect("at least one run");
    let posteriors = backend.read_posteriors(&dev, &resp)?;
    Ok(Sweep {
        runs,
        best,
        params,
        posteriors,
        criterion: cfg.criterion,
    })
}
