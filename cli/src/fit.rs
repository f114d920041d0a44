//! `segmix fit`.

use std::path::PathBuf;

use clap::Args;

use segmix::data::{Roles, parse_column_list};
use segmix::featurize::schema::{Transform, check_transforms};
use segmix::foundation::choice::Choice;
use segmix::mixture::em::FitConfig;
use segmix::mixture::{CovType, Criterion, parse_k_range};
use segmix::pipeline::{self, FitJob, TextEmbedder};

use super::device::{DeviceArgs, open_backend, print_note};
use super::embed::{EmbedderArgs, advance, load_embedder, text_bar};
use super::report::ExplainArgs;
use super::{Global, choice, display, progress::Bar, warn_all};

#[derive(Debug, Args)]
pub struct FitArgs {
    /// The table: a CSV file with a header line, or Parquet (.parquet) or Arrow IPC (.arrow,
    /// .feather, .arrows) by its extension; only the role columns are read.
    pub data: PathBuf,

    /// Output folder (created if needed): model.json, assignments.csv, selection.csv,
    /// clusters.json, report.html, report.md.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,

    /// Categorical columns, comma-separated.
    #[arg(long, value_name = "A,B,..")]
    pub cat: Option<String>,

    /// Numeric columns (metrics), comma-separated; modelled after standardization.
    #[arg(long, value_name = "X,Y,..")]
    pub num: Option<String>,

    /// Numeric columns modelled on the log scale (positive, multiplicative metrics such as CTR,
    /// CVR, ROAS): ln v is standardized and modelled; profiles and expected values are in the
    /// original units. Every value must be > 0.
    #[arg(long, value_name = "X,Y,..")]
    pub log: Option<String>,

    /// Numeric columns modelled as ln(1 + v) (counts with zeros: clicks, retweets, votes).
    #[arg(long, value_name = "X,Y,..")]
    pub log1p: Option<String>,

    /// Free-text column, embedded with the sentence transformer (see --model) unless
    /// --embeddings gives the vectors. Rows with an empty text have no text block (it is
    /// integrated out).
    #[arg(long, value_name = "COL")]
    pub text: Option<String>,

    /// Precomputed text vectors, one row per data row: .npy (float32/float64) or CSV of floats.
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,

    /// PCA components kept from the embeddings.
    #[arg(long, default_value_t = 32, value_name = "D")]
    pub pca_dims: usize,

    /// Number of classes: one number (4) or an inclusive range (2..8); every K is fitted.
    #[arg(long, default_value = "2..8")]
    pub k: String,

    /// Criterion that picks the model (lower is better).
    #[arg(long, value_parser = choice::<Criterion>(), default_value = "bic")]
    pub criterion: Criterion,

    /// Structure of the class covariances.
    #[arg(long, value_parser = choice::<CovType>(), default_value = "full")]
    pub covariance: CovType,

    /// Ridge added to covariance diagonals, in standardized units (each continuous column has
    /// unit variance, so this is a fraction of each column's variance). Raised automatically,
    /// with a warning, when a covariance is singular.
    #[arg(long, default_value_t = 1e-6)]
    pub reg: f64,

    /// Restarts per K run to convergence: the best of max(8, 4 N) screened starts (k-means++ in
    /// several spaces, random partitions, splits of the K − 1 fit). The best eligible restart
    /// by the criterion is kept.
    #[arg(long, default_value_t = 5)]
    pub n_init: usize,

    /// Maximum EM iterations per restart.
    #[arg(long, default_value_t = 300)]
    pub max_iter: usize,

    /// Convergence tolerance on the per-row change of the log-likelihood.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,

    /// Random seed; a CPU fit is bit-for-bit reproducible for a given seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Flag rows whose log-likelihood under the selected model is below this quantile (e.g.
    /// 0.01: the lowest 1%) in an `outlier` column of assignments.csv.
    #[arg(long, value_name = "Q")]
    pub outliers: Option<f64>,

    #[command(flatten)]
    pub explain: ExplainArgs,

    #[command(flatten)]
    pub embedder: EmbedderArgs,

    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The validated fit job of these arguments.
pub fn job(a: &FitArgs) -> anyhow::Result<FitJob> {
    let roles = Roles {
        categorical: a.cat.as_deref().map(|s| parse_column_list("--cat", s)).transpose()?.unwrap_or_default(),
        numeric: a.num.as_deref().map(|s| parse_column_list("--num", s)).transpose()?.unwrap_or_default(),
        text: a.text.clone(),
    };
    let mut transforms = Vec::new();
    for (flag, list, t) in [("--log", &a.log, Transform::Log), ("--log1p", &a.log1p, Transform::Log1p)] {
        let cols = list.as_deref().map(|s| parse_column_list(flag, s)).transpose()?.unwrap_or_default();
        transforms.extend(cols.into_iter().map(|c| (c, t)));
    }
    // Checked here too (Schema::fit checks again) so a bad flag fails before any work starts.
    check_transforms(&roles.numeric.iter().map(String::as_str).collect::<Vec<_>>(), &transforms)?;
    let (k_min, k_max) = parse_k_range(&a.k)?;
    let config = FitConfig {
        k_min,
        k_max,
        n_init: a.n_init,
        max_iter: a.max_iter,
        tol: a.tol,
        seed: a.seed,
        cov_type: a.covariance,
        reg: a.reg,
        criterion: a.criterion,
    };
    if let Some(q) = a.outliers
        && !(q > 0.0 && q < 1.0)
    {
        anyhow::bail!("--outliers {q}: give a quantile between 0 and 1, e.g. 0.01 for the lowest 1%");
    }
    a.explain.check()?;
    Ok(FitJob {
        data: a.data.clone(),
        roles,
        embeddings: a.embeddings.clone(),
        pca_dims: a.pca_dims,
        transforms,
        config,
    })
}

pub fn run(a: FitArgs, g: &Global) -> anyhow::Result<()> {
    let job = job(&a)?;
    super::check_output("--out", &a.out, &[&a.data])?;
    let backend = open_backend(&a.device, g)?;
    let text_bar = text_bar(g.quiet);
    let advance_bar = |done: usize, total: usize| advance(&text_bar, done, total);
    let load = || load_embedder(&a.embedder, &backend, g);
    let te = TextEmbedder { load: &load, progress: &advance_bar };
    let bar = Bar::new(g.quiet);
    let opts = a.explain.folder_options(a.seed, a.outliers);
    let result = pipeline::fit_to_folder(&backend, &job, &a.out, &opts, Some(&te), &bar);
    text_bar.finish_and_clear();
    bar.finish();
    print_note(&backend, g);
    let fit = result?;
    // The data's warnings were printed before the sweep; the fit's own follow.
    warn_all(fit.warnings.get(bar.printed()..).unwrap_or_default());
    if !g.quiet {
        print_summary(&fit, &a);
    }
    Ok(())
}

pub fn print_summary(fit: &pipeline::FitOutput, a: &FitArgs) {
    let m = &fit.model;
    let s = &m.schema;
    println!(
        "{}: {} rows; {} categorical, {} numeric{}; {} continuous dims; {}",
        display(&a.data),
        m.fit.n_rows,
        s.categorical.len(),
        s.numeric.len(),
        s.text.as_ref().map_or(String::new(), |t| format!(", text as {} PCA dims", t.pca.d())),
        m.params.p,
        m.fit.device
    );
    println!("{:>4} {:>16} {:>14} {:>14} {:>14}  degenerate restarts", "K", "loglik", "BIC", "ICL", "AIC");
    for s in &fit.sweep.per_k {
        let mark = if s.k == m.fit.k { " *" } else { "  " };
        let excluded = if s.degenerate > 0 { format!("{} of {}", s.degenerate, s.restarts) } else { String::new() };
        match (s.loglik, s.criteria) {
            (Some(ll), Some(c)) => {
                println!("{:>4} {ll:>16.3} {:>14.3} {:>14.3} {:>14.3}{mark}{excluded}", s.k, c.bic, c.icl, c.aic)
            }
            _ => {
                println!("{:>4} {:>16} {:>14} {:>14} {:>14}{mark}{excluded} (no eligible fit)", s.k, "—", "—", "—", "—")
            }
        }
    }
    let b = fit.sweep.best_run();
    println!(
        "selected K={} by {} (restart {}, start {}, {} iterations, {}), {:.2}s; {} starts screened",
        b.k,
        m.fit.criterion.name(),
        b.restart,
        b.start,
        b.iterations,
        if b.converged { "converged" } else { "NOT converged: raise --max-iter" },
        m.fit.seconds,
        fit.sweep.screened
    );
    println!("stability: {}", fit.sweep.selected().stability.describe());
    let post = &fit.sweep.posteriors;
    let mut counts = vec![0usize; post.k];
    post.labels().into_iter().for_each(|l| counts[l] += 1);
    for (c, n) in counts.iter().enumerate() {
        println!("  class {:>2}: weight {:.3}, {n} rows", c + 1, m.params.weights[c]);
    }
    if let Some(o) = &fit.outliers {
        println!(
            "{} outliers: log-likelihood below {:.3} (the {} quantile), flagged in assignments.csv",
            o.rows.len(),
            o.threshold,
            o.quantile
        );
    }
    println!(
        "wrote {}/{{model.json, assignments.csv, selection.csv, clusters.json, report.html, report.md}}",
        display(&a.out)
    );
}
