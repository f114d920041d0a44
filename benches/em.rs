//! Criterion benchmarks of the backend kernels over an (n, k, p) grid, one group per backend:
//! `cpu/e_step`, `cpu/m_stats`, `cpu/e_step_stats` (the fused pass the EM driver runs),
//! `cpu/gram`, and the same names under `gpu/` plus `gpu/project`. Setup (pipeline build,
//! upload, parameters) is outside the timed region; every GPU sample includes the read-back of
//! its results, so it measures finished work. The `gpu` group runs on the adapter
//! `--device gpu` would take and is skipped, with a line saying so, when there is none.
//!
//! Run: `cargo bench --bench em` (add `-- gpu/e_step` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use segmix::backend::GpuBackend;
use segmix::backend::{Backend, CpuBackend, Vectors, e_step_one, e_step_stats_one};
use segmix::foundation::gpu::AdapterPolicy;
use segmix::foundation::matrix::Matrix;
use segmix::mixture::CovType;
use segmix::mixture::params::Params;
use segmix::pipeline::bench::{synthetic, synthetic_embeddings};

/// Parameters with distinct means (rows of the data) and identity covariances.
fn params_for(data: &segmix::backend::MixtureData, k: usize) -> Params {
    let centers: Vec<f64> = (0..k).flat_map(|c| data.x[c * 7 * data.p..(c * 7 + 1) * data.p].to_vec()).collect();
    Params::initial(data, k, &centers, CovType::Full, 1e-6)
}

/// The mixture kernels and the Gram pass of one backend, as group `name`.
fn kernels<B: Backend>(c: &mut Criterion, name: &str, backend: &B, grid: &[(usize, usize, usize)]) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    for &(n, k, p) in grid {
        let data = synthetic(n, k, p, 3, 4, 3.0, 0.7, 1).data;
        let dev = backend.upload(&data).unwrap();
        let theta = params_for(&data, k);
        let kp = theta.kernel_params(&data.patterns).unwrap();
        let mut resp = backend.alloc_resp(&dev, k).unwrap();
        e_step_one(backend, &dev, &kp, &mut resp).unwrap();
        let id = format!("n{n}_k{k}_p{p}");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("e_step", &id), |b| {
            b.iter(|| e_step_one(backend, &dev, &kp, &mut resp).unwrap())
        });
        group.bench_function(BenchmarkId::new("m_stats", &id), |b| {
            b.iter(|| backend.m_stats(&dev, &kp, &resp).unwrap())
        });
        group.bench_function(BenchmarkId::new("e_step_stats", &id), |b| {
            b.iter(|| e_step_stats_one(backend, &dev, &kp, &mut resp).unwrap())
        });
    }
    let (n, dim, d) = (50_000usize, 384usize, 32usize);
    let x = synthetic_embeddings(n, dim, 1);
    group.throughput(Throughput::Elements(n as u64));
    // The vectors placed once where the backend computes, as a fit does.
    let v = backend.place(Vectors::host(Matrix { rows: n, cols: dim, values: x })).unwrap();
    group.bench_function(BenchmarkId::new("gram", format!("n{n}_d{dim}")), |b| b.iter(|| v.gram().unwrap()));
    let mean = vec![0.0; dim];
    let w: Vec<f64> = (0..dim * d).map(|i| ((i * 7919) % 13) as f64 / 13.0 - 0.5).collect();
    group.bench_function(BenchmarkId::new("project", format!("n{n}_d{dim}_to{d}")), |b| {
        b.iter(|| v.project(&mean, &w, d).unwrap())
    });
    group.finish();
}

const GRID: [(usize, usize, usize); 3] = [(100_000, 10, 32), (100_000, 4, 8), (20_000, 16, 48)];

fn cpu(c: &mut Criterion) {
    kernels(c, "cpu", &CpuBackend::new(), &GRID);
}

fn gpu(c: &mut Criterion) {
    match GpuBackend::open(AdapterPolicy::AllowSoftware) {
        Ok(Ok(gpu)) => {
            eprintln!("gpu group on {}", gpu.adapter().label());
            // A real GPU also gets the size of the README's target (N = 1M, K = 10, p = 32).
            let mut grid = GRID.to_vec();
            if !gpu.adapter().software {
                grid.insert(0, (1_000_000, 10, 32));
            }
            kernels(c, "gpu", &gpu, &grid);
        }
        Ok(Err(reason)) => eprintln!("skipping the gpu group: {reason}"),
        Err(e) => eprintln!("skipping the gpu group: {e}"),
    }
}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
