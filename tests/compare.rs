//! `segmix compare`: scores and k-means against scikit-learn, k-prototypes against a hand
//! computation, row serialisation, and the comparison on the demo data.

use segmix::compare::baselines::{MixedRows, RowTemplate, iterate, kmeans_restarts, kprototypes};
use segmix::data::MISSING_CODE;
use segmix::metrics::{adjusted_rand_index, calinski_harabasz, davies_bouldin, normalized_mutual_info, silhouettes};
use segmix::rng::Rng;

use crate::util::repo_file;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Numbers from scikit-learn 1.9.1, made by scripts/make_compare_fixture.py.
#[test]
fn scores_and_kmeans_match_scikit_learn() {
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("tests/fixtures/compare_reference.json")).unwrap())
            .unwrap();
    let rows = f["x"].as_array().unwrap();
    let (n, dim) = (rows.len(), 4);
    let x: Vec<f64> = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap())).collect();
    let labels =
        |key: &str| -> Vec<u32> { f[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
    let (a, b) = (labels("labels_a"), labels("labels_b"));
    let want = |key: &str, i: usize| f[key][i].as_f64().unwrap();
    let sil = silhouettes(&x, n, dim, &[&a, &b]);
    for (i, l) in [&a, &b].iter().enumerate() {
        let s = sil[i].unwrap();
        assert!(rel(s, want("silhouette", i)) < 1e-6, "silhouette {i}: {s} vs {}", want("silhouette", i));
        let d = davies_bouldin(&x, n, dim, l).unwrap();
        assert!(rel(d, want("davies_bouldin", i)) < 1e-6, "Davies–Bouldin {i}: {d}");
        let c = calinski_harabasz(&x, n, dim, l).unwrap();
        assert!(rel(c, want("calinski_harabasz", i)) < 1e-6, "Calinski–Harabasz {i}: {c}");
    }
    assert!(rel(adjusted_rand_index(&a, &b), f["ari_ab"].as_f64().unwrap()) < 1e-6);
    assert!(rel(normalized_mutual_info(&a, &b), f["nmi_ab"].as_f64().unwrap()) < 1e-6);
    let km = kmeans_restarts(&x, n, dim, 3, 10, 0);
    let want_inertia = f["kmeans3_inertia"].as_f64().unwrap();
    assert!(rel(km.inertia, want_inertia) < 1e-6, "k-means inertia {} vs scikit-learn {want_inertia}", km.inertia);
    // Undefined cases are None, as scikit-learn refuses them.
    assert_eq!(silhouettes(&x, n, dim, &[&vec![0u32; n]])[0], None);
    assert_eq!(davies_bouldin(&x, n, dim, &vec![0u32; n]), None);
}

/// Six rows, K = 2, γ = 1: numerics {0, 0.1, 0.2} and {5, 5.1, 5.2}, categories a a b | b b a.
/// Means 0.1 and 5.1, modes a and b: cost 4 × 0.01 + 2 mismatches × γ = 2.04.
#[test]
fn kprototypes_matches_a_hand_computed_case() {
    let num = [0.0, 0.1, 0.2, 5.0, 5.1, 5.2];
    let codes = [0u32, 0, 1, 1, 1, 0];
    let rows = MixedRows { n: 6, p: 1, num: &num, n_levels: &[2], codes: &codes };
    let kp = kprototypes(&rows, 2, 1.0, 5, 3).unwrap();
    assert!((kp.cost - 2.04).abs() < 1e-12, "cost {}", kp.cost);
    assert_eq!(kp.labels[0], kp.labels[2]);
    assert_ne!(kp.labels[0], kp.labels[3]);
    let c0 = kp.labels[0] as usize;
    assert!((kp.means[c0] - 0.1).abs() < 1e-12);
    assert_eq!(kp.modes[c0], 0);
    assert_eq!(kp.modes[1 - c0], 1);
}

#[test]
fn kprototypes_cost_never_increases() {
    let mut rng = Rng::new(5);
    let (n, p, j) = (400, 3, 2);
    let num: Vec<f64> =
        (0..n * p).map(|i| if i % 37 == 0 { f64::NAN } else { rng.normal() + (i / p % 3) as f64 }).collect();
    let codes: Vec<u32> = (0..n * j).map(|i| if i % 29 == 0 { MISSING_CODE } else { rng.below(4) as u32 }).collect();
    let rows = MixedRows { n, p, num: &num, n_levels: &[4, 4], codes: &codes };
    // Deliberately poor start: the first K rows.
    let k = 5;
    let means: Vec<f64> = (0..k * p).map(|i| if num[i].is_nan() { 0.0 } else { num[i] }).collect();
    let modes: Vec<u32> = (0..k * j).map(|i| if codes[i] == MISSING_CODE { 0 } else { codes[i] }).collect();
    let run = iterate(&rows, k, 0.5, means, modes);
    assert!(run.trace.len() >= 2, "{:?}", run.trace);
    for w in run.trace.windows(2) {
        assert!(w[1] <= w[0] + 1e-9, "cost went up: {:?}", run.trace);
    }
}

#[test]
fn rows_serialise_by_template() {
    let cols: Vec<String> = ["Country", "CTR", "Ad_Text"].iter().map(|s| s.to_string()).collect();
    let cells = [Some("KR".to_string()), None, Some("Claim free gems".to_string())];
    let default = RowTemplate::new(None, &cols).unwrap();
    assert_eq!(default.render(&cells, true), "Country: KR, Ad_Text: Claim free gems");
    let first_missing = [None, Some("0.03".to_string()), Some("x".to_string())];
    assert_eq!(default.render(&first_missing, true), "CTR: 0.03, Ad_Text: x");
    let custom = RowTemplate::new(Some("{Ad_Text} ({Country}, CTR {CTR})"), &cols).unwrap();
    assert_eq!(custom.render(&cells, false), "Claim free gems (KR, CTR )");
    let err = RowTemplate::new(Some("{Channel}: {Ad_Text}"), &cols).unwrap_err().to_string();
    assert!(err.contains("{Channel}") && err.contains("Country, CTR, Ad_Text"), "{err}");
    assert!(RowTemplate::new(Some("{Ad_Text"), &cols).is_err());
}

/// The whole command on the demo: the exact CSV columns, every method at every K, ARI and NMI
/// against `true_segment`, the outlier column, and the joint model's ARI at least every
/// baseline's.
#[test]
fn compare_on_the_demo_scores_every_method() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    let data = repo_file("examples/game_ads.csv");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_segmix"))
        .args(["compare", data.to_str().unwrap(), "--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS"])
        .args(["--text", "Ad_Text", "--k", "3..5", "--n-init", "3", "--truth", "true_segment", "--outliers", "0.02"])
        .args(["--device", "cpu", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "method,k,silhouette,davies_bouldin,calinski_harabasz,ari,nmi,seconds");
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    let methods = ["segmix", "kmeans", "kprototypes", "embedding_kmeans", "gmm_text"];
    assert_eq!(rows.len(), methods.len() * 3);
    let best_ari = |m: &str| {
        rows.iter().filter(|r| r[0] == m).map(|r| r[5].parse::<f64>().unwrap()).fold(f64::NEG_INFINITY, f64::max)
    };
    for m in methods {
        let mine: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == m).collect();
        assert_eq!(mine.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(), ["3", "4", "5"], "{m}");
        for r in mine {
            for v in &r[2..8] {
                let v: f64 = v.parse().unwrap_or_else(|_| panic!("{m}: {r:?}"));
                assert!(v.is_finite(), "{m}: {r:?}");
            }
        }
    }
    let segmix = best_ari("segmix");
    assert!(segmix > 0.95, "joint model ARI {segmix}");
    for m in &methods[1..] {
        assert!(segmix >= best_ari(m), "{m} reaches ARI {} above the joint model's {segmix}", best_ari(m));
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("## Winner per metric") && md.contains("**ARI**: segmix at K = 4"), "{md}");
    assert!(md.contains("## Outliers"), "{md}");
    // The joint model's files are written beside it, with the outlier column.
    let assign = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let header: Vec<&str> = assign.lines().next().unwrap().split(',').collect();
    assert_eq!(*header.last().unwrap(), "outlier");
    // Flagged exactly when the row log-likelihood is below the 0.02 quantile (linear
    // interpolation between order statistics, numpy's default).
    let rows: Vec<(f64, bool)> = assign
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[3].parse().unwrap(), *f.last().unwrap() == "1")
        })
        .collect();
    let mut ll: Vec<f64> = rows.iter().map(|r| r.0).collect();
    ll.sort_by(f64::total_cmp);
    let pos = 0.02 * (ll.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let threshold = ll[lo] + (pos - lo as f64) * (ll[hi] - ll[lo]);
    assert!(rows.iter().all(|&(l, flag)| flag == (l < threshold)));
    assert_eq!(rows.iter().filter(|r| r.1).count(), 48, "rows 0..=47 of 2,400 lie below the 0.02 quantile");
}

/// Past 20,000 rows the silhouette runs on a seeded sample; `--methods` picks the baselines.
#[test]
fn large_tables_sample_the_silhouette_and_methods_are_chosen() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(9);
    let mut csv = String::from("seg,channel,ctr,roas\n");
    for i in 0..21_000 {
        let s = i % 3;
        let channel = if rng.uniform() < 0.8 { ["tiktok", "meta", "search"][s] } else { "other" };
        csv += &format!(
            "s{s},{channel},{:.4},{:.3}\n",
            0.02 * (s + 1) as f64 + 0.005 * rng.normal(),
            s as f64 + rng.normal()
        );
    }
    let data = crate::util::write(d.path(), "big.csv", &csv);
    let out = d.path().join("cmp");
    let run = |methods: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_segmix"))
            .args(["compare", data.to_str().unwrap(), "--cat", "channel", "--num", "ctr,roas", "--k", "2..3"])
            .args(["--n-init", "1", "--truth", "seg", "--methods", methods, "--device", "cpu", "-q"])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let bad = run("kmeans,dbscan");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown method \"dbscan\"") && err.contains("kprototypes"), "{err}");
    assert!(!out.exists(), "a refused run left {out:?}");
    let ok = run("segmix,kmeans");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let methods: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(methods, ["segmix", "segmix", "kmeans", "kmeans"]);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("on a seeded sample of 10000 rows"), "{md}");
    assert!(md.contains("over the 21000 rows that have a value"), "{md}");
}

/// A bad `--template` is refused before the table is embedded or anything fitted: here the
/// model folder does not even exist, and the error is still the template's.
#[test]
fn a_bad_template_fails_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    let data = repo_file("examples/game_ads.csv");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_segmix"))
        .args(["compare", data.to_str().unwrap(), "--cat", "Country", "--num", "CTR", "--text", "Ad_Text"])
        .args(["--template", "{Channel}: {Ad_Text}", "--model", d.path().join("no-model").to_str().unwrap()])
        .args(["--device", "cpu", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("{Channel}") && err.contains("Country, CTR, Ad_Text"), "{err}");
    assert!(!out.exists(), "a refused run left {out:?}");
}
