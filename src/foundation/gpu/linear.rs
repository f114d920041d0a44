//! Linear algebra on the device that knows no model: the Gram matrix (column sums and XᵀX about
//! a shift, the PCA covariance) and the projection (X − m) W, on rows resident on the device
//! ([`DeviceRows`]; `foundation::vectors` puts host rows there once). f32 on the device,
//! per-chunk partials reduced in f64 on the host.
//!
//! Shaders: `gram.wgsl` (entry points `gram` and `column_sums`) and `project.wgsl` (also the
//! sentence encoder's linear layers, with GELU). Missing rows (NaN) are never uploaded: shaders never see NaN.

use std::sync::Arc;

use super::{DeviceRows, Gpu, Kernel, Reference, UniformLayout, reference, uniform_layout};
use crate::foundation::error::Result;
use crate::foundation::linalg::Gram;

/// `shaders/gram.wgsl` (entry points `gram` and `column_sums`).
pub const GRAM: &str = include_str!("../../../shaders/gram.wgsl");
/// `shaders/project.wgsl`: (X − m) W + b as a tiled matmul, GELU optional.
pub const PROJECT: &str = include_str!("../../../shaders/project.wgsl");
/// Output tile side of `gram` and `project` (`TS` in both).
pub const TILE: usize = 64;
/// Row chunks the Gram accumulates into (partials reduced on the host).
const GRAM_CHUNKS: usize = 32;

/// Uniform `GramDims` of gram.wgsl. Keep in sync with the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GramDims {
    pub n: u32,
    pub dim: u32,
    pub chunk_rows: u32,
    pub n_tiles: u32,
    pub accumulate: u32,
    /// Rows carry weights (`weights` binding) instead of 1.
    pub weighted: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<GramDims>() == 32);

/// Uniform `ProjDims` of project.wgsl. Keep in sync with the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ProjDims {
    pub n: u32,
    pub dim: u32,
    pub d: u32,
    /// Apply GELU to the result (the encoder's first feed-forward layer).
    pub gelu: u32,
}
const _: () = assert!(std::mem::size_of::<ProjDims>() == 16);

/// These kernels by file stem, for the shader tests.
pub const SHADERS: [(&str, &str); 2] = [("gram", GRAM), ("project", PROJECT)];
/// Host-side layouts (size and field offsets) of the uniform structs, by WGSL name, for the
/// layout test.
pub const UNIFORMS: [UniformLayout; 2] = [
    uniform_layout!(GramDims { n, dim, chunk_rows, n_tiles, accumulate, weighted }),
    uniform_layout!(ProjDims { n, dim, d, gelu }),
];
/// Every entry point of these kernels and its CPU reference.
pub const REFERENCES: [Reference; 3] = [
    reference!("gram", crate::foundation::reference, gram),
    reference!("gram", crate::foundation::reference, column_sums),
    reference!("project", crate::foundation::reference, project),
];
/// Host-side values of shader constants, by (kernel, WGSL name), for the layout test.
pub const CONSTANTS: [(&str, &str, u32); 2] = [("gram", "TS", TILE as u32), ("project", "TS", TILE as u32)];

/// The `project` kernel (the encoder's linear layers dispatch it themselves).
pub fn project_kernel(gpu: &Gpu) -> Result<Arc<Kernel>> {
    gpu.kernel("project", PROJECT, "project")
}

/// Column sums and XᵀX of a resident matrix whose row i stands for `weights[i]` rows (rows
/// of weight 0 add nothing).
pub fn gram_rows(x: &DeviceRows, weights: &[f32]) -> Result<Gram> {
    let gpu = x.gpu();
    assert_eq!(weights.len(), x.rows());
    let dim = x.cols();
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    if dim == 0 || total == 0.0 {
        return Ok(Gram::zeros(dim));
    }
    let sample = x.read(0, x.rows().min(4096))?;
    let mut pass = GramPass::new(gpu, dim, &sample)?;
    gpu.checked("Gram matrix", || {
        for (buf, start, rows) in x.segments() {
            let wbuf = gpu.storage_with("gram.weights", &weights[start..start + rows]);
            pass.add(buf, Some(&wbuf), rows);
        }
    })?;
    pass.finish(total.round() as usize)
}

/// (X − m) W of a resident matrix: rows × d scores, in f64.
pub fn project_rows(x: &DeviceRows, mean: &[f64], w: &[f64], d: usize) -> Result<Vec<f64>> {
    let gpu = x.gpu();
    let dim = x.cols();
    assert_eq!(w.len(), dim * d);
    let mut out = Vec::with_capacity(x.rows() * d);
    if d == 0 || x.rows() == 0 {
        return Ok(vec![0.0; x.rows() * d]);
    }
    let most = x.segments().map(|(_, _, rows)| rows).max().unwrap_or(0);
    let pass = ProjectPass::new(gpu, dim, mean, w, d, most)?;
    gpu.checked("projection", || -> Result<()> {
        for (buf, _, rows) in x.segments() {
            out.extend(pass.run(buf, rows)?.into_iter().map(f64::from));
        }
        Ok(())
    })??;
    Ok(out)
}

/// One PCA Gram accumulation on the device: row blocks (or resident segments) are added into
/// the same `GRAM_CHUNKS` slots about a shift, then the partials come back and are reduced in
/// f64.
struct GramPass<'a> {
    gpu: &'a Gpu,
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
    fn new(gpu: &'a Gpu, dim: usize, sample: &[f32]) -> Result<GramPass<'a>> {
        let mut shift = vec![0.0f64; dim];
        let n = sample.len() / dim;
        for row in sample.chunks_exact(dim) {
            shift.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
        }
        let shift32: Vec<f32> = shift.iter().map(|&s| (s / n as f64) as f32).collect();
        let (kg, ks) = (gpu.kernel("gram.gram", GRAM, "gram")?, gpu.kernel("gram.column_sums", GRAM, "column_sums")?);
        let n_tiles = dim.div_ceil(TILE);
        let pairs = n_tiles * (n_tiles + 1) / 2;
        gpu.checked("Gram matrix", || {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
            GramPass {
                gpu,
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
        let gpu = self.gpu;
        let d = GramDims {
            n: rows as u32,
            dim: self.dim as u32,
            chunk_rows: rows.div_ceil(GRAM_CHUNKS) as u32,
            n_tiles: self.n_tiles as u32,
            accumulate: u32::from(!self.first),
            weighted: u32::from(weights.is_some()),
            _pad: [0; 2],
        };
        gpu.write(&self.dims, 0, bytemuck::bytes_of(&d));
        let w = weights.unwrap_or(&self.unit);
        let common = [(0, &self.dims), (1, x), (2, &self.shift_buf), (5, w)];
        let bg = gpu.bind(&self.kg, "gram", &[&common[..], &[(3, &self.out)]].concat());
        let bs = gpu.bind(&self.ks, "gram.sums", &[&common[..], &[(4, &self.sums)]].concat());
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.kg.pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(self.pairs as u32, GRAM_CHUNKS as u32, 1);
            pass.set_pipeline(&self.ks.pipeline);
            pass.set_bind_group(0, &bs, &[]);
            pass.dispatch_workgroups(self.dim.div_ceil(256) as u32, GRAM_CHUNKS as u32, 1);
        }
        gpu.queue.submit([enc.finish()]);
        self.first = false;
    }

    /// Reads the partials back and returns the raw moments of `rows` (weighted) rows.
    fn finish(self, rows: usize) -> Result<Gram> {
        let (dim, n_tiles, pairs) = (self.dim, self.n_tiles, self.pairs);
        let mut g = Gram { rows, ..Gram::zeros(dim) };
        if self.first {
            return Ok(g);
        }
        let gpu = self.gpu;
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
    gpu: &'a Gpu,
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
    fn new(gpu: &'a Gpu, dim: usize, mean: &[f64], w: &[f64], d: usize, block: usize) -> Result<ProjectPass<'a>> {
        let kernel = project_kernel(gpu)?;
        gpu.checked("projection", || {
            let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            ProjectPass {
                gpu,
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
        let (gpu, d) = (self.gpu, self.d);
        let pd = ProjDims { n: rows as u32, dim: self.dim as u32, d: d as u32, gelu: 0 };
        gpu.write(&self.dims, 0, bytemuck::bytes_of(&pd));
        let bind = gpu.bind(
            &self.kernel,
            "project",
            &[(0, &self.dims), (1, x), (2, &self.mean), (3, &self.w), (4, &self.out), (5, &self.bias)],
        );
        let (gx, gy) = gpu.grid(rows.div_ceil(TILE));
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, d.div_ceil(TILE) as u32);
        }
        enc.copy_buffer_to_buffer(&self.out, 0, &self.staging, 0, (rows * d * 4) as u64);
        Ok(gpu.submit_and_read(enc, &[(&self.staging, rows * d)])?.remove(0))
    }
}
