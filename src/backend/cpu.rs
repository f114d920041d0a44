//! The CPU backend: the fallback for machines without a GPU and the oracle every other backend
//! is tested against. f64 throughout; rayon over fixed row blocks; the O(N K p²) products are
//! GEMMs (ndarray → matrixmultiply) on cache-sized sub-chunks of `CHUNK` rows.
//!
//! Each kernel here is the twin of a WGSL shader of the same name (`shaders/<kernel>.wgsl`,
//! added with the GPU backend) and has the same inputs in the same order.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use rayon::prelude::*;

use super::{Backend, EStepSummary, Gram, KernelParams, MixtureData, Posteriors, SuffStats};
use crate::data::MISSING_CODE;
use crate::error::{Error, Result};
use crate::par::tree_reduce;

/// Rows per block: the unit of parallel work and of the deterministic reduction tree.
const BLOCK: usize = 4096;
/// Rows per GEMM sub-chunk: small enough that the chunk, its deviations and products stay in L2.
const CHUNK: usize = 256;

/// The CPU implementation of [`Backend`].
#[derive(Debug, Clone, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    pattern: usize,
    start: usize,
    len: usize,
}

/// Rows resident for one fit, regrouped so each block holds a single missing-value pattern.
#[derive(Debug)]
pub struct CpuData {
    n: usize,
    p: usize,
    n_cat: usize,
    offsets: Vec<usize>,
    total_levels: usize,
    n_patterns: usize,
    /// Sorted position → input row.
    order: Vec<u32>,
    /// Sorted rows, n × p.
    x: Vec<f64>,
    /// Sorted codes, n × J.
    codes: Vec<u32>,
    blocks: Vec<Block>,
    observed: Vec<Vec<bool>>,
    complete: Vec<bool>,
}

/// A responsibility buffer in the backend's sorted row order.
#[derive(Debug)]
pub struct CpuResp {
    k: usize,
    resp: Vec<f64>,
    row_loglik: Vec<f64>,
}

/// Writes the deviations d = x − μ of a chunk into `d`, zero at unobserved coordinates.
fn deviations(
    x: ArrayView2<f64>,
    mu: &[f64],
    observed: &[bool],
    complete: bool,
    mut d: ArrayViewMut2<f64>,
) {
    for (xr, mut dr) in x.rows().into_iter().zip(d.rows_mut()) {
        if complete {
            for ((dv, &xv), &m) in dr.iter_mut().zip(xr.iter()).zip(mu) {
                *dv = xv - m;
            }
        } else {
            for (((dv, &xv), &m), &o) in dr.iter_mut().zip(xr.iter()).zip(mu).zip(observed) {
                *dv = if o { xv - m } else { 0.0 };
            }
        }
    }
}

impl Backend for CpuBackend {
    type Data = CpuData;
    type Resp = CpuResp;

    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn upload(&self, data: &MixtureData) -> Result<CpuData> {
        let (n, p, j) = (data.n, data.p, data.n_cat());
        if n == 0 {
            return Err(Error::config("no rows to fit"));
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| data.pattern[i as usize]);
        let mut x = Vec::with_capacity(n * p);
        let mut codes = Vec::with_capacity(n * j);
        for &i in &order {
            let i = i as usize;
            x.extend_from_slice(&data.x[i * p..(i + 1) * p]);
            codes.extend_from_slice(&data.codes[i * j..(i + 1) * j]);
        }
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < n {
            let pattern = data.pattern[order[start] as usize] as usize;
            let mut end = start;
            while end < n
                && end - start < BLOCK
                && data.pattern[order[end] as usize] as usize == pattern
            {
                end += 1;
            }
            blocks.push(Block {
                pattern,
                start,
                len: end - start,
            });
            start = end;
        }
        let offsets = data.level_offsets();
        Ok(CpuData {
            n,
            p,
            n_cat: j,
            total_levels: data.total_levels(),
            n_patterns: data.patterns.len(),
            offsets,
            order,
            x,
            codes,
            blocks,
            complete: data.patterns.iter().map(|m| m.iter().all(|&o| o)).collect(),
            observed: data.patterns.clone(),
        })
    }

    fn alloc_resp(&self, data: &CpuData, k: usize) -> Result<CpuResp> {
        Ok(CpuResp {
            k,
            resp: vec![0.0; data.n * k],
            row_loglik: vec![0.0; data.n],
        })
    }

    fn set_resp(&self, data: &CpuData, resp: &mut CpuResp, values: &[f64]) -> Result<()> {
        let k = resp.k;
        if values.len() != data.n * k {
            return Err(Error::config(format!(
                "set_resp: expected {} values, got {}",
                data.n * k,
                values.len()
            )));
        }
        for (pos, &row) in data.order.iter().enumerate() {
            let row = row as usize;
            resp.resp[pos * k..(pos + 1) * k].copy_from_slice(&values[row * k..(row + 1) * k]);
        }
        Ok(())
    }

    fn e_step(
        &self,
        data: &CpuData,
        params: &KernelParams,
        resp: &mut CpuResp,
    ) -> Result<EStepSummary> {
        check_params(data, params, resp.k)?;
        let k = resp.k;
        let mut items = split_blocks(data, resp);
        let summary = tree_reduce(
            &mut items,
            &|item: &mut BlockMut| e_step_block(data, params, item),
            &|a, b| a.merge(b),
        );
        if !summary.loglik.is_finite() {
            return Err(non_finite(data, resp, k));
        }
        Ok(summary)
    }

    fn m_stats(&self, data: &CpuData, params: &KernelParams, resp: &CpuResp) -> Result<SuffStats> {
        check_params(data, params, resp.k)?;
        let mut blocks = data.blocks.clone();
        Ok(tree_reduce(
            &mut blocks,
            &|b: &mut Block| m_stats_block(data, params, resp, b),
            &|a, b| a.merge(&b),
        ))
    }

    fn read_posteriors(&self, data: &CpuData, resp: &CpuResp) -> Result<Posteriors> {
        let k = resp.k;
        let mut out = vec![0.0; data.n * k];
        let mut ll = vec![0.0; data.n];
        for (pos, &row) in data.order.iter().enumerate() {
            let row = row as usize;
            out[row * k..(row + 1) * k].copy_from_slice(&resp.resp[pos * k..(pos + 1) * k]);
            ll[row] = resp.row_loglik[pos];
        }
        Ok(Posteriors {
            k,
            resp: out,
            row_loglik: ll,
        })
    }

    fn gram(&self, x: &[f32], n: usize, dim: usize) -> Result<Gram> {
        assert_eq!(x.len(), n * dim);
        let mut ranges: Vec<(usize, usize)> = (0..n)
            .step_by(BLOCK)
            .map(|s| (s, (s + BLOCK).min(n)))
            .collect();
        if ranges.is_empty() {
            return Ok(Gram {
                rows: 0,
                dim,
                sum: vec![0.0; dim],
                xtx: vec![0.0; dim * dim],
            });
        }
        Ok(tree_reduce(
            &mut ranges,
            &|&mut (lo, hi): &mut (usize, usize)| gram_block(x, dim, lo, hi),
            &|mut a: Gram, b: Gram| {
                a.rows += b.rows;
                a.sum.iter_mut().zip(&b.sum).for_each(|(u, v)| *u += v);
                a.xtx.iter_mut().zip(&b.xtx).for_each(|(u, v)| *u += v);
                a
            },
        ))
    }

    fn project(
        &self,
        x: &[f32],
        n: usize,
        dim: usize,
        mean: &[f64],
        w: &[f64],
        d: usize,
    ) -> Result<Vec<f64>> {
        assert_eq!(x.len(), n * dim);
        assert_eq!(w.len(), dim * d);
        let w = ArrayView2::from_shape((dim, d), w).expect("W shape");
        let mut out = vec![0.0; n * d];
        if d == 0 {
            return Ok(out);
        }
        out.par_chunks_mut(CHUNK * d)
            .enumerate()
            .for_each(|(c, out_chunk)| {
                let lo = c * CHUNK;
                let rows = out_chunk.len() / d;
                let mut centered = Array2::<f64>::zeros((rows, dim));
                for r in 0..rows {
                    let src = &x[(lo + r) * dim..(lo + r + 1) * dim];
                    for (t, v) in centered.row_mut(r).iter_mut().enumerate() {
                        *v = src[t] as f64 - mean[t];
                    }
                }
                let mut o = ArrayViewMut2::from_shape((rows, d), out_chunk).expect("out shape");
                general_mat_mul(1.0, &centered, &w, 0.0, &mut o);
                for r in 0..rows {
                    if x[(lo + r) * dim].is_nan() {
                        o.row_mut(r).fill(f64::NAN);
                    }
                }
            });
        Ok(out)
    }
}

fn check_params(data: &CpuData, params: &KernelParams, k: usize) -> Result<()> {
    let ok = params.k == k
        && params.p == data.p
        && params.n_patterns == data.n_patterns
        && params.means.len() == k * data.p
        && params.log_alpha.len() == k * data.total_levels;
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "kernel parameters do not match the uploaded data",
        ))
    }
}

fn non_finite(data: &CpuData, resp: &CpuResp, k: usize) -> Error {
    let pos = resp
        .row_loglik
        .iter()
        .position(|v| !v.is_finite())
        .unwrap_or(0);
    Error::Numerical(format!(
        "row {} has a non-finite log-likelihood under all {k} classes; check the input for \
         extreme values, or increase --reg",
        data.order[pos]
    ))
}

struct BlockMut<'a> {
    block: Block,
    resp: &'a mut [f64],
    row_loglik: &'a mut [f64],
}

fn split_blocks<'a>(data: &CpuData, resp: &'a mut CpuResp) -> Vec<BlockMut<'a>> {
    let k = resp.k;
    let mut out = Vec::with_capacity(data.blocks.len());
    let mut r_rest: &mut [f64] = &mut resp.resp;
    let mut l_rest: &mut [f64] = &mut resp.row_loglik;
    for b in &data.blocks {
        let (r, r_tail) = std::mem::take(&mut r_rest).split_at_mut(b.len * k);
        let (l, l_tail) = std::mem::take(&mut l_rest).split_at_mut(b.len);
        out.push(BlockMut {
            block: *b,
            resp: r,
            row_loglik: l,
        });
        r_rest = r_tail;
        l_rest = l_tail;
    }
    out
}

/// The `e_step` kernel on one block (one missing-value pattern).
///
/// log p_ik = log π_k + Σ_j log α_kj[x_ij] + log det U_{o,k} − |o|/2 ln 2π − ½‖(x_i − μ_k)_o U_{o,k}‖²
/// r_ik = exp(log p_ik − lse_i),  lse_i = m_i + ln Σ_k exp(log p_ik − m_i),  m_i = max_k log p_ik
fn e_step_block(data: &CpuData, params: &KernelParams, item: &mut BlockMut) -> EStepSummary {
    let (p, k, j) = (data.p, params.k, data.n_cat);
    let b = item.block;
    let o = b.pattern;
    let mut d = Array2::<f64>::zeros((CHUNK, p));
    let mut y = Array2::<f64>::zeros((CHUNK, p));
    let mut logp = vec![0.0; CHUNK * k];
    let mut summary = EStepSummary::default();
    for c0 in (0..b.len).step_by(CHUNK) {
        let rows = CHUNK.min(b.len - c0);
        let start = b.start + c0;
        for i in 0..rows {
            logp[i * k..(i + 1) * k].copy_from_slice(&params.log_weights);
        }
        if p > 0 {
            let x = ArrayView2::from_shape((rows, p), &data.x[start * p..(start + rows) * p])
                .expect("x shape");
            for kk in 0..k {
                let mu = &params.means[kk * p..(kk + 1) * p];
                deviations(
                    x,
                    mu,
                    &data.observed[o],
                    data.complete[o],
                    d.slice_mut(s![..rows, ..]),
                );
                let u = ArrayView2::from_shape((p, p), params.prec_chol(o, kk)).expect("U shape");
                general_mat_mul(
                    1.0,
                    &d.slice(s![..rows, ..]),
                    &u,
                    0.0,
                    &mut y.slice_mut(s![..rows, ..]),
                );
                let norm = params.log_norm[o * k + kk];
                for i in 0..rows {
                    let q: f64 = y.row(i).iter().map(|v| v * v).sum();
                    logp[i * k + kk] += norm - 0.5 * q;
                }
            }
        }
        if j > 0 {
            let tl = data.total_levels;
            for i in 0..rows {
                let codes = &data.codes[(start + i) * j..(start + i + 1) * j];
                for (jj, &code) in codes.iter().enumerate() {
                    if code != MISSING_CODE {
                        let col = data.offsets[jj] + code as usize;
                        for kk in 0..k {
                            logp[i * k + kk] += params.log_alpha[kk * tl + col];
                        }
                    }
                }
            }
        }
        for i in 0..rows {
            let lp = &logp[i * k..(i + 1) * k];
            let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = lp.iter().map(|&v| (v - m).exp()).sum();
            let lse = m + sum.ln();
            let r = &mut item.resp[(c0 + i) * k..(c0 + i + 1) * k];
            let mut ent = 0.0;
            for (rv, &v) in r.iter_mut().zip(lp) {
                *rv = (v - lse).exp();
                if *rv > 0.0 {
                    ent -= *rv * (v - lse);
                }
            }
            item.row_loglik[c0 + i] = lse;
            summary.loglik += lse;
            summary.entropy += ent;
        }
    }
    summary
}

/// The `m_stats` kernel on one block: with d̂ = d₀ A_{o,k} (the conditional-mean fill; d₀ for a
/// complete row), accumulates N_k, Σ r d̂, Σ r d̂ d̂ᵀ, the pattern mass and categorical counts.
fn m_stats_block(data: &CpuData, params: &KernelParams, resp: &CpuResp, b: &Block) -> SuffStats {
    let (p, k, j) = (data.p, params.k, data.n_cat);
    let o = b.pattern;
    let complete = data.complete[o];
    let mut st = SuffStats::zeros(k, p, data.total_levels, data.n_patterns);
    let mut d = Array2::<f64>::zeros((CHUNK, p));
    let mut dh = Array2::<f64>::zeros((CHUNK, p));
    let mut w = Array2::<f64>::zeros((CHUNK, p));
    for c0 in (0..b.len).step_by(CHUNK) {
        let rows = CHUNK.min(b.len - c0);
        let start = b.start + c0;
        let r = &resp.resp[start * k..(start + rows) * k];
        for kk in 0..k {
            let mass: f64 = (0..rows).map(|i| r[i * k + kk]).sum();
            st.nk[kk] += mass;
            st.pattern_mass[kk * data.n_patterns + o] += mass;
        }
        if p > 0 {
            let x = ArrayView2::from_shape((rows, p), &data.x[start * p..(start + rows) * p])
                .expect("x shape");
            for kk in 0..k {
                let mu = &params.means[kk * p..(kk + 1) * p];
                deviations(
                    x,
                    mu,
                    &data.observed[o],
                    complete,
                    d.slice_mut(s![..rows, ..]),
                );
                let dhat = if complete {
                    d.slice(s![..rows, ..])
                } else {
                    let a = ArrayView2::from_shape((p, p), params.fill(o, kk)).expect("A shape");
                    general_mat_mul(
                        1.0,
                        &d.slice(s![..rows, ..]),
                        &a,
                        0.0,
                        &mut dh.slice_mut(s![..rows, ..]),
                    );
                    dh.slice(s![..rows, ..])
                };
                let sum_d = &mut st.sum_d[kk * p..(kk + 1) * p];
                for i in 0..rows {
                    let ri = r[i * k + kk];
                    for ((wv, &dv), sd) in w
                        .row_mut(i)
                        .iter_mut()
                        .zip(dhat.row(i))
                        .zip(sum_d.iter_mut())
                    {
                        *wv = ri * dv;
                        *sd += *wv;
                    }
                }
                let mut s_k =
                    ArrayViewMut2::from_shape((p, p), &mut st.sum_dd[kk * p * p..(kk + 1) * p * p])
                        .expect("S shape");
                general_mat_mul(1.0, &w.slice(s![..rows, ..]).t(), &dhat, 1.0, &mut s_k);
            }
        }
        if j > 0 {
            let tl = data.total_levels;
            for i in 0..rows {
                let codes = &data.codes[(start + i) * j..(start + i + 1) * j];
                for (jj, &code) in codes.iter().enumerate() {
                    if code != MISSING_CODE {
                        let col = data.offsets[jj] + code as usize;
                        for kk in 0..k {
                            st.cat[kk * tl + col] += r[i * k + kk];
                        }
                    }
                }
            }
        }
    }
    st
}

/// The `gram` kernel on rows [lo, hi): column sums and XᵀX of the non-missing rows.
fn gram_block(x: &[f32], dim: usize, lo: usize, hi: usize) -> Gram {
    let mut g = Gram {
        rows: 0,
        dim,
        sum: vec![0.0; dim],
        xtx: vec![0.0; dim * dim],
    };
    let mut chunk = Array2::<f64>::zeros((CHUNK, dim));
    let mut s0 = lo;
    while s0 < hi {
        let s1 = (s0 + CHUNK).min(hi);
        let mut rows = 0;
        for i in s0..s1 {
            let src = &x[i * dim..(i + 1) * dim];
            if src.first().is_some_and(|v| v.is_nan()) {
                continue;
            }
            for (t, v) in chunk.row_mut(rows).iter_mut().enumerate() {
                *v = src[t] as f64;
                g.sum[t] += *v;
            }
            rows += 1;
        }
        if rows > 0 {
            let c = chunk.slice(s![..rows, ..]);
            let mut xtx = ArrayViewMut2::from_shape((dim, dim), &mut g.xtx).expect("gram shape");
            general_mat_mul(1.0, &c.t(), &c, 1.0, &mut xtx);
            g.rows += rows;
        }
        s0 = s1;
    }
    g
}
