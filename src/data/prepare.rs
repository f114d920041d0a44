//! From a [`Table`] (and embeddings) to the [`MixtureData`] the kernels read.
//!
//! The [`Schema`] is learned once by `fit` and stored in `model.json`; `predict` applies the same
//! [`Schema::transform`], so a model scores its own training rows exactly as the fit did.
//!
//! The continuous block is `[reduced text, metrics]`, every column standardized to zero mean
//! and unit variance: PCA scores are divided by the square root of their eigenvalue and metrics
//! by their standard deviation. The full-covariance model is invariant to this scaling; it puts
//! k-means++ initialisation and the covariance ridge on one scale.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::embeddings::{Matrix, TextVectors};
use super::{MISSING_CODE, Table};
use crate::backend::{Backend, MixtureData};
use crate::error::{Error, Result};
use crate::reduce::Pca;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSchema {
    pub name: String,
    /// Levels in code order (sorted).
    pub levels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSchema {
    pub name: String,
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSchema {
    /// The text column, when one was named.
    pub column: Option<String>,
    /// Where the vectors came from: `"embeddings-file"` or `"embedder"`.
    pub source: String,
    /// The sentence transformer that made the vectors, when segmix embedded the text itself.
    #[serde(default)]
    pub embedder: Option<crate::embed::EmbedderInfo>,
    pub pca: Pca,
    /// Standard deviation of each PCA score (√eigenvalue) used to standardize it.
    pub scale: Vec<f64>,
}

/// Everything needed to turn a table into the model's coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub categorical: Vec<CategoricalSchema>,
    pub numeric: Vec<NumericSchema>,
    pub text: Option<TextSchema>,
}

/// Messages about the data that do not stop the run.
pub type Warnings = Vec<String>;

impl Schema {
    /// Learns levels, standardization and PCA from the training table.
    pub fn fit<B: Backend>(
        backend: &B,
        table: &Table,
        emb: Option<&TextVectors>,
        pca_dims: usize,
    ) -> Result<(Schema, Warnings)> {
        let mut warnings = Vec::new();
        let mut categorical = Vec::new();
        for c in &table.categorical {
            let levels: BTreeSet<&str> = c.values.iter().flatten().map(String::as_str).collect();
            let observed = c.values.iter().flatten().count();
            if levels.len() > 50 && levels.len() * 2 > observed {
                warnings.push(format!(
                    "column {:?} has {} levels for {observed} values; an identifier-like column adds \
                     K x {} parameters and little information. Drop it from --cat, or group rare levels",
                    c.name,
                    levels.len(),
                    levels.len() - 1
                ));
            }
            categorical.push(CategoricalSchema {
                name: c.name.clone(),
                levels: levels.into_iter().map(str::to_string).collect(),
            });
        }
        let mut numeric = Vec::new();
        for c in &table.numeric {
            let obs: Vec<f64> = c.values.iter().copied().filter(|v| !v.is_nan()).collect();
            let mean = obs.iter().sum::<f64>() / obs.len() as f64;
            let var = obs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / obs.len() as f64;
            let mut sd = var.sqrt();
            if sd.is_nan() || sd <= 1e-12 * mean.abs().max(1.0) {
                warnings.push(format!("column {:?} is constant ({mean}); it carries no information", c.name));
                sd = 1.0;
            }
            numeric.push(NumericSchema { name: c.name.clone(), mean, sd });
        }
        let text = match emb {
            None => None,
            Some(v) => {
                let (pca, warn) = match v {
                    TextVectors::Host { source, matrix: m } => {
                        check_rows(source, m, table.n_rows)?;
                        let masked = mask_text(table, m);
                        let x = masked.as_ref().map_or(&m.values, |v| v);
                        Pca::fit(backend, x, m.rows, m.cols, pca_dims)?
                    }
                    // The embedder saw exactly the table's texts; the Gram runs on the device.
                    TextVectors::Device(r) => Pca::from_gram(&r.gram()?, pca_dims)?,
                };
                warnings.extend(warn);
                let scale = pca.explained_variance.iter().map(|v| v.sqrt()).collect();
                Some(TextSchema {
                    column: table.text.as_ref().map(|t| t.name.clone()),
                    source: "embeddings-file".into(),
                    embedder: None,
                    pca,
                    scale,
                })
            }
        };
        Ok((Schema { categorical, numeric, text }, warnings))
    }

    /// Names of the continuous coordinates, in order.
    pub fn continuous_names(&self) -> Vec<String> {
        let text = self.text.as_ref().map_or(0, |t| t.pca.d());
        (1..=text).map(|c| format!("text_pc{c}")).chain(self.numeric.iter().map(|c| c.name.clone())).collect()
    }

    /// Index of numeric column `j` in the continuous block.
    pub fn numeric_coordinate(&self, j: usize) -> usize {
        self.text.as_ref().map_or(0, |t| t.pca.d()) + j
    }

    /// Applies the schema. Unknown categorical levels become missing and are reported in one
    /// warning per column.
    pub fn transform<B: Backend>(
        &self,
        backend: &B,
        table: &Table,
        emb: Option<&TextVectors>,
    ) -> Result<(MixtureData, Warnings)> {
        let mut warnings = Vec::new();
        let n = table.n_rows;
        let d_text = self.text.as_ref().map_or(0, |t| t.pca.d());
        let p = d_text + self.numeric.len();
        let mut x = vec![0.0; n * p];
        let mut observed = vec![true; n * p];

        if let Some(ts) = &self.text {
            let v = emb.ok_or_else(|| {
                Error::config(if ts.embedder.is_some() {
                    "the model embeds its text column with a sentence transformer, which was not loaded"
                } else {
                    "the model was fitted with precomputed embeddings; pass --embeddings FILE with one vector per row"
                })
            })?;
            let scores = match v {
                TextVectors::Host { source, matrix: m } => {
                    check_rows(source, m, n)?;
                    if m.cols != ts.pca.dim {
                        return Err(Error::Embeddings {
                            file: source.clone(),
                            message: format!("vectors have {} dimensions but the model expects {}", m.cols, ts.pca.dim),
                        });
                    }
                    let masked = mask_text(table, m);
                    ts.pca.transform(backend, masked.as_ref().map_or(&m.values, |v| v), n)?
                }
                TextVectors::Device(r) => {
                    if r.cols() != ts.pca.dim || r.rows() != n {
                        return Err(Error::Embedder(format!(
                            "the encoder gave {} vectors of {} dimensions; the model expects {n} of {}",
                            r.rows(),
                            r.cols(),
                            ts.pca.dim
                        )));
                    }
                    r.project(&ts.pca.mean, &ts.pca.axes(), d_text)?
                }
            };
            for i in 0..n {
                for c in 0..d_text {
                    let v = scores[i * d_text + c];
                    if v.is_nan() {
                        observed[i * p + c] = false;
                    } else {
                        x[i * p + c] = v / ts.scale[c];
                    }
                }
            }
        } else if emb.is_some() {
            return Err(Error::config("the model was fitted without embeddings; drop --embeddings"));
        }

        for (j, ns) in self.numeric.iter().enumerate() {
            let col = table.numeric.iter().find(|c| c.name == ns.name).expect("table read with the schema's roles");
            for i in 0..n {
                let v = col.values[i];
                let t = d_text + j;
                if v.is_nan() {
                    observed[i * p + t] = false;
                } else {
                    x[i * p + t] = (v - ns.mean) / ns.sd;
                }
            }
        }

        let jn = self.categorical.len();
        let mut codes = vec![MISSING_CODE; n * jn];
        for (j, cs) in self.categorical.iter().enumerate() {
            let col = table.categorical.iter().find(|c| c.name == cs.name).expect("table read with the schema's roles");
            let index: HashMap<&str, u32> = cs.levels.iter().enumerate().map(|(i, l)| (l.as_str(), i as u32)).collect();
            let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, v) in col.values.iter().enumerate() {
                if let Some(v) = v {
                    match index.get(v.as_str()) {
                        Some(&c) => codes[i * jn + j] = c,
                        None => *unknown.entry(v.as_str()).or_default() += 1,
                    }
                }
            }
            if !unknown.is_empty() {
                let total: usize = unknown.values().sum();
                let list: Vec<String> = unknown.keys().take(10).map(|l| format!("{l:?}")).collect();
                warnings.push(format!(
                    "column {:?}: {total} rows have levels the model never saw ({}{}); they are treated as missing",
                    cs.name,
                    list.join(", "),
                    if unknown.len() > 10 { ", …" } else { "" }
                ));
            }
        }
        let absent: Vec<String> = table
            .categorical
            .iter()
            .map(|c| (&c.name, c.present))
            .chain(table.numeric.iter().map(|c| (&c.name, c.present)))
            .filter(|(_, present)| !present)
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        if !absent.is_empty() {
            warnings.push(format!(
                "{} {} {} not in {}; treated as missing",
                if absent.len() == 1 { "column" } else { "columns" },
                absent.join(", "),
                if absent.len() == 1 { "is" } else { "are" },
                table.path.display()
            ));
        }

        let empty_rows = (0..n)
            .filter(|&i| {
                observed[i * p..(i + 1) * p].iter().all(|o| !o)
                    && codes[i * jn..(i + 1) * jn].iter().all(|&c| c == MISSING_CODE)
            })
            .count();
        if empty_rows > 0 {
            warnings.push(format!(
                "{empty_rows} rows have no observed value in any modelled column; they are kept and get the class weights as posteriors"
            ));
        }
        let mut data = MixtureData {
            n,
            p,
            x,
            pattern: Vec::new(),
            patterns: Vec::new(),
            n_levels: self.categorical.iter().map(|c| c.levels.len()).collect(),
            codes,
        };
        data.set_patterns(&observed);
        Ok((data, warnings))
    }
}

fn check_rows(path: &Path, m: &Matrix, n: usize) -> Result<()> {
    if m.rows != n {
        return Err(Error::EmbeddingRows { file: path.to_path_buf(), found: m.rows, expected: n });
    }
    Ok(())
}

/// Rows whose text cell is missing have no text block, whatever vector the file holds: sets
/// their vectors to NaN in place. Does nothing when the row counts differ (the schema reports
/// that with the file's name).
pub fn mask_missing_text(table: &Table, m: &mut Matrix) {
    let Some(text) = table.text.as_ref().filter(|_| m.rows == table.n_rows) else { return };
    for (i, t) in text.values.iter().enumerate() {
        if t.is_none() {
            m.values[i * m.cols..(i + 1) * m.cols].fill(f32::NAN);
        }
    }
}

/// The masked copy of `m` when some row with a missing text still holds a vector; `None` (no
/// copy) when there is nothing to mask, as after [`mask_missing_text`] or with the embedder.
fn mask_text(table: &Table, m: &Matrix) -> Option<Vec<f32>> {
    let text = table.text.as_ref()?;
    if !text.values.iter().enumerate().any(|(i, t)| t.is_none() && !m.row_missing(i)) {
        return None;
    }
    let mut copy = m.clone();
    mask_missing_text(table, &mut copy);
    Some(copy.values)
}
