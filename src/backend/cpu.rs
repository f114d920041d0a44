//! The CPU backend: the fallback for machines without a GPU and the oracle every other backend
//! is tested against. f64 throughout; rayon over fixed row blocks reduced in a fixed tree
//! (bit-for-bit reproducible); the O(N K p²) products are GEMMs on cache-sized chunks.
//!
//! ## How the E- and M-step become two skinny GEMMs
//! With the quadratic features f(x) = [vech(x xᵀ), x] (p(p+1)/2 + p values per row):
//!
//! * E-step: ‖(x − μ_k) U_k‖² = f(x)·w_k + c_k for a weight vector w_k built from
//!   Λ_k = U_k U_kᵀ (see `e_step_operands`), so the distances of a chunk to every class are
//!   one product F W with F = f(X_chunk) (rows × n_f) and W (n_f × K);
//! * M-step: Σ_i r_ik f(x_i) = (Fᵀ R)_k holds Σ r x xᵀ (upper triangle) and Σ r x of every class,
//!   again one product, converted to moments about the shift μ_k per block.
//!
//! Both use the symmetry of Λ and of x xᵀ, so they do half the arithmetic of the textbook
//! (x − μ)U and Σ r d dᵀ products. The fused [`Backend::e_step`] with `Pass::WithStats` builds F once per chunk
//! for both. Rows with missing coordinates (own blocks, grouped by pattern) take the general
//! path: the same E-step (U is zero at missing coordinates, x is 0 there) and, for the M-step,
//! the conditional-mean fill d̂ = d₀ A_{o,k} per class.
//!
//! This is the fast path, not the reference: each WGSL entry point has a CPU reference of the
//! same name and inputs in [`super::reference`] (one row and class at a time), and the tests hold
//! this backend to those references.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use rayon::prelude::*;

use super::{Backend, EStepSummary, KernelParams, MixtureData, Pass, Posteriors, SuffStats, Vectors};
use crate::foundation::MISSING_CODE;
use crate::foundation::error::{Error, Result};
use crate::foundation::linalg::matmul;
use crate::foundation::par::tree_reduce;

/// Rows per block: the unit of parallel work and of the deterministic reduction tree.
const BLOCK: usize = 4096;
/// Rows per GEMM chunk for the projection and the Gram matrix.
const CHUNK: usize = 128;

/// Rows per chunk of the E/M kernels: 128, or fewer so that a chunk's quadratic features
/// (rows × n_f f64) stay near 1 MiB — in L2 — when the continuous block is wide.
fn feature_chunk(p: usize) -> usize {
    ((1usize << 17) / n_features(p).max(1)).clamp(8, CHUNK)
}

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
            while end < n && end - start < BLOCK && data.pattern[order[end] as usize] as usize == pattern {
                end += 1;
            }
            blocks.push(Block { pattern, start, len: end - start });
            start = end;
        }
        Ok(CpuData {
            n,
            p,
            n_cat: j,
            offsets: data.level_offsets(),
            total_levels: data.total_levels(),
            n_patterns: data.patterns.len(),
            order,
            x,
            codes,
            blocks,
            complete: data.patterns.iter().map(|m| m.iter().all(|&o| o)).collect(),
            observed: data.patterns.clone(),
        })
    }

    fn alloc_resp(&self, data: &CpuData, k: usize) -> Result<CpuResp> {
        Ok(CpuResp { k, resp: vec![0.0; data.n * k], row_loglik: vec![0.0; data.n] })
    }

    fn set_resp(&self, data: &CpuData, resp: &mut CpuResp, values: &[f64]) -> Result<()> {
        let k = resp.k;
        if values.len() != data.n * k {
            return Err(Error::config(format!("set_resp: expected {} values, got {}", data.n * k, values.len())));
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
        models: &mut [(&KernelParams, &mut CpuResp)],
        pass: Pass,
    ) -> Result<Vec<(EStepSummary, Option<SuffStats>)>> {
        run_batch(data, models, pass == Pass::WithStats)
    }

    fn m_stats(&self, data: &CpuData, params: &KernelParams, resp: &CpuResp) -> Result<SuffStats> {
        check_params(data, params, resp.k)?;
        let k = resp.k;
        let mut blocks = data.blocks.clone();
        Ok(tree_reduce(
            &mut blocks,
            &|b: &mut Block| {
                let r = &resp.resp[b.start * k..(b.start + b.len) * k];
                m_stats_block(data, params, r, b)
            },
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
        Ok(Posteriors { k, resp: out, row_loglik: ll })
    }

    fn place(&self, vectors: Vectors) -> Result<Vectors> {
        Ok(vectors)
    }
}

/// Per-pattern E-step operands of a batch of models, concatenated column-wise:
/// W = [W_1 | … | W_M] (n_f × ΣK) and c = [c_1, …, c_M].
struct BatchOps {
    w: Vec<Array2<f64>>,
    c: Vec<Vec<f64>>,
    /// Column offset of each model in W (length M + 1).
    col: Vec<usize>,
}

fn batch_ops(data: &CpuData, models: &[&KernelParams]) -> BatchOps {
    let mut col = vec![0];
    for m in models {
        col.push(col.last().unwrap() + m.k);
    }
    let total = *col.last().unwrap();
    let nf = n_features(data.p);
    let mut w = Vec::with_capacity(data.n_patterns);
    let mut c = Vec::with_capacity(data.n_patterns);
    for o in 0..data.n_patterns {
        let mut wo = Array2::<f64>::zeros((nf, total));
        let mut co = vec![0.0; total];
        for (mi, m) in models.iter().enumerate() {
            let (wm, cm) = e_step_operands(m, o);
            wo.slice_mut(s![.., col[mi]..col[mi + 1]]).assign(&wm);
            co[col[mi]..col[mi + 1]].copy_from_slice(&cm);
        }
        w.push(wo);
        c.push(co);
    }
    BatchOps { w, c, col }
}

/// One model's E-step summary and (when asked for) M-step statistics.
type ModelResult = (EStepSummary, Option<SuffStats>);

/// Models per group when a batch is split across threads by model (see [`run_batch`]).
const MODELS_PER_GROUP: usize = 4;
/// Tables with fewer row blocks than this split a batch of models into groups.
const FEW_BLOCKS: usize = 4;

/// E-step (and, with `with_stats`, the statistics of the next M-step) of every model in
/// `models`. The work is parallel over row blocks; a small table has too few blocks to keep the
/// threads busy (one block below 4,096 rows), so its batch is also cut into fixed groups of
/// [`MODELS_PER_GROUP`] models, one pass each, run in parallel. The groups depend on the number
/// of models only, never on the thread count, so results stay bit-for-bit reproducible.
fn run_batch(
    data: &CpuData,
    models: &mut [(&KernelParams, &mut CpuResp)],
    with_stats: bool,
) -> Result<Vec<ModelResult>> {
    if data.blocks.len() < FEW_BLOCKS && models.len() > MODELS_PER_GROUP {
        let groups: Vec<Result<Vec<ModelResult>>> =
            models.par_chunks_mut(MODELS_PER_GROUP).map(|group| run_group(data, group, with_stats)).collect();
        let mut out = Vec::with_capacity(models.len());
        for g in groups {
            out.extend(g?);
        }
        return Ok(out);
    }
    run_group(data, models, with_stats)
}

/// [`run_batch`] of one group of models: one pass over the blocks.
fn run_group(
    data: &CpuData,
    models: &mut [(&KernelParams, &mut CpuResp)],
    with_stats: bool,
) -> Result<Vec<ModelResult>> {
    for (params, resp) in models.iter() {
        check_params(data, params, resp.k)?;
    }
    let params: Vec<&KernelParams> = models.iter().map(|(p, _)| *p).collect();
    let ops = batch_ops(data, &params);
    let mut items = split_blocks(data, models);
    let results = tree_reduce(
        &mut items,
        &|item: &mut BlockMut| e_step_block(data, &params, &ops, item, with_stats),
        &|a: Vec<ModelResult>, b: Vec<ModelResult>| {
            a.into_iter()
                .zip(b)
                .map(|((sa, ta), (sb, tb))| {
                    let stats = match (ta, tb) {
                        (Some(x), Some(y)) => Some(x.merge(&y)),
                        _ => None,
                    };
                    (sa.merge(sb), stats)
                })
                .collect()
        },
    );
    drop(items);
    for ((summary, _), (params, resp)) in results.iter().zip(models.iter()) {
        if !summary.loglik.is_finite() {
            return Err(non_finite(data, resp, params.k));
        }
    }
    Ok(results)
}

fn check_params(data: &CpuData, params: &KernelParams, k: usize) -> Result<()> {
    params.check(k, data.p, data.n_patterns, data.total_levels)
}

fn non_finite(data: &CpuData, resp: &CpuResp, k: usize) -> Error {
    let pos = resp.row_loglik.iter().position(|v| !v.is_finite()).unwrap_or(0);
    super::non_finite(Some(data.order[pos] as usize), k)
}

/// One block's slices of every model's responsibility and row log-likelihood buffers.
struct BlockMut<'a> {
    block: Block,
    resp: Vec<&'a mut [f64]>,
    row_loglik: Vec<&'a mut [f64]>,
}

fn split_blocks<'a>(data: &CpuData, models: &'a mut [(&KernelParams, &mut CpuResp)]) -> Vec<BlockMut<'a>> {
    let mut out: Vec<BlockMut<'a>> =
        data.blocks.iter().map(|b| BlockMut { block: *b, resp: Vec::new(), row_loglik: Vec::new() }).collect();
    for (_, resp) in models.iter_mut() {
        let k = resp.k;
        let mut r_rest: &mut [f64] = &mut resp.resp;
        let mut l_rest: &mut [f64] = &mut resp.row_loglik;
        for item in out.iter_mut() {
            let (r, r_tail) = std::mem::take(&mut r_rest).split_at_mut(item.block.len * k);
            let (l, l_tail) = std::mem::take(&mut l_rest).split_at_mut(item.block.len);
            item.resp.push(r);
            item.row_loglik.push(l);
            r_rest = r_tail;
            l_rest = l_tail;
        }
    }
    out
}

/// Number of quadratic features p(p+1)/2 plus the p linear ones.
fn n_features(p: usize) -> usize {
    p * (p + 1) / 2 + p
}

/// Writes f(x) = [vech(x xᵀ), x] of a chunk's rows into `f` (rows × n_features): x_a x_b for
/// a ≤ b in row-major upper-triangle order, then x itself.
fn features(x: &[f64], p: usize, rows: usize, f: &mut Array2<f64>) {
    for i in 0..rows {
        let xr = &x[i * p..(i + 1) * p];
        let mut fr = f.row_mut(i);
        let fr = fr.as_slice_mut().expect("contiguous row");
        let mut t = 0;
        for a in 0..p {
            let xa = xr[a];
            for (dst, &xb) in fr[t..t + p - a].iter_mut().zip(&xr[a..]) {
                *dst = xa * xb;
            }
            t += p - a;
        }
        fr[t..t + p].copy_from_slice(xr);
    }
}

/// Per-pattern operands of the E-step. With Λ = U Uᵀ (zero at missing coordinates, where x
/// also holds 0) the squared Mahalanobis distance is linear in the features:
///
/// ‖(x − μ_k) U_k‖² = f(x)·w_k + c_k,  w_k = [vech(Λ_k) with off-diagonals doubled, −2 Λ_k μ_k],
/// c_k = μ_kᵀ Λ_k μ_k.
fn e_step_operands(params: &KernelParams, o: usize) -> (Array2<f64>, Vec<f64>) {
    let (p, k) = (params.p, params.k);
    let mut w = Array2::<f64>::zeros((n_features(p), k));
    let mut c = vec![0.0; k];
    let mut lam = vec![0.0; p * p];
    for kk in 0..k {
        let u = params.prec_chol(o, kk);
        let mu = &params.means[kk * p..(kk + 1) * p];
        for a in 0..p {
            for b in a..p {
                // U is upper triangular: (U Uᵀ)_ab = Σ_{t ≥ max(a,b)} U_at U_bt.
                let v: f64 = (b..p).map(|t| u[a * p + t] * u[b * p + t]).sum();
                lam[a * p + b] = v;
                lam[b * p + a] = v;
            }
        }
        let mut t = 0;
        for a in 0..p {
            for b in a..p {
                w[[t, kk]] = if a == b { lam[a * p + b] } else { 2.0 * lam[a * p + b] };
                t += 1;
            }
        }
        for a in 0..p {
            let lmu: f64 = (0..p).map(|b| lam[a * p + b] * mu[b]).sum();
            w[[t + a, kk]] = -2.0 * lmu;
            c[kk] += mu[a] * lmu;
        }
    }
    (w, c)
}

/// Adds N_k, the pattern mass and the categorical counts of a chunk to `st`.
fn count_chunk(data: &CpuData, pattern: usize, start: usize, r: &[f64], rows: usize, st: &mut SuffStats) {
    let (k, j, tl) = (st.k, data.n_cat, data.total_levels);
    for kk in 0..k {
        let mass: f64 = (0..rows).map(|i| r[i * k + kk]).sum();
        st.nk[kk] += mass;
        st.pattern_mass[kk * data.n_patterns + pattern] += mass;
    }
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

/// Converts raw moments f(X)ᵀ R of complete rows (n_f × K) into moments about the shift μ_k:
/// Σ r (x − μ) = s − N μ and Σ r (x − μ)(x − μ)ᵀ = S − μ sᵀ − s μᵀ + N μ μᵀ, added to `st`
/// (whose N_k must already hold the same rows' mass).
fn add_shifted_moments(raw: &ArrayView2<f64>, params: &KernelParams, st: &mut SuffStats) {
    let (p, k) = (params.p, params.k);
    let lin = p * (p + 1) / 2;
    for kk in 0..k {
        let mu = &params.means[kk * p..(kk + 1) * p];
        let nk = st.nk[kk];
        let sx: Vec<f64> = (0..p).map(|a| raw[[lin + a, kk]]).collect();
        let dd = &mut st.sum_dd[kk * p * p..(kk + 1) * p * p];
        let mut t = 0;
        for a in 0..p {
            for b in a..p {
                let v = raw[[t, kk]] - mu[a] * sx[b] - sx[a] * mu[b] + nk * mu[a] * mu[b];
                dd[a * p + b] += v;
                if a != b {
                    dd[b * p + a] += v;
                }
                t += 1;
            }
        }
        for a in 0..p {
            st.sum_d[kk * p + a] += sx[a] - nk * mu[a];
        }
    }
}

/// The `e_step` kernel on one block (one missing-value pattern) for a batch of models,
/// optionally fused with the statistics of the next M-step.
///
/// log p_ik = log π_k + Σ_j log α_kj[x_ij] + log det U_{o,k} − |o|/2 ln 2π − ½‖(x_i − μ_k)_o U_{o,k}‖²
/// r_ik = exp(log p_ik − lse_i),  lse_i = m_i + ln Σ_k exp(log p_ik − m_i),  m_i = max_k log p_ik
///
/// A chunk's features are built once; one GEMM gives the distances to every class of every
/// model and (complete rows) one GEMM f(X)ᵀ [R_1 | … | R_M] gives every model's raw moments.
///
/// The hot loop of every CPU fit, kept in one body (about 100 lines) so that its buffers stay
/// local and the compiler sees the whole per-row pass.
fn e_step_block(
    data: &CpuData,
    models: &[&KernelParams],
    ops: &BatchOps,
    item: &mut BlockMut,
    with_stats: bool,
) -> Vec<ModelResult> {
    let (p, j, tl) = (data.p, data.n_cat, data.total_levels);
    let chunk = feature_chunk(p);
    let b = item.block;
    let o = b.pattern;
    let (w, c, col) = (&ops.w[o], &ops.c[o], &ops.col);
    let total = *col.last().unwrap();
    let fuse = with_stats && data.complete[o];
    let mut results: Vec<ModelResult> = models
        .iter()
        .map(|m| (EStepSummary::default(), with_stats.then(|| SuffStats::zeros(m.k, p, tl, data.n_patterns))))
        .collect();
    let moments = fuse && p > 0;
    let mut raw = Array2::<f64>::zeros(if moments { (n_features(p), total) } else { (0, 0) });
    let mut rcat = Array2::<f64>::zeros(if moments { (chunk, total) } else { (0, 0) });
    let mut f = Array2::<f64>::zeros((chunk, n_features(p)));
    let mut q = Array2::<f64>::zeros((chunk, total));
    let max_k = models.iter().map(|m| m.k).max().unwrap_or(0);
    let mut logp = vec![0.0; chunk * max_k];
    for c0 in (0..b.len).step_by(chunk) {
        let rows = chunk.min(b.len - c0);
        let start = b.start + c0;
        if p > 0 {
            features(&data.x[start * p..(start + rows) * p], p, rows, &mut f);
            matmul(&mut q.slice_mut(s![..rows, ..]), &f.slice(s![..rows, ..]), &w.view(), false);
        }
        let codes = &data.codes[start * j..(start + rows) * j];
        for (mi, params) in models.iter().enumerate() {
            let k = params.k;
            let off = col[mi];
            for i in 0..rows {
                let lp = &mut logp[i * k..(i + 1) * k];
                lp.copy_from_slice(&params.log_weights);
                if p > 0 {
                    for kk in 0..k {
                        // Rounding can make a tiny distance negative; it is a squared norm.
                        let dist = (q[[i, off + kk]] + c[off + kk]).max(0.0);
                        lp[kk] += params.log_norm[o * k + kk] - 0.5 * dist;
                    }
                }
                for (jj, &code) in codes[i * j..(i + 1) * j].iter().enumerate() {
                    if code != MISSING_CODE {
                        let lvl = data.offsets[jj] + code as usize;
                        for kk in 0..k {
                            lp[kk] += params.log_alpha[kk * tl + lvl];
                        }
                    }
                }
            }
            let resp = &mut item.resp[mi];
            let row_ll = &mut item.row_loglik[mi];
            let summary = &mut results[mi].0;
            for i in 0..rows {
                let lp = &logp[i * k..(i + 1) * k];
                let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = lp.iter().map(|&v| (v - m).exp()).sum();
                let lse = m + sum.ln();
                let r = &mut resp[(c0 + i) * k..(c0 + i + 1) * k];
                let mut ent = 0.0;
                for (rv, &v) in r.iter_mut().zip(lp) {
                    *rv = (v - lse).exp();
                    if *rv > 0.0 {
                        ent -= *rv * (v - lse);
                    }
                }
                row_ll[c0 + i] = lse;
                summary.loglik += lse;
                summary.entropy += ent;
            }
            if fuse {
                let r = &resp[c0 * k..(c0 + rows) * k];
                count_chunk(data, o, start, r, rows, results[mi].1.as_mut().expect("stats"));
                if moments {
                    for i in 0..rows {
                        for kk in 0..k {
                            rcat[[i, off + kk]] = r[i * k + kk];
                        }
                    }
                }
            }
        }
        if moments {
            matmul(&mut raw.view_mut(), &f.slice(s![..rows, ..]).t(), &rcat.slice(s![..rows, ..]), true);
        }
    }
    if with_stats {
        for (mi, params) in models.iter().enumerate() {
            let st = results[mi].1.as_mut().expect("stats");
            if moments {
                add_shifted_moments(&raw.slice(s![.., col[mi]..col[mi + 1]]), params, st);
            } else if !fuse {
                *st = m_stats_block(data, params, item.resp[mi], &b);
            }
        }
    }
    results
}

/// The `m_stats` kernel on one block: N_k, Σ r d̂, Σ r d̂ d̂ᵀ about the shift μ_k, the pattern
/// mass and categorical counts, where d̂ = d₀ A_{o,k} is the conditional-mean fill of the
/// deviation (d₀ itself for a complete row). `r` holds the block's responsibilities.
fn m_stats_block(data: &CpuData, params: &KernelParams, r_block: &[f64], b: &Block) -> SuffStats {
    let (p, k) = (data.p, params.k);
    let chunk = feature_chunk(p);
    let o = b.pattern;
    let complete = data.complete[o];
    let mut st = SuffStats::zeros(k, p, data.total_levels, data.n_patterns);
    let nf = if complete && p > 0 { n_features(p) } else { 0 };
    let mut f = Array2::<f64>::zeros((if nf > 0 { chunk } else { 0 }, nf));
    let mut raw = Array2::<f64>::zeros((nf, k));
    let pc = if complete { 0 } else { p };
    let mut d = Array2::<f64>::zeros((chunk, pc));
    let mut dh = Array2::<f64>::zeros((chunk, pc));
    let mut w = Array2::<f64>::zeros((chunk, pc));
    let observed = &data.observed[o];
    for c0 in (0..b.len).step_by(chunk) {
        let rows = chunk.min(b.len - c0);
        let start = b.start + c0;
        let r = &r_block[c0 * k..(c0 + rows) * k];
        count_chunk(data, o, start, r, rows, &mut st);
        if p == 0 {
            continue;
        }
        let x = &data.x[start * p..(start + rows) * p];
        if complete {
            features(x, p, rows, &mut f);
            let r_view = ArrayView2::from_shape((rows, k), r).expect("r shape");
            matmul(&mut raw.view_mut(), &f.slice(s![..rows, ..]).t(), &r_view, true);
            continue;
        }
        for kk in 0..k {
            let mu = &params.means[kk * p..(kk + 1) * p];
            for i in 0..rows {
                for t in 0..p {
                    d[[i, t]] = if observed[t] { x[i * p + t] - mu[t] } else { 0.0 };
                }
            }
            let a = ArrayView2::from_shape((p, p), params.fill(o, kk)).expect("A shape");
            matmul(&mut dh.slice_mut(s![..rows, ..]), &d.slice(s![..rows, ..]), &a, false);
            let sum_d = &mut st.sum_d[kk * p..(kk + 1) * p];
            for i in 0..rows {
                let ri = r[i * k + kk];
                for t in 0..p {
                    w[[i, t]] = ri * dh[[i, t]];
                    sum_d[t] += w[[i, t]];
                }
            }
            let mut s_k =
                ArrayViewMut2::from_shape((p, p), &mut st.sum_dd[kk * p * p..(kk + 1) * p * p]).expect("S shape");
            matmul(&mut s_k, &w.slice(s![..rows, ..]).t(), &dh.slice(s![..rows, ..]), true);
        }
    }
    if complete && p > 0 {
        add_shifted_moments(&raw.view(), params, &mut st);
    }
    st
}
