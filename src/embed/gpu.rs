//! The sentence encoder on the GPU: the same BERT forward pass as [`super::bert::Bert`] (its
//! oracle), as WGSL kernels run through the GPU backend's device: `shaders/bert.wgsl` for the
//! embeddings, attention, layer norms and pooling, and the backend's `project.wgsl` (a tiled
//! matmul with bias and optional GELU) for every linear layer.
//!
//! Weights are uploaded once. Activation buffers are sized for the largest batch the embedder
//! forms ([`super::TOKEN_BUDGET`] padded tokens, [`super::MAX_BATCH`] texts) and reused; every
//! bind group is built once. A batch writes its token ids, mask and sizes, records the whole
//! forward pass (embeddings, per layer QKV → attention → output + residual + layer norm → GELU
//! feed-forward → residual + layer norm, then pooling and L2 normalisation) in one command
//! buffer, and reads back only the B × H sentence vectors.

use std::sync::Arc;

use super::bert::{Bert, Pooling};
use crate::backend::gpu::kernels::{Kernel, PROJECT, ProjDims};
use crate::backend::gpu::{Gpu, GpuBackend};
use crate::error::{Error, Result};

/// `shaders/bert.wgsl`.
pub const BERT: &str = include_str!("../../shaders/bert.wgsl");

/// Uniform `BertDims` of bert.wgsl. Keep in sync with the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BertDims {
    pub rows: u32,
    pub len: u32,
    pub hidden: u32,
    pub heads: u32,
    pub pooling: u32,
    pub eps: f32,
    pub scale: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<BertDims>() == 32);

/// A BERT checkpoint as flat f32 arrays, linear weights stored [in, out].
#[derive(Debug, Clone)]
pub struct BertWeights {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub eps: f32,
    pub word: Vec<f32>,
    /// Position table with the token-type-0 row added.
    pub position: Vec<f32>,
    pub ln_emb: (Vec<f32>, Vec<f32>),
    pub layers: Vec<LayerWeights>,
}

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub qkv: (Vec<f32>, Vec<f32>),
    pub o: (Vec<f32>, Vec<f32>),
    pub ln_attn: (Vec<f32>, Vec<f32>),
    pub up: (Vec<f32>, Vec<f32>),
    pub down: (Vec<f32>, Vec<f32>),
    pub ln_out: (Vec<f32>, Vec<f32>),
}

struct LayerBinds {
    qkv: wgpu::BindGroup,
    attention: wgpu::BindGroup,
    o: wgpu::BindGroup,
    norm1: wgpu::BindGroup,
    up: wgpu::BindGroup,
    down: wgpu::BindGroup,
    norm2: wgpu::BindGroup,
}

/// Uniform buffers, one per dispatch shape.
struct Uniforms {
    base: wgpu::Buffer,
    qkv: wgpu::Buffer,
    o: wgpu::Buffer,
    up: wgpu::Buffer,
    down: wgpu::Buffer,
}

/// The encoder resident on a GPU.
pub struct GpuBert {
    gpu: Arc<Gpu>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    eps: f32,
    max_tokens: usize,
    max_batch: usize,
    ids: wgpu::Buffer,
    mask: wgpu::Buffer,
    pooled: wgpu::Buffer,
    staging: wgpu::Buffer,
    uniforms: Uniforms,
    embed_bind: wgpu::BindGroup,
    pool_bind: wgpu::BindGroup,
    layers: Vec<LayerBinds>,
    /// Weights and activations the bind groups point at (kept alive here).
    _buffers: Vec<wgpu::Buffer>,
}

impl std::fmt::Debug for GpuBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBert").field("adapter", &self.gpu.summary.label()).finish_non_exhaustive()
    }
}

/// The encoder's pipelines: linear layers (project.wgsl), embed, add_norm, attention, pool.
fn kernels(gpu: &Gpu) -> Result<[Arc<Kernel>; 5]> {
    let k = |entry: &'static str| gpu.kernel(entry, BERT, entry.trim_start_matches("bert."));
    Ok([
        gpu.kernel("project", PROJECT, "main")?,
        k("bert.embed")?,
        k("bert.add_norm")?,
        k("bert.attention")?,
        k("bert.pool")?,
    ])
}

impl GpuBert {
    /// Uploads `bert`'s weights to the backend's device and builds every pipeline and bind group.
    pub fn new(backend: &GpuBackend, bert: &Bert, max_tokens: usize, max_batch: usize) -> Result<GpuBert> {
        let w = bert.export()?;
        let gpu = backend.device().clone();
        let (h, i) = (w.hidden, w.intermediate);
        let biggest = (max_tokens * 3 * h).max(max_tokens * i).max(w.word.len()) as u64 * 4;
        if biggest > gpu.max_binding() {
            return Err(Error::Gpu(format!(
                "the encoder needs {biggest}-byte buffers, more than this device binds ({})",
                gpu.max_binding()
            )));
        }
        let [klin, kemb, knorm, katt, kpool] = kernels(&gpu)?;
        gpu.checked("uploading the sentence encoder", || {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
            let mut keep = Vec::new();
            let mut put = |label: &str, v: &[f32]| -> wgpu::Buffer {
                let b = gpu.storage_with(label, v);
                keep.push(b.clone());
                b
            };
            let word = put("word", &w.word);
            let position = put("position", &w.position);
            let (ln_g, ln_b) = (put("ln_emb.g", &w.ln_emb.0), put("ln_emb.b", &w.ln_emb.1));
            let zeros = put("zeros", &vec![0.0; h.max(i) * 3]);
            let act = |label: &str, floats: usize| gpu.buffer(label, (floats * 4) as u64, storage);
            let x = act("x", max_tokens * h);
            let qkv = act("qkv", max_tokens * 3 * h);
            let ctx = act("ctx", max_tokens * h);
            let tmp = act("tmp", max_tokens * h);
            let attn = act("attn", max_tokens * h);
            let inter = act("inter", max_tokens * i);
            let ids = gpu.buffer("ids", (max_tokens * 4) as u64, storage);
            let mask = gpu.buffer("mask", (max_tokens * 4) as u64, storage);
            let pooled = act("pooled", max_batch * h);
            let staging = gpu.staging("pooled.staging", max_batch * h);
            let lin = |label: &str| gpu.uniform(label, &ProjDims::default());
            let uniforms = Uniforms {
                base: gpu.uniform("base", &BertDims::default()),
                qkv: lin("qkv"),
                o: lin("o"),
                up: lin("up"),
                down: lin("down"),
            };
            let bind = |k: &Kernel, label: &str, entries: &[(u32, &wgpu::Buffer)]| {
                let e: Vec<wgpu::BindGroupEntry> = entries
                    .iter()
                    .map(|&(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() })
                    .collect();
                gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(label),
                    layout: &k.layout,
                    entries: &e,
                })
            };
            let embed_bind = bind(
                &kemb,
                "embed",
                &[(0, &uniforms.base), (2, &word), (3, &position), (4, &x), (5, &ids), (6, &ln_g), (7, &ln_b)],
            );
            // project.wgsl: (A − shift) W + b, here with a zero shift.
            let linear = |k: &Kernel,
                          label: &str,
                          dims: &wgpu::Buffer,
                          a: &wgpu::Buffer,
                          w: &wgpu::Buffer,
                          out: &wgpu::Buffer,
                          b: &wgpu::Buffer| {
                bind(k, label, &[(0, dims), (1, a), (2, &zeros), (3, w), (4, out), (5, b)])
            };
            let pool_bind = bind(&kpool, "pool", &[(0, &uniforms.base), (1, &x), (4, &pooled), (5, &mask)]);
            let mut layers = Vec::new();
            for lw in &w.layers {
                let (wqkv, bqkv) = (put("qkv.w", &lw.qkv.0), put("qkv.b", &lw.qkv.1));
                let (wo, bo) = (put("o.w", &lw.o.0), put("o.b", &lw.o.1));
                let (g1, b1) = (put("ln1.g", &lw.ln_attn.0), put("ln1.b", &lw.ln_attn.1));
                let (wu, bu) = (put("up.w", &lw.up.0), put("up.b", &lw.up.1));
                let (wd, bd) = (put("down.w", &lw.down.0), put("down.b", &lw.down.1));
                let (g2, b2) = (put("ln2.g", &lw.ln_out.0), put("ln2.b", &lw.ln_out.1));
                layers.push(LayerBinds {
                    qkv: linear(&klin, "qkv", &uniforms.qkv, &x, &wqkv, &qkv, &bqkv),
                    attention: bind(&katt, "attention", &[(0, &uniforms.base), (1, &qkv), (4, &ctx), (5, &mask)]),
                    o: linear(&klin, "o", &uniforms.o, &ctx, &wo, &tmp, &bo),
                    norm1: bind(
                        &knorm,
                        "norm1",
                        &[(0, &uniforms.base), (1, &tmp), (2, &x), (3, &zeros), (4, &attn), (6, &g1), (7, &b1)],
                    ),
                    up: linear(&klin, "up", &uniforms.up, &attn, &wu, &inter, &bu),
                    down: linear(&klin, "down", &uniforms.down, &inter, &wd, &tmp, &bd),
                    norm2: bind(
                        &knorm,
                        "norm2",
                        &[(0, &uniforms.base), (1, &tmp), (2, &attn), (3, &zeros), (4, &x), (6, &g2), (7, &b2)],
                    ),
                });
            }
            keep.extend([x, qkv, ctx, tmp, attn, inter]);
            GpuBert {
                gpu: gpu.clone(),
                hidden: h,
                heads: w.heads,
                intermediate: i,
                max_positions: w.max_positions,
                eps: w.eps,
                max_tokens,
                max_batch,
                ids,
                mask,
                pooled,
                staging,
                uniforms,
                embed_bind,
                pool_bind,
                layers,
                _buffers: keep,
            }
        })
    }

    /// Sentence vectors (B × H) of a padded batch, as [`Bert::embed`] computes them.
    pub fn embed(&self, ids: &[u32], mask: &[u32], b: usize, l: usize, pooling: Pooling) -> Result<Vec<f32>> {
        let t = b * l;
        if t > self.max_tokens || b > self.max_batch || l > self.max_positions {
            return Err(Error::Embedder(format!(
                "GPU batch of {b} × {l} tokens exceeds the encoder's buffers ({} tokens, {} texts, {} positions)",
                self.max_tokens, self.max_batch, self.max_positions
            )));
        }
        let (h, i) = (self.hidden, self.intermediate);
        let gpu = &self.gpu;
        let [klin, kemb, knorm, katt, kpool] = kernels(gpu)?;
        let base = BertDims {
            rows: t as u32,
            len: l as u32,
            hidden: h as u32,
            heads: self.heads as u32,
            pooling: match pooling {
                Pooling::Mean => 0,
                Pooling::Cls => 1,
                Pooling::Max => 2,
                Pooling::MeanSqrtLen => 3,
            },
            eps: self.eps,
            scale: 1.0 / ((h / self.heads) as f32).sqrt(),
            ..BertDims::default()
        };
        let lin = |k: usize, n: usize, gelu: bool| ProjDims {
            n: t as u32,
            dim: k as u32,
            d: n as u32,
            gelu: u32::from(gelu),
        };
        let out = gpu.checked("sentence encoder", || -> Result<Vec<f32>> {
            gpu.write(&self.ids, 0, bytemuck::cast_slice(ids));
            gpu.write(&self.mask, 0, bytemuck::cast_slice(mask));
            let u = &self.uniforms;
            gpu.write(&u.base, 0, bytemuck::bytes_of(&base));
            for (buf, d) in [
                (&u.qkv, lin(h, 3 * h, false)),
                (&u.o, lin(h, h, false)),
                (&u.up, lin(h, i, true)),
                (&u.down, lin(i, h, false)),
            ] {
                gpu.write(buf, 0, bytemuck::bytes_of(&d));
            }
            let rows = gpu.grid(t);
            let tiles = |n: usize| (gpu.grid(t.div_ceil(64)), n.div_ceil(64) as u32);
            let mut enc = gpu.encoder();
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                let mut run = |k: &Kernel, bg: &wgpu::BindGroup, x: u32, y: u32, z: u32| {
                    pass.set_pipeline(&k.pipeline);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(x, y, z);
                };
                run(&kemb, &self.embed_bind, rows.0, rows.1, 1);
                let att = gpu.grid((t * self.heads).div_ceil(64));
                for lb in &self.layers {
                    let ((x, y), z) = tiles(3 * h);
                    run(&klin, &lb.qkv, x, y, z);
                    run(&katt, &lb.attention, att.0, att.1, 1);
                    let ((x, y), z) = tiles(h);
                    run(&klin, &lb.o, x, y, z);
                    run(&knorm, &lb.norm1, rows.0, rows.1, 1);
                    let ((x, y), z) = tiles(i);
                    run(&klin, &lb.up, x, y, z);
                    let ((x, y), z) = tiles(h);
                    run(&klin, &lb.down, x, y, z);
                    run(&knorm, &lb.norm2, rows.0, rows.1, 1);
                }
                run(&kpool, &self.pool_bind, b as u32, 1, 1);
            }
            enc.copy_buffer_to_buffer(&self.pooled, 0, &self.staging, 0, (b * h * 4) as u64);
            Ok(gpu.submit_and_read(enc, &[(&self.staging, b * h)])?.remove(0))
        })??;
        Ok(out)
    }
}
