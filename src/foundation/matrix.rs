//! A dense row-major f32 matrix on the host: sentence vectors, read from disk or computed.

/// `rows × cols` values, row-major. A missing row (no text) is all-`NaN`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
    pub fn row_missing(&self, i: usize) -> bool {
        self.row(i).first().is_none_or(|v| v.is_nan())
    }
}
