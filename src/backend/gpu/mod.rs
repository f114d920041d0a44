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
//! ## Kernels (`shaders/`, each entry point with its CPU reference in [`super::reference`])
//! * `e_step.wgsl` — one invocation per row: log-densities of every class, online log-sum-exp,
//!   responsibilities, row log-likelihood, and a workgroup reduction of Σ lse and the entropy.
//! * `m_stats.wgsl` — `moments`: Σ r d̂ and Σ r d̂ d̂ᵀ about the class means, per (row chunk,
//!   class), rows staged through workgroup memory; `counts`: Σ r over runs of rows that share a
//!   categorical level or a missing-value pattern.
//! * `gram` and `project` — the PCA's Gram matrix and projection, from the device toolkit
//!   (`foundation::gpu::linear`), which the sentence encoder shares.
//!
//! Shaders never see NaN (WGSL lets implementations assume there is none): missing continuous
//! values are 0 with a pattern mask.

pub mod kernels;

use std::sync::Arc;

use kernels::{Dims, E_STEP_WG, MAX_P, MOMENTS_TILE};

use super::{Backend, EStepSummary, KernelParams, MixtureData, Pass, Posteriors, SuffStats, Vectors};
use crate::foundation::MISSING_CODE;
use crate::foundation::error::{Error, Result};
use crate::foundation::gpu::{AdapterPolicy, AdapterSummary, Gpu, Kernel};

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
        self.gpu.adapter()
    }

    /// The open device, shared with the GPU sentence encoder.
    pub fn device(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn kernel(&self, which: Which) -> Result<Arc<Kernel>> {
        let (name, src, entry) = match which {
            Which::EStep => ("e_step", kernels::E_STEP, "e_step"),
            Which::Moments => ("m_stats.moments", kernels::M_STATS, "moments"),
            Which::Counts => ("m_stats.counts", kernels::M_STATS, "counts"),
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
    /// one command buffer, then one wait and one read-back per model. One body (about 80
    /// lines): recording every dispatch of every model before the single submit is the point.
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

    fn e_step(
        &self,
        data: &GpuData,
        models: &mut [(&KernelParams, &mut GpuResp)],
        pass: Pass,
    ) -> Result<Vec<(EStepSummary, Option<SuffStats>)>> {
        let models: Vec<(&KernelParams, &GpuResp)> = models.iter().map(|(p, r)| (*p, &**r)).collect();
        self.run(data, &models, true, pass == Pass::WithStats)
    }

    fn m_stats(&self, data: &GpuData, params: &KernelParams, resp: &GpuResp) -> Result<SuffStats> {
        self.run(data, &[(params, resp)], false, true)?.remove(0).1.ok_or_else(super::missing_stats)
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

    fn place(&self, vectors: Vectors) -> Result<Vectors> {
        vectors.to_device(&self.gpu)
    }
}
