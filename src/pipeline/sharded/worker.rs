//! One shard's worker: its tables, embedded once, and once prepared its rows resident on its
//! backend, answering the driver's requests ([`Worker::handle`]).

use std::path::PathBuf;

use super::messages::{
    Assigned, Cells, Control, ESTEP, Prepared, ShardExplanation, ShardSummary, concat, decode_kernel_params,
    encode_posteriors, encode_rows, encode_stats, from_json, json_message, sampled,
};
use crate::backend::{Backend, MixtureData, Posteriors, e_step_stats_one};
use crate::data::Table;
use crate::encoders::EmbedderInfo;
use crate::explain::{ExplainOptions, Fitted, RowStats};
use crate::featurize::TextVectors;
use crate::featurize::schema::{SortedValues, TableSummary, Transform};
use crate::foundation::error::{Error, Result};
use crate::mixture::params::Params;
use crate::mixture::predict::posteriors_resident;
use crate::mixture::shards::union_patterns;
use crate::pipeline::{TextEmbedder, embed_text_column};
use crate::report::write_assignments_from;

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
        f.debug_struct("Worker").field("parts", &self.parts.len()).field("rows", &self.rows()).finish()
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
                self.resp = None; // freed before the next one is allocated
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
                let mut rows = data.rows(&sampled(data.n, first_row, rate, seed));
                rows.use_patterns(&data.patterns)?;
                Ok(encode_rows(&rows))
            }
            Control::Posteriors(params) => Ok(encode_posteriors(&self.posteriors(&params)?)),
            Control::Explain { model, first_row, rate, seed, prototypes } => {
                let data = self.data.as_ref().ok_or_else(|| lost("an explanation"))?;
                // Prepared, so its tables are the rows' one table (joined at Prepare).
                let [(table, _)] = &self.parts[..] else { return Err(lost("an explanation")) };
                let post = self.posteriors(&model.params)?;
                let cells = Cells::of(table, &sampled(table.n_rows, first_row, rate, seed));
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

    fn posteriors(&self, params: &Params) -> Result<Posteriors> {
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
        out.append(t);
    }
    out.path = PathBuf::from(names.join(", "));
    out
}

/// The error of a worker asked for something before the requests that set it up (a transport
/// that restarted it must replay the state-keeping requests first).
fn lost(what: &str) -> Error {
    Error::ShardNotSetUp(what.to_string())
}
