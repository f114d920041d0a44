//! The `segmix` binary end to end: files, exact columns, predict round trip, errors.

use std::path::Path;

use crate::util::{grouped_vector_line, repo_file, segmix, write};

fn ok(args: &[&str]) -> String {
    let out = segmix(args);
    assert!(out.status.success(), "segmix {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn fit_writes_the_three_files_and_predict_reproduces_assignments() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fit");
    let data = repo_file("examples/game_ads.csv");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    ok(&[
        "fit",
        data_s,
        "--cat",
        "Country,Channel,Creative_Type",
        "--num",
        "CTR,CVR,ROAS",
        "--k",
        "2..3",
        "--n-init",
        "2",
        "--out",
        out_s,
        "-q",
    ]);

    let assign = lines(&out.join("assignments.csv"));
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let k = model["params"]["k"].as_u64().unwrap() as usize;
    let mut header = vec!["row", "class", "max_posterior", "loglik"].into_iter().map(String::from).collect::<Vec<_>>();
    header.extend((1..=k).map(|c| format!("post_{c}")));
    assert_eq!(assign[0], header.join(","));
    assert_eq!(assign.len(), 2401, "every input row has an assignment");
    assert_eq!(model["format"], "segmix-model");
    assert_eq!(model["version"], 1);

    let sel = lines(&out.join("selection.csv"));
    assert_eq!(sel[0], "k,restart,start,loglik,n_params,bic,icl,aic,iterations,converged,degenerate,seconds");
    assert_eq!(sel.len(), 1 + 2 * 2);

    // Predicting the training rows gives the assignments exactly, plus expected metrics.
    let pred = d.path().join("pred.csv");
    ok(&["predict", out.join("model.json").to_str().unwrap(), data_s, "--out", pred.to_str().unwrap(), "-q"]);
    let pl = lines(&pred);
    assert_eq!(pl[0], format!("{},expected_CTR,expected_CVR,expected_ROAS", assign[0]));
    for (a, p) in assign.iter().zip(&pl).skip(1) {
        let cols = 4 + k;
        let pa: Vec<&str> = p.split(',').collect();
        assert_eq!(a.as_str(), pa[..cols].join(","));
        assert!(pa[cols..].iter().all(|v| v.parse::<f64>().unwrap().is_finite()));
    }
}

#[test]
fn predict_on_new_ads_without_metrics_warns_once_about_unknown_levels() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fit");
    let data = repo_file("examples/game_ads.csv");
    ok(&[
        "fit",
        data.to_str().unwrap(),
        "--cat",
        "Country,Channel",
        "--num",
        "CTR,ROAS",
        "--k",
        "2",
        "--n-init",
        "1",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    // New ads: no metric columns at all, one unseen country.
    let new = write(d.path(), "new.csv", "Country,Channel\nKR,TikTok\nDE,Google\nDE,Facebook\nUS,\n");
    let pred = d.path().join("p.csv");
    let stderr = ok(&[
        "predict",
        out.join("model.json").to_str().unwrap(),
        new.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(stderr.matches("never saw").count(), 1, "{stderr}");
    assert!(stderr.contains("2 rows") && stderr.contains("\"DE\""), "{stderr}");
    let pl = lines(&pred);
    assert_eq!(pl.len(), 5);
    assert!(pl[0].ends_with("expected_CTR,expected_ROAS"));
}

#[test]
fn bad_input_fails_cleanly_without_output_files() {
    let d = tempfile::tempdir().unwrap();
    let bad = write(d.path(), "bad.csv", "c,x\nA,1\nB,zz\nA,3\n");
    let out = d.path().join("out");
    let r =
        segmix(&["fit", bad.to_str().unwrap(), "--cat", "c", "--num", "x", "--k", "2", "--out", out.to_str().unwrap()]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("bad.csv") && err.contains("line 3") && err.contains("\"x\""), "{err}");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "no output may be written");

    let r = segmix(&["fit", bad.to_str().unwrap(), "--cat", "c", "--k", "9", "--out", out.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("K = 9 is larger than the number of rows (3)"));

    let r = segmix(&["fit", bad.to_str().unwrap(), "--cat", "c", "--k", "3..2", "--out", out.to_str().unwrap()]);
    assert!(!r.status.success());
}

#[test]
fn embeddings_give_a_text_block_and_predict_requires_them() {
    let d = tempfile::tempdir().unwrap();
    // Two groups of texts with distinct 6-d vectors, a few rows with no text.
    let mut csv = String::from("kind,txt,score\n");
    let mut emb = String::new();
    let mut rng = segmix::foundation::rng::Rng::new(5);
    for i in 0..120 {
        let g = i % 2;
        let missing_text = i % 40 == 7;
        csv.push_str(&format!(
            "{},{},{:.3}\n",
            ["a", "b"][g],
            if missing_text { "" } else { "some words" },
            g as f64 * 2.0 + rng.normal() * 0.3
        ));
        emb.push_str(&grouped_vector_line(g, 6, &mut rng));
    }
    let data = write(d.path(), "t.csv", &csv);
    let e = write(d.path(), "e.csv", &emb);
    let out = d.path().join("fit");
    ok(&[
        "fit",
        data.to_str().unwrap(),
        "--cat",
        "kind",
        "--num",
        "score",
        "--text",
        "txt",
        "--embeddings",
        e.to_str().unwrap(),
        "--pca-dims",
        "3",
        "--k",
        "2",
        "--n-init",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["continuous"], serde_json::json!(["text_pc1", "text_pc2", "text_pc3", "score"]));
    let pred = d.path().join("p.csv");
    let m = out.join("model.json");
    let r = segmix(&["predict", m.to_str().unwrap(), data.to_str().unwrap(), "--out", pred.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--embeddings"));
    ok(&[
        "predict",
        m.to_str().unwrap(),
        data.to_str().unwrap(),
        "--embeddings",
        e.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "-q",
    ]);
    // Same rows, same embeddings: the prediction starts with exactly the assignment columns.
    let assign = lines(&out.join("assignments.csv"));
    let pl = lines(&pred);
    assert_eq!(pl.len(), assign.len());
    for (a, p) in assign.iter().zip(&pl).skip(1) {
        assert!(p.starts_with(&format!("{a},")), "{a} vs {p}");
    }
}

#[test]
fn every_covariance_type_fits_the_demo() {
    let d = tempfile::tempdir().unwrap();
    let data = repo_file("examples/game_ads.csv");
    for cov in ["full", "diag", "spherical", "tied"] {
        let out = d.path().join(cov);
        ok(&[
            "fit",
            data.to_str().unwrap(),
            "--cat",
            "Country,Channel,Creative_Type",
            "--num",
            "CTR,CVR,ROAS",
            "--k",
            "3",
            "--n-init",
            "1",
            "--covariance",
            cov,
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
        assert_eq!(model["params"]["cov_type"], cov);
    }
}

#[test]
fn embeddings_alone_are_a_model() {
    let d = tempfile::tempdir().unwrap();
    let mut csv = String::from("id\n");
    let mut emb = String::new();
    let mut rng = segmix::foundation::rng::Rng::new(9);
    for i in 0..90 {
        csv.push_str(&format!("{i}\n"));
        let g = i % 3;
        emb.push_str(&grouped_vector_line(g, 5, &mut rng));
    }
    let data = write(d.path(), "t.csv", &csv);
    let e = write(d.path(), "e.csv", &emb);
    let out = d.path().join("fit");
    ok(&[
        "fit",
        data.to_str().unwrap(),
        "--embeddings",
        e.to_str().unwrap(),
        "--pca-dims",
        "2",
        "--k",
        "1..4",
        "--n-init",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["fit"]["k"], 3, "three groups of vectors");
    let labels: Vec<u32> = lines(&out.join("assignments.csv"))[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let truth: Vec<u32> = (0..90).map(|i| i % 3).collect();
    assert_eq!(segmix::foundation::metrics::adjusted_rand_index(&labels, &truth), 1.0);
}

/// Runs segmix with every Vulkan driver hidden from the loader (Linux: Vulkan is the only
/// backend there), as on a machine without a GPU driver.
#[cfg(target_os = "linux")]
fn segmix_without_gpu(args: &[&str]) -> std::process::Output {
    crate::util::command()
        .args(args)
        .env("VK_DRIVER_FILES", "/nonexistent/segmix_icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/segmix_icd.json")
        .output()
        .expect("run segmix")
}

#[cfg(target_os = "linux")]
#[test]
fn without_an_adapter_device_gpu_is_an_error_and_auto_runs_on_the_cpu() {
    let listing = segmix_without_gpu(&["devices"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success());
    assert!(text.contains("no GPU adapter found") && text.contains("auto runs on the CPU backend"), "{text}");

    let d = tempfile::tempdir().unwrap();
    let data = repo_file("examples/game_ads.csv");
    let fit = |device: &str, out: &Path| {
        segmix_without_gpu(&[
            "fit",
            data.to_str().unwrap(),
            "--cat",
            "Country,Channel",
            "--k",
            "2",
            "--n-init",
            "1",
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = d.path().join("gpu");
    let failed = fit("gpu", &out);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(err.contains("--device gpu: no GPU adapter") && err.contains("--device cpu"), "{err}");
    assert!(!out.exists(), "a failed run left {out:?}");

    let out = d.path().join("auto");
    let ran = fit("auto", &out);
    let err = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{err}");
    assert_eq!(err.matches("note: running on the CPU: no GPU adapter").count(), 1, "{err}");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert!(model["fit"]["device"].as_str().unwrap().starts_with("cpu"), "{}", model["fit"]["device"]);
}

#[test]
fn bench_embed_times_the_encoder_and_checks_the_shape() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tiny");
    segmix::encoders::tiny::write_tiny_model(&model, 5, "pooling_mode_mean_tokens").unwrap();
    let m = model.to_str().unwrap();
    let out = segmix(&["bench", "--embed", "4x8", "--reps", "2", "--model", m, "--device", "cpu", "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["embed"];
    assert_eq!((e["batch"].as_u64(), e["len"].as_u64(), e["device"].as_str()), (Some(4), Some(8), Some("cpu")));
    let (rate, secs) = (e["sentences_per_second"].as_f64().unwrap(), e["seconds_per_batch"].as_f64().unwrap());
    assert!(secs > 0.0 && (rate * secs - 4.0).abs() < 1e-6, "{e}");
    assert!(e["tflops"].as_f64().unwrap() > 0.0 && e["stages"].is_null(), "{e}");
    // The tiny model truncates texts to 16 tokens: a longer shape is refused with the limit.
    let long = segmix(&["bench", "--embed", "4x40", "--model", m, "--device", "cpu", "-q"]);
    let err = String::from_utf8_lossy(&long.stderr);
    assert!(!long.status.success() && err.contains("3..=16"), "{err}");
    for shape in ["4by8", "fourx8"] {
        let bad = segmix(&["bench", "--embed", shape, "--model", m, "--device", "cpu", "-q"]);
        assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("expected BxL"), "{shape}");
    }
}

/// A warning about the data (a 1–5 rating modelled as continuous) is printed once, before the
/// fit, and not again with the fit's own warnings.
#[test]
fn data_warnings_are_printed_once() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = segmix::foundation::rng::Rng::new(3);
    let mut csv = String::from("x,rating\n");
    for _ in 0..300 {
        csv.push_str(&format!("{},{}\n", rng.normal(), 1 + rng.below(5)));
    }
    let data = write(d.path(), "r.csv", &csv);
    let out = d.path().join("out");
    let stderr =
        ok(&["fit", data.to_str().unwrap(), "--num", "x,rating", "--k", "1..2", "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(stderr.matches("\"rating\" has only 5 distinct values").count(), 1, "{stderr}");
}

#[test]
fn huge_finite_values_are_standardized_without_overflow() {
    // Squares of values past 1.3e154 overflow f64; the column's spread does not.
    let d = tempfile::tempdir().unwrap();
    let mut csv = String::from("g,x,y\n");
    for i in 0..60 {
        let g = i % 2;
        csv.push_str(&format!(
            "{},{:e},{}\n",
            ["a", "b"][g],
            (1.0 + g as f64 * 5.0 + (i % 7) as f64 * 0.3) * 1e200,
            i % 5
        ));
    }
    let data = crate::util::write(d.path(), "big.csv", &csv);
    let out = d.path().join("fit");
    ok(&[
        "fit",
        data.to_str().unwrap(),
        "--cat",
        "g",
        "--num",
        "x,y",
        "--k",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let sd = m["schema"]["numeric"][0]["sd"].as_f64().expect("a finite sd");
    assert!(sd > 1e199 && sd < 1e201, "{sd}");
    let pred = d.path().join("p.csv");
    ok(&[
        "predict",
        out.join("model.json").to_str().unwrap(),
        data.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "-q",
    ]);
}

#[test]
fn bench_refuses_empty_work_instead_of_panicking() {
    for args in [&["--k", "0"][..], &["--reps", "0"], &["--d", "0", "--cats", "0"]] {
        let r = segmix(&[&["bench", "--n", "50", "--device", "cpu"][..], args].concat());
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && !stderr.contains("panicked") && stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

#[test]
fn outputs_are_checked_before_any_compute() {
    let d = tempfile::tempdir().unwrap();
    let data = write(d.path(), "t.csv", "x\n1\n2\n3\n4\n");
    let data_s = data.to_str().unwrap();
    // The output may not be an input of the run.
    let r = segmix(&["fit", data_s, "--num", "x", "--k", "2", "--out", data_s]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("is an input of this run"));
    // A folder under a file cannot be made: said before fitting, and nothing is written.
    let under_file = data.join("fit");
    let r = segmix(&["fit", data_s, "--num", "x", "--k", "2", "--out", under_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("is not a folder"), "{stderr}");
    let r = segmix(&["embed", data_s, "--text", "x", "--out", data.join("v.npy").to_str().unwrap()]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("is not a folder"));
}

/// A fit folder is one set: a refit replaces it whole (manifest.json lists it, nothing staged or
/// temporary is left); files mixed from two fits or edited by hand are refused by `report` and
/// `predict`, naming the file.
#[test]
fn a_fit_folder_is_one_set_and_mixed_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = repo_file("examples/game_ads.csv");
    let fit = |out: &Path, k: &str| {
        ok(&[
            "fit",
            data.to_str().unwrap(),
            "--num",
            "CTR,CVR",
            "--k",
            k,
            "--n-init",
            "1",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
    };
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fit(&a, "2");
    std::fs::write(a.join("notes.txt"), "mine").unwrap();
    fit(&a, "3");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(listed, ["assignments.csv", "clusters.json", "model.json", "report.html", "report.md", "selection.csv"]);
    let hidden: Vec<String> = std::fs::read_dir(&a)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".segmix.lock")
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    assert_eq!(std::fs::read_to_string(a.join("notes.txt")).unwrap(), "mine", "the user's files stay");
    ok(&["report", a.to_str().unwrap(), "-q"]);

    // clusters.json of a K = 2 fit copied into the K = 3 folder.
    fit(&b, "2");
    std::fs::copy(b.join("clusters.json"), a.join("clusters.json")).unwrap();
    let r = segmix(&["report", a.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("clusters.json") && stderr.contains("manifest.json"), "{stderr}");
    // Unchecked (no manifest), the class counts still disagree.
    std::fs::remove_file(a.join("manifest.json")).unwrap();
    let r = segmix(&["report", a.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("describes 2 classes but model.json has 3"), "{stderr}");

    // An edited model.json: predict names it.
    let mut model = std::fs::read_to_string(b.join("model.json")).unwrap();
    model.push(' ');
    std::fs::write(b.join("model.json"), model).unwrap();
    let pred = d.path().join("p.csv");
    let r = segmix(&[
        "predict",
        b.join("model.json").to_str().unwrap(),
        data.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("model.json") && stderr.contains("edited"), "{stderr}");
    assert!(!pred.exists());
}

/// Command-line hygiene: `--threads` is bounded, an OS error is said once, and a headless
/// machine's Vulkan probe prints nothing of its own.
#[test]
fn threads_are_bounded_errors_are_said_once_and_headless_probes_are_quiet() {
    for t in ["0", "1000000"] {
        let r = segmix(&["--threads", t, "devices"]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && stderr.contains("--threads") && stderr.contains("cores"), "{stderr}");
    }
    let d = tempfile::tempdir().unwrap();
    let r = segmix(&[
        "fit",
        d.path().join("none.csv").to_str().unwrap(),
        "--num",
        "x",
        "--out",
        d.path().join("o").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("none.csv"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    let data = write(d.path(), "t.csv", "x\n1\n2\n3\n4\n5\n6\n");
    let out = crate::util::command()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["fit", data.to_str().unwrap(), "--num", "x", "--k", "2", "--device", "auto", "-q"])
        .args(["--out", d.path().join("fit").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}
