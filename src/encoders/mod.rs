//! Sentence embeddings: tokenizer + BERT forward + pooling + L2 normalisation, the
//! sentence-transformers recipe, in Rust (tokenizers, and candle or WGSL). The forward pass sits
//! behind [`SentenceEncoder`]: candle on the CPU ([`bert`]), WGSL kernels on a GPU ([`gpu`]),
//! both held to the CPU references of the kernels ([`reference`](mod@reference)).
//!
//! Input: texts (missing ones stay missing). Output: one unit vector per text, f32, with
//! all-NaN rows for missing texts (the row's text block is then integrated out of the model).
//!
//! * Duplicate texts are embedded once.
//! * Texts are tokenised in windows of [`WINDOW`] unique texts, so memory stays flat in N;
//!   within a window they are sorted by token count and cut into batches of at most
//!   [`TOKEN_BUDGET`] padded tokens on the CPU ([`gpu::GPU_TOKENS`] on a GPU), so short texts
//!   never pay for long ones.
//! * On a GPU, a window's batches are submitted without waiting and the host tokenises the next
//!   window meanwhile; vectors come back once per window (or, with [`Embedder::embed_resident`],
//!   stay on the device for the PCA).
//! * Texts longer than the model's maximum are truncated; the caller gets the count.

pub mod bert;
pub mod cache;
pub mod e5s1;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod head;
pub mod ops;
pub mod reference;
pub mod resolve;
pub mod tiny;

#[cfg(feature = "gpu")]
pub use gpu::Resident;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::foundation::fs::sha256_file;
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::foundation::error::{Error, Result};
use crate::foundation::matrix::Matrix;
use crate::foundation::vectors::spread;
use bert::{Bert, BertConfig, Pooling};

/// Unique texts tokenised at a time.
pub const WINDOW: usize = 4096;
/// Padded tokens per forward batch at most (CPU encoder).
pub const TOKEN_BUDGET: usize = 4096;
/// Texts per forward batch at most (CPU encoder).
pub const MAX_BATCH: usize = 128;
/// Distinct texts [`Embedder::unrepresented_share`] looks at.
pub const REPRESENTATION_SAMPLE: usize = 1000;

/// The forward pass of a sentence encoder: a padded batch of token ids (B texts × L tokens,
/// row-major, with its attention mask) in, B pooled and L2-normalised sentence vectors out. The
/// [`Embedder`]'s tokenising, batching, deduplication and cache sit on top of it.
///
/// Two implementations: candle on the CPU ([`bert::Bert`]) and the WGSL kernels on a GPU
/// ([`gpu::GpuBert`], which the embedder also drives directly to keep batches in flight and its
/// vectors resident). The tests hold both to [`reference::forward`] and to each other.
pub trait SentenceEncoder {
    /// Where it runs, for messages.
    fn device(&self) -> String;
    /// The most padded tokens, and texts, one batch may hold.
    fn limits(&self) -> (usize, usize);
    /// The B × H sentence vectors of the padded batch `ids`/`mask` of shape (B, L), on the host:
    /// pooled, and L2-normalised when `normalize` (a model with a head after pooling runs it on
    /// the vectors before their normalisation).
    fn encode(
        &self,
        ids: &[u32],
        mask: &[u32],
        shape: (usize, usize),
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>>;
}

impl SentenceEncoder for Bert {
    fn device(&self) -> String {
        "cpu".into()
    }

    fn limits(&self) -> (usize, usize) {
        (TOKEN_BUDGET, MAX_BATCH)
    }

    fn encode(
        &self,
        ids: &[u32],
        mask: &[u32],
        (b, l): (usize, usize),
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        self.embed(ids, mask, b, l, pooling, normalize)
    }
}

/// What a fitted model records about its embedder, and what `predict` checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedderInfo {
    /// A readable name (e.g. `sentence-transformers/all-MiniLM-L6-v2`).
    pub name: String,
    /// SHA-256 of the weights file (`model.safetensors`, or `model.e5s1`), hex.
    pub sha256: String,
    /// Where the weights came from when they are not the checkpoint's own f32 or f16 values:
    /// a 4-bit source dequantized at load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// Output dimension.
    pub dim: usize,
    /// Texts are truncated to this many tokens (special tokens included).
    pub max_length: usize,
    pub pooling: Pooling,
    /// Vectors are L2-normalised.
    pub normalize: bool,
    /// Put before every text before it is tokenised: the model's default prompt from
    /// `config_sentence_transformers.json` (E5 models: `"query: "`), or `--text-prefix`.
    /// `predict` applies the fitted model's again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A loaded sentence transformer.
#[derive(Debug)]
pub struct Embedder {
    pub info: EmbedderInfo,
    pub dir: PathBuf,
    bert: Bert,
    /// The same encoder on a GPU, when [`Embedder::use_gpu`] was called.
    #[cfg(feature = "gpu")]
    gpu: Option<gpu::GpuBert>,
    tokenizer: Tokenizer,
    pad_id: u32,
    /// What runs after pooling (Dense modules), usually nothing.
    head: head::Head,
    /// Asked after every batch: `true` stops the embedding with [`Error::Cancelled`].
    stop: Stop,
}

/// A caller's "stop now?" ([`Embedder::set_stop`]).
#[derive(Clone, Default)]
struct Stop(Option<std::sync::Arc<dyn Fn() -> bool + Send + Sync>>);

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Stop(set)" } else { "Stop(none)" })
    }
}

impl Stop {
    /// `Err(Cancelled)` when the caller asked to stop.
    fn check(&self) -> Result<()> {
        match &self.0 {
            Some(stop) if stop() => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }
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

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Embedder(format!("{}: {e}", path.display())))
}

#[derive(Deserialize)]
struct PoolingConfig {
    /// sentence-transformers ≥ 5 writes the mode by name.
    #[serde(default)]
    pooling_mode: Option<String>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// `config_sentence_transformers.json`'s prompts and the name of the one applied by default.
#[derive(Deserialize)]
struct PromptConfig {
    #[serde(default)]
    prompts: HashMap<String, String>,
    #[serde(default)]
    default_prompt_name: Option<String>,
}

/// The model's default prompt, when its `config_sentence_transformers.json` names one (and it
/// is not empty).
fn default_prompt(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(None);
    }
    let c: PromptConfig = read_json(&path)?;
    let Some(name) = c.default_prompt_name else { return Ok(None) };
    match c.prompts.get(&name) {
        Some(p) => Ok(Some(p.clone()).filter(|p| !p.is_empty())),
        None => Err(Error::Embedder(format!(
            "{}: default_prompt_name {name:?} is not among its prompts {:?}",
            path.display(),
            c.prompts.keys().collect::<Vec<_>>()
        ))),
    }
}

/// What a model folder holds, for messages.
pub const MODEL_FOLDER: &str = "a model folder needs tokenizer.json and either config.json with model.safetensors \
                                or a 4-bit model.e5s1";
/// The 4-bit packed weights file a model folder may hold instead of `model.safetensors`.
pub const E5S1_FILE: &str = "model.e5s1";
/// What `model.json` and the log say about weights read from an E5S1 file.
pub const E5S1_NOTE: &str = "4-bit Q4_0 weights (E5S1), dequantized to f32 at load";

/// The folder's weights: `model.safetensors` (with `config.json`), else `model.e5s1`.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Embedder(format!("{} is not a folder; {MODEL_FOLDER}", dir.display())));
    }
    let st = dir.join("model.safetensors");
    if st.is_file() {
        if !dir.join("config.json").is_file() {
            return Err(Error::Embedder(format!("{} has no config.json; {MODEL_FOLDER}", dir.display())));
        }
        return Ok(st);
    }
    let packed = dir.join(E5S1_FILE);
    if packed.is_file() {
        return Ok(packed);
    }
    Err(Error::Embedder(format!("{} has no model.safetensors; {MODEL_FOLDER}", dir.display())))
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Embedder {
    /// Loads a model folder holding `tokenizer.json` and its weights: `config.json` with
    /// `model.safetensors`, or a 4-bit `model.e5s1` ([`e5s1`], whose header is its
    /// configuration); optionally `1_Pooling/config.json`, `sentence_bert_config.json`,
    /// `modules.json` and `config_sentence_transformers.json`.
    pub fn from_dir(dir: &Path, name: Option<&str>) -> Result<Embedder> {
        let sha256 = sha256_file(&weights_file(dir)?)?;
        Embedder::from_dir_with_sha(dir, name, sha256)
    }

    /// As [`Embedder::from_dir`], with the weights' SHA-256 already known (checked by the caller).
    pub fn from_dir_with_sha(dir: &Path, name: Option<&str>, sha256: String) -> Result<Embedder> {
        let weights_path = weights_file(dir)?;
        if !dir.join("tokenizer.json").is_file() {
            return Err(Error::Embedder(format!("{} has no tokenizer.json; {MODEL_FOLDER}", dir.display())));
        }
        let packed = weights_path.file_name().is_some_and(|n| n == E5S1_FILE);
        let (config, tensors, weights) = if packed {
            let (config, tensors) = e5s1::read(&weights_path)?;
            (config, Some(tensors), Some(E5S1_NOTE.to_string()))
        } else {
            (read_json::<BertConfig>(&dir.join("config.json"))?, None, None)
        };
        config.family().map_err(|e| Error::Embedder(format!("{}: {e}", dir.display())))?;
        let head = head::Head::read(dir, config.hidden_size)?;
        let pooling = match dir.join("1_Pooling/config.json") {
            p if p.is_file() => {
                let c: PoolingConfig = read_json(&p)?;
                if let Some(mode) = &c.pooling_mode {
                    match mode.as_str() {
                        "mean" => Pooling::Mean,
                        "cls" => Pooling::Cls,
                        "max" => Pooling::Max,
                        "mean_sqrt_len_tokens" => Pooling::MeanSqrtLen,
                        m => {
                            return Err(Error::Embedder(format!(
                                "{}: pooling mode {m:?} is not supported; segmix pools by mean, cls, max or \
                                 mean_sqrt_len_tokens",
                                p.display()
                            )));
                        }
                    }
                } else if c.pooling_mode_cls_token {
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
        let max_length = max_seq.unwrap_or(config.max_tokens()).min(config.max_tokens());
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
        let dim = head.outputs(config.hidden_size);
        let bert = match tensors {
            Some(t) => Bert::from_tensors(t, config)?,
            None => Bert::load(&weights_path, config)?,
        };
        let name = name.map(str::to_string).unwrap_or_else(|| {
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        });
        Ok(Embedder {
            info: EmbedderInfo {
                name,
                sha256,
                weights,
                dim,
                max_length,
                pooling,
                normalize: true,
                prefix: default_prompt(dir)?,
            },
            dir: dir.to_path_buf(),
            bert,
            #[cfg(feature = "gpu")]
            gpu: None,
            tokenizer,
            pad_id,
            stop: Stop::default(),
            head,
        })
    }

    /// The GPU encoder, when [`Embedder::use_gpu`] was called.
    #[cfg(feature = "gpu")]
    pub fn gpu_encoder(&self) -> Option<&gpu::GpuBert> {
        self.gpu.as_ref()
    }

    /// Built without the `gpu` feature, the encoder only runs on the CPU.
    #[cfg(not(feature = "gpu"))]
    pub fn gpu_encoder(&self) -> Option<&std::convert::Infallible> {
        None
    }

    /// The model's `config.json`.
    pub fn config(&self) -> &BertConfig {
        &self.bert.config
    }

    /// The encoder batches run on: the GPU's once [`Embedder::use_gpu`] was called, else the
    /// CPU's.
    pub fn encoder(&self) -> &dyn SentenceEncoder {
        match self.gpu_encoder() {
            #[cfg(feature = "gpu")]
            Some(g) => g,
            _ => &self.bert,
        }
    }

    /// Whether the model runs modules after pooling (a Dense head), which keeps its vectors off
    /// the device-resident path.
    pub fn has_head(&self) -> bool {
        !self.head.is_empty()
    }

    /// The CPU (candle) encoder, also when batches run on a GPU.
    pub fn cpu_encoder(&self) -> &dyn SentenceEncoder {
        &self.bert
    }

    /// The encoder's weights as flat arrays (what the GPU encoder uploads, and what
    /// [`reference::forward`] takes).
    pub fn weights(&self) -> Result<bert::BertWeights> {
        self.bert.export()
    }

    /// Token ids and attention mask of `texts` padded to the longest: (ids, mask, B, L).
    pub fn tokenize_padded(&self, texts: &[&str]) -> Result<(Vec<u32>, Vec<u32>, usize, usize)> {
        let (batches, _) = self.batches(texts, usize::MAX, usize::MAX)?;
        let b = batches.into_iter().next().ok_or_else(|| Error::Embedder("no texts to tokenize".into()))?;
        Ok((b.ids, b.mask, b.members.len(), b.l))
    }

    /// Where the encoder runs, for messages.
    pub fn device(&self) -> String {
        self.encoder().device()
    }

    /// Tokenises `inputs` and cuts them, shortest first, into padded batches of at most
    /// `tokens` padded tokens and `per` texts; also says which inputs were truncated.
    fn batches(&self, inputs: &[&str], tokens: usize, per: usize) -> Result<(Vec<Batch>, Vec<bool>)> {
        let enc = self
            .tokenizer
            .encode_batch(inputs.to_vec(), true)
            .map_err(|e| Error::Embedder(format!("tokenizer: {e}")))?;
        let truncated = enc.iter().map(|e| !e.get_overflowing().is_empty()).collect();
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| enc[i].get_ids().len());
        let mut out = Vec::new();
        let mut start = 0;
        while start < order.len() {
            // Grow the batch while the padded size (count × longest) fits the budget.
            let mut end = start + 1;
            while end < order.len()
                && end - start < per
                && (end + 1 - start).saturating_mul(enc[order[end]].get_ids().len()) <= tokens
            {
                end += 1;
            }
            let members = order[start..end].to_vec();
            let l = enc[*members.last().expect("non-empty")].get_ids().len();
            let b = members.len();
            let mut ids = vec![self.pad_id; b * l];
            let mut mask = vec![0u32; b * l];
            for (r, &i) in members.iter().enumerate() {
                let e = &enc[i];
                ids[r * l..r * l + e.get_ids().len()].copy_from_slice(e.get_ids());
                mask[r * l..r * l + e.get_ids().len()].copy_from_slice(e.get_attention_mask());
            }
            out.push(Batch { members, l, ids, mask });
            start = end;
        }
        Ok((out, truncated))
    }

    /// The share of `texts` (of at most [`REPRESENTATION_SAMPLE`] distinct ones, in order of
    /// first appearance) that this model's vocabulary cannot represent: a text whose word pieces
    /// are at least a quarter unknown tokens, or outnumber its non-space characters by half again
    /// (a script broken into bytes or jamo, as an English WordPiece vocabulary breaks Korean).
    pub fn unrepresented_share(&self, texts: &[Option<&str>]) -> Result<f64> {
        let mut seen = std::collections::HashSet::new();
        let sample: Vec<&str> = texts
            .iter()
            .flatten()
            .filter(|t| !t.trim().is_empty() && seen.insert(*t))
            .take(REPRESENTATION_SAMPLE)
            .copied()
            .collect();
        if sample.is_empty() {
            return Ok(0.0);
        }
        let enc = self
            .tokenizer
            .encode_batch(sample.clone(), true)
            .map_err(|e| Error::Embedder(format!("tokenizer: {e}")))?;
        let unk = self.tokenizer.token_to_id("[UNK]").or_else(|| self.tokenizer.token_to_id("<unk>"));
        let poor = sample
            .iter()
            .zip(&enc)
            .filter(|(text, e)| {
                let specials = e.get_special_tokens_mask().iter().filter(|&&m| m == 1).count();
                let pieces = e.get_ids().len().saturating_sub(specials);
                let unknown = e.get_ids().iter().filter(|&&id| Some(id) == unk).count();
                let chars = text.chars().filter(|c| !c.is_whitespace()).count();
                4 * unknown >= pieces.max(1) || 2 * pieces >= 3 * chars.max(1)
            })
            .count();
        Ok(poor as f64 / sample.len() as f64)
    }

    /// Sets the text prefix (`None` or an empty string: none), replacing the model's default
    /// prompt.
    /// Asks `stop` after every batch, and ends the embedding with [`Error::Cancelled`] when it
    /// says so (Ctrl-C in the Python package).
    pub fn set_stop(&mut self, stop: std::sync::Arc<dyn Fn() -> bool + Send + Sync>) {
        self.stop = Stop(Some(stop));
    }

    /// Ends the embedding with [`Error::Cancelled`] when the caller asked to stop.
    pub(crate) fn check_stop(&self) -> Result<()> {
        self.stop.check()
    }

    pub fn set_prefix(&mut self, prefix: Option<String>) {
        self.info.prefix = prefix.filter(|p| !p.is_empty());
    }

    /// The texts as the encoder sees them: with the prefix put before each (kept in `buf`), when
    /// there is one.
    fn as_tokenised<'a>(&self, texts: &[Option<&'a str>], buf: &'a mut Vec<Option<String>>) -> Vec<Option<&'a str>> {
        match self.info.prefix.as_deref() {
            None => texts.to_vec(),
            Some(p) => {
                *buf = texts.iter().map(|t| t.map(|t| format!("{p}{t}"))).collect();
                buf.iter().map(|t| t.as_deref()).collect()
            }
        }
    }

    /// Embeds `texts`; `done` is called with the number of distinct texts finished so far.
    pub fn embed(
        &self,
        texts: &[Option<&str>],
        cache: Option<&cache::Cache>,
        done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Embedded> {
        let mut buf = Vec::new();
        let texts = &self.as_tokenised(texts, &mut buf)[..];
        let dim = self.info.dim;
        let distinct = Distinct::of(texts);
        let mut vectors = vec![0.0f32; distinct.texts.len() * dim];
        let todo = distinct.lookup(cache, dim, |u, v| vectors[u * dim..(u + 1) * dim].copy_from_slice(v));
        let total = todo.len();
        let mut was_truncated = vec![false; distinct.texts.len()];
        done(0, total);
        match self.gpu_encoder() {
            #[cfg(feature = "gpu")]
            Some(g) if self.head.is_empty() => {
                self.embed_on_gpu(g, &distinct, &todo, cache, &mut vectors, &mut was_truncated, done)?
            }
            _ => {
                // Batch by batch on the encoder in use; a head runs on the host after it.
                let encoder = self.encoder();
                let hidden = self.config().hidden_size;
                let plain = self.head.is_empty();
                let (tokens, per) = encoder.limits();
                let mut finished = 0;
                for window in todo.chunks(WINDOW) {
                    let inputs: Vec<&str> = window.iter().map(|&u| distinct.texts[u]).collect();
                    let (batches, truncated) = self.batches(&inputs, tokens, per)?;
                    for (&u, t) in window.iter().zip(truncated) {
                        was_truncated[u] = t;
                    }
                    for batch in &batches {
                        let b = batch.members.len();
                        let out = encoder.encode(&batch.ids, &batch.mask, (b, batch.l), self.info.pooling, plain)?;
                        let out = if plain { out } else { self.head.apply(&out, hidden) };
                        for (r, &i) in batch.members.iter().enumerate() {
                            let u = window[i];
                            vectors[u * dim..(u + 1) * dim].copy_from_slice(&out[r * dim..(r + 1) * dim]);
                        }
                        finished += b;
                        done(finished, total);
                        self.check_stop()?;
                    }
                    distinct.store(cache, window, |r| &vectors[window[r] * dim..(window[r] + 1) * dim]);
                }
            }
        }
        let matrix = Matrix { rows: texts.len(), cols: dim, values: spread(&distinct.slot, &vectors, dim, f32::NAN) };
        Ok(Embedded { matrix, truncated: distinct.truncated_rows(&was_truncated), encoded: total })
    }
}

/// A padded forward batch: the window positions of its texts (shortest first), its padded
/// length, token ids and attention mask (B × L each).
struct Batch {
    members: Vec<usize>,
    l: usize,
    ids: Vec<u32>,
    mask: Vec<u32>,
}

/// The distinct texts of a column, in order of first appearance, and each row's.
struct Distinct<'a> {
    texts: Vec<&'a str>,
    slot: Vec<Option<usize>>,
}

impl<'a> Distinct<'a> {
    fn of(texts: &[Option<&'a str>]) -> Distinct<'a> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        let slot = texts
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
        Distinct { texts: unique, slot }
    }

    /// Hands every cached vector to `hit` (distinct index, vector) and returns the distinct
    /// texts still to encode.
    fn lookup(&self, cache: Option<&cache::Cache>, dim: usize, mut hit: impl FnMut(usize, &[f32])) -> Vec<usize> {
        let Some(c) = cache else { return (0..self.texts.len()).collect() };
        let mut todo = Vec::new();
        for (u, t) in self.texts.iter().enumerate() {
            match c.get(t) {
                Some(v) if v.len() == dim => hit(u, &v),
                _ => todo.push(u),
            }
        }
        todo
    }

    /// Writes the vectors of distinct texts `uids` to the cache; `vector(r)` is the vector of
    /// `uids[r]`. A failed write is the cache's warning, never the caller's error.
    fn store<'v>(&self, cache: Option<&cache::Cache>, uids: &[usize], vector: impl Fn(usize) -> &'v [f32]) {
        if let Some(c) = cache {
            let rows: Vec<(&str, &[f32])> = uids.iter().enumerate().map(|(r, &u)| (self.texts[u], vector(r))).collect();
            c.put(&rows);
        }
    }

    /// Table rows whose text was truncated, given which distinct texts were.
    fn truncated_rows(&self, was_truncated: &[bool]) -> usize {
        self.slot.iter().flatten().filter(|&&u| was_truncated[u]).count()
    }
}
