//! CPU references of the WGSL sentence encoder: one function per `bert.wgsl` entry point, of
//! the same name and on the same inputs (the [`BertDims`] uniform and the storage buffers the
//! shader binds, [`BertBuffers`]), in f64 and in the plainest loop order.
//!
//! | WGSL entry point          | reference       |
//! |---------------------------|-----------------|
//! | `bert.wgsl` `embed`       | [`embed`]       |
//! | `bert.wgsl` `add_norm`    | [`add_norm`]    |
//! | `bert.wgsl` `attention`   | [`attention`]   |
//! | `bert.wgsl` `pool`        | [`pool`]        |
//!
//! The linear layers run on the toolkit's `project.wgsl` ([`crate::foundation::reference::project`]).
//! [`forward`] chains them exactly as the GPU encoder dispatches them; the tests hold the candle
//! encoder (the fast CPU path) to it, and each WGSL entry point to its reference on random
//! inputs.

use super::bert::{BertWeights, Pooling};
use crate::foundation::reference::project;

/// Uniform `BertDims` of bert.wgsl. Keep in sync with the shader (the layout test compares every
/// field offset).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BertDims {
    /// Tokens in the batch (B × L).
    pub rows: u32,
    /// L, the padded length.
    pub len: u32,
    /// H.
    pub hidden: u32,
    pub heads: u32,
    /// 0 mean, 1 CLS, 2 max, 3 mean / √len ([`pooling_code`]); plus [`POOL_RAW`] to leave the
    /// pooled vectors unnormalised.
    pub pooling: u32,
    pub eps: f32,
    /// Attention: 1 / √(head dim).
    pub scale: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<BertDims>() == 32);

impl BertDims {
    /// A batch of `batch` sequences of `len` tokens through an encoder of hidden size `hidden`
    /// in `heads` heads (the attention scale is 1 / √(hidden / heads)).
    pub fn new((batch, len): (usize, usize), (hidden, heads): (usize, usize), pooling: Pooling, eps: f32) -> BertDims {
        BertDims {
            rows: (batch * len) as u32,
            len: len as u32,
            hidden: hidden as u32,
            heads: heads as u32,
            pooling: pooling_code(pooling),
            eps,
            scale: 1.0 / ((hidden / heads) as f32).sqrt(),
            _pad: 0,
        }
    }
}

/// Added to `BertDims::pooling`: the pooled vectors are not L2-normalised (a head after
/// pooling runs on them first). Mirrors `POOL_RAW` in `bert.wgsl`.
pub const POOL_RAW: u32 = 4;

impl BertDims {
    /// The same batch, pooled without the L2 normalisation when `normalize` is false.
    pub fn normalized(mut self, normalize: bool) -> BertDims {
        if !normalize {
            self.pooling = self.pooling % POOL_RAW + POOL_RAW;
        }
        self
    }
}

/// `BertDims::pooling` of a pooling mode.
pub fn pooling_code(p: Pooling) -> u32 {
    match p {
        Pooling::Mean => 0,
        Pooling::Cls => 1,
        Pooling::Max => 2,
        Pooling::MeanSqrtLen => 3,
    }
}

/// The storage buffers of bert.wgsl, by binding name; each entry point reads some of them
/// (the others may be empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct BertBuffers<'a> {
    /// Binding 1.
    pub a: &'a [f32],
    /// Binding 2.
    pub w: &'a [f32],
    /// Binding 3.
    pub bias: &'a [f32],
    /// Binding 5: token ids (`embed`) or the attention mask (1 = token).
    pub ids: &'a [u32],
    /// Binding 6.
    pub gamma: &'a [f32],
    /// Binding 7.
    pub beta: &'a [f32],
}

/// Layer norm of `row` in place: γ (x − mean) / √(var + ε) + β.
fn normalize(row: &mut [f64], b: &BertBuffers, eps: f32) {
    let h = row.len() as f64;
    let mean = row.iter().sum::<f64>() / h;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (c, v) in row.iter_mut().enumerate() {
        *v = b.gamma[c] as f64 * (*v - mean) * inv + b.beta[c] as f64;
    }
}

/// Token embeddings: out\[t\] = LayerNorm(w\[ids\[t\]\] + bias\[t mod L\]) (rows × H), with `w` the
/// word table and `bias` the position table with the token-type-0 row added.
pub fn embed(dims: &BertDims, b: &BertBuffers) -> Vec<f64> {
    let h = dims.hidden as usize;
    let mut out = vec![0.0; dims.rows as usize * h];
    for (t, row) in out.chunks_mut(h.max(1)).enumerate() {
        let (id, pos) = (b.ids[t] as usize, t % dims.len as usize);
        for c in 0..h {
            row[c] = b.w[id * h + c] as f64 + b.bias[pos * h + c] as f64;
        }
        normalize(row, b, dims.eps);
    }
    out
}

/// Residual and layer norm: out\[t\] = LayerNorm(a\[t\] + bias + w\[t\]) (rows × H).
pub fn add_norm(dims: &BertDims, b: &BertBuffers) -> Vec<f64> {
    let h = dims.hidden as usize;
    let mut out = vec![0.0; dims.rows as usize * h];
    for (t, row) in out.chunks_mut(h.max(1)).enumerate() {
        for c in 0..h {
            row[c] = b.a[t * h + c] as f64 + b.bias[c] as f64 + b.w[t * h + c] as f64;
        }
        normalize(row, b, dims.eps);
    }
    out
}

/// Multi-head attention with the padding mask: `a` holds Q | K | V (rows × 3H), `ids` the mask;
/// out (rows × H) = softmax(scale · q·k over the sequence's unmasked keys) · V, per head (zero
/// for a query whose sequence has no unmasked key).
pub fn attention(dims: &BertDims, b: &BertBuffers) -> Vec<f64> {
    let (h, l, heads) = (dims.hidden as usize, dims.len as usize, dims.heads as usize);
    let hd = h / heads;
    let seqs = dims.rows as usize / l;
    let mut out = vec![0.0; dims.rows as usize * h];
    let at = |row: usize, part: usize, head: usize, d: usize| b.a[row * 3 * h + part * h + head * hd + d] as f64;
    for s in 0..seqs {
        let keys: Vec<usize> = (0..l).filter(|&j| b.ids[s * l + j] != 0).collect();
        for head in 0..heads {
            for qi in 0..l {
                let q = s * l + qi;
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| (0..hd).map(|d| at(q, 0, head, d) * dims.scale as f64 * at(s * l + j, 1, head, d)).sum())
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = scores.iter().map(|v| (v - m).exp()).collect();
                let total: f64 = p.iter().sum();
                for d in 0..hd {
                    let v: f64 = keys.iter().zip(&p).map(|(&j, pj)| pj * at(s * l + j, 2, head, d)).sum();
                    out[q * h + head * hd + d] = if total > 0.0 { v / total } else { 0.0 };
                }
            }
        }
    }
    out
}

/// One vector per sequence (B = rows / L, B × H): its token vectors `a` pooled over the
/// unmasked tokens (`ids`) as `dims.pooling` says, then L2-normalised (unless it has
/// [`POOL_RAW`]).
pub fn pool(dims: &BertDims, b: &BertBuffers) -> Vec<f64> {
    let (h, l) = (dims.hidden as usize, dims.len as usize);
    let seqs = dims.rows as usize / l;
    let mut out = vec![0.0; seqs * h];
    for (s, o) in out.chunks_mut(h.max(1)).enumerate() {
        let tokens: Vec<usize> = (0..l).filter(|&t| b.ids[s * l + t] != 0).collect();
        let count = tokens.len() as f64;
        let x = |t: usize, c: usize| b.a[(s * l + t) * h + c] as f64;
        for c in 0..h {
            o[c] = match dims.pooling % POOL_RAW {
                1 => x(0, c),
                2 => tokens.iter().map(|&t| x(t, c)).fold(f64::NEG_INFINITY, f64::max),
                3 => tokens.iter().map(|&t| x(t, c)).sum::<f64>() / count.sqrt(),
                _ => tokens.iter().map(|&t| x(t, c)).sum::<f64>() / count,
            };
        }
        if dims.pooling < POOL_RAW {
            let norm = o.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            o.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// The whole forward pass on a padded batch (B texts × L tokens) as the GPU encoder dispatches
/// it: embeddings, then per layer Q|K|V projection → attention → output projection → residual
/// and layer norm → GELU feed-forward → residual and layer norm, then pooling. Activations pass
/// between the stages in f32, as on the device. B × H sentence vectors.
pub fn forward(w: &BertWeights, ids: &[u32], mask: &[u32], (batch, len): (usize, usize), pooling: Pooling) -> Vec<f64> {
    let (h, i) = (w.hidden, w.intermediate);
    let dims = BertDims::new((batch, len), (h, w.heads), pooling, w.eps);
    let f32s = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(|x| x as f32).collect() };
    let zeros = vec![0.0f32; h.max(i) * 3];
    let linear = |x: &[f32], k: usize, (wt, bias): &(Vec<f32>, Vec<f32>), n: usize, gelu: bool| {
        f32s(project(x, k, &zeros[..k], wt, n, bias, gelu))
    };
    let (g, bt) = (&w.ln_emb.0, &w.ln_emb.1);
    let mut x = f32s(embed(&dims, &BertBuffers { w: &w.word, bias: &w.position, ids, gamma: g, beta: bt, a: &[] }));
    for lw in &w.layers {
        let qkv = linear(&x, h, &lw.qkv, 3 * h, false);
        let ctx = f32s(attention(&dims, &BertBuffers { a: &qkv, ids: mask, ..Default::default() }));
        let o = linear(&ctx, h, &lw.o, h, false);
        let (g1, b1) = (&lw.ln_attn.0, &lw.ln_attn.1);
        let attn = f32s(add_norm(&dims, &BertBuffers { a: &o, bias: &zeros, w: &x, gamma: g1, beta: b1, ids: &[] }));
        let up = linear(&attn, h, &lw.up, i, true);
        let down = linear(&up, i, &lw.down, h, false);
        let (g2, b2) = (&lw.ln_out.0, &lw.ln_out.1);
        x = f32s(add_norm(&dims, &BertBuffers { a: &down, bias: &zeros, w: &attn, gamma: g2, beta: b2, ids: &[] }));
    }
    pool(&dims, &BertBuffers { a: &x, ids: mask, ..Default::default() })
}
