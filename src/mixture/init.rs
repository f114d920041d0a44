//! Initialisation: greedy k-means++ seeding and Lloyd iterations on the continuous block
//! (missing coordinates at the column mean, i.e. 0 after standardization), or on one-hot
//! categoricals when there is no continuous block. The hard labels become the first
//! responsibilities and one M-step turns them into parameters.
//!
//! Large tables are seeded and clustered on a seeded sample of [`SAMPLE`] rows; every row is
//! then labelled by its nearest centre, as scikit-learn's mini-batch practice does.

use rayon::prelude::*;

use crate::backend::MixtureData;
use crate::data::MISSING_CODE;
use crate::par::tree_reduce;
use crate::rng::Rng;

/// Rows used to seed and run k-means on big tables.
pub const SAMPLE: usize = 200_000;
/// Lloyd iterations at most (stops earlier when no label changes).
const LLOYD_ITERS: usize = 30;

/// The feature matrix k-means works on, built once per fit and shared by all restarts.
#[derive(Debug, Clone)]
pub struct InitFeatures {
    pub n: usize,
    pub f: usize,
    pub x: Vec<f64>,
}

impl InitFeatures {
    pub fn new(data: &MixtureData) -> Self {
        if data.p > 0 {
            return InitFeatures {
                n: data.n,
                f: data.p,
                x: data.x.clone(),
            };
        }
        let (off, j, tl) = (data.level_offsets(), data.n_cat(), data.total_levels());
        let mut x = vec![0.0; data.n * tl];
        for i in 0..data.n {
            for jj in 0..j {
                let c = data.codes[i * j + jj];
                if c != MISSING_CODE {
                    x[i * tl + off[jj] + c as usize] = 1.0;
                }
            }
        }
        InitFeatures {
            n: data.n,
            f: tl,
            x,
        }
    }
    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.f..(i + 1) * self.f]
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index and squared distance of the nearest centre.
fn nearest(row: &[f64], centers: &[f64], f: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centre) in centers.chunks_exact(f.max(1)).enumerate() {
        let d = dist2(row, &centre[..f]);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
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
/// Arthur & Vassilvitskii's and scikit-learn's implementation). Deterministic given `rng`.
pub fn kmeans(feat: &InitFeatures, k: usize, rng: &mut Rng) -> KMeans {
    let f = feat.f;
    let sample: Vec<usize> = if feat.n > SAMPLE {
        // Partial Fisher–Yates: a uniform sample without replacement.
        let mut idx: Vec<usize> = (0..feat.n).collect();
        for i in 0..SAMPLE {
            let j = i + rng.below(feat.n - i);
            idx.swap(i, j);
        }
        idx.truncate(SAMPLE);
        idx.sort_unstable();
        idx
    } else {
        (0..feat.n).collect()
    };
    let m = sample.len();
    let rows: Vec<&[f64]> = sample.iter().map(|&i| feat.row(i)).collect();

    // Greedy k-means++ seeding.
    let mut centers = Vec::with_capacity(k * f);
    centers.extend_from_slice(rows[rng.below(m)]);
    let mut closest: Vec<f64> = rows.par_iter().map(|r| dist2(r, &centers[..f])).collect();
    let trials = 2 + (k as f64).ln().floor() as usize;
    for _ in 1..k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let cand = if total > 0.0 {
                rng.weighted(&closest, total)
            } else {
                rng.below(m)
            };
            let updated: Vec<f64> = rows
                .par_iter()
                .zip(&closest)
                .map(|(r, &c)| c.min(dist2(r, rows[cand])))
                .collect();
            let pot: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, cand, updated));
            }
        }
        let (_, cand, updated) = best.expect("at least one trial");
        centers.extend_from_slice(rows[cand]);
        closest = updated;
    }

    // Lloyd iterations on the sample.
    let mut labels = vec![u32::MAX; m];
    for _ in 0..LLOYD_ITERS {
        let new: Vec<u32> = rows
            .par_iter()
            .map(|r| nearest(r, &centers, f).0 as u32)
            .collect();
        let changed = new.iter().zip(&labels).filter(|(a, b)| a != b).count();
        labels = new;
        let mut ranges: Vec<(usize, usize)> = (0..m)
            .step_by(8192)
            .map(|s| (s, (s + 8192).min(m)))
            .collect();
        let (sums, counts) = tree_reduce(
            &mut ranges,
            &|&mut (lo, hi): &mut (usize, usize)| {
                let mut sums = vec![0.0; k * f];
                let mut counts = vec![0usize; k];
                for i in lo..hi {
                    let c = labels[i] as usize;
                    counts[c] += 1;
                    for (s, v) in sums[c * f..(c + 1) * f].iter_mut().zip(rows[i]) {
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
        for c in 0..k {
            // An empty cluster keeps its centre.
            if counts[c] > 0 {
                for t in 0..f {
                    centers[c * f + t] = sums[c * f + t] / counts[c] as f64;
                }
            }
        }
        if changed == 0 {
            break;
        }
    }

    // Label every row (the sample is every row for small tables).
    let full: Vec<(u32, f64)> = (0..feat.n)
        .into_par_iter()
        .map(|i| {
            let (c, d) = nearest(feat.row(i), &centers, f);
            (c as u32, d)
        })
        .collect();
    let inertia = full.iter().map(|x| x.1).sum();
    KMeans {
        centers,
        labels: full.into_iter().map(|x| x.0).collect(),
        inertia,
    }
}
