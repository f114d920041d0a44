//! The statistical core: recovery, monotone EM, exact parameter counts, determinism, the
//! kernels' CPU references against the model's definitions and the fast CPU path against the
//! references, missing values against hand-computed likelihoods.

use segmix::backend::{Backend, CpuBackend, MixtureData, Pass, SuffStats, e_step_one, e_step_stats_one, reference};
use segmix::foundation::MISSING_CODE;
use segmix::foundation::linalg;
use segmix::foundation::metrics::adjusted_rand_index;
use segmix::foundation::rng::Rng;
use segmix::mixture::em::{FitConfig, NoProgress, fit_sweep};
use segmix::mixture::params::Params;
use segmix::mixture::{CovType, Criteria, n_params, predict};
use segmix::pipeline::bench::synthetic;

use crate::util::labels;

const LN_2PI: f64 = 1.8378770664093453;

fn config(k: usize, n_init: usize) -> FitConfig {
    FitConfig { k_min: k, k_max: k, n_init, ..FitConfig::default() }
}

fn recovered_ari(data: &MixtureData, truth: &[u32], k: usize) -> f64 {
    let sweep = fit_sweep(&CpuBackend::new(), data, &config(k, 3), &NoProgress).unwrap();
    adjusted_rand_index(&labels(&sweep.posteriors.resp, k), truth)
}

#[test]
fn recovers_numeric_only_mixture() {
    let s = synthetic(3000, 4, 5, 0, 4, 4.0, 0.0, 11);
    let ari = recovered_ari(&s.data, &s.truth, 4);
    assert!(ari >= 0.95, "ARI {ari}");
}

#[test]
fn recovers_categorical_only_latent_classes() {
    let s = synthetic(4000, 3, 0, 10, 5, 0.0, 0.85, 12);
    let ari = recovered_ari(&s.data, &s.truth, 3);
    assert!(ari >= 0.95, "ARI {ari}");
}

#[test]
fn recovers_mixed_mixture_where_neither_block_suffices_alone() {
    // Weakly separated Gaussians plus weakly informative categoricals.
    let s = synthetic(4000, 3, 3, 10, 4, 1.2, 0.7, 13);
    let joint = recovered_ari(&s.data, &s.truth, 3);
    assert!(joint >= 0.95, "joint ARI {joint}");
    let mut cont_only = s.data.clone();
    cont_only.n_levels.clear();
    cont_only.codes.clear();
    let cont = recovered_ari(&cont_only, &s.truth, 3);
    assert!(joint > cont + 0.05, "joint {joint} should beat continuous-only {cont}");
    eprintln!("mixed recovery: joint ARI {joint:.3}, continuous-only {cont:.3}");
}

/// Hides a random ~15% of continuous cells (never a whole row of a 1-column block).
fn with_missing(mut data: MixtureData, frac: f64, seed: u64) -> MixtureData {
    let mut rng = Rng::new(seed);
    let p = data.p;
    let mut observed = vec![true; data.n * p];
    for i in 0..data.n {
        for t in 0..p {
            if rng.uniform() < frac {
                observed[i * p + t] = false;
                data.x[i * p + t] = 0.0;
            }
        }
        for c in data.codes[i * data.n_levels.len()..(i + 1) * data.n_levels.len()].iter_mut() {
            if rng.uniform() < frac {
                *c = MISSING_CODE;
            }
        }
    }
    data.set_patterns(&observed);
    data
}

#[test]
fn em_objective_never_decreases() {
    let s = synthetic(1500, 3, 4, 2, 3, 1.5, 0.6, 21);
    let data = with_missing(s.data, 0.15, 5);
    assert!(data.patterns.len() > 5);
    for cov in [CovType::Full, CovType::Diag, CovType::Spherical, CovType::Tied] {
        let cfg = FitConfig { cov_type: cov, reg: 0.0, tol: 0.0, max_iter: 60, ..config(3, 2) };
        let sweep = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
        for run in &sweep.runs {
            assert!(run.warnings.is_empty(), "{:?}", run.warnings);
            for w in run.trace.windows(2) {
                assert!(w[1] >= w[0] - 1e-9 * w[0].abs(), "{cov:?}: objective fell from {} to {}", w[0], w[1]);
            }
            assert!(run.trace.last().unwrap() > run.trace.first().unwrap());
        }
    }
}

#[test]
fn plain_log_likelihood_never_decreases_without_categoricals() {
    // With no categorical columns there is no prior term: the trace is ℓ itself.
    let s = synthetic(1200, 3, 3, 0, 2, 1.2, 0.0, 23);
    let data = with_missing(s.data, 0.1, 6);
    let cfg = FitConfig { reg: 0.0, tol: 0.0, max_iter: 80, ..config(3, 2) };
    let sweep = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
    for run in &sweep.runs {
        assert_eq!(*run.trace.last().unwrap(), run.loglik);
        for w in run.trace.windows(2) {
            assert!(w[1] >= w[0] - 1e-10 * w[0].abs(), "log-likelihood fell from {} to {}", w[0], w[1]);
        }
    }
}

#[test]
fn parameter_counts_are_exact() {
    // K = 3, p = 4, categorical levels [3, 2]:
    // weights 2, categorical 3·(2 + 1) = 9, means 12, covariance by type.
    assert_eq!(n_params(3, 4, &[3, 2], CovType::Full), 2 + 9 + 12 + 3 * 10);
    assert_eq!(n_params(3, 4, &[3, 2], CovType::Diag), 2 + 9 + 12 + 3 * 4);
    assert_eq!(n_params(3, 4, &[3, 2], CovType::Spherical), 2 + 9 + 12 + 3);
    assert_eq!(n_params(3, 4, &[3, 2], CovType::Tied), 2 + 9 + 12 + 10);
    assert_eq!(n_params(3, 0, &[3, 2], CovType::Full), 2 + 9);
    assert_eq!(n_params(1, 2, &[], CovType::Full), 2 + 3);
    // The sweep reports the same counts and criteria from them.
    let s = synthetic(500, 2, 4, 2, 3, 3.0, 0.7, 3);
    let sweep = fit_sweep(
        &CpuBackend::new(),
        &s.data,
        &FitConfig { k_min: 1, k_max: 3, n_init: 1, ..Default::default() },
        &NoProgress,
    )
    .unwrap();
    for r in &sweep.runs {
        assert_eq!(r.n_params, n_params(r.k, 4, &[3, 3], CovType::Full));
        let c = Criteria::new(r.loglik, 0.0, r.n_params, 500, r.k);
        assert!((r.criteria.bic - (-2.0 * r.loglik + r.n_params as f64 * 500f64.ln())).abs() < 1e-9);
        assert_eq!(r.criteria.aic, c.aic);
        assert!(r.criteria.icl >= r.criteria.bic - 1e-9);
    }
}

#[test]
fn selection_picks_the_true_k_by_bic() {
    let s = synthetic(2000, 3, 3, 1, 3, 4.0, 0.7, 8);
    let sweep = fit_sweep(
        &CpuBackend::new(),
        &s.data,
        &FitConfig { k_min: 1, k_max: 5, n_init: 2, ..Default::default() },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(sweep.best_run().k, 3);
    // n_init restarts per K, plus the split-and-merge moves that improved one.
    assert_eq!(sweep.runs.iter().filter(|r| !r.start.starts_with("merge ")).count(), 10);
}

#[test]
fn fits_are_bit_for_bit_reproducible_across_thread_counts() {
    let s = synthetic(9000, 3, 4, 2, 3, 2.0, 0.7, 4);
    let data = with_missing(s.data, 0.05, 9);
    let cfg = config(3, 2);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let sw = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
            (sw.params, sw.posteriors.resp, sw.runs.iter().map(|r| r.loglik.to_bits()).collect::<Vec<_>>())
        })
    };
    let a = run(1);
    let b = run(2);
    let c = run(2);
    assert_eq!(a, b);
    assert_eq!(b, c);
}

// ---------------------------------------------------------------------------------------------
// Kernels against a naive oracle.

fn random_params(k: usize, p: usize, n_levels: &[usize], rng: &mut Rng) -> Params {
    let mut cov = vec![0.0; k * p * p];
    for kk in 0..k {
        let g: Vec<f64> = (0..p * p).map(|_| rng.normal()).collect();
        for a in 0..p {
            for b in 0..p {
                cov[kk * p * p + a * p + b] = (0..p).map(|t| g[a * p + t] * g[b * p + t]).sum::<f64>() / p as f64
                    + if a == b { 0.4 } else { 0.0 };
            }
        }
    }
    let mut alpha = Vec::new();
    for _ in 0..k {
        for &l in n_levels {
            let w: Vec<f64> = (0..l).map(|_| 0.2 + rng.uniform()).collect();
            let s: f64 = w.iter().sum();
            alpha.extend(w.iter().map(|v| v / s));
        }
    }
    let w: Vec<f64> = (0..k).map(|_| 0.3 + rng.uniform()).collect();
    let ws: f64 = w.iter().sum();
    Params {
        k,
        p,
        cov_type: CovType::Full,
        reg: 0.0,
        weights: w.iter().map(|v| v / ws).collect(),
        n_levels: n_levels.to_vec(),
        alpha,
        means: (0..k * p).map(|_| rng.normal()).collect(),
        covariances: cov,
        var_floor: vec![],
    }
}

/// log π_k + Σ_j log α + log N(x_o | μ_o, Σ_oo), straight from the definitions.
fn naive_log_joint(data: &MixtureData, th: &Params, i: usize, k: usize) -> f64 {
    let p = data.p;
    let mask = &data.patterns[data.pattern[i] as usize];
    let obs: Vec<usize> = (0..p).filter(|&t| mask[t]).collect();
    let no = obs.len();
    let mut v = th.weights[k].ln();
    let tl: usize = th.n_levels.iter().sum();
    let mut off = 0;
    for (j, &l) in th.n_levels.iter().enumerate() {
        let c = data.codes[i * th.n_levels.len() + j];
        if c != MISSING_CODE {
            v += th.alpha[k * tl + off + c as usize].ln();
        }
        off += l;
    }
    if no > 0 {
        let s: Vec<f64> =
            obs.iter().flat_map(|&a| obs.iter().map(move |&b| th.covariances[k * p * p + a * p + b])).collect();
        let l = linalg::cholesky(&s, no).unwrap();
        let d: Vec<f64> = obs.iter().map(|&a| data.x[i * p + a] - th.means[k * p + a]).collect();
        let sol = linalg::cholesky_solve(&l, no, &d, 1);
        let q: f64 = d.iter().zip(&sol).map(|(a, b)| a * b).sum();
        let logdet: f64 = (0..no).map(|t| 2.0 * l[t * no + t].ln()).sum();
        v += -0.5 * (no as f64 * LN_2PI + logdet + q);
    }
    v
}

/// SuffStats from the definitions: conditional-mean fill and conditional covariance per row.
fn naive_stats(data: &MixtureData, th: &Params, resp: &[f64]) -> (SuffStats, Vec<f64>) {
    let (p, k) = (data.p, th.k);
    let tl: usize = th.n_levels.iter().sum();
    let mut st = SuffStats::zeros(k, p, tl, data.patterns.len());
    // The M-step adds Σ_o R_ko C_ko itself; return Σ r (x̂ x̂ᵀ + C) separately for a full check.
    let mut with_cond = vec![0.0; k * p * p];
    for i in 0..data.n {
        let o = data.pattern[i] as usize;
        let mask = &data.patterns[o];
        let obs: Vec<usize> = (0..p).filter(|&t| mask[t]).collect();
        let mis: Vec<usize> = (0..p).filter(|&t| !mask[t]).collect();
        for kk in 0..k {
            let r = resp[i * k + kk];
            st.nk[kk] += r;
            st.pattern_mass[kk * data.patterns.len() + o] += r;
            let mut off = 0;
            for (j, &l) in th.n_levels.iter().enumerate() {
                let c = data.codes[i * th.n_levels.len() + j];
                if c != MISSING_CODE {
                    st.cat[kk * tl + off + c as usize] += r;
                }
                off += l;
            }
            if p == 0 {
                continue;
            }
            let sig = |a: usize, b: usize| th.covariances[kk * p * p + a * p + b];
            let mu = &th.means[kk * p..(kk + 1) * p];
            let mut dhat = vec![0.0; p];
            let mut cond = vec![0.0; p * p];
            let d_o: Vec<f64> = obs.iter().map(|&a| data.x[i * p + a] - mu[a]).collect();
            for (x, &a) in obs.iter().enumerate() {
                dhat[a] = d_o[x];
            }
            if !mis.is_empty() {
                let no = obs.len();
                let s_oo: Vec<f64> = obs.iter().flat_map(|&a| obs.iter().map(move |&b| sig(a, b))).collect();
                let l = if no > 0 { linalg::cholesky(&s_oo, no).unwrap() } else { vec![] };
                let sol = if no > 0 { linalg::cholesky_solve(&l, no, &d_o, 1) } else { vec![] };
                for &m in &mis {
                    dhat[m] = obs.iter().enumerate().map(|(x, &a)| sig(m, a) * sol[x]).sum();
                }
                for &m1 in &mis {
                    let col: Vec<f64> = obs.iter().map(|&a| sig(a, m1)).collect();
                    let solm = if no > 0 { linalg::cholesky_solve(&l, no, &col, 1) } else { vec![] };
                    for &m2 in &mis {
                        let corr: f64 = obs.iter().enumerate().map(|(x, &a)| sig(m2, a) * solm[x]).sum();
                        cond[m1 * p + m2] = sig(m1, m2) - corr;
                    }
                }
            }
            for a in 0..p {
                st.sum_d[kk * p + a] += r * dhat[a];
                for b in 0..p {
                    st.sum_dd[kk * p * p + a * p + b] += r * dhat[a] * dhat[b];
                    with_cond[kk * p * p + a * p + b] += r * (dhat[a] * dhat[b] + cond[a * p + b]);
                }
            }
        }
    }
    (st, with_cond)
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())), "{what}[{i}]: {x} vs {y}");
    }
}

/// Counts to 1e-10, moments to `tol`.
fn close_stats(got: &SuffStats, want: &SuffStats, tol: f64, what: &str) {
    close(&got.nk, &want.nk, 1e-10, &format!("{what} nk"));
    close(&got.cat, &want.cat, 1e-10, &format!("{what} cat"));
    close(&got.pattern_mass, &want.pattern_mass, 1e-10, &format!("{what} pattern_mass"));
    close(&got.sum_d, &want.sum_d, tol, &format!("{what} sum_d"));
    close(&got.sum_dd, &want.sum_dd, tol, &format!("{what} sum_dd"));
}

fn check_kernels(n: usize, k: usize, p: usize, n_cat: usize, missing: f64, seed: u64) {
    let s = synthetic(n, k, p, n_cat, 3, 1.0, 0.6, seed);
    let data = if missing > 0.0 { with_missing(s.data, missing, seed + 1) } else { s.data };
    let mut rng = Rng::new(seed + 2);
    let th = random_params(k, p, &data.n_levels, &mut rng);
    let be = CpuBackend::new();
    let dev = be.upload(&data).unwrap();
    let kp = th.kernel_params(&data.patterns).unwrap();

    // The kernels' CPU references (what every WGSL entry point is held to) against the model's
    // definitions: marginal Gaussians of the observed coordinates, conditional-mean fills.
    let want = reference::e_step(&data, &kp);
    let mut total = 0.0;
    for i in 0..n {
        let lj: Vec<f64> = (0..k).map(|kk| naive_log_joint(&data, &th, i, kk)).collect();
        let m = lj.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + lj.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse;
        let got = want.row_loglik[i];
        assert!((got - lse).abs() < 1e-8 * (1.0 + lse.abs()), "reference row {i}: {got} vs {lse}");
        for kk in 0..k {
            assert!((want.resp[i * k + kk] - (lj[kk] - lse).exp()).abs() < 1e-9, "reference resp row {i} class {kk}");
        }
    }
    let want_stats = reference::m_stats(&data, &kp, &want.resp);
    let (naive, _) = naive_stats(&data, &th, &want.resp);
    close_stats(&want_stats, &naive, 1e-8, "reference");

    // The fast CPU path (quadratic features and GEMM, blocked by pattern) against the references.
    let mut resp = be.alloc_resp(&dev, k).unwrap();
    let summary = e_step_one(&be, &dev, &kp, &mut resp).unwrap();
    let post = be.read_posteriors(&dev, &resp).unwrap();
    close(&post.row_loglik, &want.row_loglik, 1e-10, "row_loglik");
    close(&post.resp, &want.resp, 1e-10, "resp");
    assert!((summary.loglik - total).abs() < 1e-8 * total.abs());
    let stats = be.m_stats(&dev, &kp, &resp).unwrap();
    close_stats(&stats, &want_stats, 1e-9, "CPU backend");

    let mut resp2 = be.alloc_resp(&dev, k).unwrap();
    let (s2, fused) = e_step_stats_one(&be, &dev, &kp, &mut resp2).unwrap();
    assert!((s2.loglik - summary.loglik).abs() < 1e-9 * summary.loglik.abs());
    close(&fused.sum_dd, &stats.sum_dd, 1e-10, "fused sum_dd");
    close(&fused.sum_d, &stats.sum_d, 1e-10, "fused sum_d");
    close(&fused.cat, &stats.cat, 1e-12, "fused cat");

    // A batch of models in one pass gives each model's own results.
    let others: Vec<Params> = [1, k + 1].iter().map(|&kk| random_params(kk, p, &data.n_levels, &mut rng)).collect();
    let kps: Vec<_> = others.iter().map(|t| t.kernel_params(&data.patterns).unwrap()).collect();
    let mut resps: Vec<_> = [1, k + 1].iter().map(|&kk| be.alloc_resp(&dev, kk).unwrap()).collect();
    let mut r0 = be.alloc_resp(&dev, k).unwrap();
    let batch = {
        let mut models = vec![(&kp, &mut r0)];
        models.extend(kps.iter().zip(resps.iter_mut()));
        be.e_step(&dev, &mut models, Pass::WithStats)
            .map(|v| v.into_iter().map(|(s, t)| (s, t.expect("statistics"))).collect::<Vec<_>>())
            .unwrap()
    };
    assert_eq!(batch.len(), 3);
    close(&batch[0].1.sum_dd, &stats.sum_dd, 1e-10, "batch model 0 sum_dd");
    for (m, (kpm, (summary, st))) in kps.iter().zip(&batch[1..]).enumerate() {
        let mut single = be.alloc_resp(&dev, kpm.k).unwrap();
        let (s_single, st_single) = e_step_stats_one(&be, &dev, kpm, &mut single).unwrap();
        assert!((summary.loglik - s_single.loglik).abs() < 1e-9 * s_single.loglik.abs(), "batch model {m}");
        close(&st.sum_dd, &st_single.sum_dd, 1e-10, "batch sum_dd");
        close(&st.sum_d, &st_single.sum_d, 1e-10, "batch sum_d");
        close(&st.cat, &st_single.cat, 1e-12, "batch cat");
        let a = be.read_posteriors(&dev, &resps[m]).unwrap();
        let b = be.read_posteriors(&dev, &single).unwrap();
        close(&a.resp, &b.resp, 1e-10, "batch resp");
    }
}

#[test]
fn kernel_references_and_the_fast_cpu_path_agree_on_awkward_shapes() {
    // n crosses block (4096) and chunk (128) boundaries and is a multiple of neither.
    check_kernels(4096 + 129, 3, 4, 2, 0.0, 1);
    check_kernels(4096 + 129, 3, 4, 2, 0.2, 2);
    check_kernels(300, 1, 3, 1, 0.1, 3); // k = 1
    check_kernels(257, 4, 1, 0, 0.1, 4); // p = 1, no categoricals
    check_kernels(300, 3, 0, 4, 0.1, 5); // categoricals only
    check_kernels(200, 2, 6, 3, 0.5, 6); // many patterns, some rows fully missing
    check_kernels(300, 2, 60, 1, 0.02, 7); // wide block: 69-row feature chunks
}

#[test]
fn e_step_is_stable_for_extreme_log_densities() {
    // Rows far from every mean: log-densities near −1e4 must not underflow the posteriors.
    let mut s = synthetic(100, 2, 2, 0, 2, 1.0, 0.0, 7);
    for v in s.data.x.iter_mut() {
        *v = *v * 0.0 + 140.0;
    }
    let mut rng = Rng::new(1);
    let th = random_params(2, 2, &[], &mut rng);
    let post = predict::posteriors(&CpuBackend::new(), &s.data, &th).unwrap();
    assert!(post.row_loglik.iter().all(|v| v.is_finite() && *v < -1000.0));
    for r in post.resp.chunks(2) {
        assert!((r[0] + r[1] - 1.0).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// Missing values against closed forms.

fn tiny_params() -> Params {
    // Class 1: μ = (1, 2), Σ = [[2, 0.6], [0.6, 1]], α = (0.7, 0.3).
    // Class 2: μ = (−1, 0), Σ = [[1, 0], [0, 0.5]], α = (0.2, 0.8).
    Params {
        k: 2,
        p: 2,
        cov_type: CovType::Full,
        reg: 0.0,
        weights: vec![0.6, 0.4],
        n_levels: vec![2],
        alpha: vec![0.7, 0.3, 0.2, 0.8],
        means: vec![1.0, 2.0, -1.0, 0.0],
        covariances: vec![2.0, 0.6, 0.6, 1.0, 1.0, 0.0, 0.0, 0.5],
        var_floor: vec![],
    }
}

fn tiny_data(rows: &[(Option<f64>, Option<f64>, Option<u32>)]) -> MixtureData {
    let n = rows.len();
    let mut d = MixtureData {
        n,
        p: 2,
        x: vec![0.0; n * 2],
        n_levels: vec![2],
        codes: vec![MISSING_CODE; n],
        ..Default::default()
    };
    let mut obs = vec![false; n * 2];
    for (i, r) in rows.iter().enumerate() {
        if let Some(v) = r.0 {
            d.x[i * 2] = v;
            obs[i * 2] = true;
        }
        if let Some(v) = r.1 {
            d.x[i * 2 + 1] = v;
            obs[i * 2 + 1] = true;
        }
        if let Some(c) = r.2 {
            d.codes[i] = c;
        }
    }
    d.set_patterns(&obs);
    d
}

fn ln_normal(x: f64, mu: f64, var: f64) -> f64 {
    -0.5 * (LN_2PI + var.ln() + (x - mu) * (x - mu) / var)
}

#[test]
fn marginal_likelihood_of_rows_with_missing_values_is_exact() {
    let th = tiny_params();
    let rows = [
        (Some(1.5), None, Some(0)), // x2 missing
        (None, Some(2.5), None),    // x1 and the category missing
        (None, None, None),         // nothing observed
        (Some(0.0), Some(0.0), Some(1)),
    ];
    let data = tiny_data(&rows);
    let post = predict::posteriors(&CpuBackend::new(), &data, &th).unwrap();
    let lse = |a: f64, b: f64| a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln();
    // Row 0: Σ_k π_k α_k[0] N(1.5 | μ_k1, Σ_k11).
    let r0 = lse(
        0.6f64.ln() + 0.7f64.ln() + ln_normal(1.5, 1.0, 2.0),
        0.4f64.ln() + 0.2f64.ln() + ln_normal(1.5, -1.0, 1.0),
    );
    // Row 1: Σ_k π_k N(2.5 | μ_k2, Σ_k22).
    let r1 = lse(0.6f64.ln() + ln_normal(2.5, 2.0, 1.0), 0.4f64.ln() + ln_normal(2.5, 0.0, 0.5));
    // Row 3: bivariate densities by hand.
    let biv = |d1: f64, d2: f64, s11: f64, s12: f64, s22: f64| {
        let det = s11 * s22 - s12 * s12;
        let q = (s22 * d1 * d1 - 2.0 * s12 * d1 * d2 + s11 * d2 * d2) / det;
        -LN_2PI - 0.5 * det.ln() - 0.5 * q
    };
    let r3 = lse(
        0.6f64.ln() + 0.3f64.ln() + biv(-1.0, -2.0, 2.0, 0.6, 1.0),
        0.4f64.ln() + 0.8f64.ln() + biv(1.0, 0.0, 1.0, 0.0, 0.5),
    );
    let want = [r0, r1, 0.0, r3];
    for (i, w) in want.iter().enumerate() {
        assert!((post.row_loglik[i] - w).abs() < 1e-12, "row {i}: {} vs {w}", post.row_loglik[i]);
    }
    // A row with nothing observed gets the class weights as posteriors.
    assert!((post.resp[4] - 0.6).abs() < 1e-15 && (post.resp[5] - 0.4).abs() < 1e-15);
}

#[test]
fn expected_metric_is_the_posterior_weighted_conditional_mean() {
    let th = tiny_params();
    // x2 observed or not, it is never used to predict itself.
    let rows = [(Some(1.5), None, Some(0)), (Some(-0.5), Some(9.0), Some(1)), (None, None, None)];
    let data = tiny_data(&rows);
    let e = predict::expected_coordinate(&CpuBackend::new(), &data, &th, 1).unwrap();
    let want = |x1: f64, c: Option<usize>| {
        let a: [[f64; 2]; 2] = [[0.7, 0.3], [0.2, 0.8]];
        let l1 = 0.6f64.ln() + c.map_or(0.0, |c| a[0][c].ln()) + ln_normal(x1, 1.0, 2.0);
        let l2 = 0.4f64.ln() + c.map_or(0.0, |c| a[1][c].ln()) + ln_normal(x1, -1.0, 1.0);
        let p1 = 1.0 / (1.0 + (l2 - l1).exp());
        // E[x2 | x1, k] = μ_k2 + Σ_k21 / Σ_k11 (x1 − μ_k1)
        p1 * (2.0 + 0.6 / 2.0 * (x1 - 1.0)) + (1.0 - p1) * 0.0
    };
    assert!((e[0] - want(1.5, Some(0))).abs() < 1e-12, "{} vs {}", e[0], want(1.5, Some(0)));
    assert!((e[1] - want(-0.5, Some(1))).abs() < 1e-12);
    assert!((e[2] - (0.6 * 2.0 + 0.4 * 0.0)).abs() < 1e-12);
}

#[test]
fn m_step_uses_the_conditional_covariance_of_missing_blocks() {
    // With the oracle's Σ r (x̂ x̂ᵀ + C), the M-step covariance must equal that scatter / N_k.
    let s = synthetic(400, 2, 3, 1, 3, 1.5, 0.6, 31);
    let data = with_missing(s.data, 0.3, 32);
    let mut rng = Rng::new(33);
    let th = random_params(2, 3, &data.n_levels, &mut rng);
    let be = CpuBackend::new();
    let dev = be.upload(&data).unwrap();
    let kp = th.kernel_params(&data.patterns).unwrap();
    let mut resp = be.alloc_resp(&dev, 2).unwrap();
    let (_, stats) = e_step_stats_one(&be, &dev, &kp, &mut resp).unwrap();
    let post = be.read_posteriors(&dev, &resp).unwrap();
    let (naive, with_cond) = naive_stats(&data, &th, &post.resp);
    let (next, _) = th.m_step(&stats, &data.patterns, data.n).unwrap();
    for kk in 0..2 {
        let nk = naive.nk[kk];
        let delta: Vec<f64> = (0..3).map(|a| naive.sum_d[kk * 3 + a] / nk).collect();
        for a in 0..3 {
            assert!((next.means[kk * 3 + a] - (th.means[kk * 3 + a] + delta[a])).abs() < 1e-10);
            for b in 0..3 {
                let want = with_cond[kk * 9 + a * 3 + b] / nk - delta[a] * delta[b];
                assert!((next.covariances[kk * 9 + a * 3 + b] - want).abs() < 1e-9, "class {kk} ({a},{b})");
            }
        }
    }
}

#[test]
fn a_fit_with_missing_values_reports_the_hand_computed_marginal_likelihood() {
    // K = 1, two metrics, one categorical; a quarter of the cells missing. The fitted model's
    // log-likelihood must be the sum over rows of the closed-form marginal densities under
    // the fitted μ, Σ, α.
    let mut rng = Rng::new(77);
    let mut rows = Vec::new();
    for _ in 0..60 {
        let z1 = rng.normal();
        let x1 = 1.0 + z1;
        let x2 = -0.5 + 0.8 * z1 + 0.6 * rng.normal();
        let c = (rng.uniform() < 0.3) as u32;
        let miss = rng.below(4);
        rows.push((
            (miss != 1).then_some(x1),
            (miss != 2).then_some(x2),
            (miss != 3 || rng.uniform() < 0.5).then_some(c),
        ));
    }
    let data = tiny_data(&rows);
    let cfg = FitConfig { reg: 0.0, tol: 1e-12, max_iter: 500, ..config(1, 1) };
    let sweep = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
    let th = &sweep.params;
    let (m1, m2) = (th.means[0], th.means[1]);
    let (s11, s12, s22) = (th.covariances[0], th.covariances[1], th.covariances[3]);
    let mut want = 0.0;
    for r in &rows {
        want += match (r.0, r.1) {
            (Some(a), Some(b)) => {
                let (d1, d2) = (a - m1, b - m2);
                let det = s11 * s22 - s12 * s12;
                -LN_2PI - 0.5 * det.ln() - 0.5 * (s22 * d1 * d1 - 2.0 * s12 * d1 * d2 + s11 * d2 * d2) / det
            }
            (Some(a), None) => ln_normal(a, m1, s11),
            (None, Some(b)) => ln_normal(b, m2, s22),
            (None, None) => 0.0,
        };
        if let Some(c) = r.2 {
            want += th.alpha[c as usize].ln();
        }
    }
    let got = sweep.best_run().loglik;
    assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
    // And the categorical estimate is the Laplace-smoothed observed frequency.
    let seen: Vec<u32> = rows.iter().filter_map(|r| r.2).collect();
    let ones = seen.iter().filter(|&&c| c == 1).count() as f64;
    assert!((th.alpha[1] - (ones + 1.0) / (seen.len() as f64 + 2.0)).abs() < 1e-12);
}

// ---------------------------------------------------------------------------------------------
// EM over shards (the worker protocol of a fit past one machine).

#[test]
fn em_over_shards_matches_one_shard_whatever_the_split() {
    use segmix::mixture::shards::{LocalShards, run_em};

    // Mixed data with missing values in many patterns; a start away from the optimum.
    let s = synthetic(3000, 3, 4, 2, 3, 1.5, 0.6, 31);
    let data = with_missing(s.data, 0.12, 7);
    assert!(data.patterns.len() > 8);
    let start = {
        let mut th = random_params(3, data.p, &data.n_levels, &mut Rng::new(3));
        th.reg = 1e-6;
        th
    };
    let cfg = FitConfig { tol: 1e-9, max_iter: 200, ..config(3, 1) };
    let cpu = CpuBackend::new();
    let whole = LocalShards::new(&cpu, vec![data.clone()], 3).unwrap();
    let one = run_em(&mut { whole }, start.clone(), &cfg, &NoProgress).unwrap();
    assert!(one.iterations > 5 && one.converged);
    assert!(one.trace.windows(2).all(|w| w[1] >= w[0] - 1e-9 * w[0].abs()), "EM over shards is monotone");
    let labels_of = |th: &Params| {
        let post = predict::posteriors(&cpu, &data, th).unwrap();
        post.labels()
    };
    // Contiguous shards of unequal sizes, and a shard holding rows of only some patterns.
    for cuts in [vec![0, 1000, 2000, 3000], vec![0, 17, 2900, 3000], vec![0, 1500, 3000]] {
        let parts: Vec<MixtureData> = cuts.windows(2).map(|w| data.rows(&(w[0]..w[1]).collect::<Vec<_>>())).collect();
        let mut shards = LocalShards::new(&cpu, parts, 3).unwrap();
        let run = run_em(&mut shards, start.clone(), &cfg, &NoProgress).unwrap();
        assert_eq!(run.iterations, one.iterations, "{cuts:?}");
        assert!(
            (run.loglik - one.loglik).abs() <= 1e-9 * one.loglik.abs(),
            "{cuts:?}: {} vs {}",
            run.loglik,
            one.loglik
        );
        assert_eq!(labels_of(&run.params), labels_of(&one.params), "{cuts:?}");
    }
}
