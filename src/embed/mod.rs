//! Sentence embeddings: tokenizer + BERT forward + pooling + L2 normalisation, the
//! sentence-transformers recipe, in Rust (tokenizers + candle).
//!
//! Input: texts (missing ones stay missing). Output: one unit vector per text, f32, with
//! all-NaN rows for missing texts (the row's text block is then integrated out of the model).
//!
//! * Duplicate texts are embedded once.
//! * Texts are tokenised in windows of [`WINDOW`] unique texts, so memory stays flat in N;
//!   within a window they are sorted by token count and cut into batches of at most
//!   [`TOKEN_BUDGET`] padded tokens, so short texts never pay for long ones.
//! * Texts longer than the model's maximum are truncated; the caller gets the count.

pub mod bert;
pub mod cache;
pub mod gpu;
pub mod ops;
pub mod resolve;
pub mod tiny;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::data::embeddings::Matrix;
use crate::error::{Error, Result};
use bert::{Bert, BertConfig, Pooling};

/// Unique texts tokenised at a time.
pub const WINDOW: usize = 4096;
/// Padded tokens per forward batch at most.
pub const TOKEN_BUDGET: usize = 4096;
/// Texts per forward batch at most.
pub const MAX_BATCH: usize = 128;

/// What a fitted model records about its embedder, and what `predict` checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedderInfo {
    /// A readable name (e.g. `sentence-transformers/all-MiniLM-L6-v2`).
    pub name: String,
    /// SHA-256 of `model.safetensors`, hex.
    pub sha256: String,
    /// Output dimension.
    pub dim: usize,
    /// Texts are truncated to this many tokens (special tokens included).
    pub max_length: usize,
    pub pooling: Pooling,
    /// Vectors are L2-normalised.
    pub normalize: bool,
}

/// A loaded sentence transformer.
#[derive(Debug)]
pub struct Embedder {
    pub info: EmbedderInfo,
    pub dir: PathBuf,
    bert: Bert,
    /// The same encoder on a GPU, when [`Embedder::use_gpu`] was called.
    gpu: Option<gpu::GpuBert>,
    tokenizer: Tokenizer,
    pad_id: u32,
}

/// Vectors for a list of texts.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// One row per input text; all-NaN rows for missing texts.
    pub matrix: Matrix,
    /// Rows whose text was longer than `max_length` tokens and was truncated.
    pub truncated: usize,
    /// Distinct texts that went through the encoder (the rest were duplicates or cache hits).
    pub encoded: usize,
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Embedder(format!("{}: {e}", path.display())))
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Embedder {
    /// Loads a model folder holding `config.json`, `model.safetensors` and `tokenizer.json`
    /// (and optionally `1_Pooling/config.json` and `sentence_bert_config.json`).
    pub fn from_dir(dir: &Path, name: Option<&str>) -> Result<Embedder> {
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            if !dir.join(f).is_file() {
                return Err(Error::Embedder(format!(
                    "{} has no {f}; a model folder needs config.json, model.safetensors and tokenizer.json",
                    dir.display()
                )));
            }
        }
        let sha256 = sha256_file(&dir.join("model.safetensors"))?;
        Embedder::from_dir_with_sha(dir, name, sha256)
    }

    /// As [`Embedder::from_dir`], with the weights' SHA-256 already known (checked by the caller).
    pub fn from_dir_with_sha(dir: &Path, name: Option<&str>, sha256: String) -> Result<Embedder> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        // RoBERTa-style encoders (roberta, xlm-roberta, camembert, …) offset position ids by the
        // padding index; this encoder implements BERT's positions only, so refuse them rather
        // than produce wrong vectors.
        if let Some(t) = config.model_type.as_deref().filter(|t| *t != "bert") {
            return Err(Error::Embedder(format!(
                "{}: model_type {t:?} is not supported; segmix runs BERT encoders (model_type \"bert\", e.g. \
                 all-MiniLM-L6-v2 or paraphrase-multilingual-MiniLM-L12-v2)",
                dir.display()
            )));
        }
        let pooling = match dir.join("1_Pooling/config.json") {
            p if p.is_file() => {
                let c: PoolingConfig = read_json(&p)?;
                if c.pooling_mode_cls_token {
                    Pooling::Cls
                } else if c.pooling_mode_max_tokens {
                    Pooling::Max
                } else if c.pooling_mode_mean_sqrt_len_tokens {
                    Pooling::MeanSqrtLen
                } else {
                    let _ = c.pooling_mode_mean_tokens;
                    Pooling::Mean
                }
            }
            _ => Pooling::Mean,
        };
        let seq = dir.join("sentence_bert_config.json");
        let max_seq = if seq.is_file() { read_json::<SentenceBertConfig>(&seq)?.max_seq_length } else { None };
        let max_length = max_seq.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::Embedder(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Embedder(format!("tokenizer truncation: {e}")))?;
        let pad_id = tokenizer.token_to_id("[PAD]").or_else(|| tokenizer.token_to_id("<pad>")).unwrap_or(0);
        let dim = config.hidden_size;
        let bert = Bert::load(&dir.join("model.safetensors"), config)?;
        let name = name.map(str::to_string).unwrap_or_else(|| {
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        });
        Ok(Embedder {
            info: EmbedderInfo { name, sha256, dim, max_length, pooling, normalize: true },
            dir: dir.to_path_buf(),
            bert,
            gpu: None,
            tokenizer,
            pad_id,
        })
    }

    /// Runs the encoder on `backend`'s GPU from now on (weights uploaded once).
    pub fn use_gpu(&mut self, backend: &crate::backend::GpuBackend) -> Result<()> {
        let max_tokens = TOKEN_BUDGET.max(self.info.max_length);
        self.gpu = Some(gpu::GpuBert::new(backend, &self.bert, max_tokens, MAX_BATCH)?);
        Ok(())
    }

    /// Where the encoder runs, for messages.
    pub fn device(&self) -> String {
        match &self.gpu {
            Some(g) => format!("{g:?}"),
            None => "cpu".into(),
        }
    }

    /// Embeds `texts`; `done` is called with the number of distinct texts finished so far.
    pub fn embed(
        &self,
        texts: &[Option<&str>],
        cache: Option<&cache::Cache>,
        done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Embedded> {
        let dim = self.info.dim;
        let mut matrix = Matrix { rows: texts.len(), cols: dim, values: vec![f32::NAN; texts.len() * dim] };
        // Distinct texts in order of first appearance.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        let slot: Vec<Option<usize>> = texts
            .iter()
            .map(|t| {
                t.map(|t| {
                    *index.entry(t).or_insert_with(|| {
                        unique.push(t);
                        unique.len() - 1
                    })
                })
            })
            .collect();
        let mut vectors = vec![0.0f32; unique.len() * dim];
        let mut todo: Vec<usize> = Vec::new();
        match cache {
            Some(c) => {
                for (u, t) in unique.iter().enumerate() {
                    match c.get(t) {
                        Some(v) => vectors[u * dim..(u + 1) * dim].copy_from_slice(&v),
                        None => todo.push(u),
                    }
                }
            }
            None => todo.extend(0..unique.len()),
        }
        let total = todo.len();
        let mut was_truncated = vec![false; unique.len()];
        let mut finished = 0;
        done(0, total);
        for window in todo.chunks(WINDOW) {
            let inputs: Vec<&str> = window.iter().map(|&u| unique[u]).collect();
            let enc =
                self.tokenizer.encode_batch(inputs, true).map_err(|e| Error::Embedder(format!("tokenizer: {e}")))?;
            for (&u, e) in window.iter().zip(&enc) {
                was_truncated[u] = !e.get_overflowing().is_empty();
            }
            let mut order: Vec<usize> = (0..enc.len()).collect();
            order.sort_by_key(|&i| enc[i].get_ids().len());
            let mut start = 0;
            while start < order.len() {
                // Grow the batch while the padded size (count × longest) fits the budget.
                let mut end = start + 1;
                while end < order.len()
                    && end - start < MAX_BATCH
                    && (end + 1 - start) * enc[order[end]].get_ids().len() <= TOKEN_BUDGET
                {
                    end += 1;
                }
                let batch = &order[start..end];
                let l = enc[*batch.last().expect("non-empty")].get_ids().len();
                let b = batch.len();
                let mut ids = vec![self.pad_id; b * l];
                let mut mask = vec![0u32; b * l];
                for (r, &i) in batch.iter().enumerate() {
                    let e = &enc[i];
                    ids[r * l..r * l + e.get_ids().len()].copy_from_slice(e.get_ids());
                    mask[r * l..r * l + e.get_ids().len()].copy_from_slice(e.get_attention_mask());
                }
                let out = match &self.gpu {
                    Some(g) => g.embed(&ids, &mask, b, l, self.info.pooling)?,
                    None => self.bert.embed(&ids, &mask, b, l, self.info.pooling)?,
                };
                for (r, &i) in batch.iter().enumerate() {
                    let u = window[i];
                    vectors[u * dim..(u + 1) * dim].copy_from_slice(&out[r * dim..(r + 1) * dim]);
                }
                finished += b;
                done(finished, total);
                start = end;
            }
            if let Some(c) = cache {
                let fresh: Vec<(&str, &[f32])> =
                    window.iter().map(|&u| (unique[u], &vectors[u * dim..(u + 1) * dim])).collect();
                c.put(&fresh)?;
            }
        }
        for (row, s) in slot.iter().enumerate() {
            if let Some(u) = s {
                matrix.values[row * dim..(row + 1) * dim].copy_from_slice(&vectors[u * dim..(u + 1) * dim]);
            }
        }
        let truncated = slot.iter().flatten().filter(|&&u| was_truncated[u]).count();
        Ok(Embedded { matrix, truncated, encoded: total })
    }
}
