//! The EM driver: one fit per (K, restart), every K of the requested range, and the winner by
//! an information criterion. It talks to the data only through a [`Backend`].
//!
//! One iteration is: build [`KernelParams`] on the host (Cholesky factors, O(K p³)) → `e_step`
//! on the backend → convergence test → `m_stats` on the backend → M-step on the host.
//!
//! ## Starts: screen many, finish the best ("small EM", emEM)
//! Each K is fitted in two phases. First a screen: many diverse starts
//! ([`super::init::StartSpaces`]: k-means++ in several spaces of the continuous block and the
//! scaled one-hot categoricals, uniformly random partitions, random
//! responsibilities on small tables (from `SOFT_START_ITERS` screen iterations), and the best
//! K − 1 fit with each of its classes split in two), each run for [`SCREEN_ITERS`] EM iterations
//! in lockstep or until its objective changes by at most `SCREEN_TOL` per row (on small
//! tables, where an iteration costs little beside `SCREEN_BUDGET`, more starts for longer: up
//! to `SCREEN_MAX` run to convergence). Starts that have already collapsed rank last. Tables
//! over [`SCREEN_SAMPLE`] rows screen on a seeded sample of that size. Then the `n_init` starts
//! with the highest objective run on to convergence; those are the restarts `selection.csv`
//! lists. A restart that ends degenerate is replaced by the next best screened start (at most
//! `n_init` replacements per K), so one collapse costs a restart, not the whole K. Every start
//! is seeded by (seed, K, start index), so a fit is reproducible at any thread count; the
//! screen's cost is reported as `Sweep::screen_iterations`.
//!
//! ## Split and merge
//! Then the best restart is refined by split-and-merge moves (SMEM, Ueda et al. 2000; see
//! `SplitMerge::refine`): its two most overlapping classes merge and a wide class splits, K
//! stays the same, and the best of the moves, screened like starts, runs to convergence. A move
//! that beats the best restart is kept as one more restart (`merge i+j split c` in
//! `selection.csv`) and the next round starts from it. This is what finds the best optima at
//! large K on small tables, where restarts alone leave them to chance.
//!
//! ## Degenerate fits
//! A fit is *degenerate* when a class holds fewer effective rows than it has free covariance
//! directions (p + 1 for full covariances, 2 for diag/spherical, 1 for tied) or when a class
//! covariance is held up by the ridge: its smallest eigenvalue is at most [`RIDGE_DOMINATED`] ×
//! the ridge (the data's own variance along some direction is next to zero, so its likelihood
//! is a spike). Such fits are kept in `selection.csv`, flagged, and never selected; a K whose
//! every restart is degenerate has no criterion value, as in mclust.
//!
//! ## Scale
//! Log-likelihoods and criteria are on the data's own scale: the kernels work on standardized
//! coordinates and [`MixtureData::log_jacobian`] is added back, so on a numeric table they equal
//! mclust's and scikit-learn's at the same solution.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::init::{Assignment, InitFeatures, Start, StartSpaces, kmeans};
use super::params::{MStepEvent, Params};
use super::{CovType, Criteria, Criterion, n_params};
use crate::backend::{Backend, KernelParams, MixtureData, Pass, Posteriors, missing_stats};
use crate::foundation::error::{Error, Result};
use crate::foundation::linalg;
use crate::foundation::metrics::adjusted_rand_index;
use crate::foundation::rng::Rng;

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

/// The screen stops a start once the per-row change of its objective is at most this (or
/// `--tol`, if looser): close enough to rank starts, far cheaper than full convergence.
const SCREEN_TOL: f64 = 1e-5;
/// EM iterations each screened start runs before the best `n_init` are chosen.
pub const SCREEN_ITERS: usize = 20;
/// Screened starts per restart asked for (at least [`SCREEN_MIN`] per K), besides the splits of
/// the K − 1 fit.
const SCREEN_PER_RESTART: usize = 4;
const SCREEN_MIN: usize = 8;
/// The fixed cost of one EM iteration of one model (parameter layout, M-step, dispatch), in the
/// multiply-adds of [`screen_size`]'s cost model: about 50 µs on one core.
const ITERATION_OVERHEAD: usize = 50_000;
/// Work (multiply-adds, see [`screen_size`]) the screen of one K may spend beyond its default
/// size: about two seconds on one core by that cost model, under a second in practice (a
/// lockstep batch shares the fixed cost). Only small tables grow their screen: on iris every K
/// screens 25–35 starts to convergence, enough that the best restart matches or beats
/// scikit-learn's and StepMix's at every K; half that budget missed one.
const SCREEN_BUDGET: usize = 600_000_000;
/// Tables with more rows screen their starts on a seeded sample of this many.
pub const SCREEN_SAMPLE: usize = 20_000;
/// Screens that run each start at least this many iterations (small tables) also draw
/// soft random starts, which need that long to break their symmetry.
const SOFT_START_ITERS: usize = 100;
/// Most starts screened per K (small tables, where every start can run to convergence).
const SCREEN_MAX: usize = 200;
/// A class covariance whose smallest eigenvalue is at most this multiple of the ridge is held up
/// by the ridge (degenerate).
pub const RIDGE_DOMINATED: f64 = 10.0;

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
    /// Messages about the data (few-valued columns, constant columns, unknown levels, ...),
    /// reported once the data is prepared and before any fit starts, so a user can stop a long
    /// sweep early. They are also in the fit's warnings, first.
    fn data_warnings(&self, _warnings: &[String]) {}
    /// A line saying what the run is doing that a user should see before it happens (for
    /// example which LLM endpoint is asked to name the classes).
    fn status(&self, _line: &str) {}
    fn sweep_started(&self, _total_runs: usize) {}
    fn run_started(&self, _k: usize, _restart: usize, _n_init: usize) {}
    fn iteration(&self, _k: usize, _restart: usize, _iter: usize, _loglik: f64) {}
    fn run_finished(&self) {}
    /// Whether the caller wants the run stopped (Ctrl-C in a notebook). Asked before every EM
    /// iteration; `true` ends the fit with [`Error::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
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
    /// How the restart started (`kmeans++`, `joint kmeans++`, `random`, `split 3`, ...).
    pub start: String,
    /// Log-likelihood on the data's own scale.
    pub loglik: f64,
    pub n_params: usize,
    pub criteria: Criteria,
    /// Number of E-steps, the screen's included (when the screen ran on every row; a screen on a
    /// sample of a big table is not counted here but in `Sweep::screen_iterations`).
    pub iterations: usize,
    pub converged: bool,
    pub seconds: f64,
    /// Objective ℓ + log prior(α) after each E-step (non-decreasing for exact EM).
    pub trace: Vec<f64>,
    /// 1-based classes that ended with (almost) no weight.
    pub empty_classes: Vec<usize>,
    /// Why the fit is degenerate (one reason per class); empty when it is not. A degenerate
    /// fit is never selected.
    pub degenerate: Vec<String>,
    pub warnings: Vec<String>,
}

impl RunRecord {
    /// Whether the fit can be selected.
    pub fn eligible(&self) -> bool {
        self.degenerate.is_empty()
    }
}

/// How much the restarts of one K agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// Restarts (besides the best) whose log-likelihood is within [`Stability::TOLERANCE`] of
    /// the best's.
    pub near: usize,
    /// Other restarts in all.
    pub others: usize,
    /// Lowest and mean ARI between the best restart's classes and each near restart's (1 when
    /// none is near).
    pub min_ari: f64,
    pub mean_ari: f64,
}

impl Stability {
    /// Near means ℓ_best − ℓ ≤ 1e-4 · max(|ℓ_best|, n).
    pub const TOLERANCE: f64 = 1e-4;

    pub fn describe(&self) -> String {
        if self.near == 0 {
            format!("no other restart of {} came within 0.01% of its log-likelihood", self.others)
        } else {
            format!(
                "{} of {} other restarts reach its log-likelihood (within 0.01%); their classes agree with it at ARI ≥ {:.3} (mean {:.3})",
                self.near, self.others, self.min_ari, self.mean_ari
            )
        }
    }
}

/// The outcome of one K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KSummary {
    pub k: usize,
    /// Index into `Sweep::runs` of the best eligible restart by the criterion; `None` when every
    /// restart is degenerate (the K has no criterion value).
    #[serde(skip)]
    pub best: Option<usize>,
    /// That restart's log-likelihood and criteria (absent when every restart is degenerate).
    pub loglik: Option<f64>,
    pub criteria: Option<Criteria>,
    /// Restarts run to convergence (n_init, plus replacements of degenerate ones, plus the
    /// split-and-merge moves that improved the best).
    pub restarts: usize,
    /// Degenerate restarts, and the first reason given.
    pub degenerate: usize,
    pub reason: Option<String>,
    pub stability: Stability,
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
    /// Per K of the range, in order.
    pub per_k: Vec<KSummary>,
    /// The best restart's parameters for every K of the range, in order (`segmix compare`
    /// scores each K): the best eligible one, else the best degenerate one.
    pub best_per_k: Vec<Params>,
    /// Starts (and split-and-merge moves) screened and EM iterations spent screening them (the
    /// cost of the starts).
    pub screened: usize,
    pub screen_iterations: usize,
}

impl Sweep {
    pub fn best_run(&self) -> &RunRecord {
        &self.runs[self.best]
    }
    /// The summary of the selected K.
    pub fn selected(&self) -> &KSummary {
        let k = self.runs[self.best].k;
        self.per_k.iter().find(|s| s.k == k).expect("the selected K was fitted")
    }
    /// Messages about the selection a user should read: excluded K, a winner at an end of the
    /// range.
    pub fn selection_warnings(&self, k_range: (usize, usize)) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.per_k.iter().filter(|s| s.degenerate > 0) {
            let runs = s.restarts;
            let what = if s.best.is_none() {
                format!("K={}: all {runs} restarts are degenerate, so K={} has no criterion value", s.k, s.k)
            } else {
                format!("K={}: {} of {runs} restarts are degenerate and were not eligible", s.k, s.degenerate)
            };
            out.push(format!("{what} ({})", s.reason.as_deref().unwrap_or("")));
        }
        let k = self.best_run().k;
        let (lo, hi) = k_range;
        if lo < hi && k == hi {
            out.push(format!(
                "the selected K={k} is the top of the --k range {lo}..{hi}: a larger K may fit better; widen the range (e.g. --k {lo}..{})",
                hi + 3
            ));
        } else if lo < hi && k == lo && lo > 1 {
            out.push(format!(
                "the selected K={k} is the bottom of the --k range {lo}..{hi}: a smaller K may fit better; widen the range (e.g. --k {}..{hi})",
                (lo - 2).max(1)
            ));
        }
        out
    }
}

/// Memory for the responsibilities of fits that run in lockstep (n × ΣK × 8 bytes).
const LOCKSTEP_BYTES: usize = 1 << 30;

/// A fit in progress.
pub(crate) struct Run<R> {
    k: usize,
    restart: usize,
    start: String,
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

impl<R> Run<R> {
    /// The objective after the last E-step (−∞ before the first).
    fn objective(&self) -> f64 {
        self.trace.last().copied().unwrap_or(f64::NEG_INFINITY)
    }

    /// This fit's parameters as the start of a fit on other rows (`dev`): a fresh
    /// responsibility buffer, which the first E-step fills, and a fresh trace and count.
    fn moved_to<B: Backend<Resp = R>>(self, backend: &B, dev: &B::Data) -> Result<Self> {
        Ok(Run {
            resp: backend.alloc_resp(dev, self.k)?,
            trace: Vec::new(),
            iterations: 0,
            converged: false,
            done: false,
            loglik: f64::NEG_INFINITY,
            ..self
        })
    }
}

/// A fit from a start's responsibilities: the classes' weighted means of the continuous block as
/// the shift, then one M-step from the responsibilities.
fn run_from_start<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    start: &Start,
    cfg: &FitConfig,
) -> Result<Run<B::Resp>> {
    let t0 = Instant::now();
    let (n, p, k) = (data.n, data.p, start.k);
    let r0 = start.responsibilities(n);
    let mut centers = vec![0.0; k * p];
    let mut counts = vec![0.0; k];
    for (i, r) in r0.chunks_exact(k).enumerate() {
        for (c, &w) in r.iter().enumerate().filter(|(_, w)| **w > 0.0) {
            counts[c] += w;
            for (m, v) in centers[c * p..(c + 1) * p].iter_mut().zip(&data.x[i * p..(i + 1) * p]) {
                *m += w * v;
            }
        }
    }
    for (c, &cnt) in counts.iter().enumerate() {
        centers[c * p..(c + 1) * p].iter_mut().for_each(|m| *m /= f64::max(cnt, 1.0));
    }
    let mut resp = backend.alloc_resp(dev, k)?;
    backend.set_resp(dev, &mut resp, &r0)?;
    drop(r0);
    let theta0 = Params::initial(data, k, &centers, cfg.cov_type, cfg.reg);
    let stats = backend.m_stats(dev, &theta0.kernel_params(&data.patterns)?, &resp)?;
    let (theta, events) = theta0.m_step(&stats, &data.patterns, n)?;
    Ok(Run {
        k,
        restart: 0,
        start: start.name.clone(),
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

/// k-means++ initialisation (in `feat`'s space) and the first M-step from its hard labels: the
/// start of one plain fit (`segmix bench` times iterations from here).
pub(crate) fn start_run<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    feat: &InitFeatures,
    k: usize,
    restart: usize,
    cfg: &FitConfig,
) -> Result<Run<B::Resp>> {
    let mut rng = Rng::derive(cfg.seed, k as u64, restart as u64);
    let km = kmeans(feat, k, &mut rng);
    let start = Start { k, assign: Assignment::Labels(km.labels), name: "kmeans++".into() };
    let mut run = run_from_start(backend, dev, data, &start, cfg)?;
    run.restart = restart;
    Ok(run)
}

/// Runs EM on every run that is not done, in lockstep (one batched pass over the data per
/// iteration for all of them), until each has converged, reached `cfg.max_iter`, or run `pause`
/// iterations in all. The last E-step's responsibilities stay in each run's buffer.
fn advance<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    runs: &mut [Run<B::Resp>],
    pause: usize,
    tol: f64,
    cfg: &FitConfig,
    progress: &dyn Progress,
    report: bool,
) -> Result<()> {
    let n = data.n;
    let jacobian = data.total_log_jacobian();
    loop {
        let mut active: Vec<&mut Run<B::Resp>> = runs.iter_mut().filter(|r| !r.done && r.iterations < pause).collect();
        if active.is_empty() {
            return Ok(());
        }
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let kps = active.iter().map(|r| r.theta.kernel_params(&data.patterns)).collect::<Result<Vec<_>>>()?;
        let total_k: usize = active.iter().map(|r| r.k).sum();
        let t = Instant::now();
        // The statistics of the next M-step come from the same pass as this E-step.
        let results = {
            let mut models: Vec<(&KernelParams, &mut B::Resp)> =
                kps.iter().zip(active.iter_mut()).map(|(kp, r)| (kp, &mut r.resp)).collect();
            backend.e_step(dev, &mut models, Pass::WithStats)?
        };
        let pass = t.elapsed().as_secs_f64();
        for (run, (s, stats)) in active.into_iter().zip(results) {
            run.seconds += pass * run.k as f64 / total_k as f64;
            run.iterations += 1;
            let loglik = s.loglik + jacobian;
            let objective = loglik + run.theta.log_prior();
            if report {
                progress.iteration(run.k, run.restart, run.iterations, loglik);
            }
            if let Some(&prev) = run.trace.last()
                && (objective - prev).abs() <= tol * n as f64
            {
                run.converged = true;
            }
            run.trace.push(objective);
            run.loglik = loglik;
            run.entropy = s.entropy;
            if run.converged || run.iterations >= cfg.max_iter {
                run.done = true;
                if report {
                    progress.run_finished();
                }
                continue;
            }
            let t = Instant::now();
            let stats = stats.as_ref().ok_or_else(missing_stats)?;
            let (next, ev) = run.theta.m_step(stats, &data.patterns, n)?;
            run.theta = next;
            run.events.extend(ev);
            run.seconds += t.elapsed().as_secs_f64();
        }
    }
}

/// Fits the given (K, restart) pairs from plain k-means++ starts in lockstep. Returns, in order,
/// each fit's record, final parameters and the responsibilities of its final E-step.
pub fn fit_runs<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    feat: &InitFeatures,
    pairs: &[(usize, usize)],
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Vec<(RunRecord, Params, B::Resp)>> {
    let mut runs = Vec::with_capacity(pairs.len());
    for &(k, restart) in pairs {
        progress.run_started(k, restart, cfg.n_init);
        runs.push(start_run(backend, dev, data, feat, k, restart, cfg)?);
    }
    advance(backend, dev, data, &mut runs, usize::MAX, cfg.tol, cfg, progress, true)?;
    Ok(runs.into_iter().map(|run| finish(run, data, cfg)).collect())
}

/// Why a fit's parameters are degenerate, one reason per class (empty when they are not):
/// too few effective rows for its covariance, or a covariance held up by the ridge.
pub fn degeneracies(theta: &Params, data: &MixtureData) -> Vec<String> {
    let (n, p, k) = (data.n as f64, theta.p, theta.k);
    let min_rows = match (p, theta.cov_type) {
        (0, _) | (_, CovType::Tied) => 1.0,
        (_, CovType::Full) => (p + 1) as f64,
        _ => 2.0,
    };
    let mut out = Vec::new();
    for kk in 0..k {
        let rows = theta.weights[kk] * n;
        if rows < min_rows {
            out.push(format!("class {} holds {rows:.2} rows, fewer than the {min_rows} its covariance needs", kk + 1));
            continue;
        }
        if p == 0 || (theta.cov_type == CovType::Tied && kk > 0) {
            continue;
        }
        // λ_min(Σ) ≤ c ⇔ Σ − c I is not positive definite.
        let c = RIDGE_DOMINATED * theta.reg;
        let mut shifted = theta.covariance(kk).to_vec();
        (0..p).for_each(|a| shifted[a * p + a] -= c);
        if c > 0.0 && linalg::cholesky(&shifted, p).is_none() {
            out.push(format!(
                "class {} has next to no variance along {} (its covariance is held up by the ridge)",
                kk + 1,
                flattest(theta.covariance(kk), p).map_or("some direction".into(), |t| data.coordinate_name(t))
            ));
        }
    }
    out
}

/// The coordinate with the smallest conditional variance 1 / (Σ⁻¹)_tt given the others.
fn flattest(sigma: &[f64], p: usize) -> Option<usize> {
    // Σ⁻¹ = U Uᵀ, so (Σ⁻¹)_tt is the squared norm of row t of the precision Cholesky factor U.
    let (u, _) = linalg::precision_cholesky(sigma, p)?;
    u.chunks_exact(p)
        .map(|row| row.iter().map(|v| v * v).sum::<f64>())
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|x| x.0)
}

/// Turns a finished fit into its record (criteria, warnings, degeneracy).
fn finish<R>(run: Run<R>, data: &MixtureData, cfg: &FitConfig) -> (RunRecord, Params, R) {
    let (n, k, restart) = (data.n, run.k, run.restart);
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
    if let Some(MStepEvent::RegRaised { to, .. }) =
        run.events.iter().rev().find(|e| matches!(e, MStepEvent::RegRaised { .. }))
    {
        warnings.push(format!(
            "K={k} restart {restart}: the covariance ridge was raised from {} to {to} to keep every \
             class covariance positive definite (a class collapsed onto too few rows)",
            cfg.reg
        ));
    }
    let degenerate = degeneracies(&theta, data);
    let np = n_params(k, data.p, &data.n_levels, cfg.cov_type);
    let record = RunRecord {
        k,
        restart,
        start: run.start,
        loglik: run.loglik,
        n_params: np,
        criteria: Criteria::new(run.loglik, run.entropy, np, n, k),
        iterations: run.iterations,
        converged: run.converged,
        seconds: run.seconds,
        trace: run.trace,
        empty_classes: empty,
        degenerate,
        warnings,
    };
    (record, theta, run.resp)
}

/// Fits one (K, restart) pair from a plain k-means++ start.
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

/// How many starts to screen at K, and for how many iterations. By default max(8, 4 n_init)
/// starts for [`SCREEN_ITERS`] iterations. When the work of one EM iteration, n·K·(p² + p + J)
/// multiply-adds, is small beside `budget`, the screen grows: first longer, then every start
/// runs to convergence, then up to [`SCREEN_MAX`] starts do.
fn screen_size(data: &MixtureData, k: usize, cfg: &FitConfig, budget: usize) -> (usize, usize) {
    let base = (SCREEN_PER_RESTART * cfg.n_init).max(SCREEN_MIN);
    let iterations = budget / iteration_cost(data, k);
    if iterations >= base * cfg.max_iter {
        ((iterations / cfg.max_iter).min(SCREEN_MAX), cfg.max_iter)
    } else {
        (base, (iterations / base).clamp(SCREEN_ITERS, cfg.max_iter))
    }
}

/// The work of one EM iteration of one K-class model on `data`, in multiply-adds (the cost model
/// of [`screen_size`] and the split-and-merge budget).
fn iteration_cost(data: &MixtureData, k: usize) -> usize {
    data.n * k * (data.p * data.p + data.p + data.n_cat() + 1) + ITERATION_OVERHEAD
}

/// Screens the starts of one K and returns the best `keep` runs by objective, best first, ready
/// to be run on, and the EM iterations the screen spent.
fn screen<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    starts: Vec<Start>,
    keep: usize,
    iters: usize,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<(Vec<Run<B::Resp>>, usize)> {
    let mut kept: Vec<Run<B::Resp>> = Vec::new();
    let mut iterations = 0;
    let mut starts = starts.into_iter().peekable();
    while starts.peek().is_some() {
        // As many new starts as fit the lockstep memory beside the ones kept so far.
        let mut batch = Vec::new();
        let mut cols: usize = kept.iter().map(|r| r.k).sum();
        while let Some(s) = starts.next_if(|s| batch.is_empty() || (cols + s.k) * data.n * 8 <= LOCKSTEP_BYTES) {
            cols += s.k;
            batch.push(run_from_start(backend, dev, data, &s, cfg)?);
        }
        advance(backend, dev, data, &mut batch, iters, cfg.tol.max(SCREEN_TOL), cfg, progress, false)?;
        // A start the screen stopped at its looser tolerance is not converged yet. Its last
        // E-step is forgotten: resuming repeats it with the same parameters and tests the change
        // from the step before at --tol (comparing it with itself would stop at once).
        for run in &mut batch {
            if run.converged && cfg.tol < SCREEN_TOL && run.iterations < cfg.max_iter {
                run.converged = false;
                run.done = false;
                run.trace.pop();
                run.iterations -= 1;
            }
        }
        iterations += batch.iter().map(|r| r.iterations).sum::<usize>();
        kept.extend(batch);
        // Starts that have already collapsed go last: their objective is a spike. Then the
        // highest objective first; ties keep the start order (deterministic).
        let mut ranked: Vec<(bool, Run<B::Resp>)> =
            kept.drain(..).map(|r| (!degeneracies(&r.theta, data).is_empty(), r)).collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.objective().total_cmp(&a.1.objective())));
        kept = ranked.into_iter().map(|x| x.1).take(keep).collect();
    }
    Ok((kept, iterations))
}

/// Big tables screen their starts on a seeded sample of `SCREEN_SAMPLE` rows (its own upload);
/// the survivors' parameters then run on every row, so the screen's cost stops growing with n.
fn screening_sample(data: &MixtureData, seed: u64) -> Option<MixtureData> {
    (data.n > SCREEN_SAMPLE).then(|| {
        let mut rng = Rng::derive(seed, u64::MAX, 0);
        data.rows(&rng.sample_sorted((0..data.n).collect(), SCREEN_SAMPLE))
    })
}

/// Fits every K in the configured range (screened starts, the best `n_init` run to convergence)
/// and keeps the eligible model with the lowest criterion.
pub fn fit_sweep<B: Backend>(
    backend: &B,
    data: &MixtureData,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Sweep> {
    cfg.check(data.n)?;
    let dev = backend.upload(data)?;
    let sample = screening_sample(data, cfg.seed);
    let sdata = sample.as_ref().unwrap_or(data);
    let sdev_owned = sample.as_ref().map(|s| backend.upload(s)).transpose()?;
    let sdev = sdev_owned.as_ref().unwrap_or(&dev);
    let spaces = StartSpaces::new(sdata);
    let n_k = cfg.k_max - cfg.k_min + 1;
    progress.sweep_started(n_k * cfg.n_init);
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut per_k = Vec::with_capacity(n_k);
    let mut best_per_k = Vec::with_capacity(n_k);
    let mut best: Option<(f64, usize, Params)> = None;
    let mut previous: Option<Params> = None;
    let (mut screened, mut screen_iterations) = (0, 0);
    for k in cfg.k_min..=cfg.k_max {
        let (n_screen, screen_iters) = screen_size(sdata, k, cfg, SCREEN_BUDGET);
        let mut starts = spaces.starts(k, n_screen, cfg.seed, screen_iters >= SOFT_START_ITERS);
        if let Some(prev) = &previous {
            let post = super::predict::posteriors_resident(backend, sdev, sdata, prev)?;
            starts.extend(spaces.splits(prev, &post.labels(), prev.k, cfg.seed));
        }
        screened += starts.len();
        // The best n_init run to convergence; each that ends degenerate is replaced by the next
        // best screened start (at most n_init replacements), so a collapse costs a restart, not
        // the K.
        let (reserve, iters) = screen(backend, sdev, sdata, starts, 2 * cfg.n_init, screen_iters, cfg, progress)?;
        screen_iterations += iters;
        let mut reserve = if sample.is_some() {
            reserve.into_iter().map(|r| r.moved_to(backend, &dev)).collect::<Result<Vec<_>>>()?
        } else {
            reserve
        };
        let mut finished = run_to_convergence(backend, &dev, data, &mut reserve, k, cfg, progress)?;
        // Tables screened on a sample skip split-and-merge (see `SplitMerge`).
        if sample.is_none() {
            let rounds = SplitMerge { backend, dev: &dev, data, spaces: &spaces };
            let (moves, iters) = rounds.refine(&mut finished, k, screen_iters, cfg)?;
            screened += moves;
            screen_iterations += iters;
        }
        let first = runs.len();
        let (summary, best_k, top) = summarize(backend, &dev, data, k, &finished, first, cfg)?;
        per_k.push(summary);
        let score = |r: &RunRecord| r.criteria.get(cfg.criterion);
        if let Some(i) = best_k {
            let s = score(&finished[i].0);
            if best.as_ref().is_none_or(|b| s < b.0) {
                best = Some((s, first + i, finished[i].1.clone()));
            }
        }
        best_per_k.push(finished[top].1.clone());
        previous = Some(finished[top].1.clone());
        runs.extend(finished.into_iter().map(|f| f.0));
    }
    let Some((_, best, params)) = best else {
        let reason = per_k.iter().find_map(|s| s.reason.clone()).unwrap_or_default();
        return Err(Error::Numerical(format!(
            "every fit of K = {}..{} is degenerate (for example: {reason}); ask for fewer classes (--k), \
             raise --reg, or model few-valued numeric columns with --cat",
            cfg.k_min, cfg.k_max
        )));
    };
    // The winner's posteriors come from the same single-model E-step `predict` runs, so a model
    // scores its training rows exactly as `assignments.csv` says.
    let posteriors = super::predict::posteriors_resident(backend, &dev, data, &params)?;
    Ok(Sweep {
        runs,
        best,
        params,
        posteriors,
        criterion: cfg.criterion,
        per_k,
        best_per_k,
        screened,
        screen_iterations,
    })
}

/// A restart run to the end: its record, parameters and responsibilities.
type Finished<R> = (RunRecord, Params, R);

/// Split-and-merge moves screened per round when the screen grew (small tables); the default
/// screen of a big table affords [`SPLIT_MERGE_MIN`] per round.
const SPLIT_MERGE_MOVES: usize = 10;
const SPLIT_MERGE_MIN: usize = 4;
/// Rounds of split-and-merge at most per K (each round that improves the fit starts another).
const SPLIT_MERGE_ROUNDS: usize = 10;
/// EM iterations a move is screened for at most: it starts from a converged fit, so it is near
/// its own optimum by then; the best move then runs to convergence. (Screening moves to
/// convergence, as the starts of a small table are, cost a third more time on iris for no gain.)
const SPLIT_MERGE_ITERS: usize = 40;

/// Split-and-merge refinement of the best restart of one K (SMEM, Ueda et al. 2000), on tables
/// whose screen runs on every row (`spaces` are built on them).
///
/// Tables screened on a sample skip it: a move screened on the sample cannot be weighed against
/// the best restart, fitted on every row, without running it on every row, and that run costs
/// as much as the whole screen (a 25,000-row table: 28 s → 60 s a sweep). Their screens stay
/// at the default size, where the restarts already reach the peers' optima (README).
struct SplitMerge<'a, B: Backend> {
    backend: &'a B,
    dev: &'a B::Data,
    data: &'a MixtureData,
    spaces: &'a StartSpaces<'a>,
}

impl<B: Backend> SplitMerge<'_, B> {
    /// Rounds of: the best eligible restart's moves ([`StartSpaces::split_merges`]) screened like
    /// starts; the best one, if it already beats the best restart, run to convergence and kept
    /// as a new restart (`merge i+j split c`) when it is eligible and its objective beats the
    /// best's; the next round starts from it. Stops at the first round without a gain, after
    /// [`SPLIT_MERGE_ROUNDS`], or when the rounds' work passes [`SCREEN_BUDGET`] (the first round always runs). Small tables screen
    /// [`SPLIT_MERGE_MOVES`] moves per round for at most [`SPLIT_MERGE_ITERS`] iterations; larger
    /// ones, whose screen runs [`SCREEN_ITERS`], max(n_init, [`SPLIT_MERGE_MIN`]) for that many.
    /// Returns the moves screened and the EM iterations they took.
    ///
    /// At large K on small tables this is where the best optima come from: on banknote
    /// (200 × 6) fitted at K = 8 alone, two kept rounds take the best restart from −472.3 to
    /// −449.0, where the best of 5 scikit-learn fits is −466.9.
    fn refine(
        &self,
        finished: &mut Vec<Finished<B::Resp>>,
        k: usize,
        iters: usize,
        cfg: &FitConfig,
    ) -> Result<(usize, usize)> {
        let moves = if iters > SCREEN_ITERS { SPLIT_MERGE_MOVES } else { cfg.n_init.max(SPLIT_MERGE_MIN) };
        let iters = iters.min(SPLIT_MERGE_ITERS);
        let objective = |f: &Finished<B::Resp>| f.0.loglik + f.1.log_prior();
        // A gain smaller than the convergence tolerance is no gain.
        let min_gain = cfg.tol.max(1e-9) * self.data.n as f64;
        let (mut screened, mut iterations, mut work) = (0, 0, 0);
        for round in 0..SPLIT_MERGE_ROUNDS {
            if round > 0 && work >= SCREEN_BUDGET {
                break;
            }
            let Some(best) =
                finished.iter().filter(|f| f.0.eligible()).max_by(|a, b| objective(a).total_cmp(&objective(b)))
            else {
                break;
            };
            let (theta, from) = (best.1.clone(), objective(best));
            let post = super::predict::posteriors_resident(self.backend, self.dev, self.data, &theta)?;
            let starts = self.spaces.split_merges(&theta, &post.resp, moves, cfg.seed, round);
            if starts.is_empty() {
                break;
            }
            screened += starts.len();
            let (kept, iters) = screen(self.backend, self.dev, self.data, starts, 1, iters, cfg, &NoProgress)?;
            iterations += iters;
            work = work.saturating_add(iters.saturating_mul(iteration_cost(self.data, k)));
            let Some(mut run) = kept.into_iter().next() else { break };
            // Only a move that already beats the best restart runs on to convergence.
            if run.objective() <= from + min_gain {
                break;
            }
            let before = run.iterations;
            advance(
                self.backend,
                self.dev,
                self.data,
                std::slice::from_mut(&mut run),
                usize::MAX,
                cfg.tol,
                cfg,
                &NoProgress,
                false,
            )?;
            work = work.saturating_add((run.iterations - before).saturating_mul(iteration_cost(self.data, k)));
            run.restart = finished.len() + 1;
            let done = finish(run, self.data, cfg);
            let gain = objective(&done) - from;
            if !(done.0.eligible() && gain > min_gain) {
                break;
            }
            finished.push(done);
        }
        Ok((screened, iterations))
    }
}

/// Runs the best screened starts at K (`reserve`, best first) to convergence: `n_init` of them,
/// each that ends degenerate replaced by the next one (at most `n_init` replacements), so a
/// collapse costs a restart, not the K.
fn run_to_convergence<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    reserve: &mut Vec<Run<B::Resp>>,
    k: usize,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<Vec<Finished<B::Resp>>> {
    let mut finished: Vec<Finished<B::Resp>> = Vec::new();
    let mut wanted = cfg.n_init;
    while wanted > 0 && !reserve.is_empty() {
        let mut batch: Vec<Run<B::Resp>> = reserve.drain(..wanted.min(reserve.len())).collect();
        for (i, run) in batch.iter_mut().enumerate() {
            run.restart = finished.len() + i + 1;
            progress.run_started(k, run.restart, cfg.n_init);
            if run.done {
                progress.run_finished();
            }
        }
        advance(backend, dev, data, &mut batch, usize::MAX, cfg.tol, cfg, progress, true)?;
        finished.extend(batch.into_iter().map(|r| finish(r, data, cfg)));
        let eligible = finished.iter().filter(|f| f.0.eligible()).count();
        wanted = cfg.n_init.saturating_sub(eligible).min(2 * cfg.n_init - finished.len());
    }
    Ok(finished)
}

/// K's summary from its finished restarts (whose records start at `first` in the sweep), with
/// the best eligible restart by the criterion (none when all are degenerate) and the best
/// overall, around which stability is measured.
fn summarize<B: Backend>(
    backend: &B,
    dev: &B::Data,
    data: &MixtureData,
    k: usize,
    finished: &[Finished<B::Resp>],
    first: usize,
    cfg: &FitConfig,
) -> Result<(KSummary, Option<usize>, usize)> {
    let score = |r: &RunRecord| r.criteria.get(cfg.criterion);
    let by_score = |&a: &usize, &b: &usize| score(&finished[a].0).total_cmp(&score(&finished[b].0));
    let best_k = (0..finished.len()).filter(|&i| finished[i].0.eligible()).min_by(by_score);
    let top = match best_k {
        Some(i) => i,
        None => (0..finished.len())
            .min_by(by_score)
            .ok_or_else(|| Error::Numerical(format!("no restart at K = {k} ran (n_init must be at least 1)")))?,
    };
    let degenerate: Vec<&RunRecord> = finished.iter().map(|f| &f.0).filter(|r| !r.eligible()).collect();
    let summary = KSummary {
        k,
        best: best_k.map(|i| first + i),
        loglik: best_k.map(|i| finished[i].0.loglik),
        criteria: best_k.map(|i| finished[i].0.criteria),
        restarts: finished.len(),
        degenerate: degenerate.len(),
        reason: degenerate.first().map(|r| r.degenerate[0].clone()),
        stability: stability(&finished.iter().map(|f| f.0.loglik).collect::<Vec<_>>(), top, data.n, |r| {
            Ok(backend.read_posteriors(dev, &finished[r].2)?.labels().into_iter().map(|l| l as u32).collect())
        })?,
    };
    Ok((summary, best_k, top))
}

/// Agreement of the restarts with restart `best`: see [`Stability`]. `labels(r)` reads restart
/// r's classes back; only the best and the restarts near it are read.
fn stability(loglik: &[f64], best: usize, n: usize, labels: impl Fn(usize) -> Result<Vec<u32>>) -> Result<Stability> {
    let tol = Stability::TOLERANCE * loglik[best].abs().max(n as f64);
    let near: Vec<usize> = (0..loglik.len()).filter(|&r| r != best && loglik[best] - loglik[r] <= tol).collect();
    let reference = if near.is_empty() { Vec::new() } else { labels(best)? };
    let aris = near.iter().map(|&r| Ok(adjusted_rand_index(&reference, &labels(r)?))).collect::<Result<Vec<f64>>>()?;
    Ok(Stability {
        near: aris.len(),
        others: loglik.len() - 1,
        min_ari: aris.iter().copied().fold(1.0, f64::min),
        mean_ari: if aris.is_empty() { 1.0 } else { aris.iter().sum::<f64>() / aris.len() as f64 },
    })
}
