//! The class hierarchy: the fitted classes combined pairwise down to one by the entropy criterion
//! of Baudry, Raftery, Celeux, Lo & Gottardo (2010, "Combining mixture components for
//! clustering"; mclust's `clustCombi`). Combining classes a and b gives the rows the posterior
//! τ_a + τ_b for the union; each step combines the pair whose union lowers the classification
//! entropy ENT = −Σᵢ Σ_g τ_ig ln τ_ig the most,
//!
//! ```text
//! ΔENT(a, b) = Σᵢ [(τ_ia + τ_ib) ln(τ_ia + τ_ib) − τ_ia ln τ_ia − τ_ib ln τ_ib]  ≥ 0,
//! ```
//!
//! that is, the two classes whose rows the model can least tell apart: close relatives, often
//! two Gaussian pieces of one non-Gaussian segment. The mixture's likelihood is unchanged by
//! combining (the union is a two-component mixture); only the labelling coarsens. K − 1 steps
//! make the tree; cutting it after K − g steps gives g groups (`segmix report --merge-to g`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CategoricalProfile, ClassReport, LevelShare, MetricProfile};

/// One step of the combination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Merge {
    /// The fitted classes (1-based) in each of the two combined groups, ascending.
    pub left: Vec<usize>,
    pub right: Vec<usize>,
    /// Groups after this step.
    pub groups: usize,
    /// ΔENT of this step and the entropy after it (nats, summed over the rows).
    pub gain: f64,
    pub entropy: f64,
}

fn xlogx(x: f64) -> f64 {
    if x > 0.0 { x * x.ln() } else { 0.0 }
}

/// The K − 1 steps that combine the `k` classes of the n × k posteriors `post` into one.
pub fn combine(post: &[f64], k: usize) -> Vec<Merge> {
    if k < 2 || post.is_empty() {
        return Vec::new();
    }
    let n = post.len() / k;
    // Column-major group posteriors, one column per live group.
    let mut cols: Vec<Option<(Vec<usize>, Vec<f64>)>> =
        (0..k).map(|c| Some((vec![c + 1], (0..n).map(|i| post[i * k + c]).collect()))).collect();
    let gain =
        |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(&x, &y)| xlogx(x + y) - xlogx(x) - xlogx(y)).sum() };
    let mut pair = vec![f64::NAN; k * k];
    for a in 0..k {
        for b in a + 1..k {
            pair[a * k + b] = gain(&cols[a].as_ref().unwrap().1, &cols[b].as_ref().unwrap().1);
        }
    }
    let mut entropy: f64 = -post.iter().map(|&t| xlogx(t)).sum::<f64>();
    let mut out = Vec::with_capacity(k - 1);
    for step in 1..k {
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..k {
            for b in a + 1..k {
                let g = pair[a * k + b];
                if cols[a].is_some() && cols[b].is_some() && best.is_none_or(|x| g > x.0) {
                    best = Some((g, a, b));
                }
            }
        }
        let (g, a, b) = best.expect("two groups are left");
        let (right, tb) = cols[b].take().expect("live group");
        let (left, ta) = cols[a].as_mut().expect("live group");
        let (l, r) = (left.clone(), right.clone());
        ta.iter_mut().zip(&tb).for_each(|(x, y)| *x += y);
        left.extend(right);
        left.sort_unstable();
        entropy = (entropy - g).max(0.0);
        out.push(Merge { left: l, right: r, groups: k - step, gain: g.max(0.0), entropy });
        // Only the pairs with the new group change.
        let merged = cols[a].as_ref().map(|c| c.1.clone()).expect("live group");
        for c in (0..k).filter(|&c| c != a) {
            if let Some((_, tc)) = &cols[c] {
                let (lo, hi) = (a.min(c), a.max(c));
                pair[lo * k + hi] = gain(&merged, tc);
            }
        }
    }
    out
}

/// Each fitted class's group (0-based) when the tree `merges` of `k` classes is cut at `groups`
/// groups; groups are numbered by their smallest class.
pub fn cut(merges: &[Merge], k: usize, groups: usize) -> Vec<usize> {
    let mut of: Vec<usize> = (0..k).collect();
    for m in merges.iter().take(k.saturating_sub(groups.max(1))) {
        let into = of[m.left[0] - 1];
        let from = of[m.right[0] - 1];
        of.iter_mut().filter(|g| **g == from).for_each(|g| *g = into);
    }
    let mut ids: Vec<usize> = of.clone();
    ids.sort_unstable();
    ids.dedup();
    of.iter().map(|g| ids.binary_search(g).expect("a group")).collect()
}

/// The leaves (1-based classes) in the order a dendrogram draws them: every group contiguous.
pub fn leaf_order(merges: &[Merge], k: usize) -> Vec<usize> {
    let mut groups: Vec<Vec<usize>> = (1..=k).map(|c| vec![c]).collect();
    let find = |groups: &[Vec<usize>], c: usize| groups.iter().position(|g| g.contains(&c)).expect("a group");
    for m in merges {
        let (a, b) = (find(&groups, m.left[0]), find(&groups, m.right[0]));
        let right = groups[b].clone();
        groups[a].extend(right);
        groups.remove(b);
    }
    groups.into_iter().flatten().collect()
}

/// A group of classes after cutting the tree: its profile combined from its classes'.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// 1-based, numbered by the group's smallest class.
    pub group: usize,
    /// Its fitted classes (1-based).
    pub classes: Vec<usize>,
    /// Rows whose most probable group this is (from the summed posteriors).
    pub size: usize,
    /// Σ π_k of its classes.
    pub weight: f64,
    pub categorical: BTreeMap<String, CategoricalProfile>,
    pub metrics: BTreeMap<String, MetricProfile>,
}

/// The profiles of the groups `of` (each class's group, from [`cut`]) with `sizes` rows each,
/// combined from the classes' profiles weighted by their weights π_k (their posterior mass):
/// a level's share is the weighted mean of the classes' shares, a metric's mean the weighted
/// mean and its sd from the law of total variance. Exact when every class's profile counts the
/// same rows (no missing values in the column).
pub fn group_profiles(classes: &[ClassReport], of: &[usize], sizes: &[usize]) -> Vec<Group> {
    let groups = of.iter().copied().max().map_or(0, |g| g + 1);
    (0..groups)
        .map(|g| {
            let members: Vec<&ClassReport> = classes.iter().zip(of).filter(|(_, o)| **o == g).map(|(c, _)| c).collect();
            let weight: f64 = members.iter().map(|c| c.weight).sum();
            let w = |c: &ClassReport| if weight > 0.0 { c.weight / weight } else { 1.0 / members.len() as f64 };
            let mut categorical = BTreeMap::new();
            for (col, first) in members.first().map(|c| &c.categorical).into_iter().flatten() {
                let levels = first
                    .levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let share: f64 = members.iter().map(|c| w(c) * c.categorical[col].levels[i].share).sum();
                        let lift = if l.population > 0.0 { share / l.population } else { 0.0 };
                        LevelShare { level: l.level.clone(), share, population: l.population, lift }
                    })
                    .collect();
                categorical.insert(col.clone(), CategoricalProfile::new(levels));
            }
            let mut metrics = BTreeMap::new();
            for (name, first) in members.first().map(|c| &c.metrics).into_iter().flatten() {
                let mean: f64 = members.iter().map(|c| w(c) * c.metrics[name].mean).sum();
                let second: f64 =
                    members.iter().map(|c| w(c) * (c.metrics[name].sd.powi(2) + c.metrics[name].mean.powi(2))).sum();
                let sd = (second - mean * mean).max(0.0).sqrt();
                let z = if first.overall_sd > 0.0 { (mean - first.overall_mean) / first.overall_sd } else { 0.0 };
                metrics.insert(
                    name.clone(),
                    MetricProfile { mean, sd, overall_mean: first.overall_mean, overall_sd: first.overall_sd, z },
                );
            }
            Group {
                group: g + 1,
                classes: members.iter().map(|c| c.class).collect(),
                size: sizes.get(g).copied().unwrap_or(0),
                weight,
                categorical,
                metrics,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four classes: 0 and 1 share their rows (posteriors split between them), 2 and 3 are
    /// clean, 3 overlaps 2 a little.
    fn posteriors() -> Vec<f64> {
        let mut p = Vec::new();
        for i in 0..40 {
            p.extend(match i % 4 {
                0 => [0.5, 0.5, 0.0, 0.0],
                1 => [0.6, 0.4, 0.0, 0.0],
                2 => [0.0, 0.0, 0.9, 0.1],
                _ => [0.0, 0.0, 0.05, 0.95],
            });
        }
        p
    }

    #[test]
    fn the_most_confused_pair_combines_first_and_entropy_falls_to_zero() {
        let p = posteriors();
        let m = combine(&p, 4);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].left.clone(), m[0].right.clone()), (vec![1], vec![2]));
        assert_eq!((m[1].left.clone(), m[1].right.clone()), (vec![3], vec![4]));
        assert_eq!(m.iter().map(|x| x.groups).collect::<Vec<_>>(), [3, 2, 1]);
        // By hand: ENT(4) − ENT after the first step = the first gain.
        let ent: f64 = -p.iter().map(|&t| xlogx(t)).sum::<f64>();
        let first: f64 = p.chunks(4).map(|r| xlogx(r[0] + r[1]) - xlogx(r[0]) - xlogx(r[1])).sum();
        assert!((m[0].gain - first).abs() < 1e-9 && (m[0].entropy - (ent - first)).abs() < 1e-9);
        assert!(m[2].entropy.abs() < 1e-9, "one group has no entropy");
        assert!(m.windows(2).all(|w| w[0].gain >= w[1].gain - 1e-12));
    }

    #[test]
    fn cutting_the_tree_gives_the_groups() {
        let m = combine(&posteriors(), 4);
        assert_eq!(cut(&m, 4, 4), [0, 1, 2, 3]);
        assert_eq!(cut(&m, 4, 3), [0, 0, 1, 2]);
        assert_eq!(cut(&m, 4, 2), [0, 0, 1, 1]);
        assert_eq!(cut(&m, 4, 1), [0, 0, 0, 0]);
        assert_eq!(leaf_order(&m, 4), [1, 2, 3, 4]);
        assert!(combine(&[1.0; 5], 1).is_empty());
    }
}
