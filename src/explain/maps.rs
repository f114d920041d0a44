//! Maps of the rows: the first two principal axes of the continuous block, and optionally a
//! seeded t-SNE of the reduced text embedding (or of the continuous block without text).

use super::{ExplainOptions, Fitted, MapPoint, TSNE_ROWS, TextSpace, tsne};
use crate::backend::MixtureData;
use crate::foundation::error::Result;
use crate::foundation::linalg;
use crate::foundation::rng::Rng;

/// Levels per categorical column at most on the map of a table without a continuous block.
const MAP_LEVELS: usize = 32;

/// The t-SNE map when `opts.tsne` asks for one: what it is of, and its points.
pub(super) fn tsne_map(
    fit: &Fitted,
    t: &TextSpace,
    labels: &[usize],
    opts: &ExplainOptions,
) -> (Option<String>, Vec<MapPoint>) {
    let data = fit.data;
    let (n, p, d) = (data.n, data.p, t.d);
    let scale = &t.scale;
    match &opts.tsne {
        Some(ts) => {
            // The reduced embedding in its own units when there is text, else the continuous
            // block, on rows that have it.
            let (rows, f, what): (Vec<usize>, usize, String) = if d > 0 {
                (t.rows.clone(), d, "the reduced text embedding".into())
            } else {
                ((0..n).collect(), p, "the continuous block".into())
            };
            if f == 0 || rows.len() < 3 {
                (None, Vec::new())
            } else {
                let rows = Rng::new(opts.seed ^ 0x7513e).sample_sorted(rows, TSNE_ROWS);
                let w = |a: usize| if d > 0 { scale[a] } else { 1.0 };
                let x: Vec<f64> = rows
                    .iter()
                    .flat_map(|&i| (0..f).map(move |a| (i, a)))
                    .map(|(i, a)| w(a) * data.x[i * p + a])
                    .collect();
                let y = tsne::tsne(&x, rows.len(), f, ts);
                let pts = rows
                    .iter()
                    .zip(y)
                    .map(|(&i, q)| MapPoint { row: i, x: q[0], y: q[1], class: labels[i] + 1 })
                    .collect();
                (Some(format!("t-SNE (perplexity {}) of {what}, {} rows", ts.perplexity, rows.len())), pts)
            }
        }
        None => (None, Vec::new()),
    }
}

/// The rows on the first two principal axes of the continuous block (missing values at the
/// mean, 0), at most `points` of them (a seeded sample), and each axis' share of the variance.
/// Without a continuous block, the one-hot categoricals are used, each column cut to its
/// [`MAP_LEVELS`] − 1 most frequent levels and one for the rest (an identifier-like column would
/// otherwise make this an O(levels³) eigen-problem).
///
/// Each axis points where its largest coordinate is positive (`symmetric_eigen`'s convention),
/// so the map does not depend on the solver.
pub(super) fn map_2d(
    data: &MixtureData,
    labels: &[usize],
    points: usize,
    seed: u64,
) -> Result<([f64; 2], Vec<MapPoint>)> {
    let n = data.n;
    let (f, feats): (usize, Vec<f64>) = if data.p > 0 {
        (data.p, data.x.clone())
    } else {
        let cats = data.pooled_categories(MAP_LEVELS);
        (cats.total_levels(), cats.one_hot())
    };
    if f == 0 {
        return Ok(([0.0, 0.0], Vec::new()));
    }
    let mean: Vec<f64> = (0..f).map(|a| (0..n).map(|i| feats[i * f + a]).sum::<f64>() / n as f64).collect();
    let mut cov = vec![0.0; f * f];
    for i in 0..n {
        let r = &feats[i * f..(i + 1) * f];
        for a in 0..f {
            for b in a..f {
                cov[a * f + b] += (r[a] - mean[a]) * (r[b] - mean[b]);
            }
        }
    }
    for a in 0..f {
        for b in 0..a {
            cov[a * f + b] = cov[b * f + a];
        }
    }
    let (vals, vecs) = linalg::symmetric_eigen(&cov, f)?;
    let total: f64 = vals.iter().map(|v| v.max(0.0)).sum::<f64>().max(1e-300);
    let axis = |c: usize| -> Vec<f64> { (0..f).map(|a| if c < f { vecs[a * f + c] } else { 0.0 }).collect() };
    let (ax, ay) = (axis(0), axis(1));
    let share =
        [vals.first().copied().unwrap_or(0.0).max(0.0) / total, vals.get(1).copied().unwrap_or(0.0).max(0.0) / total];
    let rows = Rng::new(seed ^ 0x3a9).sample_sorted((0..n).collect(), points);
    let map = rows
        .iter()
        .map(|&i| {
            let r = &feats[i * f..(i + 1) * f];
            let proj = |ax: &[f64]| (0..f).map(|a| (r[a] - mean[a]) * ax[a]).sum::<f64>();
            MapPoint { row: i, x: proj(&ax), y: proj(&ay), class: labels[i] + 1 }
        })
        .collect();
    Ok((share, map))
}
