//! Small dense linear algebra on the host: Cholesky factors, triangular inverses and a
//! symmetric eigensolver. These run on p × p matrices (p = reduced text dims + metrics,
//! typically 20–60) once per component per EM iteration — O(K p³), negligible next to the
//! O(N K p²) kernels — so they are written for clarity and accuracy, not speed.
//!
//! All matrices are dense, row-major `[f64]` slices of length n². The one large product the
//! CPU kernels need, [`matmul`], lives in [`gemm`].

mod gemm;

pub use gemm::{Scalar, matmul};

/// Raw moments of a set of rows: their count, column sums and XᵀX (the PCA covariance before
/// centring), as the Gram kernels return them.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    pub rows: usize,
    pub dim: usize,
    pub sum: Vec<f64>,
    /// dim × dim, row-major.
    pub xtx: Vec<f64>,
}

/// Lower Cholesky factor L of a symmetric positive-definite `a` (A = L Lᵀ).
/// Returns `None` when a pivot is not positive (A is not numerically PD).
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    debug_assert_eq!(a.len(), n * n);
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / djj;
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix with a positive diagonal (forward substitution).
pub fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    for j in 0..n {
        inv[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let mut s = 0.0;
            for k in j..i {
                s -= l[i * n + k] * inv[k * n + j];
            }
            inv[i * n + j] = s / l[i * n + i];
        }
    }
    inv
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
    let mut x = b.to_vec();
    for c in 0..m {
        // L y = b
        for i in 0..n {
            let mut s = x[i * m + c];
            for k in 0..i {
                s -= l[i * n + k] * x[k * m + c];
            }
            x[i * m + c] = s / l[i * n + i];
        }
        // Lᵀ x = y
        for i in (0..n).rev() {
            let mut s = x[i * m + c];
            for k in i + 1..n {
                s -= l[k * n + i] * x[k * m + c];
            }
            x[i * m + c] = s / l[i * n + i];
        }
    }
    x
}

/// Eigen-decomposition of a symmetric matrix: Householder reduction to tridiagonal form
/// followed by the implicit QL algorithm (the EISPACK tred2/tql2 pair). Returns eigenvalues in
/// descending order and the matching unit eigenvectors as the columns of a row-major n × n
/// matrix.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = a.to_vec();
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    if n == 0 {
        return (d, v);
    }
    tridiagonalize(&mut v, &mut d, &mut e, n);
    implicit_ql(&mut v, &mut d, &mut e, n);
    // Sort descending, permuting the vector columns with the values.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]));
    let values = order.iter().map(|&i| d[i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, &old) in order.iter().enumerate() {
        for r in 0..n {
            vectors[r * n + new] = v[r * n + old];
        }
    }
    (values, vectors)
}

/// Householder reduction of the symmetric `v` to tridiagonal form (diagonal `d`, off-diagonal
/// `e`), `v` becoming the accumulated transform: the textbook algorithm (EISPACK's tred2), kept
/// in one body as it is published so it can be checked line by line against the reference.
fn tridiagonalize(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

fn implicit_ql(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            for _iter in 0..64 {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for i in l + 2..n {
                    d[i] -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        h = v[at(k, i + 1)];
                        v[at(k, i + 1)] = s * v[at(k, i)] + c * h;
                        v[at(k, i)] = c * v[at(k, i)] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
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
    fn eigen_reconstructs_and_sorts() {
        for n in [1, 2, 3, 10, 40] {
            let a = random_spd(n, 100 + n as u64);
            let (vals, vecs) = symmetric_eigen(&a, n);
            for w in vals.windows(2) {
                assert!(w[0] >= w[1]);
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
