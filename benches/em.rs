//! Criterion benchmarks of the backend kernels: `cpu/e_step`, `cpu/m_stats`, `cpu/e_step_stats`
//! (the fused pass the EM driver runs), `cpu/gram` over
//! an (n, k, p) grid. Setup (upload, parameters) is outside the timed region.
//!
//! Run: `cargo bench --bench em` (add `-- cpu/e_step` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use segmix::backend::{Backend, CpuBackend};
use segmix::bench::synthetic;
use segmix::mixture::CovType;
use segmix::mixture::params::Params;

/// Parameters with distinct means (rows of the data) and identity covariances.
fn params_for(data: &segmix::backend::MixtureData, k: usize) -> Params {
    let centers: Vec<f64> = (0..k).flat_map(|c| data.x[c * 7 * data.p..(c * 7 + 1) * data.p].to_vec()).collect();
    Params::initial(data, k, &centers, CovType::Full, 1e-6)
}

fn kernels(c: &mut Criterion) {
    let backend = CpuBackend::new();
    let mut group = c.benchmark_group("cpu");
    group.sample_size(10);
    for &(n, k, p) in &[(100_000usize, 10usize, 32usize), (100_000, 4, 8), (20_000, 16, 48)] {
        let data = synthetic(n, k, p, 3, 4, 3.0, 0.7, 1).data;
        let dev = backend.upload(&data).unwrap();
        let theta = params_for(&data, k);
        let kp = theta.kernel_params(&data.patterns).unwrap();
        let mut resp = backend.alloc_resp(&dev, k).unwrap();
        backend.e_step(&dev, &kp, &mut resp).unwrap();
        let id = format!("n{n}_k{k}_p{p}");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("e_step", &id), |b| {
            b.iter(|| backend.e_step(&dev, &kp, &mut resp).unwrap())
        });
        group.bench_function(BenchmarkId::new("m_stats", &id), |b| {
            b.iter(|| backend.m_stats(&dev, &kp, &resp).unwrap())
        });
        group.bench_function(BenchmarkId::new("e_step_stats", &id), |b| {
            b.iter(|| backend.e_step_stats(&dev, &kp, &mut resp).unwrap())
        });
    }
    let (n, dim) = (50_000usize, 384usize);
    let x: Vec<f32> = (0..n * dim).map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0).collect();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("gram", format!("n{n}_d{dim}")), |b| {
        b.iter(|| backend.gram(&x, n, dim).unwrap())
    });
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
