//! `segmix report DIR`, and the explanation options and step that `fit` and `compare` share:
//! `clusters.json`, then `report.html` and `report.md`.

use std::path::{Path, PathBuf};

use clap::Args;

use segmix::backend::MixtureData;
use segmix::data::Table;
use segmix::explain::llm::{LlmEndpoint, label_classes};
use segmix::explain::tsne::TsneOptions;
use segmix::explain::{ExplainOptions, explain};
use segmix::pipeline::FitOutput;
use segmix::report::{html, write_atomic};

use super::{Global, display};

/// How classes are explained.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Prototype texts per class (nearest the class mean).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub prototypes: usize,
    /// Keywords per class.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub keywords: usize,
    /// Keyword decoder: keep words and bigrams found in at least this many texts.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub min_df: usize,
    /// Keyword decoder: the Lasso penalty (default: chosen on a seeded 80/20 split).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Also lay out a t-SNE map (Barnes–Hut, perplexity 30, seeded) of the reduced text
    /// embedding, on at most 10,000 sampled rows, beside the PCA map in the report.
    #[arg(long)]
    pub tsne: bool,
    /// Post each class's prompt to this OpenAI-compatible chat completions endpoint (e.g.
    /// http://localhost:11434/v1) and store the label and strategy it answers. The API key, if
    /// needed, comes from $SEGMIX_LLM_API_KEY or $OPENAI_API_KEY. Without it nothing leaves the
    /// machine.
    #[arg(long, value_name = "URL", requires = "llm_model")]
    pub llm_endpoint: Option<String>,
    /// The model name to ask at --llm-endpoint.
    #[arg(long, value_name = "NAME", requires = "llm_endpoint")]
    pub llm_model: Option<String>,
}

impl ExplainArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(l) = self.lambda
            && !(l >= 0.0 && l.is_finite())
        {
            anyhow::bail!("--lambda must be a finite number ≥ 0");
        }
        if self.min_df == 0 {
            anyhow::bail!("--min-df must be at least 1");
        }
        Ok(())
    }
}

/// Explains a finished fit and writes `clusters.json`, `report.html` and `report.md` into `out`
/// (after the fit's own files). An LLM endpoint that fails costs the labels, with a warning,
/// not the run.
pub fn explain_and_write(
    a: &ExplainArgs,
    out: &Path,
    fit: &FitOutput,
    data: &MixtureData,
    table: &Table,
    seed: u64,
    g: &Global,
) -> anyhow::Result<()> {
    let opts = ExplainOptions {
        prototypes: a.prototypes,
        keywords: a.keywords,
        min_df: a.min_df,
        lambda: a.lambda,
        tsne: a.tsne.then(|| TsneOptions { seed, ..TsneOptions::default() }),
        seed,
        ..ExplainOptions::default()
    };
    let mut clusters = explain(fit, data, table, &opts)?;
    if let (Some(url), Some(model)) = (&a.llm_endpoint, &a.llm_model) {
        let ep = LlmEndpoint::new(url, model);
        if !g.quiet {
            eprintln!("asking {} ({model}) to name {} classes", ep.url, clusters.classes.len());
        }
        let mut labelled = clusters.clone();
        match label_classes(&mut labelled, &ep) {
            Ok(()) => clusters = labelled,
            Err(e) => eprintln!("warning: no class labels: {e}"),
        }
    }
    write_atomic(&out.join("clusters.json"), |w| w.write_all(clusters.to_json().as_bytes()))?;
    html::write_report(out)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A folder written by `segmix fit` (model.json, selection.csv, clusters.json).
    pub dir: PathBuf,
}

pub fn run(a: ReportArgs, g: &Global) -> anyhow::Result<()> {
    html::write_report(&a.dir)?;
    if !g.quiet {
        println!("wrote {}/{{report.html, report.md}}", display(&a.dir));
    }
    Ok(())
}
