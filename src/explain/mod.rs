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

pub mod lasso;
pub mod llm;
pub mod tsne;
pub mod vocab;

use serde::{Deserialize, Serialize};

use crate::backend::{MixtureData, Posteriors};
use crate::data::Table;
use crate::foundation::MISSING_CODE;
use crate::foundation::error::Result;
use crate::foundation::linalg;
use crate::foundation::rng::Rng;
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

/// The nearest distinct texts to `center` under `dist`, with their posteriors for class `k`.
fn nearest(
    texts: &[Option<String>],
    rows: &[usize],
    dist: &dyn Fn(usize) -> f64,
    post: &[f64],
    kk: usize,
    k: usize,
    n: usize,
) -> Vec<Prototype> {
    let mut scored: Vec<(f64, usize)> = rows.iter().map(|&i| (dist(i), i)).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (d, i) in scored {
        let t = texts[i].as_deref().unwrap_or_default();
        if seen.insert(t) {
            out.push(Prototype { text: t.to_string(), row: i, distance: d, posterior: post[i * kk + k] });
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// Builds the explanation of a finished fit from its rows (as fitted) and its table (for the
/// texts and original values).
pub fn explain(fit: &Fitted, opts: &ExplainOptions) -> Result<Clusters> {
    let Fitted { model, posteriors, data, table, .. } = *fit;
    let params = &model.params;
    let (n, p, k) = (data.n, data.p, params.k);
    let post = &posteriors.resp;
    let labels = posteriors.labels();
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l] += 1);
    let observed = |i: usize, c: usize| data.patterns[data.pattern[i] as usize][c];

    // Text: prototypes and the decoder.
    let d = model.schema.text.as_ref().map_or(0, |t| t.pca.d());
    let text_col = table.text.as_ref();
    let text_rows: Vec<usize> = match text_col {
        Some(col) if d > 0 => (0..n).filter(|&i| col.values[i].is_some() && observed(i, 0)).collect(),
        _ => Vec::new(),
    };
    let scale: Vec<f64> = model.schema.text.as_ref().map_or_else(Vec::new, |t| t.scale.clone());
    let mut protos = vec![(Vec::new(), Vec::new()); k];
    let mut keywords = vec![Vec::new(); k];
    let mut decoder = None;
    if let (Some(col), false) = (text_col, text_rows.is_empty()) {
        let xt: Vec<f64> = (0..n).flat_map(|i| data.x[i * p..i * p + d].iter().copied()).collect();
        for (kk, pr) in protos.iter_mut().enumerate() {
            let mu = &params.means[kk * p..kk * p + d];
            // Euclidean in the embedding's own units: the standardized PCA scores times their
            // scale (√eigenvalue), so low-variance components do not count as much as the rest.
            let euclid = |i: usize| -> f64 {
                let r = &xt[i * d..(i + 1) * d];
                (0..d).map(|a| (scale[a] * (r[a] - mu[a])).powi(2)).sum::<f64>().sqrt()
            };
            // Mahalanobis under the class covariance's text block.
            let cov = params.covariance(kk);
            let block: Vec<f64> = (0..d * d).map(|t| cov[(t / d) * p + t % d]).collect();
            let chol = linalg::cholesky(&block, d);
            let maha = |i: usize| -> f64 {
                let diff: Vec<f64> = xt[i * d..(i + 1) * d].iter().zip(mu).map(|(a, b)| a - b).collect();
                match &chol {
                    Some(l) => {
                        // Solve L z = diff; distance = ‖z‖.
                        let mut z = vec![0.0; d];
                        for a in 0..d {
                            let s: f64 = (0..a).map(|b| l[a * d + b] * z[b]).sum();
                            z[a] = (diff[a] - s) / l[a * d + a];
                        }
                        z.iter().map(|v| v * v).sum::<f64>().sqrt()
                    }
                    None => f64::NAN,
                }
            };
            pr.0 = nearest(&col.values, &text_rows, &euclid, post, k, kk, opts.prototypes);
            if chol.is_some() {
                pr.1 = nearest(&col.values, &text_rows, &maha, post, k, kk, opts.prototypes);
            }
        }
        let texts: Vec<&str> = text_rows.iter().map(|&i| col.values[i].as_deref().unwrap_or_default()).collect();
        let vocab = vocab::Vocabulary::build(&texts, opts.min_df, opts.max_terms);
        if !vocab.terms.is_empty() {
            let m = text_rows.len();
            let x: Vec<f64> = text_rows.iter().flat_map(|&i| xt[i * d..(i + 1) * d].iter().copied()).collect();
            let v = vocab.terms.len();
            let mean: Vec<f64> = vocab.df.iter().map(|&c| c as f64 / m as f64).collect();
            let sd: Vec<f64> = mean.iter().map(|&q| (q * (1.0 - q)).sqrt().max(1e-12)).collect();
            let (lambda, choice) = match opts.lambda {
                Some(l) => (l, "given (--lambda)".to_string()),
                None => choose_lambda(&x, d, &vocab.docs, &mean, &sd, opts.seed),
            };
            let all: Vec<usize> = (0..m).collect();
            let (g, c) = lasso::gram_stats(&x, d, &vocab.docs, &all, &mean, &sd);
            let mut w = vec![0.0; d * v];
            lasso::lasso_gram(&g, &c, d, v, lambda, &mut w, 1e-6, 1000);
            let xbar: Vec<f64> = (0..d).map(|a| (0..m).map(|i| x[i * d + a]).sum::<f64>() / m as f64).collect();
            for (kk, kw) in keywords.iter_mut().enumerate() {
                let delta: Vec<f64> = (0..d).map(|a| params.means[kk * p + a] - xbar[a]).collect();
                let mut scores: Vec<(f64, usize)> = (0..v)
                    .map(|t| ((0..d).map(|a| delta[a] * w[a * v + t]).sum::<f64>(), t))
                    .filter(|s| s.0 > 0.0)
                    .collect();
                scores.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                *kw = scores
                    .iter()
                    .take(opts.keywords)
                    .map(|&(s, t)| Keyword { word: vocab.terms[t].clone(), score: s })
                    .collect();
            }
            decoder = Some(DecoderInfo {
                terms: v,
                min_df: opts.min_df,
                lambda,
                lambda_choice: choice,
                nonzero: w.iter().filter(|x| **x != 0.0).count(),
            });
        }
    }

    // Categorical profiles and Cramér's V.
    let j = data.n_cat();
    let mut variables = Vec::new();
    let mut cat_profiles = vec![std::collections::BTreeMap::new(); k];
    for (jj, cs) in model.schema.categorical.iter().enumerate() {
        let l = data.n_levels[jj];
        let mut weighted = vec![0.0; k * l];
        let mut pop = vec![0.0; l];
        let mut hard = vec![0.0; k * l];
        for i in 0..n {
            let code = data.codes[i * j + jj];
            if code == MISSING_CODE {
                continue;
            }
            let c = code as usize;
            pop[c] += 1.0;
            hard[labels[i] * l + c] += 1.0;
            for kk in 0..k {
                weighted[kk * l + c] += post[i * k + kk];
            }
        }
        let total: f64 = pop.iter().sum();
        for kk in 0..k {
            let row_total: f64 = weighted[kk * l..(kk + 1) * l].iter().sum();
            let levels: Vec<LevelShare> = (0..l)
                .map(|c| {
                    let share = weighted[kk * l + c] / row_total.max(1e-300);
                    let population = pop[c] / total.max(1.0);
                    LevelShare {
                        level: cs.levels[c].clone(),
                        share,
                        population,
                        lift: if population > 0.0 { share / population } else { 0.0 },
                    }
                })
                .collect();
            let mut over: Vec<&LevelShare> = levels.iter().filter(|s| s.lift > 1.0 && s.share >= 0.05).collect();
            over.sort_by(|a, b| b.lift.total_cmp(&a.lift));
            let over_represented = over.iter().take(3).map(|s| s.level.clone()).collect();
            cat_profiles[kk].insert(cs.name.clone(), CategoricalProfile { levels, over_represented });
        }
        variables.push(Power {
            variable: cs.name.clone(),
            kind: "categorical".into(),
            measure: "cramers_v".into(),
            power: cramers_v(&hard, k, l),
        });
    }

    // Metric profiles (original units) and η².
    let mut metric_profiles = vec![std::collections::BTreeMap::new(); k];
    for (jn, ns) in model.schema.numeric.iter().enumerate() {
        let c = model.schema.numeric_coordinate(jn);
        // Means and sds in the metric's original units (a log-modelled metric is averaged after
        // exp, not exp'd after averaging); z in the modelled units.
        let vals: Vec<(usize, f64, f64)> = (0..n)
            .filter(|&i| observed(i, c))
            .map(|i| (i, data.x[i * p + c], ns.original(data.x[i * p + c])))
            .collect();
        let moments = |w: &dyn Fn(usize) -> f64| {
            let wsum: f64 = vals.iter().map(|v| w(v.0)).sum::<f64>().max(1e-300);
            let mz = vals.iter().map(|v| w(v.0) * v.1).sum::<f64>() / wsum;
            let my = vals.iter().map(|v| w(v.0) * v.2).sum::<f64>() / wsum;
            let vz = vals.iter().map(|v| w(v.0) * (v.1 - mz).powi(2)).sum::<f64>() / wsum;
            let vy = vals.iter().map(|v| w(v.0) * (v.2 - my).powi(2)).sum::<f64>() / wsum;
            (mz, vz.sqrt(), my, vy.sqrt())
        };
        let (m_all, sd_all, y_all, ysd_all) = moments(&|_| 1.0);
        for (kk, prof) in metric_profiles.iter_mut().enumerate() {
            let (mean, _, y, ysd) = moments(&|i| post[i * k + kk]);
            prof.insert(
                ns.name.clone(),
                MetricProfile {
                    mean: y,
                    sd: ysd,
                    overall_mean: y_all,
                    overall_sd: ysd_all,
                    z: if sd_all > 0.0 { (mean - m_all) / sd_all } else { 0.0 },
                },
            );
        }
        let cols = [c];
        variables.push(Power {
            variable: ns.name.clone(),
            kind: "metric".into(),
            measure: "eta_squared".into(),
            power: eta_squared(data, &labels, k, &cols, &[1.0]),
        });
    }
    if d > 0 {
        // Pooled over the text scores, each weighted by its variance (scale²): the η² of the
        // reduced embedding itself.
        let cols: Vec<usize> = (0..d).collect();
        let weights: Vec<f64> = scale.iter().map(|s| s * s).collect();
        variables.push(Power {
            variable: text_col.map_or("text".to_string(), |c| c.name.clone()),
            kind: "text".into(),
            measure: "eta_squared".into(),
            power: eta_squared(data, &labels, k, &cols, &weights),
        });
    }
    variables.sort_by(|a, b| b.power.total_cmp(&a.power));

    let (map_variance, map) = map_2d(data, &labels, opts.map_points, opts.seed);
    let (tsne_of, tsne_map) = match &opts.tsne {
        Some(t) => {
            // The reduced embedding in its own units when there is text, else the continuous
            // block, on rows that have it.
            let (rows, f, what): (Vec<usize>, usize, String) = if d > 0 {
                (text_rows.clone(), d, "the reduced text embedding".into())
            } else {
                ((0..n).collect(), p, "the continuous block".into())
            };
            if f == 0 || rows.len() < 3 {
                (None, Vec::new())
            } else {
                let rows = Rng::new(opts.seed ^ 0x7513e).sample_sorted(rows, TSNE_ROWS);
                let w = |a: usize| if d > 0 { scale[a] } else { 1.0 };
                let x: Vec<f64> = rows
                    .iter()
                    .flat_map(|&i| (0..f).map(move |a| (i, a)))
                    .map(|(i, a)| w(a) * data.x[i * p + a])
                    .collect();
                let y = tsne::tsne(&x, rows.len(), f, t);
                let pts = rows
                    .iter()
                    .zip(y)
                    .map(|(&i, q)| MapPoint { row: i, x: q[0], y: q[1], class: labels[i] + 1 })
                    .collect();
                (Some(format!("t-SNE (perplexity {}) of {what}, {} rows", t.perplexity, rows.len())), pts)
            }
        }
        None => (None, Vec::new()),
    };
    let mut classes = Vec::with_capacity(k);
    for kk in 0..k {
        let (pe, pm) = std::mem::take(&mut protos[kk]);
        let mut c = ClassReport {
            class: kk + 1,
            size: sizes[kk],
            weight: params.weights[kk],
            prototypes: pe,
            prototypes_mahalanobis: pm,
            keywords: std::mem::take(&mut keywords[kk]),
            categorical: std::mem::take(&mut cat_profiles[kk]),
            metrics: std::mem::take(&mut metric_profiles[kk]),
            prompt: String::new(),
            label: None,
            strategy: None,
        };
        c.prompt = prompt(&c, k, n, text_col.map(|t| t.name.as_str()));
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

/// λ on a seeded 80/20 split: the path λ_max · {1, ½, ⅕, …, 1/1000} (λ_max zeroes every
/// weight) is fitted on 80% of the texts with warm starts, and the λ with the lowest held-out
/// error per (text, word) wins.
fn choose_lambda(x: &[f64], d: usize, docs: &[Vec<u32>], mean: &[f64], sd: &[f64], seed: u64) -> (f64, String) {
    let m = docs.len();
    let v = mean.len();
    let mut idx: Vec<usize> = (0..m).collect();
    let mut rng = Rng::new(seed ^ 0x1a550);
    for t in (1..m).rev() {
        idx.swap(t, rng.below(t + 1));
    }
    let cut = (m * 4 / 5).max(1).min(m.saturating_sub(1)).max(1);
    let (train, val) = idx.split_at(cut);
    let (g, c) = lasso::gram_stats(x, d, docs, train, mean, sd);
    let lambda_max = c.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    if val.is_empty() || lambda_max == 0.0 {
        return (lambda_max.max(1e-3) * 0.1, "λ_max / 10 (too few texts to validate)".into());
    }
    let (gv, cv) = lasso::gram_stats(x, d, docs, val, mean, sd);
    // Σ over validation rows of ỹ², divided by their count.
    let mut yy = 0.0;
    let mut present = vec![0usize; v];
    for &i in val {
        for &t in &docs[i] {
            present[t as usize] += 1;
        }
    }
    for t in 0..v {
        let ones = present[t] as f64;
        let zeros = val.len() as f64 - ones;
        yy += ones * ((1.0 - mean[t]) / sd[t]).powi(2) + zeros * (mean[t] / sd[t]).powi(2);
    }
    yy /= val.len() as f64;
    let mut w = vec![0.0; d * v];
    let mut best = (f64::INFINITY, lambda_max);
    for f in [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001] {
        let lambda = lambda_max * f;
        lasso::lasso_gram(&g, &c, d, v, lambda, &mut w, 1e-6, 500);
        let err = lasso::heldout_mse(&gv, &cv, yy, d, v, &w);
        if err < best.0 {
            best = (err, lambda);
        }
    }
    (best.1, format!("lowest held-out error on a seeded 80/20 split of {m} texts (λ_max = {lambda_max:.4})"))
}

/// Cramér's V of a K × L contingency table of counts.
fn cramers_v(table: &[f64], k: usize, l: usize) -> f64 {
    let n: f64 = table.iter().sum();
    if n == 0.0 || k < 2 || l < 2 {
        return 0.0;
    }
    let rows: Vec<f64> = (0..k).map(|a| table[a * l..(a + 1) * l].iter().sum()).collect();
    let cols: Vec<f64> = (0..l).map(|b| (0..k).map(|a| table[a * l + b]).sum()).collect();
    let mut chi2 = 0.0;
    for a in 0..k {
        for b in 0..l {
            let e = rows[a] * cols[b] / n;
            if e > 0.0 {
                chi2 += (table[a * l + b] - e).powi(2) / e;
            }
        }
    }
    let r = rows.iter().filter(|&&x| x > 0.0).count().min(cols.iter().filter(|&&x| x > 0.0).count());
    if r < 2 { 0.0 } else { (chi2 / (n * (r - 1) as f64)).sqrt().min(1.0) }
}

/// η² = between-class / total sum of squares of the observed values of `cols` (pooled, column
/// `cols[t]` weighted by `weights[t]`), by the hard labels.
fn eta_squared(data: &MixtureData, labels: &[usize], k: usize, cols: &[usize], weights: &[f64]) -> f64 {
    let p = data.p;
    let (mut between, mut total) = (0.0, 0.0);
    for (&c, &wt) in cols.iter().zip(weights) {
        let mut sum = vec![0.0; k];
        let mut cnt = vec![0.0; k];
        let (mut s, mut s2, mut m) = (0.0, 0.0, 0.0);
        for i in 0..data.n {
            if !data.patterns[data.pattern[i] as usize][c] {
                continue;
            }
            let v = data.x[i * p + c];
            sum[labels[i]] += v;
            cnt[labels[i]] += 1.0;
            s += v;
            s2 += v * v;
            m += 1.0;
        }
        if m == 0.0 {
            continue;
        }
        let mean = s / m;
        total += wt * (s2 - m * mean * mean);
        between +=
            wt * (0..k).filter(|&a| cnt[a] > 0.0).map(|a| cnt[a] * (sum[a] / cnt[a] - mean).powi(2)).sum::<f64>();
    }
    if total > 0.0 { (between / total).clamp(0.0, 1.0) } else { 0.0 }
}

/// The rows on the first two principal axes of the continuous block (missing values at the
/// mean, 0), at most `points` of them (a seeded sample), and each axis' share of the variance.
/// Without a continuous block, the one-hot categoricals are used.
fn map_2d(data: &MixtureData, labels: &[usize], points: usize, seed: u64) -> ([f64; 2], Vec<MapPoint>) {
    let n = data.n;
    let (f, feats): (usize, Vec<f64>) =
        if data.p > 0 { (data.p, data.x.clone()) } else { (data.total_levels(), data.one_hot()) };
    if f == 0 {
        return ([0.0, 0.0], Vec::new());
    }
    let mean: Vec<f64> = (0..f).map(|a| (0..n).map(|i| feats[i * f + a]).sum::<f64>() / n as f64).collect();
    let mut cov = vec![0.0; f * f];
    for i in 0..n {
        let r = &feats[i * f..(i + 1) * f];
        for a in 0..f {
            for b in a..f {
                cov[a * f + b] += (r[a] - mean[a]) * (r[b] - mean[b]);
            }
        }
    }
    for a in 0..f {
        for b in 0..a {
            cov[a * f + b] = cov[b * f + a];
        }
    }
    let (vals, vecs) = linalg::symmetric_eigen(&cov, f);
    let total: f64 = vals.iter().map(|v| v.max(0.0)).sum::<f64>().max(1e-300);
    let axis = |c: usize| -> Vec<f64> { (0..f).map(|a| if c < f { vecs[a * f + c] } else { 0.0 }).collect() };
    let (ax, ay) = (axis(0), axis(1));
    let share =
        [vals.first().copied().unwrap_or(0.0).max(0.0) / total, vals.get(1).copied().unwrap_or(0.0).max(0.0) / total];
    let rows = Rng::new(seed ^ 0x3a9).sample_sorted((0..n).collect(), points);
    let map = rows
        .iter()
        .map(|&i| {
            let r = &feats[i * f..(i + 1) * f];
            let proj = |ax: &[f64]| (0..f).map(|a| (r[a] - mean[a]) * ax[a]).sum::<f64>();
            MapPoint { row: i, x: proj(&ax), y: proj(&ay), class: labels[i] + 1 }
        })
        .collect();
    (share, map)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// The prompt that asks an LLM for a label and a one-sentence strategy.
fn prompt(c: &ClassReport, k: usize, n: usize, text_col: Option<&str>) -> String {
    let mut s = String::from(
        "You are a marketing analyst. A clustering model split a table of ads into segments. \
         Name the segment below and suggest how to act on it.\n\n",
    );
    s += &format!("Segment {} of {k}: {} of {n} rows ({} of the weight).\n", c.class, c.size, pct(c.weight));
    if !c.keywords.is_empty() {
        let words: Vec<&str> = c.keywords.iter().map(|w| w.word.as_str()).collect();
        s += &format!("Characteristic words of its {}: {}.\n", text_col.unwrap_or("text"), words.join(", "));
    }
    if !c.prototypes.is_empty() {
        s += "Typical texts:\n";
        for pr in &c.prototypes {
            s += &format!("- \"{}\"\n", pr.text);
        }
    }
    let mut cats = Vec::new();
    for (col, prof) in &c.categorical {
        for lvl in &prof.over_represented {
            if let Some(l) = prof.levels.iter().find(|l| &l.level == lvl) {
                cats.push(format!("{col} = {lvl} ({} of the segment, {:.1}× the overall rate)", pct(l.share), l.lift));
            }
        }
    }
    if !cats.is_empty() {
        s += &format!("Over-represented: {}.\n", cats.join("; "));
    }
    let mets: Vec<String> = c
        .metrics
        .iter()
        .map(|(name, m)| {
            let rel = if m.overall_mean != 0.0 { (m.mean / m.overall_mean - 1.0) * 100.0 } else { 0.0 };
            format!("{name} {:.3} vs {:.3} overall ({rel:+.0}%)", m.mean, m.overall_mean)
        })
        .collect();
    if !mets.is_empty() {
        s += &format!("Metrics, segment mean vs overall: {}.\n", mets.join("; "));
    }
    s += "\nAnswer with JSON only: {\"label\": \"<a 2-5 word name>\", \"strategy\": \"<one sentence>\"}";
    s
}
