//! The command end to end: `segmix compare`.

use segmix::foundation::rng::Rng;

use crate::util::repo_file;

/// The whole command on the demo: the exact CSV columns, every method at every K, ARI and NMI
/// against `true_segment`, the outlier column, and the joint model's ARI at least every
/// baseline's.
#[test]
fn compare_on_the_demo_scores_every_method() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    let data = repo_file("examples/game_ads.csv");
    let run = crate::util::command()
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
        crate::util::command()
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
    let run = crate::util::command()
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
