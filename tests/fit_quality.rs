//! Fits that are right: starts that find the optimum, degenerate fits never selected,
//! log-likelihoods on the data's own scale, log-modelled metrics, few-valued columns.

use std::fmt::Write as _;

use segmix::backend::{CpuBackend, MixtureData};
use segmix::featurize::schema::{NumericSchema, Transform};
use segmix::foundation::metrics::adjusted_rand_index;
use segmix::foundation::rng::Rng;
use segmix::mixture::em::{FitConfig, NoProgress, Progress, RIDGE_DOMINATED, degeneracies, fit_sweep};
use segmix::mixture::params::Params;
use segmix::mixture::{CovType, predict};
use segmix::pipeline::{self, FitJob};

use crate::util::{fit, labels, roles, write};

const LN_2PI: f64 = 1.8378770664093453;

fn sweep_config(k_min: usize, k_max: usize, n_init: usize) -> FitConfig {
    FitConfig { k_min, k_max, n_init, ..FitConfig::default() }
}

/// Three classes: 0 and 2 share one Gaussian and differ only in their three categoricals.
fn categorical_twins(n: usize, seed: u64) -> (MixtureData, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let (p, j) = (2, 3);
    let means = [[0.0, 0.0], [4.0, 1.0], [0.0, 0.0]];
    let dominant = [[0u32, 0, 0], [1, 1, 1], [2, 2, 2]];
    let mut x = vec![0.0; n * p];
    let mut codes = vec![0; n * j];
    let mut truth = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.below(3);
        truth.push(c as u32);
        for a in 0..p {
            x[i * p + a] = means[c][a] + rng.normal();
        }
        for jj in 0..j {
            codes[i * j + jj] = if rng.uniform() < 0.7 { dominant[c][jj] } else { rng.below(3) as u32 };
        }
    }
    let mut data = MixtureData { n, p, x, n_levels: vec![3; j], codes, ..MixtureData::default() };
    data.set_patterns(&vec![true; n * p]);
    (data, truth)
}

#[test]
fn starts_find_classes_that_differ_only_in_their_categoricals() {
    let (data, truth) = categorical_twins(3000, 5);
    let sweep = fit_sweep(&CpuBackend::new(), &data, &sweep_config(3, 3, 2), &NoProgress).unwrap();
    let ari = adjusted_rand_index(&labels(&sweep.posteriors.resp, 3), &truth);
    assert!(ari > 0.6, "ARI {ari}: the twins were not separated");
    // Every kept restart reached the optimum (they agree).
    let s = sweep.selected();
    assert_eq!(s.stability.near, 1, "{:?}", s.stability);
    assert!(s.stability.min_ari > 0.99, "{:?}", s.stability);
    assert!(sweep.screened >= 8, "screened {}", sweep.screened);
}

#[test]
fn sweeps_are_reproducible_and_cover_every_k() {
    let (data, _) = categorical_twins(800, 9);
    let a = fit_sweep(&CpuBackend::new(), &data, &sweep_config(2, 4, 2), &NoProgress).unwrap();
    let b = fit_sweep(&CpuBackend::new(), &data, &sweep_config(2, 4, 2), &NoProgress).unwrap();
    let bits = |s: &segmix::mixture::em::Sweep| {
        s.runs.iter().map(|r| (r.k, r.start.clone(), r.loglik.to_bits())).collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.per_k.iter().map(|s| s.k).collect::<Vec<_>>(), vec![2, 3, 4]);
    // K = 3 and 4 had splits of the K − 1 fit among their candidates; the records say which
    // start each restart came from.
    assert!(a.runs.iter().all(|r| !r.start.is_empty()));
}

/// A K = 2 model on p = 2 with class 2 given by `cov2` and weight `w2`.
fn two_class_params(w2: f64, cov2: [f64; 4]) -> Params {
    Params {
        k: 2,
        p: 2,
        cov_type: CovType::Full,
        reg: 1e-6,
        weights: vec![1.0 - w2, w2],
        n_levels: vec![],
        alpha: vec![],
        means: vec![0.0, 0.0, 3.0, 3.0],
        covariances: [[1.0, 0.2, 0.2, 1.0], cov2].concat(),
        var_floor: vec![],
    }
}

#[test]
fn the_degenerate_rule_flags_few_rows_and_ridge_held_covariances() {
    let data = MixtureData { n: 1000, p: 2, names: vec!["a".into(), "rating".into()], ..MixtureData::default() };
    // Healthy.
    assert!(degeneracies(&two_class_params(0.3, [0.5, 0.1, 0.1, 0.4]), &data).is_empty());
    // 2 rows for a 2-dimensional covariance (needs 3).
    let few = degeneracies(&two_class_params(0.002, [0.5, 0.1, 0.1, 0.4]), &data);
    assert_eq!(few.len(), 1, "{few:?}");
    assert!(few[0].contains("class 2 holds 2.00 rows"), "{few:?}");
    // Many rows, but no variance along "rating" beyond the ridge: a spike.
    let spike = degeneracies(&two_class_params(0.4, [0.5, 0.0, 0.0, 1e-6]), &data);
    assert_eq!(spike.len(), 1, "{spike:?}");
    assert!(spike[0].contains("class 2") && spike[0].contains("rating"), "{spike:?}");
    // Just above the threshold is not degenerate.
    let ok = degeneracies(&two_class_params(0.4, [0.5, 0.0, 0.0, 2.0 * RIDGE_DOMINATED * 1e-6]), &data);
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn a_spike_on_repeated_rows_is_never_selected() {
    // Three clusters plus 12 identical rows: a class on those rows has zero variance, and its
    // likelihood is unbounded up to the ridge.
    let mut rng = Rng::new(3);
    let centres = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]];
    let mut csv = String::from("a,b\n");
    for i in 0..600 {
        let c = centres[i % 3];
        writeln!(csv, "{},{}", c[0] + rng.normal(), c[1] + rng.normal()).unwrap();
    }
    for _ in 0..12 {
        csv.push_str("3,3\n");
    }
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "spike.csv", &csv);
    let out = fit(&path, roles(&[], &["a", "b"], None), None, sweep_config(2, 5, 3)).unwrap();
    let best = out.sweep.best_run();
    assert!(best.eligible(), "selected a degenerate fit: {:?}", best.degenerate);
    // A class on the duplicates alone, with the ridge as its covariance, would add about 16 nats
    // per row (≈ 190 on 12 rows) and win by BIC. Eligible fits only gain what a real class gives.
    let ll3 = out.sweep.per_k[1].loglik.expect("K=3 has an eligible fit");
    for s in &out.sweep.per_k {
        let ll = s.loglik.unwrap_or_else(|| panic!("K={} has no eligible fit", s.k));
        assert!(ll < ll3 + 60.0, "K={}: ℓ {ll} against {ll3} at K=3 looks like a spike", s.k);
    }
    assert!((3..=4).contains(&best.k), "{:?}", out.sweep.per_k);
}

/// ℓ of one full-covariance Gaussian fitted by maximum likelihood to the rows of `x` (n × p).
fn gaussian_mle_loglik(x: &[f64], p: usize) -> f64 {
    let n = x.len() / p;
    let mean: Vec<f64> = (0..p).map(|a| x.iter().skip(a).step_by(p).sum::<f64>() / n as f64).collect();
    let mut s = vec![0.0; p * p];
    for r in x.chunks(p) {
        for a in 0..p {
            for b in 0..p {
                s[a * p + b] += (r[a] - mean[a]) * (r[b] - mean[b]) / n as f64;
            }
        }
    }
    let l = segmix::foundation::linalg::cholesky(&s, p).unwrap();
    let log_det: f64 = (0..p).map(|a| 2.0 * l[a * p + a].ln()).sum();
    -0.5 * n as f64 * (p as f64 * LN_2PI + log_det + p as f64)
}

#[test]
fn log_likelihood_is_on_the_data_scale_with_the_log_jacobian() {
    // Two metrics on very different scales; one of them positive and modelled on the log scale.
    let mut rng = Rng::new(21);
    let n = 400;
    let mut rows = Vec::new();
    let mut csv = String::from("spend,ctr\n");
    for _ in 0..n {
        let spend = 5000.0 + 800.0 * rng.normal();
        let ctr = (-3.0 + 0.4 * rng.normal() + 0.0001 * (spend - 5000.0)).exp();
        rows.push((spend, ctr));
        writeln!(csv, "{spend},{ctr}").unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "m.csv", &csv);
    let cfg = sweep_config(1, 1, 1);

    // Raw scale: ℓ equals the hand-computed Gaussian MLE on the raw values.
    let out = fit(&path, roles(&[], &["spend", "ctr"], None), None, cfg.clone()).unwrap();
    let raw: Vec<f64> = rows.iter().flat_map(|r| [r.0, r.1]).collect();
    let want = gaussian_mle_loglik(&raw, 2);
    let got = out.model.fit.loglik;
    assert!((got - want).abs() < 1e-3, "raw-scale ℓ {got} vs hand {want}");

    // With --log ctr: ℓ = Gaussian MLE of (spend, ln ctr) − Σ ln ctr (the log's Jacobian).
    let out =
        crate::util::fit_with(&path, roles(&[], &["spend", "ctr"], None), &[("ctr", Transform::Log)], cfg).unwrap();
    let logged: Vec<f64> = rows.iter().flat_map(|r| [r.0, r.1.ln()]).collect();
    let want = gaussian_mle_loglik(&logged, 2) - rows.iter().map(|r| r.1.ln()).sum::<f64>();
    let got = out.model.fit.loglik;
    assert!((got - want).abs() < 1e-3, "log-scale ℓ {got} vs hand {want}");
    assert_eq!(out.model.schema.numeric[1].transform, Transform::Log);
    // Row log-likelihoods add up to the same number.
    let rows_sum: f64 = out.sweep.posteriors.row_loglik.iter().sum();
    assert!((rows_sum - got).abs() < 1e-6 * got.abs(), "{rows_sum} vs {got}");
}

#[test]
fn expected_value_of_a_log_modelled_metric_is_the_log_normal_mixture_mean() {
    // K = 2, one categorical (2 levels), one metric modelled as ln y, standardized with (a, b).
    let (a, b) = (-2.0, 0.8);
    let params = Params {
        k: 2,
        p: 1,
        cov_type: CovType::Full,
        reg: 0.0,
        weights: vec![0.6, 0.4],
        n_levels: vec![2],
        alpha: vec![0.8, 0.2, 0.3, 0.7],
        means: vec![-0.5, 1.0],
        covariances: vec![0.6, 0.9],
        var_floor: vec![],
    };
    let ns = NumericSchema { name: "ctr".into(), mean: a, sd: b, transform: Transform::Log, resolution: None };
    // One row showing level 0 and a metric (which is never used to predict itself).
    let mut data =
        MixtureData { n: 1, p: 1, x: vec![2.5], n_levels: vec![2], codes: vec![0], ..MixtureData::default() };
    data.set_patterns(&[true]);
    let got =
        predict::expected_with(&CpuBackend::new(), &data, &params, 0, &|m, v| ns.expected_original(m, v)).unwrap()[0];

    // Monte Carlo from the generative model: draws with level 0, average of y.
    let mut rng = Rng::new(77);
    let (mut sum, mut sum2, mut count) = (0.0, 0.0, 0usize);
    for _ in 0..400_000 {
        let k = if rng.uniform() < 0.6 { 0 } else { 1 };
        let level = if rng.uniform() < params.alpha[k * 2] { 0 } else { 1 };
        let u = params.means[k] + params.covariances[k].sqrt() * rng.normal();
        if level == 0 {
            let y = (a + b * u).exp();
            sum += y;
            sum2 += y * y;
            count += 1;
        }
    }
    let mean = sum / count as f64;
    let se = ((sum2 / count as f64 - mean * mean) / count as f64).sqrt();
    assert!((got - mean).abs() < 4.0 * se, "expected {got}, Monte Carlo {mean} ± {se}");
    // exp of the mean log would be clearly off.
    let naive = predict::expected_with(&CpuBackend::new(), &data, &params, 0, &|m, _| ns.original(m)).unwrap()[0];
    assert!((naive - mean).abs() > 10.0 * se, "the test cannot tell exp(E[ln y]) from E[y]: {naive} vs {mean}");
}

#[test]
fn log_transform_refuses_non_positive_values_naming_the_row() {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "t.csv", "ctr,g\n0.1,a\n0.2,b\n0,a\n0.3,b\n");
    let e =
        crate::util::fit_with(&path, roles(&["g"], &["ctr"], None), &[("ctr", Transform::Log)], sweep_config(1, 2, 1))
            .unwrap_err()
            .to_string();
    assert!(e.contains("t.csv") && e.contains("line 4") && e.contains("\"ctr\"") && e.contains("> 0"), "{e}");
    // log1p takes the zero.
    crate::util::fit_with(&path, roles(&["g"], &["ctr"], None), &[("ctr", Transform::Log1p)], sweep_config(1, 2, 1))
        .unwrap();
}

#[test]
fn few_valued_columns_get_a_floor_and_a_warning_and_no_class_collapses_on_them() {
    // Two clusters in x; a 1–5 rating that is all 5 in the first cluster.
    let mut rng = Rng::new(4);
    let mut csv = String::from("x,rating,votes\n");
    for i in 0..1200 {
        let c = i % 2;
        let x = if c == 0 { rng.normal() } else { 5.0 + rng.normal() };
        let rating = if c == 0 { 5 } else { 1 + rng.below(5) };
        let votes = if rng.uniform() < 0.7 { 0 } else { rng.below(40) };
        writeln!(csv, "{x},{rating},{votes}").unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "r.csv", &csv);
    let out = fit(&path, roles(&[], &["x", "rating", "votes"], None), None, sweep_config(1, 4, 2)).unwrap();
    let num = &out.model.schema.numeric;
    assert_eq!(num[1].resolution, Some(1.0), "rating recorded in steps of 1");
    assert_eq!(num[2].resolution, Some(1.0), "votes pile up at 0, next value 1");
    assert_eq!(num[0].resolution, None);
    assert!(
        out.warnings.iter().any(|w| w.contains("\"rating\" has only 5 distinct values") && w.contains("--cat")),
        "{:?}",
        out.warnings
    );
    assert!(out.sweep.best_run().eligible());
    // The class holding every 5 keeps a rating variance of at least 1/12 (raw units).
    let p = &out.model.params;
    for k in 0..p.k {
        let var = p.covariances[k * p.p * p.p + p.p + 1] * num[1].sd * num[1].sd;
        assert!(var >= 1.0 / 12.0, "class {} rating variance {var}", k + 1);
    }
}

/// Records the order in which a fit reports to its [`Progress`].
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<String>>);

impl Progress for Events {
    fn data_warnings(&self, warnings: &[String]) {
        let mut e = self.0.lock().unwrap();
        e.extend(warnings.iter().map(|w| format!("warning: {w}")));
    }
    fn sweep_started(&self, _total_runs: usize) {
        self.0.lock().unwrap().push("sweep".into());
    }
}

/// The data's warnings (here a 1-5 rating) reach the caller before the first fit starts, and
/// are the first of the fit's warnings.
#[test]
fn data_warnings_are_reported_before_the_sweep() {
    let mut rng = Rng::new(5);
    let mut csv = String::from("x,rating\n");
    for _ in 0..300 {
        writeln!(csv, "{},{}", rng.normal(), 1 + rng.below(5)).unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "r.csv", &csv);
    let job = FitJob {
        data: path,
        roles: roles(&[], &["x", "rating"], None),
        embeddings: None,
        pca_dims: 8,
        transforms: Vec::new(),
        config: sweep_config(1, 2, 1),
    };
    let events = Events::default();
    let out = pipeline::fit(&CpuBackend::new(), &job, None, &events).unwrap();
    let events = events.0.into_inner().unwrap();
    let sweep = events.iter().position(|e| e == "sweep").expect("the sweep started");
    let warned = events.iter().position(|e| e.contains("\"rating\" has only 5 distinct values"));
    assert!(warned.is_some_and(|w| w < sweep), "{events:?}");
    assert_eq!(events[..sweep].iter().map(|e| &e["warning: ".len()..]).collect::<Vec<_>>(), out.warnings[..sweep]);
}

#[test]
fn a_selected_k_at_the_end_of_the_range_is_reported() {
    let (data, _) = categorical_twins(900, 2);
    let sweep = fit_sweep(&CpuBackend::new(), &data, &sweep_config(1, 2, 1), &NoProgress).unwrap();
    assert_eq!(sweep.best_run().k, 2);
    let w = sweep.selection_warnings((1, 2));
    assert!(w.iter().any(|w| w.contains("top of the --k range 1..2") && w.contains("--k 1..5")), "{w:?}");
}

#[test]
fn big_tables_screen_their_starts_on_a_sample() {
    // Over SCREEN_SAMPLE rows: the starts are screened on a seeded sample, and the survivors'
    // parameters run on every row.
    let n = segmix::mixture::em::SCREEN_SAMPLE + 1500;
    let (data, truth) = categorical_twins(n, 8);
    let cfg = sweep_config(3, 3, 1);
    let a = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
    let ari = adjusted_rand_index(&labels(&a.posteriors.resp, 3), &truth);
    assert!(ari > 0.6, "ARI {ari}");
    assert_eq!(a.posteriors.resp.len(), n * 3, "every row is scored");
    let b = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
    assert_eq!(a.best_run().loglik.to_bits(), b.best_run().loglik.to_bits());
}

#[test]
fn a_subset_of_rows_keeps_their_values_patterns_and_jacobian() {
    let mut data = MixtureData {
        n: 3,
        p: 2,
        x: vec![1.0, 2.0, 3.0, 0.0, 5.0, 6.0],
        n_levels: vec![2],
        codes: vec![0, 1, 1],
        log_jacobian: vec![-1.0, -2.0, -3.0],
        ..MixtureData::default()
    };
    data.set_patterns(&[true, true, true, false, true, true]);
    let sub = data.rows(&[1, 2]);
    assert_eq!(
        (sub.n, sub.x.clone(), sub.codes.clone(), sub.log_jacobian.clone()),
        (2, vec![3.0, 0.0, 5.0, 6.0], vec![1, 1], vec![-2.0, -3.0])
    );
    assert_eq!(sub.patterns[sub.pattern[0] as usize], vec![true, false]);
    assert_eq!(sub.patterns[sub.pattern[1] as usize], vec![true, true]);
}

#[test]
fn restarts_converge_at_the_requested_tolerance_not_the_screens() {
    // The screen stops starts at a looser tolerance; the survivors must resume and meet --tol.
    // (A regression: they used to repeat their last E-step, see no change and stop.)
    let (data, _) = categorical_twins(600, 13);
    let cfg = FitConfig { tol: 1e-9, ..sweep_config(2, 3, 2) };
    let sweep = fit_sweep(&CpuBackend::new(), &data, &cfg, &NoProgress).unwrap();
    for r in &sweep.runs {
        let t = &r.trace;
        assert!(r.converged && t.len() >= 2, "K={} restart {}", r.k, r.restart);
        let (last, prev) = (t[t.len() - 1], t[t.len() - 2]);
        assert!((last - prev).abs() <= 1e-9 * 600.0, "K={} restart {}: Δ {}", r.k, r.restart, last - prev);
        assert!(
            t.windows(2).all(|w| w[0].to_bits() != w[1].to_bits()),
            "K={} restart {}: a repeated E-step",
            r.k,
            r.restart
        );
    }
}

#[test]
fn small_screens_alternate_partitions_with_random_responsibilities() {
    use segmix::mixture::init::{Assignment, StartSpaces};
    let (data, _) = categorical_twins(300, 4);
    let spaces = StartSpaces::new(&data);
    let soft = spaces.starts(4, 12, 7, true);
    let kinds: Vec<bool> = soft.iter().map(|s| matches!(s.assign, Assignment::SoftRandom(_))).collect();
    assert_eq!(kinds, (0..12).map(|i| i % 2 == 1).collect::<Vec<_>>(), "every other start is soft");
    assert!(spaces.starts(4, 12, 7, false).iter().all(|s| matches!(s.assign, Assignment::Labels(_))));
    // Soft starts: rows of positive responsibilities summing to 1, reproducible by seed, and
    // not all alike.
    let (a, b) = (soft[1].responsibilities(data.n), spaces.starts(4, 12, 7, true)[1].responsibilities(data.n));
    assert_eq!(a, b);
    for row in a.chunks(4) {
        assert!(row.iter().all(|&r| r > 0.0) && (row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert_ne!(a, soft[3].responsibilities(data.n));
    assert_eq!(soft[1].name, "soft random");
    // Hard starts as one-hot responsibilities.
    let hard = soft[0].responsibilities(data.n);
    assert!(hard.chunks(4).all(|row| row.iter().filter(|&&r| r == 1.0).count() == 1 && row.iter().sum::<f64>() == 1.0));
}

/// 200 rows of four skewed, non-Gaussian columns: at K = 6 the likelihood has many local optima.
fn skewed_table(seed: u64) -> MixtureData {
    let (n, p) = (200, 4);
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(n * p);
    for _ in 0..n {
        let e = -(1.0 - rng.uniform()).ln();
        x.extend([
            e + (-(1.0 - rng.uniform()).ln()),
            e + 0.3 * rng.normal(),
            rng.normal().powi(2),
            3.0 * rng.uniform(),
        ]);
    }
    let mut data = MixtureData { n, p, x, ..MixtureData::default() };
    data.set_patterns(&vec![true; n * p]);
    data
}

#[test]
fn split_merge_moves_keep_every_rows_mass_and_are_reproducible() {
    use segmix::mixture::init::{Assignment, StartSpaces};
    let data = skewed_table(1);
    let sweep = fit_sweep(&CpuBackend::new(), &data, &sweep_config(4, 4, 1), &NoProgress).unwrap();
    let (theta, resp) = (&sweep.params, &sweep.posteriors.resp);
    let spaces = StartSpaces::new(&data);
    let moves = spaces.split_merges(theta, resp, 7, 3, 0);
    assert_eq!(moves.len(), 7);
    assert_eq!(
        spaces.split_merges(theta, resp, 7, 3, 0)[6].responsibilities(data.n),
        moves[6].responsibilities(data.n)
    );
    for m in &moves {
        assert!(matches!(m.assign, Assignment::Soft(_)));
        // "merge i+j split c": class i holds r_i + r_j; c and j share r_c, each row wholly on one side.
        let ids: Vec<usize> = m
            .name
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().unwrap() - 1)
            .collect();
        let (i, j, c) = (ids[0], ids[1], ids[2]);
        assert!(i != j && c != i && c != j, "{}", m.name);
        let r = m.responsibilities(data.n);
        for (new, old) in r.chunks(4).zip(resp.chunks(4)) {
            assert!((new.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!((new[i] - old[i] - old[j]).abs() < 1e-15);
            assert!(new[c] == old[c] && new[j] == 0.0 || new[j] == old[c] && new[c] == 0.0);
        }
    }
    // Both sides of a split class get rows.
    let r = moves[0].responsibilities(data.n);
    let ids: Vec<usize> = moves[0]
        .name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().unwrap() - 1)
        .collect();
    assert!(r.chunks(4).any(|row| row[ids[1]] > 0.5) && r.chunks(4).any(|row| row[ids[2]] > 0.5));
    // K = 2 has no move (a merge and a split need three classes).
    let two = fit_sweep(&CpuBackend::new(), &data, &sweep_config(2, 2, 1), &NoProgress).unwrap();
    assert!(spaces.split_merges(&two.params, &two.posteriors.resp, 10, 3, 0).is_empty());
}

#[test]
fn split_merge_rounds_are_kept_only_when_they_improve_the_best_restart() {
    let data = skewed_table(3);
    let sweep = fit_sweep(&CpuBackend::new(), &data, &sweep_config(6, 6, 5), &NoProgress).unwrap();
    let moves: Vec<&segmix::mixture::em::RunRecord> =
        sweep.runs.iter().filter(|r| r.start.starts_with("merge ")).collect();
    assert!(
        !moves.is_empty(),
        "no split-and-merge move improved the restarts: {:?}",
        sweep.runs.iter().map(|r| (&r.start, r.loglik)).collect::<Vec<_>>()
    );
    // Each kept move beats every restart before it, is eligible, and the best of all is the last.
    for (i, r) in sweep.runs.iter().enumerate().filter(|(_, r)| r.start.starts_with("merge ")) {
        let before =
            sweep.runs[..i].iter().filter(|q| q.eligible()).map(|q| q.loglik).fold(f64::NEG_INFINITY, f64::max);
        assert!(r.eligible() && r.loglik > before, "{} {} ≤ {before}", r.start, r.loglik);
        assert_eq!(r.restart, i + 1);
    }
    assert_eq!(sweep.best_run().start, moves.last().unwrap().start);
    assert_eq!(sweep.selected().restarts, sweep.runs.len());
    // Reproducible.
    let again = fit_sweep(&CpuBackend::new(), &data, &sweep_config(6, 6, 5), &NoProgress).unwrap();
    assert_eq!(again.best_run().loglik, sweep.best_run().loglik);
}
