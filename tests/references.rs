//! The fast host paths against the CPU references of the WGSL entry points (one function of the
//! same name and inputs per entry point; `cli/tests/environment.rs` holds every entry point on a
//! GPU to the same references): the Gram matrix and projection on host vectors, and the candle
//! sentence encoder against the reference forward pass chained from `bert.wgsl`'s references.
//! The mixture kernels' references are checked in `em.rs`, against the model's definitions.

use segmix::encoders::Embedder;
use segmix::encoders::bert::Pooling;
use segmix::encoders::reference;
use segmix::encoders::tiny::write_tiny_model;
use segmix::foundation::matrix::Matrix;
use segmix::foundation::reference::{column_sums, gram, project};
use segmix::foundation::rng::Rng;
use segmix::foundation::vectors::Vectors;

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}[{i}]: {g} vs {w}");
    }
}

/// `n` × `dim` values with every `missing`-th row NaN (no vector).
fn rows(n: usize, dim: usize, missing: usize, seed: u64) -> Matrix {
    let mut rng = Rng::new(seed);
    let mut values: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32 + 0.3).collect();
    for i in (0..n).filter(|i| i % missing == 1) {
        values[i * dim..(i + 1) * dim].fill(f32::NAN);
    }
    Matrix { rows: n, cols: dim, values }
}

#[test]
fn gram_and_projection_on_host_vectors_match_their_references() {
    // n crosses the 4096-row block and 128-row chunk edges; NaN rows and masked rows drop out.
    for &(n, dim, d, seed) in &[(4096 + 131, 24, 5, 1u64), (37, 3, 1, 2), (300, 65, 32, 3)] {
        let m = rows(n, dim, 7, seed);
        let mut v = Vectors::host(m.clone());
        v.mask(|i| i % 11 == 3);
        let present: Vec<usize> = (0..n).filter(|&i| v.row_of()[i].is_some()).collect();
        let x: Vec<f32> = present.iter().flat_map(|&i| m.row(i).iter().copied()).collect();
        let g = v.gram().unwrap();
        assert_eq!(g.rows, present.len());
        let zero = vec![0.0f32; dim];
        close("xtx", &g.xtx, &gram(&x, dim, &zero, None), 1e-10);
        close("sum", &g.sum, &column_sums(&x, dim, &zero, None), 1e-10);

        let mut rng = Rng::new(seed + 9);
        let mean: Vec<f64> = (0..dim).map(|_| rng.normal() as f32 as f64).collect();
        let w: Vec<f64> = (0..dim * d).map(|_| rng.normal() as f32 as f64).collect();
        let got = v.project(&mean, &w, d).unwrap();
        let (mean32, w32): (Vec<f32>, Vec<f32>) =
            (mean.iter().map(|&a| a as f32).collect(), w.iter().map(|&a| a as f32).collect());
        let scores = project(&x, dim, &mean32, &w32, d, &vec![0.0; d], false);
        let mut want = vec![f64::NAN; n * d];
        for (r, &i) in present.iter().enumerate() {
            want[i * d..(i + 1) * d].copy_from_slice(&scores[r * d..(r + 1) * d]);
        }
        close("scores", &got, &want, 1e-10);
    }
}

#[test]
fn weighted_references_count_each_row_as_often_as_its_weight() {
    // Two rows, the first standing for three table rows: the same as three copies of it.
    let x = [1.0f32, 2.0, -1.0, 0.5];
    let shift = [0.5f32, 0.5];
    let once = gram(&[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, -1.0, 0.5], 2, &shift, None);
    close("weighted gram", &gram(&x, 2, &shift, Some(&[3.0, 1.0])), &once, 1e-12);
    let sums = column_sums(&x, 2, &shift, Some(&[3.0, 1.0]));
    close("weighted sums", &sums, &[3.0 * 0.5 - 1.5, 3.0 * 1.5 + 0.0], 1e-12);
}

#[test]
fn candle_encoder_matches_the_reference_forward_pass() {
    let d = tempfile::tempdir().unwrap();
    let texts = ["claim free gems now !", "a", "play with old friends in the guild today .", "stunning 4k graphics"];
    for (n, (mode, pooling)) in [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = d.path().join(mode);
        write_tiny_model(&dir, 40 + n as u64, mode).unwrap();
        let e = Embedder::from_dir(&dir, None).unwrap();
        assert_eq!(e.info.pooling, pooling);
        let (ids, mask, b, l) = e.tokenize_padded(&texts).unwrap();
        assert!(mask.contains(&0), "the batch is padded");
        let got = e.cpu_encoder().encode(&ids, &mask, (b, l), pooling, true).unwrap();
        let want = reference::forward(&e.weights().unwrap(), &ids, &mask, (b, l), pooling);
        let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        close(mode, &got, &want, 2e-5);
    }
}
