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
use crate::data::{CategoricalColumn, NumericColumn, Table};
use crate::foundation::MISSING_CODE;
use crate::foundation::error::{Error, Result};
use crate::foundation::stats::mean_sd;

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

/// Ties in a numeric column: the resolution h (see [`NumericSchema::resolution`]) and the number
/// of distinct values. A value is *heavy* when it holds at least 5% of the rows of a few-valued
/// column, or [`MASS_POINT_SHARE`] of any column; h is the smallest gap between a heavy value and
/// its neighbouring distinct values. `values` must be finite and sorted.
fn resolution(values: &[f64]) -> (Option<f64>, usize) {
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &v in values {
        match distinct.last_mut() {
            Some((last, c)) if *last == v => *c += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let n = values.len() as f64;
    let share = if distinct.len() <= FEW_VALUES { 0.05 } else { MASS_POINT_SHARE };
    let mut h: Option<f64> = None;
    for (i, &(v, c)) in distinct.iter().enumerate() {
        if (c as f64) < share * n || c < 2 {
            continue;
        }
        let gaps = [i.checked_sub(1).map(|j| v - distinct[j].0), distinct.get(i + 1).map(|d| d.0 - v)];
        for g in gaps.into_iter().flatten() {
            h = Some(h.map_or(g, |h: f64| h.min(g)));
        }
    }
    (h, distinct.len())
}

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
    /// Learns levels, standardization and PCA from the training table.
    pub fn fit(
        table: &Table,
        emb: Option<&TextVectors>,
        pca_dims: usize,
        transforms: &[(String, Transform)],
    ) -> Result<(Schema, Warnings)> {
        let mut warnings = Vec::new();
        let categorical = table.categorical.iter().map(|c| CategoricalSchema::fit(c, &mut warnings)).collect();
        let names: Vec<&str> = table.numeric.iter().map(|c| c.name.as_str()).collect();
        check_transforms(&names, transforms)?;
        let numeric = table
            .numeric
            .iter()
            .map(|c| {
                let transform = transforms.iter().find(|(n, _)| n == &c.name).map_or(Transform::Identity, |t| t.1);
                NumericSchema::fit(table, c, transform, &mut warnings)
            })
            .collect::<Result<Vec<_>>>()?;
        let text = emb.map(|v| TextSchema::fit(table, v, pca_dims, &mut warnings)).transpose()?;
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
        let mut data = MixtureData {
            n,
            p,
            x: block.x,
            pattern: Vec::new(),
            patterns: Vec::new(),
            n_levels: self.categorical.iter().map(|c| c.levels.len()).collect(),
            codes,
            log_jacobian: block.log_jacobian,
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
        };
        data.set_patterns(&block.observed);
        Ok((data, warnings))
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

impl CategoricalSchema {
    /// The column's levels (sorted); an identifier-like column gets a warning.
    fn fit(c: &CategoricalColumn, warnings: &mut Warnings) -> CategoricalSchema {
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
        CategoricalSchema { name: c.name.clone(), levels: levels.into_iter().map(str::to_string).collect() }
    }
}

impl NumericSchema {
    /// Mean, sd and resolution of the column after `transform`; a constant or few-valued column
    /// gets a warning, a value outside the transform's domain or an overflowing variance an error.
    fn fit(table: &Table, c: &NumericColumn, transform: Transform, warnings: &mut Warnings) -> Result<NumericSchema> {
        let mut obs = Vec::with_capacity(c.values.len());
        for (i, &v) in c.values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
            obs.push(transform.apply(v).ok_or_else(|| domain_error(table, i, &c.name, transform, v))?);
        }
        if obs.is_empty() {
            return Err(Error::config(format!(
                "{}: numeric column {:?} has no value in any row; drop it from --num",
                table.path.display(),
                c.name
            )));
        }
        // Scaled so that values up to f64's range overflow neither the sum nor the squares.
        let (mean, mut sd) = mean_sd(&obs.iter().map(|&v| (1.0, v)).collect::<Vec<_>>());
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
        let constant = sd <= 1e-12 * mean.abs().max(1.0);
        if constant {
            warnings.push(format!("column {:?} is constant ({mean}); it carries no information", c.name));
            sd = 1.0;
        }
        obs.sort_by(f64::total_cmp);
        let (resolution, distinct) = if constant { (None, 1) } else { resolution(&obs) };
        if !constant && distinct <= WARN_VALUES {
            warnings.push(format!(
                "column {:?} has only {distinct} distinct values: it is modelled as continuous, with every \
                 class variance kept at least h²/12 (h = {}, its resolution) so that no class collapses \
                 onto one value. If its values are categories, pass it with --cat instead",
                c.name,
                resolution.unwrap_or(0.0)
            ));
        }
        Ok(NumericSchema { name: c.name.clone(), mean, sd, transform, resolution })
    }
}

impl TextSchema {
    /// The PCA of the text vectors (on the device when they are resident there).
    fn fit(table: &Table, v: &TextVectors, pca_dims: usize, warnings: &mut Warnings) -> Result<TextSchema> {
        check_vectors(v, table.n_rows, v.vectors.cols())?;
        let (pca, warn) = Pca::fit(&v.vectors, pca_dims)?;
        warnings.extend(warn);
        let scale = pca.explained_variance.iter().map(|v| v.sqrt()).collect();
        Ok(TextSchema {
            column: table.text.as_ref().map(|t| t.name.clone()),
            source: "embeddings-file".into(),
            embedder: None,
            pca,
            scale,
        })
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
