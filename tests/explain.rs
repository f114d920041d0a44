//! De-embedding and the report: prototypes against a brute-force search, the Lasso decoder
//! against scikit-learn, keywords on the demo, profile lifts by hand, HTML escaping, the LLM
//! endpoint against a local mock, and `segmix report` rebuilding the page.

use std::path::PathBuf;

use segmix::backend::{CpuBackend, MixtureData};
use segmix::explain::lasso::lasso_gram;
use segmix::explain::{ExplainOptions, explain};
use segmix::mixture::em::{FitConfig, NoProgress};
use segmix::model::ModelFile;
use segmix::pipeline::{FitJob, FitOutput, FolderOptions, Inputs, fit_inputs, fit_to_folder, read_inputs};

use crate::util::{repo_file, roles, text_table, write};

/// The fit of a [`text_table`] (channel, ctr and the copy's vectors file) at K = k_min..=k_max,
/// 4 PCA dims, 2 restarts.
fn text_table_job(data: PathBuf, embeddings: PathBuf, (k_min, k_max): (usize, usize)) -> FitJob {
    FitJob {
        data,
        roles: roles(&["channel"], &["ctr"], Some("copy")),
        embeddings: Some(embeddings),
        pca_dims: 4,
        transforms: Vec::new(),
        config: FitConfig { k_min, k_max, n_init: 2, ..FitConfig::default() },
    }
}

/// A [`text_table`] fitted at K = 3: the fit, its rows as fitted, and the inputs (the table).
fn fit_at_three(data: PathBuf, embeddings: PathBuf) -> (FitOutput, MixtureData, Inputs) {
    let job = text_table_job(data, embeddings, (3, 3));
    let mut inputs = read_inputs(&job, None).unwrap();
    let (fit, data) = fit_inputs(&CpuBackend::new(), &job, &mut inputs, &NoProgress).unwrap();
    (fit, data, inputs)
}

#[test]
fn prototypes_are_the_nearest_distinct_member_texts() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 120, |i| format!("text number {}", i % 40));
    let (fit, data, inputs) = fit_at_three(data, emb);
    let c = explain(&fit.fitted(&data, &inputs.table), &ExplainOptions { prototypes: 4, ..ExplainOptions::default() })
        .unwrap();
    let params = &fit.model.params;
    let text = fit.model.schema.text.as_ref().unwrap();
    let (p, dd) = (data.p, text.pca.d());
    let texts = &inputs.table.text.as_ref().unwrap().values;
    let labels = fit.sweep.posteriors.labels();
    for (kk, class) in c.classes.iter().enumerate() {
        // Brute force: every member's scaled Euclidean distance, nearest first, one per text.
        let mu = &params.means[kk * p..kk * p + dd];
        let mut all: Vec<(f64, usize)> = (0..data.n)
            .filter(|&i| labels[i] == kk)
            .map(|i| {
                let dist = (0..dd).map(|a| (text.scale[a] * (data.x[i * p + a] - mu[a])).powi(2)).sum::<f64>().sqrt();
                (dist, i)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut seen = std::collections::HashSet::new();
        let want: Vec<(String, f64)> = all
            .into_iter()
            .filter(|&(_, i)| seen.insert(texts[i].clone().unwrap()))
            .take(4)
            .map(|(dist, i)| (texts[i].clone().unwrap(), dist))
            .collect();
        let got: Vec<(String, f64)> = class.prototypes.iter().map(|p| (p.text.clone(), p.distance)).collect();
        assert_eq!(got.len(), want.len().min(4));
        assert!(!got.is_empty());
        for ((gt, gd), (wt, wd)) in got.iter().zip(&want) {
            assert_eq!(gt, wt, "class {}", kk + 1);
            assert!((gd - wd).abs() < 1e-9);
        }
        for pr in class.prototypes.iter().chain(&class.prototypes_mahalanobis) {
            assert!((pr.posterior - fit.sweep.posteriors.resp[pr.row * params.k + kk]).abs() < 1e-12);
            assert_eq!(labels[pr.row], kk, "a prototype of class {} is a row of another class", kk + 1);
        }
        let distinct: std::collections::HashSet<&str> =
            class.prototypes_mahalanobis.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(distinct.len(), class.prototypes_mahalanobis.len(), "duplicates collapsed");
        assert!(class.prototypes_mahalanobis.windows(2).all(|w| w[0].distance <= w[1].distance));
    }
}

/// Numbers from scikit-learn 1.9.1 (`Lasso(fit_intercept=False)` on a 2-D y), made by
/// scripts/make_lasso_fixture.py.
#[test]
fn lasso_matches_scikit_learn() {
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("tests/fixtures/lasso_reference.json")).unwrap())
            .unwrap();
    let rows = |key: &str| -> Vec<Vec<f64>> {
        f[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
            .collect()
    };
    let (x, y) = (rows("x"), rows("y"));
    let (n, d, v) = (x.len(), x[0].len(), y[0].len());
    let mut g = vec![0.0; d * d];
    let mut c = vec![0.0; d * v];
    for i in 0..n {
        for a in 0..d {
            for b in 0..d {
                g[a * d + b] += x[i][a] * x[i][b] / n as f64;
            }
            for t in 0..v {
                c[a * v + t] += x[i][a] * y[i][t] / n as f64;
            }
        }
    }
    for fit in f["fits"].as_array().unwrap() {
        let alpha = fit["alpha"].as_f64().unwrap();
        let mut w = vec![0.0; d * v];
        lasso_gram(&g, &c, d, v, alpha, &mut w, 1e-12, 100_000);
        let want: Vec<f64> = fit["coef"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        for (i, (a, b)) in w.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-6, "alpha {alpha}, coef {i}: {a} vs scikit-learn {b}");
            assert_eq!(*a == 0.0, *b == 0.0, "alpha {alpha}, coef {i}: sparsity differs ({a} vs {b})");
        }
    }
}

/// Eight rows in two far-apart groups: P(a | class 1) = 3/4 against P(a) = 1/2, lift 1.5.
#[test]
fn profile_lifts_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let csv = "x,c\n0,a\n0.1,a\n-0.1,a\n0.05,b\n10,b\n10.1,b\n9.9,b\n10.05,a\n";
    let data = write(d.path(), "tiny.csv", csv);
    let job = FitJob {
        data,
        roles: roles(&["c"], &["x"], None),
        embeddings: None,
        pca_dims: 2,
        transforms: Vec::new(),
        config: FitConfig { k_min: 2, k_max: 2, n_init: 3, ..FitConfig::default() },
    };
    let mut inputs = read_inputs(&job, None).unwrap();
    let (fit, data) = fit_inputs(&CpuBackend::new(), &job, &mut inputs, &NoProgress).unwrap();
    let c = explain(&fit.fitted(&data, &inputs.table), &ExplainOptions::default()).unwrap();
    for class in &c.classes {
        assert_eq!(class.size, 4);
        let prof = &class.categorical["c"];
        let low = class.metrics["x"].mean < 5.0;
        let (top, other) = if low { ("a", "b") } else { ("b", "a") };
        let get = |l: &str| prof.levels.iter().find(|s| s.level == l).unwrap();
        assert!((get(top).share - 0.75).abs() < 1e-6 && (get(top).population - 0.5).abs() < 1e-12);
        assert!((get(top).lift - 1.5).abs() < 1e-5, "{:?}", get(top));
        assert!((get(other).lift - 0.5).abs() < 1e-5);
        assert_eq!(prof.over_represented, [top]);
        let m = &class.metrics["x"];
        assert!((m.overall_mean - 5.0125).abs() < 1e-9, "{m:?}");
    }
    let x = c.variables.iter().find(|v| v.variable == "x").unwrap();
    assert!(x.power > 0.99, "{x:?}");
    let cv = c.variables.iter().find(|v| v.variable == "c").unwrap();
    assert!((cv.power - 0.5).abs() < 1e-9, "Cramér's V of [[3,1],[1,3]] is 0.5: {cv:?}");
}

/// t-SNE keeps well-separated groups apart (silhouette of the 2-D layout by the true groups) and
/// is reproducible for a seed.
#[test]
fn tsne_separates_blobs_and_is_seeded() {
    use segmix::explain::tsne::{TsneOptions, tsne};
    let mut rng = segmix::foundation::rng::Rng::new(11);
    let (n, dim) = (300, 10);
    let truth: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let x: Vec<f64> =
        (0..n * dim).map(|t| if t % dim == (truth[t / dim] as usize) * 3 { 8.0 } else { 0.0 } + rng.normal()).collect();
    let opts = TsneOptions { iterations: 400, ..TsneOptions::default() };
    let y = tsne(&x, n, dim, &opts);
    let flat: Vec<f64> = y.iter().flat_map(|p| [p[0], p[1]]).collect();
    assert!(flat.iter().all(|v| v.is_finite()));
    let s = segmix::foundation::metrics::silhouettes(&flat, n, 2, &[&truth])[0].unwrap();
    assert!(s > 0.6, "silhouette of the t-SNE layout by the true groups: {s}");
    assert_eq!(tsne(&x, n, dim, &opts), y, "same seed, same layout");
    let other = tsne(&x, n, dim, &TsneOptions { seed: 1, ..opts });
    assert_ne!(other, y);
}

/// The whole fit in one library call: the folder holds every file, and `model.json` reads back
/// with the schema and parameters the call returned.
#[test]
fn fit_to_folder_writes_the_whole_folder() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 90, |i| format!("copy {}", i % 9));
    let job = text_table_job(data, emb, (2, 3));
    let out = d.path().join("fit");
    let opts = FolderOptions { outliers: Some(0.05), ..FolderOptions::default() };
    let fit = fit_to_folder(&CpuBackend::new(), &job, &out, &opts, None, &NoProgress).unwrap();
    for f in ["model.json", "assignments.csv", "selection.csv", "clusters.json", "report.html", "report.md"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // (`per_k[..].best` indexes the sweep's runs and is not saved.)
    let saved = ModelFile::load(&out.join("model.json")).unwrap();
    assert_eq!(
        (&saved.schema, &saved.params, saved.fit.loglik),
        (&fit.model.schema, &fit.model.params, fit.model.fit.loglik)
    );
    assert!(fit.outliers.is_some_and(|o| !o.rows.is_empty()), "outliers flagged");
    let header = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert!(header.lines().next().unwrap().ends_with(",outlier"), "{}", header.lines().next().unwrap());
}

/// Categorical data with an identifier-like column (one level per row) fits and explains in
/// O(n) per start and map: the start spaces and the report's map pool a column's rare levels
/// (`MixtureData::pooled_categories`). A dense one-hot of 4,000 levels made this a minutes-long
/// O(levels³) eigen-problem before.
#[test]
fn an_identifier_like_column_is_pooled_in_starts_and_map() {
    use segmix::foundation::metrics::adjusted_rand_index;
    let d = tempfile::tempdir().unwrap();
    let mut rng = segmix::foundation::rng::Rng::new(5);
    let (n, mut csv, mut truth) = (4000, String::from("id,a,b\n"), Vec::new());
    for i in 0..n {
        let g = (rng.uniform() < 0.5) as usize;
        let pick = |rng: &mut segmix::foundation::rng::Rng, of: &[&'static str]| {
            of[(rng.uniform() * of.len() as f64) as usize]
        };
        let a = if g == 0 { pick(&mut rng, &["x", "y"]) } else { "z" };
        let b = if g == 0 { pick(&mut rng, &["p", "q", "r"]) } else { "s" };
        csv += &format!("u{i},{a},{b}\n");
        truth.push(g as u32);
    }
    let data = write(d.path(), "ids.csv", &csv);
    let job = FitJob {
        data,
        roles: roles(&["id", "a", "b"], &[], None),
        embeddings: None,
        pca_dims: 4,
        transforms: Vec::new(),
        config: FitConfig { k_min: 2, k_max: 2, n_init: 2, ..FitConfig::default() },
    };
    let out = d.path().join("fit");
    let fit = fit_to_folder(&CpuBackend::new(), &job, &out, &FolderOptions::default(), None, &NoProgress).unwrap();
    let labels = crate::util::labels(&fit.sweep.posteriors.resp, 2);
    assert!(adjusted_rand_index(&labels, &truth) > 0.99);
    let clusters = segmix::report::html::read_clusters(&out.join("clusters.json")).unwrap();
    assert!(!clusters.map.is_empty() && clusters.map.iter().all(|p| p.x.is_finite() && p.y.is_finite()));

    // The pooled view: the 63 most frequent levels keep their own code, the rest share one.
    let data = read_inputs(&job, None)
        .and_then(|mut inputs| fit_inputs(&CpuBackend::new(), &job, &mut inputs, &NoProgress))
        .unwrap()
        .1;
    let cats = data.pooled_categories(64);
    assert_eq!(cats.n_levels, [64, 3, 4]);
    assert_eq!(cats.codes[1..3], data.codes[1..3], "small columns untouched");
    let ids = (0..n).map(|i| cats.codes[i * 3]).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids.len(), 64);
}

#[test]
fn prototypes_zero_shows_none_and_few_members_show_fewer() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 120, |i| format!("text number {}", i % 40));
    let (fit, data, inputs) = fit_at_three(data, emb);
    let fitted = fit.fitted(&data, &inputs.table);
    let none = explain(&fitted, &ExplainOptions { prototypes: 0, ..ExplainOptions::default() }).unwrap();
    assert!(none.classes.iter().all(|c| c.prototypes.is_empty() && c.prototypes_mahalanobis.is_empty()));
    // More prototypes than a class has distinct member texts: each class lists exactly its own.
    let many = explain(&fitted, &ExplainOptions { prototypes: 1000, ..ExplainOptions::default() }).unwrap();
    assert_eq!(many.prototypes_per_class, 1000);
    let texts = &inputs.table.text.as_ref().unwrap().values;
    let labels = fit.sweep.posteriors.labels();
    for (kk, class) in many.classes.iter().enumerate() {
        let distinct: std::collections::HashSet<&str> =
            (0..data.n).filter(|&i| labels[i] == kk).map(|i| texts[i].as_deref().unwrap()).collect();
        assert_eq!(class.prototypes.len(), distinct.len(), "class {}", kk + 1);
    }
    // The report says so.
    let html = segmix::report::html::html(&fit.model, &[], &many, "t.csv", false);
    assert!(html.contains("distinct texts among the rows of this class"), "no note on fewer prototypes");
}

#[test]
fn hierarchy_contrast_keywords_and_explorer_rows_are_in_clusters_json() {
    let d = tempfile::tempdir().unwrap();
    let words = ["free gems now", "join the guild", "ranked arena season"];
    let (data, emb) = text_table(d.path(), 150, |i| format!("{} {}", words[i % 3], i % 5));
    let (fit, data, inputs) = fit_at_three(data, emb);
    let c = explain(&fit.fitted(&data, &inputs.table), &ExplainOptions::default()).unwrap();
    // Hierarchy: K − 1 steps down to one group, entropy falling to zero.
    assert_eq!(c.hierarchy.len(), 2);
    assert_eq!(c.hierarchy.last().unwrap().groups, 1);
    assert!(c.hierarchy.last().unwrap().entropy.abs() < 1e-6);
    let leaves: std::collections::BTreeSet<usize> =
        c.hierarchy.last().map(|m| m.left.iter().chain(&m.right).copied().collect()).unwrap();
    assert_eq!(leaves, (1..=3).collect());
    // Contrast keywords: each class's own words.
    for class in &c.classes {
        assert!(!class.contrast_keywords.is_empty(), "class {} has no contrast keyword", class.class);
        let own = &class.prototypes[0].text;
        assert!(
            class.contrast_keywords.iter().all(|k| k.word.split(' ').all(|w| own.contains(w))),
            "class {}: {:?} vs {own}",
            class.class,
            class.contrast_keywords
        );
    }
    // Explorer rows: every row (150 ≤ map_points), with its class, posterior, text and channel.
    assert_eq!(c.rows.len(), 150);
    assert_eq!(c.row_columns, ["channel"]);
    let labels = fit.sweep.posteriors.labels();
    for r in &c.rows {
        assert_eq!(r.class, labels[r.row] + 1);
        assert_eq!(r.text.as_deref(), inputs.table.text.as_ref().unwrap().values[r.row].as_deref());
        assert_eq!(r.values.len(), 1);
    }
    // Round trip through clusters.json.
    let back: segmix::explain::Clusters = serde_json::from_str(&c.to_json()).unwrap();
    assert_eq!(back, c);
}
