//! The mixture kernels' registry: their WGSL sources embedded once, the host mirrors of their
//! uniform structs, and the constants both sides must agree on. `tests/environment.rs` parses every file under
//! `shaders/` with naga and checks these mirrors against it, so a drifted layout fails a test
//! rather than corrupting a fit.

use crate::foundation::gpu::{Reference, UniformLayout, reference, uniform_layout};

/// `shaders/mixture.wgsl`: the declarations the mixture kernels share, prepended to each.
pub const MIXTURE_PRELUDE: &str = include_str!("../../../shaders/mixture.wgsl");
/// `shaders/e_step.wgsl` after the prelude (entry point `e_step`).
pub const E_STEP: &str =
    concat!(include_str!("../../../shaders/mixture.wgsl"), include_str!("../../../shaders/e_step.wgsl"));
/// `shaders/m_stats.wgsl` (entry points `moments` and `counts`) after the prelude.
pub const M_STATS: &str =
    concat!(include_str!("../../../shaders/mixture.wgsl"), include_str!("../../../shaders/m_stats.wgsl"));

/// The mixture kernels by file stem, as compiled (prelude included). The Gram and projection
/// kernels are `foundation::gpu::linear`'s, the encoder's `encoders::gpu`'s.
pub const SHADERS: [(&str, &str); 2] = [("e_step", E_STEP), ("m_stats", M_STATS)];

/// Every entry point of these kernels and its CPU reference.
pub const REFERENCES: [Reference; 3] = [
    reference!("e_step", crate::backend::reference, e_step),
    reference!("m_stats", crate::backend::reference, moments),
    reference!("m_stats", crate::backend::reference, counts),
];

/// Widest continuous block the mixture kernels take (`MAX_P` in e_step.wgsl and m_stats.wgsl).
pub const MAX_P: usize = 64;
/// Rows per workgroup of `e_step` (`WG` in e_step.wgsl).
pub const E_STEP_WG: usize = 128;
/// Rows per workgroup-memory tile of `moments` (`T` in m_stats.wgsl).
pub const MOMENTS_TILE: usize = 32;
/// Value of a missing category code (`MISSING` in e_step.wgsl); equals `foundation::MISSING_CODE`.
pub const MISSING: u32 = 0xffff_ffff;
const _: () = assert!(MISSING == crate::foundation::MISSING_CODE);

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

/// Host-side layouts (size and field offsets) of the uniform structs, by WGSL name, for the
/// layout test.
pub const UNIFORMS: [UniformLayout; 1] = [uniform_layout!(Dims {
    n,
    p,
    k,
    j,
    tl,
    n_patterns,
    off_alpha,
    off_means,
    off_prec,
    off_norm,
    off_fill,
    chunk_rows,
    off_observed
})];

/// Host-side values of shader constants, by (kernel, WGSL name), for the layout test.
pub const CONSTANTS: [(&str, &str, u32); 4] = [
    ("e_step", "MAX_P", MAX_P as u32),
    ("e_step", "WG", E_STEP_WG as u32),
    ("e_step", "MISSING", MISSING),
    ("m_stats", "T", MOMENTS_TILE as u32),
];
