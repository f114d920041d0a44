//! `segmix bench`: EM timings for benchmark scripts (JSON on stdout).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use segmix::mixture::em::{FitConfig, NoProgress, fit_sweep};
use segmix::mixture::parse_k_range;
use segmix::pipeline::bench::{load_npy, synthetic, synthetic_embeddings, time_iteration, time_pca};

use super::Global;
use super::device::{DeviceArgs, open_backend, print_note};
use super::embed::{EmbedderArgs, load_embedder};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Continuous block as a float .npy (n × p); synthetic data when absent.
    #[arg(long, value_name = "X.npy")]
    pub x: Option<PathBuf>,
    /// Category codes as an integer .npy (n × J).
    #[arg(long, value_name = "CODES.npy")]
    pub codes: Option<PathBuf>,
    /// Synthetic rows.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Synthetic continuous dimensions.
    #[arg(long, default_value_t = 32)]
    pub d: usize,
    /// Synthetic categorical columns (4 levels each).
    #[arg(long, default_value_t = 3)]
    pub cats: usize,
    /// Classes for the iteration timing.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Also time a full sweep over this K range (e.g. 2..12).
    #[arg(long)]
    pub sweep: Option<String>,
    /// Restarts per K in the sweep.
    #[arg(long, default_value_t = 3)]
    pub n_init: usize,
    /// Sweep: maximum iterations per restart.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// Sweep: tolerance on the per-row change of the log-likelihood.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also time PCA (Gram pass, eigen-decomposition, projection) of this many synthetic
    /// unit-length embedding rows.
    #[arg(long, value_name = "N")]
    pub pca_rows: Option<usize>,
    /// PCA benchmark: embedding width.
    #[arg(long, default_value_t = 384)]
    pub pca_dim: usize,
    /// PCA benchmark: components kept.
    #[arg(long, default_value_t = 32)]
    pub pca_dims: usize,

    /// Time the sentence encoder instead, on B texts of L tokens (e.g. 512x32): batches per
    /// second back to back, TFLOP/s, and on a GPU with timestamp queries the device time per
    /// stage (matmul, attention, layer norm, …) and the read-back.
    #[arg(long, value_name = "BxL")]
    pub embed: Option<String>,

    #[command(flatten)]
    pub embedder: EmbedderArgs,

    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `512x32` → (512, 32).
fn parse_shape(s: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--embed {s:?}: expected BxL with two whole numbers, e.g. 512x32");
    let (b, l) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((b.trim().parse().map_err(|_| bad())?, l.trim().parse().map_err(|_| bad())?))
}

pub fn run(a: BenchArgs, g: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(a.k >= 1, "--k {}: time at least one class", a.k);
    anyhow::ensure!(a.reps >= 1, "--reps {}: time at least one repetition", a.reps);
    anyhow::ensure!(
        a.x.is_some() || a.d + a.cats > 0,
        "--d 0 --cats 0 leaves nothing to model; give --d or --cats at least 1"
    );
    anyhow::ensure!(
        a.pca_rows.is_none() || (a.pca_dims >= 1 && a.pca_dim >= a.pca_dims),
        "--pca-dims must be 1..=--pca-dim"
    );
    let data = match &a.x {
        Some(x) => load_npy(x, a.codes.as_deref())?,
        None => synthetic(a.n, a.k, a.d, a.cats, 4, 3.0, 0.7, a.seed).data,
    };
    let backend = open_backend(&a.device, g)?;
    if let Some(shape) = &a.embed {
        let (b, l) = parse_shape(shape)?;
        let (e, _) = load_embedder(&a.embedder, &backend, g)?;
        let timing = segmix::pipeline::bench::time_encoder(&e, b, l, a.reps)?;
        print_note(&backend, g);
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "embed": timing }))?);
        return Ok(());
    }
    let timing = time_iteration(&backend, &data, a.k, a.reps, a.seed)?;
    let mut out = serde_json::json!({ "iteration": timing });
    if let Some(range) = &a.sweep {
        let (k_min, k_max) = parse_k_range(range)?;
        let cfg = FitConfig {
            k_min,
            k_max,
            n_init: a.n_init,
            max_iter: a.max_iter,
            tol: a.tol,
            seed: a.seed,
            ..FitConfig::default()
        };
        let t = Instant::now();
        let sweep = fit_sweep(&backend, &data, &cfg, &NoProgress)?;
        let iters: usize = sweep.runs.iter().map(|r| r.iterations).sum();
        out["sweep"] = serde_json::json!({
            "k_range": [k_min, k_max], "n_init": a.n_init, "seconds": t.elapsed().as_secs_f64(),
            "total_iterations": iters, "selected_k": sweep.best_run().k,
            "screened_starts": sweep.screened, "screen_iterations": sweep.screen_iterations,
        });
    }
    if let Some(rows) = a.pca_rows {
        let x = synthetic_embeddings(rows, a.pca_dim, a.seed);
        out["pca"] = serde_json::to_value(time_pca(&backend, &x, rows, a.pca_dim, a.pca_dims, a.reps)?)?;
    }
    print_note(&backend, g);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
