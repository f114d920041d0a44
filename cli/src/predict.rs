//! `segmix predict`.

use std::path::PathBuf;

use clap::Args;

use segmix::encoders::resolve::is_fetchable;
use segmix::model::ModelFile;
use segmix::pipeline::{self, TextEmbedder};

use super::device::{DeviceArgs, open_backend, print_note};
use super::embed::{EmbedderArgs, advance, load_embedder, text_bar};

use super::{Global, display, warn_all};

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// model.json written by `segmix fit`.
    #[arg(value_name = "MODEL_JSON")]
    pub model_json: PathBuf,

    /// New rows: CSV, Parquet or Arrow IPC (by extension) with the model's columns (metric
    /// columns may be absent or empty).
    pub data: PathBuf,

    /// Output: the assignments columns plus expected_<metric> for every metric; CSV, or Parquet
    /// (.parquet) or Arrow IPC (.arrow, .feather) by its extension.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,

    /// Precomputed text vectors for the new rows. Without it, a model fitted with the sentence
    /// embedder embeds the text column itself (with the same model, checked by SHA-256).
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,

    #[command(flatten)]
    pub embedder: EmbedderArgs,

    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(a: PredictArgs, g: &Global) -> anyhow::Result<()> {
    if a.embedder.text_prefix.is_some() {
        anyhow::bail!(
            "predict embeds texts with the prefix the model was fitted with (model.json records it); drop --text-prefix"
        );
    }
    let mut inputs = vec![a.data.as_path(), a.model_json.as_path()];
    inputs.extend(a.embeddings.as_deref());
    super::check_output("--out", &a.out, &inputs)?;
    let model = ModelFile::open(&a.model_json)?;
    let backend = open_backend(&a.device, g)?;
    let text_bar = text_bar(g.quiet);
    let advance_bar = |done: usize, total: usize| advance(&text_bar, done, total);
    // Without --model (or $SEGMIX_MODEL), the fitted model's own embedder, found by the name
    // model.json records (a named model or a hub id; a local folder must be passed again).
    let mut embedder = a.embedder.clone();
    if embedder.model.is_none() && std::env::var_os("SEGMIX_MODEL").is_none_or(|v| v.is_empty()) {
        embedder.model = pipeline::model_embedder(&model).map(|e| e.name.clone()).filter(|n| is_fetchable(n));
    }
    let load = || load_embedder(&embedder, &backend, g);
    let te = TextEmbedder { load: &load, progress: &advance_bar };
    let pred = pipeline::predict(&backend, &model, &a.data, a.embeddings.as_deref(), Some(&te));
    text_bar.finish_and_clear();
    print_note(&backend, g);
    let pred = pred?;
    warn_all(&pred.warnings);
    pipeline::write_prediction(&a.out, &pred)?;
    if !g.quiet {
        println!("scored {} rows with K={} → {}", pred.posteriors.row_loglik.len(), model.params.k, display(&a.out));
    }
    Ok(())
}
