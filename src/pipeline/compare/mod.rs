//! `segmix compare`: the joint latent class model against the segmentations users run today,
//! on the same rows, over the same K range, scored in one space.
//!
//! Methods (names as in `compare.csv`):
//! * `segmix` — the joint mixture (best restart per K by the criterion);
//! * `kmeans` — k-means on the standardized numerics + one-hot categoricals;
//! * `kprototypes` — Huang's k-prototypes on the numerics and the categorical codes;
//! * `embedding_kmeans` — every column of a row serialised into one text, embedded with the
//!   sentence transformer, then k-means on the vectors (the "LLM + k-means" recipe);
//! * `gmm_text` — a Gaussian mixture on the reduced text embedding alone.
//!
//! Scores: silhouette, Davies–Bouldin and Calinski–Harabasz, all in the *evaluation space* Z =
//! [continuous block of the joint model (PCA text scores and standardized metrics, each with
//! unit variance, missing at the mean 0), one-hot categoricals × 1/√2 (so a differing level adds
//! 1 to a squared distance, like one standard deviation)]; ARI and NMI against `--truth`.
//! Silhouette is exact up to [`SILHOUETTE_EXACT`] rows, else on a seeded sample of
//! [`SILHOUETTE_SAMPLE`] rows.

pub mod baselines;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use baselines::{MixedRows, RowTemplate, huang_gamma, kmeans_restarts, kprototypes};

use crate::backend::{Backend, MixtureData};
use crate::data::{Roles, Strictness, read_table};
use crate::foundation::choice::Choice;
use crate::foundation::error::{Error, Result};
use crate::foundation::metrics::{
    adjusted_rand_index, calinski_harabasz, davies_bouldin, normalized_mutual_info, silhouettes,
};
use crate::foundation::rng::Rng;
use crate::mixture::em::{Progress, fit_sweep};
use crate::mixture::predict;
use crate::pipeline::{FitJob, FitOutput, Inputs, TextEmbedder, fit_inputs, read_inputs};
use crate::report::{self, Num, write_atomic};

/// Largest table whose silhouette is computed over every row.
pub const SILHOUETTE_EXACT: usize = 20_000;
/// Rows in the seeded silhouette sample of a larger table.
pub const SILHOUETTE_SAMPLE: usize = 10_000;

/// Inputs of a comparison: the joint model's fit job plus the baselines' options.
#[derive(Debug, Clone)]
pub struct CompareJob {
    pub fit: FitJob,
    /// Column holding known segments (scored by ARI and NMI; never a model input).
    pub truth: Option<String>,
    /// Row serialisation for `embedding_kmeans` (see [`RowTemplate`]).
    pub template: Option<String>,
    /// k-prototypes' weight of a categorical mismatch; Huang's rule when `None`.
    pub gamma: Option<f64>,
    /// The baselines to run (a subset of [`BASELINES`]); the joint model always runs, since its
    /// fit defines the evaluation space.
    pub baselines: Vec<Method>,
}

/// A segmentation method of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Segmix,
    KMeans,
    KPrototypes,
    EmbeddingKMeans,
    GmmText,
}

impl Choice for Method {
    const ALL: &'static [Method] =
        &[Method::Segmix, Method::KMeans, Method::KPrototypes, Method::EmbeddingKMeans, Method::GmmText];

    fn name(self) -> &'static str {
        match self {
            Method::Segmix => "segmix",
            Method::KMeans => "kmeans",
            Method::KPrototypes => "kprototypes",
            Method::EmbeddingKMeans => "embedding_kmeans",
            Method::GmmText => "gmm_text",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Method::Segmix => "the joint mixture, best restart per K",
            Method::KMeans => "k-means on the standardized numerics and one-hot categoricals",
            Method::KPrototypes => "Huang's k-prototypes on the numerics and categorical codes",
            Method::EmbeddingKMeans => "every column of a row serialised into one text, embedded, then k-means",
            Method::GmmText => "a Gaussian mixture on the reduced text embedding alone",
        }
    }
}

impl Method {
    /// The name of the method's own objective (its elbow curve).
    pub fn objective(self) -> &'static str {
        match self {
            Method::Segmix | Method::GmmText => "BIC",
            Method::KPrototypes => "cost",
            Method::KMeans | Method::EmbeddingKMeans => "inertia",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Every baseline, in the order `compare.csv` lists them.
pub const BASELINES: [Method; 4] = [Method::KMeans, Method::KPrototypes, Method::EmbeddingKMeans, Method::GmmText];

/// Parses `--methods a,b,..` into baselines (`segmix` is accepted and implied).
pub fn parse_methods(list: &str) -> Result<Vec<Method>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m = Method::parse(name).ok_or_else(|| {
            Error::config(format!("--methods: unknown method {name:?}; choose from {}", Method::names()))
        })?;
        if m != Method::Segmix && !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// One (method, K) line of `compare.csv`.
#[derive(Debug, Clone)]
pub struct Score {
    pub method: Method,
    pub k: usize,
    pub silhouette: Option<f64>,
    pub davies_bouldin: Option<f64>,
    pub calinski_harabasz: Option<f64>,
    pub ari: Option<f64>,
    pub nmi: Option<f64>,
    /// The method's time for this K; setup shared by the K range (embedding, PCA) is split
    /// evenly over it.
    pub seconds: f64,
    /// The method's own objective: BIC (segmix, gmm_text), inertia (k-means), cost (k-prototypes).
    pub objective: f64,
}

/// A finished comparison.
#[derive(Debug)]
pub struct CompareOutput {
    pub scores: Vec<Score>,
    /// The joint model's fit (written beside the comparison), its prepared rows and its table.
    pub fit: FitOutput,
    pub data: MixtureData,
    pub table: crate::data::Table,
    pub n_rows: usize,
    /// Width of the evaluation space.
    pub space_dims: usize,
    /// Rows the silhouette was computed on (all of them up to [`SILHOUETTE_EXACT`]).
    pub silhouette_rows: usize,
    /// Rows with a truth label.
    pub truth_rows: Option<usize>,
    pub gamma: Option<f64>,
    /// Methods that could not run on this table, and why.
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
}

/// Labels of one method at one K, with its time and objective.
struct Labeled {
    method: Method,
    k: usize,
    labels: Vec<u32>,
    seconds: f64,
    objective: f64,
}

/// The evaluation space Z (n × (p + total levels)); see the module documentation.
pub fn evaluation_space(data: &MixtureData) -> Vec<f64> {
    let (p, tl) = (data.p, data.total_levels());
    let off = data.level_offsets();
    let w = p + tl;
    let mut z = vec![0.0; data.n * w];
    for i in 0..data.n {
        z[i * w..i * w + p].copy_from_slice(&data.x[i * p..(i + 1) * p]);
        data.one_hot_row(i, &off, &mut z[i * w + p..(i + 1) * w], std::f64::consts::FRAC_1_SQRT_2);
    }
    z
}

/// Labels of a mixture sweep's best model at every K: its time is the K's runs plus `shared`, its
/// objective the best BIC.
fn mixture_labels<B: Backend>(
    backend: &B,
    sweep: &crate::mixture::em::Sweep,
    data: &MixtureData,
    method: Method,
    shared: f64,
) -> Result<Vec<Labeled>> {
    let mut out = Vec::with_capacity(sweep.best_per_k.len());
    let dev = backend.upload(data)?;
    for params in &sweep.best_per_k {
        let k = params.k;
        let post = predict::posteriors_resident(backend, &dev, data, params)?;
        let runs = sweep.runs.iter().filter(|r| r.k == k);
        // The best eligible fit's BIC; a K whose every fit is degenerate has none.
        let best = sweep.per_k.iter().find(|s| s.k == k).and_then(|s| s.criteria).map_or(f64::NAN, |c| c.bic);
        out.push(Labeled {
            method,
            k,
            labels: post.labels().into_iter().map(|l| l as u32).collect(),
            seconds: runs.map(|r| r.seconds).sum::<f64>() + shared,
            objective: best,
        });
    }
    Ok(out)
}

/// Reads the truth column as labels (`u32::MAX` where missing).
fn read_truth(job: &CompareJob, col: &str) -> Result<Vec<u32>> {
    let roles = &job.fit.roles;
    if roles.categorical.iter().chain(&roles.numeric).chain(roles.text.iter()).any(|c| c == col) {
        return Err(Error::config(format!(
            "--truth {col:?} is also a model input (--cat/--num/--text); the reference partition must not be"
        )));
    }
    let t = read_table(
        &job.fit.data,
        &Roles { categorical: vec![col.to_string()], numeric: vec![], text: None },
        Strictness::Fit,
    )?;
    let mut ids = std::collections::HashMap::new();
    Ok(t.categorical[0]
        .values
        .iter()
        .map(|v| match v {
            Some(s) => {
                let next = ids.len() as u32;
                *ids.entry(s.clone()).or_insert(next)
            }
            None => u32::MAX,
        })
        .collect())
}

/// Runs the joint model and every baseline that the table allows, and scores them.
/// Runs the joint model and the chosen baselines on the job's rows over its K range, and scores
/// every (method, K) in one space.
pub fn compare<B: Backend>(
    backend: &B,
    job: &CompareJob,
    embedder: Option<&TextEmbedder>,
    progress: &dyn Progress,
) -> Result<CompareOutput> {
    if let Some(g) = job.gamma
        && !(g >= 0.0 && g.is_finite())
    {
        return Err(Error::config("--gamma must be a finite number ≥ 0"));
    }
    // embedding_kmeans serialises every model column in role order; its template is checked
    // before anything is read, embedded or fitted.
    let roles = &job.fit.roles;
    let columns: Vec<String> = roles.categorical.iter().chain(&roles.numeric).chain(&roles.text).cloned().collect();
    let template = match embedder {
        Some(_) if job.wants(Method::EmbeddingKMeans) => Some(RowTemplate::new(job.template.as_deref(), &columns)?),
        _ => None,
    };
    let mut inputs = read_inputs(&job.fit, embedder)?;
    let truth = job.truth.as_deref().map(|c| read_truth(job, c)).transpose()?;
    let embed_seconds = inputs.started.elapsed().as_secs_f64();
    let (fit, data) = fit_inputs(backend, &job.fit, &mut inputs, progress)?;
    let ks: Vec<usize> = (job.fit.config.k_min..=job.fit.config.k_max).collect();
    let shared = embed_seconds / ks.len() as f64;
    let mut runs = Runs { labeled: Vec::new(), skipped: Vec::new(), warnings: fit.warnings.clone() };

    // The joint model: the best restart of every K.
    runs.labeled.extend(mixture_labels(backend, &fit.sweep, &data, Method::Segmix, shared)?);
    let gamma = mixed_baselines(job, &fit, &data, &ks, &mut runs)?;
    match embedder.zip(template) {
        None if job.wants(Method::EmbeddingKMeans) => {
            runs.skipped.push("embedding_kmeans: no sentence embedder".to_string())
        }
        None => {}
        Some((te, template)) => embedding_kmeans(job, te, &template, &inputs, &ks, &mut runs)?,
    }
    gmm_text(backend, job, &fit, &data, shared, &mut runs)?;

    let scored = score(&data, &runs.labeled, truth.as_deref(), job.fit.config.seed);
    Ok(CompareOutput {
        scores: scored.scores,
        fit,
        data,
        table: inputs.table,
        n_rows: scored.n_rows,
        space_dims: scored.space_dims,
        silhouette_rows: scored.silhouette_rows,
        truth_rows: scored.truth_rows,
        gamma,
        skipped: runs.skipped,
        warnings: runs.warnings,
    })
}

impl CompareJob {
    fn wants(&self, m: Method) -> bool {
        self.baselines.contains(&m)
    }
}

/// What the methods produced so far: labels per (method, K), methods that could not run, and
/// warnings.
struct Runs {
    labeled: Vec<Labeled>,
    skipped: Vec<String>,
    warnings: Vec<String>,
}

/// k-means on the standardized numerics (as in the joint model) and one-hot categoricals, and
/// k-prototypes on the numerics and codes; returns the γ k-prototypes used.
fn mixed_baselines(
    job: &CompareJob,
    fit: &FitOutput,
    data: &MixtureData,
    ks: &[usize],
    runs: &mut Runs,
) -> Result<Option<f64>> {
    let cfg = &job.fit.config;
    let schema = &fit.model.schema;
    let num_cols: Vec<usize> = (0..schema.numeric.len()).map(|j| schema.numeric_coordinate(j)).collect();
    let (n, p, tl) = (data.n, data.p, data.total_levels());
    let observed = |i: usize, c: usize| data.patterns[data.pattern[i] as usize][c];
    let q = num_cols.len();
    let wanted: Vec<Method> = [Method::KMeans, Method::KPrototypes].into_iter().filter(|&m| job.wants(m)).collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    if q + tl == 0 {
        runs.skipped.extend(wanted.iter().map(|m| format!("{m}: no --cat or --num columns")));
        return Ok(None);
    }
    let off = data.level_offsets();
    let f = q + tl;
    let mut x = vec![0.0; n * f];
    let mut num = vec![f64::NAN; n * q];
    for i in 0..n {
        for (t, &c) in num_cols.iter().enumerate() {
            if observed(i, c) {
                x[i * f + t] = data.x[i * p + c];
                num[i * q + t] = data.x[i * p + c];
            }
        }
        data.one_hot_row(i, &off, &mut x[i * f + q..(i + 1) * f], 1.0);
    }
    if job.wants(Method::KMeans) {
        for &k in ks {
            let t = Instant::now();
            let km = kmeans_restarts(&x, n, f, k, cfg.n_init, cfg.seed);
            let seconds = t.elapsed().as_secs_f64();
            runs.labeled.push(Labeled { method: Method::KMeans, k, labels: km.labels, seconds, objective: km.inertia });
        }
    }
    if !job.wants(Method::KPrototypes) {
        return Ok(None);
    }
    let rows = MixedRows { n, p: q, num: &num, n_levels: &data.n_levels, codes: &data.codes };
    let gamma = job.gamma.unwrap_or_else(|| huang_gamma(&rows));
    for &k in ks {
        let t = Instant::now();
        let kp = kprototypes(&rows, k, gamma, cfg.n_init, cfg.seed)?;
        let seconds = t.elapsed().as_secs_f64();
        runs.labeled.push(Labeled { method: Method::KPrototypes, k, labels: kp.labels, seconds, objective: kp.cost });
    }
    Ok(Some(gamma))
}

/// Every column of a row serialised into one text by `template`, embedded, then k-means.
fn embedding_kmeans(
    job: &CompareJob,
    te: &TextEmbedder,
    template: &RowTemplate,
    inputs: &Inputs,
    ks: &[usize],
    runs: &mut Runs,
) -> Result<()> {
    let cfg = &job.fit.config;
    let t = Instant::now();
    let table = &inputs.table;
    let n = table.n_rows;
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let mut cells: Vec<Option<String>> = table.categorical.iter().map(|c| c.values[i].clone()).collect();
            cells.extend(table.numeric.iter().map(|c| {
                let v = c.values[i];
                (!v.is_nan()).then(|| format!("{v}"))
            }));
            cells.extend(table.text.iter().map(|c| c.values[i].clone()));
            template.render(&cells, job.template.is_none())
        })
        .collect();
    let refs: Vec<Option<&str>> = texts.iter().map(|s| (!s.is_empty()).then_some(s.as_str())).collect();
    // The embedder that embedded the text column, else (vectors from a file) a fresh one.
    let fresh = if inputs.embedder.is_none() { Some((te.load)()?) } else { None };
    let Some((e, cache)) = inputs.embedder.as_ref().or(fresh.as_ref()) else {
        return Err(Error::Embedder("no sentence embedder for embedding_kmeans".into()));
    };
    let m = e.embed(&refs, cache.as_ref(), te.progress)?.matrix;
    let dim = m.cols;
    let v: Vec<f64> = m.values.iter().map(|&a| if a.is_nan() { 0.0 } else { a as f64 }).collect();
    let shared = t.elapsed().as_secs_f64() / ks.len() as f64;
    for &k in ks {
        let t = Instant::now();
        let km = kmeans_restarts(&v, n, dim, k, cfg.n_init, cfg.seed);
        runs.labeled.push(Labeled {
            method: Method::EmbeddingKMeans,
            k,
            labels: km.labels,
            seconds: t.elapsed().as_secs_f64() + shared,
            objective: km.inertia,
        });
    }
    Ok(())
}

/// A Gaussian mixture on the reduced text embedding alone.
fn gmm_text<B: Backend>(
    backend: &B,
    job: &CompareJob,
    fit: &FitOutput,
    data: &MixtureData,
    shared: f64,
    runs: &mut Runs,
) -> Result<()> {
    if !job.wants(Method::GmmText) {
        return Ok(());
    }
    let Some(d) = fit.model.schema.text.as_ref().map(|t| t.pca.d()) else {
        runs.skipped.push("gmm_text: no text column or embeddings".to_string());
        return Ok(());
    };
    let (n, p) = (data.n, data.p);
    let mut tdata = MixtureData {
        n,
        p: d,
        x: (0..n).flat_map(|i| data.x[i * p..i * p + d].iter().copied()).collect(),
        ..MixtureData::default()
    };
    let obs: Vec<bool> = (0..n)
        .flat_map(|i| (0..d).map(move |c| (i, c)))
        .map(|(i, c)| data.patterns[data.pattern[i] as usize][c])
        .collect();
    tdata.set_patterns(&obs);
    let sweep = fit_sweep(backend, &tdata, &job.fit.config, &crate::mixture::em::NoProgress)?;
    runs.labeled.extend(mixture_labels(backend, &sweep, &tdata, Method::GmmText, shared)?);
    runs.warnings.extend(sweep.runs.iter().flat_map(|r| r.warnings.iter().map(|w| format!("gmm_text: {w}"))));
    Ok(())
}

/// Scores of every (method, K) and what they were computed on.
struct Scored {
    scores: Vec<Score>,
    n_rows: usize,
    space_dims: usize,
    silhouette_rows: usize,
    truth_rows: Option<usize>,
}

/// Scores every labelling in one space: silhouette (exact, or on a seeded sample of a large
/// table), Davies–Bouldin, Calinski–Harabasz, and ARI and NMI against `truth` where it is known.
fn score(data: &MixtureData, out: &[Labeled], truth: Option<&[u32]>, seed: u64) -> Scored {
    let (n, p, tl) = (data.n, data.p, data.total_levels());
    let z = evaluation_space(data);
    let w = p + tl;
    let sample: Option<Vec<usize>> = (n > SILHOUETTE_EXACT)
        .then(|| Rng::new(seed ^ 0x5111_0e77e).sample_sorted((0..n).collect(), SILHOUETTE_SAMPLE));
    let (zs, ns) = match &sample {
        Some(idx) => (idx.iter().flat_map(|&i| z[i * w..(i + 1) * w].iter().copied()).collect(), idx.len()),
        None => (z.clone(), n),
    };
    let sampled_labels: Vec<Vec<u32>> = out
        .iter()
        .map(|l| match &sample {
            Some(idx) => idx.iter().map(|&i| l.labels[i]).collect(),
            None => l.labels.clone(),
        })
        .collect();
    let refs: Vec<&[u32]> = sampled_labels.iter().map(|l| l.as_slice()).collect();
    let sil = silhouettes(&zs, ns, w, &refs);
    let known: Option<Vec<usize>> = truth.map(|t| (0..n).filter(|&i| t[i] != u32::MAX).collect());
    let scores = out
        .iter()
        .zip(sil)
        .map(|(l, s)| {
            let (ari, nmi) = match (truth, &known) {
                (Some(t), Some(rows)) if !rows.is_empty() => {
                    let a: Vec<u32> = rows.iter().map(|&i| t[i]).collect();
                    let b: Vec<u32> = rows.iter().map(|&i| l.labels[i]).collect();
                    (Some(adjusted_rand_index(&a, &b)), Some(normalized_mutual_info(&a, &b)))
                }
                _ => (None, None),
            };
            Score {
                method: l.method,
                k: l.k,
                silhouette: s,
                davies_bouldin: davies_bouldin(&z, n, w, &l.labels),
                calinski_harabasz: calinski_harabasz(&z, n, w, &l.labels),
                ari,
                nmi,
                seconds: l.seconds,
                objective: l.objective,
            }
        })
        .collect();
    Scored { scores, n_rows: n, space_dims: w, silhouette_rows: ns, truth_rows: known.map(|k| k.len()) }
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| Num(x).to_string())
}

/// Writes `compare.csv` (one line per method and K).
pub fn write_csv(path: &Path, c: &CompareOutput) -> Result<()> {
    report::write_csv(path, |w| {
        w.record(["method", "k", "silhouette", "davies_bouldin", "calinski_harabasz", "ari", "nmi", "seconds"])?;
        for s in &c.scores {
            w.text(s.method.name())?;
            w.value(s.k)?;
            for v in [s.silhouette, s.davies_bouldin, s.calinski_harabasz, s.ari, s.nmi] {
                w.text(&opt(v))?;
            }
            w.num(s.seconds)?;
            w.end()?;
        }
        Ok(())
    })
}

/// The best (method, K) for one metric: `higher` says which direction wins.
fn winner(c: &CompareOutput, get: impl Fn(&Score) -> Option<f64>, higher: bool) -> Option<&Score> {
    c.scores.iter().filter(|s| get(s).is_some_and(f64::is_finite)).max_by(|a, b| {
        let (x, y) = (get(a).unwrap(), get(b).unwrap());
        if higher { x.total_cmp(&y) } else { y.total_cmp(&x) }
    })
}

fn fmt3(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.3}"))
}

/// Writes `compare.md`: the table, the winner per metric, the joint model's selected K, and how
/// everything was measured.
pub fn write_markdown(path: &Path, data: &Path, c: &CompareOutput) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# segmix compare: {}\n", data.display());
    let _ = writeln!(
        md,
        "{} rows; K = {}..{}; the joint model selected K = {} by {}.\n",
        c.n_rows,
        c.fit.model.fit.k_range[0],
        c.fit.model.fit.k_range[1],
        c.fit.model.fit.k,
        format!("{:?}", c.fit.model.fit.criterion).to_uppercase()
    );
    let _ = writeln!(
        md,
        "| method | K | silhouette ↑ | Davies–Bouldin ↓ | Calinski–Harabasz ↑ | ARI ↑ | NMI ↑ | seconds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &c.scores {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} |",
            s.method,
            s.k,
            fmt3(s.silhouette),
            fmt3(s.davies_bouldin),
            s.calinski_harabasz.map_or("–".to_string(), |x| format!("{x:.1}")),
            fmt3(s.ari),
            fmt3(s.nmi),
            s.seconds
        );
    }
    md_winners(&mut md, c);
    md_objectives(&mut md, c);
    md_measurement(&mut md, c);
    write_atomic(path, |w| w.write_all(md.as_bytes()))
}

/// `compare.md`: the winner of every metric, and each method's best K by ARI.
fn md_winners(md: &mut String, c: &CompareOutput) {
    let _ = writeln!(md, "\n## Winner per metric\n");
    type Getter = fn(&Score) -> Option<f64>;
    let metrics: [(&str, Getter, bool); 5] = [
        ("silhouette", |s| s.silhouette, true),
        ("Davies–Bouldin", |s| s.davies_bouldin, false),
        ("Calinski–Harabasz", |s| s.calinski_harabasz, true),
        ("ARI", |s| s.ari, true),
        ("NMI", |s| s.nmi, true),
    ];
    for (name, get, higher) in metrics {
        if let Some(s) = winner(c, get, higher) {
            let _ = writeln!(md, "- **{name}**: {} at K = {} ({:.4})", s.method, s.k, get(s).unwrap());
        }
    }
    if c.truth_rows.is_some() {
        let _ = writeln!(md, "\nAt each method's best K by ARI:\n");
        let mut methods: Vec<Method> = c.scores.iter().map(|s| s.method).collect();
        methods.dedup();
        for m in methods {
            if let Some(s) = c
                .scores
                .iter()
                .filter(|s| s.method == m && s.ari.is_some())
                .max_by(|a, b| a.ari.unwrap().total_cmp(&b.ari.unwrap()))
            {
                let _ = writeln!(md, "- {m}: ARI {:.3} at K = {}", s.ari.unwrap(), s.k);
            }
        }
    }
}

/// `compare.md`: each method's own objective per K (elbow curves).
fn md_objectives(md: &mut String, c: &CompareOutput) {
    let _ = writeln!(md, "\n## Each method's own objective (elbow curves)\n");
    let _ = writeln!(
        md,
        "| method | objective | {} |",
        c.scores
            .iter()
            .filter(|s| s.method == Method::Segmix)
            .map(|s| format!("K = {}", s.k))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let kcount = c.scores.iter().filter(|s| s.method == Method::Segmix).count();
    let _ = writeln!(md, "|---|---|{}", "---:|".repeat(kcount));
    let mut methods: Vec<Method> = c.scores.iter().map(|s| s.method).collect();
    methods.dedup();
    for m in methods {
        let name = m.objective();
        let vals: Vec<String> =
            c.scores.iter().filter(|s| s.method == m).map(|s| format!("{:.1}", s.objective)).collect();
        let _ = writeln!(md, "| {m} | {name} | {} |", vals.join(" | "));
    }
}

/// `compare.md`: how the scores were measured, what did not run, and the outliers.
fn md_measurement(md: &mut String, c: &CompareOutput) {
    let _ = writeln!(md, "\n## How this was measured\n");
    let _ = writeln!(
        md,
        "- All internal scores are computed in one space of {} dimensions: the joint model's continuous \
         block (PCA text scores and standardized metrics, unit variance each, missing values at the mean) \
         and every categorical column one-hot × 1/√2, so a differing level adds 1 to a squared distance.",
        c.space_dims
    );
    let _ = writeln!(
        md,
        "- Silhouette: {}.",
        if c.silhouette_rows == c.n_rows {
            "exact, over every row".to_string()
        } else {
            format!("on a seeded sample of {} rows", c.silhouette_rows)
        }
    );
    if let Some(t) = c.truth_rows {
        let _ = writeln!(md, "- ARI and NMI: against the truth column, over the {t} rows that have a value.");
    }
    if let Some(g) = c.gamma {
        let _ = writeln!(md, "- k-prototypes: γ = {g} per categorical mismatch (numerics standardized).");
    }
    let _ = writeln!(
        md,
        "- seconds: the method's time for that K; setup shared by the K range (embedding the text, \
         PCA) is split evenly over it."
    );
    for s in &c.skipped {
        let _ = writeln!(md, "- Not run: {s}.");
    }
    if let Some(o) = &c.fit.outliers {
        let _ = writeln!(
            md,
            "\n## Outliers\n\n{} rows have a log-likelihood below the {} quantile ({:.3}) of the joint model \
             (`outlier` = 1 in assignments.csv). Lowest first: {}.",
            o.rows.len(),
            o.quantile,
            o.threshold,
            o.rows.iter().take(20).map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
}
