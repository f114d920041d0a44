//! Initialisation: the starts of EM. Greedy k-means++ seeding and Lloyd iterations in several
//! feature spaces ([`StartSpaces`]: the continuous block, the joint space of continuous and
//! scaled one-hot categoricals), random partitions, splits of a K − 1 fit, and split-and-merge
//! moves of a K fit. A start is a set of responsibilities (hard labels, random, or a fit's own
//! rearranged); one M-step turns them into parameters (`mixture::em` screens many starts and
//! runs the best on).
//!
//! Large tables are seeded and clustered on a seeded sample of [`SAMPLE`] rows; every row is
//! then labelled by its nearest centre, as scikit-learn's mini-batch practice does.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::foundation::linalg::matmul;

use super::params::Params;
use crate::backend::MixtureData;
use crate::foundation::par::tree_reduce;
use crate::foundation::rng::Rng;

/// Rows used to seed and run k-means on big tables.
pub const SAMPLE: usize = 200_000;
/// Candidates scored per k-means++ step at most.
const MAX_TRIALS: usize = 12;
/// Levels per categorical column at most in a start space: the rest of a column's levels are
/// pooled ([`MixtureData::pooled_categories`]), so an identifier-like column adds O(n · MAX_LEVELS) work,
/// not O(n · levels); a level shared by few rows barely moves k-means anyway.
pub const MAX_LEVELS: usize = 64;
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
        let cats = data.pooled_categories(MAX_LEVELS);
        InitFeatures::from_matrix(data.n, cats.total_levels(), Cow::Owned(cats.one_hot()))
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
///
/// Seeding, Lloyd iterations and the final labelling share the sampled rows and their norms,
/// so they stay in one body (about 90 lines).
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

/// A start of one fit: responsibilities for every row, from which one M-step makes the first
/// parameters.
#[derive(Debug, Clone)]
pub struct Start {
    pub k: usize,
    pub assign: Assignment,
    /// How it was made, for `selection.csv`.
    pub name: String,
}

/// How a start assigns the rows to its K classes.
#[derive(Debug, Clone)]
pub enum Assignment {
    /// A hard label per row.
    Labels(Vec<u32>),
    /// Responsibilities drawn uniformly at random and normalised per row, from this seed, when
    /// the start runs (scikit-learn's and StepMix's `init_params="random"`): every class starts
    /// near the overall mean and shape, and EM breaks the symmetry itself, which reaches optima
    /// that no partition of the rows leads to. They need many iterations to do so.
    SoftRandom(u64),
    /// Given n × K responsibilities (a split-and-merge move of a fitted model).
    Soft(Vec<f64>),
}

impl Start {
    /// The n × K responsibilities of this start.
    pub fn responsibilities(&self, n: usize) -> Vec<f64> {
        let k = self.k;
        let mut r = vec![0.0; n * k];
        match &self.assign {
            Assignment::Labels(labels) => {
                for (i, &c) in labels.iter().enumerate() {
                    r[i * k + c as usize] = 1.0;
                }
            }
            Assignment::SoftRandom(seed) => {
                let mut rng = Rng::new(*seed);
                for row in r.chunks_mut(k) {
                    row.iter_mut().for_each(|v| *v = rng.uniform());
                    let s: f64 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= s);
                }
            }
            Assignment::Soft(given) => r.copy_from_slice(given),
        }
        r
    }
}

/// The spaces starts are drawn in, built once per sweep:
///
/// * `kmeans++` — the standardized continuous block (missing coordinates at the mean);
/// * `joint kmeans++` — the continuous block beside the one-hot categoricals, each categorical
///   column scaled so that its one-hot block has total variance 1, like one continuous column
///   (level j of a column whose levels have shares q is scaled by 1/√(1 − Σ q²); a missing value
///   sits at the column's mean);
/// * `categorical kmeans++` — the same with each categorical column's variance raised to
///   max(4, 2p/J), so that classes that differ only in their categoricals separate;
/// * `unscaled kmeans++` — k-means++ on the continuous block in the data's own units (when the
///   columns' scales differ), as k-means on the raw table would run;
/// * `random` — a uniformly random partition;
/// * `soft random` — random responsibilities (every other start, on screens long enough for
///   them: see [`StartSpaces::starts`]).
///
/// With only categoricals the one space is the one-hot block; with only a continuous block it is
/// that block. Splits of a K − 1 fit run 2-means in the joint space (or the only one).
#[derive(Debug)]
pub struct StartSpaces<'a> {
    n: usize,
    spaces: Vec<(&'static str, InitFeatures<'a>)>,
    /// Index of the space splits run in.
    split: usize,
}

/// The one-hot categoricals `cats` (those of `data`, levels pooled) beside the continuous block
/// of `data`, each categorical column scaled to total variance `weight`.
fn joint_features(data: &MixtureData, cats: &MixtureData, weight: f64) -> Vec<f64> {
    let (n, p, j) = (data.n, data.p, cats.n_cat());
    let (tl, off) = (cats.total_levels(), cats.level_offsets());
    // Level shares among observed values, per column.
    let mut share = vec![0.0; tl];
    let mut observed = vec![0.0f64; j];
    for i in 0..n {
        for (jj, &c) in cats.codes[i * j..(i + 1) * j].iter().enumerate() {
            if c != crate::foundation::MISSING_CODE {
                share[off[jj] + c as usize] += 1.0;
                observed[jj] += 1.0;
            }
        }
    }
    let mut scale = vec![0.0; j];
    for jj in 0..j {
        let q = &mut share[off[jj]..off[jj + 1]];
        q.iter_mut().for_each(|v| *v /= observed[jj].max(1.0));
        let var = 1.0 - q.iter().map(|v| v * v).sum::<f64>();
        scale[jj] = if var > 1e-12 { (weight / var).sqrt() } else { 0.0 };
    }
    let w = p + tl;
    let mut x = vec![0.0; n * w];
    for i in 0..n {
        let row = &mut x[i * w..(i + 1) * w];
        row[..p].copy_from_slice(&data.x[i * p..(i + 1) * p]);
        for (jj, &c) in cats.codes[i * j..(i + 1) * j].iter().enumerate() {
            let block = &mut row[p + off[jj]..p + off[jj + 1]];
            if c == crate::foundation::MISSING_CODE {
                for (b, q) in block.iter_mut().zip(&share[off[jj]..off[jj + 1]]) {
                    *b = scale[jj] * q;
                }
            } else {
                block[c as usize] = scale[jj];
            }
        }
    }
    x
}

impl<'a> StartSpaces<'a> {
    pub fn new(data: &'a MixtureData) -> Self {
        let (n, p, j) = (data.n, data.p, data.n_cat());
        let mut spaces = Vec::new();
        if p > 0 {
            spaces.push(("kmeans++", InitFeatures::from_matrix(n, p, Cow::Borrowed(&data.x))));
        }
        let mut split = 0;
        // The continuous block in the data's own units: another geometry, other starts (a
        // metric with a large spread weighs more, as in k-means on the raw table).
        let (lo, hi) = data.scale.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        if p > 0 && data.scale.len() == p && hi > 1.5 * lo {
            // Relative to the smallest scale: the same geometry (k-means is blind to a common
            // factor) without squares that overflow for columns in the 1e154s and beyond.
            let x: Vec<f64> =
                data.x.chunks_exact(p).flat_map(|r| r.iter().zip(&data.scale).map(|(v, s)| v * (s / lo))).collect();
            spaces.push(("unscaled kmeans++", InitFeatures::from_matrix(n, p, Cow::Owned(x))));
        }
        if j > 0 {
            let cats = data.pooled_categories(MAX_LEVELS);
            let f = p + cats.total_levels();
            if p > 0 {
                split = spaces.len();
                spaces.push((
                    "joint kmeans++",
                    InitFeatures::from_matrix(n, f, Cow::Owned(joint_features(data, &cats, 1.0))),
                ));
                let heavy = (2.0 * p as f64 / j as f64).max(4.0);
                spaces.push((
                    "categorical kmeans++",
                    InitFeatures::from_matrix(n, f, Cow::Owned(joint_features(data, &cats, heavy))),
                ));
            } else {
                spaces
                    .push(("kmeans++", InitFeatures::from_matrix(n, f, Cow::Owned(joint_features(data, &cats, 1.0)))));
            }
        }
        if spaces.is_empty() {
            // Nothing modelled: every start is the same; k-means on no features gives one.
            spaces.push(("kmeans++", InitFeatures::from_matrix(n, 0, Cow::Owned(Vec::new()))));
        }
        StartSpaces { n, spaces, split }
    }

    /// `count` starts for K classes, cycling through the spaces and random partitions; start i
    /// is seeded by (seed, K, i + 1). With `soft` (screens that run their starts long enough to
    /// break a near-symmetric start) every other start is random responsibilities instead: on
    /// small tables at large K they reach better optima than any partition (banknote, K = 5:
    /// the best of 60 is 26 nats above the best of 60 k-means++ starts in scikit-learn).
    pub fn starts(&self, k: usize, count: usize, seed: u64, soft: bool) -> Vec<Start> {
        let spaces = self.spaces.len();
        let families = spaces + 1;
        (0..count)
            .map(|i| {
                let mut rng = Rng::derive(seed, k as u64, i as u64 + 1);
                let family = if !soft {
                    i % families
                } else if i % 2 == 1 {
                    families
                } else {
                    (i / 2) % families
                };
                if let Some((name, feat)) = self.spaces.get(family) {
                    let labels = kmeans(feat, k, &mut rng).labels;
                    Start { k, assign: Assignment::Labels(labels), name: name.to_string() }
                } else if family == spaces {
                    let labels = (0..self.n).map(|_| rng.below(k) as u32).collect();
                    Start { k, assign: Assignment::Labels(labels), name: "random".into() }
                } else {
                    Start { k, assign: Assignment::SoftRandom(rng.next_u64()), name: "soft random".into() }
                }
            })
            .collect()
    }

    /// Starts for K = prev.k + 1 from a K − 1 fit whose rows have `labels`: its `count` widest
    /// classes (largest N_c · H_c, the class's share of −ℓ, with H_c its entropy), each split in
    /// two by 2-means of its rows.
    pub fn splits(&self, prev: &Params, labels: &[usize], count: usize, seed: u64) -> Vec<Start> {
        let k = prev.k + 1;
        let mut out = Vec::new();
        for c in widest(prev) {
            if out.len() == count {
                break;
            }
            let Some((members, halves)) = self.halve(labels, c, Rng::derive(seed, k as u64, 10_000 + c as u64)) else {
                continue;
            };
            let halves = halves.labels;
            let mut new: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            for (&i, &h) in members.iter().zip(&halves) {
                if h == 1 {
                    new[i] = (k - 1) as u32;
                }
            }
            out.push(Start { k, assign: Assignment::Labels(new), name: format!("split {}", c + 1) });
        }
        out
    }

    /// Split-and-merge moves of a fitted K-class model (Ueda, Nakano, Ghahramani & Hinton 2000,
    /// "SMEM"): two classes whose rows overlap most are merged into one, and the freed class
    /// takes half of a wide class, so K stays the same but EM restarts from a rearranged fit
    /// that it could not reach by itself (a class spent on a spike or on one of two sides of
    /// a boundary moves to where it is needed). `resp` are the model's n × K responsibilities on
    /// this start space's rows.
    ///
    /// Merge candidates are the pairs (i, j) with the largest overlap Σₙ r_ni r_nj; split
    /// candidates the classes with the largest N_c · H_c (as [`StartSpaces::splits`]). Up to
    /// `count` moves (i, j, c), c ∉ {i, j}, in that order (the 10 best pairs, each with the 5
    /// widest classes): the start's responsibilities are r_i + r_j for class i, and class c's
    /// responsibilities divided between c and j by the side of the 2-means boundary of c's rows
    /// (in the split space) each row lies on. Needs K ≥ 3. Deterministic given `seed` and
    /// `round`.
    pub fn split_merges(&self, theta: &Params, resp: &[f64], count: usize, seed: u64, round: usize) -> Vec<Start> {
        const PAIRS: usize = 10;
        const WIDEST: usize = 5;
        let k = theta.k;
        if k < 3 || resp.len() != self.n * k {
            return Vec::new();
        }
        let mut overlap = vec![0.0; k * k];
        for r in resp.chunks_exact(k) {
            for i in 0..k {
                for j in i + 1..k {
                    overlap[i * k + j] += r[i] * r[j];
                }
            }
        }
        let mut pairs: Vec<(usize, usize)> = (0..k).flat_map(|i| (i + 1..k).map(move |j| (i, j))).collect();
        pairs.sort_by(|a, b| overlap[b.0 * k + b.1].total_cmp(&overlap[a.0 * k + a.1]));
        let wide: Vec<usize> = widest(theta).into_iter().take(WIDEST).collect();
        // Each split class's rows on one side (false) or the other (true) of its 2-means boundary:
        // every row labelled by the nearer of the two centres of the class's own rows.
        let labels: Vec<usize> = resp.chunks_exact(k).map(|r| crate::foundation::stats::argmax(r).0).collect();
        let feat = &self.spaces[self.split].1;
        let norms = row_norms(&feat.x, feat.f);
        let mut sides: Vec<Option<Vec<bool>>> = vec![None; k];
        for &c in &wide {
            let rng = Rng::derive(seed, k as u64, 20_000 + (round * k + c) as u64);
            sides[c] = self
                .halve(&labels, c, rng)
                .map(|(_, halves)| assign(&feat.x, &norms, feat.f, &halves.centers).iter().map(|a| a.0 == 1).collect());
        }
        let mut out = Vec::new();
        for &(i, j) in pairs.iter().take(PAIRS) {
            for &c in &wide {
                if out.len() == count {
                    return out;
                }
                let Some(side) = sides[c].as_ref().filter(|_| c != i && c != j) else { continue };
                let mut r = resp.to_vec();
                for (row, &s) in r.chunks_exact_mut(k).zip(side) {
                    row[i] += row[j];
                    let rc = row[c];
                    (row[c], row[j]) = if s { (0.0, rc) } else { (rc, 0.0) };
                }
                let name = format!("merge {}+{} split {}", i + 1, j + 1, c + 1);
                out.push(Start { k, assign: Assignment::Soft(r), name });
            }
        }
        out
    }
}

impl StartSpaces<'_> {
    /// The rows labelled `c` and their 2-means in the split space (`None` below two rows).
    fn halve(&self, labels: &[usize], c: usize, mut rng: Rng) -> Option<(Vec<usize>, KMeans)> {
        let feat = &self.spaces[self.split].1;
        let members: Vec<usize> = (0..self.n).filter(|&i| labels[i] == c).collect();
        if members.len() < 2 {
            return None;
        }
        let x: Vec<f64> = members.iter().flat_map(|&i| feat.row(i).iter().copied()).collect();
        let halves = kmeans(&InitFeatures::from_matrix(members.len(), feat.f, Cow::Owned(x)), 2, &mut rng);
        Some((members, halves))
    }
}

/// The classes of a fit, widest first: by N_c · H_c, the class's share of −ℓ (H_c its entropy).
fn widest(theta: &Params) -> Vec<usize> {
    let mut order: Vec<(usize, f64)> = (0..theta.k).map(|c| (c, theta.weights[c] * class_entropy(theta, c))).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    order.into_iter().map(|x| x.0).collect()
}

/// Entropy of class c's distribution: ½ ln det(2πe Σ_c) for the Gaussian block plus
/// −Σ_j Σ_l α ln α for the categoricals (nats; the Gaussian part may be negative).
fn class_entropy(theta: &Params, c: usize) -> f64 {
    let p = theta.p;
    let gauss = if p == 0 {
        0.0
    } else {
        crate::foundation::linalg::cholesky(theta.covariance(c), p).map_or(f64::INFINITY, |l| {
            let log_det: f64 = (0..p).map(|a| 2.0 * l[a * p + a].ln()).sum();
            0.5 * (p as f64 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + log_det)
        })
    };
    let tl = theta.total_levels();
    let cat: f64 = theta.alpha[c * tl..(c + 1) * tl].iter().map(|&a| if a > 0.0 { -a * a.ln() } else { 0.0 }).sum();
    gauss + cat
}
