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

use serde::{Deserialize, Serialize};

use super::TextVectors;
use super::reduce::Pca;
use crate::backend::MixtureData;
use crate::data::{NumericColumn, Table};
use crate::foundation::MISSING_CODE;
use crate::foundation::error::{Error, Result};
use crate::foundation::linalg::Gram;
use crate::foundation::stats::{mean_sd, merge_mean_sd};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSchema {
    pub name: String,
    /// Levels in code order (sorted).
    pub levels: Vec<String>,
}

/// How a numeric column is transformed before it is standardized (`--log`, `--log1p`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// The value itself.
    #[default]
    Identity,
    /// ln v, for positive, multiplicative metrics (CTR, CVR, ROAS); v must be > 0.
    Log,
    /// ln(1 + v), for counts with zeros (clicks, retweets); v must be > −1.
    Log1p,
}

impl Transform {
    pub fn name(self) -> &'static str {
        match self {
            Transform::Identity => "identity",
            Transform::Log => "log",
            Transform::Log1p => "log1p",
        }
    }
    pub fn is_identity(&self) -> bool {
        *self == Transform::Identity
    }
    /// The modelled value of `v`, or `None` outside the transform's domain.
    pub fn apply(self, v: f64) -> Option<f64> {
        match self {
            Transform::Identity => Some(v),
            Transform::Log => (v > 0.0).then(|| v.ln()),
            Transform::Log1p => (v > -1.0).then(|| v.ln_1p()),
        }
    }
    /// The original value of a modelled value `t`.
    pub fn invert(self, t: f64) -> f64 {
        match self {
            Transform::Identity => t,
            Transform::Log => t.exp(),
            Transform::Log1p => t.exp_m1(),
        }
    }
    /// ln |dT/dv| at the original value `v`: the transform's share of the log-Jacobian that
    /// puts a density of the modelled value back on the original scale.
    pub fn log_derivative(self, v: f64) -> f64 {
        match self {
            Transform::Identity => 0.0,
            Transform::Log => -v.ln(),
            Transform::Log1p => -v.ln_1p(),
        }
    }
    /// What the domain needs, for messages.
    fn domain(self) -> &'static str {
        match self {
            Transform::Identity => "a number",
            Transform::Log => "a value > 0",
            Transform::Log1p => "a value > -1",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSchema {
    pub name: String,
    /// Mean and standard deviation of the (transformed) column.
    pub mean: f64,
    pub sd: f64,
    #[serde(default, skip_serializing_if = "Transform::is_identity")]
    pub transform: Transform,
    /// The recording resolution h of a column whose values pile up on a few points (a 1–5
    /// rating, a count that is mostly 0), on the transformed scale: the M-step keeps every class
    /// variance of this coordinate at least h²/12 (the variance of rounding to a grid of step h),
    /// so no class can collapse onto a single value. `None` for columns without such ties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
}

impl NumericSchema {
    /// The original value of a standardized coordinate value `z`.
    pub fn original(&self, z: f64) -> f64 {
        self.transform.invert(self.mean + self.sd * z)
    }
    /// E[original value] when the standardized coordinate is N(m, v): the mean of the implied
    /// log-normal for `log` (minus 1 for `log1p`), the back-transformed mean otherwise.
    pub fn expected_original(&self, m: f64, v: f64) -> f64 {
        let (a, b) = (self.mean + self.sd * m, self.sd * self.sd * v);
        match self.transform {
            Transform::Identity => a,
            Transform::Log => (a + 0.5 * b).exp(),
            Transform::Log1p => (a + 0.5 * b).exp_m1(),
        }
    }
    /// The variance floor of this coordinate in standardized units (0 without ties).
    pub fn variance_floor(&self) -> f64 {
        self.resolution.map_or(0.0, |h| (h / self.sd).powi(2) / 12.0)
    }
}

/// Share of a column's observed rows at one value from which that value is a *mass point* a
/// class could collapse onto.
const MASS_POINT_SHARE: f64 = 0.25;
/// A column with at most this many distinct values is *few-valued* (a rating, a small count).
const FEW_VALUES: usize = 20;
/// Few-valued columns with at most this many distinct values get a warning suggesting `--cat`.
const WARN_VALUES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSchema {
    /// The text column, when one was named.
    pub column: Option<String>,
    /// Where the vectors came from: `"embeddings-file"` or `"embedder"`.
    pub source: String,
    /// The sentence transformer that made the vectors, when segmix embedded the text itself.
    #[serde(default)]
    pub embedder: Option<crate::encoders::EmbedderInfo>,
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
    /// Learns levels, standardization and PCA from the training table: its [`TableSummary`],
    /// then [`Schema::finish`] — the same two steps a fit over shards runs with the shards'
    /// merged summaries, so one machine and N shards agree to rounding.
    pub fn fit(
        table: &Table,
        emb: Option<&TextVectors>,
        pca_dims: usize,
        transforms: &[(String, Transform)],
    ) -> Result<(Schema, Warnings)> {
        let (summary, sorted) = TableSummary::of(table, emb, transforms)?;
        let ties = sorted.ties(&summary.tie_query());
        Schema::finish(&summary, &ties, pca_dims)
    }

    /// The schema of the rows `summary` describes (one table's, or the merge of every shard's in
    /// shard order), with `ties` answering the summary's [`TableSummary::tie_query`] over the
    /// same rows: sorted levels, the moments of each metric with its resolution, the PCA of the
    /// text vectors' merged Gram matrix. Returns the warnings a user should read about the data.
    pub fn finish(summary: &TableSummary, ties: &TieAnswer, pca_dims: usize) -> Result<(Schema, Warnings)> {
        let mut warnings = Vec::new();
        let categorical = summary.categorical.iter().map(|c| c.schema(&mut warnings)).collect();
        let query = summary.tie_query();
        let mut numeric = Vec::with_capacity(summary.numeric.len());
        for ((c, values), answers) in summary.numeric.iter().zip(&query.columns).zip(&ties.columns) {
            numeric.push(c.schema(&summary.sources, values, answers, &mut warnings)?);
        }
        let text = match &summary.gram {
            Some(gram) => {
                let (pca, warn) = Pca::from_gram(gram, pca_dims)?;
                warnings.extend(warn);
                let scale = pca.explained_variance.iter().map(|v| v.sqrt()).collect();
                Some(TextSchema {
                    column: summary.text_column.clone(),
                    source: "embeddings-file".into(),
                    embedder: None,
                    pca,
                    scale,
                })
            }
            None => None,
        };
        Ok((Schema { categorical, numeric, text }, warnings))
    }

    /// Checks a schema read from a file: unique column names and levels, finite moments with a
    /// positive standard deviation, a PCA whose shapes agree and whose numbers are finite. The
    /// message names the field and the column.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = BTreeSet::new();
        let names = self.categorical.iter().map(|c| &c.name).chain(self.numeric.iter().map(|c| &c.name));
        for name in names.chain(self.text.as_ref().and_then(|t| t.column.as_ref())) {
            if !seen.insert(name.as_str()) {
                return Err(format!("schema: column {name:?} is named twice"));
            }
        }
        for c in &self.categorical {
            let mut levels = BTreeSet::new();
            if c.levels.is_empty() {
                return Err(format!("schema.categorical {:?} has no level", c.name));
            }
            if let Some(l) = c.levels.iter().find(|l| !levels.insert(l.as_str())) {
                return Err(format!("schema.categorical {:?} lists level {l:?} twice", c.name));
            }
        }
        for c in &self.numeric {
            if !c.mean.is_finite() {
                return Err(format!("schema.numeric {:?}: mean is {}", c.name, c.mean));
            }
            if !(c.sd.is_finite() && c.sd > 0.0) {
                return Err(format!("schema.numeric {:?}: sd is {}; it must be a finite number > 0", c.name, c.sd));
            }
            if let Some(h) = c.resolution.filter(|h| !(h.is_finite() && *h > 0.0)) {
                return Err(format!("schema.numeric {:?}: resolution is {h}; it must be a finite number > 0", c.name));
            }
        }
        let Some(t) = &self.text else { return Ok(()) };
        let pca = &t.pca;
        let d = pca.d();
        if d == 0 || pca.dim == 0 {
            return Err(format!("schema.text.pca has {d} components of dimension {}; both must be ≥ 1", pca.dim));
        }
        if pca.mean.len() != pca.dim {
            return Err(format!("schema.text.pca.mean has {} values for dimension {}", pca.mean.len(), pca.dim));
        }
        if let Some(c) = pca.components.iter().position(|a| a.len() != pca.dim) {
            return Err(format!(
                "schema.text.pca.components[{c}] has {} values for dimension {}",
                pca.components[c].len(),
                pca.dim
            ));
        }
        if pca.explained_variance.len() != d || t.scale.len() != d {
            return Err(format!(
                "schema.text: {d} PCA components but {} explained variances and {} scales",
                pca.explained_variance.len(),
                t.scale.len()
            ));
        }
        let finite = pca.mean.iter().chain(pca.components.iter().flatten()).all(|v| v.is_finite());
        if !finite || !pca.total_variance.is_finite() {
            return Err("schema.text.pca holds a value that is not a finite number".into());
        }
        let positive = |v: &f64| v.is_finite() && *v > 0.0;
        if !pca.explained_variance.iter().all(positive) || !t.scale.iter().all(positive) {
            return Err("schema.text: every explained variance and scale must be a finite number > 0".into());
        }
        if let Some(e) = t.embedder.as_ref().filter(|e| e.dim != pca.dim) {
            return Err(format!(
                "schema.text: the embedder {:?} makes {}-dimensional vectors but the PCA reads {}",
                e.name, e.dim, pca.dim
            ));
        }
        Ok(())
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
    pub fn transform(&self, table: &Table, emb: Option<&TextVectors>) -> Result<(MixtureData, Warnings)> {
        let n = table.n_rows;
        let d_text = self.text.as_ref().map_or(0, |t| t.pca.d());
        let mut block = Continuous::new(n, d_text + self.numeric.len());
        if let Some(ts) = &self.text {
            let scores = self.text_scores(ts, table, emb)?;
            block.fill_text(&scores, &ts.scale);
        } else if emb.is_some() {
            return Err(Error::config("the model was fitted without embeddings; drop --embeddings"));
        }
        for (j, ns) in self.numeric.iter().enumerate() {
            let col = table.numeric.iter().find(|c| c.name == ns.name).expect("table read with the schema's roles");
            block.fill_numeric(d_text + j, ns, &col.values, table)?;
        }
        let mut warnings = Vec::new();
        let codes = self.codes(table, &mut warnings);
        warnings.extend(absent_columns(table));
        let jn = self.categorical.len();
        let p = block.p;
        let empty_rows = (0..n)
            .filter(|&i| {
                block.observed[i * p..(i + 1) * p].iter().all(|o| !o)
                    && codes[i * jn..(i + 1) * jn].iter().all(|&c| c == MISSING_CODE)
            })
            .count();
        if empty_rows > 0 {
            warnings.push(format!(
                "{empty_rows} rows have no observed value in any modelled column; they are kept and get the class weights as posteriors"
            ));
        }
        let mut data = MixtureData { n, x: block.x, codes, log_jacobian: block.log_jacobian, ..self.layout() };
        data.set_patterns(&block.observed);
        Ok((data, warnings))
    }

    /// Rows of this schema with none in them yet: the width, levels, variance floors, names and
    /// scales every [`Schema::transform`] of it shares.
    pub fn layout(&self) -> MixtureData {
        let d_text = self.text.as_ref().map_or(0, |t| t.pca.d());
        MixtureData {
            p: d_text + self.numeric.len(),
            n_levels: self.categorical.iter().map(|c| c.levels.len()).collect(),
            var_floor: std::iter::repeat_n(0.0, d_text)
                .chain(self.numeric.iter().map(|c| c.variance_floor()))
                .collect(),
            names: self.continuous_names(),
            scale: self
                .text
                .iter()
                .flat_map(|t| t.scale.iter().copied())
                .chain(self.numeric.iter().map(|c| c.sd))
                .collect(),
            ..MixtureData::default()
        }
    }

    /// The PCA scores (n × d, NaN rows without text) of the text vectors the model expects.
    fn text_scores(&self, ts: &TextSchema, table: &Table, emb: Option<&TextVectors>) -> Result<Vec<f64>> {
        let n = table.n_rows;
        let v = emb.ok_or_else(|| {
            Error::config(if ts.embedder.is_some() {
                "the model embeds its text column with a sentence transformer, which was not loaded"
            } else {
                "the model was fitted with precomputed embeddings; pass --embeddings FILE with one vector per row"
            })
        })?;
        check_vectors(v, n, ts.pca.dim)?;
        ts.pca.transform(&v.vectors)
    }

    /// Every categorical column's codes (n × J, [`MISSING_CODE`] where missing or unknown), with
    /// one warning per column that has levels the model never saw.
    fn codes(&self, table: &Table, warnings: &mut Warnings) -> Vec<u32> {
        let (n, jn) = (table.n_rows, self.categorical.len());
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
        codes
    }
}

/// Checks `--log`/`--log1p` columns: each is one of the `numeric` columns and has one transform.
pub fn check_transforms(numeric: &[&str], transforms: &[(String, Transform)]) -> Result<()> {
    for (i, (name, t)) in transforms.iter().enumerate() {
        if transforms[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::config(format!(
                "--{} {name:?}: the column already has a transform; give it one of --log or --log1p",
                t.name()
            )));
        }
        if !numeric.contains(&name.as_str()) {
            return Err(Error::config(format!(
                "--{} {name:?}: not a --num column; name it in --num as well",
                t.name()
            )));
        }
    }
    Ok(())
}

/// The error for a value outside a transform's domain, naming file, line, row and column.
fn domain_error(table: &Table, row: usize, column: &str, t: Transform, v: f64) -> Error {
    Error::config(format!(
        "{}: {}, column {column:?}: {v} cannot be modelled with --{}, which needs {}; \
         fix the value, leave the cell empty to mark it missing, or drop the column from --{}",
        table.path.display(),
        table.at(row),
        t.name(),
        t.domain(),
        t.name()
    ))
}

fn check_vectors(v: &TextVectors, n: usize, dim: usize) -> Result<()> {
    let (rows, cols) = (v.vectors.rows(), v.vectors.cols());
    if rows != n {
        return Err(Error::EmbeddingRows { file: v.source.clone(), found: rows, expected: n });
    }
    if cols != dim {
        return Err(Error::Embeddings {
            file: v.source.clone(),
            message: format!("vectors have {cols} dimensions but the model expects {dim}"),
        });
    }
    Ok(())
}

/// Distinct values a [`NumericSummary`] keeps exactly: one more than a few-valued column has, so
/// a merge can still tell "few" from "more".
const KEEP_VALUES: usize = FEW_VALUES + 1;

/// What a table (or one shard of a table, or several merged in shard order) says about its role
/// columns before a schema exists. Every field merges exactly ([`TableSummary::merge`]), so a
/// fit over shards learns its schema from the shards' summaries without moving their rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSummary {
    /// The tables summarized (named in messages).
    pub sources: Vec<String>,
    pub rows: usize,
    pub categorical: Vec<LevelCounts>,
    pub numeric: Vec<NumericSummary>,
    pub text_column: Option<String>,
    /// Raw moments of the text vectors (rows with a vector only), for the PCA.
    pub gram: Option<Gram>,
}

/// How often each level of a categorical column occurs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelCounts {
    pub name: String,
    pub counts: BTreeMap<String, u64>,
}

/// A numeric column's observed values after its transform: their moments, and what the
/// resolution rule needs of their ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    pub name: String,
    pub transform: Transform,
    /// Observed values.
    pub count: u64,
    pub mean: f64,
    /// Population standard deviation.
    pub sd: f64,
    /// Every distinct value with its count, while there are at most `KEEP_VALUES` of them.
    pub values: Option<Vec<(f64, u64)>>,
    /// Values holding at least a quarter (`MASS_POINT_SHARE`) of the observed values of some part
    /// summarized: a value that holds that share of all the parts together is among them.
    pub mass_points: Vec<f64>,
}

/// A table's observed numeric values, transformed and sorted: kept by whoever holds the rows to
/// answer the [`TieQuery`] of the merged summary.
#[derive(Debug, Clone, Default)]
pub struct SortedValues {
    columns: Vec<Vec<f64>>,
}

/// Per numeric column, the values whose ties decide its resolution: every distinct value of a
/// few-valued column, else the candidate mass points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieQuery {
    pub columns: Vec<Vec<f64>>,
}

/// How often a queried value occurs, and its nearest distinct neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TieCount {
    pub count: u64,
    pub below: Option<f64>,
    pub above: Option<f64>,
}

/// The answer to a [`TieQuery`], one [`TieCount`] per queried value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieAnswer {
    pub columns: Vec<Vec<TieCount>>,
}

/// Distinct values of sorted `values` with their counts.
fn distinct_counts(values: &[f64]) -> Vec<(f64, u64)> {
    let mut distinct: Vec<(f64, u64)> = Vec::new();
    for &v in values {
        match distinct.last_mut() {
            Some((last, c)) if *last == v => *c += 1,
            _ => distinct.push((v, 1)),
        }
    }
    distinct
}

impl TableSummary {
    /// The summary of one table (and its text vectors), with its sorted numeric values. A value
    /// outside a transform's domain, or too large to standardize, is an error naming its row.
    pub fn of(
        table: &Table,
        emb: Option<&TextVectors>,
        transforms: &[(String, Transform)],
    ) -> Result<(TableSummary, SortedValues)> {
        let names: Vec<&str> = table.numeric.iter().map(|c| c.name.as_str()).collect();
        check_transforms(&names, transforms)?;
        let categorical = table
            .categorical
            .iter()
            .map(|c| {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                for v in c.values.iter().flatten() {
                    match counts.get_mut(v.as_str()) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(v.clone(), 1);
                        }
                    }
                }
                LevelCounts { name: c.name.clone(), counts }
            })
            .collect();
        let mut numeric = Vec::with_capacity(table.numeric.len());
        let mut sorted = SortedValues::default();
        for c in &table.numeric {
            let transform = transforms.iter().find(|(n, _)| n == &c.name).map_or(Transform::Identity, |t| t.1);
            let (summary, values) = NumericSummary::of(table, c, transform)?;
            numeric.push(summary);
            sorted.columns.push(values);
        }
        let gram = match emb {
            Some(v) => {
                check_vectors(v, table.n_rows, v.vectors.cols())?;
                Some(v.vectors.gram()?)
            }
            None => None,
        };
        let summary = TableSummary {
            sources: vec![table.path.display().to_string()],
            rows: table.n_rows,
            categorical,
            numeric,
            text_column: table.text.as_ref().map(|t| t.name.clone()),
            gram,
        };
        Ok((summary, sorted))
    }

    /// The summary of both tables' rows (`o`'s after `self`'s); their columns must agree.
    pub fn merge(mut self, o: &TableSummary) -> Result<TableSummary> {
        let names = |s: &TableSummary| {
            let cat = s.categorical.iter().map(|c| c.name.clone());
            let num = s.numeric.iter().map(|c| format!("{} ({})", c.name, c.transform.name()));
            cat.chain(num).chain(s.text_column.clone()).collect::<Vec<_>>()
        };
        let gram_dims = |s: &TableSummary| s.gram.as_ref().map(|g| g.dim);
        if names(&self) != names(o) || gram_dims(&self) != gram_dims(o) {
            return Err(Error::config(format!(
                "{} and {} do not read the same columns ({:?} against {:?}, text vectors of {:?} and {:?} dimensions); \
                 every shard must have the fit's columns",
                self.sources.join(", "),
                o.sources.join(", "),
                names(&self),
                names(o),
                gram_dims(&self),
                gram_dims(o)
            )));
        }
        self.sources.extend(o.sources.iter().cloned());
        self.rows += o.rows;
        for (a, b) in self.categorical.iter_mut().zip(&o.categorical) {
            for (level, n) in &b.counts {
                *a.counts.entry(level.clone()).or_default() += n;
            }
        }
        for (a, b) in self.numeric.iter_mut().zip(&o.numeric) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (self.gram.take(), &o.gram) {
            self.gram = Some(a.merge(b));
        }
        Ok(self)
    }

    /// The values whose ties the schema needs counted over every row.
    pub fn tie_query(&self) -> TieQuery {
        let columns = self
            .numeric
            .iter()
            .map(|c| match &c.values {
                Some(v) if v.len() <= FEW_VALUES => v.iter().map(|x| x.0).collect(),
                _ => c.mass_points.clone(),
            })
            .collect();
        TieQuery { columns }
    }
}

impl SortedValues {
    /// Each queried value's count and nearest distinct neighbours in these values.
    pub fn ties(&self, q: &TieQuery) -> TieAnswer {
        let columns = self
            .columns
            .iter()
            .zip(&q.columns)
            .map(|(values, query)| {
                query
                    .iter()
                    .map(|&v| {
                        let lo = values.partition_point(|&x| x < v);
                        let hi = values.partition_point(|&x| x <= v);
                        TieCount {
                            count: (hi - lo) as u64,
                            below: lo.checked_sub(1).map(|i| values[i]),
                            above: values.get(hi).copied(),
                        }
                    })
                    .collect()
            })
            .collect();
        TieAnswer { columns }
    }
}

impl TieAnswer {
    /// The answer over both sets of rows: counts add, the neighbours are the nearest of either.
    pub fn merge(mut self, o: &TieAnswer) -> TieAnswer {
        for (a, b) in self.columns.iter_mut().zip(&o.columns) {
            for (x, y) in a.iter_mut().zip(b) {
                x.count += y.count;
                x.below = match (x.below, y.below) {
                    (Some(p), Some(q)) => Some(p.max(q)),
                    (p, q) => p.or(q),
                };
                x.above = match (x.above, y.above) {
                    (Some(p), Some(q)) => Some(p.min(q)),
                    (p, q) => p.or(q),
                };
            }
        }
        self
    }
}

impl LevelCounts {
    /// The column's levels (sorted); an identifier-like column gets a warning.
    fn schema(&self, warnings: &mut Warnings) -> CategoricalSchema {
        let observed: u64 = self.counts.values().sum();
        let levels = self.counts.len();
        if levels > 50 && levels as u64 * 2 > observed {
            warnings.push(format!(
                "column {:?} has {levels} levels for {observed} values; an identifier-like column adds \
                 K x {} parameters and little information. Drop it from --cat, or group rare levels",
                self.name,
                levels - 1
            ));
        }
        CategoricalSchema { name: self.name.clone(), levels: self.counts.keys().cloned().collect() }
    }
}

impl NumericSummary {
    /// The summary of column `c` of `table` after `transform`, and its sorted values.
    fn of(table: &Table, c: &NumericColumn, transform: Transform) -> Result<(NumericSummary, Vec<f64>)> {
        let mut obs = Vec::with_capacity(c.values.len());
        for (i, &v) in c.values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
            obs.push(transform.apply(v).ok_or_else(|| domain_error(table, i, &c.name, transform, v))?);
        }
        let (mean, sd) = if obs.is_empty() {
            (0.0, 0.0)
        } else {
            // Scaled so that values up to f64's range overflow neither the sum nor the squares.
            mean_sd(&obs.iter().map(|&v| (1.0, v)).collect::<Vec<_>>())
        };
        if !sd.is_finite() || !mean.is_finite() {
            let (i, v) = c
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map_or((0, f64::NAN), |(i, v)| (i, *v));
            return Err(Error::config(format!(
                "{}: {}, column {:?}: the value {v:e} is too large to standardize beside the \
                 column's others (their spread overflows f64); rescale the column",
                table.path.display(),
                table.at(i),
                c.name
            )));
        }
        obs.sort_by(f64::total_cmp);
        let distinct = distinct_counts(&obs);
        let heavy = MASS_POINT_SHARE * obs.len() as f64;
        let summary = NumericSummary {
            name: c.name.clone(),
            transform,
            count: obs.len() as u64,
            mean,
            sd,
            mass_points: distinct.iter().filter(|d| d.1 as f64 >= heavy).map(|d| d.0).collect(),
            values: (distinct.len() <= KEEP_VALUES).then_some(distinct),
        };
        Ok((summary, obs))
    }

    /// Adds another part's summary of the same column.
    fn merge(&mut self, o: &NumericSummary) {
        let (count, mean, sd) = merge_mean_sd((self.count as f64, self.mean, self.sd), (o.count as f64, o.mean, o.sd));
        (self.count, self.mean, self.sd) = (count as u64, mean, sd);
        self.values = match (self.values.take(), &o.values) {
            (Some(a), Some(b)) => {
                let mut all: Vec<f64> = a.iter().chain(b).map(|d| d.0).collect();
                all.sort_by(f64::total_cmp);
                all.dedup();
                let count = |list: &[(f64, u64)], v: f64| list.iter().find(|d| d.0 == v).map_or(0, |d| d.1);
                (all.len() <= KEEP_VALUES).then(|| all.iter().map(|&v| (v, count(&a, v) + count(b, v))).collect())
            }
            _ => None,
        };
        self.mass_points.extend(o.mass_points.iter().copied());
        self.mass_points.sort_by(f64::total_cmp);
        self.mass_points.dedup();
    }

    /// The column's schema: mean, sd and resolution h — the smallest gap between a *heavy*
    /// value and its distinct neighbours, where a value is heavy when it holds at least 5% of
    /// the rows of a few-valued column, or [`MASS_POINT_SHARE`] of any column (`ties` counts
    /// `values`, the summary's [`TableSummary::tie_query`] of this column). A constant or few-valued
    /// column gets a warning; a column without values or whose spread overflows, an error.
    fn schema(
        &self,
        sources: &[String],
        values: &[f64],
        ties: &[TieCount],
        warnings: &mut Warnings,
    ) -> Result<NumericSchema> {
        if self.count == 0 {
            return Err(Error::config(format!(
                "{}: numeric column {:?} has no value in any row; drop it from --num",
                sources.join(", "),
                self.name
            )));
        }
        if !self.sd.is_finite() || !self.mean.is_finite() {
            return Err(Error::config(format!(
                "{}: column {:?}: its values are too large to standardize together (their spread \
                 overflows f64); rescale the column",
                sources.join(", "),
                self.name
            )));
        }
        let (mean, mut sd) = (self.mean, self.sd);
        let constant = sd <= 1e-12 * mean.abs().max(1.0);
        if constant {
            warnings.push(format!("column {:?} is constant ({mean}); it carries no information", self.name));
            sd = 1.0;
        }
        let few = self.values.as_ref().map(Vec::len).filter(|&d| d <= FEW_VALUES);
        let distinct = few.unwrap_or(KEEP_VALUES);
        let share = if few.is_some() { 0.05 } else { MASS_POINT_SHARE };
        let n = self.count as f64;
        let mut resolution: Option<f64> = None;
        if !constant {
            for (&v, t) in values.iter().zip(ties) {
                if (t.count as f64) < share * n || t.count < 2 {
                    continue;
                }
                for g in [t.below.map(|b| v - b), t.above.map(|a| a - v)].into_iter().flatten() {
                    resolution = Some(resolution.map_or(g, |h: f64| h.min(g)));
                }
            }
        }
        if !constant && distinct <= WARN_VALUES {
            warnings.push(format!(
                "column {:?} has only {distinct} distinct values: it is modelled as continuous, with every \
                 class variance kept at least h²/12 (h = {}, its resolution) so that no class collapses \
                 onto one value. If its values are categories, pass it with --cat instead",
                self.name,
                resolution.unwrap_or(0.0)
            ));
        }
        Ok(NumericSchema { name: self.name.clone(), mean, sd, transform: self.transform, resolution })
    }
}

/// The continuous block being filled: values in standardized units, which coordinates each row
/// observes, and each row's log-Jacobian back to the data's own scale.
struct Continuous {
    p: usize,
    x: Vec<f64>,
    observed: Vec<bool>,
    /// ln |du/dv| per row: densities of u (standardized) back on the data's own scale.
    log_jacobian: Vec<f64>,
}

impl Continuous {
    fn new(n: usize, p: usize) -> Continuous {
        Continuous { p, x: vec![0.0; n * p], observed: vec![true; n * p], log_jacobian: vec![0.0; n] }
    }

    /// The text scores (n × d, NaN where a row has no text), divided by their scale.
    fn fill_text(&mut self, scores: &[f64], scale: &[f64]) {
        let (p, d) = (self.p, scale.len());
        let log_scale: Vec<f64> = scale.iter().map(|s| s.ln()).collect();
        for (i, row) in scores.chunks_exact(d.max(1)).enumerate() {
            for c in 0..d {
                let v = row[c];
                if v.is_nan() {
                    self.observed[i * p + c] = false;
                } else {
                    self.x[i * p + c] = v / scale[c];
                    self.log_jacobian[i] -= log_scale[c];
                }
            }
        }
    }

    /// Numeric column `ns` into coordinate `t`: transformed, standardized; a value outside the
    /// transform's domain is an error naming its row.
    fn fill_numeric(&mut self, t: usize, ns: &NumericSchema, values: &[f64], table: &Table) -> Result<()> {
        let p = self.p;
        let log_sd = ns.sd.ln();
        for (i, &v) in values.iter().enumerate() {
            if v.is_nan() {
                self.observed[i * p + t] = false;
            } else {
                let tv = ns.transform.apply(v).ok_or_else(|| domain_error(table, i, &ns.name, ns.transform, v))?;
                self.x[i * p + t] = (tv - ns.mean) / ns.sd;
                self.log_jacobian[i] += ns.transform.log_derivative(v) - log_sd;
            }
        }
        Ok(())
    }
}

/// The warning for model columns the table does not have (treated as missing).
fn absent_columns(table: &Table) -> Option<String> {
    let absent: Vec<String> = table
        .categorical
        .iter()
        .map(|c| (&c.name, c.present))
        .chain(table.numeric.iter().map(|c| (&c.name, c.present)))
        .filter(|(_, present)| !present)
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} {} {} not in {}; treated as missing",
            if absent.len() == 1 { "column" } else { "columns" },
            absent.join(", "),
            if absent.len() == 1 { "is" } else { "are" },
            table.path.display()
        )
    })
}
