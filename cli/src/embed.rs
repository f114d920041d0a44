//! `segmix embed`: a text column → one sentence vector per row, as `.npy`.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use segmix::data::{Roles, Strictness, read_table};
use segmix::encoders::Embedder;
use segmix::encoders::cache::Cache;
use segmix::pipeline::EmbedderOptions;

use segmix::backend::AnyBackend;

use super::device::{DeviceArgs, open_backend};
use super::{Global, display};

/// Embedder options shared by `embed`, `fit` and `predict`.
#[derive(Debug, Clone, Args)]
pub struct EmbedderArgs {
    /// The sentence transformer: a folder (tokenizer.json with config.json + model.safetensors,
    /// or a 4-bit model.e5s1), a name (`multilingual`: intfloat/multilingual-e5-small for text
    /// in any language; `minilm`: all-MiniLM-L6-v2, English), or a Hugging Face hub id.
    /// Default: $SEGMIX_MODEL, else all-MiniLM-L6-v2. Named models are fetched on first use.
    #[arg(long, value_name = "DIR|NAME")]
    pub model: Option<String>,

    /// Do not read or write the on-disk embedding cache ($SEGMIX_CACHE/embeddings).
    #[arg(long)]
    pub no_cache: bool,

    /// Put this before every text before embedding it, instead of the model's default prompt
    /// (config_sentence_transformers.json); E5 models want "query: ". An empty string: none.
    /// Recorded in model.json; predict applies the fitted model's own.
    #[arg(long, value_name = "TEXT")]
    pub text_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The table: a CSV file with a header line, or Parquet (.parquet) or Arrow IPC (.arrow,
    /// .feather, .arrows) by its extension; only the text column is read.
    pub data: PathBuf,

    /// The text column to embed.
    #[arg(long, value_name = "COL")]
    pub text: String,

    /// Output: float32 .npy, one row per data row (all-NaN rows for empty texts).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,

    #[command(flatten)]
    pub embedder: EmbedderArgs,

    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Loads the embedder, saying once where it came from, on the backend's GPU when it has one.
pub fn load_embedder(
    args: &EmbedderArgs,
    backend: &AnyBackend,
    g: &Global,
) -> segmix::Result<(Embedder, Option<Cache>)> {
    let opts =
        EmbedderOptions { model: args.model.clone(), no_cache: args.no_cache, text_prefix: args.text_prefix.clone() };
    let loaded = segmix::pipeline::load_embedder(&opts, backend)?;
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    if !g.quiet {
        eprintln!("{}", loaded.origin);
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok((loaded.embedder, loaded.cache))
}

/// The embedding progress bar (texts/s, ETA) on stderr.
pub fn text_bar(quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    bar.set_style(
        ProgressStyle::with_template("embedding {bar:24} {pos}/{len} texts  {per_sec}  ETA {eta}").expect("template"),
    );
    bar
}

/// Moves `bar` to `done` of `total`.
pub fn advance(bar: &ProgressBar, done: usize, total: usize) {
    bar.set_length(total as u64);
    bar.set_position(done as u64);
}

/// Embeds texts with a progress bar (texts/s, ETA) on stderr.
pub fn embed_texts(
    e: &Embedder,
    cache: Option<&Cache>,
    texts: &[Option<&str>],
    g: &Global,
) -> anyhow::Result<segmix::encoders::Embedded> {
    let bar = text_bar(g.quiet);
    let out = e.embed(texts, cache, &|done, total| advance(&bar, done, total));
    bar.finish_and_clear();
    let out = out?;
    if let Some(w) = cache.and_then(Cache::take_warning) {
        eprintln!("warning: {w}");
    }
    if out.truncated > 0 {
        eprintln!("warning: {} texts are longer than {} tokens and were truncated", out.truncated, e.info.max_length);
    }
    Ok(out)
}

pub fn run(a: EmbedArgs, g: &Global) -> anyhow::Result<()> {
    super::check_output("--out", &a.out, &[&a.data])?;
    let roles = Roles { text: Some(a.text.clone()), ..Roles::default() };
    let table = read_table(&a.data, &roles, Strictness::Predict)?;
    if let Some(note) = table.format_note() {
        eprintln!("warning: {note}");
    }
    let texts: Vec<Option<&str>> =
        table.text.as_ref().expect("text role").values.iter().map(|t| t.as_deref()).collect();
    let backend = open_backend(&a.device, g)?;
    let (e, cache) = load_embedder(&a.embedder, &backend, g)?;
    let t = std::time::Instant::now();
    let out = embed_texts(&e, cache.as_ref(), &texts, g)?;
    let m = &out.matrix;
    segmix::report::write_atomic(&a.out, |w| segmix::data::embeddings::write_npy_f32(w, m.rows, m.cols, &m.values))?;
    if !g.quiet {
        let missing = texts.iter().filter(|t| t.is_none()).count();
        println!(
            "embedded {} rows ({} distinct texts encoded, {missing} empty) in {:.1}s → {}",
            m.rows,
            out.encoded,
            t.elapsed().as_secs_f64(),
            display(&a.out)
        );
    }
    Ok(())
}
