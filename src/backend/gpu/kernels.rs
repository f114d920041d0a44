//! The shader registry: every WGSL source embedded once, the host mirrors of their uniform
//! structs, and the constants both sides must agree on. `tests/environment.rs` parses every file under
//! `shaders/` with naga and checks these mirrors against it, so a drifted layout fails a test
//! rather than corrupting a fit.

/// `shaders/mixture.wgsl`: the declarations the mixture kernels share, prepended to each.
pub const MIXTURE_PRELUDE: &str = include_str!("../../../shaders/mixture.wgsl");
/// `shaders/e_step.wgsl` after the prelude, twin of `backend::cpu::e_step_block`.
pub const E_STEP: &str =
    concat!(include_str!("../../../shaders/mixture.wgsl"), include_str!("../../../shaders/e_step.wgsl"));
/// `shaders/m_stats.wgsl` (entry points `moments` and `counts`) after the prelude, twin of
/// `backend::cpu::m_stats_block`.
pub const M_STATS: &str =
    concat!(include_str!("../../../shaders/mixture.wgsl"), include_str!("../../../shaders/m_stats.wgsl"));
/// `shaders/gram.wgsl` (entry points `gram` and `column_sums`), twin of `backend::cpu::gram_block`.
pub const GRAM: &str = include_str!("../../../shaders/gram.wgsl");
/// `shaders/project.wgsl`, twin of `CpuBackend::project`; also the encoder's linear layers.
pub const PROJECT: &str = include_str!("../../../shaders/project.wgsl");

/// Every kernel by file stem, as compiled (prelude included).
pub const SHADERS: [(&str, &str); 5] =
    [("e_step", E_STEP), ("m_stats", M_STATS), ("gram", GRAM), ("project", PROJECT), ("bert", crate::embed::gpu::BERT)];

/// Widest continuous block the mixture kernels take (`MAX_P` in e_step.wgsl and m_stats.wgsl).
pub const MAX_P: usize = 64;
/// Rows per workgroup of `e_step` (`WG` in e_step.wgsl).
pub const E_STEP_WG: usize = 128;
/// Rows per workgroup-memory tile of `moments` (`T` in m_stats.wgsl).
pub const MOMENTS_TILE: usize = 32;
/// Output tile side of `gram` and `project` (`TS` in both).
pub const TILE: usize = 64;
/// Value of a missing category code (`MISSING` in e_step.wgsl); equals `data::MISSING_CODE`.
pub const MISSING: u32 = 0xffff_ffff;
const _: () = assert!(MISSING == crate::data::MISSING_CODE);

/// A compiled compute pipeline and its (shader-derived) bind group layout.
#[derive(Debug)]
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Uniform `Dims` of e_step.wgsl and m_stats.wgsl. Keep in sync with both shaders.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    pub n: u32,
    pub p: u32,
    pub k: u32,
    pub j: u32,
    pub tl: u32,
    pub n_patterns: u32,
    pub off_alpha: u32,
    pub off_means: u32,
    pub off_prec: u32,
    pub off_norm: u32,
    pub off_fill: u32,
    pub chunk_rows: u32,
    pub off_observed: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Dims>() == 64);

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

/// Host-side sizes of the uniform structs, by WGSL name, for the layout test.
pub const UNIFORMS: [(&str, usize); 4] = [
    ("Dims", std::mem::size_of::<Dims>()),
    ("GramDims", std::mem::size_of::<GramDims>()),
    ("ProjDims", std::mem::size_of::<ProjDims>()),
    ("BertDims", std::mem::size_of::<crate::embed::gpu::BertDims>()),
];

/// Host-side values of shader constants, by (kernel, WGSL name), for the layout test.
pub const CONSTANTS: [(&str, &str, u32); 6] = [
    ("e_step", "MAX_P", MAX_P as u32),
    ("e_step", "WG", E_STEP_WG as u32),
    ("e_step", "MISSING", MISSING),
    ("m_stats", "T", MOMENTS_TILE as u32),
    ("gram", "TS", TILE as u32),
    ("project", "TS", TILE as u32),
];
