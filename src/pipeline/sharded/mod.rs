//! A fit over shards: the whole pipeline for a table split across workers that keep their rows
//! where they compute (a Ray actor per shard, or [`LocalTransport`] in this process).
//!
//! The driver sends each step's request to every shard and merges the answers *in shard order*,
//! so the result never depends on which worker answered first:
//!
//! 1. **Summary** — each shard summarizes its rows ([`TableSummary`](crate::featurize::schema::TableSummary): level counts, moments and
//!    tie candidates of every metric, the Gram matrix of its text vectors).
//! 2. **Ties** — each shard counts the merged summary's tie candidates; the driver finishes the
//!    [`Schema`] exactly as one machine does ([`Schema::finish`]).
//! 3. **Prepare** — each shard applies the schema and reports its rows and missing-value
//!    patterns; **Patterns** — the union of the patterns, which every shard re-indexes its rows
//!    into before it uploads them to its backend once.
//! 4. **Sample** — each shard sends the rows of a seeded sample: a row is in it when a hash of
//!    its *global* index and the seed says so, so the sample is the same whatever the split.
//!    The driver runs the ordinary sweep ([`fit_sweep`]: screened starts, restarts,
//!    split-and-merge, the degenerate rule) on it.
//! 5. **E-step** — the best restart of every K is refitted on all rows by EM over the shards
//!    ([`run_em`]: kernel parameters out, additive statistics back, the M-step here), and K is
//!    chosen by the criterion on all rows. When the sample is the whole table, the sweep *is* the
//!    fit and step 5 is skipped.
//! 6. **Posteriors / Assign** — each shard scores its rows with the final model, returning them
//!    or writing its part of the assignments (Parquet) itself.
//!
//! Requests and answers are bytes ([`crate::foundation::wire`] for the per-iteration and row
//! messages, JSON for the rest), so a [`Transport`] can carry them between processes; the
//! [`LocalTransport`] runs the very same bytes through in-process workers and is the reference a
//! distributed fit is tested against. Requests that change a worker's state are marked, so a
//! transport can replay them to a worker that was restarted after a fault.
//!
//! Here: the driver ([`fit_sharded`], [`posteriors`], [`write_assignments`], [`explain`]) and the
//! [`Transport`]s; `worker`: a shard's [`Worker`]; `messages`: the requests and answers as bytes.

mod messages;
mod worker;

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use self::messages::Assigned;
use self::messages::{
    Control, Prepared, ShardExplanation, ShardSummary, concat, decode_posteriors, decode_rows, decode_stats,
    encode_kernel_params, from_json, json_message,
};
pub use self::worker::{EmbeddedParts, Part, Worker, embed_parts};
use super::fit_summary;
use crate::backend::{Backend, EStepSummary, KernelParams, MixtureData, Posteriors, SuffStats};
use crate::data::Table;
use crate::explain::{Clusters, ExplainOptions, Fitted, RowStats, explain_with};
use crate::featurize::schema::{Schema, TieAnswer};
use crate::foundation::error::{Error, Result};
use crate::mixture::em::{FitConfig, Progress, Sweep, degeneracies, fit_sweep};
use crate::mixture::shards::{ShardedRows, Shards, run_em, union_patterns};
use crate::mixture::{Criteria, n_params};
use crate::model::ModelFile;

/// Rows the driver gathers for the sweep unless told otherwise.
pub const SAMPLE_ROWS: usize = 200_000;

/// Carries requests to the shards and their answers back.
pub trait Transport {
    /// Number of shards.
    fn shards(&self) -> usize;
    /// Sends `requests[i]` to shard `i` and returns the answers in shard order. `keeps_state`:
    /// the request changes the shard's state, so a worker restarted later must be sent it again
    /// (with the other such requests, in order) before it can answer.
    fn call(&mut self, requests: Vec<Vec<u8>>, keeps_state: bool) -> Result<Vec<Vec<u8>>>;
}

/// Workers in this process: the reference a distributed transport is tested against.
#[derive(Debug)]
pub struct LocalTransport<B: Backend> {
    pub workers: Vec<Worker<B>>,
}

impl<B: Backend> Transport for LocalTransport<B> {
    fn shards(&self) -> usize {
        self.workers.len()
    }
    fn call(&mut self, requests: Vec<Vec<u8>>, _keeps_state: bool) -> Result<Vec<Vec<u8>>> {
        self.workers.iter_mut().zip(&requests).map(|(w, r)| w.handle(r)).collect()
    }
}

/// What a fit over shards needs besides the shards.
#[derive(Debug, Clone)]
pub struct ShardedJob {
    pub pca_dims: usize,
    pub config: FitConfig,
    /// Rows gathered on the driver for the sweep (every row when the table has no more).
    pub sample_rows: usize,
}

/// What the per-iteration exchange cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    /// E-steps run over the shards (each one request to every shard).
    pub iterations: usize,
    /// Bytes of the E-step requests, over every shard.
    pub bytes_sent: u64,
    /// Bytes of the shards' statistics.
    pub bytes_received: u64,
    /// Seconds spent waiting for the shards' answers.
    pub wait_seconds: f64,
    /// Seconds the driver spent itself in the refits: kernel parameters, encoding, decoding,
    /// merging, M-step.
    pub driver_seconds: f64,
}

/// The refit of one K on all rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refit {
    pub k: usize,
    /// The restart of the sample's sweep it started from.
    pub restart: usize,
    pub loglik: f64,
    pub criteria: Criteria,
    pub iterations: usize,
    pub converged: bool,
    /// Why the refitted model is degenerate (empty when it is not; then it is not selected).
    pub degenerate: Vec<String>,
}

/// A finished fit over shards.
#[derive(Debug)]
pub struct ShardedFit {
    pub model: ModelFile,
    /// The sweep on the sample (its runs are `selection.csv`).
    pub sweep: Sweep,
    /// The refit of every K on all rows (empty when the sample was the whole table).
    pub refits: Vec<Refit>,
    /// Rows of each shard, in shard order.
    pub shard_rows: Vec<usize>,
    /// The sample the sweep ran on (the schema's rows), and the share of rows drawn into it.
    pub sample: MixtureData,
    pub sample_rate: f64,
    pub warnings: Vec<String>,
    pub traffic: Traffic,
}

impl ShardedFit {
    /// The global index of each shard's first row.
    pub fn first_rows(&self) -> Vec<usize> {
        self.shard_rows.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect()
    }
}

/// Sends `request` to every shard.
fn broadcast(t: &mut dyn Transport, request: Vec<u8>, keeps_state: bool) -> Result<Vec<Vec<u8>>> {
    let n = t.shards();
    t.call(vec![request; n], keeps_state)
}

/// [`Shards`] over a transport, counting what the exchange costs.
struct Remote<'t> {
    transport: &'t mut dyn Transport,
    rows: ShardedRows,
    traffic: Traffic,
}

impl Shards for Remote<'_> {
    fn rows(&self) -> &ShardedRows {
        &self.rows
    }
    fn e_step(&mut self, params: &KernelParams) -> Result<Vec<(EStepSummary, SuffStats)>> {
        let request = encode_kernel_params(params);
        self.traffic.bytes_sent += (request.len() * self.transport.shards()) as u64;
        let waited = Instant::now();
        let answers = broadcast(self.transport, request, false)?;
        self.traffic.wait_seconds += waited.elapsed().as_secs_f64();
        self.traffic.bytes_received += answers.iter().map(|a| a.len() as u64).sum::<u64>();
        self.traffic.iterations += 1;
        answers.iter().map(|a| decode_stats(a)).collect()
    }
}

/// Fits the model over the shards `transport` reaches (see the module documentation); the
/// sweep on the sample runs on `backend`. Errors of a shard (a bad row, a wrong column) stop the
/// fit with the shard's message.
pub fn fit_sharded<B: Backend>(
    transport: &mut dyn Transport,
    backend: &B,
    job: &ShardedJob,
    progress: &dyn Progress,
) -> Result<ShardedFit> {
    let started = Instant::now();
    if transport.shards() == 0 {
        return Err(Error::config("a fit over shards needs at least one shard"));
    }
    if job.sample_rows == 0 {
        return Err(Error::config("sample_rows is 0: the sweep needs a sample of at least a few thousand rows"));
    }
    // 1-2: the schema from the shards' merged summaries.
    let answers = broadcast(transport, json_message(&Control::Summary), true)?;
    let mut summaries = answers.iter().map(|a| from_json::<ShardSummary>(a));
    let first = summaries.next().expect("one shard at least")?;
    let (mut summary, embedder) = (first.summary, first.embedder);
    let mut warnings: Vec<String> = first.notes;
    for s in summaries {
        let s = s?;
        summary = summary.merge(&s.summary)?;
        warnings.extend(s.notes.into_iter().filter(|w| !warnings.contains(w)).collect::<Vec<_>>());
    }
    let ties = broadcast(transport, json_message(&Control::Ties(summary.tie_query())), false)?
        .iter()
        .map(|a| from_json::<TieAnswer>(a))
        .reduce(|a, b| Ok(a?.merge(&b?)))
        .expect("one shard at least")?;
    let (mut schema, w) = Schema::finish(&summary, &ties, job.pca_dims)?;
    warnings.extend(w);
    if let (Some(info), Some(ts)) = (embedder, schema.text.as_mut()) {
        ts.source = "embedder".into();
        ts.embedder = Some(info);
    }
    // 3: every shard's rows under the schema, on one pattern table.
    let prepared = broadcast(transport, json_message(&Control::Prepare(Box::new(schema.clone()))), true)?
        .iter()
        .map(|a| from_json::<Prepared>(a))
        .collect::<Result<Vec<_>>>()?;
    for p in &prepared {
        warnings.extend(p.warnings.iter().cloned());
    }
    let shard_rows: Vec<usize> = prepared.iter().map(|p| p.rows).collect();
    let n: usize = shard_rows.iter().sum();
    job.config.check(n)?;
    let patterns = union_patterns(prepared.iter().map(|p| p.patterns.as_slice()));
    broadcast(transport, json_message(&Control::Patterns(patterns.clone())), true)?;
    let layout = MixtureData { patterns: patterns.clone(), ..schema.layout() };
    // 4: the sweep on the seeded sample.
    let rate = if n <= job.sample_rows { 1.0 } else { job.sample_rows as f64 / n as f64 };
    let mut first_row = 0;
    let requests = shard_rows
        .iter()
        .map(|&rows| {
            let r = json_message(&Control::Sample { first_row, rate, seed: job.config.seed });
            first_row += rows;
            r
        })
        .collect();
    let sample =
        transport.call(requests, false)?.iter().map(|a| decode_rows(a, &layout)).collect::<Result<Vec<_>>>()?;
    let sample = concat(sample, layout);
    if sample.n < job.config.k_max {
        return Err(Error::config(format!(
            "the sweep's sample drew {} of the {n} rows (sample_rows = {}), fewer than K = {}; raise sample_rows",
            sample.n, job.sample_rows, job.config.k_max
        )));
    }
    progress.data_warnings(&warnings);
    let sweep = fit_sweep(backend, &sample, &job.config, progress)?;
    for r in &sweep.runs {
        warnings.extend(r.warnings.iter().cloned());
    }
    warnings.extend(sweep.selection_warnings((job.config.k_min, job.config.k_max)));
    let mut fit = fit_summary(&sweep, n, &job.config, 0.0, backend.describe());
    let mut params = sweep.params.clone();
    let mut refits = Vec::new();
    let jacobian: f64 = prepared.iter().map(|p| p.log_jacobian).sum();
    let rows = ShardedRows { n, patterns, log_jacobian: jacobian };
    let mut remote = Remote { transport, rows, traffic: Traffic::default() };
    let refitting = Instant::now();
    if sample.n < n {
        // 5: every K's best restart refitted on all rows; K chosen there.
        // What the degenerate rule reads of the rows: how many, and the coordinates' names.
        let light = MixtureData { n, p: sample.p, names: sample.names.clone(), ..MixtureData::default() };
        let mut chosen: Option<(f64, usize, crate::mixture::params::Params)> = None;
        for (ks, start) in sweep.per_k.iter().zip(&sweep.best_per_k) {
            let Some(best) = ks.best else { continue };
            progress.status(&format!("refitting K={} on all {n} rows over {} shards", ks.k, remote.transport.shards()));
            let run = run_em(&mut remote, start.clone(), &job.config, progress)?;
            let np = n_params(ks.k, sample.p, &sample.n_levels, job.config.cov_type);
            let criteria = Criteria::new(run.loglik, run.entropy, np, n, ks.k);
            let degenerate = degeneracies(&run.params, &light);
            let value = criteria.get(job.config.criterion);
            if degenerate.is_empty() && chosen.as_ref().is_none_or(|c| value < c.0) {
                chosen = Some((value, refits.len(), run.params.clone()));
            }
            refits.push(Refit {
                k: ks.k,
                restart: sweep.runs[best].restart,
                loglik: run.loglik,
                criteria,
                iterations: run.iterations,
                converged: run.converged,
                degenerate,
            });
        }
        let Some((_, at, theta)) = chosen else {
            return Err(Error::Numerical(format!(
                "every K refitted on all {n} rows is degenerate ({}); fit a smaller --k range or raise --reg",
                refits.iter().flat_map(|r| r.degenerate.first()).cloned().collect::<Vec<_>>().join("; ")
            )));
        };
        let r = &refits[at];
        (fit.k, fit.restart, fit.loglik, fit.criteria, fit.iterations, fit.converged) =
            (r.k, r.restart, r.loglik, r.criteria, r.iterations, r.converged);
        fit.n_params = n_params(r.k, sample.p, &sample.n_levels, job.config.cov_type);
        fit.stability = sweep.per_k.iter().find(|s| s.k == r.k).map(|s| s.stability.clone());
        for ks in &mut fit.per_k {
            if let Some(r) = refits.iter().find(|r| r.k == ks.k) {
                (ks.loglik, ks.criteria) = (Some(r.loglik), Some(r.criteria));
                if let Some(why) = r.degenerate.first() {
                    ks.degenerate += 1;
                    ks.reason = Some(format!("refitted on all rows: {why}"));
                    (ks.loglik, ks.criteria) = (None, None);
                }
            }
        }
        params = theta;
    }
    // The driver's own time in the refits: everything but waiting for the shards.
    remote.traffic.driver_seconds = (refitting.elapsed().as_secs_f64() - remote.traffic.wait_seconds).max(0.0);
    fit.seconds = started.elapsed().as_secs_f64();
    let model = ModelFile::new(schema, params, fit);
    Ok(ShardedFit { model, sweep, refits, shard_rows, sample, sample_rate: rate, warnings, traffic: remote.traffic })
}

/// Every shard's posteriors under `model`, in shard order.
pub fn posteriors(transport: &mut dyn Transport, model: &ModelFile) -> Result<Vec<Posteriors>> {
    let request = json_message(&Control::Posteriors(Box::new(model.params.clone())));
    broadcast(transport, request, false)?.iter().map(|a| decode_posteriors(a)).collect()
}

/// Has every shard write its assignments under `model` to `paths[i]` (Parquet, Arrow IPC or CSV
/// by extension; rows numbered in the whole table), atomically; returns what each wrote.
pub fn write_assignments(transport: &mut dyn Transport, fit: &ShardedFit, paths: &[PathBuf]) -> Result<Vec<Assigned>> {
    if paths.len() != transport.shards() {
        return Err(Error::config(format!("{} assignment paths for {} shards", paths.len(), transport.shards())));
    }
    let requests = paths
        .iter()
        .zip(fit.first_rows())
        .map(|(path, first_row)| {
            json_message(&Control::Assign { params: Box::new(fit.model.params.clone()), path: path.clone(), first_row })
        })
        .collect();
    transport.call(requests, false)?.iter().map(|a| from_json::<Assigned>(a)).collect()
}

/// The explanation of a fit over shards (`clusters.json`'s contents): each shard sums what the
/// explanation reads of its rows ([`RowStats`]: sizes, prototype candidates, level counts, metric
/// moments, η² sums) and sends the cells of its rows in the sample; the driver merges the sums in
/// shard order and explains the sample (scored with the model on `backend`) with them, so the
/// sizes, prototypes, profiles and discriminative power are those of every row, and the keywords,
/// maps and hierarchy those of the sample.
pub fn explain<B: Backend>(
    transport: &mut dyn Transport,
    backend: &B,
    fit: &ShardedFit,
    opts: &ExplainOptions,
) -> Result<Clusters> {
    let requests = fit
        .first_rows()
        .into_iter()
        .map(|first_row| {
            json_message(&Control::Explain {
                model: Box::new(fit.model.clone()),
                first_row,
                rate: fit.sample_rate,
                seed: fit.model.fit.seed,
                prototypes: opts.prototypes,
            })
        })
        .collect();
    let name = PathBuf::from(format!("{} shards", fit.shard_rows.len()));
    let mut merged: Option<(Table, RowStats)> = None;
    for answer in transport.call(requests, false)? {
        let a: ShardExplanation = from_json(&answer)?;
        let cells = a.cells.into_table(name.clone());
        merged = Some(match merged {
            Some((mut table, stats)) => {
                table.append(cells);
                (table, stats.merge(a.stats, opts.prototypes))
            }
            None => (cells, a.stats),
        });
    }
    let (table, stats) = merged.ok_or_else(|| Error::config("a fit over shards needs at least one shard"))?;
    let lengths = table.numeric.iter().map(|c| c.values.len()).chain(table.categorical.iter().map(|c| c.values.len()));
    if table.n_rows != fit.sample.n || lengths.into_iter().any(|l| l != fit.sample.n) {
        return Err(Error::config("internal: the shards' sample cells do not match the sample's rows"));
    }
    let post = crate::mixture::predict::posteriors(backend, &fit.sample, &fit.model.params)?;
    let fitted = Fitted { model: &fit.model, posteriors: &post, outliers: &[], data: &fit.sample, table: &table };
    explain_with(&fitted, opts, stats)
}
