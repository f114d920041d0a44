//! De-embedding: what each class *means*. From a finished fit and its rows this builds, per class,
//!
//! * **prototypes** — the member texts (rows whose most probable class it is) nearest the class
//!   mean in the reduced text space, by Euclidean distance and by Mahalanobis distance under the
//!   class covariance (duplicates collapsed), each with its distance and posterior;
//! * **keywords** — from a linear decoder (a Lasso from the reduced embedding to the bag of
//!   words, [`lasso`]), the words whose predicted presence rises most from the population mean
//!   to the class mean: score_kv = (μ_k − x̄)ᵀ W_v, in standard deviations of the word's presence
//!   ("what the embedding says"); beside them the **contrast keywords** ([`contrast`]), the words
//!   whose document frequency in the class most exceeds the rest's, as log-odds z-scores ("what
//!   the texts say");
//! * **profiles** — size and weight, each categorical column's class distribution with its lift
//!   over the population, each metric's class mean ± sd against the overall mean;
//! * a ready **prompt** for an LLM to name the class.
//!
//! Beside the classes: each variable's *discriminative power* (Cramér's V for a categorical
//! column, η² for a metric, variance-weighted η² of the text scores), the 2-D map of the rows
//! (the first two principal axes of the continuous block) the report draws, and the class
//! [`hierarchy`] (classes combined pairwise by entropy, down to one). All of it is written to
//! `clusters.json`.

pub mod contrast;
mod decoder;
pub mod hierarchy;
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

pub use profiles::{EtaSums, LevelCounts, MetricStats, Moments, RowStats};

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

impl CategoricalProfile {
    /// The profile of these levels, with its over-represented ones.
    pub fn new(levels: Vec<LevelShare>) -> Self {
        let mut over: Vec<&LevelShare> = levels.iter().filter(|s| s.lift > 1.0 && s.share >= 0.05).collect();
        over.sort_by(|a, b| b.lift.total_cmp(&a.lift));
        let over_represented = over.iter().take(3).map(|s| s.level.clone()).collect();
        CategoricalProfile { levels, over_represented }
    }
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
    /// The decoder's keywords (what the embedding says).
    pub keywords: Vec<Keyword>,
    /// The contrast keywords (what the texts say): log-odds z-scores, see [`contrast`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contrast_keywords: Vec<Keyword>,
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

/// A row the report's explorer shows: on a map, in the table of texts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowInfo {
    pub row: usize,
    /// Most probable class (1-based) and its posterior.
    pub class: usize,
    pub posterior: f64,
    /// The row's text, cut to [`ROW_TEXT_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its categorical values, in the order of `Clusters::row_columns` ("" when missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Characters of a row's text kept for the report's explorer.
pub const ROW_TEXT_CHARS: usize = 280;

/// The contents of `clusters.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clusters {
    pub format: String,
    pub version: u32,
    /// File name of the table that was fitted.
    pub data: String,
    pub classes: Vec<ClassReport>,
    /// Prototypes asked for per class (a class with fewer distinct member texts shows fewer).
    #[serde(default)]
    pub prototypes_per_class: usize,
    pub variables: Vec<Power>,
    /// The classes combined pairwise by entropy down to one ([`hierarchy`]), first step first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hierarchy: Vec<hierarchy::Merge>,
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
    /// The rows on the maps, for the report's explorer (hover, search): every row of a table up
    /// to `map_points` rows, else the maps' seeded samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowInfo>,
    /// The categorical columns of `RowInfo::values`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_columns: Vec<String>,
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

/// What the explorer shows of the rows `which` (each once, in row order).
fn row_infos(fit: &Fitted, which: impl Iterator<Item = usize>, labels: &[usize]) -> Vec<RowInfo> {
    let mut rows: Vec<usize> = which.collect();
    rows.sort_unstable();
    rows.dedup();
    let (k, cats) = (fit.model.params.k, &fit.model.schema.categorical);
    let j = fit.data.n_cat();
    let text = fit.table.text.as_ref();
    rows.into_iter()
        .map(|i| {
            let text = text.and_then(|t| t.values[i].as_deref()).map(|s| {
                let mut cut: String = s.chars().take(ROW_TEXT_CHARS).collect();
                if cut.len() < s.len() {
                    cut.push('…');
                }
                cut
            });
            let values = (0..j)
                .map(|jj| {
                    let code = fit.data.codes[i * j + jj];
                    cats.get(jj).and_then(|c| c.levels.get(code as usize)).cloned().unwrap_or_default()
                })
                .collect();
            RowInfo { row: i, class: labels[i] + 1, posterior: fit.posteriors.resp[i * k + labels[i]], text, values }
        })
        .collect()
}

/// Builds the explanation of a finished fit from its rows (as fitted) and its table (for the
/// texts and original values): prototypes, keywords, profiles, discriminative power, maps and
/// prompts, each from its own module.
pub fn explain(fit: &Fitted, opts: &ExplainOptions) -> Result<Clusters> {
    explain_with(fit, opts, RowStats::of(fit, opts, 0))
}

/// [`explain`] with the sizes, prototypes, profiles and discriminative power taken from `stats`
/// — the merged [`RowStats`] of every shard of a table of which `fit` holds a sample (a fit over
/// shards) — and the keywords, maps and hierarchy read from `fit`'s rows.
pub fn explain_with(fit: &Fitted, opts: &ExplainOptions, stats: RowStats) -> Result<Clusters> {
    let Fitted { model, posteriors, data, table, .. } = *fit;
    let (n, k) = (stats.rows, model.params.k);
    let labels = posteriors.labels();
    let sizes = stats.sizes.clone();

    let text = TextSpace::of(fit);
    let mut protos = stats.prototypes.clone();
    let ((mut keywords, decoder), mut contrast) = match text.texts() {
        Some(col) => {
            let texts: Vec<&str> = text.rows.iter().map(|&i| col.values[i].as_deref().unwrap_or_default()).collect();
            let vocab = vocab::Vocabulary::build(&texts, opts.min_df, opts.max_terms);
            (
                decoder::keywords(fit, &text, &vocab, opts),
                contrast::keywords(&vocab, &text.rows, &posteriors.resp, k, opts.keywords),
            )
        }
        None => ((vec![Vec::new(); k], None), vec![Vec::new(); k]),
    };
    let mut variables = Vec::new();
    let mut categorical = profiles::categorical(model, &stats, &mut variables);
    let mut metrics = profiles::metrics(model, &stats, &mut variables);
    if text.d > 0 {
        let name = table.text.as_ref().map_or("text".to_string(), |c| c.name.clone());
        variables.push(profiles::text_power(name, &stats, &text.scale));
    }
    variables.sort_by(|a, b| b.power.total_cmp(&a.power));
    let (map_variance, map) = maps::map_2d(data, &labels, opts.map_points, opts.seed)?;
    let (tsne_of, tsne_map) = maps::tsne_map(fit, &text, &labels, opts);
    let rows = row_infos(fit, map.iter().chain(&tsne_map).map(|p| p.row), &labels);

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
            contrast_keywords: std::mem::take(&mut contrast[kk]),
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
        prototypes_per_class: opts.prototypes,
        variables,
        hierarchy: hierarchy::combine(&posteriors.resp, k),
        decoder,
        map_variance,
        map,
        tsne_of,
        tsne: tsne_map,
        rows,
        row_columns: model.schema.categorical.iter().map(|c| c.name.clone()).collect(),
        outliers: fit.outliers.to_vec(),
        llm_model: None,
    })
}
