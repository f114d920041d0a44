//! Initialisation: greedy k-means++ seeding and Lloyd iterations on the continuous block
//! (missing coordinates at the column mean, i.e. 0 after standardization), or on one-hot
//! categoricals when there is no continuous block. The hard labels become the first
//! responsibilities and one M-step turns them into parameters.
//!
//! Large tables are seeded and clustered on a seeded sample of [`SAMPLE`] rows; every row is
//! then labelled by its nearest centre, as scikit-learn's mini-batch practice does.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::backend::matmul::matmul;

use crate::backend::MixtureData;
use crate::par::tree_reduce;
use crate::rng::Rng;

/// Rows used to seed and run k-means on big tables.
pub const SAMPLE: usize = 200_000;
/// Candidates scored per k-means++ step at most.
const MAX_TRIALS: usize = 12;
/// Lloyd iterations at most (stops earlier when no label changes).
const LLOYD_ITERS: usize = 30;

/// The feature matrix k-means works on, built once per fit and shared by all restarts.
#[derive(Debug, Clone)]
pub struct InitFeatures<'a> {
    pub n: usize,
    pub f: usize,
    /// n × f, borrowed from the data when it is the continuous block.
    pub x: Cow<'a, [f64]>,
    /// Mean over features of the per-feature variance (the scale of Lloyd's stopping rule).
    pub mean_var: f64,
}

impl<'a> InitFeatures<'a> {
    pub fn new(data: &'a MixtureData) -> Self {
        if data.p > 0 {
            return InitFeatures::from_matrix(data.n, data.p, Cow::Borrowed(&data.x));
        }
        InitFeatures::from_matrix(data.n, data.total_levels(), Cow::Owned(data.one_hot()))
    }

    /// Features from any n × f matrix (the compare baselines run k-means on their own).
    pub fn from_matrix(n: usize, f: usize, x: Cow<'a, [f64]>) -> Self {
        // One row-major pass: Σx and Σx² per feature.
        let mut s1 = vec![0.0; f];
        let mut s2 = vec![0.0; f];
        for r in x.chunks_exact(f.max(1)) {
            for (a, &v) in r.iter().enumerate() {
                s1[a] += v;
                s2[a] += v * v;
            }
        }
        let nf = n.max(1) as f64;
        let mean_var = if f == 0 {
            0.0
        } else {
            (0..f).map(|a| (s2[a] / nf - (s1[a] / nf).powi(2)).max(0.0)).sum::<f64>() / f as f64
        };
        InitFeatures { n, f, x, mean_var }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.f..(i + 1) * self.f]
    }
}

/// Rows per GEMM chunk in distance computations.
const CHUNK: usize = 2048;

/// ‖x_i‖² of every row of `x` (m × f).
fn row_norms(x: &[f64], f: usize) -> Vec<f64> {
    x.par_chunks(f.max(1) * CHUNK)
        .flat_map_iter(|c| c.chunks_exact(f.max(1)).map(|r| r.iter().map(|v| v * v).sum()))
        .collect()
}

/// Calls `visit(row, distances to every centre)` for every row of `x` (m × f), chunk by chunk in
/// parallel, with squared distances ‖x‖² − 2 x·c + ‖c‖² (clamped at 0) whose cross term is one
/// GEMM per chunk. Returns the per-row results of `visit` in row order.
fn with_distances<T: Send>(
    x: &[f64],
    xn: &[f64],
    f: usize,
    centers: &[f64],
    visit: impl Fn(usize, &[f64]) -> T + Sync,
) -> Vec<T> {
    let c = centers.len() / f.max(1);
    let cn: Vec<f64> = centers.chunks_exact(f.max(1)).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let cv = ArrayView2::from_shape((c, f), centers).expect("centre shape");
    let m = xn.len();
    let chunks: Vec<usize> = (0..m).step_by(CHUNK).collect();
    chunks
        .par_iter()
        .flat_map_iter(|&lo| {
            let rows = CHUNK.min(m - lo);
            let mut g = Array2::<f64>::zeros((rows, c));
            if f > 0 && c > 0 {
                let xv = ArrayView2::from_shape((rows, f), &x[lo * f..(lo + rows) * f]).expect("row shape");
                matmul(&mut g.view_mut(), &xv, &cv.t(), false);
            }
            let mut d = vec![0.0; c];
            let out: Vec<T> = (0..rows)
                .map(|i| {
                    for j in 0..c {
                        d[j] = (xn[lo + i] - 2.0 * g[[i, j]] + cn[j]).max(0.0);
                    }
                    visit(lo + i, &d)
                })
                .collect();
            out.into_iter()
        })
        .collect()
}

/// Nearest centre and its squared distance for every row.
fn assign(x: &[f64], xn: &[f64], f: usize, centers: &[f64]) -> Vec<(u32, f64)> {
    with_distances(x, xn, f, centers, |_, d| {
        let (j, v) = d.iter().enumerate().fold((0, f64::INFINITY), |b, (j, &v)| if v < b.1 { (j, v) } else { b });
        (j as u32, if v.is_finite() { v } else { 0.0 })
    })
}

/// Result of the k-means initialisation.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// K × f centres.
    pub centers: Vec<f64>,
    /// Label of every row.
    pub labels: Vec<u32>,
    /// Sum of squared distances to the assigned centres.
    pub inertia: f64,
}

/// k-means with greedy k-means++ seeding (2 + ⌊ln K⌋ candidates per centre, as in
/// Arthur & Vassilvitskii's and scikit-learn's implementation) and Lloyd iterations that stop
/// when no label changes or the centres move less than 1e-4 of the mean feature variance
/// (scikit-learn's criterion). Deterministic given `rng`.
pub fn kmeans(feat: &InitFeatures, k: usize, rng: &mut Rng) -> KMeans {
    let f = feat.f;
    let sampled: Option<Vec<f64>> = (feat.n > SAMPLE).then(|| {
        let idx = rng.sample_sorted((0..feat.n).collect(), SAMPLE);
        idx.iter().flat_map(|&i| feat.row(i).iter().copied()).collect()
    });
    let x: &[f64] = sampled.as_deref().unwrap_or(&feat.x);
    let m = x.len().checked_div(f).unwrap_or(feat.n.min(SAMPLE));
    let row = |i: usize| &x[i * f..(i + 1) * f];

    // Greedy k-means++ seeding: each step scores all candidates with one distance pass.
    let mut centers = Vec::with_capacity(k * f);
    centers.extend_from_slice(row(rng.below(m)));
    let xn = row_norms(x, f);
    let mut closest: Vec<f64> = with_distances(x, &xn, f, &centers, |_, d| d[0]);
    let trials = (2 + (k as f64).ln().floor() as usize).min(MAX_TRIALS);
    for _ in 1..k {
        let total: f64 = closest.iter().sum();
        let cands: Vec<usize> =
            (0..trials).map(|_| if total > 0.0 { rng.weighted(&closest, total) } else { rng.below(m) }).collect();
        let cand_rows: Vec<f64> = cands.iter().flat_map(|&c| row(c).iter().copied()).collect();
        // Potential of each candidate: Σ_i min(closest_i, d(x_i, candidate)²).
        let t = cands.len();
        let mins: Vec<[f64; MAX_TRIALS]> = with_distances(x, &xn, f, &cand_rows, |i, d| {
            let mut v = [0.0; MAX_TRIALS];
            for (o, &dv) in v.iter_mut().zip(d) {
                *o = dv.min(closest[i]);
            }
            v
        });
        let pots: Vec<f64> = (0..t).map(|j| mins.iter().map(|v| v[j]).sum()).collect();
        let best = (0..t).fold(0, |b, j| if pots[j] < pots[b] { j } else { b });
        for (c, v) in closest.iter_mut().zip(&mins) {
            *c = v[best];
        }
        centers.extend_from_slice(row(cands[best]));
    }

    // Lloyd iterations.
    let mean_var = feat.mean_var;
    let mut labels = vec![u32::MAX; m];
    for _ in 0..LLOYD_ITERS {
        let new: Vec<u32> = assign(x, &xn, f, &centers).into_iter().map(|a| a.0).collect();
        let changed = new.iter().zip(&labels).filter(|(a, b)| a != b).count();
        labels = new;
        let mut ranges: Vec<(usize, usize)> = (0..m).step_by(8192).map(|s| (s, (s + 8192).min(m))).collect();
        let (sums, counts) = tree_reduce(
            &mut ranges,
            &|&mut (lo, hi): &mut (usize, usize)| {
                let mut sums = vec![0.0; k * f];
                let mut counts = vec![0usize; k];
                for i in lo..hi {
                    let c = labels[i] as usize;
                    counts[c] += 1;
                    for (s, v) in sums[c * f..(c + 1) * f].iter_mut().zip(row(i)) {
                        *s += v;
                    }
                }
                (sums, counts)
            },
            &|(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                (s1, c1)
            },
        );
        let mut shift = 0.0;
        for c in 0..k {
            // An empty cluster keeps its centre.
            if counts[c] > 0 {
                for t in 0..f {
                    let v = sums[c * f + t] / counts[c] as f64;
                    shift += (v - centers[c * f + t]).powi(2);
                    centers[c * f + t] = v;
                }
            }
        }
        if changed == 0 || shift <= 1e-4 * mean_var {
            break;
        }
    }

    // Label every row (the sample is every row for small tables).
    let full = if sampled.is_some() {
        assign(&feat.x, &row_norms(&feat.x, f), f, &centers)
    } else {
        assign(x, &xn, f, &centers)
    };
    let inertia = full.iter().map(|a| a.1).sum();
    KMeans { centers, labels: full.into_iter().map(|a| a.0).collect(), inertia }
}
