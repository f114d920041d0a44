//! The `segmix` command: clap definitions and their translation into validated library
//! configs, progress bars and printing. No modelling happens here; `main` only maps errors to
//! an exit code.

mod bench;
mod compare;
mod device;
mod embed;
mod fit;
mod predict;
mod progress;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use segmix::foundation::choice::Choice;

/// Latent segments in tables of categories, free text and metrics.
#[derive(Debug, Parser)]
#[command(name = "segmix", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Worker threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bar and no summary; warnings and errors still go to stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit the joint latent class model, explain its classes, and write model.json,
    /// assignments.csv, selection.csv, clusters.json, report.html and report.md.
    Fit(fit::FitArgs),
    /// Embed a text column with a sentence transformer and write the vectors as .npy.
    Embed(embed::EmbedArgs),
    /// Score new rows with a fitted model: classes, posteriors and expected metrics.
    Predict(predict::PredictArgs),
    /// Time one EM iteration (and optionally a K sweep) on synthetic or .npy data.
    Bench(bench::BenchArgs),
    /// Run the joint model and the usual baselines (k-means, k-prototypes, embedding + k-means,
    /// a text-only GMM) on the same rows and K range, and score them all in one space.
    Compare(compare::CompareArgs),
    /// Rebuild report.html and report.md in a fit's folder from its files, without refitting.
    Report(report::ReportArgs),
    /// List the GPU adapters wgpu can see, their limits, and which one --device auto takes.
    Devices(device::DevicesArgs),
}

/// Shared output options.
#[derive(Debug, Clone)]
pub struct Global {
    pub quiet: bool,
}

fn main() -> ExitCode {
    quiet_headless_vulkan();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: a library error already quotes its source (an I/O
/// error's OS text), which the chain would repeat.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// On a machine without a desktop session (no `XDG_RUNTIME_DIR`: a server, a container, CI),
/// Mesa's Vulkan device-select layer tries to reach a Wayland display and prints "error:
/// XDG_RUNTIME_DIR is invalid" twice whenever the GPU backend is probed. segmix enumerates and
/// chooses adapters itself, so the layer is switched off there (`NODEVICE_SELECT=1`) unless the
/// user set it.
#[allow(unsafe_code)]
fn quiet_headless_vulkan() {
    let headless = std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| !std::path::Path::new(&d).is_dir());
    if headless && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(t) = cli.threads {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let limit = (4 * cores).max(64);
        if t == 0 || t > limit {
            anyhow::bail!(
                "--threads {t}: give 1 to {limit} (this machine has {cores} cores; more threads than that only add overhead)"
            );
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let global = Global { quiet: cli.quiet };
    match cli.command {
        Command::Fit(a) => fit::run(a, &global),
        Command::Embed(a) => embed::run(a, &global),
        Command::Predict(a) => predict::run(a, &global),
        Command::Bench(a) => bench::run(a, &global),
        Command::Devices(a) => device::run(a, &global),
        Command::Compare(a) => compare::run(a, &global),
        Command::Report(a) => report::run(a, &global),
    }
}

/// The value parser of a flag that takes one of a library [`Choice`]'s names (listed, with
/// their help, by `--help`).
pub(crate) fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|c| PossibleValue::new(c.name()).help(c.help())))
        .try_map(|s| T::parse(&s).ok_or_else(|| format!("expected one of {}", T::names())))
}

/// Prints warnings to stderr, one per line.
pub(crate) fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

pub(crate) fn display(p: &std::path::Path) -> String {
    PathBuf::from(p).display().to_string()
}

/// Checks an output path before any compute: it is not one of the `inputs`, and the nearest
/// folder that exists on its way (itself, for a folder output that exists) takes a new file.
/// Hours of embedding and fitting must not end in "cannot write".
pub(crate) fn check_output(flag: &str, out: &std::path::Path, inputs: &[&std::path::Path]) -> anyhow::Result<()> {
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(input) = inputs.iter().find(|i| same(out, i)) {
        anyhow::bail!(
            "{flag} {} is an input of this run ({}); write the output elsewhere",
            display(out),
            display(input)
        );
    }
    let mut dir = if out.is_dir() { out.to_path_buf() } else { out.parent().map(PathBuf::from).unwrap_or_default() };
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(".");
    }
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => {
                dir = PathBuf::from(".");
                break;
            }
        }
    }
    if !dir.is_dir() {
        anyhow::bail!("{flag} {}: {} is not a folder", display(out), display(&dir));
    }
    let probe = dir.join(format!(".segmix-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => anyhow::bail!("{flag} {}: cannot write in {}: {e}", display(out), display(&dir)),
    }
}
