//! `segmix compare`.

use clap::Args;

use segmix::pipeline::compare::{self, CompareJob};
use segmix::pipeline::{self, TextEmbedder};

use super::device::{open_backend, print_note};
use super::embed::{advance, load_embedder, text_bar};
use super::fit::{FitArgs, job};
use super::{Global, display, progress::Bar, warn_all};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Everything `fit` takes: the joint model is fitted (and written to --out) exactly as
    /// `segmix fit` would, and every baseline runs on the same rows and K range.
    #[command(flatten)]
    pub fit: FitArgs,

    /// A column of known segments: every method is scored against it by ARI and NMI. It must
    /// not be one of the model's columns.
    #[arg(long, value_name = "COL")]
    pub truth: Option<String>,

    /// How embedding_kmeans serialises a row, naming columns in braces, e.g.
    /// "{Ad_Text} ({Country}, {Channel})". Default: "Column: value" pairs of every
    /// --cat/--num/--text column, missing cells left out.
    #[arg(long, value_name = "TEXT")]
    pub template: Option<String>,

    /// Baselines to run beside the joint model (which always runs), comma-separated, from:
    /// kmeans, kprototypes, embedding_kmeans, gmm_text. embedding_kmeans embeds every row, so
    /// it costs what embedding the text column costs (about 250 rows/s on 2 CPU cores).
    #[arg(long, value_name = "A,B,..", default_value = "kmeans,kprototypes,embedding_kmeans,gmm_text")]
    pub methods: String,

    /// k-prototypes: the cost of one categorical mismatch. Default: Huang's rule, half the mean
    /// standard deviation of the numerics (0.5 on standardized columns).
    #[arg(long)]
    pub gamma: Option<f64>,
}

pub fn run(a: CompareArgs, g: &Global) -> anyhow::Result<()> {
    let cj = CompareJob {
        fit: job(&a.fit)?,
        truth: a.truth.clone(),
        template: a.template.clone(),
        gamma: a.gamma,
        baselines: compare::parse_methods(&a.methods)?,
    };
    let backend = open_backend(&a.fit.device, g)?;
    let text_bar = text_bar(g.quiet);
    let advance_bar = |done: usize, total: usize| advance(&text_bar, done, total);
    let load = || load_embedder(&a.fit.embedder, &backend, g);
    let te = TextEmbedder { load: &load, progress: &advance_bar };
    let bar = Bar::new(g.quiet);
    let result = compare::compare(&backend, &cj, Some(&te), &bar);
    text_bar.finish_and_clear();
    bar.finish();
    print_note(&backend, g);
    let mut out = result?;
    if let Some(q) = a.fit.outliers {
        pipeline::flag_outliers(&mut out.fit, q)?;
    }
    warn_all(out.warnings.get(bar.printed()..).unwrap_or_default());
    let opts = a.fit.explain.folder_options(a.fit.seed, None);
    let tables = |dir: &std::path::Path| {
        compare::write_csv(&dir.join("compare.csv"), &out)?;
        compare::write_markdown(&dir.join("compare.md"), &a.fit.data, &out)
    };
    warn_all(&pipeline::write_folder(&a.fit.out, &out.fit, &out.data, &out.table, &opts, &bar, tables)?);
    if !g.quiet {
        println!(
            "{:<18} {:>3} {:>10} {:>8} {:>10} {:>7} {:>7} {:>8}",
            "method", "K", "silhouette", "DB", "CH", "ARI", "NMI", "seconds"
        );
        let f = |v: Option<f64>, w: usize, d: usize| v.map_or(format!("{:>w$}", "-"), |x| format!("{x:>w$.d$}"));
        for s in &out.scores {
            println!(
                "{:<18} {:>3} {} {} {} {} {} {:>8.2}",
                s.method,
                s.k,
                f(s.silhouette, 10, 3),
                f(s.davies_bouldin, 8, 3),
                f(s.calinski_harabasz, 10, 1),
                f(s.ari, 7, 3),
                f(s.nmi, 7, 3),
                s.seconds
            );
        }
        for s in &out.skipped {
            println!("not run: {s}");
        }
        println!(
            "wrote {}/{{compare.csv, compare.md, model.json, assignments.csv, selection.csv}}",
            display(&a.fit.out)
        );
    }
    Ok(())
}
