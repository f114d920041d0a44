// mixture — declarations shared by the mixture kernels: the registry prepends this file to
// e_step.wgsl and m_stats.wgsl before compiling (WGSL has no includes).
// Host mirror of `Dims`: `backend::gpu::kernels::Dims` (the layout test compares every field offset).

// Widest continuous block: the size of the kernels' register and workgroup arrays.
const MAX_P: u32 = 64u;
// A missing category code (`data::MISSING_CODE`).
const MISSING: u32 = 0xffffffffu;

struct Dims {
    n: u32,            // rows in this segment
    p: u32,            // continuous dimensions
    k: u32,            // classes
    j: u32,            // categorical columns
    tl: u32,           // total categorical levels
    n_patterns: u32,
    off_alpha: u32,    // offsets into `params` (f32 words)
    off_means: u32,
    off_prec: u32,
    off_norm: u32,
    off_fill: u32,
    chunk_rows: u32,   // m_stats: rows per workgroup
    off_observed: u32, // offset of the observed masks in `tables`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
// n × p continuous values; 0 at missing coordinates.
@group(0) @binding(1) var<storage, read> x: array<f32>;
// n × (1 + J): the row's pattern index, then its category codes (MISSING when absent).
@group(0) @binding(2) var<storage, read> rowinfo: array<u32>;
// Level offset of each categorical column (J + 1 values), then the observed masks (P × p).
@group(0) @binding(3) var<storage, read> tables: array<u32>;
// log π (K) | log α (K × TL) | μ (K × p) | U (P × K × p × p) | log-norm (P × K) | fill (P × K × p × p)
@group(0) @binding(4) var<storage, read> params: array<f32>;
