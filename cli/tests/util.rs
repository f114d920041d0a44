//! Shared helpers (and those of `tests/common.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use crate::common::{grouped_vector_line, text_table, write};

/// The `segmix` binary in a sandbox: its embedding cache in a temporary folder of this test
/// process, never the user's, and the default model read (not written) from where `.ci/run` or
/// a first run put it. Tests that name their own cache or model set theirs after this.
pub fn command() -> Command {
    static SANDBOX: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (cache, model) = SANDBOX.get_or_init(|| {
        let model = segmix::encoders::resolve::default_model().expect("all-MiniLM-L6-v2").embedder.dir;
        (tempfile::tempdir().expect("a temporary folder"), model)
    });
    let mut c = Command::new(env!("CARGO_BIN_EXE_segmix"));
    c.env("SEGMIX_CACHE", cache.path()).env("SEGMIX_MODEL", model);
    c
}

/// Runs the `segmix` binary (in the sandbox of [`command`]) with `args`.
pub fn segmix(args: &[&str]) -> Output {
    command().args(args).output().expect("run segmix")
}

/// A file of the workspace (the demo, the fixtures).
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}
