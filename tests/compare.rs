//! `segmix compare`: scores and k-means against scikit-learn, k-prototypes against a hand
//! computation, row serialisation, and the comparison on the demo data.

use segmix::foundation::MISSING_CODE;
use segmix::foundation::metrics::{
    adjusted_rand_index, calinski_harabasz, davies_bouldin, normalized_mutual_info, silhouettes,
};
use segmix::foundation::rng::Rng;
use segmix::pipeline::compare::baselines::{MixedRows, RowTemplate, iterate, kmeans_restarts, kprototypes};

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
