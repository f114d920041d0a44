//! Features: what the mixture sees of a table. The text column's sentence vectors (on the host,
//! or resident on the GPU where the encoder left them or the backend put them) are reduced by a
//! PCA ([`reduce`]); numeric columns are transformed (`--log`, `--log1p`) and standardized;
//! categorical columns become codes. [`schema::Schema`] is learned on a fit and applied
//! unchanged on predict.

pub mod reduce;
pub mod schema;

use std::path::PathBuf;

use crate::backend::Backend;
use crate::data::Table;
use crate::foundation::error::Result;
use crate::foundation::matrix::Matrix;
use crate::foundation::vectors::Vectors;

/// The text column's vectors, and where they came from (named in messages: a file, or the
/// sentence embedder).
#[derive(Debug)]
pub struct TextVectors {
    pub source: PathBuf,
    pub vectors: Vectors,
}

impl TextVectors {
    /// Vectors read from `source`, one row per table row: a row whose text cell is empty has no
    /// vector, whatever the file holds (when the row counts differ the schema reports it).
    pub fn from_file(source: PathBuf, matrix: Matrix, table: &Table) -> TextVectors {
        let mut vectors = Vectors::host(matrix);
        if let Some(text) = table.text.as_ref().filter(|_| vectors.rows() == table.n_rows) {
            vectors.mask(|i| text.values[i].is_none());
        }
        TextVectors { source, vectors }
    }

    /// The same vectors where `backend` computes (uploaded once to a GPU), so the PCA's Gram
    /// matrix and projection both run there.
    pub fn placed<B: Backend>(self, backend: &B) -> Result<TextVectors> {
        Ok(TextVectors { source: self.source, vectors: backend.place(self.vectors)? })
    }
}
