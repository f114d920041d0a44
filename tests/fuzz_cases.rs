//! The fuzz targets' saved inputs — their seeds (`fuzz/seeds/<target>/`) and the cases the
//! fuzzing runs found worth keeping (`fuzz/regressions/<target>/`: inputs that crashed once, and
//! the minimized corpus's cases) — replayed through the same checks (`fuzz/harness.rs`) on every
//! `cargo test`. A panic is a bug.

#[path = "../fuzz/harness.rs"]
mod harness;

fn replay(target: &str, check: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", f.display());
            count += 1;
        }
    }
    assert!(count > 0, "{target}: no saved inputs");
}

#[test]
fn saved_csv_inputs() {
    replay("csv", harness::csv);
}

#[test]
fn saved_npy_inputs() {
    replay("npy", harness::npy);
}

#[test]
fn saved_model_inputs() {
    replay("model", harness::model);
}

#[test]
fn saved_model_edits_inputs() {
    replay("model_edits", harness::model_edits);
}

#[test]
fn saved_cache_inputs() {
    replay("cache", harness::cache);
}
