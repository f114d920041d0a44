//! `segmix report DIR`, and the explanation options that `fit` and `compare` share.

use std::path::PathBuf;

use clap::Args;

use segmix::explain::ExplainOptions;
use segmix::explain::llm::LlmEndpoint;
use segmix::explain::tsne::TsneOptions;
use segmix::pipeline::FolderOptions;
use segmix::report::{html, merge};

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

impl ExplainArgs {
    /// The library's options for these arguments (`seed` seeds the decoder split and t-SNE).
    pub fn folder_options(&self, seed: u64, outliers: Option<f64>) -> FolderOptions {
        FolderOptions {
            explain: ExplainOptions {
                prototypes: self.prototypes,
                keywords: self.keywords,
                min_df: self.min_df,
                lambda: self.lambda,
                tsne: self.tsne.then(|| TsneOptions { seed, ..TsneOptions::default() }),
                seed,
                ..ExplainOptions::default()
            },
            outliers,
            llm: self.llm_endpoint.as_ref().zip(self.llm_model.as_ref()).map(|(url, m)| LlmEndpoint::new(url, m)),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A folder written by `segmix fit` (model.json, selection.csv, clusters.json).
    pub dir: PathBuf,
    /// Also combine the classes into G groups by the class hierarchy (the two classes the model
    /// can least tell apart first) and write merge-G.csv (each row's group and posteriors) and
    /// merge-G.json (the groups' profiles) into the folder.
    #[arg(long, value_name = "G")]
    pub merge_to: Option<usize>,
}

pub fn run(a: ReportArgs, g: &Global) -> anyhow::Result<()> {
    html::write_report(&a.dir)?;
    if !g.quiet {
        println!("wrote {}/{{report.html, report.md}}", display(&a.dir));
    }
    if let Some(groups) = a.merge_to {
        let m = merge::write_merged(&a.dir, groups)?;
        if !g.quiet {
            for grp in &m.groups {
                let classes: Vec<String> = grp.classes.iter().map(|c| c.to_string()).collect();
                println!(
                    "group {}: classes {} · {} rows · weight {:.3}",
                    grp.group,
                    classes.join("+"),
                    grp.size,
                    grp.weight
                );
            }
            println!("wrote {} and {}", display(&m.csv), display(&m.json));
        }
    }
    Ok(())
}
