//! A fit over shards: the whole pipeline for a table split across workers that keep their rows
//! where they compute (a Ray actor per shard, or [`LocalTransport`] in this process).
//!
//! The driver sends each step's request to every shard and merges the answers *in shard order*,
//! so the result never depends on which worker answered first:
//!
//! 1. **Summary** — each shard summarizes its rows ([`TableSummary`]: level counts, moments and
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

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{TextEmbedder, embed_text_column, fit_summary};
use crate::backend::{Backend, EStepSummary, KernelParams, MixtureData, Posteriors, SuffStats, e_step_stats_one};
use crate::data::{CategoricalColumn, NumericColumn, Table, TextColumn};
use crate::encoders::EmbedderInfo;
use crate::explain::{Clusters, ExplainOptions, Fitted, RowStats, explain_with};
use crate::featurize::TextVectors;
use crate::featurize::schema::{Schema, SortedValues, TableSummary, TieAnswer, TieQuery, Transform};
use crate::foundation::error::{Error, Result};
use crate::foundation::wire::{Reader, Writer};
use crate::mixture::em::{FitConfig, Progress, Sweep, degeneracies, fit_sweep};
use crate::mixture::predict::posteriors_resident;
use crate::mixture::shards::{ShardedRows, Shards, run_em, union_patterns};
use crate::mixture::{Criteria, n_params};
use crate::model::ModelFile;
use crate::report::write_assignments_from;

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

/// The control requests (sent as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Control {
    Summary,
    Ties(TieQuery),
    Prepare(Box<Schema>),
    Patterns(Vec<Vec<bool>>),
    Sample { first_row: usize, rate: f64, seed: u64 },
    Posteriors(Box<crate::mixture::params::Params>),
    Assign { params: Box<crate::mixture::params::Params>, path: PathBuf, first_row: usize },
    Explain { model: Box<ModelFile>, first_row: usize, rate: f64, seed: u64, prototypes: usize },
}

const JSON: &[u8; 4] = b"JSON";
const ESTEP: &[u8; 4] = b"ESTP";
const STATS: &[u8; 4] = b"STAT";
const ROWS: &[u8; 4] = b"ROWS";
const POST: &[u8; 4] = b"POST";

fn json_message<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = JSON.to_vec();
    serde_json::to_writer(&mut out, value).expect("protocol messages serialize");
    out
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    let body = bytes.strip_prefix(JSON.as_slice()).ok_or_else(|| damaged("expected a JSON message"))?;
    serde_json::from_slice(body).map_err(damaged)
}

fn damaged(what: impl std::fmt::Display) -> Error {
    Error::config(format!("a message between segmix processes is damaged ({what}); are both ends the same version?"))
}

fn encode_kernel_params(kp: &KernelParams) -> Vec<u8> {
    Writer::new(ESTEP)
        .usize(kp.k)
        .usize(kp.p)
        .usize(kp.n_patterns)
        .f64s(&kp.log_weights)
        .f64s(&kp.log_alpha)
        .f64s(&kp.means)
        .f64s(&kp.prec_chol)
        .f64s(&kp.log_norm)
        .f64s(&kp.fill)
        .finish()
}

fn decode_kernel_params(bytes: &[u8]) -> Result<KernelParams> {
    let mut r = Reader::new(bytes, ESTEP)?;
    let kp = KernelParams {
        k: r.usize()?,
        p: r.usize()?,
        n_patterns: r.usize()?,
        log_weights: r.f64s()?,
        log_alpha: r.f64s()?,
        means: r.f64s()?,
        prec_chol: r.f64s()?,
        log_norm: r.f64s()?,
        fill: r.f64s()?,
    };
    r.end()?;
    Ok(kp)
}

fn encode_stats(summary: &EStepSummary, st: &SuffStats) -> Vec<u8> {
    Writer::new(STATS)
        .f64s(&[summary.loglik, summary.entropy])
        .usize(st.k)
        .usize(st.p)
        .f64s(&st.nk)
        .f64s(&st.sum_d)
        .f64s(&st.sum_dd)
        .f64s(&st.cat)
        .f64s(&st.pattern_mass)
        .finish()
}

fn decode_stats(bytes: &[u8]) -> Result<(EStepSummary, SuffStats)> {
    let mut r = Reader::new(bytes, STATS)?;
    let s = r.f64s()?;
    let [loglik, entropy] = s[..] else { return Err(damaged("an E-step summary of the wrong length")) };
    let st = SuffStats {
        k: r.usize()?,
        p: r.usize()?,
        nk: r.f64s()?,
        sum_d: r.f64s()?,
        sum_dd: r.f64s()?,
        cat: r.f64s()?,
        pattern_mass: r.f64s()?,
    };
    r.end()?;
    Ok((EStepSummary { loglik, entropy }, st))
}

/// Rows on the wire: what differs from row to row (the layout is the schema's).
fn encode_rows(d: &MixtureData) -> Vec<u8> {
    Writer::new(ROWS).usize(d.n).f64s(&d.x).u32s(&d.pattern).u32s(&d.codes).f64s(&d.log_jacobian).finish()
}

/// Rows read into `layout` (the schema's, with the global pattern table).
fn decode_rows(bytes: &[u8], layout: &MixtureData) -> Result<MixtureData> {
    let mut r = Reader::new(bytes, ROWS)?;
    let d = MixtureData {
        n: r.usize()?,
        x: r.f64s()?,
        pattern: r.u32s()?,
        codes: r.u32s()?,
        log_jacobian: r.f64s()?,
        ..layout.clone()
    };
    r.end()?;
    let ok = d.x.len() == d.n * d.p
        && d.pattern.len() == d.n
        && d.codes.len() == d.n * d.n_cat()
        && d.pattern.iter().all(|&o| (o as usize) < d.patterns.len());
    if ok { Ok(d) } else { Err(damaged("rows of the wrong shape")) }
}

fn encode_posteriors(p: &Posteriors) -> Vec<u8> {
    Writer::new(POST).usize(p.k).f64s(&p.resp).f64s(&p.row_loglik).finish()
}

fn decode_posteriors(bytes: &[u8]) -> Result<Posteriors> {
    let mut r = Reader::new(bytes, POST)?;
    let p = Posteriors { k: r.usize()?, resp: r.f64s()?, row_loglik: r.f64s()? };
    r.end()?;
    if p.resp.len() == p.k * p.row_loglik.len() { Ok(p) } else { Err(damaged("posteriors of the wrong shape")) }
}

/// Rows of several parts (their patterns indices into one table) one after the other.
fn concat(parts: Vec<MixtureData>, layout: MixtureData) -> MixtureData {
    let mut out = layout;
    for d in parts {
        out.n += d.n;
        out.x.extend(d.x);
        out.pattern.extend(d.pattern);
        out.codes.extend(d.codes);
        out.log_jacobian.extend(d.log_jacobian);
    }
    out
}

/// Whether the row at global index `row` is in the seeded sample of `rate` (a hash of the seed
/// and the index: the same rows whatever the split into shards).
fn in_sample(seed: u64, row: usize, rate: f64) -> bool {
    let mut z = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_5A3B_1E00_0000;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < rate
}

/// What a shard says in answer to Summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardSummary {
    summary: TableSummary,
    embedder: Option<EmbedderInfo>,
    notes: Vec<String>,
}

/// What a shard says in answer to Prepare.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Prepared {
    rows: usize,
    log_jacobian: f64,
    patterns: Vec<Vec<bool>>,
    warnings: Vec<String>,
}

/// The cells of some rows of a table (NaN metrics as `None`, which JSON can hold).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cells {
    categorical: Vec<(String, Vec<Option<String>>)>,
    numeric: Vec<(String, Vec<Option<f64>>)>,
    text: Option<(String, Vec<Option<String>>)>,
}

impl Cells {
    /// Rows `idx` of `t`, after the rows already here.
    fn extend(&mut self, t: &Table, idx: &[usize]) {
        if self.categorical.is_empty() && self.numeric.is_empty() && self.text.is_none() {
            self.categorical = t.categorical.iter().map(|c| (c.name.clone(), Vec::new())).collect();
            self.numeric = t.numeric.iter().map(|c| (c.name.clone(), Vec::new())).collect();
            self.text = t.text.as_ref().map(|c| (c.name.clone(), Vec::new()));
        }
        for (out, c) in self.categorical.iter_mut().zip(&t.categorical) {
            out.1.extend(idx.iter().map(|&i| c.values[i].clone()));
        }
        for (out, c) in self.numeric.iter_mut().zip(&t.numeric) {
            out.1.extend(idx.iter().map(|&i| Some(c.values[i]).filter(|v| !v.is_nan())));
        }
        if let (Some(out), Some(c)) = (self.text.as_mut(), t.text.as_ref()) {
            out.1.extend(idx.iter().map(|&i| c.values[i].clone()));
        }
    }

    /// Another shard's cells after these.
    fn append(&mut self, o: Cells) {
        if self.categorical.is_empty() && self.numeric.is_empty() && self.text.is_none() {
            *self = o;
            return;
        }
        self.categorical.iter_mut().zip(o.categorical).for_each(|(a, b)| a.1.extend(b.1));
        self.numeric.iter_mut().zip(o.numeric).for_each(|(a, b)| a.1.extend(b.1));
        if let (Some(a), Some(b)) = (self.text.as_mut(), o.text) {
            a.1.extend(b.1);
        }
    }

    /// The cells as a table named `path`.
    fn into_table(self, path: PathBuf, n_rows: usize) -> Table {
        Table {
            path,
            n_rows,
            categorical: self
                .categorical
                .into_iter()
                .map(|(name, values)| CategoricalColumn { name, values, present: true })
                .collect(),
            numeric: self
                .numeric
                .into_iter()
                .map(|(name, values)| NumericColumn {
                    name,
                    values: values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
                    present: true,
                })
                .collect(),
            text: self.text.map(|(name, values)| TextColumn { name, values }),
            lines: Vec::new(),
            row_groups: Vec::new(),
            delimiter: b',',
        }
    }
}

/// A shard's answer to Explain: the cells of its rows in the sample, and the explanation's sums
/// over all its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardExplanation {
    cells: Cells,
    stats: RowStats,
}

/// What a shard says when it has written its assignments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    pub path: PathBuf,
    pub rows: usize,
    /// Rows whose most probable class is each class.
    pub class_rows: Vec<usize>,
}

/// One shard: its tables (with their text vectors) and, once prepared, its rows resident on its
/// backend. Answers the driver's requests ([`Worker::handle`]).
pub struct Worker<B: Backend> {
    backend: B,
    parts: Vec<Part>,
    transforms: Vec<(String, Transform)>,
    embedder: Option<EmbedderInfo>,
    notes: Vec<String>,
    sorted: Vec<SortedValues>,
    data: Option<MixtureData>,
    resident: Option<B::Data>,
    resp: Option<(usize, B::Resp)>,
}

impl<B: Backend> std::fmt::Debug for Worker<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: usize = self.parts.iter().map(|p| p.0.n_rows).sum();
        f.debug_struct("Worker").field("parts", &self.parts.len()).field("rows", &rows).finish()
    }
}

impl<B: Backend> Worker<B> {
    /// A shard of `parts` (tables read with the fit's roles, each with its text vectors when the
    /// fit has a text column), computing on `backend`. `embedder` describes the sentence
    /// transformer that made the vectors; `notes` are what loading and embedding said.
    pub fn new(
        backend: B,
        parts: Vec<Part>,
        transforms: Vec<(String, Transform)>,
        embedder: Option<EmbedderInfo>,
        notes: Vec<String>,
    ) -> Result<Worker<B>> {
        let parts = parts
            .into_iter()
            .map(|(t, v)| Ok((t, v.map(|v| v.placed(&backend)).transpose()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Worker {
            backend,
            parts,
            transforms,
            embedder,
            notes,
            sorted: Vec::new(),
            data: None,
            resident: None,
            resp: None,
        })
    }

    /// Rows this shard holds.
    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.0.n_rows).sum()
    }

    /// Answers one request of the driver.
    pub fn handle(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        if request.starts_with(ESTEP) {
            let kp = decode_kernel_params(request)?;
            let (dev, data) = self.resident.as_ref().zip(self.data.as_ref()).ok_or_else(|| lost("an E-step"))?;
            kp.check(kp.k, data.p, data.patterns.len(), data.total_levels())?;
            // One responsibility buffer, for the K being fitted (the driver refits one K at a time).
            if self.resp.as_ref().is_none_or(|r| r.0 != kp.k) {
                self.resp = None;
                self.resp = Some((kp.k, self.backend.alloc_resp(dev, kp.k)?));
            }
            let resp = &mut self.resp.as_mut().expect("allocated above").1;
            let (summary, stats) = e_step_stats_one(&self.backend, dev, &kp, resp)?;
            return Ok(encode_stats(&summary, &stats));
        }
        match from_json::<Control>(request)? {
            Control::Summary => {
                let mut merged: Option<TableSummary> = None;
                self.sorted.clear();
                for (table, vectors) in &self.parts {
                    let (s, sorted) = TableSummary::of(table, vectors.as_ref(), &self.transforms)?;
                    self.sorted.push(sorted);
                    merged = Some(match merged {
                        Some(m) => m.merge(&s)?,
                        None => s,
                    });
                }
                let summary = merged.ok_or_else(|| Error::config("a shard holds no table"))?;
                Ok(json_message(&ShardSummary { summary, embedder: self.embedder.clone(), notes: self.notes.clone() }))
            }
            Control::Ties(q) => {
                if self.sorted.len() != self.parts.len() {
                    return Err(lost("the tie counts"));
                }
                let answer = self.sorted.iter().map(|s| s.ties(&q)).reduce(|a, b| a.merge(&b));
                Ok(json_message(&answer.ok_or_else(|| lost("the tie counts"))?))
            }
            Control::Prepare(schema) => {
                let mut parts = Vec::with_capacity(self.parts.len());
                let mut warnings = Vec::new();
                for (table, vectors) in &self.parts {
                    let (d, w) = schema.transform(table, vectors.as_ref())?;
                    warnings.extend(w);
                    parts.push(d);
                }
                let patterns = union_patterns(parts.iter().map(|d| d.patterns.as_slice()));
                for d in &mut parts {
                    d.use_patterns(&patterns)?;
                }
                let data = concat(parts, MixtureData { patterns: patterns.clone(), ..schema.layout() });
                let answer = Prepared { rows: data.n, log_jacobian: data.total_log_jacobian(), patterns, warnings };
                // The text vectors are in the rows now (as PCA scores): only a restarted worker,
                // which embeds again, needs them for another Summary. The tables become one, the
                // rows' table (their cells are read for the explanation).
                let tables = std::mem::take(&mut self.parts).into_iter().map(|p| p.0).collect();
                self.parts = vec![(join_tables(tables), None)];
                self.sorted.clear();
                self.data = Some(data);
                (self.resident, self.resp) = (None, None);
                Ok(json_message(&answer))
            }
            Control::Patterns(global) => {
                let data = self.data.as_mut().ok_or_else(|| lost("the global pattern table"))?;
                data.use_patterns(&global)?;
                (self.resident, self.resp) = (None, None);
                self.resident = Some(self.backend.upload(data)?);
                Ok(json_message(&()))
            }
            Control::Sample { first_row, rate, seed } => {
                let data = self.data.as_ref().ok_or_else(|| lost("the sample"))?;
                let idx: Vec<usize> = (0..data.n).filter(|&i| in_sample(seed, first_row + i, rate)).collect();
                let mut rows = data.rows(&idx);
                rows.use_patterns(&data.patterns)?;
                Ok(encode_rows(&rows))
            }
            Control::Posteriors(params) => Ok(encode_posteriors(&self.posteriors(&params)?)),
            Control::Explain { model, first_row, rate, seed, prototypes } => {
                let data = self.data.as_ref().ok_or_else(|| lost("an explanation"))?;
                let post = self.posteriors(&model.params)?;
                let mut cells = Cells::default();
                let mut at = first_row;
                for (table, _) in &self.parts {
                    let idx: Vec<usize> = (0..table.n_rows).filter(|&i| in_sample(seed, at + i, rate)).collect();
                    cells.extend(table, &idx);
                    at += table.n_rows;
                }
                let table = match &self.parts[..] {
                    [(table, _)] => table,
                    _ => return Err(lost("an explanation (its tables are not joined)")),
                };
                let fitted = Fitted { model: &model, posteriors: &post, outliers: &[], data, table };
                let opts = ExplainOptions { prototypes, ..ExplainOptions::default() };
                Ok(json_message(&ShardExplanation { cells, stats: RowStats::of(&fitted, &opts, first_row) }))
            }
            Control::Assign { params, path, first_row } => {
                let post = self.posteriors(&params)?;
                write_assignments_from(&path, &post, &[], first_row)?;
                let mut class_rows = vec![0; post.k];
                post.labels().into_iter().for_each(|c| class_rows[c] += 1);
                Ok(json_message(&Assigned { path, rows: post.row_loglik.len(), class_rows }))
            }
        }
    }

    fn posteriors(&self, params: &crate::mixture::params::Params) -> Result<Posteriors> {
        let (dev, data) = self.resident.as_ref().zip(self.data.as_ref()).ok_or_else(|| lost("posteriors"))?;
        posteriors_resident(&self.backend, dev, data, params)
    }
}

/// A shard's tables with their text vectors: the sentence embedder (loaded once, when the
/// tables have a text column and `embedder` is given) embeds each table's text column. Returns
/// them with what describes the embedder in the model.
pub fn embed_parts(tables: Vec<Table>, embedder: Option<&TextEmbedder>) -> Result<EmbeddedParts> {
    let needs_text = tables.iter().any(|t| t.text.is_some());
    let (Some(te), true) = (embedder, needs_text) else {
        return Ok(EmbeddedParts {
            parts: tables.into_iter().map(|t| (t, None)).collect(),
            embedder: None,
            notes: vec![],
        });
    };
    let loaded = (te.load)()?;
    let mut notes = Vec::new();
    let mut parts = Vec::with_capacity(tables.len());
    for t in tables {
        let (v, w) = embed_text_column(&t, &loaded, te.progress)?;
        notes.extend(w);
        parts.push((t, Some(v)));
    }
    Ok(EmbeddedParts { parts, embedder: Some(loaded.0.info.clone()), notes })
}

/// A table of a shard with its text vectors (when the fit has a text column).
pub type Part = (Table, Option<TextVectors>);

/// What [`embed_parts`] returns: the parts, the embedder that made their vectors, and what
/// loading and embedding said.
#[derive(Debug)]
pub struct EmbeddedParts {
    pub parts: Vec<Part>,
    pub embedder: Option<EmbedderInfo>,
    pub notes: Vec<String>,
}

/// Tables read with the same roles, one after the other, as one table (named after them all).
fn join_tables(tables: Vec<Table>) -> Table {
    let mut it = tables.into_iter();
    let mut out = it.next().expect("a shard holds a table");
    let mut names = vec![out.path.display().to_string()];
    for t in it {
        names.push(t.path.display().to_string());
        out.n_rows += t.n_rows;
        out.categorical.iter_mut().zip(t.categorical).for_each(|(a, b)| a.values.extend(b.values));
        out.numeric.iter_mut().zip(t.numeric).for_each(|(a, b)| a.values.extend(b.values));
        if let (Some(a), Some(b)) = (out.text.as_mut(), t.text) {
            a.values.extend(b.values);
        }
        (out.lines, out.row_groups) = (Vec::new(), Vec::new());
    }
    out.path = PathBuf::from(names.join(", "));
    out
}

/// The error of a worker asked for something before the requests that set it up (a transport
/// that restarted it must replay the state-keeping requests first).
fn lost(what: &str) -> Error {
    Error::ShardNotSetUp(what.to_string())
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
    job.config.check(sample.n)?;
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
    let mut cells = Cells::default();
    let mut stats: Option<RowStats> = None;
    for answer in transport.call(requests, false)? {
        let a: ShardExplanation = from_json(&answer)?;
        cells.append(a.cells);
        stats = Some(match stats {
            Some(s) => s.merge(a.stats, opts.prototypes),
            None => a.stats,
        });
    }
    let stats = stats.ok_or_else(|| Error::config("a fit over shards needs at least one shard"))?;
    let table = cells.into_table(PathBuf::from(format!("{} shards", fit.shard_rows.len())), fit.sample.n);
    let lengths = table.numeric.iter().map(|c| c.values.len()).chain(table.categorical.iter().map(|c| c.values.len()));
    if lengths.into_iter().any(|l| l != fit.sample.n) {
        return Err(Error::config("internal: the shards' sample cells do not match the sample's rows"));
    }
    let post = crate::mixture::predict::posteriors(backend, &fit.sample, &fit.model.params)?;
    let fitted = Fitted { model: &fit.model, posteriors: &post, outliers: &[], data: &fit.sample, table: &table };
    explain_with(&fitted, opts, stats)
}
