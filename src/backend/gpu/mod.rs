//! The GPU backend: the four kernels of the [`Backend`] seam as WGSL compute shaders run through
//! wgpu (Vulkan, Metal, DX12), f32 on the device, partial sums reduced in f64 on the host.
//!
//! ## Residency
//! [`Backend::upload`] copies the rows once per fit into per-segment buffers (continuous values,
//! pattern + category codes, and the row lists behind the categorical counts). A segment is as
//! many rows as the device's storage-binding limit allows, so 10 million rows run on any GPU with
//! the memory for them. [`Backend::alloc_resp`] allocates a model's parameter, responsibility
//! and partial-sum buffers and builds its bind groups once. An EM iteration then writes only the
//! parameter buffer, records every dispatch of every model in one command buffer (the K range
//! and restarts of a sweep run in lockstep, so a whole sweep step is one submit and one wait),
//! and reads back only the per-workgroup partials: 2 floats per 128 rows for the E-step, and
//! K·(p + p(p+1)/2) per row chunk plus K per count unit for the statistics.
//!
//! ## Kernels (`shaders/`, each with its CPU twin in [`super::cpu`])
//! * `e_step.wgsl` — one invocation per row: log-densities of every class, online log-sum-exp,
//!   responsibilities, row log-likelihood, and a workgroup reduction of Σ lse and the entropy.
//! * `m_stats.wgsl` — `moments`: Σ r d̂ and Σ r d̂ d̂ᵀ about the class means, per (row chunk,
//!   class), rows staged through workgroup memory; `counts`: Σ r over runs of rows that share a
//!   categorical level or a missing-value pattern.
//! * `gram.wgsl` — XᵀX about a shift in 64 × 64 register-blocked tiles, and column sums.
//! * `project.wgsl` — (X − m) W + b as a tiled matmul (GELU optional: the sentence encoder's
//!   linear layers run on it too).
//!
//! Shaders never see NaN (WGSL lets implementations assume there is none): missing continuous
//! values are 0 with a pattern mask, and embedding rows that are missing are dropped (Gram) or
//! zeroed and restored as NaN after read-back (projection).

mod context;
pub mod kernels;
mod rows;

use std::sync::Arc;

pub use context::{AdapterPolicy, AdapterSummary, Gpu, list_adapters};
use kernels::{Dims, E_STEP_WG, GramDims, Kernel, MAX_P, MOMENTS_TILE, ProjDims, TILE};
pub use rows::DeviceRows;

use super::{Backend, EStepSummary, Gram, KernelParams, MixtureData, Posteriors, SuffStats};
use crate::data::MISSING_CODE;
use crate::error::{Error, Result};

/// Largest block of embedding rows uploaded at once by `gram` and `project`.
const EMBED_BLOCK_BYTES: u64 = 128 << 20;
/// Row chunks (workgroups along y) of `gram`; each slot accumulates every block's rows.
const GRAM_CHUNKS: usize = 32;
/// Target number of `moments` workgroups per segment (chunks × K), enough to fill a large GPU.
const MOMENTS_GROUPS: usize = 1024;
/// Largest number of classes a segment's sizing assumes (a larger K is refused if it would
/// overflow the binding limit).
const SEGMENT_K: usize = 64;

/// The wgpu implementation of [`Backend`]. Cheap to clone (the device is shared).
#[derive(Debug, Clone)]
pub struct GpuBackend {
    gpu: Arc<Gpu>,
    /// Rows per segment; `None` derives it from the device limits.
    segment_rows: Option<usize>,
}

impl GpuBackend {
    /// Opens the best adapter the policy allows; `Ok(Err(reason))` when there is none.
    pub fn open(policy: AdapterPolicy) -> Result<std::result::Result<GpuBackend, String>> {
        Ok(Gpu::open(policy)?.map(|gpu| GpuBackend { gpu: Arc::new(gpu), segment_rows: None }))
    }

    /// Caps the rows per segment (tests use it to exercise the multi-segment path on small data).
    pub fn with_segment_rows(mut self, rows: usize) -> Self {
        self.segment_rows = Some(rows.max(1));
        self
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.summary
    }

    /// The open device, shared with the GPU sentence encoder.
    pub fn device(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn kernel(&self, which: Which) -> Result<Arc<Kernel>> {
        let (name, src, entry) = match which {
            Which::EStep => ("e_step", kernels::E_STEP, "main"),
            Which::Moments => ("m_stats.moments", kernels::M_STATS, "moments"),
            Which::Counts => ("m_stats.counts", kernels::M_STATS, "counts"),
            Which::Gram => ("gram.gram", kernels::GRAM, "gram"),
            Which::Sums => ("gram.column_sums", kernels::GRAM, "column_sums"),
            Which::Project => ("project", kernels::PROJECT, "main"),
        };
        self.gpu.kernel(name, src, entry)
    }

    fn bind(&self, kernel: &Kernel, label: &str, buffers: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
        self.gpu.bind(kernel, label, buffers)
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    EStep,
    Moments,
    Counts,
    Gram,
    Sums,
    Project,
}

/// Rows [start, start + n) of the data, resident on the device.
#[derive(Debug)]
struct Segment {
    start: usize,
    n: usize,
    /// n × p f32.
    x: wgpu::Buffer,
    /// n × (1 + J) u32: pattern, then codes.
    rowinfo: wgpu::Buffer,
    /// Count units: [first, len] pairs into `members`.
    units: wgpu::Buffer,
    members: wgpu::Buffer,
    /// Output slot of each unit: a level (0..TL) or TL + pattern.
    unit_slot: Vec<u32>,
}

/// Rows resident on the device for one fit, in input order.
#[derive(Debug)]
pub struct GpuData {
    n: usize,
    p: usize,
    j: usize,
    tl: usize,
    n_patterns: usize,
    off_observed: usize,
    /// Level offsets (J + 1), then the observed masks (P × p), u32.
    tables: wgpu::Buffer,
    segments: Vec<Segment>,
}

/// One segment's buffers and bind groups for one model.
#[derive(Debug)]
struct SegResp {
    resp: wgpu::Buffer,
    row_ll: wgpu::Buffer,
    partial: wgpu::Buffer,
    e_grid: (u32, u32),
    moments: wgpu::Buffer,
    chunks: usize,
    counts: wgpu::Buffer,
    e_bind: wgpu::BindGroup,
    m_bind: wgpu::BindGroup,
    c_bind: wgpu::BindGroup,
    /// Offsets (f32 words) of this segment's partials in the model's staging buffer.
    at_partial: usize,
    at_moments: usize,
    at_counts: usize,
}

/// A model's parameter and responsibility buffers, resident on the device.
#[derive(Debug)]
pub struct GpuResp {
    k: usize,
    params: wgpu::Buffer,
    layout: ParamLayout,
    segs: Vec<SegResp>,
    staging: wgpu::Buffer,
    staging_words: usize,
}

/// Offsets (f32 words) of each part of the flat parameter buffer; see e_step.wgsl.
#[derive(Debug, Clone, Copy)]
struct ParamLayout {
    alpha: usize,
    means: usize,
    prec: usize,
    norm: usize,
    fill: usize,
    total: usize,
}

impl ParamLayout {
    fn new(k: usize, p: usize, tl: usize, n_patterns: usize) -> Self {
        let alpha = k;
        let means = alpha + k * tl;
        let prec = means + k * p;
        let norm = prec + n_patterns * k * p * p;
        let fill = norm + n_patterns * k;
        ParamLayout { alpha, means, prec, norm, fill, total: fill + n_patterns * k * p * p }
    }
}

fn n_entries(p: usize) -> usize {
    p + p * (p + 1) / 2
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Gpu(format!("{what} ({v}) does not fit the kernels' 32-bit indices")))
}

impl GpuData {
    fn dims(&self, seg: &Segment, k: usize, chunk_rows: usize, l: &ParamLayout) -> Result<Dims> {
        Ok(Dims {
            n: to_u32(seg.n, "rows per segment")?,
            p: self.p as u32,
            k: to_u32(k, "classes")?,
            j: self.j as u32,
            tl: to_u32(self.tl, "categorical levels")?,
            n_patterns: to_u32(self.n_patterns, "missing-value patterns")?,
            off_alpha: to_u32(l.alpha, "parameter size")?,
            off_means: to_u32(l.means, "parameter size")?,
            off_prec: to_u32(l.prec, "parameter size")?,
            off_norm: to_u32(l.norm, "parameter size")?,
            off_fill: to_u32(l.fill, "parameter size")?,
            chunk_rows: chunk_rows as u32,
            off_observed: self.off_observed as u32,
            _pad: [0; 3],
        })
    }
}

/// Runs of row indices sharing a level of one categorical column, or a pattern, at most
/// `unit` long: the work items of the `counts` kernel.
fn count_units(data: &MixtureData, lo: usize, n: usize, unit: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let (j, tl) = (data.n_cat(), data.total_levels());
    let offsets = data.level_offsets();
    let n_slots = tl + data.patterns.len();
    let slot_of = |i: usize, c: usize| -> Option<usize> {
        if c == j {
            return Some(tl + data.pattern[i] as usize);
        }
        let code = data.codes[i * j + c];
        (code != MISSING_CODE).then(|| offsets[c] + code as usize)
    };
    let mut len = vec![0usize; n_slots];
    for i in lo..lo + n {
        for c in 0..=j {
            if let Some(s) = slot_of(i, c) {
                len[s] += 1;
            }
        }
    }
    let mut first = vec![0usize; n_slots + 1];
    for s in 0..n_slots {
        first[s + 1] = first[s] + len[s];
    }
    let mut members = vec![0u32; first[n_slots]];
    let mut fill = first.clone();
    for i in lo..lo + n {
        for c in 0..=j {
            if let Some(s) = slot_of(i, c) {
                members[fill[s]] = (i - lo) as u32;
                fill[s] += 1;
            }
        }
    }
    let (mut units, mut slots) = (Vec::new(), Vec::new());
    for s in 0..n_slots {
        let mut at = first[s];
        while at < first[s + 1] {
            let l = unit.min(first[s + 1] - at);
            units.extend([at as u32, l as u32]);
            slots.push(s as u32);
            at += l;
        }
    }
    (units, members, slots)
}

impl GpuBackend {
    fn segment_rows(&self, p: usize, j: usize) -> usize {
        let widest = p.max(j + 1).max(SEGMENT_K) as u64 * 4;
        let by_limit = (self.gpu.max_binding() / widest).max(1) as usize;
        self.segment_rows.map_or(by_limit, |r| r.min(by_limit))
    }

    /// Writes a model's parameters into its buffer, in the layout of e_step.wgsl.
    fn write_params(&self, params: &KernelParams, resp: &GpuResp) {
        let l = resp.layout;
        let mut flat = vec![0f32; l.total];
        let mut put = |at: usize, v: &[f64]| flat[at..at + v.len()].iter_mut().zip(v).for_each(|(d, &s)| *d = s as f32);
        put(0, &params.log_weights);
        put(l.alpha, &params.log_alpha);
        put(l.means, &params.means);
        put(l.prec, &params.prec_chol);
        put(l.norm, &params.log_norm);
        put(l.fill, &params.fill);
        self.gpu.write(&resp.params, 0, bytemuck::cast_slice(&flat));
    }

    /// One EM step for every model: the E-step (`e`) and/or the statistics (`stats`), all in
    /// one command buffer, then one wait and one read-back per model.
    fn run(
        &self,
        data: &GpuData,
        models: &[(&KernelParams, &GpuResp)],
        e: bool,
        stats: bool,
    ) -> Result<Vec<(EStepSummary, Option<SuffStats>)>> {
        for (params, resp) in models.iter() {
            params.check(resp.k, data.p, data.n_patterns, data.tl)?;
        }
        let (ke, km, kc) = (self.kernel(Which::EStep)?, self.kernel(Which::Moments)?, self.kernel(Which::Counts)?);
        let raw = self.gpu.checked("EM iteration", || -> Result<Vec<Vec<f32>>> {
            for (params, resp) in models.iter() {
                self.write_params(params, resp);
            }
            let mut encoder = self.gpu.encoder();
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                for (_, resp) in models.iter() {
                    for (seg, sr) in data.segments.iter().zip(&resp.segs) {
                        if e {
                            pass.set_pipeline(&ke.pipeline);
                            pass.set_bind_group(0, &sr.e_bind, &[]);
                            pass.dispatch_workgroups(sr.e_grid.0, sr.e_grid.1, 1);
                        }
                        if stats {
                            pass.set_pipeline(&km.pipeline);
                            pass.set_bind_group(0, &sr.m_bind, &[]);
                            pass.dispatch_workgroups(sr.chunks as u32, resp.k as u32, 1);
                            pass.set_pipeline(&kc.pipeline);
                            pass.set_bind_group(0, &sr.c_bind, &[]);
                            let (gx, gy) = self.gpu.grid(seg.unit_slot.len());
                            pass.dispatch_workgroups(gx, gy, resp.k as u32);
                        }
                    }
                }
            }
            for (_, resp) in models.iter() {
                for sr in &resp.segs {
                    let copy = |enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, at: usize| {
                        enc.copy_buffer_to_buffer(src, 0, &resp.staging, (at * 4) as u64, src.size());
                    };
                    if e {
                        copy(&mut encoder, &sr.partial, sr.at_partial);
                    }
                    if stats {
                        copy(&mut encoder, &sr.moments, sr.at_moments);
                        copy(&mut encoder, &sr.counts, sr.at_counts);
                    }
                }
            }
            let staging: Vec<(&wgpu::Buffer, usize)> =
                models.iter().map(|(_, r)| (&r.staging, r.staging_words)).collect();
            self.gpu.submit_and_read(encoder, &staging)
        })??;
        let mut out = Vec::with_capacity(models.len());
        for ((params, resp), words) in models.iter().zip(raw) {
            let mut summary = EStepSummary::default();
            let mut st = stats.then(|| SuffStats::zeros(resp.k, data.p, data.tl, data.n_patterns));
            for (seg, sr) in data.segments.iter().zip(&resp.segs) {
                if e {
                    let groups = (sr.e_grid.0 * sr.e_grid.1) as usize;
                    for g in 0..groups {
                        summary.loglik += words[sr.at_partial + 2 * g] as f64;
                        summary.entropy += words[sr.at_partial + 2 * g + 1] as f64;
                    }
                }
                if let Some(st) = st.as_mut() {
                    reduce_stats(data, seg, sr, resp.k, &words, st);
                }
            }
            if e && !summary.loglik.is_finite() {
                return Err(self.non_finite(data, resp, params.k));
            }
            if let Some(st) = st.as_mut() {
                for kk in 0..resp.k {
                    st.nk[kk] = st.pattern_mass[kk * data.n_patterns..(kk + 1) * data.n_patterns].iter().sum();
                }
            }
            out.push((summary, st));
        }
        Ok(out)
    }

    fn non_finite(&self, data: &GpuData, resp: &GpuResp, k: usize) -> Error {
        let row = self.read_posteriors(data, resp).ok().and_then(|p| p.row_loglik.iter().position(|v| !v.is_finite()));
        super::non_finite(row, k)
    }
}

/// Adds one segment's moment and count partials (f32) to `st` in f64.
fn reduce_stats(data: &GpuData, seg: &Segment, sr: &SegResp, k: usize, words: &[f32], st: &mut SuffStats) {
    let p = data.p;
    let ne = n_entries(p);
    for c in 0..sr.chunks {
        for kk in 0..k {
            let base = sr.at_moments + (c * k + kk) * ne;
            for a in 0..p {
                st.sum_d[kk * p + a] += words[base + a] as f64;
            }
            let dd = &mut st.sum_dd[kk * p * p..(kk + 1) * p * p];
            let mut t = base + p;
            for a in 0..p {
                for b in a..p {
                    let v = words[t] as f64;
                    dd[a * p + b] += v;
                    if a != b {
                        dd[b * p + a] += v;
                    }
                    t += 1;
                }
            }
        }
    }
    for (u, &slot) in seg.unit_slot.iter().enumerate() {
        let slot = slot as usize;
        for kk in 0..k {
            let v = words[sr.at_counts + u * k + kk] as f64;
            if slot < data.tl {
                st.cat[kk * data.tl + slot] += v;
            } else {
                st.pattern_mass[kk * data.n_patterns + slot - data.tl] += v;
            }
        }
    }
}

impl Backend for GpuBackend {
    type Data = GpuData;
    type Resp = GpuResp;

    fn describe(&self) -> String {
        format!("gpu: {}", self.gpu.summary.label())
    }

    fn upload(&self, data: &MixtureData) -> Result<GpuData> {
        let (n, p, j) = (data.n, data.p, data.n_cat());
        if n == 0 {
            return Err(Error::config("no rows to fit"));
        }
        if p > MAX_P {
            return Err(Error::Gpu(format!(
                "the GPU kernels take at most {MAX_P} continuous dimensions and this model has {p} \
                 (PCA dims + numeric columns); lower --pca-dims or use --device cpu"
            )));
        }
        let n_patterns = data.patterns.len();
        let mut tables: Vec<u32> = data.level_offsets().iter().map(|&o| o as u32).collect();
        let off_observed = tables.len();
        for mask in &data.patterns {
            tables.extend(mask.iter().map(|&o| o as u32));
        }
        let rows = self.segment_rows(p, j);
        self.gpu.checked("uploading the data", || {
            let tables = self.gpu.storage_with("tables", &tables);
            let mut segments = Vec::new();
            for lo in (0..n).step_by(rows) {
                let len = rows.min(n - lo);
                let x: Vec<f32> = data.x[lo * p..(lo + len) * p].iter().map(|&v| v as f32).collect();
                let mut info = Vec::with_capacity(len * (j + 1));
                for i in lo..lo + len {
                    info.push(data.pattern[i]);
                    info.extend_from_slice(&data.codes[i * j..(i + 1) * j]);
                }
                // Runs of at most 4,096 rows: long enough to amortise a workgroup, short enough
                // that f32 sums stay accurate and a large level still spreads over the GPU.
                let unit = 4096;
                let (units, members, unit_slot) = count_units(data, lo, len, unit);
                segments.push(Segment {
                    start: lo,
                    n: len,
                    x: self.gpu.storage_with("x", &x),
                    rowinfo: self.gpu.storage_with("rowinfo", &info),
                    units: self.gpu.storage_with("units", &units),
                    members: self.gpu.storage_with("members", &members),
                    unit_slot,
                });
            }
            GpuData { n, p, j, tl: data.total_levels(), n_patterns, off_observed, tables, segments }
        })
    }

    fn alloc_resp(&self, data: &GpuData, k: usize) -> Result<GpuResp> {
        let layout = ParamLayout::new(k, data.p, data.tl, data.n_patterns);
        let widest = data.segments.iter().map(|s| s.n).max().unwrap_or(0) as u64 * k as u64 * 4;
        if widest > self.gpu.max_binding() {
            return Err(Error::Gpu(format!(
                "K = {k} needs {widest} bytes of responsibilities per segment, more than this device \
                 binds ({}); ask for fewer classes or use --device cpu",
                self.gpu.max_binding()
            )));
        }
        let (ke, km, kc) = (self.kernel(Which::EStep)?, self.kernel(Which::Moments)?, self.kernel(Which::Counts)?);
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let ne = n_entries(data.p);
        let max_dim = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
        self.gpu.checked("allocating model buffers", || -> Result<GpuResp> {
            let params = self.gpu.buffer("params", (layout.total * 4) as u64, storage);
            let mut segs = Vec::new();
            let mut words = 0;
            for seg in &data.segments {
                let groups = seg.n.div_ceil(E_STEP_WG);
                let e_grid = self.gpu.grid(groups);
                let n_partial = 2 * (e_grid.0 * e_grid.1) as usize;
                let target = (MOMENTS_GROUPS / k).max(1);
                let chunk_rows = seg
                    .n
                    .div_ceil(target)
                    .max(seg.n.div_ceil(max_dim))
                    .next_multiple_of(MOMENTS_TILE)
                    .max(4 * MOMENTS_TILE);
                let chunks = seg.n.div_ceil(chunk_rows);
                let dims = self.gpu.uniform("dims", &data.dims(seg, k, chunk_rows, &layout)?);
                let resp = self.gpu.buffer("resp", (seg.n * k * 4) as u64, storage);
                let row_ll = self.gpu.buffer("row_ll", (seg.n * 4) as u64, storage);
                let partial = self.gpu.buffer("partial", (n_partial * 4) as u64, storage);
                let moments = self.gpu.buffer("moments", (chunks * k * ne * 4) as u64, storage);
                let counts = self.gpu.buffer("counts", (seg.unit_slot.len() * k * 4) as u64, storage);
                // Bindings 0-5 are shared by both mixture kernels (shaders/mixture.wgsl + resp).
                let common = [(0, &dims), (1, &seg.x), (2, &seg.rowinfo), (3, &data.tables), (4, &params), (5, &resp)];
                let e_bind = self.bind(&ke, "e_step", &[&common[..], &[(6, &row_ll), (7, &partial)]].concat());
                let m_bind = self.bind(&km, "moments", &[&common[..], &[(6, &moments)]].concat());
                let c_bind = self.bind(
                    &kc,
                    "counts",
                    &[(0, &dims), (5, &resp), (6, &counts), (7, &seg.units), (8, &seg.members)],
                );
                let at_partial = words;
                let at_moments = at_partial + (partial.size() / 4) as usize;
                let at_counts = at_moments + (moments.size() / 4) as usize;
                words = at_counts + (counts.size() / 4) as usize;
                segs.push(SegResp {
                    resp,
                    row_ll,
                    partial,
                    e_grid,
                    moments,
                    chunks,
                    counts,
                    e_bind,
                    m_bind,
                    c_bind,
                    at_partial,
                    at_moments,
                    at_counts,
                });
            }
            let staging = self.gpu.staging("staging", words);
            Ok(GpuResp { k, params, layout, segs, staging, staging_words: words })
        })?
    }

    fn set_resp(&self, data: &GpuData, resp: &mut GpuResp, values: &[f64]) -> Result<()> {
        let k = resp.k;
        if values.len() != data.n * k {
            return Err(Error::config(format!("set_resp: expected {} values, got {}", data.n * k, values.len())));
        }
        self.gpu.checked("writing responsibilities", || {
            for (seg, sr) in data.segments.iter().zip(&resp.segs) {
                let v: Vec<f32> = values[seg.start * k..(seg.start + seg.n) * k].iter().map(|&x| x as f32).collect();
                self.gpu.write(&sr.resp, 0, bytemuck::cast_slice(&v));
            }
        })
    }

    fn e_step(&self, data: &GpuData, params: &KernelParams, resp: &mut GpuResp) -> Result<EStepSummary> {
        Ok(self.run(data, &[(params, resp)], true, false)?.remove(0).0)
    }

    fn e_step_stats(
        &self,
        data: &GpuData,
        params: &KernelParams,
        resp: &mut GpuResp,
    ) -> Result<(EStepSummary, SuffStats)> {
        let (summary, stats) = self.run(data, &[(params, resp)], true, true)?.remove(0);
        Ok((summary, stats.expect("statistics requested")))
    }

    fn e_step_stats_batch(
        &self,
        data: &GpuData,
        models: &mut [(&KernelParams, &mut GpuResp)],
    ) -> Result<Vec<(EStepSummary, SuffStats)>> {
        let models: Vec<(&KernelParams, &GpuResp)> = models.iter().map(|(p, r)| (*p, &**r)).collect();
        Ok(self
            .run(data, &models, true, true)?
            .into_iter()
            .map(|(s, t)| (s, t.expect("statistics requested")))
            .collect())
    }

    fn m_stats(&self, data: &GpuData, params: &KernelParams, resp: &GpuResp) -> Result<SuffStats> {
        Ok(self.run(data, &[(params, resp)], false, true)?.remove(0).1.expect("statistics requested"))
    }

    fn read_posteriors(&self, data: &GpuData, resp: &GpuResp) -> Result<Posteriors> {
        let k = resp.k;
        let mut out = vec![0.0; data.n * k];
        let mut ll = vec![0.0; data.n];
        for (seg, sr) in data.segments.iter().zip(&resp.segs) {
            let words = seg.n * (k + 1);
            let got = self.gpu.checked("reading responsibilities", || {
                let staging = self.gpu.staging("posteriors", words);
                let mut enc = self.gpu.encoder();
                enc.copy_buffer_to_buffer(&sr.resp, 0, &staging, 0, (seg.n * k * 4) as u64);
                enc.copy_buffer_to_buffer(&sr.row_ll, 0, &staging, (seg.n * k * 4) as u64, (seg.n * 4) as u64);
                self.gpu.submit_and_read(enc, &[(&staging, words)])
            })??;
            let got = &got[0];
            for (d, &s) in out[seg.start * k..(seg.start + seg.n) * k].iter_mut().zip(&got[..seg.n * k]) {
                *d = s as f64;
            }
            for (d, &s) in ll[seg.start..seg.start + seg.n].iter_mut().zip(&got[seg.n * k..]) {
                *d = s as f64;
            }
        }
        Ok(Posteriors { k, resp: out, row_loglik: ll })
    }

    fn gram(&self, x: &[f32], n: usize, dim: usize) -> Result<Gram> {
        assert_eq!(x.len(), n * dim);
        let present = |i: usize| !x[i * dim].is_nan();
        if dim == 0 || !(0..n).any(present) {
            return Ok(Gram { rows: 0, dim, sum: vec![0.0; dim], xtx: vec![0.0; dim * dim] });
        }
        // The shift: the mean of the first rows, so the f32 sums are of centred values.
        let sample: Vec<f32> =
            (0..n).filter(|&i| present(i)).take(4096).flat_map(|i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        let block = (EMBED_BLOCK_BYTES.min(self.gpu.max_binding()) / (dim as u64 * 4)).max(1) as usize;
        let block = block.min(n);
        let mut pass = GramPass::new(self, dim, &sample)?;
        let mut rows_seen = 0;
        self.gpu.checked("Gram matrix", || -> Result<()> {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            let xbuf = self.gpu.buffer("gram.x", (block * dim * 4) as u64, storage);
            let mut staged: Vec<f32> = Vec::with_capacity(block * dim);
            for i in 0..n {
                if present(i) {
                    staged.extend_from_slice(&x[i * dim..(i + 1) * dim]);
                    rows_seen += 1;
                    if staged.len() == block * dim {
                        self.gpu.write(&xbuf, 0, bytemuck::cast_slice(&staged));
                        pass.add(&xbuf, None, staged.len() / dim);
                        staged.clear();
                    }
                }
            }
            if !staged.is_empty() {
                self.gpu.write(&xbuf, 0, bytemuck::cast_slice(&staged));
                pass.add(&xbuf, None, staged.len() / dim);
            }
            Ok(())
        })??;
        pass.finish(rows_seen)
    }

    fn project(&self, x: &[f32], n: usize, dim: usize, mean: &[f64], w: &[f64], d: usize) -> Result<Vec<f64>> {
        assert_eq!(x.len(), n * dim);
        assert_eq!(w.len(), dim * d);
        let mut out = vec![0.0; n * d];
        if d == 0 || n == 0 {
            return Ok(out);
        }
        let width = dim.max(d) as u64 * 4;
        let block = ((EMBED_BLOCK_BYTES.min(self.gpu.max_binding()) / width).max(1) as usize).min(n);
        let pass = ProjectPass::new(self, dim, mean, w, d, block)?;
        self.gpu.checked("projection", || -> Result<()> {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            let xbuf = self.gpu.buffer("project.x", (block * dim * 4) as u64, storage);
            for lo in (0..n).step_by(block) {
                let rows = block.min(n - lo);
                let src = &x[lo * dim..(lo + rows) * dim];
                let missing: Vec<usize> = (0..rows).filter(|&r| src[r * dim].is_nan()).collect();
                if missing.is_empty() {
                    self.gpu.write(&xbuf, 0, bytemuck::cast_slice(src));
                } else {
                    let mut clean = src.to_vec();
                    for &r in &missing {
                        clean[r * dim..(r + 1) * dim].fill(0.0);
                    }
                    self.gpu.write(&xbuf, 0, bytemuck::cast_slice(&clean));
                }
                let got = pass.run(&xbuf, rows)?;
                let dst = &mut out[lo * d..(lo + rows) * d];
                dst.iter_mut().zip(&got).for_each(|(o, &v)| *o = v as f64);
                for &r in &missing {
                    dst[r * d..(r + 1) * d].fill(f64::NAN);
                }
            }
            Ok(())
        })??;
        Ok(out)
    }
}

impl GpuBackend {
    /// [`Backend::gram`] of a resident matrix whose row i stands for `weights[i]` rows.
    pub fn gram_rows(&self, x: &DeviceRows, weights: &[f32]) -> Result<Gram> {
        assert_eq!(weights.len(), x.rows());
        let dim = x.cols();
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        if dim == 0 || total == 0.0 {
            return Ok(Gram { rows: 0, dim, sum: vec![0.0; dim], xtx: vec![0.0; dim * dim] });
        }
        let sample = x.read(0, x.rows().min(4096))?;
        let mut pass = GramPass::new(self, dim, &sample)?;
        self.gpu.checked("Gram matrix", || {
            for (buf, start, rows) in x.segments() {
                let wbuf = self.gpu.storage_with("gram.weights", &weights[start..start + rows]);
                pass.add(buf, Some(&wbuf), rows);
            }
        })?;
        pass.finish(total.round() as usize)
    }

    /// [`Backend::project`] of a resident matrix: rows × d scores, in f64.
    pub fn project_rows(&self, x: &DeviceRows, mean: &[f64], w: &[f64], d: usize) -> Result<Vec<f64>> {
        let dim = x.cols();
        assert_eq!(w.len(), dim * d);
        let mut out = Vec::with_capacity(x.rows() * d);
        if d == 0 || x.rows() == 0 {
            return Ok(vec![0.0; x.rows() * d]);
        }
        let most = x.segments().map(|(_, _, rows)| rows).max().unwrap_or(0);
        let pass = ProjectPass::new(self, dim, mean, w, d, most)?;
        self.gpu.checked("projection", || -> Result<()> {
            for (buf, _, rows) in x.segments() {
                out.extend(pass.run(buf, rows)?.into_iter().map(f64::from));
            }
            Ok(())
        })??;
        Ok(out)
    }
}

/// One PCA Gram accumulation on the device: row blocks (or resident segments) are added into
/// the same `GRAM_CHUNKS` slots about a shift, then the partials come back and are reduced in
/// f64.
struct GramPass<'a> {
    backend: &'a GpuBackend,
    kg: Arc<Kernel>,
    ks: Arc<Kernel>,
    dim: usize,
    n_tiles: usize,
    pairs: usize,
    /// The shift in f32 (what the device subtracts) and widened back.
    shift: Vec<f64>,
    shift_buf: wgpu::Buffer,
    out: wgpu::Buffer,
    sums: wgpu::Buffer,
    dims: wgpu::Buffer,
    unit: wgpu::Buffer,
    first: bool,
}

impl<'a> GramPass<'a> {
    /// `sample`: some rows (at least one), whose mean becomes the shift.
    fn new(backend: &'a GpuBackend, dim: usize, sample: &[f32]) -> Result<GramPass<'a>> {
        let mut shift = vec![0.0f64; dim];
        let n = sample.len() / dim;
        for row in sample.chunks_exact(dim) {
            shift.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
        }
        let shift32: Vec<f32> = shift.iter().map(|&s| (s / n as f64) as f32).collect();
        let (kg, ks) = (backend.kernel(Which::Gram)?, backend.kernel(Which::Sums)?);
        let n_tiles = dim.div_ceil(TILE);
        let pairs = n_tiles * (n_tiles + 1) / 2;
        let gpu = &backend.gpu;
        gpu.checked("Gram matrix", || {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
            GramPass {
                backend,
                kg,
                ks,
                dim,
                n_tiles,
                pairs,
                shift: shift32.iter().map(|&v| v as f64).collect(),
                shift_buf: gpu.storage_with("gram.shift", &shift32),
                out: gpu.buffer("gram.out", (GRAM_CHUNKS * pairs * TILE * TILE * 4) as u64, storage),
                sums: gpu.buffer("gram.sums", (GRAM_CHUNKS * dim * 4) as u64, storage),
                dims: gpu.uniform("gram.dims", &GramDims::default()),
                unit: gpu.storage_with("gram.unit", &[1.0f32]),
                first: true,
            }
        })
    }

    /// Adds the `rows` rows of `x`, each weighted by `weights` when given, and submits.
    fn add(&mut self, x: &wgpu::Buffer, weights: Option<&wgpu::Buffer>, rows: usize) {
        if rows == 0 {
            return;
        }
        let b = self.backend;
        let d = GramDims {
            n: rows as u32,
            dim: self.dim as u32,
            chunk_rows: rows.div_ceil(GRAM_CHUNKS) as u32,
            n_tiles: self.n_tiles as u32,
            accumulate: u32::from(!self.first),
            weighted: u32::from(weights.is_some()),
            _pad: [0; 2],
        };
        b.gpu.write(&self.dims, 0, bytemuck::bytes_of(&d));
        let w = weights.unwrap_or(&self.unit);
        let common = [(0, &self.dims), (1, x), (2, &self.shift_buf), (5, w)];
        let bg = b.bind(&self.kg, "gram", &[&common[..], &[(3, &self.out)]].concat());
        let bs = b.bind(&self.ks, "gram.sums", &[&common[..], &[(4, &self.sums)]].concat());
        let mut enc = b.gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.kg.pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(self.pairs as u32, GRAM_CHUNKS as u32, 1);
            pass.set_pipeline(&self.ks.pipeline);
            pass.set_bind_group(0, &bs, &[]);
            pass.dispatch_workgroups(self.dim.div_ceil(256) as u32, GRAM_CHUNKS as u32, 1);
        }
        b.gpu.queue.submit([enc.finish()]);
        self.first = false;
    }

    /// Reads the partials back and returns the raw moments of `rows` (weighted) rows.
    fn finish(self, rows: usize) -> Result<Gram> {
        let (dim, n_tiles, pairs) = (self.dim, self.n_tiles, self.pairs);
        let mut g = Gram { rows, dim, sum: vec![0.0; dim], xtx: vec![0.0; dim * dim] };
        if self.first {
            return Ok(g);
        }
        let gpu = &self.backend.gpu;
        let out_words = GRAM_CHUNKS * pairs * TILE * TILE;
        let words = gpu.checked("Gram matrix", || -> Result<Vec<f32>> {
            let staging = gpu.staging("gram.staging", out_words + GRAM_CHUNKS * dim);
            let mut enc = gpu.encoder();
            enc.copy_buffer_to_buffer(&self.out, 0, &staging, 0, self.out.size());
            enc.copy_buffer_to_buffer(&self.sums, 0, &staging, self.out.size(), (GRAM_CHUNKS * dim * 4) as u64);
            Ok(gpu.submit_and_read(enc, &[(&staging, out_words + GRAM_CHUNKS * dim)])?.remove(0))
        })??;
        // Σ w (x − s)(x − s)ᵀ and Σ w (x − s), reduced in f64 …
        let mut cyy = vec![0.0f64; dim * dim];
        let mut pair = 0;
        for ta in 0..n_tiles {
            for tb in ta..n_tiles {
                for c in 0..GRAM_CHUNKS {
                    let base = (c * pairs + pair) * TILE * TILE;
                    for r in 0..TILE.min(dim - ta * TILE) {
                        for q in 0..TILE.min(dim - tb * TILE) {
                            cyy[(ta * TILE + r) * dim + tb * TILE + q] += words[base + r * TILE + q] as f64;
                        }
                    }
                }
                pair += 1;
            }
        }
        let mut sy = vec![0.0f64; dim];
        for c in 0..GRAM_CHUNKS {
            for a in 0..dim {
                sy[a] += words[out_words + c * dim + a] as f64;
            }
        }
        // … then back to raw moments: Σ x xᵀ = Σ y yᵀ + (Σ y) sᵀ + s (Σ y)ᵀ + n s sᵀ, Σ x = Σ y + n s.
        let (m, shift) = (rows as f64, &self.shift);
        for a in 0..dim {
            for b in a..dim {
                let v = cyy[a * dim + b] + sy[a] * shift[b] + shift[a] * sy[b] + m * shift[a] * shift[b];
                g.xtx[a * dim + b] = v;
                g.xtx[b * dim + a] = v;
            }
            g.sum[a] = sy[a] + m * shift[a];
        }
        Ok(g)
    }
}

/// (X − m) W on the device for row blocks of at most `block` rows, read back per block.
struct ProjectPass<'a> {
    backend: &'a GpuBackend,
    kernel: Arc<Kernel>,
    dim: usize,
    d: usize,
    mean: wgpu::Buffer,
    w: wgpu::Buffer,
    bias: wgpu::Buffer,
    out: wgpu::Buffer,
    dims: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl<'a> ProjectPass<'a> {
    fn new(
        backend: &'a GpuBackend,
        dim: usize,
        mean: &[f64],
        w: &[f64],
        d: usize,
        block: usize,
    ) -> Result<ProjectPass<'a>> {
        let kernel = backend.kernel(Which::Project)?;
        let gpu = &backend.gpu;
        gpu.checked("projection", || {
            let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            ProjectPass {
                backend,
                kernel,
                dim,
                d,
                mean: gpu.storage_with("project.mean", &mean32),
                w: gpu.storage_with("project.w", &w32),
                bias: gpu.storage_with("project.bias", &vec![0f32; d]),
                out: gpu.buffer("project.out", (block * d * 4) as u64, storage),
                dims: gpu.uniform("project.dims", &ProjDims::default()),
                staging: gpu.staging("project.staging", block * d),
            }
        })
    }

    /// Projects the first `rows` rows of `x`; returns rows × d values.
    fn run(&self, x: &wgpu::Buffer, rows: usize) -> Result<Vec<f32>> {
        let (b, d) = (self.backend, self.d);
        let pd = ProjDims { n: rows as u32, dim: self.dim as u32, d: d as u32, gelu: 0 };
        b.gpu.write(&self.dims, 0, bytemuck::bytes_of(&pd));
        let bind = b.bind(
            &self.kernel,
            "project",
            &[(0, &self.dims), (1, x), (2, &self.mean), (3, &self.w), (4, &self.out), (5, &self.bias)],
        );
        let (gx, gy) = b.gpu.grid(rows.div_ceil(TILE));
        let mut enc = b.gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, d.div_ceil(TILE) as u32);
        }
        enc.copy_buffer_to_buffer(&self.out, 0, &self.staging, 0, (rows * d * 4) as u64);
        Ok(b.gpu.submit_and_read(enc, &[(&self.staging, rows * d)])?.remove(0))
    }
}
