//! The sentence encoder on the GPU: the same BERT forward pass as [`super::bert::Bert`] (its
//! oracle), as WGSL kernels on the device toolkit's [`Gpu`]: `shaders/bert.wgsl` for the
//! embeddings, attention, layer norms and pooling, and the toolkit's `project.wgsl` (a tiled
//! matmul with bias and optional GELU) for every linear layer.
//!
//! Weights are uploaded once. Activation buffers are sized for the largest batch ([`GPU_TOKENS`]
//! padded tokens and [`GPU_BATCH`] texts, less where the device binds less) and reused; every
//! bind group is built once. A batch writes its token ids, mask and sizes, records the whole
//! forward pass (embeddings, per layer QKV → attention → output + residual + layer norm → GELU
//! feed-forward → residual + layer norm, then pooling and L2 normalisation) in one command
//! buffer that ends by copying the B sentence vectors into a [`DeviceRows`], and submits it
//! without waiting: the host tokenises the next texts while the device computes.
//!
//! The vectors stay on the device ([`Resident`]) for the PCA that follows: its Gram matrix and
//! projection run there, and only the d-dimensional scores come back.

use std::sync::Arc;

use super::bert::{Bert, BertWeights, Pooling};
use super::cache::Cache;
use super::reference::BertBuffers;
pub use super::reference::BertDims;
use super::{Distinct, Embedder, SentenceEncoder, WINDOW};
use crate::foundation::error::{Error, Result};
use crate::foundation::gpu::linear::{self, ProjDims};
use crate::foundation::gpu::{DeviceRows, Gpu, Kernel, Reference, UniformLayout, reference, uniform_layout};
use crate::foundation::vectors::Vectors;

/// `shaders/bert.wgsl`.
pub const BERT: &str = include_str!("../../shaders/bert.wgsl");
/// This kernel by file stem, for the shader tests.
pub const SHADERS: [(&str, &str); 1] = [("bert", BERT)];

/// Padded tokens per GPU batch at most: enough row tiles to fill a large GPU even for the
/// narrowest projection (16384 / 64 × 384 / 64 = 1536 workgroups for MiniLM's output layers).
pub const GPU_TOKENS: usize = 16384;
/// Texts per GPU batch at most.
pub const GPU_BATCH: usize = 1024;
/// Largest head size the attention kernel holds in registers (`MAX_HEAD_DIM` in bert.wgsl).
pub const MAX_HEAD_DIM: usize = 64;

/// Host-side layouts (size and field offsets) of the uniform structs, by WGSL name, for the
/// layout test.
pub const UNIFORMS: [UniformLayout; 1] = [uniform_layout!(BertDims { rows, len, hidden, heads, pooling, eps, scale })];
/// Every entry point of bert.wgsl and its CPU reference.
pub const REFERENCES: [Reference; 4] = [
    reference!("bert", crate::encoders::reference, embed),
    reference!("bert", crate::encoders::reference, add_norm),
    reference!("bert", crate::encoders::reference, attention),
    reference!("bert", crate::encoders::reference, pool),
];

/// An entry point of bert.wgsl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BertEntry {
    Embed,
    AddNorm,
    Attention,
    Pool,
}

impl BertEntry {
    pub const ALL: [BertEntry; 4] = [BertEntry::Embed, BertEntry::AddNorm, BertEntry::Attention, BertEntry::Pool];

    /// The WGSL entry point's name (also its CPU reference's, in [`super::reference`]).
    pub fn name(self) -> &'static str {
        match self {
            BertEntry::Embed => "embed",
            BertEntry::AddNorm => "add_norm",
            BertEntry::Attention => "attention",
            BertEntry::Pool => "pool",
        }
    }

    fn stage(self) -> Stage {
        match self {
            BertEntry::Embed => Stage::Embed,
            BertEntry::AddNorm => Stage::Norm,
            BertEntry::Attention => Stage::Attention,
            BertEntry::Pool => Stage::Pool,
        }
    }

    /// The pipeline, compiled once per device (attention per head size).
    fn kernel(self, gpu: &Gpu, head_dim: usize) -> Result<Arc<Kernel>> {
        match self {
            BertEntry::Embed => gpu.kernel("bert.embed", BERT, "embed"),
            BertEntry::AddNorm => gpu.kernel("bert.add_norm", BERT, "add_norm"),
            BertEntry::Attention => {
                gpu.kernel_with("bert.attention", BERT, "attention", &[("HEAD_DIM", head_dim as f64)])
            }
            BertEntry::Pool => gpu.kernel("bert.pool", BERT, "pool"),
        }
    }

    /// The storage bindings it reads ([`BertBuffers`] fields by binding number); every entry
    /// also binds the uniform (0) and writes `out` (4).
    fn inputs(self) -> &'static [u32] {
        match self {
            BertEntry::Embed => &[2, 3, 5, 6, 7],
            BertEntry::AddNorm => &[1, 2, 3, 6, 7],
            BertEntry::Attention | BertEntry::Pool => &[1, 5],
        }
    }

    /// Workgroups of one dispatch over the batch `dims` describes.
    fn groups(self, gpu: &Gpu, dims: &BertDims) -> (u32, u32, u32) {
        let (rows, len) = (dims.rows as usize, dims.len.max(1) as usize);
        let (x, y) = match self {
            BertEntry::Embed | BertEntry::AddNorm => gpu.grid(rows),
            BertEntry::Attention => gpu.grid(rows / len * dims.heads as usize * len.div_ceil(32)),
            BertEntry::Pool => ((rows / len) as u32, 1),
        };
        (x, y, 1)
    }

    /// Floats it writes to `out`: rows × H, or one H-vector per sequence for `pool`.
    fn out_len(self, dims: &BertDims) -> usize {
        let rows = if self == BertEntry::Pool { dims.rows / dims.len.max(1) } else { dims.rows };
        (rows * dims.hidden) as usize
    }
}

/// Runs one entry point of bert.wgsl on its own, on `buffers` uploaded for the purpose, and
/// reads its output back: what the per-kernel parity tests hold against the CPU reference of
/// the same name ([`super::reference`]).
pub fn run_entry(gpu: &Gpu, entry: BertEntry, dims: &BertDims, buffers: &BertBuffers) -> Result<Vec<f32>> {
    let head_dim = (dims.hidden / dims.heads.max(1)) as usize;
    let kernel = entry.kernel(gpu, head_dim)?;
    let out_len = entry.out_len(dims).max(1);
    gpu.checked(&format!("bert.{}", entry.name()), || -> Result<Vec<f32>> {
        // wgpu binds no empty buffer: an unused or empty input gets one zero.
        let upload = |label: &str, v: &[f32]| gpu.storage_with(label, if v.is_empty() { &[0.0] } else { v });
        let ids = gpu.storage_with("ids", if buffers.ids.is_empty() { &[0u32] } else { buffers.ids });
        let inputs = [
            (1, upload("a", buffers.a)),
            (2, upload("w", buffers.w)),
            (3, upload("bias", buffers.bias)),
            (5, ids),
            (6, upload("gamma", buffers.gamma)),
            (7, upload("beta", buffers.beta)),
        ];
        let uniform = gpu.uniform("dims", dims);
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let out = gpu.buffer("out", (out_len * 4) as u64, usage);
        let mut bound = vec![(0, &uniform), (4, &out)];
        bound.extend(inputs.iter().filter(|(b, _)| entry.inputs().contains(b)).map(|(b, buf)| (*b, buf)));
        let bind = gpu.bind(&kernel, entry.name(), &bound);
        let staging = gpu.staging("out.staging", out_len);
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            step(entry.stage(), &kernel, &bind, entry.groups(gpu, dims)).record(&mut pass);
        }
        enc.copy_buffer_to_buffer(&out, 0, &staging, 0, (out_len * 4) as u64);
        Ok(gpu.submit_and_read(enc, &[(&staging, out_len)])?.remove(0))
    })?
}

/// What a dispatch of the forward pass does, for the timing breakdown of `segmix bench --embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Token + position embeddings and layer norm.
    Embed,
    /// The Q/K/V, output and feed-forward projections (project.wgsl).
    Matmul,
    Attention,
    /// Residual + layer norm.
    Norm,
    /// Pooling and L2 normalisation.
    Pool,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Embed => "embeddings",
            Stage::Matmul => "matmul",
            Stage::Attention => "attention",
            Stage::Norm => "layer norm",
            Stage::Pool => "pooling",
        }
    }
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

/// The encoder's pipelines.
struct Kernels {
    linear: Arc<Kernel>,
    embed: Arc<Kernel>,
    norm: Arc<Kernel>,
    attention: Arc<Kernel>,
    pool: Arc<Kernel>,
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
    kernels: Kernels,
    ids: wgpu::Buffer,
    mask: wgpu::Buffer,
    pooled: wgpu::Buffer,
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

/// One dispatch of the forward pass.
struct Step<'a> {
    stage: Stage,
    kernel: &'a Kernel,
    bind: &'a wgpu::BindGroup,
    groups: (u32, u32, u32),
}

fn step<'a>(stage: Stage, kernel: &'a Kernel, bind: &'a wgpu::BindGroup, groups: (u32, u32, u32)) -> Step<'a> {
    Step { stage, kernel, bind, groups }
}

impl Step<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, self.bind, &[]);
        pass.dispatch_workgroups(self.groups.0, self.groups.1, self.groups.2);
    }
}

/// Padded tokens a batch can hold on this device (at most `max_tokens`): the widest activation
/// (Q|K|V or the feed-forward layer) must fit one binding. An error when not even `min_tokens`
/// fit, or when the model's heads are wider than the attention kernel takes.
fn token_capacity(gpu: &Gpu, w: &BertWeights, max_tokens: usize, min_tokens: usize) -> Result<usize> {
    let (h, i) = (w.hidden, w.intermediate);
    if w.heads == 0 || h % w.heads != 0 || h / w.heads > MAX_HEAD_DIM {
        return Err(Error::Embedder(format!(
            "the GPU encoder handles heads of at most {MAX_HEAD_DIM} dimensions; this model has {} heads of \
             hidden size {h}; use --device cpu",
            w.heads
        )));
    }
    let widest = (3 * h).max(i) as u64 * 4;
    let fits = (gpu.max_binding() / widest) as usize;
    let max_tokens = max_tokens.min(fits);
    if max_tokens < min_tokens || (w.word.len() as u64) * 4 > gpu.max_binding() {
        return Err(Error::Gpu(format!(
            "the encoder needs {}-byte buffers, more than this device binds ({})",
            (min_tokens as u64 * widest).max(w.word.len() as u64 * 4),
            gpu.max_binding()
        )));
    }
    Ok(max_tokens)
}

impl Kernels {
    /// Compiles the encoder's pipelines, the attention for heads of `head_dim` dimensions.
    fn compile(gpu: &Gpu, head_dim: usize) -> Result<Kernels> {
        Ok(Kernels {
            linear: linear::project_kernel(gpu)?,
            embed: BertEntry::Embed.kernel(gpu, head_dim)?,
            norm: BertEntry::AddNorm.kernel(gpu, head_dim)?,
            attention: BertEntry::Attention.kernel(gpu, head_dim)?,
            pool: BertEntry::Pool.kernel(gpu, head_dim)?,
        })
    }
}

impl GpuBert {
    /// Uploads `bert`'s weights to the backend's device and builds every pipeline and bind group.
    /// Batches hold up to `max_tokens` padded tokens and `max_batch` texts, less where the
    /// device binds less (never less than one text of `min_tokens`).
    ///
    /// The uploads and bind groups are one body inside one error scope, so that any failure
    /// among them is one error naming this step (about 100 lines of buffer plumbing).
    pub fn new(gpu: &Arc<Gpu>, bert: &Bert, max_tokens: usize, max_batch: usize, min_tokens: usize) -> Result<GpuBert> {
        let w = bert.export()?;
        let gpu = gpu.clone();
        let (h, i) = (w.hidden, w.intermediate);
        let max_tokens = token_capacity(&gpu, &w, max_tokens, min_tokens)?;
        let kernels = Kernels::compile(&gpu, h / w.heads)?;
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
            let lin = |label: &str| gpu.uniform(label, &ProjDims::default());
            let uniforms = Uniforms {
                base: gpu.uniform("base", &BertDims::default()),
                qkv: lin("qkv"),
                o: lin("o"),
                up: lin("up"),
                down: lin("down"),
            };
            let k = &kernels;
            let embed_bind = gpu.bind(
                &k.embed,
                "embed",
                &[(0, &uniforms.base), (2, &word), (3, &position), (4, &x), (5, &ids), (6, &ln_g), (7, &ln_b)],
            );
            // project.wgsl: (A − shift) W + b, here with a zero shift.
            let linear = |label: &str,
                          dims: &wgpu::Buffer,
                          a: &wgpu::Buffer,
                          w: &wgpu::Buffer,
                          out: &wgpu::Buffer,
                          b: &wgpu::Buffer| {
                gpu.bind(&k.linear, label, &[(0, dims), (1, a), (2, &zeros), (3, w), (4, out), (5, b)])
            };
            let norm = |label: &str,
                        a: &wgpu::Buffer,
                        residual: &wgpu::Buffer,
                        out: &wgpu::Buffer,
                        g: &wgpu::Buffer,
                        b: &wgpu::Buffer| {
                gpu.bind(
                    &k.norm,
                    label,
                    &[(0, &uniforms.base), (1, a), (2, residual), (3, &zeros), (4, out), (6, g), (7, b)],
                )
            };
            let pool_bind = gpu.bind(&k.pool, "pool", &[(0, &uniforms.base), (1, &x), (4, &pooled), (5, &mask)]);
            let mut layers = Vec::new();
            for lw in &w.layers {
                let (wqkv, bqkv) = (put("qkv.w", &lw.qkv.0), put("qkv.b", &lw.qkv.1));
                let (wo, bo) = (put("o.w", &lw.o.0), put("o.b", &lw.o.1));
                let (g1, b1) = (put("ln1.g", &lw.ln_attn.0), put("ln1.b", &lw.ln_attn.1));
                let (wu, bu) = (put("up.w", &lw.up.0), put("up.b", &lw.up.1));
                let (wd, bd) = (put("down.w", &lw.down.0), put("down.b", &lw.down.1));
                let (g2, b2) = (put("ln2.g", &lw.ln_out.0), put("ln2.b", &lw.ln_out.1));
                layers.push(LayerBinds {
                    qkv: linear("qkv", &uniforms.qkv, &x, &wqkv, &qkv, &bqkv),
                    attention: gpu.bind(
                        &k.attention,
                        "attention",
                        &[(0, &uniforms.base), (1, &qkv), (4, &ctx), (5, &mask)],
                    ),
                    o: linear("o", &uniforms.o, &ctx, &wo, &tmp, &bo),
                    norm1: norm("norm1", &tmp, &x, &attn, &g1, &b1),
                    up: linear("up", &uniforms.up, &attn, &wu, &inter, &bu),
                    down: linear("down", &uniforms.down, &inter, &wd, &tmp, &bd),
                    norm2: norm("norm2", &tmp, &attn, &x, &g2, &b2),
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
                kernels,
                ids,
                mask,
                pooled,
                uniforms,
                embed_bind,
                pool_bind,
                layers,
                _buffers: keep,
            }
        })
    }

    /// Padded tokens per batch at most.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Texts per batch at most.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The device that holds the encoder.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Writes a padded batch's inputs and sizes, and returns its dispatches in order.
    fn prepare(
        &self,
        ids: &[u32],
        mask: &[u32],
        (b, l): (usize, usize),
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<Step<'_>>> {
        let t = b * l;
        if t > self.max_tokens || b > self.max_batch || l > self.max_positions || ids.len() != t || mask.len() != t {
            return Err(Error::Embedder(format!(
                "GPU batch of {b} × {l} tokens exceeds the encoder's buffers ({} tokens, {} texts, {} positions)",
                self.max_tokens, self.max_batch, self.max_positions
            )));
        }
        let (h, i) = (self.hidden, self.intermediate);
        let gpu = &self.gpu;
        let base = BertDims::new((b, l), (h, self.heads), pooling, self.eps).normalized(normalize);
        let lin = |k: usize, n: usize, gelu: bool| ProjDims {
            n: t as u32,
            dim: k as u32,
            d: n as u32,
            gelu: u32::from(gelu),
        };
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
        let k = &self.kernels;
        let rows = BertEntry::Embed.groups(gpu, &base);
        let tiles = |n: usize| {
            let (x, y) = gpu.grid(t.div_ceil(64));
            (x, y, n.div_ceil(64) as u32)
        };
        let att = BertEntry::Attention.groups(gpu, &base);
        let mut steps = vec![step(Stage::Embed, &k.embed, &self.embed_bind, rows)];
        for lb in &self.layers {
            steps.extend([
                step(Stage::Matmul, &k.linear, &lb.qkv, tiles(3 * h)),
                step(Stage::Attention, &k.attention, &lb.attention, att),
                step(Stage::Matmul, &k.linear, &lb.o, tiles(h)),
                step(Stage::Norm, &k.norm, &lb.norm1, rows),
                step(Stage::Matmul, &k.linear, &lb.up, tiles(i)),
                step(Stage::Matmul, &k.linear, &lb.down, tiles(h)),
                step(Stage::Norm, &k.norm, &lb.norm2, rows),
            ]);
        }
        steps.push(step(Stage::Pool, &k.pool, &self.pool_bind, BertEntry::Pool.groups(gpu, &base)));
        Ok(steps)
    }

    /// Encodes a padded batch (B texts × L tokens, shortest first or in any order) and copies
    /// its B sentence vectors (L2-normalised when `normalize`) to rows [at, at + B) of `dst`.
    /// Submits without waiting.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        ids: &[u32],
        mask: &[u32],
        (b, l): (usize, usize),
        pooling: Pooling,
        normalize: bool,
        dst: &DeviceRows,
        at: usize,
    ) -> Result<wgpu::SubmissionIndex> {
        let gpu = &self.gpu;
        gpu.checked("sentence encoder", || -> Result<wgpu::SubmissionIndex> {
            let steps = self.prepare(ids, mask, (b, l), pooling, normalize)?;
            let mut enc = gpu.encoder();
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                steps.iter().for_each(|s| s.record(&mut pass));
            }
            dst.copy_in(&mut enc, &self.pooled, at, b);
            Ok(gpu.queue.submit([enc.finish()]))
        })?
    }

    /// Seconds the device spends in each [`Stage`] of one padded batch (timestamp queries,
    /// one compute pass per dispatch), or `None` when the adapter has no timestamp queries.
    /// The batch is run `repeats` times and the median per stage reported.
    pub fn profile(
        &self,
        ids: &[u32],
        mask: &[u32],
        (b, l): (usize, usize),
        pooling: Pooling,
        repeats: usize,
    ) -> Result<Option<Vec<(Stage, f64)>>> {
        let gpu = &self.gpu;
        if !gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok(None);
        }
        let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
        // The batch's inputs are written once; each repeat records every dispatch in its own
        // timed pass and reads the timestamps back.
        let runs = gpu.checked("profiling the sentence encoder", || -> Result<Vec<Vec<(Stage, f64)>>> {
            let steps = self.prepare(ids, mask, (b, l), pooling, true)?;
            let count = (2 * steps.len()) as u32;
            let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("encoder.timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolve = gpu.buffer(
                "timestamps",
                count as u64 * 8,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let staging = gpu.staging("timestamps.staging", 2 * count as usize);
            let mut runs = Vec::with_capacity(repeats.max(1));
            for _ in 0..repeats.max(1) {
                let mut enc = gpu.encoder();
                for (n, s) in steps.iter().enumerate() {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(s.stage.name()),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &set,
                            beginning_of_pass_write_index: Some(2 * n as u32),
                            end_of_pass_write_index: Some(2 * n as u32 + 1),
                        }),
                    });
                    s.record(&mut pass);
                }
                enc.resolve_query_set(&set, 0..count, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, count as u64 * 8);
                let words = gpu.submit_and_read(enc, &[(&staging, 2 * count as usize)])?.remove(0);
                // A Vec<f32> is only 4-aligned: copy into u64s rather than cast in place.
                let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&words);
                runs.push(
                    steps
                        .iter()
                        .enumerate()
                        .map(|(n, s)| (s.stage, ticks[2 * n + 1].saturating_sub(ticks[2 * n]) as f64 * period))
                        .collect(),
                );
            }
            Ok(runs)
        })??;
        let mut by_stage: std::collections::BTreeMap<Stage, Vec<f64>> = Default::default();
        for run in &runs {
            let mut sums: std::collections::BTreeMap<Stage, f64> = Default::default();
            for &(stage, secs) in run {
                *sums.entry(stage).or_default() += secs;
            }
            for (stage, secs) in sums {
                by_stage.entry(stage).or_default().push(secs);
            }
        }
        Ok(Some(by_stage.into_iter().map(|(stage, mut v)| (stage, crate::foundation::stats::median(&mut v))).collect()))
    }
}

/// One batch at a time, waited for and read back: the embedder itself keeps two windows of
/// batches in flight ([`GpuBert::encode`]) or leaves the vectors on the device.
impl SentenceEncoder for GpuBert {
    fn device(&self) -> String {
        format!("GpuBert on {}", self.gpu.adapter().label())
    }

    fn limits(&self) -> (usize, usize) {
        (self.max_tokens, self.max_batch)
    }

    fn encode(
        &self,
        ids: &[u32],
        mask: &[u32],
        (b, l): (usize, usize),
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        let rows = DeviceRows::new(&self.gpu, b, self.hidden)?;
        let done = GpuBert::encode(self, ids, mask, (b, l), pooling, normalize, &rows, 0)?;
        self.gpu.wait_for(done)?;
        rows.read(0, b)
    }
}

/// The GPU side of [`Embedder`]: moving the encoder onto a device, embedding there, and leaving
/// the vectors resident for the PCA.
impl Embedder {
    /// Runs the encoder on `gpu` from now on (weights uploaded once), with batches of
    /// up to [`GPU_TOKENS`] padded tokens and [`GPU_BATCH`] texts.
    pub fn use_gpu(&mut self, gpu: &Arc<Gpu>) -> Result<()> {
        self.use_gpu_with(gpu, GPU_TOKENS, GPU_BATCH)
    }

    /// As [`Embedder::use_gpu`] with the batch limits given (at least one longest text).
    pub fn use_gpu_with(&mut self, gpu: &Arc<Gpu>, tokens: usize, texts: usize) -> Result<()> {
        let max = self.info.max_length;
        self.gpu = Some(GpuBert::new(gpu, &self.bert, tokens.max(max), texts.max(1), max)?);
        Ok(())
    }

    /// Embeds the distinct texts `todo` on the GPU encoder `g`, two windows in flight: their
    /// vectors are read back into `vectors` (distinct-text rows) and stored in `cache`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn embed_on_gpu(
        &self,
        g: &GpuBert,
        distinct: &Distinct,
        todo: &[usize],
        cache: Option<&Cache>,
        vectors: &mut [f32],
        was_truncated: &mut [bool],
        done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<()> {
        let dim = self.info.dim;
        let total = todo.len();
        // Two window slots on the device: one being computed while the other is read.
        let slot_rows = WINDOW.min(total.max(1));
        let ring = DeviceRows::new(g.gpu(), 2 * slot_rows, dim)?;
        let slot = |w: usize| (w % 2) * slot_rows;
        self.run_gpu(g, distinct, todo, &ring, &slot, true, was_truncated, done, |uids, _, got| {
            let got = got.expect("read back");
            for (r, &u) in uids.iter().enumerate() {
                vectors[u * dim..(u + 1) * dim].copy_from_slice(&got[r * dim..(r + 1) * dim]);
            }
            distinct.store(cache, uids, |r| &got[r * dim..(r + 1) * dim])
        })
    }

    /// Embeds `texts` on the GPU and leaves the vectors there (one row per distinct text), for
    /// a PCA that runs on the device. With a cache, new vectors come back once per window to be
    /// stored in it; without one, nothing comes back. Errors unless [`Embedder::use_gpu`] was
    /// called.
    pub fn embed_resident(
        &self,
        texts: &[Option<&str>],
        cache: Option<&Cache>,
        done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Resident> {
        let g = self.gpu.as_ref().ok_or_else(|| Error::Embedder("the encoder is not on a GPU".into()))?;
        let mut buf = Vec::new();
        let texts = &self.as_tokenised(texts, &mut buf)[..];
        let dim = self.info.dim;
        let distinct = Distinct::of(texts);
        let store = DeviceRows::new(g.gpu(), distinct.texts.len(), dim)?;
        let mut row_of_unique = vec![usize::MAX; distinct.texts.len()];
        // Cache hits go first, uploaded in windows.
        let mut hits: Vec<f32> = Vec::new();
        let mut uploaded = 0;
        let todo = distinct.lookup(cache, dim, |u, v| {
            row_of_unique[u] = uploaded + hits.len() / dim;
            hits.extend_from_slice(v);
            if hits.len() == WINDOW * dim {
                store.write(uploaded, &hits);
                uploaded += WINDOW;
                hits.clear();
            }
        });
        store.write(uploaded, &hits);
        let first = uploaded + hits.len() / dim;
        drop(hits);
        let total = todo.len();
        let mut was_truncated = vec![false; distinct.texts.len()];
        done(0, total);
        let base = |w: usize| first + w * WINDOW;
        self.run_gpu(
            g,
            &distinct,
            &todo,
            &store,
            &base,
            cache.is_some(),
            &mut was_truncated,
            done,
            |uids, at, got| {
                for (r, &u) in uids.iter().enumerate() {
                    row_of_unique[u] = at + r;
                }
                if let Some(got) = got {
                    distinct.store(cache, uids, |r| &got[r * dim..(r + 1) * dim]);
                }
            },
        )?;
        let row_of = distinct.slot.iter().map(|s| s.map(|u| row_of_unique[u])).collect();
        let truncated = distinct.truncated_rows(&was_truncated);
        Ok(Resident { vectors: Vectors::device(store, row_of), truncated, encoded: total })
    }

    /// Runs the GPU encoder over the distinct texts `todo`, window by window: window w's
    /// vectors go to rows `base(w)`.. of `store` in the order its batches run. Every batch is
    /// submitted without waiting; once window w + 1 is submitted, window w is waited for and
    /// `finished(texts, first row, vectors)` called, with its vectors read back when `read`.
    #[allow(clippy::too_many_arguments)]
    fn run_gpu(
        &self,
        g: &GpuBert,
        distinct: &Distinct,
        todo: &[usize],
        store: &DeviceRows,
        base: &dyn Fn(usize) -> usize,
        read: bool,
        was_truncated: &mut [bool],
        done: &(dyn Fn(usize, usize) + Sync),
        mut finished: impl FnMut(&[usize], usize, Option<Vec<f32>>),
    ) -> Result<()> {
        let dim = self.info.dim;
        let gpu = g.gpu().clone();
        let window_rows = WINDOW.min(todo.len().max(1));
        let staging: Vec<wgpu::Buffer> =
            if read { (0..2).map(|_| gpu.staging("embed.readback", window_rows * dim)).collect() } else { Vec::new() };
        // (texts in row order, first row, submission, staging slot) of the window in flight.
        let mut pending: Option<(Vec<usize>, usize, wgpu::SubmissionIndex, usize)> = None;
        let mut count = 0;
        let mut settle = |p: (Vec<usize>, usize, wgpu::SubmissionIndex, usize), count: &mut usize| -> Result<()> {
            let (uids, at, index, slot) = p;
            let got = if read {
                Some(gpu.read_after(&[(&staging[slot], uids.len() * dim)], index)?.remove(0))
            } else {
                gpu.wait_for(index)?;
                None
            };
            *count += uids.len();
            finished(&uids, at, got);
            done(*count, todo.len());
            self.check_stop()
        };
        for (w, window) in todo.chunks(WINDOW).enumerate() {
            let inputs: Vec<&str> = window.iter().map(|&u| distinct.texts[u]).collect();
            let (batches, truncated) = self.batches(&inputs, g.max_tokens(), g.max_batch())?;
            for (&u, t) in window.iter().zip(truncated) {
                was_truncated[u] = t;
            }
            let at = base(w);
            let mut row = at;
            let mut uids = Vec::with_capacity(window.len());
            let mut last = None;
            for batch in &batches {
                let b = batch.members.len();
                last = Some(g.encode(&batch.ids, &batch.mask, (b, batch.l), self.info.pooling, true, store, row)?);
                row += b;
                uids.extend(batch.members.iter().map(|&i| window[i]));
            }
            let mut index = last.expect("a window has a batch");
            if read {
                let mut enc = gpu.encoder();
                store.copy_out(&mut enc, at, uids.len(), &staging[w % 2]);
                index = gpu.queue.submit([enc.finish()]);
            }
            if let Some(p) = pending.take() {
                settle(p, &mut count)?;
            }
            pending = Some((uids, at, index, w % 2));
        }
        if let Some(p) = pending.take() {
            settle(p, &mut count)?;
        }
        Ok(())
    }
}

/// Sentence vectors left on the device by the GPU encoder, one row per distinct text, with
/// each table row's: the PCA runs on them in place.
#[derive(Debug)]
pub struct Resident {
    pub vectors: Vectors,
    /// Rows whose text was truncated.
    pub truncated: usize,
    /// Distinct texts that went through the encoder (the rest were duplicates or cache hits).
    pub encoded: usize,
}
