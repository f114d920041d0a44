//! PCA of the embeddings: x_e = (v − m) W with W the top-d principal axes of the embedding
//! covariance. The covariance comes from the `gram` kernel and the scores from the `project`
//! kernel, both run where the vectors live ([`Vectors`]: host, or resident on a GPU); the
//! eigen-decomposition of the D × D matrix runs on the host.

use serde::{Deserialize, Serialize};

use crate::foundation::error::{Error, Result};
use crate::foundation::linalg;
use crate::foundation::linalg::Gram;
use crate::foundation::vectors::Vectors;

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Input dimension D.
    pub dim: usize,
    /// Column means m, length D.
    pub mean: Vec<f64>,
    /// Principal axes as rows, d × D (unit length; sign fixed so the largest entry is positive).
    pub components: Vec<Vec<f64>>,
    /// Variance along each axis (eigenvalues of the covariance), length d.
    pub explained_variance: Vec<f64>,
    /// Total variance (trace of the covariance).
    pub total_variance: f64,
}

impl Pca {
    /// Number of retained components d.
    pub fn d(&self) -> usize {
        self.components.len()
    }

    /// Fits on the table rows that have a vector. Keeps at most `d` components, fewer when the
    /// data has lower rank. Returns the PCA and a warning when fewer than `d` components carry
    /// variance.
    pub fn fit(v: &Vectors, d: usize) -> Result<(Pca, Option<String>)> {
        Pca::from_gram(&v.gram()?, d)
    }

    /// The PCA of the rows whose raw moments `g` holds.
    pub fn from_gram(g: &Gram, d: usize) -> Result<(Pca, Option<String>)> {
        let dim = g.dim;
        if g.rows < 2 {
            return Err(Error::config("PCA needs at least two rows with an embedding"));
        }
        let nf = g.rows as f64;
        let mean: Vec<f64> = g.sum.iter().map(|s| s / nf).collect();
        // C = (XᵀX − n m mᵀ) / (n − 1)
        let mut cov = vec![0.0; dim * dim];
        for a in 0..dim {
            for b in 0..dim {
                cov[a * dim + b] = (g.xtx[a * dim + b] - nf * mean[a] * mean[b]) / (nf - 1.0);
            }
        }
        let total_variance: f64 = (0..dim).map(|a| cov[a * dim + a]).sum();
        let (values, vectors) = linalg::symmetric_eigen(&cov, dim)?;
        let floor = values.first().copied().unwrap_or(0.0).max(0.0) * 1e-10;
        let keep = values.iter().take(d.min(g.rows - 1)).take_while(|&&v| v > floor && v > 0.0).count();
        let warning = (keep < d)
            .then(|| format!("PCA kept {keep} components instead of {d}: the embeddings have no variance beyond that"));
        if keep == 0 {
            return Err(Error::config("the embeddings have no variance (every row is the same vector)"));
        }
        // Signs are fixed by `symmetric_eigen` (largest entry positive).
        let components = (0..keep).map(|c| (0..dim).map(|r| vectors[r * dim + c]).collect()).collect();
        let pca = Pca { dim, mean, components, explained_variance: values[..keep].to_vec(), total_variance };
        Ok((pca, warning))
    }

    /// Projects every table row: rows × d scores, NaN rows without a vector.
    pub fn transform(&self, v: &Vectors) -> Result<Vec<f64>> {
        assert_eq!(v.cols(), self.dim, "vectors of the PCA's width");
        v.project(&self.mean, &self.axes(), self.d())
    }

    /// The axes as columns: W, D × d row-major, so scores are (v − m) W.
    pub fn axes(&self) -> Vec<f64> {
        let d = self.d();
        let mut w = vec![0.0; self.dim * d];
        for (c, axis) in self.components.iter().enumerate() {
            for (r, v) in axis.iter().enumerate() {
                w[r * d + c] = *v;
            }
        }
        w
    }
}
