//! Test helpers shared by the library's tests and the command's (`cli/tests/main.rs` includes
//! this file by path): small tables written to a temporary folder.

use std::path::{Path, PathBuf};

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A CSV line of `dims` floats: 1 at position `group`, 0 elsewhere, plus N(0, 0.05²) noise —
/// embeddings of texts that fall into clear groups.
pub fn grouped_vector_line(group: usize, dims: usize, rng: &mut segmix::foundation::rng::Rng) -> String {
    let v: Vec<String> =
        (0..dims).map(|t| format!("{:.4}", if t == group { 1.0 } else { 0.0 } + rng.normal() * 0.05)).collect();
    v.join(",") + "\n"
}

/// A small table with a text column whose (given) embeddings fall into three groups: the table
/// and its embeddings file.
pub fn text_table(dir: &Path, n: usize, text_of: impl Fn(usize) -> String) -> (PathBuf, PathBuf) {
    let mut rng = segmix::foundation::rng::Rng::new(3);
    let mut csv = String::from("channel,ctr,copy\n");
    let mut emb = String::new();
    for i in 0..n {
        let g = i % 3;
        let text = text_of(i).replace('"', "\"\"");
        csv += &format!("{},{:.3},\"{text}\"\n", ["tiktok", "meta", "search"][g], 1.0 + g as f64 + 0.1 * rng.normal());
        emb += &grouped_vector_line(g, 6, &mut rng);
    }
    (write(dir, "t.csv", &csv), write(dir, "t.emb.csv", &emb))
}
