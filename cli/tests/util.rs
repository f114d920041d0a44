//! Shared helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `segmix` binary with `args`.
pub fn segmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segmix")).args(args).output().expect("run segmix")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A file of the workspace (the demo, the fixtures).
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A CSV line of `dims` floats: 1 at position `group`, 0 elsewhere, plus N(0, 0.05²) noise —
/// embeddings of texts that fall into clear groups.
pub fn grouped_vector_line(group: usize, dims: usize, rng: &mut segmix::foundation::rng::Rng) -> String {
    let v: Vec<String> =
        (0..dims).map(|t| format!("{:.4}", if t == group { 1.0 } else { 0.0 } + rng.normal() * 0.05)).collect();
    v.join(",") + "\n"
}
