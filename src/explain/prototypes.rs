//! Prototypes: the member texts nearest each class mean in the reduced text space, by Euclidean
//! distance (in the embedding's own units) and by Mahalanobis distance under the class
//! covariance's text block; duplicates collapsed, each with its distance and posterior. A
//! member of class k is a row whose most probable class is k, so a prototype never belongs to
//! another class; a class with fewer distinct member texts shows fewer prototypes.

use super::{ExplainOptions, Fitted, Prototype, TextSpace};
use crate::data::TextColumn;
use crate::foundation::linalg;

/// Per class, the prototypes by Euclidean and by Mahalanobis distance (none by Mahalanobis when
/// the class's text covariance has no Cholesky factor). `labels` are the rows' most probable
/// classes.
pub(super) fn prototypes(
    fit: &Fitted,
    t: &TextSpace,
    col: &TextColumn,
    labels: &[usize],
    opts: &ExplainOptions,
) -> Vec<(Vec<Prototype>, Vec<Prototype>)> {
    let params = &fit.model.params;
    let (p, k, d) = (fit.data.p, params.k, t.d);
    let post = &fit.posteriors.resp;
    let mut protos = vec![(Vec::new(), Vec::new()); k];
    if opts.prototypes == 0 {
        return protos;
    }
    for (kk, pr) in protos.iter_mut().enumerate() {
        let members: Vec<usize> = t.rows.iter().copied().filter(|&i| labels[i] == kk).collect();
        let mu = &params.means[kk * p..kk * p + d];
        // Euclidean in the embedding's own units: the standardized PCA scores times their
        // scale (√eigenvalue), so low-variance components do not count as much as the rest.
        let euclid = |i: usize| -> f64 {
            let r = &t.xt[i * d..(i + 1) * d];
            (0..d).map(|a| (t.scale[a] * (r[a] - mu[a])).powi(2)).sum::<f64>().sqrt()
        };
        // Mahalanobis under the class covariance's text block.
        let cov = params.covariance(kk);
        let block: Vec<f64> = (0..d * d).map(|t| cov[(t / d) * p + t % d]).collect();
        let chol = linalg::cholesky(&block, d);
        let maha = |i: usize| -> f64 {
            let diff: Vec<f64> = t.xt[i * d..(i + 1) * d].iter().zip(mu).map(|(a, b)| a - b).collect();
            match &chol {
                Some(l) => {
                    // Solve L z = diff; distance = ‖z‖.
                    let mut z = vec![0.0; d];
                    for a in 0..d {
                        let s: f64 = (0..a).map(|b| l[a * d + b] * z[b]).sum();
                        z[a] = (diff[a] - s) / l[a * d + a];
                    }
                    z.iter().map(|v| v * v).sum::<f64>().sqrt()
                }
                None => f64::NAN,
            }
        };
        pr.0 = nearest(&col.values, &members, &euclid, post, k, kk, opts.prototypes);
        if chol.is_some() {
            pr.1 = nearest(&col.values, &members, &maha, post, k, kk, opts.prototypes);
        }
    }
    protos
}

/// The `n` (≥ 1) nearest distinct texts of `rows` under `dist`, with their posteriors for
/// class `class` of `k`.
fn nearest(
    texts: &[Option<String>],
    rows: &[usize],
    dist: &dyn Fn(usize) -> f64,
    post: &[f64],
    k: usize,
    class: usize,
    n: usize,
) -> Vec<Prototype> {
    let mut scored: Vec<(f64, usize)> = rows.iter().map(|&i| (dist(i), i)).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (d, i) in scored {
        let t = texts[i].as_deref().unwrap_or_default();
        if seen.insert(t) {
            out.push(Prototype { text: t.to_string(), row: i, distance: d, posterior: post[i * k + class] });
            if out.len() == n {
                break;
            }
        }
    }
    out
}
