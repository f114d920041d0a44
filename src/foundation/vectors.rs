//! Row vectors (sentence embeddings) where the work runs on them — on the host, or resident on a
//! GPU — with the map from a table's rows to the stored rows, and the two operations the PCA
//! needs on them: the Gram matrix and the projection.
//!
//! A [`Vectors`] stores each distinct vector once (the GPU encoder stores one per distinct
//! text; a file's matrix is stored as read) and maps every table row to its stored row, or to
//! none when the row has no vector. [`Vectors::gram`] weighs each stored row by the table rows
//! that map to it, so duplicates count as often as they occur and rows without a vector not at
//! all; [`Vectors::project`] projects each stored row once and spreads the scores back to the
//! table's rows (NaN rows where there is no vector).
//!
//! Which store a fit uses is the backend's choice (`Backend::place`): the CPU backend keeps host
//! vectors where they are, the GPU backend uploads them once so that both the Gram matrix and
//! the projection run on the device, and the GPU encoder's vectors are already there. Host rows
//! run blocked GEMMs (rayon over fixed blocks reduced in a fixed tree: bit-for-bit reproducible);
//! device rows run `gram.wgsl` and `project.wgsl` (`foundation::gpu::linear`). Both are tested
//! against [`crate::foundation::reference`].

#[cfg(feature = "gpu")]
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use rayon::prelude::*;

use crate::foundation::error::Result;
#[cfg(feature = "gpu")]
use crate::foundation::gpu::{DeviceRows, Gpu, linear};
use crate::foundation::linalg::{Gram, matmul};
use crate::foundation::matrix::Matrix;
use crate::foundation::par::tree_reduce;

/// Host rows per block: the unit of parallel work and of the deterministic reduction tree.
const BLOCK: usize = 4096;
/// Host rows per GEMM chunk.
const CHUNK: usize = 128;
/// Host rows copied to the device at once when vectors move there.
#[cfg(feature = "gpu")]
const UPLOAD_ROWS: usize = 16384;

/// Where the stored rows live.
#[derive(Debug)]
pub enum Store {
    /// On the host; rows that no table row maps to may hold anything (NaN for a missing text).
    Host(Matrix),
    /// On a GPU (never NaN).
    #[cfg(feature = "gpu")]
    Device(DeviceRows),
}

/// Stored row vectors and each table row's stored row.
#[derive(Debug)]
pub struct Vectors {
    store: Store,
    row_of: Vec<Option<usize>>,
}

impl Vectors {
    /// One table row per row of `m`; rows whose first value is NaN have no vector.
    pub fn host(m: Matrix) -> Vectors {
        let row_of = (0..m.rows).map(|i| (!m.row_missing(i)).then_some(i)).collect();
        Vectors { store: Store::Host(m), row_of }
    }

    /// Rows resident on a device, and each table row's row among them.
    #[cfg(feature = "gpu")]
    pub fn device(rows: DeviceRows, row_of: Vec<Option<usize>>) -> Vectors {
        Vectors { store: Store::Device(rows), row_of }
    }

    /// Table rows.
    pub fn rows(&self) -> usize {
        self.row_of.len()
    }

    /// Vector width.
    pub fn cols(&self) -> usize {
        match &self.store {
            Store::Host(m) => m.cols,
            #[cfg(feature = "gpu")]
            Store::Device(d) => d.cols(),
        }
    }

    /// Stored rows.
    pub fn stored(&self) -> usize {
        match &self.store {
            Store::Host(m) => m.rows,
            #[cfg(feature = "gpu")]
            Store::Device(d) => d.rows(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Each table row's stored row (`None`: no vector).
    pub fn row_of(&self) -> &[Option<usize>] {
        &self.row_of
    }

    /// Drops the vectors of the table rows for which `missing(i)` holds (a text cell that is
    /// empty, whatever vector a file gave it).
    pub fn mask(&mut self, missing: impl Fn(usize) -> bool) {
        for (i, r) in self.row_of.iter_mut().enumerate() {
            if missing(i) {
                *r = None;
            }
        }
    }

    /// How many table rows each stored row stands for.
    pub fn weights(&self) -> Vec<f32> {
        let mut w = vec![0.0f32; self.stored()];
        for &r in self.row_of.iter().flatten() {
            w[r] += 1.0;
        }
        w
    }

    /// Column sums and XᵀX of the table rows' vectors (rows without one left out).
    pub fn gram(&self) -> Result<Gram> {
        let weights = self.weights();
        match &self.store {
            Store::Host(m) => Ok(host_gram(m, &weights)),
            #[cfg(feature = "gpu")]
            Store::Device(d) => linear::gram_rows(d, &weights),
        }
    }

    /// (v − m) W for every table row: rows × d scores, NaN rows without a vector. Each stored
    /// row is projected once.
    pub fn project(&self, mean: &[f64], w: &[f64], d: usize) -> Result<Vec<f64>> {
        let scores = match &self.store {
            Store::Host(m) => host_project(m, &self.weights(), mean, w, d),
            #[cfg(feature = "gpu")]
            Store::Device(rows) => linear::project_rows(rows, mean, w, d)?,
        };
        // Host rows as read (row i stored at i, unused rows already NaN) need no spreading.
        if self.in_place() {
            return Ok(scores);
        }
        Ok(spread(&self.row_of, &scores, d, f64::NAN))
    }

    /// Whether every table row with a vector is stored at its own index, and there are as many
    /// stored rows as table rows.
    fn in_place(&self) -> bool {
        self.stored() == self.rows() && self.row_of.iter().enumerate().all(|(i, r)| r.is_none_or(|r| r == i))
    }

    /// Every table row's vector on the host (all-NaN rows without one).
    pub fn to_matrix(&self) -> Result<Matrix> {
        let cols = self.cols();
        let stored = match &self.store {
            Store::Host(m) => std::borrow::Cow::Borrowed(&m.values),
            #[cfg(feature = "gpu")]
            Store::Device(d) => std::borrow::Cow::Owned(d.read(0, d.rows())?),
        };
        Ok(Matrix { rows: self.rows(), cols, values: spread(&self.row_of, &stored, cols, f32::NAN) })
    }

    /// The same vectors resident on `gpu`: host rows that some table row uses are copied up
    /// once, in blocks; vectors already on a device stay where they are.
    #[cfg(feature = "gpu")]
    pub fn to_device(self, gpu: &Arc<Gpu>) -> Result<Vectors> {
        let Store::Host(m) = &self.store else { return Ok(self) };
        let weights = self.weights();
        let used: Vec<usize> = (0..m.rows).filter(|&r| weights[r] > 0.0).collect();
        let rows = DeviceRows::new(gpu, used.len(), m.cols)?;
        let mut new_row = vec![usize::MAX; m.rows];
        for (at, block) in used.chunks(UPLOAD_ROWS).enumerate() {
            let values: Vec<f32> = block.iter().flat_map(|&r| m.row(r).iter().copied()).collect();
            rows.write(at * UPLOAD_ROWS, &values);
        }
        for (new, &r) in used.iter().enumerate() {
            new_row[r] = new;
        }
        let row_of = self.row_of.iter().map(|r| r.map(|r| new_row[r])).collect();
        Ok(Vectors { store: Store::Device(rows), row_of })
    }
}

/// Column sums and XᵀX of the rows of `m` with a positive weight, each counted `weight` times.
fn host_gram(m: &Matrix, weights: &[f32]) -> Gram {
    let mut ranges: Vec<(usize, usize)> = (0..m.rows).step_by(BLOCK).map(|s| (s, (s + BLOCK).min(m.rows))).collect();
    if ranges.is_empty() {
        return Gram::zeros(m.cols);
    }
    tree_reduce(&mut ranges, &|&mut (lo, hi): &mut (usize, usize)| gram_block(m, weights, lo, hi), &|mut a, b| {
        a.rows += b.rows;
        a.sum.iter_mut().zip(&b.sum).for_each(|(u, v)| *u += v);
        a.xtx.iter_mut().zip(&b.xtx).for_each(|(u, v)| *u += v);
        a
    })
}

/// [`host_gram`] of rows [lo, hi), in GEMM chunks: XᵀX = (w ∘ X)ᵀ X, or XᵀX itself when every
/// weight is 1 (host rows as read), which skips the weighted copy.
fn gram_block(m: &Matrix, weights: &[f32], lo: usize, hi: usize) -> Gram {
    let dim = m.cols;
    let mut g = Gram::zeros(dim);
    let unit = weights[lo..hi].iter().all(|&w| w == 0.0 || w == 1.0);
    let mut chunk = Array2::<f64>::zeros((CHUNK, dim));
    let mut weighted = Array2::<f64>::zeros((if unit { 0 } else { CHUNK }, dim));
    let mut total = 0.0f64;
    let mut s0 = lo;
    while s0 < hi {
        let s1 = (s0 + CHUNK).min(hi);
        let mut rows = 0;
        for i in (s0..s1).filter(|&i| weights[i] > 0.0) {
            let w = weights[i] as f64;
            let mut row = chunk.row_mut(rows);
            let dst = row.as_slice_mut().expect("row-major chunk");
            for ((d, s), &v) in dst.iter_mut().zip(g.sum.iter_mut()).zip(m.row(i)) {
                *d = v as f64;
                *s += w * *d;
            }
            if !unit {
                let mut row = weighted.row_mut(rows);
                let dst = row.as_slice_mut().expect("row-major chunk");
                dst.iter_mut().zip(m.row(i)).for_each(|(d, &v)| *d = w * v as f64);
            }
            total += w;
            rows += 1;
        }
        if rows > 0 {
            let mut xtx = ArrayViewMut2::from_shape((dim, dim), &mut g.xtx).expect("gram shape");
            let c = chunk.slice(s![..rows, ..]);
            let left = if unit { c } else { weighted.slice(s![..rows, ..]) };
            matmul(&mut xtx, &left.t(), &c, true);
        }
        s0 = s1;
    }
    g.rows = total.round() as usize;
    g
}

/// (v − m) W of every stored row of `m` that some table row uses (others: NaN).
fn host_project(m: &Matrix, weights: &[f32], mean: &[f64], w: &[f64], d: usize) -> Vec<f64> {
    let dim = m.cols;
    assert_eq!(w.len(), dim * d);
    let w = ArrayView2::from_shape((dim, d), w).expect("W shape");
    let mut out = vec![0.0; m.rows * d];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut(CHUNK * d).enumerate().for_each(|(c, out_chunk)| {
        let lo = c * CHUNK;
        let rows = out_chunk.len() / d;
        let mut centered = Array2::<f64>::zeros((rows, dim));
        for r in (0..rows).filter(|&r| weights[lo + r] > 0.0) {
            let mut row = centered.row_mut(r);
            let dst = row.as_slice_mut().expect("row-major chunk");
            for ((v, &x), &m) in dst.iter_mut().zip(m.row(lo + r)).zip(mean) {
                *v = x as f64 - m;
            }
        }
        let mut o = ArrayViewMut2::from_shape((rows, d), out_chunk).expect("out shape");
        matmul(&mut o, &centered.view(), &w, false);
        for r in (0..rows).filter(|&r| weights[lo + r] == 0.0) {
            o.row_mut(r).fill(f64::NAN);
        }
    });
    out
}

/// Table rows from stored rows: row i gets `src`'s row `slots[i]` (`width` values), or
/// `missing` everywhere when it has none.
pub fn spread<T: Copy>(slots: &[Option<usize>], src: &[T], width: usize, missing: T) -> Vec<T> {
    let mut out = vec![missing; slots.len() * width];
    for (i, s) in slots.iter().enumerate() {
        if let Some(u) = *s {
            out[i * width..(i + 1) * width].copy_from_slice(&src[u * width..(u + 1) * width]);
        }
    }
    out
}
