//! Synthetic mixtures with known truth, and timing of single EM iterations. Used by the
//! `segmix bench` command, the criterion benches and the parameter-recovery tests.

use std::time::Instant;

use serde::Serialize;

use crate::backend::{Backend, MixtureData, e_step_one, e_step_stats_one};
use crate::foundation::error::{Error, Result};
use crate::foundation::matrix::Matrix;
use crate::foundation::rng::Rng;
use crate::foundation::stats::median;
use crate::foundation::vectors::Vectors;
use crate::mixture::em::{FitConfig, Run, start_run};
use crate::mixture::init::InitFeatures;

/// A table drawn from a known mixture.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub data: MixtureData,
    /// True class of each row (0-based).
    pub truth: Vec<u32>,
}

/// Draws `n` rows from a K-class mixture with `p` continuous dimensions (full random
/// covariances) and `n_cat` categorical columns of `levels` levels. `separation` scales the
/// distance between class means (≈ 3 is well separated for p ≥ 2); `cat_purity` is the
/// probability of each class's dominant level.
pub fn synthetic(
    n: usize,
    k: usize,
    p: usize,
    n_cat: usize,
    levels: usize,
    separation: f64,
    cat_purity: f64,
    seed: u64,
) -> Synthetic {
    let mut rng = Rng::new(seed);
    let means: Vec<f64> = (0..k * p).map(|_| separation * rng.normal()).collect();
    let mut chols = Vec::with_capacity(k);
    for _ in 0..k {
        // Σ = G Gᵀ / p + 0.3 I, then its Cholesky factor for sampling.
        let g: Vec<f64> = (0..p * p).map(|_| rng.normal()).collect();
        let mut sigma = vec![0.0; p * p];
        for a in 0..p {
            for b in 0..p {
                sigma[a * p + b] = (0..p).map(|t| g[a * p + t] * g[b * p + t]).sum::<f64>() / p as f64
                    + if a == b { 0.3 } else { 0.0 };
            }
        }
        chols.push(crate::foundation::linalg::cholesky(&sigma, p).expect("SPD by construction"));
    }
    // Each class prefers one level per categorical column.
    let dominant: Vec<usize> = (0..k * n_cat).map(|_| rng.below(levels)).collect();
    let mut x = vec![0.0; n * p];
    let mut codes = vec![0u32; n * n_cat];
    let mut truth = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.below(k);
        truth.push(c as u32);
        let z: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        for a in 0..p {
            let lz: f64 = (0..=a).map(|t| chols[c][a * p + t] * z[t]).sum();
            x[i * p + a] = means[c * p + a] + lz;
        }
        for j in 0..n_cat {
            codes[i * n_cat + j] =
                if rng.uniform() < cat_purity { dominant[c * n_cat + j] } else { rng.below(levels) } as u32;
        }
    }
    let mut data = MixtureData { n, p, x, n_levels: vec![levels; n_cat], codes, ..MixtureData::default() };
    data.set_patterns(&vec![true; n * p]);
    Synthetic { data, truth }
}

/// Median timings (milliseconds) of one EM iteration's parts.
#[derive(Debug, Clone, Serialize)]
pub struct IterationTiming {
    pub backend: String,
    pub n: usize,
    pub k: usize,
    pub p: usize,
    pub n_cat: usize,
    pub reps: usize,
    /// Host: Cholesky factors and kernel parameter layout.
    pub kernel_params_ms: f64,
    pub e_step_ms: f64,
    pub m_stats_ms: f64,
    /// The fused E-step + statistics pass the EM driver runs.
    pub e_step_stats_ms: f64,
    /// Host: M-step from the statistics.
    pub m_step_ms: f64,
    /// One whole EM iteration as the driver runs it: kernel parameters, fused pass, M-step.
    pub iteration_ms: f64,
    /// Floating-point operations of the O(N K p²) products: 4 N K p².
    pub gemm_flops: f64,
    pub gflops: f64,
}

/// Times `reps` EM iterations at K classes on resident data (setup and one warm-up iteration
/// excluded) and reports medians.
pub fn time_iteration<B: Backend>(
    backend: &B,
    data: &MixtureData,
    k: usize,
    reps: usize,
    seed: u64,
) -> Result<IterationTiming> {
    if k > data.n {
        return Err(Error::TooManyClasses { k, n: data.n });
    }
    let dev = backend.upload(data)?;
    let feat = InitFeatures::new(data);
    // Start where a fit's first iteration starts: k-means++, then one M-step from its labels.
    let cfg = FitConfig { k_min: k, k_max: k, n_init: 1, seed, ..FitConfig::default() };
    let Run { mut theta, mut resp, .. } = start_run(backend, &dev, data, &feat, k, 1, &cfg)?;
    let p = data.p;

    let (mut kp_t, mut e_t, mut m_t, mut fused_t, mut h_t, mut all) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for rep in 0..=reps {
        // The separate kernels, for the per-kernel columns.
        let kp = theta.kernel_params(&data.patterns)?;
        let t = Instant::now();
        e_step_one(backend, &dev, &kp, &mut resp)?;
        let te = t.elapsed().as_secs_f64();
        backend.m_stats(&dev, &kp, &resp)?;
        let tm = t.elapsed().as_secs_f64() - te;
        // One EM iteration as the driver runs it.
        let t = Instant::now();
        let kp = theta.kernel_params(&data.patterns)?;
        let t1 = t.elapsed().as_secs_f64();
        let (_, stats) = e_step_stats_one(backend, &dev, &kp, &mut resp)?;
        let t2 = t.elapsed().as_secs_f64();
        theta = theta.m_step(&stats, &data.patterns, data.n)?.0;
        let t3 = t.elapsed().as_secs_f64();
        if rep > 0 {
            e_t.push(te * 1e3);
            m_t.push(tm * 1e3);
            kp_t.push(t1 * 1e3);
            fused_t.push((t2 - t1) * 1e3);
            h_t.push((t3 - t2) * 1e3);
            all.push(t3 * 1e3);
        }
    }
    let flops = 4.0 * data.n as f64 * k as f64 * (p * p) as f64;
    let iteration_ms = median(&mut all);
    Ok(IterationTiming {
        backend: backend.describe(),
        n: data.n,
        k,
        p,
        n_cat: data.n_cat(),
        reps,
        kernel_params_ms: median(&mut kp_t),
        e_step_ms: median(&mut e_t),
        m_stats_ms: median(&mut m_t),
        e_step_stats_ms: median(&mut fused_t),
        m_step_ms: median(&mut h_t),
        iteration_ms,
        gemm_flops: flops,
        gflops: flops / (iteration_ms * 1e-3) / 1e9,
    })
}

/// Median timings (milliseconds) of a PCA: placing the vectors where the backend computes (the
/// upload to a GPU; nothing on the CPU), the Gram pass, the host eigen-decomposition, and the
/// projection.
#[derive(Debug, Clone, Serialize)]
pub struct PcaTiming {
    pub backend: String,
    pub n: usize,
    pub dim: usize,
    pub d: usize,
    pub reps: usize,
    pub place_ms: f64,
    pub gram_ms: f64,
    pub eigen_ms: f64,
    pub project_ms: f64,
    /// Placing + Gram + eigen-decomposition: what fitting the PCA costs.
    pub fit_ms: f64,
}

/// Embedding-like rows: a shared direction plus noise, normalised to unit length like
/// sentence-transformer output.
pub fn synthetic_embeddings(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let common: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
    let mut x = vec![0f32; n * dim];
    for row in x.chunks_mut(dim.max(1)) {
        let v: Vec<f64> = common.iter().map(|c| 0.5 * c + rng.normal()).collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().zip(&v).for_each(|(o, a)| *o = (a / norm) as f32);
    }
    x
}

/// Times `reps` PCA fits and projections of `x` (n × dim) to d components (one warm-up run
/// excluded) and reports medians.
pub fn time_pca<B: Backend>(backend: &B, x: &[f32], n: usize, dim: usize, d: usize, reps: usize) -> Result<PcaTiming> {
    let (mut u_t, mut g_t, mut e_t, mut p_t, mut f_t) = (vec![], vec![], vec![], vec![], vec![]);
    for rep in 0..=reps {
        let host = Vectors::host(Matrix { rows: n, cols: dim, values: x.to_vec() });
        let t = Instant::now();
        let v = backend.place(host)?;
        let tu = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let g = v.gram()?;
        let tg = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (pca, _) = crate::featurize::reduce::Pca::from_gram(&g, d)?;
        let te = t.elapsed().as_secs_f64();
        let t = Instant::now();
        pca.transform(&v)?;
        let tp = t.elapsed().as_secs_f64();
        if rep > 0 {
            u_t.push(tu * 1e3);
            g_t.push(tg * 1e3);
            e_t.push(te * 1e3);
            p_t.push(tp * 1e3);
            f_t.push((tu + tg + te) * 1e3);
        }
    }
    Ok(PcaTiming {
        backend: backend.describe(),
        n,
        dim,
        d,
        reps,
        place_ms: median(&mut u_t),
        gram_ms: median(&mut g_t),
        eigen_ms: median(&mut e_t),
        project_ms: median(&mut p_t),
        fit_ms: median(&mut f_t),
    })
}

/// Sentence-encoder speed on one padded batch shape.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderTiming {
    /// Where the encoder ran.
    pub device: String,
    /// Texts per batch (B) and padded length (L).
    pub batch: usize,
    pub len: usize,
    pub reps: usize,
    /// Steady state: batches submitted back to back, wall time per batch (median of reps).
    pub seconds_per_batch: f64,
    pub sentences_per_second: f64,
    /// Matmul + attention arithmetic per second (fp32, padded tokens counted).
    pub tflops: f64,
    /// Device time per stage of one batch (GPU with timestamp queries only), seconds.
    pub stages: Option<std::collections::BTreeMap<String, f64>>,
    /// Reading one batch's B × H vectors back to the host, seconds (GPU only).
    pub readback_seconds: Option<f64>,
}

/// Floating-point operations of one forward pass over B × L padded tokens: the linear layers
/// (2 T (3H² + H² + 2 H I)) and attention (4 B L² H) per layer.
pub fn encoder_flops(b: usize, l: usize, hidden: usize, intermediate: usize, layers: usize) -> f64 {
    let (t, h, i) = ((b * l) as f64, hidden as f64, intermediate as f64);
    layers as f64 * (2.0 * t * (4.0 * h * h + 2.0 * h * i) + 4.0 * b as f64 * (l * l) as f64 * h)
}

/// Times the embedder's encoder (on the GPU when [`crate::encoders::Embedder::use_gpu`] was
/// called) on `b` texts of `l` tokens: `reps` batches after one warm-up, tokenisation excluded.
pub fn time_encoder(e: &crate::encoders::Embedder, b: usize, l: usize, reps: usize) -> Result<EncoderTiming> {
    if l < 3 || l > e.info.max_length || b == 0 {
        return Err(Error::config(format!(
            "--embed BxL: L must be 3..={} (the model's maximum length) and B at least 1",
            e.info.max_length
        )));
    }
    // One text of exactly L tokens ([CLS] + L − 2 words + [SEP]), repeated B times.
    let words = "game ".repeat(l - 2);
    let (one, one_mask, _, got) = e.tokenize_padded(&[words.trim_end()])?;
    if got != l {
        return Err(Error::config(format!("could not build a {l}-token text for this tokenizer (got {got})")));
    }
    let ids: Vec<u32> = one.iter().copied().cycle().take(b * l).collect();
    let mask: Vec<u32> = one_mask.iter().copied().cycle().take(b * l).collect();
    let reps = reps.max(1);
    let config = e.config();
    let flops = encoder_flops(b, l, config.hidden_size, config.intermediate_size, config.num_hidden_layers);
    let mut times = Vec::with_capacity(reps);
    #[cfg_attr(not(feature = "gpu"), allow(unused_mut))]
    let (mut stages, mut readback) = (None, None);
    match e.gpu_encoder() {
        #[cfg(feature = "gpu")]
        Some(g) => {
            if b > g.max_batch() || b * l > g.max_tokens() {
                return Err(Error::config(format!(
                    "--embed {b}x{l}: the GPU encoder's batches hold at most {} texts and {} tokens",
                    g.max_batch(),
                    g.max_tokens()
                )));
            }
            let gpu = g.gpu().clone();
            let rows = crate::foundation::gpu::DeviceRows::new(&gpu, b, g.hidden())?;
            let pooling = e.info.pooling;
            let warm = g.encode(&ids, &mask, (b, l), pooling, true, &rows, 0)?;
            gpu.wait_for(warm)?;
            // Back-to-back batches, as the embedder submits them; the median of rounds of 4.
            for _ in 0..reps {
                let t = Instant::now();
                let mut last = None;
                for _ in 0..4 {
                    last = Some(g.encode(&ids, &mask, (b, l), pooling, true, &rows, 0)?);
                }
                gpu.wait_for(last.expect("four batches"))?;
                times.push(t.elapsed().as_secs_f64() / 4.0);
            }
            let mut reads = Vec::with_capacity(reps);
            for _ in 0..reps {
                let t = Instant::now();
                rows.read(0, b)?;
                reads.push(t.elapsed().as_secs_f64());
            }
            readback = Some(median(&mut reads));
            stages = g
                .profile(&ids, &mask, (b, l), pooling, reps)?
                .map(|v| v.into_iter().map(|(stage, secs)| (stage.name().to_string(), secs)).collect());
        }
        _ => {
            let encoder = e.encoder();
            encoder.encode(&ids, &mask, (b, l), e.info.pooling, true)?;
            for _ in 0..reps {
                let t = Instant::now();
                encoder.encode(&ids, &mask, (b, l), e.info.pooling, true)?;
                times.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let per_batch = median(&mut times);
    Ok(EncoderTiming {
        device: e.device(),
        batch: b,
        len: l,
        reps,
        seconds_per_batch: per_batch,
        sentences_per_second: b as f64 / per_batch,
        tflops: flops / per_batch / 1e12,
        stages,
        readback_seconds: readback,
    })
}

/// Loads a benchmark table from `.npy` files: a float matrix (n × p, the continuous block as
/// is) and optionally an integer matrix of category codes (n × J, codes 0..L_j − 1).
pub fn load_npy(x: &std::path::Path, codes: Option<&std::path::Path>) -> Result<MixtureData> {
    let xm = crate::data::embeddings::read_npy(x)?;
    let (n, p) = (xm.rows, xm.cols);
    let xv = xm.into_f64();
    let (codes, n_levels) = match codes {
        None => (Vec::new(), Vec::new()),
        Some(path) => {
            let cm = crate::data::embeddings::read_npy(path)?;
            if cm.rows != n {
                return Err(Error::EmbeddingRows { file: path.to_path_buf(), found: cm.rows, expected: n });
            }
            let j = cm.cols;
            let raw = cm.into_i64();
            if raw.iter().any(|&c| c < 0) {
                return Err(Error::config(format!("{}: category codes must be ≥ 0", path.display())));
            }
            let n_levels = (0..j).map(|jj| (0..n).map(|i| raw[i * j + jj] as usize + 1).max().unwrap_or(1)).collect();
            (raw.into_iter().map(|c| c as u32).collect(), n_levels)
        }
    };
    let mut data = MixtureData { n, p, x: xv, n_levels, codes, ..MixtureData::default() };
    data.set_patterns(&vec![true; n * p]);
    Ok(data)
}
