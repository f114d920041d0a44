//! How good a partition is. Against a reference partition: adjusted Rand index and normalized
//! mutual information (arithmetic normalisation, scikit-learn's default). Internal, in a
//! feature space: silhouette, Davies–Bouldin and Calinski–Harabasz, with scikit-learn's
//! definitions (Euclidean distance).

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::foundation::linalg::matmul;

/// Cell, row and column counts of the contingency table.
type Contingency = (HashMap<(u32, u32), f64>, HashMap<u32, f64>, HashMap<u32, f64>);

fn contingency(a: &[u32], b: &[u32]) -> Contingency {
    assert_eq!(a.len(), b.len(), "partitions of different lengths");
    let mut cells = HashMap::new();
    let mut rows = HashMap::new();
    let mut cols = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *cells.entry((x, y)).or_insert(0.0) += 1.0;
        *rows.entry(x).or_insert(0.0) += 1.0;
        *cols.entry(y).or_insert(0.0) += 1.0;
    }
    (cells, rows, cols)
}

fn comb2(x: f64) -> f64 {
    x * (x - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions, ≈ 0 for chance.
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as f64;
    let (cells, rows, cols) = contingency(a, b);
    let index: f64 = cells.values().map(|&c| comb2(c)).sum();
    let sa: f64 = rows.values().map(|&c| comb2(c)).sum();
    let sb: f64 = cols.values().map(|&c| comb2(c)).sum();
    let expected = sa * sb / comb2(n);
    let max = 0.5 * (sa + sb);
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Normalized mutual information, I(a; b) / ((H(a) + H(b)) / 2).
pub fn normalized_mutual_info(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as f64;
    let (cells, rows, cols) = contingency(a, b);
    let h = |m: &HashMap<u32, f64>| -m.values().map(|&c| (c / n) * (c / n).ln()).sum::<f64>();
    let (ha, hb) = (h(&rows), h(&cols));
    if ha == 0.0 && hb == 0.0 {
        return 1.0;
    }
    let mi: f64 = cells.iter().map(|(&(x, y), &c)| (c / n) * ((c * n) / (rows[&x] * cols[&y])).ln()).sum();
    let denom = 0.5 * (ha + hb);
    if denom <= 0.0 { 0.0 } else { (mi / denom).clamp(0.0, 1.0) }
}

/// Dense 0-based labels (any u32 ids → 0..C) and the number of clusters C.
fn dense(labels: &[u32]) -> (Vec<usize>, usize) {
    let mut ids: HashMap<u32, usize> = HashMap::new();
    let out = labels
        .iter()
        .map(|&l| {
            let next = ids.len();
            *ids.entry(l).or_insert(next)
        })
        .collect();
    (out, ids.len())
}

/// Per-cluster size and centroid (C × dim) of the rows of `x` (n × dim).
fn centroids(x: &[f64], dim: usize, labels: &[usize], c: usize) -> (Vec<f64>, Vec<f64>) {
    let mut size = vec![0.0f64; c];
    let mut cent = vec![0.0; c * dim];
    for (i, &l) in labels.iter().enumerate() {
        size[l] += 1.0;
        cent[l * dim..(l + 1) * dim].iter_mut().zip(&x[i * dim..(i + 1) * dim]).for_each(|(a, b)| *a += b);
    }
    for l in 0..c {
        cent[l * dim..(l + 1) * dim].iter_mut().for_each(|v| *v /= size[l].max(1.0));
    }
    (size, cent)
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

/// Mean silhouette of every row for several labelings of the same rows of `x` (n × dim) at once:
/// s_i = (b_i − a_i) / max(a_i, b_i), with a_i the mean distance to the rest of its cluster and
/// b_i the smallest mean distance to another cluster; s_i = 0 in a singleton cluster. `None`
/// for a labeling with fewer than 2 or more than n − 1 clusters (undefined, as in
/// scikit-learn). The O(n² dim) distances are computed once, in GEMM blocks, and shared by
/// every labeling.
pub fn silhouettes(x: &[f64], n: usize, dim: usize, labelings: &[&[u32]]) -> Vec<Option<f64>> {
    let dense: Vec<(Vec<usize>, usize, Vec<f64>)> = labelings
        .iter()
        .map(|l| {
            let (lab, c) = dense(l);
            let sizes = cluster_sizes(&lab, c);
            (lab, c, sizes)
        })
        .collect();
    let norms: Vec<f64> = (0..n).map(|i| x[i * dim..(i + 1) * dim].iter().map(|v| v * v).sum()).collect();
    let xv = ArrayView2::from_shape((n, dim), x).expect("x shape");
    const BLOCK: usize = 256;
    let blocks: Vec<usize> = (0..n).step_by(BLOCK).collect();
    // Per block: for each labeling, Σ_i s_i over the block's rows.
    let sums: Vec<Vec<f64>> = blocks
        .par_iter()
        .map(|&lo| {
            let rows = BLOCK.min(n - lo);
            let mut g = Array2::<f64>::zeros((rows, n));
            matmul(&mut g.view_mut(), &xv.slice(ndarray::s![lo..lo + rows, ..]), &xv.t(), false);
            let mut out = vec![0.0; dense.len()];
            let mut per = Vec::new();
            for r in 0..rows {
                let i = lo + r;
                let d: Vec<f64> = (0..n)
                    .map(|j| if j == i { 0.0 } else { (norms[i] + norms[j] - 2.0 * g[[r, j]]).max(0.0).sqrt() })
                    .collect();
                for (li, (lab, c, sizes)) in dense.iter().enumerate() {
                    per.clear();
                    per.resize(*c, 0.0);
                    for j in 0..n {
                        per[lab[j]] += d[j];
                    }
                    let own = lab[i];
                    if sizes[own] <= 1.0 {
                        continue;
                    }
                    let a = per[own] / (sizes[own] - 1.0);
                    let b = (0..*c)
                        .filter(|&l| l != own && sizes[l] > 0.0)
                        .map(|l| per[l] / sizes[l])
                        .fold(f64::INFINITY, f64::min);
                    let m = a.max(b);
                    if m > 0.0 {
                        out[li] += (b - a) / m;
                    }
                }
            }
            out
        })
        .collect();
    dense
        .iter()
        .enumerate()
        .map(|(li, (_, c, _))| (*c >= 2 && *c < n).then(|| sums.iter().map(|s| s[li]).sum::<f64>() / n as f64))
        .collect()
}

fn cluster_sizes(lab: &[usize], c: usize) -> Vec<f64> {
    let mut s = vec![0.0; c];
    lab.iter().for_each(|&l| s[l] += 1.0);
    s
}

/// Davies–Bouldin index (lower is better): the mean over clusters of
/// max_{j≠i} (s_i + s_j) / ‖c_i − c_j‖, s_i the mean distance of cluster i's rows to its centroid.
pub fn davies_bouldin(x: &[f64], n: usize, dim: usize, labels: &[u32]) -> Option<f64> {
    let (lab, c) = dense(labels);
    if c < 2 || c >= n {
        return None;
    }
    let (size, cent) = centroids(x, dim, &lab, c);
    let mut s = vec![0.0; c];
    for (i, &l) in lab.iter().enumerate() {
        s[l] += dist(&x[i * dim..(i + 1) * dim], &cent[l * dim..(l + 1) * dim]);
    }
    s.iter_mut().zip(&size).for_each(|(v, n)| *v /= n.max(1.0));
    let mut total = 0.0;
    for i in 0..c {
        let mut worst: f64 = 0.0;
        for j in 0..c {
            if i != j {
                let d = dist(&cent[i * dim..(i + 1) * dim], &cent[j * dim..(j + 1) * dim]);
                // scikit-learn: a zero centroid distance gives an infinite ratio, replaced by 0.
                let r = if d > 0.0 { (s[i] + s[j]) / d } else { 0.0 };
                worst = worst.max(r);
            }
        }
        total += worst;
    }
    Some(total / c as f64)
}

/// Calinski–Harabasz index (higher is better): [tr B / (C − 1)] / [tr W / (n − C)], the
/// between- and within-cluster dispersion.
pub fn calinski_harabasz(x: &[f64], n: usize, dim: usize, labels: &[u32]) -> Option<f64> {
    let (lab, c) = dense(labels);
    if c < 2 || c >= n {
        return None;
    }
    let (size, cent) = centroids(x, dim, &lab, c);
    let mean: Vec<f64> = (0..dim).map(|a| (0..n).map(|i| x[i * dim + a]).sum::<f64>() / n as f64).collect();
    let between: f64 = (0..c).map(|l| size[l] * dist(&cent[l * dim..(l + 1) * dim], &mean).powi(2)).sum();
    let within: f64 = lab
        .iter()
        .enumerate()
        .map(|(i, &l)| dist(&x[i * dim..(i + 1) * dim], &cent[l * dim..(l + 1) * dim]).powi(2))
        .sum();
    Some(if within == 0.0 { 1.0 } else { between * (n - c) as f64 / (within * (c - 1) as f64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from scikit-learn 1.9.1:
    // adjusted_rand_score / normalized_mutual_info_score([0,0,0,1,1,1,2,2,2,2], [0,0,1,1,1,2,2,2,0,2])
    const A: [u32; 10] = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
    const B: [u32; 10] = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2];

    #[test]
    fn matches_scikit_learn() {
        assert!((adjusted_rand_index(&A, &B) - 0.20454545454545456).abs() < 1e-12, "{}", adjusted_rand_index(&A, &B));
        assert!(
            (normalized_mutual_info(&A, &B) - 0.44270128334605).abs() < 1e-12,
            "{}",
            normalized_mutual_info(&A, &B)
        );
    }

    #[test]
    fn label_permutations_do_not_matter() {
        let c: Vec<u32> = A.iter().map(|&x| (x + 1) % 3).collect();
        assert_eq!(adjusted_rand_index(&A, &c), 1.0);
        assert!((normalized_mutual_info(&A, &c) - 1.0).abs() < 1e-12);
    }
}
