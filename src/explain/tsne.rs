//! Barnes–Hut t-SNE (van der Maaten 2014) for the report's second 2-D view.
//!
//! * Affinities: for each row, the `3 · perplexity` nearest neighbours (exact, from GEMM
//!   distance blocks), Gaussian conditionals p_j|i with β_i found by bisection so that the
//!   entropy matches log(perplexity), then P = (P + Pᵀ) / 2n, sparse.
//! * Gradient: 4 Σ_j (p_ij − q_ij) q̃_ij (y_i − y_j) with q̃_ij = 1 / (1 + ‖y_i − y_j‖²); the
//!   attractive part over P's non-zeros, the repulsive part from a quadtree whose cells far
//!   enough away (size / distance < θ) act as one point.
//! * Optimisation: early exaggeration 12 for the first 250 iterations, momentum 0.5 then 0.8,
//!   per-coordinate gains, learning rate max(n / 12, 50) (Belkina et al. 2019).
//!
//! Seeded: the same rows, options and seed give the same layout.

use ndarray::{Array2, ArrayView2, s};
use rayon::prelude::*;

use crate::foundation::linalg::matmul;
use crate::foundation::rng::Rng;

/// t-SNE settings.
#[derive(Debug, Clone, Copy)]
pub struct TsneOptions {
    pub perplexity: f64,
    pub iterations: usize,
    /// Barnes–Hut accuracy: smaller is more exact and slower.
    pub theta: f64,
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions { perplexity: 30.0, iterations: 750, theta: 0.5, seed: 0 }
    }
}

/// The k nearest neighbours (index, squared distance) of every row of `x` (n × dim).
fn knn(x: &[f64], n: usize, dim: usize, k: usize) -> Vec<Vec<(usize, f64)>> {
    let norms: Vec<f64> = (0..n).map(|i| x[i * dim..(i + 1) * dim].iter().map(|v| v * v).sum()).collect();
    let xv = ArrayView2::from_shape((n, dim), x).expect("x shape");
    const BLOCK: usize = 256;
    (0..n)
        .step_by(BLOCK)
        .collect::<Vec<_>>()
        .par_iter()
        .flat_map_iter(|&lo| {
            let rows = BLOCK.min(n - lo);
            let mut g = Array2::<f64>::zeros((rows, n));
            matmul(&mut g.view_mut(), &xv.slice(s![lo..lo + rows, ..]), &xv.t(), false);
            (0..rows)
                .map(|r| {
                    let i = lo + r;
                    let mut d: Vec<(usize, f64)> = (0..n)
                        .filter(|&j| j != i)
                        .map(|j| (j, (norms[i] + norms[j] - 2.0 * g[[r, j]]).max(0.0)))
                        .collect();
                    let k = k.min(d.len());
                    if k > 0 && k < d.len() {
                        d.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                        d.truncate(k);
                    }
                    d.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                    d
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Conditional affinities of one row to its neighbours at the target perplexity (bisection on β).
fn conditional(neigh: &[(usize, f64)], perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0, f64::NEG_INFINITY, f64::INFINITY);
    let d0 = neigh.first().map_or(0.0, |x| x.1);
    let mut p = vec![0.0; neigh.len()];
    for _ in 0..200 {
        let mut sum = 0.0;
        for (pj, &(_, d)) in p.iter_mut().zip(neigh) {
            *pj = (-(d - d0) * beta).exp();
            sum += *pj;
        }
        let sum = sum.max(1e-300);
        // H = log Σ + β Σ p d / Σ (distances shifted by d0 for stability).
        let h = sum.ln() + beta * neigh.iter().zip(&p).map(|(&(_, d), &pj)| (d - d0) * pj).sum::<f64>() / sum;
        p.iter_mut().for_each(|v| *v /= sum);
        if (h - target).abs() < 1e-5 {
            break;
        }
        if h > target {
            lo = beta;
            beta = if hi.is_finite() { (beta + hi) / 2.0 } else { beta * 2.0 };
        } else {
            hi = beta;
            beta = if lo.is_finite() { (beta + lo) / 2.0 } else { beta / 2.0 };
        }
    }
    p
}

/// A quadtree node over the embedding, for the repulsive forces.
struct Quad {
    cx: f64,
    cy: f64,
    half: f64,
    mass: f64,
    com: [f64; 2],
    /// A leaf's point (one point per leaf; duplicates are merged into its mass).
    point: Option<usize>,
    children: Option<Box<[Quad; 4]>>,
}

impl Quad {
    fn new(cx: f64, cy: f64, half: f64) -> Self {
        Quad { cx, cy, half, mass: 0.0, com: [0.0, 0.0], point: None, children: None }
    }

    fn insert(&mut self, i: usize, y: &[[f64; 2]], depth: usize) {
        let p = y[i];
        self.com[0] = (self.com[0] * self.mass + p[0]) / (self.mass + 1.0);
        self.com[1] = (self.com[1] * self.mass + p[1]) / (self.mass + 1.0);
        self.mass += 1.0;
        if self.children.is_none() && self.point.is_none() && self.mass == 1.0 {
            self.point = Some(i);
            return;
        }
        if depth > 48 {
            return; // coincident points: keep them as one mass
        }
        if self.children.is_none() {
            let h = self.half / 2.0;
            self.children = Some(Box::new([
                Quad::new(self.cx - h, self.cy - h, h),
                Quad::new(self.cx + h, self.cy - h, h),
                Quad::new(self.cx - h, self.cy + h, h),
                Quad::new(self.cx + h, self.cy + h, h),
            ]));
            if let Some(old) = self.point.take() {
                self.child_for(y[old]).insert(old, y, depth + 1);
            }
        }
        self.child_for(p).insert(i, y, depth + 1);
    }

    fn child_for(&mut self, p: [f64; 2]) -> &mut Quad {
        let idx = usize::from(p[0] > self.cx) + 2 * usize::from(p[1] > self.cy);
        &mut self.children.as_mut().expect("children")[idx]
    }

    /// Adds the repulsive force on point `p` (unnormalised) to `f`; returns Σ q̃ for Z.
    fn repulse(&self, p: [f64; 2], theta: f64, f: &mut [f64; 2]) -> f64 {
        if self.mass == 0.0 {
            return 0.0;
        }
        let (dx, dy) = (p[0] - self.com[0], p[1] - self.com[1]);
        let d2 = dx * dx + dy * dy;
        let leaf = self.children.is_none();
        if leaf && d2 == 0.0 && self.mass <= 1.0 {
            return 0.0; // the point itself
        }
        if leaf || (2.0 * self.half) * (2.0 * self.half) < theta * theta * d2 {
            let q = 1.0 / (1.0 + d2);
            let mut m = self.mass;
            if leaf && d2 == 0.0 {
                m -= 1.0; // duplicates of the point itself
            }
            f[0] += m * q * q * dx;
            f[1] += m * q * q * dy;
            return m * q;
        }
        self.children.as_ref().expect("children").iter().map(|c| c.repulse(p, theta, f)).sum()
    }
}

/// Embeds the rows of `x` (n × dim) in 2-D: affinities, then gradient descent with early
/// exaggeration and momentum, in one body (about 90 lines) as the algorithm is published
/// (van der Maaten 2014), so each phase reads against the paper.
pub fn tsne(x: &[f64], n: usize, dim: usize, opts: &TsneOptions) -> Vec<[f64; 2]> {
    if n < 3 {
        return vec![[0.0, 0.0]; n];
    }
    let perplexity = opts.perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let k = ((3.0 * perplexity) as usize).clamp(1, n - 1);
    let neigh = knn(x, n, dim, k);
    let cond: Vec<Vec<f64>> = neigh.par_iter().map(|nb| conditional(nb, perplexity)).collect();
    // Symmetrise: P_ij = (p_j|i + p_i|j) / 2n, as sorted sparse rows.
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for i in 0..n {
        for (&(j, _), &p) in neigh[i].iter().zip(&cond[i]) {
            rows[i].push((j, p));
            rows[j].push((i, p));
        }
    }
    let p: Vec<Vec<(usize, f64)>> = rows
        .into_iter()
        .map(|mut r| {
            r.sort_by_key(|e| e.0);
            let mut out: Vec<(usize, f64)> = Vec::with_capacity(r.len());
            for (j, v) in r {
                match out.last_mut() {
                    Some(last) if last.0 == j => last.1 += v,
                    _ => out.push((j, v)),
                }
            }
            out.iter_mut().for_each(|e| e.1 /= 2.0 * n as f64);
            out
        })
        .collect();

    let mut rng = Rng::new(opts.seed ^ 0x75e);
    let mut y: Vec<[f64; 2]> = (0..n).map(|_| [1e-4 * rng.normal(), 1e-4 * rng.normal()]).collect();
    let mut vel = vec![[0.0f64; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let lr = (n as f64 / 12.0).max(50.0);
    let exaggeration_iters = 250.min(opts.iterations / 3);
    for it in 0..opts.iterations {
        let exag = if it < exaggeration_iters { 12.0 } else { 1.0 };
        let momentum = if it < exaggeration_iters { 0.5 } else { 0.8 };
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for q in &y {
            for a in 0..2 {
                lo[a] = lo[a].min(q[a]);
                hi[a] = hi[a].max(q[a]);
            }
        }
        let half = ((hi[0] - lo[0]).max(hi[1] - lo[1]) / 2.0).max(1e-9) * 1.0001;
        let mut tree = Quad::new((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, half);
        for i in 0..n {
            tree.insert(i, &y, 0);
        }
        let rep: Vec<([f64; 2], f64)> = y
            .par_iter()
            .map(|&yi| {
                let mut f = [0.0; 2];
                let z = tree.repulse(yi, opts.theta, &mut f);
                (f, z)
            })
            .collect();
        let z: f64 = rep.iter().map(|r| r.1).sum::<f64>().max(1e-300);
        let grads: Vec<[f64; 2]> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut attr = [0.0; 2];
                for &(j, pij) in &p[i] {
                    let (dx, dy) = (y[i][0] - y[j][0], y[i][1] - y[j][1]);
                    let q = 1.0 / (1.0 + dx * dx + dy * dy);
                    attr[0] += exag * pij * q * dx;
                    attr[1] += exag * pij * q * dy;
                }
                [4.0 * (attr[0] - rep[i].0[0] / z), 4.0 * (attr[1] - rep[i].0[1] / z)]
            })
            .collect();
        for i in 0..n {
            for a in 0..2 {
                let g = grads[i][a];
                gains[i][a] =
                    if (g > 0.0) != (vel[i][a] > 0.0) { gains[i][a] + 0.2 } else { (gains[i][a] * 0.8).max(0.01) };
                vel[i][a] = momentum * vel[i][a] - lr * gains[i][a] * g;
                y[i][a] += vel[i][a];
            }
        }
        // Keep the layout centred.
        let mean = [y.iter().map(|q| q[0]).sum::<f64>() / n as f64, y.iter().map(|q| q[1]).sum::<f64>() / n as f64];
        y.iter_mut().for_each(|q| {
            q[0] -= mean[0];
            q[1] -= mean[1];
        });
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_is_met() {
        let neigh: Vec<(usize, f64)> = (0..90).map(|j| (j, (j as f64 / 10.0).powi(2))).collect();
        let p = conditional(&neigh, 30.0);
        let h: f64 = -p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>();
        assert!((h.exp() - 30.0).abs() < 0.01, "perplexity {}", h.exp());
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
