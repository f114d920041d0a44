//! The end-to-end flows behind `segmix fit`, `predict`, `compare` and `bench`, as library calls:
//! read → featurize → fit (or score) → explain → write. [`fit_to_folder`] is the whole fit in one
//! call; the CLI only turns arguments into these configs and prints.

pub mod bench;
pub mod compare;
pub mod sharded;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backend::{AnyBackend, Backend, MixtureData, Posteriors};
use crate::data::embeddings::read_matrix;
use crate::data::{Roles, Strictness, Table, read_table};
use crate::encoders::cache::Cache;
use crate::encoders::resolve::{cache_root, resolve};
use crate::encoders::{Embedder, EmbedderInfo};
use crate::explain::llm::{LlmEndpoint, label_classes};
use crate::explain::{self, ExplainOptions};
use crate::featurize::TextVectors;
use crate::featurize::schema::{Schema, Transform};
use crate::foundation::error::{Error, Result};
use crate::foundation::folder::{FolderWrite, Keep};
use crate::foundation::vectors::Vectors;
use crate::mixture::em::{FitConfig, Progress, Sweep, fit_sweep};
use crate::mixture::predict;
use crate::model::{FitSummary, ModelFile};
use crate::report;

/// Inputs of a fit.
#[derive(Debug, Clone)]
pub struct FitJob {
    pub data: PathBuf,
    pub roles: Roles,
    pub embeddings: Option<PathBuf>,
    /// Target number of PCA components for the text block.
    pub pca_dims: usize,
    /// Numeric columns modelled after a transform (`--log`, `--log1p`); the rest as they are.
    pub transforms: Vec<(String, Transform)>,
    pub config: FitConfig,
}

/// A finished fit, ready to be written.
#[derive(Debug)]
pub struct FitOutput {
    pub model: ModelFile,
    pub sweep: Sweep,
    /// Messages about the data and the fit that did not stop it.
    pub warnings: Vec<String>,
    /// Rows flagged by [`flag_outliers`], written as the `outlier` column of `assignments.csv`.
    pub outliers: Option<Outliers>,
}

impl FitOutput {
    /// What [`explain::explain`] reads of this fit, with its rows as fitted and their table.
    pub fn fitted<'a>(&'a self, data: &'a MixtureData, table: &'a Table) -> explain::Fitted<'a> {
        explain::Fitted {
            model: &self.model,
            posteriors: &self.sweep.posteriors,
            outliers: self.outliers.as_ref().map_or(&[], |o| &o.rows),
            data,
            table,
        }
    }
}

/// Rows whose log-likelihood under the fitted mixture falls below its Q-quantile: the mixture's
/// own density as the outlier score.
#[derive(Debug, Clone)]
pub struct Outliers {
    pub quantile: f64,
    /// The Q-quantile of the row log-likelihoods (linear interpolation, numpy's default).
    pub threshold: f64,
    /// Flagged rows, lowest log-likelihood first.
    pub rows: Vec<usize>,
    pub flags: Vec<bool>,
}

/// Flags the rows of `fit` whose log-likelihood is below the `q`-quantile (0 < q < 1).
pub fn flag_outliers(fit: &mut FitOutput, q: f64) -> Result<()> {
    if !(q > 0.0 && q < 1.0) {
        return Err(Error::config(format!(
            "--outliers {q}: give a quantile between 0 and 1, e.g. 0.01 for the lowest 1%"
        )));
    }
    let ll = &fit.sweep.posteriors.row_loglik;
    let mut sorted = ll.clone();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let threshold = sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo]);
    let flags: Vec<bool> = ll.iter().map(|&v| v < threshold).collect();
    let mut rows: Vec<usize> = (0..ll.len()).filter(|&i| flags[i]).collect();
    rows.sort_by(|&a, &b| ll[a].total_cmp(&ll[b]));
    fit.outliers = Some(Outliers { quantile: q, threshold, rows, flags });
    Ok(())
}

/// Reads an embeddings file for `table` (rows without text have no vector).
fn load_embeddings(path: Option<&Path>, table: &Table) -> Result<Option<TextVectors>> {
    let Some(p) = path else { return Ok(None) };
    Ok(Some(TextVectors::from_file(p.to_path_buf(), read_matrix(p)?, table)))
}

/// Loads a sentence embedder and its cache.
pub type LoadEmbedder<'a> = &'a dyn Fn() -> Result<(Embedder, Option<Cache>)>;

/// How to embed the text column: a loader, called only once the table has been read and
/// checked (so a bad table fails before a model is loaded or fetched), and a progress callback
/// (`done, total` distinct texts).
#[derive(Clone, Copy)]
pub struct TextEmbedder<'a> {
    pub load: LoadEmbedder<'a>,
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
}

impl std::fmt::Debug for TextEmbedder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEmbedder").finish_non_exhaustive()
    }
}

/// Which sentence embedder to load ([`load_embedder`]).
#[derive(Debug, Clone, Default)]
pub struct EmbedderOptions {
    /// A folder, a name (`multilingual`, `minilm`) or a hub id; `None`: `$SEGMIX_MODEL`, else
    /// all-MiniLM-L6-v2.
    pub model: Option<String>,
    /// Neither read nor write the on-disk embedding cache.
    pub no_cache: bool,
    /// A prefix put before every text instead of the model's default prompt.
    pub text_prefix: Option<String>,
}

/// A loaded embedder, its cache, and what the user should hear about it.
#[derive(Debug)]
pub struct LoadedEmbedder {
    pub embedder: Embedder,
    pub cache: Option<Cache>,
    /// Where the model came from and where it runs ("embedder: … on …").
    pub origin: String,
    /// Why the encoder runs on the CPU though a GPU was selected (auto only).
    pub notes: Vec<String>,
    /// The embedding cache could not be opened (it is off for this run).
    pub warnings: Vec<String>,
}

/// Resolves and loads the sentence embedder `opts` names (fetching it on first use), on the
/// backend's GPU when it has one (auto falls back to the CPU with a note), with its cache.
pub fn load_embedder(opts: &EmbedderOptions, backend: &AnyBackend) -> Result<LoadedEmbedder> {
    #[cfg(not(feature = "gpu"))]
    let _ = backend;
    let resolved = resolve(opts.model.as_deref())?;
    #[cfg_attr(not(feature = "gpu"), allow(unused_mut))]
    let mut notes = Vec::new();
    let mut e = resolved.embedder;
    if let Some(p) = &opts.text_prefix {
        e.set_prefix(Some(p.clone()));
    }
    #[cfg(feature = "gpu")]
    if let Some(gpu) = backend.gpu_backend() {
        match e.use_gpu(gpu.device()) {
            Ok(()) => {}
            // auto never fails where the CPU would work.
            Err(err) if backend.is_auto() => notes.push(format!("the sentence encoder runs on the CPU: {err}")),
            Err(err) => return Err(err),
        }
    }
    let origin = format!("embedder: {} on {}", resolved.source, e.device());
    // A cache that cannot be opened costs only the caching.
    let mut warnings = Vec::new();
    let cache = if opts.no_cache {
        None
    } else {
        match Cache::open(&cache_root().join("embeddings"), &e.info) {
            Ok(c) => Some(c),
            Err(err) => {
                warnings.push(format!("the embedding cache is off for this run: {err}"));
                None
            }
        }
    };
    Ok(LoadedEmbedder { embedder: e, cache, origin, notes, warnings })
}

/// Label used in messages about vectors that came from the embedder rather than a file.
const EMBEDDER_LABEL: &str = "<sentence embedder>";

/// Embeds the table's text column with a loaded embedder; returns the vectors (left on the GPU
/// when the encoder runs there) and warnings: how many texts were truncated, and when most
/// texts are in a script the model cannot represent.
fn embed_text_column(
    table: &Table,
    (embedder, cache): &(Embedder, Option<Cache>),
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(TextVectors, Vec<String>)> {
    let col = table.text.as_ref().ok_or_else(|| Error::config("the sentence embedder needs a --text column"))?;
    let texts: Vec<Option<&str>> = col.values.iter().map(|t| t.as_deref()).collect();
    let mut warnings: Vec<String> = representation_warning(embedder, &col.name, &texts)?.into_iter().collect();
    #[cfg(feature = "gpu")]
    if embedder.gpu_encoder().is_some() && !embedder.has_head() {
        let r = embedder.embed_resident(&texts, cache.as_ref(), progress)?;
        warnings.extend(truncation_warning(r.truncated, embedder));
        warnings.extend(cache.as_ref().and_then(Cache::take_warning));
        return Ok((TextVectors { source: PathBuf::from(EMBEDDER_LABEL), vectors: r.vectors }, warnings));
    }
    let out = embedder.embed(&texts, cache.as_ref(), progress)?;
    warnings.extend(truncation_warning(out.truncated, embedder));
    warnings.extend(cache.as_ref().and_then(Cache::take_warning));
    Ok((TextVectors { source: PathBuf::from(EMBEDDER_LABEL), vectors: Vectors::host(out.matrix) }, warnings))
}

/// The warning for a text column mostly in a script the model's vocabulary cannot represent.
fn representation_warning(embedder: &Embedder, column: &str, texts: &[Option<&str>]) -> Result<Option<String>> {
    let share = embedder.unrepresented_share(texts)?;
    Ok((share > 0.5).then(|| {
        format!(
            "{:.0}% of the texts in column {column:?} are in a script the sentence transformer {} cannot \
             represent (unknown tokens, or words broken into many pieces), so their vectors carry little \
             meaning; use a multilingual model: --model multilingual (intfloat/multilingual-e5-small)",
            100.0 * share,
            embedder.info.name
        )
    }))
}

/// The warning that counts truncated texts, when there are any.
fn truncation_warning(truncated: usize, embedder: &Embedder) -> Option<String> {
    (truncated > 0)
        .then(|| format!("{truncated} texts are longer than {} tokens and were truncated", embedder.info.max_length))
}

/// A table read and checked for a fit, with its text vectors: the first half of [`fit`], shared
/// with `segmix compare`.
#[derive(Debug)]
pub struct Inputs {
    pub table: Table,
    /// The text vectors (from a file, or the embedder; on the GPU when it embedded there).
    pub embeddings: Option<TextVectors>,
    /// The sentence embedder (and its cache) that embedded the text column, kept loaded for
    /// later use (compare's `embedding_kmeans` embeds serialised rows with it).
    pub embedder: Option<(Embedder, Option<Cache>)>,
    pub warnings: Vec<String>,
    /// When reading began (a fit's reported time includes reading and embedding).
    pub started: Instant,
}

/// Checks the job, reads the table, and embeds its text column (or reads `job.embeddings`).
///
/// The text block comes from `job.embeddings` when given, else from `embedder` embedding the
/// `--text` column.
pub fn read_inputs(job: &FitJob, embedder: Option<&TextEmbedder>) -> Result<Inputs> {
    let started = Instant::now();
    check_job(job, job.embeddings.is_some(), embedder)?;
    let table = read_table(&job.data, &job.roles, Strictness::Fit)?;
    let embeddings = load_embeddings(job.embeddings.as_deref(), &table)?;
    inputs_from_table(job, table, embeddings, embedder, started)
}

/// Checks a job's roles and options before any data is read (`vectors`: precomputed text
/// vectors come with the table).
fn check_job(job: &FitJob, vectors: bool, embedder: Option<&TextEmbedder>) -> Result<()> {
    let use_embedder = !vectors && job.roles.text.is_some();
    if use_embedder && embedder.is_none() {
        return Err(Error::config(
            "--text needs vectors: a sentence embedder, or --embeddings FILE with one precomputed vector per row",
        ));
    }
    if job.roles.categorical.is_empty() && job.roles.numeric.is_empty() && job.roles.text.is_none() && !vectors {
        return Err(Error::config("nothing to model: name columns with --cat and/or --num, or pass --embeddings"));
    }
    if job.pca_dims == 0 {
        return Err(Error::config("--pca-dims must be at least 1"));
    }
    Ok(())
}

/// The inputs of a fit from a table already read (a DataFrame handed over by the Python
/// package, read with `job.roles` and [`Strictness::Fit`]): `embeddings` are its precomputed
/// text vectors, if any; else `embedder` embeds its text column. `started` is when the job began.
pub fn inputs_from_table(
    job: &FitJob,
    table: Table,
    embeddings: Option<TextVectors>,
    embedder: Option<&TextEmbedder>,
    started: Instant,
) -> Result<Inputs> {
    let use_embedder = embeddings.is_none() && job.roles.text.is_some();
    check_job(job, embeddings.is_some(), embedder)?;
    job.config.check(table.n_rows)?;
    let mut warnings: Vec<String> = table.format_note().into_iter().collect();
    let mut loaded = None;
    let embeddings = match (use_embedder, embedder) {
        (true, Some(te)) => {
            let l = (te.load)()?;
            let (v, warning) = embed_text_column(&table, &l, te.progress)?;
            warnings.extend(warning);
            loaded = Some(l);
            Some(v)
        }
        _ => embeddings,
    };
    Ok(Inputs { table, embeddings, embedder: loaded, warnings, started })
}

/// Prepares (standardization, PCA) and fits read inputs; returns the fit and the prepared rows.
/// The text vectors move to where `backend` computes first (once), so the PCA runs there.
pub fn fit_inputs<B: Backend>(
    backend: &B,
    job: &FitJob,
    inputs: &mut Inputs,
    progress: &dyn Progress,
) -> Result<(FitOutput, MixtureData)> {
    let mut warnings = inputs.warnings.clone();
    inputs.embeddings = inputs.embeddings.take().map(|v| v.placed(backend)).transpose()?;
    let emb_ref = inputs.embeddings.as_ref();
    let (mut schema, w1) = Schema::fit(&inputs.table, emb_ref, job.pca_dims, &job.transforms)?;
    warnings.extend(w1);
    if let (Some((e, _)), Some(ts)) = (&inputs.embedder, schema.text.as_mut()) {
        ts.source = "embedder".into();
        ts.embedder = Some(e.info.clone());
    }
    let (data, w2) = schema.transform(&inputs.table, emb_ref)?;
    warnings.extend(w2);
    progress.data_warnings(&warnings);
    let sweep = fit_sweep(backend, &data, &job.config, progress)?;
    for r in &sweep.runs {
        warnings.extend(r.warnings.iter().cloned());
    }
    warnings.extend(sweep.selection_warnings((job.config.k_min, job.config.k_max)));
    let fit = fit_summary(&sweep, data.n, &job.config, inputs.started.elapsed().as_secs_f64(), backend.describe());
    let model = ModelFile::new(schema, sweep.params.clone(), fit);
    Ok((FitOutput { model, sweep, warnings, outliers: None }, data))
}

/// The `fit` record of `model.json` for the winner of `sweep` over `n_rows` rows.
fn fit_summary(sweep: &Sweep, n_rows: usize, config: &FitConfig, seconds: f64, device: String) -> FitSummary {
    let best = sweep.best_run();
    FitSummary {
        n_rows,
        k: best.k,
        restart: best.restart,
        criterion: config.criterion,
        loglik: best.loglik,
        n_params: best.n_params,
        criteria: best.criteria,
        iterations: best.iterations,
        converged: best.converged,
        seed: config.seed,
        k_range: [config.k_min, config.k_max],
        n_init: config.n_init,
        seconds,
        device,
        per_k: sweep.per_k.clone(),
        stability: Some(sweep.selected().stability.clone()),
        screened: sweep.screened,
        screen_iterations: sweep.screen_iterations,
    }
}

/// Reads, prepares and fits.
///
/// The text block comes from `job.embeddings` when given, else from `embedder` embedding the
/// `--text` column.
pub fn fit<B: Backend>(
    backend: &B,
    job: &FitJob,
    embedder: Option<&TextEmbedder>,
    progress: &dyn Progress,
) -> Result<FitOutput> {
    let mut inputs = read_inputs(job, embedder)?;
    Ok(fit_inputs(backend, job, &mut inputs, progress)?.0)
}

/// How a fit folder is completed beside the fit itself.
#[derive(Debug, Clone, Default)]
pub struct FolderOptions {
    pub explain: ExplainOptions,
    /// Flag the rows whose log-likelihood is below this quantile ([`flag_outliers`]).
    pub outliers: Option<f64>,
    /// Ask this endpoint to name the classes. A failure costs the labels (a warning in the
    /// output), not the run; without it nothing leaves the machine.
    pub llm: Option<LlmEndpoint>,
}

/// The whole job, the library's `segmix fit`: reads the table (embedding the text column with
/// `embedder` unless `job.embeddings` is given), fits every K, flags outliers, and writes the
/// folder `out` ([`write_folder`]). The returned fit carries every warning.
pub fn fit_to_folder<B: Backend>(
    backend: &B,
    job: &FitJob,
    out: &Path,
    opts: &FolderOptions,
    embedder: Option<&TextEmbedder>,
    progress: &dyn Progress,
) -> Result<FitOutput> {
    let mut inputs = read_inputs(job, embedder)?;
    let (mut fit, data) = fit_inputs(backend, job, &mut inputs, progress)?;
    if let Some(q) = opts.outliers {
        flag_outliers(&mut fit, q)?;
    }
    let warnings = write_folder(out, &fit, &data, &inputs.table, opts, progress, |_| Ok(()))?;
    fit.warnings.extend(warnings);
    Ok(fit)
}

/// Writes a finished fit's folder: `model.json`, `assignments.csv` and `selection.csv`
/// ([`write_fit`]), its explanation (`clusters.json`, class labels from `opts.llm` when given,
/// announced through `progress`), the files `extra` writes into the folder it is given
/// (`compare` adds `compare.csv` and `compare.md`), and the report (`report.html`,
/// `report.md`). The files replace the folder's previous set all at once ([`FolderWrite`]).
/// Returns the warnings of the explanation (an LLM endpoint that failed).
pub fn write_folder(
    out: &Path,
    fit: &FitOutput,
    data: &MixtureData,
    table: &Table,
    opts: &FolderOptions,
    progress: &dyn Progress,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut clusters = explain::explain(&fit.fitted(data, table), &opts.explain)?;
    if let Some(ep) = &opts.llm {
        progress.status(&format!("asking {} ({}) to name {} classes", ep.url, ep.model, clusters.classes.len()));
        let mut labelled = clusters.clone();
        match label_classes(&mut labelled, ep) {
            Ok(()) => clusters = labelled,
            Err(e) => warnings.push(format!("no class labels: {e}")),
        }
    }
    let tx = FolderWrite::begin(out, Keep::Nothing)?;
    write_fit(tx.dir(), fit)?;
    report::write_atomic(&tx.path("clusters.json"), |w| w.write_all(clusters.to_json().as_bytes()))?;
    extra(tx.dir())?;
    report::html::write_report_from(tx.dir(), tx.dir(), tx.path("compare.md").exists())?;
    tx.commit()?;
    Ok(warnings)
}

/// Writes `assignments.csv`, `selection.csv` and `model.json` into the folder `dir` (one file at
/// a time; [`write_folder`] makes them one set).
pub fn write_fit(dir: &Path, fit: &FitOutput) -> Result<()> {
    let extra: Vec<(String, Vec<f64>)> = fit
        .outliers
        .iter()
        .map(|o| ("outlier".to_string(), o.flags.iter().map(|&f| f64::from(u8::from(f))).collect()))
        .collect();
    report::write_assignments(&dir.join("assignments.csv"), &fit.sweep.posteriors, &extra)?;
    report::write_selection(&dir.join("selection.csv"), &fit.sweep.runs)?;
    let json = fit.model.to_json();
    report::write_atomic(&dir.join("model.json"), |w| w.write_all(json.as_bytes()))
}

/// Scores of new rows.
#[derive(Debug)]
pub struct Prediction {
    pub posteriors: Posteriors,
    /// `expected_<col>` for every numeric column, in the column's original units.
    pub expected: Vec<(String, Vec<f64>)>,
    pub warnings: Vec<String>,
}

/// The embedder a model was fitted with, if any (then `predict` needs the same one, or
/// precomputed `--embeddings`).
pub fn model_embedder(model: &ModelFile) -> Option<&EmbedderInfo> {
    model.schema.text.as_ref().and_then(|t| t.embedder.as_ref())
}

/// Scores the rows of `data` with a fitted model. The text block comes from `embeddings` when
/// given, else from `embedder`, which must be the model the fit used (same SHA-256).
pub fn predict<B: Backend>(
    backend: &B,
    model: &ModelFile,
    data: &Path,
    embeddings: Option<&Path>,
    embedder: Option<&TextEmbedder>,
) -> Result<Prediction> {
    let roles = model_roles(model);
    let table = read_table(data, &roles, Strictness::Predict)?;
    let embeddings = load_embeddings(embeddings, &table)?;
    predict_table(backend, model, &table, embeddings, embedder)
}

/// The columns a table needs to be scored by `model` (read with [`Strictness::Predict`]: a
/// column the table lacks is missing on every row).
pub fn model_roles(model: &ModelFile) -> Roles {
    let schema = &model.schema;
    Roles {
        categorical: schema.categorical.iter().map(|c| c.name.clone()).collect(),
        numeric: schema.numeric.iter().map(|c| c.name.clone()).collect(),
        text: schema.text.as_ref().and_then(|t| t.column.clone()),
    }
}

/// Scores the rows of a table already read with [`model_roles`]; the text block comes from
/// `embeddings` when given, else from `embedder` (see [`predict`](fn@predict)).
pub fn predict_table<B: Backend>(
    backend: &B,
    model: &ModelFile,
    table: &Table,
    embeddings: Option<TextVectors>,
    embedder: Option<&TextEmbedder>,
) -> Result<Prediction> {
    let schema = &model.schema;
    let mut warnings: Vec<String> = table.format_note().into_iter().collect();
    let emb = match (embeddings, model_embedder(model), embedder) {
        (Some(v), _, _) => Some(v),
        (None, Some(fitted), Some(te)) => {
            let mut loaded = (te.load)()?;
            let found = &loaded.0.info;
            if found.sha256 != fitted.sha256 {
                return Err(Error::Embedder(format!(
                    "the model was fitted with {} (SHA-256 {}) but the embedder found is {} (SHA-256 {}); \
                     pass --model DIR with the fitted model's sentence transformer",
                    fitted.name, fitted.sha256, found.name, found.sha256
                )));
            }
            // The texts are embedded as in the fit: with its prefix (or none).
            loaded.0.set_prefix(fitted.prefix.clone());
            let (v, warning) = embed_text_column(table, &loaded, te.progress)?;
            warnings.extend(warning);
            Some(v)
        }
        _ => None,
    };
    let emb = emb.map(|v| v.placed(backend)).transpose()?;
    let (mdata, w) = schema.transform(table, emb.as_ref())?;
    warnings.extend(w);
    let posteriors = predict::posteriors(backend, &mdata, &model.params)?;
    let mut expected = Vec::new();
    for (j, ns) in schema.numeric.iter().enumerate() {
        let c = schema.numeric_coordinate(j);
        let y = predict::expected_with(backend, &mdata, &model.params, c, &|m, v| ns.expected_original(m, v))?;
        expected.push((format!("expected_{}", ns.name), y));
    }
    Ok(Prediction { posteriors, expected, warnings })
}

/// Writes the prediction file: the assignment columns plus `expected_<col>`, as CSV, or as
/// Parquet or Arrow IPC by the extension of `path`.
pub fn write_prediction(path: &Path, pred: &Prediction) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        report::ensure_dir(dir)?;
    }
    report::write_assignments_as(path, &pred.posteriors, &pred.expected)
}
