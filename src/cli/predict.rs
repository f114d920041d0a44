//! `segmix predict`.

use std::path::PathBuf;

use clap::Args;

use segmix::backend::CpuBackend;
use segmix::model::ModelFile;
use segmix::pipeline;

use super::{Global, display, warn_all};

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// model.json written by `segmix fit`.
    pub model: PathBuf,

    /// New rows: a CSV with the model's columns (metric columns may be absent or empty).
    pub data: PathBuf,

    /// Output CSV: the assignments columns plus expected_<metric> for every metric.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,

    /// Precomputed text vectors for the new rows (required when the model has a text block).
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
}

pub fn run(a: PredictArgs, g: &Global) -> anyhow::Result<()> {
    let model = ModelFile::load(&a.model)?;
    let backend = CpuBackend::new();
    let pred = pipeline::predict(&backend, &model, &a.data, a.embeddings.as_deref())?;
    warn_all(&pred.warnings);
    pipeline::write_prediction(&a.out, &pred)?;
    if !g.quiet {
        println!("scored {} rows with K={} → {}", pred.posteriors.row_loglik.len(), model.params.k, display(&a.out));
    }
    Ok(())
}
