//! A tiny random-weight BERT sentence transformer written to a folder: the same files as a real
//! model (`config.json`, `model.safetensors`, `tokenizer.json`, `1_Pooling/config.json`), small
//! enough that tests of the embedding path need no download.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;

use crate::foundation::error::{Error, Result};
use crate::foundation::rng::Rng;

/// Words of the tiny vocabulary (after `[PAD] [UNK] [CLS] [SEP]`).
pub const WORDS: &[&str] = &[
    "the", "a", "free", "gems", "claim", "daily", "reward", "play", "with", "friends", "guild", "classic", "stunning",
    "graphics", "4k", "rank", "arena", "pvp", "now", "today", "!", ".", ",", "##s", "##ing", "game", "old", "new",
];

/// The sizes of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinyShape {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    /// `max_position_embeddings`.
    pub max_positions: usize,
    /// `max_seq_length` (texts are truncated to it).
    pub max_seq: usize,
}

impl Default for TinyShape {
    /// Hidden 16, 2 heads, 2 layers, 24 positions, texts truncated to 16 tokens.
    fn default() -> Self {
        TinyShape { hidden: 16, heads: 2, layers: 2, intermediate: 32, max_positions: 24, max_seq: 16 }
    }
}

/// Writes a tiny model ([`TinyShape::default`]) with seeded random weights. `pooling` is the
/// `1_Pooling/config.json` mode key, e.g. `pooling_mode_mean_tokens`.
pub fn write_tiny_model(dir: &Path, seed: u64, pooling: &str) -> Result<()> {
    write_tiny_model_shaped(dir, seed, pooling, TinyShape::default())
}

/// As [`write_tiny_model`], with the given sizes.
pub fn write_tiny_model_shaped(dir: &Path, seed: u64, pooling: &str, shape: TinyShape) -> Result<()> {
    let TinyShape { hidden: h, heads, layers, intermediate: inter, max_positions: max_pos, max_seq } = shape;
    let vocab: Vec<&str> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].iter().copied().chain(WORDS.iter().copied()).collect();
    std::fs::create_dir_all(dir.join("1_Pooling")).map_err(|e| Error::io(dir, e))?;
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": vocab.len(), "hidden_size": h, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": inter, "max_position_embeddings": max_pos,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"
    });
    let write = |name: &str, v: serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(&v).expect("json")).map_err(|e| Error::io(p, e))
    };
    write("config.json", config)?;
    write("1_Pooling/config.json", serde_json::json!({ "word_embedding_dimension": h, pooling: true }))?;
    write("sentence_bert_config.json", serde_json::json!({ "max_seq_length": max_seq }))?;

    let mut rng = Rng::new(seed);
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut rand = |name: String, shape: &[usize], scale: f64, t: &mut HashMap<String, Tensor>| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
        t.insert(name, Tensor::from_vec(v, shape, &dev).expect("tensor"));
    };
    let ones = |n: usize| Tensor::from_vec(vec![1.0f32; n], n, &Device::Cpu).expect("tensor");
    rand("embeddings.word_embeddings.weight".into(), &[vocab.len(), h], 0.5, &mut t);
    rand("embeddings.position_embeddings.weight".into(), &[max_pos, h], 0.1, &mut t);
    rand("embeddings.token_type_embeddings.weight".into(), &[2, h], 0.1, &mut t);
    t.insert("embeddings.LayerNorm.weight".into(), ones(h));
    rand("embeddings.LayerNorm.bias".into(), &[h], 0.01, &mut t);
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", inter, h),
            ("output.dense", h, inter),
        ] {
            rand(format!("{p}.{name}.weight"), &[out, inp], 0.3, &mut t);
            rand(format!("{p}.{name}.bias"), &[out], 0.05, &mut t);
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.insert(format!("{p}.{ln}.weight"), ones(h));
            rand(format!("{p}.{ln}.bias"), &[h], 0.01, &mut t);
        }
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))
        .map_err(|e| Error::Embedder(format!("writing tiny weights: {e}")))?;

    let vocab_txt = dir.join("vocab.txt");
    std::fs::write(&vocab_txt, vocab.join("\n") + "\n").map_err(|e| Error::io(&vocab_txt, e))?;
    let wp = WordPiece::builder()
        .files(vocab_txt.to_string_lossy().into_owned())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| Error::Embedder(format!("tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::default()));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), 3), ("[CLS]".into(), 2))));
    tok.save(dir.join("tokenizer.json"), false).map_err(|e| Error::Embedder(format!("tiny tokenizer: {e}")))?;
    Ok(())
}
