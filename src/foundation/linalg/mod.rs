//! Small dense linear algebra on the host, on faer: Cholesky factors, triangular inverses and
//! solves, and the symmetric eigen-decomposition. These run on p × p matrices (p = reduced text
//! dims + metrics, typically 20–60) once per component per EM iteration — O(K p³), negligible
//! next to the O(N K p²) kernels — and on the D × D embedding covariance once per PCA. faer is
//! built without rayon, so every call is sequential and a fit stays bit-for-bit reproducible
//! at any thread count.
//!
//! All matrices are dense, row-major `[f64]` slices of length n². The one large product the
//! CPU kernels need, [`matmul`], lives in `gemm`.

mod gemm;

use faer::{Mat, MatRef, Side};

pub use gemm::{Scalar, matmul};

use crate::foundation::error::{Error, Result};

/// Raw moments of a set of rows: their count, column sums and XᵀX (the PCA covariance before
/// centring), as the Gram kernels return them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gram {
    pub rows: usize,
    pub dim: usize,
    pub sum: Vec<f64>,
    /// dim × dim, row-major.
    pub xtx: Vec<f64>,
}

impl Gram {
    /// The moments of no rows, `dim` wide (what a pass adds its rows to).
    pub fn zeros(dim: usize) -> Gram {
        Gram { rows: 0, dim, sum: vec![0.0; dim], xtx: vec![0.0; dim * dim] }
    }

    /// The moments of both sets of rows (`o` must be as wide).
    pub fn merge(mut self, o: &Gram) -> Gram {
        debug_assert_eq!(self.dim, o.dim);
        self.rows += o.rows;
        self.sum.iter_mut().zip(&o.sum).for_each(|(a, b)| *a += b);
        self.xtx.iter_mut().zip(&o.xtx).for_each(|(a, b)| *a += b);
        self
    }
}

/// `a` (n × n, row-major) as a faer matrix view.
fn view(a: &[f64], n: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(a, n, n)
}

/// A faer matrix as a row-major vector.
fn row_major(m: MatRef<'_, f64>) -> Vec<f64> {
    let (r, c) = (m.nrows(), m.ncols());
    (0..r * c).map(|t| m[(t / c, t % c)]).collect()
}

/// Lower Cholesky factor L of a symmetric positive-definite `a` (A = L Lᵀ; only the lower
/// triangle of `a` is read). Returns `None` when `a` is not numerically positive definite or
/// holds a non-finite value.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    debug_assert_eq!(a.len(), n * n);
    if n == 0 {
        return Some(Vec::new());
    }
    if (0..n).any(|i| (0..=i).any(|j| !a[i * n + j].is_finite())) {
        return None;
    }
    let llt = view(a, n).llt(Side::Lower).ok()?;
    let l = llt.L();
    Some((0..n * n).map(|t| if t % n <= t / n { l[(t / n, t % n)] } else { 0.0 }).collect())
}

/// Inverse of a lower-triangular matrix with a positive diagonal.
pub fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = Mat::<f64>::identity(n, n);
    view(l, n).solve_lower_triangular_in_place(inv.as_mut());
    row_major(inv.as_ref())
}

/// The precision Cholesky factor of a covariance Σ, in scikit-learn's convention:
/// U = L⁻ᵀ (upper triangular) where Σ = L Lᵀ, so that Σ⁻¹ = U Uᵀ and, for a row vector d,
/// dᵀ Σ⁻¹ d = ‖d U‖². Returns (U, log det U) with log det U = −Σ_i ln L_ii = −½ ln det Σ.
pub fn precision_cholesky(sigma: &[f64], n: usize) -> Option<(Vec<f64>, f64)> {
    let l = cholesky(sigma, n)?;
    let linv = lower_inverse(&l, n);
    let mut u = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            u[i * n + j] = linv[j * n + i];
        }
    }
    let log_det_u = -(0..n).map(|i| l[i * n + i].ln()).sum::<f64>();
    Some((u, log_det_u))
}

/// Solves A X = B for symmetric positive-definite A (n × n) given its lower Cholesky factor,
/// with B of shape n × m (row-major). Returns X (n × m).
pub fn cholesky_solve(l: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
    let mut x = Mat::<f64>::from_fn(n, m, |i, j| b[i * m + j]);
    let l = view(l, n);
    l.solve_lower_triangular_in_place(x.as_mut());
    l.transpose().solve_upper_triangular_in_place(x.as_mut());
    row_major(x.as_ref())
}

/// Eigen-decomposition of a symmetric matrix (faer's self-adjoint solver; only the lower
/// triangle is read). Returns eigenvalues in descending order and the matching unit
/// eigenvectors as the columns of a row-major n × n matrix, each pointing where its largest
/// entry (the first, on ties) is positive, so that callers (PCA axes, report maps) do not depend
/// on the solver's sign convention; or an error when the solver does not converge.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical("eigen-decomposition of a matrix with a non-finite entry".into()));
    }
    let evd = view(a, n).self_adjoint_eigen(Side::Lower).map_err(|e| {
        Error::Numerical(format!("the symmetric eigen-decomposition ({n} × {n}) did not converge: {e:?}"))
    })?;
    // faer sorts ascending; reverse, permuting the vector columns with the values.
    let (s, u) = (evd.S(), evd.U());
    let values = (0..n).rev().map(|i| s[i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, old) in (0..n).rev().enumerate() {
        let big = (0..n).map(|r| u[(r, old)]).fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for r in 0..n {
            vectors[r * n + new] = sign * u[(r, old)];
        }
    }
    Ok((values, vectors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::rng::Rng;

    fn random_spd(n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        let g: Vec<f64> = (0..n * n).map(|_| r.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    (0..n).map(|k| g[i * n + k] * g[j * n + k]).sum::<f64>() + if i == j { 0.5 } else { 0.0 };
            }
        }
        a
    }

    #[test]
    fn precision_cholesky_inverts_the_covariance() {
        for n in [1, 2, 7, 33] {
            let a = random_spd(n, n as u64);
            let (u, log_det_u) = precision_cholesky(&a, n).unwrap();
            // A (U Uᵀ) = I
            for i in 0..n {
                for j in 0..n {
                    let mut s = 0.0;
                    for k in 0..n {
                        let prec_kj: f64 = (0..n).map(|m| u[k * n + m] * u[j * n + m]).sum();
                        s += a[i * n + k] * prec_kj;
                    }
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((s - want).abs() < 1e-8, "n={n} ({i},{j}) {s}");
                }
            }
            let l = cholesky(&a, n).unwrap();
            let log_det_a: f64 = (0..n).map(|i| 2.0 * l[i * n + i].ln()).sum();
            assert!((log_det_u + 0.5 * log_det_a).abs() < 1e-10);
        }
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(cholesky(&[0.0], 1).is_none());
    }

    #[test]
    fn cholesky_solve_solves() {
        let n = 5;
        let a = random_spd(n, 3);
        let b: Vec<f64> = (0..n * 2).map(|i| i as f64 - 3.0).collect();
        let l = cholesky(&a, n).unwrap();
        let x = cholesky_solve(&l, n, &b, 2);
        for i in 0..n {
            for c in 0..2 {
                let s: f64 = (0..n).map(|k| a[i * n + k] * x[k * 2 + c]).sum();
                assert!((s - b[i * 2 + c]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn eigen_reconstructs_sorts_and_fixes_signs() {
        for n in [1, 2, 3, 10, 40] {
            let a = random_spd(n, 100 + n as u64);
            let (vals, vecs) = symmetric_eigen(&a, n).unwrap();
            for w in vals.windows(2) {
                assert!(w[0] >= w[1]);
            }
            for c in 0..n {
                let big = (0..n).map(|r| vecs[r * n + c]).fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
                assert!(big > 0.0, "n={n}: vector {c} points where its largest entry is negative");
            }
            for i in 0..n {
                for j in 0..n {
                    let s: f64 = (0..n).map(|k| vecs[i * n + k] * vals[k] * vecs[j * n + k]).sum();
                    assert!((s - a[i * n + j]).abs() < 1e-8 * (1.0 + a[i * n + j].abs()), "n={n}");
                    let o: f64 = (0..n).map(|k| vecs[k * n + i] * vecs[k * n + j]).sum();
                    assert!((o - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10);
                }
            }
        }
    }
}
