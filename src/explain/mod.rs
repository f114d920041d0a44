//! De-embedding: what each class *means*. From a finished fit and its rows this builds, per class,
//!
//! * **prototypes** — the real texts nearest the class mean in the reduced text space, by
//!   Euclidean distance and by Mahalanobis distance under the class covariance (duplicates
//!   collapsed), each with its distance and posterior;
//! * **keywords** — from a linear decoder (a Lasso from the reduced embedding to the bag of
//!   words, [`lasso`]), the words whose predicted presence rises most from the population mean
//!   to the class mean: score_kv = (μ_k − x̄)ᵀ W_v, in standard deviations of the word's presence;
//! * **profiles** — size and weight, each categorical column's class distribution with its lift
//!   over the population, each metric's class mean ± sd against the overall mean;
//! * a ready **prompt** for an LLM to name the class.
//!
//! Beside the classes: each variable's *discriminative power* (Cramér's V for a categorical
//! column, η² for a metric, variance-weighted η² of the text scores), and the 2-D map of the rows
//! (the first two principal axes of the continuous block) the report draws. All of it is written
//! to `clusters.json`.

mod decoder;
pub mod lang;
pub mod lasso;
pub mod llm;
mod maps;
mod profiles;
mod prompt;
mod prototypes;
pub mod tsne;
pub mod vocab;

use serde::{Deserialize, Serialize};

use crate::backend::{MixtureData, Posteriors};
use crate::data::{Table, TextColumn};
use crate::foundation::error::Result;
use crate::model::ModelFile;

/// What an explanation reads of a finished fit.
#[derive(Debug, Clone, Copy)]
pub struct Fitted<'a> {
    pub model: &'a ModelFile,
    /// The selected fit's posteriors, in row order.
    pub posteriors: &'a Posteriors,
    /// Rows flagged as outliers (listed in `clusters.json`).
    pub outliers: &'a [usize],
    /// The rows as fitted.
    pub data: &'a MixtureData,
    /// The table they came from (texts and original values).
    pub table: &'a Table,
}

/// Options of the explanation.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Prototypes per class.
    pub prototypes: usize,
    /// Keywords per class.
    pub keywords: usize,
    /// Minimum number of texts a term must appear in.
    pub min_df: usize,
    /// Largest vocabulary (most frequent terms).
    pub max_terms: usize,
    /// Lasso penalty; chosen on a seeded 80/20 split when `None`.
    pub lambda: Option<f64>,
    /// Rows drawn on the 2-D map at most.
    pub map_points: usize,
    /// Also lay out a t-SNE map of the reduced embedding (on at most [`TSNE_ROWS`] rows).
    pub tsne: Option<tsne::TsneOptions>,
    pub seed: u64,
}

/// Rows a t-SNE map is computed on at most (a seeded sample beyond).
pub const TSNE_ROWS: usize = 10_000;

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            prototypes: 5,
            keywords: 10,
            min_df: 3,
            max_terms: 3000,
            lambda: None,
            map_points: 4000,
            tsne: None,
            seed: 0,
        }
    }
}

/// A real text near a class mean.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prototype {
    pub text: String,
    /// Input row (0-based) of the nearest occurrence.
    pub row: usize,
    pub distance: f64,
    /// The row's posterior probability of the class.
    pub posterior: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keyword {
    pub word: String,
    pub score: f64,
}

/// One level of a categorical column within a class.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LevelShare {
    pub level: String,
    /// P(level | class), from posterior-weighted counts of the rows where the column is observed.
    pub share: f64,
    /// P(level) over all rows.
    pub population: f64,
    /// share / population.
    pub lift: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoricalProfile {
    /// Every level, in the column's level order.
    pub levels: Vec<LevelShare>,
    /// Up to three levels with lift > 1 and at least 5% share, highest lift first.
    pub over_represented: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricProfile {
    /// Posterior-weighted mean and sd of the observed values, original units.
    pub mean: f64,
    pub sd: f64,
    pub overall_mean: f64,
    pub overall_sd: f64,
    /// (mean − overall_mean) / overall_sd.
    pub z: f64,
}

/// Everything `clusters.json` says about one class.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassReport {
    /// 1-based, as in assignments.csv.
    pub class: usize,
    /// Rows whose most probable class this is.
    pub size: usize,
    /// π_k.
    pub weight: f64,
    pub prototypes: Vec<Prototype>,
    pub prototypes_mahalanobis: Vec<Prototype>,
    pub keywords: Vec<Keyword>,
    pub categorical: std::collections::BTreeMap<String, CategoricalProfile>,
    pub metrics: std::collections::BTreeMap<String, MetricProfile>,
    pub prompt: String,
    /// Set by `--llm-endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// How strongly a variable separates the classes, in [0, 1].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Power {
    pub variable: String,
    /// `categorical`, `metric` or `text`.
    pub kind: String,
    /// `cramers_v` or `eta_squared`.
    pub measure: String,
    pub power: f64,
}

/// The decoder's settings, for the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecoderInfo {
    pub terms: usize,
    pub min_df: usize,
    pub lambda: f64,
    /// How λ was chosen.
    pub lambda_choice: String,
    /// Non-zero weights in W.
    pub nonzero: usize,
}

/// A row on the 2-D map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MapPoint {
    pub row: usize,
    pub x: f64,
    pub y: f64,
    pub class: usize,
}

/// The contents of `clusters.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clusters {
    pub format: String,
    pub version: u32,
    /// File name of the table that was fitted.
    pub data: String,
    pub classes: Vec<ClassReport>,
    pub variables: Vec<Power>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<DecoderInfo>,
    /// Share of the continuous block's variance on each map axis.
    pub map_variance: [f64; 2],
    pub map: Vec<MapPoint>,
    /// The t-SNE map (`--tsne`): what it was computed on, and its points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsne_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tsne: Vec<MapPoint>,
    /// Rows flagged with `--outliers`, lowest log-likelihood first.
    #[serde(default)]
    pub outliers: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
}

impl Clusters {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("clusters serialise")
    }
}

/// The reduced text space the prototypes, the decoder and the maps share.
struct TextSpace<'a> {
    /// The text column, when the table has one.
    column: Option<&'a TextColumn>,
    /// PCA components of the text block (0 without text).
    d: usize,
    /// √eigenvalue of each component: the scores' scale in the embedding's own units.
    scale: Vec<f64>,
    /// Rows with a text whose scores are observed.
    rows: Vec<usize>,
    /// n × d text scores (standardized), when there are such rows.
    xt: Vec<f64>,
}

impl<'a> TextSpace<'a> {
    fn of(fit: &Fitted<'a>) -> TextSpace<'a> {
        let (data, schema) = (fit.data, &fit.model.schema);
        let (n, p) = (data.n, data.p);
        let d = schema.text.as_ref().map_or(0, |t| t.pca.d());
        let column = fit.table.text.as_ref();
        let observed = |i: usize| data.patterns[data.pattern[i] as usize][0];
        let rows: Vec<usize> = match column {
            Some(col) if d > 0 => (0..n).filter(|&i| col.values[i].is_some() && observed(i)).collect(),
            _ => Vec::new(),
        };
        let xt = if rows.is_empty() {
            Vec::new()
        } else {
            (0..n).flat_map(|i| data.x[i * p..i * p + d].iter().copied()).collect()
        };
        let scale = schema.text.as_ref().map_or_else(Vec::new, |t| t.scale.clone());
        TextSpace { column, d, scale, rows, xt }
    }

    /// The text column, when it has rows to explain.
    fn texts(&self) -> Option<&'a TextColumn> {
        self.column.filter(|_| !self.rows.is_empty())
    }
}

/// Builds the explanation of a finished fit from its rows (as fitted) and its table (for the
/// texts and original values): prototypes, keywords, profiles, discriminative power, maps and
/// prompts, each from its own module.
pub fn explain(fit: &Fitted, opts: &ExplainOptions) -> Result<Clusters> {
    let Fitted { model, posteriors, data, table, .. } = *fit;
    let (n, k) = (data.n, model.params.k);
    let labels = posteriors.labels();
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l] += 1);

    let text = TextSpace::of(fit);
    let (mut protos, (mut keywords, decoder)) = match text.texts() {
        Some(col) => (prototypes::prototypes(fit, &text, col, opts), decoder::keywords(fit, &text, col, opts)),
        None => (vec![(Vec::new(), Vec::new()); k], (vec![Vec::new(); k], None)),
    };
    let mut variables = Vec::new();
    let mut categorical = profiles::categorical(fit, &labels, &mut variables);
    let mut metrics = profiles::metrics(fit, &labels, &mut variables);
    if text.d > 0 {
        variables.push(profiles::text_power(fit, &text, &labels));
    }
    variables.sort_by(|a, b| b.power.total_cmp(&a.power));
    let (map_variance, map) = maps::map_2d(data, &labels, opts.map_points, opts.seed)?;
    let (tsne_of, tsne_map) = maps::tsne_map(fit, &text, &labels, opts);

    let mut classes = Vec::with_capacity(k);
    for kk in 0..k {
        let (pe, pm) = std::mem::take(&mut protos[kk]);
        let mut c = ClassReport {
            class: kk + 1,
            size: sizes[kk],
            weight: model.params.weights[kk],
            prototypes: pe,
            prototypes_mahalanobis: pm,
            keywords: std::mem::take(&mut keywords[kk]),
            categorical: std::mem::take(&mut categorical[kk]),
            metrics: std::mem::take(&mut metrics[kk]),
            prompt: String::new(),
            label: None,
            strategy: None,
        };
        c.prompt = prompt::prompt(&c, k, n, text.column.map(|t| t.name.as_str()));
        classes.push(c);
    }
    Ok(Clusters {
        format: "segmix-clusters".into(),
        version: 1,
        data: table
            .path
            .file_name()
            .map_or_else(|| table.path.display().to_string(), |f| f.to_string_lossy().into_owned()),
        classes,
        variables,
        decoder,
        map_variance,
        map,
        tsne_of,
        tsne: tsne_map,
        outliers: fit.outliers.to_vec(),
        llm_model: None,
    })
}
