//! Shared helpers (and those of `tests/common.rs`).

use std::path::{Path, PathBuf};

use segmix::backend::CpuBackend;
use segmix::data::Roles;
use segmix::featurize::schema::Transform;
use segmix::mixture::em::{FitConfig, NoProgress};
use segmix::pipeline::{self, FitJob, FitOutput};

pub use crate::common::{text_table, write};

pub fn roles(cat: &[&str], num: &[&str], text: Option<&str>) -> Roles {
    Roles {
        categorical: cat.iter().map(|s| s.to_string()).collect(),
        numeric: num.iter().map(|s| s.to_string()).collect(),
        text: text.map(str::to_string),
    }
}

/// Fits through the library pipeline with the CPU backend.
pub fn fit(data: &Path, roles: Roles, embeddings: Option<&Path>, config: FitConfig) -> segmix::Result<FitOutput> {
    let job = FitJob {
        data: data.to_path_buf(),
        roles,
        embeddings: embeddings.map(Path::to_path_buf),
        pca_dims: 8,
        transforms: Vec::new(),
        config,
    };
    pipeline::fit(&CpuBackend::new(), &job, None, &NoProgress)
}

/// [`fit`] with numeric columns transformed (`--log`, `--log1p`).
pub fn fit_with(
    data: &Path,
    roles: Roles,
    transforms: &[(&str, Transform)],
    config: FitConfig,
) -> segmix::Result<FitOutput> {
    let transforms = transforms.iter().map(|(c, t)| (c.to_string(), *t)).collect();
    let job = FitJob { data: data.to_path_buf(), roles, embeddings: None, pca_dims: 8, transforms, config };
    pipeline::fit(&CpuBackend::new(), &job, None, &NoProgress)
}

/// Hard labels (argmax) of an n × k posterior matrix.
pub fn labels(resp: &[f64], k: usize) -> Vec<u32> {
    resp.chunks_exact(k).map(|r| segmix::foundation::stats::argmax(r).0 as u32).collect()
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
