//! Foundations: what every layer above may use and what knows no model — errors, named options, the seeded
//! RNG, dense linear algebra (Cholesky, eigen, the GEMM wrapper), partition metrics, a host
//! matrix type, row vectors on the host or a device with the Gram matrix and projection run
//! where they live ([`vectors`]), CPU references of the toolkit's kernels ([`reference`](mod@reference)),
//! small statistics, thread-count-independent reductions, the binary framing of messages between
//! processes ([`wire`]), and the GPU device toolkit. Nothing
//! here imports another segmix module.

pub mod choice;
pub mod error;
pub mod folder;
pub mod fs;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod guard;
pub mod linalg;
pub mod matrix;
pub mod metrics;
pub mod par;
pub mod reference;
pub mod rng;
pub mod stats;
pub mod vectors;
pub mod wire;

/// The code of a missing categorical value, shared by the table, the kernels (`MISSING` in
/// `e_step.wgsl`) and the model.
pub const MISSING_CODE: u32 = u32::MAX;
