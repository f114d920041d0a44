//! Features: what the mixture sees of a table. The text column's sentence vectors (on the host,
//! or resident on the GPU where the encoder left them) are reduced by a PCA ([`reduce`]); numeric
//! columns are transformed (`--log`, `--log1p`) and standardized; categorical columns become
//! codes. [`schema::Schema`] is learned on a fit and applied unchanged on predict.

pub mod reduce;
pub mod schema;

#[cfg(feature = "gpu")]
use crate::encoders::Resident;
use crate::foundation::matrix::Matrix;

/// The text column's vectors: on the host (read from a file, or from the CPU encoder), or on
/// the GPU where the encoder left them (the PCA then runs there).
#[derive(Debug)]
pub enum TextVectors {
    /// One row per table row, all-NaN rows for missing texts; `source` names them in messages.
    Host { source: std::path::PathBuf, matrix: Matrix },
    /// Distinct vectors resident on the device, with each table row's.
    #[cfg(feature = "gpu")]
    Device(Resident),
}
