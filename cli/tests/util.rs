//! Shared helpers (and those of `tests/common.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::common::{grouped_vector_line, text_table, write};

/// Runs the `segmix` binary with `args`.
pub fn segmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segmix")).args(args).output().expect("run segmix")
}

/// A file of the workspace (the demo, the fixtures).
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}
