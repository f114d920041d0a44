//! `segmix._native`: the library's fit, predict, explain and report for the Python package.
//!
//! Tables arrive through the Arrow C stream interface (no copy until the role columns are read
//! into the library's [`Table`]); arrays leave as native-endian float64 bytes that numpy views
//! with `frombuffer`. Every call that fits, embeds or scores releases the GIL, reports progress
//! to an optional Python callable, and stops at Ctrl-C (the progress object asks Python for
//! pending signals before every EM iteration). Errors become Python exceptions with the
//! library's message: `TypeError` for a column of the wrong type, `OSError` for files,
//! `RuntimeError` for the GPU, the embedder and numerical failures, `ValueError` for the rest.
//! The estimator, the conversions of DataFrames and the warnings live in the pure-Python
//! package around this module.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatchReader;
use arrow_array::ffi_stream::RecordBatchStreamReader;
use arrow_pyarrow::FromPyArrow;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use segmix::Error;
use segmix::backend::{AnyBackend, DeviceChoice, MixtureData};
use segmix::data::columnar::table_from_batches;
use segmix::data::{Roles, Strictness, Table};
use segmix::explain::ExplainOptions;
use segmix::explain::tsne::TsneOptions;
use segmix::featurize::TextVectors;
use segmix::featurize::schema::Transform;
use segmix::foundation::choice::Choice;
use segmix::foundation::matrix::Matrix;
use segmix::mixture::em::{FitConfig, NoProgress, Progress};
use segmix::mixture::{CovType, Criterion};
use segmix::model::ModelFile;
use segmix::pipeline::sharded::{self, ShardedFit, ShardedJob, Transport, Worker};
use segmix::pipeline::{self, EmbedderOptions, FitJob, FitOutput, FolderOptions, TextEmbedder};

pyo3::create_exception!(
    _native,
    ShardNotSetUp,
    pyo3::exceptions::PyRuntimeError,
    "A shard's worker was asked for something before the requests that set it up: it was restarted."
);

/// The Python exception for a library error (an interruption re-raises Python's own).
fn py_err(e: Error, progress: Option<&PyProgress>) -> PyErr {
    if let Some(err) = progress.and_then(PyProgress::take_error) {
        return err;
    }
    let message = e.to_string();
    match e {
        Error::ColumnType { .. } => PyTypeError::new_err(message),
        Error::Io { .. } => PyOSError::new_err(message),
        Error::Gpu(_) | Error::Embedder(_) | Error::Numerical(_) => PyRuntimeError::new_err(message),
        Error::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
        Error::ShardNotSetUp(_) => ShardNotSetUp::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

fn choice<C: Choice>(what: &str, value: &str) -> PyResult<C> {
    C::parse(value).ok_or_else(|| PyValueError::new_err(format!("{what}={value:?}: choose one of {}", C::names())))
}

/// Progress to a Python callable `callback(event, info)` and Ctrl-C: an exception raised by the
/// callback, or a signal handler's `KeyboardInterrupt`, stops the run and is re-raised.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl PyProgress {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        PyProgress { callback, error: Mutex::new(None) }
    }

    fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok()?.take()
    }

    fn fail(&self, e: PyErr) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
    }

    fn emit(&self, event: &str, fill: impl FnOnce(&Bound<PyDict>) -> PyResult<()>) {
        let Some(cb) = &self.callback else { return };
        Python::attach(|py| {
            let info = PyDict::new(py);
            if let Err(e) = fill(&info).and_then(|()| cb.call1(py, (event, info)).map(drop)) {
                self.fail(e);
            }
        });
    }

    /// The embedder's progress: `done` of `total` distinct texts.
    fn texts(&self, done: usize, total: usize) {
        self.emit("embed", |d| {
            d.set_item("done", done)?;
            d.set_item("total", total)
        });
    }
}

impl Progress for PyProgress {
    fn status(&self, line: &str) {
        self.emit("status", |d| d.set_item("line", line));
    }
    fn sweep_started(&self, total_runs: usize) {
        self.emit("sweep", |d| d.set_item("total", total_runs));
    }
    fn run_started(&self, k: usize, restart: usize, n_init: usize) {
        self.emit("run", |d| {
            d.set_item("k", k)?;
            d.set_item("restart", restart)?;
            d.set_item("n_init", n_init)
        });
    }
    fn iteration(&self, k: usize, restart: usize, iter: usize, loglik: f64) {
        self.emit("iteration", |d| {
            d.set_item("k", k)?;
            d.set_item("restart", restart)?;
            d.set_item("iteration", iter)?;
            d.set_item("loglik", loglik)
        });
    }
    fn run_finished(&self) {
        self.emit("run_finished", |_| Ok(()));
    }
    fn cancelled(&self) -> bool {
        if self.error.lock().map(|e| e.is_some()).unwrap_or(true) {
            return true;
        }
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.fail(e);
                true
            }
        })
    }
}

/// The role columns of an object exposing `__arrow_c_stream__`, read while holding the GIL (the
/// stream may be produced by Python code); `source` names the table in messages.
fn read_table(data: &Bound<PyAny>, source: &str, roles: &Roles, strictness: Strictness) -> PyResult<Table> {
    let reader = RecordBatchStreamReader::from_pyarrow_bound(data)?;
    let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    table_from_batches(Path::new(source), &names, reader, roles, strictness).map_err(|e| py_err(e, None))
}

/// Precomputed text vectors: float32 bytes of a `rows × cols` matrix (NaN rows: no text).
fn vectors(table: &Table, embeddings: Option<(Vec<u8>, usize, usize)>) -> PyResult<Option<TextVectors>> {
    let Some((bytes, rows, cols)) = embeddings else { return Ok(None) };
    if bytes.len() != rows * cols * 4 {
        return Err(PyValueError::new_err("embeddings: the buffer does not hold rows × cols float32 values"));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    let matrix = Matrix { rows, cols, values };
    Ok(Some(TextVectors::from_file("<embeddings>".into(), matrix, table)))
}

/// A value as JSON text for the Python side.
fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

fn f64_bytes<'py>(py: Python<'py>, values: &[f64]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, bytemuck::cast_slice(values))
}

/// The embedder options of a call.
fn embedder_options(text_model: Option<String>, text_prefix: Option<String>, no_cache: bool) -> EmbedderOptions {
    EmbedderOptions { model: text_model, no_cache, text_prefix }
}

/// Opens the `device` backend and runs `run` on it with an embedder loaded on demand (call it
/// with the GIL released); returns what `run` returns and the embedder's notes and warnings.
fn with_embedder<T>(
    device: DeviceChoice,
    opts: &EmbedderOptions,
    progress: &Arc<PyProgress>,
    run: impl FnOnce(&AnyBackend, &TextEmbedder) -> segmix::Result<T>,
) -> (segmix::Result<T>, Vec<String>) {
    let backend = match AnyBackend::select(device) {
        Ok(b) => b,
        Err(e) => return (Err(e), Vec::new()),
    };
    let backend = &backend;
    let said = Mutex::new(Vec::new());
    let load = || {
        let mut l = pipeline::load_embedder(opts, backend)?;
        if let Ok(mut s) = said.lock() {
            s.extend(l.notes.iter().chain(&l.warnings).cloned());
        }
        // Ctrl-C stops the embedding after the batch in flight.
        let p = Arc::clone(progress);
        l.embedder.set_stop(Arc::new(move || p.cancelled()));
        Ok((l.embedder, l.cache))
    };
    let texts = |done: usize, total: usize| progress.texts(done, total);
    let te = TextEmbedder { load: &load, progress: &texts };
    let out = run(backend, &te);
    (out, said.into_inner().unwrap_or_default())
}

/// The `--log` and `--log1p` columns as the library's transforms.
fn transforms(log: Vec<String>, log1p: Vec<String>) -> Vec<(String, Transform)> {
    log.into_iter().map(|c| (c, Transform::Log)).chain(log1p.into_iter().map(|c| (c, Transform::Log1p))).collect()
}

/// The EM settings of a fit.
fn fit_config(
    k: (usize, usize),
    covariance: &str,
    criterion: &str,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    reg: f64,
    seed: u64,
) -> PyResult<FitConfig> {
    Ok(FitConfig {
        k_min: k.0,
        k_max: k.1,
        n_init,
        max_iter,
        tol,
        seed,
        cov_type: choice::<CovType>("covariance", covariance)?,
        reg,
        criterion: choice::<Criterion>("criterion", criterion)?,
    })
}

/// A finished fit with the rows it was fitted on (for explanations and the report).
#[pyclass(module = "segmix._native", frozen)]
struct Fitted {
    fit: FitOutput,
    data: MixtureData,
    table: Table,
}

#[pymethods]
impl Fitted {
    /// `model.json`'s text.
    fn model_json(&self) -> String {
        self.fit.model.to_json()
    }

    /// Every restart of every K (`selection.csv`'s records) as JSON.
    fn selection_json(&self) -> PyResult<String> {
        json(&self.fit.sweep.runs)
    }

    /// (posteriors as n × K float64 bytes, K).
    fn posteriors<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, usize) {
        let p = &self.fit.sweep.posteriors;
        (f64_bytes(py, &p.resp), p.k)
    }

    /// Each row's log-likelihood (on the data's own scale) as float64 bytes.
    fn row_loglik<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        f64_bytes(py, &self.fit.sweep.posteriors.row_loglik)
    }

    /// Every warning of the data and the fit, in order.
    fn warnings(&self) -> Vec<String> {
        self.fit.warnings.clone()
    }

    /// `clusters.json`'s text: every class explained.
    #[pyo3(signature = (prototypes=5, keywords=10, min_df=3, seed=0))]
    fn explain(
        &self,
        py: Python<'_>,
        prototypes: usize,
        keywords: usize,
        min_df: usize,
        seed: u64,
    ) -> PyResult<String> {
        let opts = ExplainOptions { prototypes, keywords, min_df, seed, ..ExplainOptions::default() };
        let fitted = self.fit.fitted(&self.data, &self.table);
        py.detach(|| segmix::explain::explain(&fitted, &opts).map(|c| c.to_json())).map_err(|e| py_err(e, None))
    }

    /// Writes the fit folder `segmix fit` writes into `out`; returns its warnings.
    #[pyo3(signature = (out, prototypes=5, keywords=10, min_df=3, tsne=false, seed=0))]
    fn report(
        &self,
        py: Python<'_>,
        out: std::path::PathBuf,
        prototypes: usize,
        keywords: usize,
        min_df: usize,
        tsne: bool,
        seed: u64,
    ) -> PyResult<Vec<String>> {
        let opts = FolderOptions {
            explain: ExplainOptions {
                prototypes,
                keywords,
                min_df,
                tsne: tsne.then(|| TsneOptions { seed, ..TsneOptions::default() }),
                seed,
                ..ExplainOptions::default()
            },
            outliers: None,
            llm: None,
        };
        py.detach(|| pipeline::write_folder(&out, &self.fit, &self.data, &self.table, &opts, &NoProgress, |_| Ok(())))
            .map_err(|e| py_err(e, None))
    }
}

/// Fits every K of `k` on a table and keeps the best by `criterion`.
#[pyfunction]
#[pyo3(signature = (
    data, *, source, cat, num, text, log, log1p, k, covariance, criterion, n_init, max_iter, tol, reg,
    seed, pca_dims, device, text_model=None, text_prefix=None, no_cache=false, embeddings=None,
    progress=None
))]
fn fit(
    py: Python<'_>,
    data: &Bound<PyAny>,
    source: String,
    cat: Vec<String>,
    num: Vec<String>,
    text: Option<String>,
    log: Vec<String>,
    log1p: Vec<String>,
    k: (usize, usize),
    covariance: &str,
    criterion: &str,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    reg: f64,
    seed: u64,
    pca_dims: usize,
    device: &str,
    text_model: Option<String>,
    text_prefix: Option<String>,
    no_cache: bool,
    embeddings: Option<(Vec<u8>, usize, usize)>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Fitted, Vec<String>)> {
    let roles = Roles { categorical: cat, numeric: num, text };
    let transforms = transforms(log, log1p);
    let config = fit_config(k, covariance, criterion, n_init, max_iter, tol, reg, seed)?;
    let device = choice::<DeviceChoice>("device", device)?;
    let job = FitJob { data: source.clone().into(), roles, embeddings: None, pca_dims, transforms, config };
    let started = Instant::now();
    let table = read_table(data, &source, &job.roles, Strictness::Fit)?;
    let vectors = vectors(&table, embeddings)?;
    let progress = Arc::new(PyProgress::new(progress));
    let opts = embedder_options(text_model, text_prefix, no_cache);
    let (result, said) = py.detach(|| {
        with_embedder(device, &opts, &progress, |backend, te| {
            let mut inputs = pipeline::inputs_from_table(&job, table, vectors, Some(te), started)?;
            let (fit, data) = pipeline::fit_inputs(backend, &job, &mut inputs, &*progress)?;
            Ok(Fitted { fit, data, table: inputs.table })
        })
    });
    let fitted = result.map_err(|e| py_err(e, Some(&*progress)))?;
    Ok((fitted, said))
}

/// What [`predict`] returns: posteriors (n × K float64 bytes), K, each row's log-likelihood,
/// each metric's expected values, and the warnings.
type Scores<'py> = (Bound<'py, PyBytes>, usize, Bound<'py, PyBytes>, Vec<(String, Bound<'py, PyBytes>)>, Vec<String>);

/// Scores a table with a model (`model.json`'s text): (posteriors bytes, K, row log-likelihood
/// bytes, [(expected_<metric>, bytes)], warnings).
#[pyfunction]
#[pyo3(signature = (
    model_json, data, *, source, device, text_model=None, text_prefix=None, no_cache=false,
    embeddings=None, progress=None
))]
fn predict<'py>(
    py: Python<'py>,
    model_json: &str,
    data: &Bound<PyAny>,
    source: String,
    device: &str,
    text_model: Option<String>,
    text_prefix: Option<String>,
    no_cache: bool,
    embeddings: Option<(Vec<u8>, usize, usize)>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Scores<'py>> {
    let model = ModelFile::parse(Path::new("model.json"), model_json).map_err(|e| py_err(e, None))?;
    let device = choice::<DeviceChoice>("device", device)?;
    let table = read_table(data, &source, &pipeline::model_roles(&model), Strictness::Predict)?;
    let vectors = vectors(&table, embeddings)?;
    let progress = Arc::new(PyProgress::new(progress));
    let opts = embedder_options(text_model, text_prefix, no_cache);
    let (result, said) = py.detach(|| {
        with_embedder(device, &opts, &progress, |backend, te| {
            pipeline::predict_table(backend, &model, &table, vectors, Some(te))
        })
    });
    let pred = result.map_err(|e| py_err(e, Some(&*progress)))?;
    let expected = pred.expected.iter().map(|(name, v)| (name.clone(), f64_bytes(py, v))).collect();
    let mut warnings = said;
    warnings.extend(pred.warnings);
    Ok((
        f64_bytes(py, &pred.posteriors.resp),
        pred.posteriors.k,
        f64_bytes(py, &pred.posteriors.row_loglik),
        expected,
        warnings,
    ))
}

/// One shard of a fit over shards (`segmix.ray`): its tables — files read by the library's
/// readers (CSV, Parquet, Arrow IPC; messages name the file and row) or Arrow streams — embedded
/// once, answering the driver's requests (`handle`) with the GIL released.
#[pyclass(module = "segmix._native")]
struct Shard {
    worker: Mutex<Worker<AnyBackend>>,
}

#[pymethods]
impl Shard {
    /// `parts`: file paths (str) or objects with `__arrow_c_stream__`; `sources` names the
    /// streams in messages.
    #[new]
    #[pyo3(signature = (
        parts, sources, *, cat, num, text, log, log1p, device, text_model=None, text_prefix=None,
        no_cache=false, progress=None
    ))]
    fn new(
        py: Python<'_>,
        parts: Vec<Bound<PyAny>>,
        sources: Vec<String>,
        cat: Vec<String>,
        num: Vec<String>,
        text: Option<String>,
        log: Vec<String>,
        log1p: Vec<String>,
        device: &str,
        text_model: Option<String>,
        text_prefix: Option<String>,
        no_cache: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Shard> {
        let roles = Roles { categorical: cat, numeric: num, text };
        let mut tables = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let table = if let Ok(path) = part.extract::<std::path::PathBuf>() {
                py.detach(|| segmix::data::read_table(&path, &roles, Strictness::Fit)).map_err(|e| py_err(e, None))?
            } else if part.hasattr("__arrow_c_stream__")? {
                let source = sources.get(i).cloned().unwrap_or_else(|| format!("<part {i}>"));
                read_table(part, &source, &roles, Strictness::Fit)?
            } else {
                return Err(PyTypeError::new_err("a shard's part is a file path or an Arrow stream"));
            };
            tables.push(table);
        }
        let device = choice::<DeviceChoice>("device", device)?;
        let progress = Arc::new(PyProgress::new(progress));
        let opts = embedder_options(text_model, text_prefix, no_cache);
        let result = py.detach(|| {
            let backend = AnyBackend::select(device)?;
            let said = Mutex::new(Vec::new());
            let embedded = {
                let load = || {
                    let l = pipeline::load_embedder(&opts, &backend)?;
                    if let Ok(mut s) = said.lock() {
                        s.extend(l.warnings.iter().cloned());
                    }
                    Ok((l.embedder, l.cache))
                };
                let texts = |done: usize, total: usize| progress.texts(done, total);
                let te = TextEmbedder { load: &load, progress: &texts };
                sharded::embed_parts(tables, Some(&te))?
            };
            let mut said = said.into_inner().unwrap_or_default();
            said.extend(embedded.notes);
            Worker::new(backend, embedded.parts, transforms(log, log1p), embedded.embedder, said)
        });
        let worker = result.map_err(|e| py_err(e, Some(&*progress)))?;
        Ok(Shard { worker: Mutex::new(worker) })
    }

    /// Answers one request of the driver (bytes in, bytes out).
    fn handle<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let answer = py.detach(|| self.lock().map(|mut w| w.handle(request)))?.map_err(|e| py_err(e, None))?;
        Ok(PyBytes::new(py, &answer))
    }
}

impl Shard {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Worker<AnyBackend>>> {
        self.worker.lock().map_err(|_| PyRuntimeError::new_err("the shard failed in an earlier call"))
    }
}

/// The driver's side of a fit over shards: a Python object whose `call(requests, keeps_state)`
/// sends `requests[i]` to shard `i` and returns the answers in shard order.
struct PyTransport {
    transport: Py<PyAny>,
    shards: usize,
    progress: Arc<PyProgress>,
}

impl Transport for PyTransport {
    fn shards(&self) -> usize {
        self.shards
    }
    fn call(&mut self, requests: Vec<Vec<u8>>, keeps_state: bool) -> segmix::Result<Vec<Vec<u8>>> {
        Python::attach(|py| {
            let list: Vec<Bound<PyBytes>> = requests.iter().map(|r| PyBytes::new(py, r)).collect();
            let out = self.transport.bind(py).call_method1("call", (list, keeps_state))?;
            out.extract::<Vec<Vec<u8>>>()
        })
        .map_err(|e| {
            self.progress.fail(e);
            Error::Cancelled
        })
    }
}

/// One shard's posteriors: (n × K float64 bytes, K, row log-likelihood bytes).
type ShardPosteriors<'py> = (Bound<'py, PyBytes>, usize, Bound<'py, PyBytes>);

/// A finished fit over shards.
#[pyclass(module = "segmix._native", frozen)]
struct ShardedFitted {
    fit: ShardedFit,
}

impl ShardedFitted {
    /// The shards behind `transport` (the Python object the fit ran over), and where the Python
    /// exception it raises is kept.
    fn transport(&self, transport: Py<PyAny>) -> (PyTransport, Arc<PyProgress>) {
        let progress = Arc::new(PyProgress::new(None));
        let shards = self.fit.shard_rows.len();
        (PyTransport { transport, shards, progress: Arc::clone(&progress) }, progress)
    }
}

#[pymethods]
impl ShardedFitted {
    fn model_json(&self) -> String {
        self.fit.model.to_json()
    }
    /// The sweep's restarts on the sample (`selection.csv`'s records) as JSON.
    fn selection_json(&self) -> PyResult<String> {
        json(&self.fit.sweep.runs)
    }
    /// Every K's refit on all rows as JSON.
    fn refits_json(&self) -> PyResult<String> {
        json(&self.fit.refits)
    }
    /// What the per-iteration exchange cost, as JSON.
    fn traffic_json(&self) -> PyResult<String> {
        json(&self.fit.traffic)
    }
    fn warnings(&self) -> Vec<String> {
        self.fit.warnings.clone()
    }
    fn shard_rows(&self) -> Vec<usize> {
        self.fit.shard_rows.clone()
    }
    fn sample_rows(&self) -> usize {
        self.fit.sample.n
    }
    /// `clusters.json`'s text: the classes explained on the sample (see
    /// `segmix::pipeline::sharded::explain`), scored here on `device`.
    #[pyo3(signature = (transport, *, device, prototypes=5, keywords=10, min_df=3, seed=0))]
    fn explain(
        &self,
        py: Python<'_>,
        transport: Py<PyAny>,
        device: &str,
        prototypes: usize,
        keywords: usize,
        min_df: usize,
        seed: u64,
    ) -> PyResult<String> {
        let device = choice::<DeviceChoice>("device", device)?;
        let opts = ExplainOptions { prototypes, keywords, min_df, seed, ..ExplainOptions::default() };
        let (mut t, progress) = self.transport(transport);
        let clusters = py.detach(|| {
            let backend = AnyBackend::select(device)?;
            sharded::explain(&mut t, &backend, &self.fit, &opts)
        });
        clusters.map(|c| c.to_json()).map_err(|e| py_err(e, Some(&*progress)))
    }
    /// Every shard's posteriors: [(posteriors bytes, K, row log-likelihood bytes)].
    fn posteriors<'py>(&self, py: Python<'py>, transport: Py<PyAny>) -> PyResult<Vec<ShardPosteriors<'py>>> {
        let (mut t, progress) = self.transport(transport);
        let parts =
            py.detach(|| sharded::posteriors(&mut t, &self.fit.model)).map_err(|e| py_err(e, Some(&*progress)))?;
        Ok(parts.iter().map(|p| (f64_bytes(py, &p.resp), p.k, f64_bytes(py, &p.row_loglik))).collect())
    }
    /// Has every shard write its assignments to `paths[i]`; returns what each wrote as JSON.
    fn assign(&self, py: Python<'_>, transport: Py<PyAny>, paths: Vec<std::path::PathBuf>) -> PyResult<String> {
        let (mut t, progress) = self.transport(transport);
        let written = py
            .detach(|| sharded::write_assignments(&mut t, &self.fit, &paths))
            .map_err(|e| py_err(e, Some(&*progress)))?;
        json(&written)
    }
}

/// Fits over the `shards` shards `transport` reaches (see `segmix::pipeline::sharded`); the
/// sweep on the sample runs here on `device`.
#[pyfunction]
#[pyo3(signature = (
    transport, shards, *, k, covariance, criterion, n_init, max_iter, tol, reg, seed, pca_dims,
    sample_rows, device, progress=None
))]
fn fit_sharded(
    py: Python<'_>,
    transport: Py<PyAny>,
    shards: usize,
    k: (usize, usize),
    covariance: &str,
    criterion: &str,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    reg: f64,
    seed: u64,
    pca_dims: usize,
    sample_rows: usize,
    device: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<ShardedFitted> {
    let config = fit_config(k, covariance, criterion, n_init, max_iter, tol, reg, seed)?;
    let device = choice::<DeviceChoice>("device", device)?;
    let job = ShardedJob { pca_dims, config, sample_rows };
    let progress = Arc::new(PyProgress::new(progress));
    let mut t = PyTransport { transport, shards, progress: Arc::clone(&progress) };
    let result = py.detach(|| {
        let backend = AnyBackend::select(device)?;
        sharded::fit_sharded(&mut t, &backend, &job, &*progress)
    });
    let fit = result.map_err(|e| py_err(e, Some(&*progress)))?;
    Ok(ShardedFitted { fit })
}

/// Checks `model.json`'s text the way `segmix predict` does; returns it unchanged.
#[pyfunction]
fn check_model(path: &str, model_json: &str) -> PyResult<()> {
    ModelFile::parse(Path::new(path), model_json).map(drop).map_err(|e| py_err(e, None))
}

/// Writes `text` to `path` atomically (a reader sees the old file or the new one, never a part).
#[pyfunction]
fn write_atomic(path: std::path::PathBuf, text: &str) -> PyResult<()> {
    segmix::report::write_atomic(&path, |w| w.write_all(text.as_bytes())).map_err(|e| py_err(e, None))
}

/// The segmix version this module was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Fitted>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(fit_sharded, m)?)?;
    m.add_class::<Shard>()?;
    m.add("ShardNotSetUp", m.py().get_type::<ShardNotSetUp>())?;
    m.add("SAMPLE_ROWS", sharded::SAMPLE_ROWS)?;
    m.add_class::<ShardedFitted>()?;
    m.add_function(wrap_pyfunction!(check_model, m)?)?;
    m.add_function(wrap_pyfunction!(write_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
