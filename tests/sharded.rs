//! A fit over shards (`pipeline::sharded`): whatever the split, the same schema, the same
//! model and the same classes as one machine; a shard's bad row stops the fit with the message
//! one machine gives, naming the shard's file and row.

use std::path::PathBuf;
use std::time::Instant;

use segmix::backend::CpuBackend;
use segmix::data::{CategoricalColumn, NumericColumn, Roles, Table, TextColumn};
use segmix::explain::ExplainOptions;
use segmix::featurize::TextVectors;
use segmix::featurize::schema::Transform;
use segmix::foundation::matrix::Matrix;
use segmix::foundation::rng::Rng;
use segmix::mixture::em::{FitConfig, NoProgress};
use segmix::pipeline::sharded::{LocalTransport, ShardedFit, ShardedJob, Worker, explain, fit_sharded, posteriors};
use segmix::pipeline::{FitJob, fit_inputs, inputs_from_table};

const DIM: usize = 8;

/// A table of three segments: two categorical columns, a log-normal metric (`--log`), a 1–5
/// rating (ties: a resolution), a spend, text vectors; missing values in every column.
fn table(n: usize, seed: u64) -> (Table, Matrix) {
    let mut rng = Rng::new(seed);
    let (mut channel, mut country, mut ctr, mut rating, mut spend, mut text) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vectors = Vec::with_capacity(n * DIM);
    for i in 0..n {
        let g = (rng.next_u64() % 3) as usize;
        let u = |rng: &mut Rng| rng.next_u64() as f64 / u64::MAX as f64;
        let missing = |rng: &mut Rng| u(rng) < 0.05;
        channel.push(
            (!missing(&mut rng))
                .then(|| ["search", "social", "video"][(g + (u(&mut rng) < 0.2) as usize) % 3].to_string()),
        );
        country.push((!missing(&mut rng)).then(|| ["DE", "FR", "JP", "US"][(rng.next_u64() % 4) as usize].to_string()));
        ctr.push(if missing(&mut rng) { f64::NAN } else { (-4.0 + g as f64 * 0.7 + 0.3 * (u(&mut rng) - 0.5)).exp() });
        rating.push(if missing(&mut rng) { f64::NAN } else { (1 + g + (rng.next_u64() % 3) as usize) as f64 });
        spend.push(100.0 * g as f64 + 40.0 * u(&mut rng));
        let has_text = !missing(&mut rng);
        let words = ["dragon raid guild", "puzzle match calm", "racing drift speed"][g];
        text.push(has_text.then(|| format!("{words} {} {}", ["now", "today", "free", "new"][i % 4], i % 7)));
        for d in 0..DIM {
            vectors.push(if d == g { 1.0 } else { 0.0 } + 0.3 * (u(&mut rng) as f32 - 0.5));
        }
    }
    let cat = |name: &str, values| CategoricalColumn { name: name.into(), values, present: true };
    let num = |name: &str, values| NumericColumn { name: name.into(), values, present: true };
    let t = Table {
        path: PathBuf::from("whole.parquet"),
        n_rows: n,
        categorical: vec![cat("channel", channel), cat("country", country)],
        numeric: vec![num("ctr", ctr), num("rating", rating), num("spend", spend)],
        text: Some(TextColumn { name: "copy".into(), values: text }),
        lines: Vec::new(),
        row_groups: Vec::new(),
        delimiter: b',',
    };
    (t, Matrix { rows: n, cols: DIM, values: vectors })
}

/// Rows `from..to` of `t` and `m` as the file `name`.
fn part(t: &Table, m: &Matrix, from: usize, to: usize, name: &str) -> (Table, Option<TextVectors>) {
    let mut p = t.clone();
    p.path = PathBuf::from(name);
    p.n_rows = to - from;
    p.categorical.iter_mut().for_each(|c| c.values = c.values[from..to].to_vec());
    p.numeric.iter_mut().for_each(|c| c.values = c.values[from..to].to_vec());
    p.text.iter_mut().for_each(|c| c.values = c.values[from..to].to_vec());
    let matrix = Matrix { rows: to - from, cols: DIM, values: m.values[from * DIM..to * DIM].to_vec() };
    let v = TextVectors::from_file(PathBuf::from(format!("{name}.vectors")), matrix, &p);
    (p, Some(v))
}

fn transforms() -> Vec<(String, Transform)> {
    vec![("ctr".to_string(), Transform::Log)]
}

fn config() -> FitConfig {
    FitConfig { k_min: 2, k_max: 4, n_init: 2, seed: 5, tol: 1e-9, max_iter: 400, ..FitConfig::default() }
}

/// Workers for shards cut at `cuts` (each part of a shard a file of its own).
fn workers(t: &Table, m: &Matrix, shards: &[Vec<usize>]) -> LocalTransport<CpuBackend> {
    let workers = shards
        .iter()
        .enumerate()
        .map(|(s, cuts)| {
            let parts = cuts
                .windows(2)
                .enumerate()
                .map(|(i, w)| part(t, m, w[0], w[1], &format!("shard-{s}-part-{i}.parquet")))
                .collect();
            Worker::new(CpuBackend::new(), parts, transforms(), None, Vec::new()).unwrap()
        })
        .collect();
    LocalTransport { workers }
}

/// The fit over those shards with the driver's sample, each row's class, and the shards.
fn sharded(
    t: &Table,
    m: &Matrix,
    shards: &[Vec<usize>],
    sample_rows: usize,
) -> (ShardedFit, Vec<usize>, LocalTransport<CpuBackend>) {
    let mut transport = workers(t, m, shards);
    let job = ShardedJob { pca_dims: 3, config: config(), sample_rows };
    let fit = fit_sharded(&mut transport, &CpuBackend::new(), &job, &NoProgress).unwrap();
    let labels = posteriors(&mut transport, &fit.model).unwrap().iter().flat_map(|p| p.labels()).collect();
    (fit, labels, transport)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn a_fit_over_shards_is_the_same_whatever_the_split() {
    let n = 3000;
    let (t, m) = table(n, 11);
    // One shard of one file is the reference; then 2 and 3 shards of unequal sizes, one of them
    // holding two files.
    let (one, one_labels, _) = sharded(&t, &m, &[vec![0, n]], 700);
    assert!(one.sample.n < n && one.sample.n > 400, "a sample of about 700 rows: {}", one.sample.n);
    assert_eq!(one.refits.len(), 3, "every K refitted on all rows");
    assert!(one.traffic.iterations > 0 && one.traffic.bytes_received > 0);
    let schema = &one.model.schema;
    assert_eq!(schema.categorical[0].levels, ["search", "social", "video"]);
    assert!(schema.numeric[1].resolution == Some(1.0), "the rating's ties give it a resolution");
    for split in [vec![vec![0, 1200], vec![1200, 3000]], vec![vec![0, 17, 1000], vec![1000, 2999], vec![2999, 3000]]] {
        let (fit, labels, _) = sharded(&t, &m, &split, 700);
        assert_eq!(fit.sample.n, one.sample.n, "{split:?}: the sample does not depend on the split");
        assert_eq!(fit.model.fit.k, one.model.fit.k, "{split:?}");
        assert!(
            close(fit.model.fit.loglik, one.model.fit.loglik, 1e-9),
            "{split:?}: {} vs {}",
            fit.model.fit.loglik,
            one.model.fit.loglik
        );
        for (a, b) in fit.refits.iter().zip(&one.refits) {
            assert!(
                close(a.loglik, b.loglik, 1e-9) && a.iterations.abs_diff(b.iterations) <= 1,
                "{split:?}: {a:?} {b:?}"
            );
        }
        assert_eq!(labels, one_labels, "{split:?}: identical classes");
        let s = &fit.model.schema;
        assert_eq!(s.categorical, schema.categorical);
        for (a, b) in s.numeric.iter().zip(&schema.numeric) {
            assert!(
                close(a.mean, b.mean, 1e-12) && close(a.sd, b.sd, 1e-12) && a.resolution == b.resolution,
                "{a:?} {b:?}"
            );
        }
        let (pa, pb) = (&s.text.as_ref().unwrap().pca, &schema.text.as_ref().unwrap().pca);
        assert!(pa.explained_variance.iter().zip(&pb.explained_variance).all(|(a, b)| close(*a, *b, 1e-9)));
    }
}

#[test]
fn when_the_sample_is_the_whole_table_the_fit_is_one_machines() {
    let n = 1500;
    let (t, m) = table(n, 12);
    let (fit, labels, mut transport) = sharded(&t, &m, &[vec![0, 500], vec![500, 1500]], 10_000);
    assert!(fit.refits.is_empty() && fit.sample.n == n);
    let job = FitJob {
        data: "whole.parquet".into(),
        roles: Roles {
            categorical: vec!["channel".into(), "country".into()],
            numeric: vec!["ctr".into(), "rating".into(), "spend".into()],
            text: Some("copy".into()),
        },
        embeddings: None,
        pca_dims: 3,
        transforms: transforms(),
        config: config(),
    };
    let v = TextVectors::from_file("whole.vectors".into(), m.clone(), &t);
    let mut inputs = inputs_from_table(&job, t.clone(), Some(v), None, Instant::now()).unwrap();
    let (single, _) = fit_inputs(&CpuBackend::new(), &job, &mut inputs, &NoProgress).unwrap();
    assert_eq!(fit.model.fit.k, single.model.fit.k);
    assert!(
        close(fit.model.fit.loglik, single.model.fit.loglik, 1e-9),
        "{} vs {}",
        fit.model.fit.loglik,
        single.model.fit.loglik
    );
    assert_eq!(labels, single.sweep.posteriors.labels());
    assert_eq!(fit.model.schema.categorical, single.model.schema.categorical);

    // The explanation from the shards' cells is one machine's explanation of the same fit.
    let opts = ExplainOptions { prototypes: 3, keywords: 5, min_df: 2, ..ExplainOptions::default() };
    let mine = explain(&mut transport, &CpuBackend::new(), &fit, &opts).unwrap();
    let data = single.sweep.posteriors.clone();
    let (_, prepared) = {
        let mut inputs = inputs_from_table(
            &job,
            t.clone(),
            Some(TextVectors::from_file("v".into(), m.clone(), &t)),
            None,
            Instant::now(),
        )
        .unwrap();
        fit_inputs(&CpuBackend::new(), &job, &mut inputs, &NoProgress).unwrap()
    };
    let theirs = segmix::explain::explain(
        &segmix::explain::Fitted { model: &single.model, posteriors: &data, outliers: &[], data: &prepared, table: &t },
        &opts,
    )
    .unwrap();
    assert_eq!(mine.classes.len(), theirs.classes.len());
    for (a, b) in mine.classes.iter().zip(&theirs.classes) {
        assert_eq!(a.size, b.size);
        let texts = |c: &segmix::explain::ClassReport| c.prototypes.iter().map(|p| p.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(a), texts(b));
        let terms =
            |c: &segmix::explain::ClassReport| c.contrast_keywords.iter().map(|k| k.word.clone()).collect::<Vec<_>>();
        assert_eq!(terms(a), terms(b));
        assert!(!texts(a).is_empty() && !terms(a).is_empty(), "something to compare");
        assert!(!a.prompt.is_empty() && a.prompt == b.prompt);
    }
}

#[test]
fn a_bad_row_in_one_shard_names_its_file_and_row() {
    let (mut t, m) = table(900, 13);
    t.numeric[0].values[700] = -0.5; // ctr is modelled on the log scale
    let mut transport = LocalTransport {
        workers: [(0, 400), (400, 900)]
            .iter()
            .enumerate()
            .map(|(s, &(a, b))| {
                let parts = vec![part(&t, &m, a, b, &format!("shard-{s}.parquet"))];
                Worker::new(CpuBackend::new(), parts, transforms(), None, vec![]).unwrap()
            })
            .collect(),
    };
    let job = ShardedJob { pca_dims: 3, config: config(), sample_rows: 10_000 };
    let err = fit_sharded(&mut transport, &CpuBackend::new(), &job, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("shard-1.parquet") && err.contains("row 300") && err.contains("\"ctr\""), "{err}");
    assert!(err.contains("--log"), "{err}");
}

#[test]
fn a_sample_too_small_for_the_k_range_is_a_clear_error() {
    let (t, m) = table(900, 15);
    for (sample_rows, says) in [(0, "sample_rows is 0"), (2, "raise sample_rows")] {
        let mut transport = workers(&t, &m, &[vec![0, 500], vec![500, 900]]);
        let job = ShardedJob { pca_dims: 3, config: config(), sample_rows };
        let err = fit_sharded(&mut transport, &CpuBackend::new(), &job, &NoProgress).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_explanation_over_shards_counts_every_row() {
    let n = 2400;
    let (t, m) = table(n, 14);
    let (fit, _, mut transport) = sharded(&t, &m, &[vec![0, 700], vec![700, 1900, 2400]], 600);
    assert!(fit.sample.n < n);
    let opts = ExplainOptions { prototypes: 4, keywords: 5, min_df: 2, ..ExplainOptions::default() };
    let mine = explain(&mut transport, &CpuBackend::new(), &fit, &opts).unwrap();
    // One machine's explanation of the same model over the whole table.
    let v = TextVectors::from_file("v".into(), m.clone(), &t);
    let (data, _) = fit.model.schema.transform(&t, Some(&v)).unwrap();
    let post = segmix::mixture::predict::posteriors(&CpuBackend::new(), &data, &fit.model.params).unwrap();
    let theirs = segmix::explain::explain(
        &segmix::explain::Fitted { model: &fit.model, posteriors: &post, outliers: &[], data: &data, table: &t },
        &opts,
    )
    .unwrap();
    for (a, b) in mine.classes.iter().zip(&theirs.classes) {
        assert_eq!(a.size, b.size);
        assert_eq!(a.prompt, b.prompt);
        let protos = |c: &segmix::explain::ClassReport| {
            c.prototypes.iter().chain(&c.prototypes_mahalanobis).map(|p| (p.text.clone(), p.row)).collect::<Vec<_>>()
        };
        assert_eq!(protos(a), protos(b));
        assert!(!a.prototypes.is_empty());
        for (name, pa) in &a.categorical {
            for (x, y) in pa.levels.iter().zip(&b.categorical[name].levels) {
                assert!(close(x.share, y.share, 1e-9) && close(x.population, y.population, 1e-12), "{name}");
            }
        }
        for (name, ma) in &a.metrics {
            let mb = &b.metrics[name];
            assert!(close(ma.mean, mb.mean, 1e-9) && close(ma.sd, mb.sd, 1e-9) && close(ma.z, mb.z, 1e-9), "{name}");
        }
    }
    assert_eq!(mine.variables.len(), theirs.variables.len());
    for v in &mine.variables {
        let w = theirs.variables.iter().find(|w| w.variable == v.variable).unwrap();
        assert!(close(v.power, w.power, 1e-9), "{}: {} vs {}", v.variable, v.power, w.power);
    }
}
