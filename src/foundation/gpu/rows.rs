//! A row-major f32 matrix resident on the device, split into segments that each fit one storage
//! binding: where the GPU sentence encoder leaves its vectors, so the PCA Gram and projection
//! that follow run on them without a round trip through the host.

use std::sync::Arc;

use super::Gpu;
use crate::foundation::error::{Error, Result};

/// Largest segment, in bytes (also capped by the device's binding limit).
const SEGMENT_BYTES: u64 = 512 << 20;

/// `rows × cols` f32 values on the device.
pub struct DeviceRows {
    gpu: Arc<Gpu>,
    rows: usize,
    cols: usize,
    /// Rows per segment (every segment but the last is full).
    seg_rows: usize,
    segments: Vec<wgpu::Buffer>,
}

impl std::fmt::Debug for DeviceRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRows")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl DeviceRows {
    /// Allocates `rows × cols` (contents undefined until written).
    pub fn new(gpu: &Arc<Gpu>, rows: usize, cols: usize) -> Result<DeviceRows> {
        let row_bytes = (cols.max(1) * 4) as u64;
        let seg_rows = (SEGMENT_BYTES.min(gpu.max_binding()) / row_bytes).max(1) as usize;
        if row_bytes > gpu.max_binding() {
            return Err(Error::Gpu(format!(
                "a {cols}-wide row needs {row_bytes} bytes, more than this device binds ({})",
                gpu.max_binding()
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let segments = gpu.checked("allocating resident rows", || {
            (0..rows.div_ceil(seg_rows).max(1))
                .map(|s| {
                    let n = seg_rows.min(rows - (s * seg_rows).min(rows));
                    gpu.buffer("rows", n as u64 * row_bytes, usage)
                })
                .collect::<Vec<_>>()
        })?;
        Ok(DeviceRows { gpu: gpu.clone(), rows, cols, seg_rows, segments })
    }

    /// The device the rows live on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// (segment buffer, first row, rows) of every segment, in order.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (&wgpu::Buffer, usize, usize)> {
        self.segments.iter().enumerate().map(|(s, b)| {
            let start = s * self.seg_rows;
            (b, start, self.seg_rows.min(self.rows - start.min(self.rows)))
        })
    }

    /// The pieces of rows [at, at + n): (segment, row within it, rows, rows before it in the range).
    fn pieces(&self, at: usize, n: usize) -> impl Iterator<Item = (&wgpu::Buffer, usize, usize, usize)> {
        assert!(at + n <= self.rows, "rows {at}..{} of {}", at + n, self.rows);
        let mut done = 0;
        std::iter::from_fn(move || {
            (done < n).then(|| {
                let row = at + done;
                let (s, within) = (row / self.seg_rows, row % self.seg_rows);
                let take = (self.seg_rows - within).min(n - done);
                let piece = (&self.segments[s], within, take, done);
                done += take;
                piece
            })
        })
    }

    /// Uploads `values` (whole rows) at row `at`.
    pub fn write(&self, at: usize, values: &[f32]) {
        let c = self.cols;
        for (buf, within, take, before) in self.pieces(at, values.len() / c.max(1)) {
            self.gpu.write(
                buf,
                (within * c * 4) as u64,
                bytemuck::cast_slice(&values[before * c..(before + take) * c]),
            );
        }
    }

    /// Records a device-side copy of rows [0, n) of `src` (row-major, `cols` wide) to row `at`.
    pub(crate) fn copy_in(&self, enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, at: usize, n: usize) {
        let row = (self.cols * 4) as u64;
        for (buf, within, take, before) in self.pieces(at, n) {
            enc.copy_buffer_to_buffer(src, before as u64 * row, buf, within as u64 * row, take as u64 * row);
        }
    }

    /// Records a copy of rows [at, at + n) into `dst` (a staging buffer) from its start.
    pub(crate) fn copy_out(&self, enc: &mut wgpu::CommandEncoder, at: usize, n: usize, dst: &wgpu::Buffer) {
        let row = (self.cols * 4) as u64;
        for (buf, within, take, before) in self.pieces(at, n) {
            enc.copy_buffer_to_buffer(buf, within as u64 * row, dst, before as u64 * row, take as u64 * row);
        }
    }

    /// Reads rows [at, at + n) back to the host (one submit and one wait per 64 MiB).
    pub fn read(&self, at: usize, n: usize) -> Result<Vec<f32>> {
        let c = self.cols;
        let chunk = ((64usize << 20) / (c.max(1) * 4)).max(1);
        let mut out = Vec::with_capacity(n * c);
        for lo in (0..n).step_by(chunk) {
            let take = chunk.min(n - lo);
            let words = take * c;
            if words == 0 {
                continue;
            }
            let got = self.gpu.checked("reading resident rows", || -> Result<Vec<f32>> {
                let staging = self.gpu.staging("rows.staging", words);
                let mut enc = self.gpu.encoder();
                self.copy_out(&mut enc, at + lo, take, &staging);
                Ok(self.gpu.submit_and_read(enc, &[(&staging, words)])?.remove(0))
            })??;
            out.extend_from_slice(&got);
        }
        Ok(out)
    }
}
