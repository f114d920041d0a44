//! The BERT encoder forward pass on candle-core (CPU), for any BERT-family sentence
//! transformer: token + position + token-type embeddings, layer norm, then per layer
//! self-attention with the padding mask and a GELU feed-forward block, each with a residual and
//! a layer norm (Devlin et al. 2019; the layout of Hugging Face's `BertModel`).
//!
//! Shapes: a batch is B texts padded to L tokens; hidden size H, A heads of size H/A.
//! PyTorch `Linear` weights are stored [out, in]; they are transposed once at load time so every
//! projection is a plain [B·L, in] × [in, out] matmul.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::ops::{BiasGelu, BiasResidualLayerNorm, FusedAttention};
use crate::foundation::error::{Error, Result};

/// The fields of a Hugging Face `config.json` the encoder needs (DistilBERT's own names are
/// read as aliases).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act", alias = "activation")]
    pub hidden_act: String,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

/// The encoder architectures segmix runs: the same transformer, with their own weight names and
/// position ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT (and any `model_type` "bert" checkpoint, e.g. MiniLM, LaBSE's encoder).
    Bert,
    /// RoBERTa, XLM-RoBERTa, CamemBERT: position ids start after the padding index, one token
    /// type.
    Roberta,
    /// DistilBERT: no token types, its own layer names.
    DistilBert,
}

impl BertConfig {
    /// The architecture `model_type` names, or an error naming what is supported.
    pub fn family(&self) -> Result<Family> {
        match self.model_type.as_deref() {
            None | Some("bert") => Ok(Family::Bert),
            Some("roberta" | "xlm-roberta" | "camembert") => Ok(Family::Roberta),
            Some("distilbert") => Ok(Family::DistilBert),
            Some(t) => Err(Error::Embedder(format!(
                "model_type {t:?} is not supported; segmix runs BERT, RoBERTa, XLM-RoBERTa, CamemBERT and \
                 DistilBERT encoders"
            ))),
        }
    }

    /// Rows of the position table before the first token's: RoBERTa-style models number
    /// positions from the padding index + 1.
    pub fn position_offset(&self) -> usize {
        match self.family() {
            Ok(Family::Roberta) => self.pad_token_id.unwrap_or(1) as usize + 1,
            _ => 0,
        }
    }

    /// Tokens a text may have (the position table less its offset).
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset())
    }
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// How token vectors become one sentence vector (sentence-transformers' `1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the non-padding token vectors.
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
    /// Element-wise maximum over the non-padding tokens.
    Max,
    /// Sum of the non-padding token vectors divided by √(token count).
    MeanSqrtLen,
}

fn ctx(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::Embedder(format!("{what}: {e}"))
}

/// A PyTorch `Linear`, weight stored transposed ([in, out], contiguous); the bias is applied by
/// the fused op that follows the product.
struct Linear {
    w: Tensor,
    b: Vec<f32>,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    /// LayerNorm(x + bias + residual), one fused pass.
    fn forward(&self, x: &Tensor, bias: &[f32], residual: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op2_no_bwd(
            residual,
            &BiasResidualLayerNorm { bias, gamma: &self.gamma, beta: &self.beta, eps: self.eps },
        )
    }
}

struct Layer {
    /// Q, K and V projections side by side: [H, 3H].
    qkv: Tensor,
    /// Their biases, [3H].
    qkv_b: Tensor,
    o: Linear,
    ln_attn: LayerNorm,
    up: Linear,
    down: Linear,
    ln_out: LayerNorm,
}

/// Named checkpoint tensors, taken out one by one as the encoder is assembled.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
    eps: f64,
}

impl Weights {
    fn take(&mut self, name: &str) -> Result<Tensor> {
        let key = format!("{}{name}", self.prefix);
        let t =
            self.tensors.remove(&key).ok_or_else(|| Error::Embedder(format!("the weights have no tensor {key:?}")))?;
        t.to_dtype(DType::F32).map_err(ctx(name))
    }
    fn vector(&mut self, name: &str) -> Result<Vec<f32>> {
        self.take(name)?.to_vec1::<f32>().map_err(ctx(name))
    }
    /// A PyTorch `Linear` ([out, in] weight), stored transposed.
    fn linear(&mut self, name: &str) -> Result<Linear> {
        let w = self.take(&format!("{name}.weight"))?;
        let w = w.t().and_then(|w| w.contiguous()).map_err(ctx(name))?;
        Ok(Linear { w, b: self.vector(&format!("{name}.bias"))? })
    }
    fn layer_norm(&mut self, name: &str) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: self.vector(&format!("{name}.weight"))?,
            beta: self.vector(&format!("{name}.bias"))?,
            eps: self.eps as f32,
        })
    }
    /// Encoder layer `l` under the family's names.
    fn layer(&mut self, family: Family, l: usize) -> Result<Layer> {
        // Layer prefix; Q, K, V; attention output and its norm; feed-forward up, down, its norm.
        let names: [&str; 7] = match family {
            Family::Bert | Family::Roberta => [
                "encoder.layer",
                "attention.self.query|attention.self.key|attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ],
            Family::DistilBert => [
                "transformer.layer",
                "attention.q_lin|attention.k_lin|attention.v_lin",
                "attention.out_lin",
                "sa_layer_norm",
                "ffn.lin1",
                "ffn.lin2",
                "output_layer_norm",
            ],
        };
        let p = format!("{}.{l}", names[0]);
        let parts: Vec<String> = names[1].split('|').map(|n| format!("{p}.{n}")).collect();
        let (qkv, qkv_b) = self.qkv(&parts)?;
        Ok(Layer {
            qkv,
            qkv_b,
            o: self.linear(&format!("{p}.{}", names[2]))?,
            ln_attn: self.layer_norm(&format!("{p}.{}", names[3]))?,
            up: self.linear(&format!("{p}.{}", names[4]))?,
            down: self.linear(&format!("{p}.{}", names[5]))?,
            ln_out: self.layer_norm(&format!("{p}.{}", names[6]))?,
        })
    }

    /// Q, K, V weights side by side ([H, 3H]) and their biases ([3H]).
    fn qkv(&mut self, parts: &[String]) -> Result<(Tensor, Tensor)> {
        let mut ws = Vec::new();
        let mut bs = Vec::new();
        for part in parts {
            ws.push(self.take(&format!("{part}.weight"))?);
            bs.push(self.take(&format!("{part}.bias"))?);
        }
        let w = Tensor::cat(&ws, 0).and_then(|w| w.t()?.contiguous()).map_err(ctx("qkv"))?;
        let b = Tensor::cat(&bs, 0).map_err(ctx("qkv bias"))?;
        Ok((w, b))
    }
}

/// A loaded encoder.
pub struct Bert {
    pub config: BertConfig,
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    ln_emb: LayerNorm,
    zeros: Vec<f32>,
    layers: Vec<Layer>,
    device: Device,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Bert {
    /// Loads weights from a safetensors file (names with or without a `bert.` prefix).
    pub fn load(weights: &Path, config: BertConfig) -> Result<Bert> {
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(weights, &device)
            .map_err(|e| Error::Embedder(format!("{}: cannot read weights: {e}", weights.display())))?;
        Bert::from_tensors(tensors, config)
    }

    /// Builds the encoder from named tensors (as in a Hugging Face checkpoint, with or without
    /// the architecture's prefix: `bert.`, `roberta.`, `distilbert.`).
    pub fn from_tensors(tensors: HashMap<String, Tensor>, config: BertConfig) -> Result<Bert> {
        let family = config.family()?;
        if !matches!(config.hidden_act.as_str(), "gelu" | "gelu_python" | "gelu_new" | "gelu_pytorch_tanh") {
            return Err(Error::Embedder(format!(
                "unsupported activation {:?}; segmix runs GELU encoders",
                config.hidden_act
            )));
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(Error::Embedder("hidden_size is not a multiple of num_attention_heads".into()));
        }
        let prefix = ["bert.", "roberta.", "distilbert."]
            .into_iter()
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .unwrap_or("");
        let mut w = Weights { tensors, prefix, eps: config.layer_norm_eps };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            layers.push(w.layer(family, l)?);
        }
        let word = w.take("embeddings.word_embeddings.weight")?;
        let h = config.hidden_size;
        let table = w.take("embeddings.position_embeddings.weight")?;
        let offset = config.position_offset();
        let rows = table.dims()[0].saturating_sub(offset);
        let position = table.narrow(0, offset, rows).map_err(ctx("position ids"))?;
        let token_type0 = match family {
            Family::DistilBert => Tensor::zeros((1, h), DType::F32, &Device::Cpu).map_err(ctx("token types"))?,
            _ => w.take("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1).map_err(ctx("token types"))?,
        };
        let ln_emb = w.layer_norm("embeddings.LayerNorm")?;
        if word.dims() != [config.vocab_size, h] || position.dims()[1] != h {
            return Err(Error::Embedder(format!(
                "embedding tables have shapes {:?} and {:?}, config.json says vocab {} × hidden {h}",
                word.dims(),
                position.dims(),
                config.vocab_size
            )));
        }
        let zeros = vec![0.0; h];
        Ok(Bert { config, word, position, token_type0, ln_emb, zeros, layers, device: Device::Cpu })
    }

    /// Hidden states [B, L, H] of a batch of token ids (B × L, row-major, padded) with its
    /// attention mask (1 = token, 0 = padding).
    pub fn forward(&self, ids: &[u32], mask: &[u32], b: usize, l: usize) -> Result<Tensor> {
        self.forward_inner(ids, mask, b, l).map_err(ctx("forward pass"))
    }

    fn forward_inner(&self, ids: &[u32], mask: &[u32], b: usize, l: usize) -> candle_core::Result<Tensor> {
        let (h, a) = (self.config.hidden_size, self.config.num_attention_heads);
        let dh = h / a;
        let ids_t = Tensor::from_slice(ids, b * l, &self.device)?;
        // Embeddings: LayerNorm(word + position + token type 0).
        let pos = self.position.narrow(0, 0, l)?.broadcast_add(&self.token_type0)?;
        let pos = pos.unsqueeze(0)?.broadcast_as((b, l, h))?.contiguous()?.reshape((b * l, h))?;
        let word = self.word.index_select(&ids_t, 0)?;
        let mut x = self.ln_emb.forward(&word, &self.zeros, &pos)?;
        // Additive mask per key position: 0 for tokens, a large negative number for padding.
        let bias: Vec<f32> = mask.iter().map(|&m| if m == 0 { -1e30 } else { 0.0 }).collect();
        let attention = FusedAttention { mask: &bias, len: l, heads: a, scale: 1.0 / (dh as f32).sqrt() };
        for layer in &self.layers {
            let qkv = x.matmul(&layer.qkv)?.broadcast_add(&layer.qkv_b)?;
            let ctx = qkv.apply_op1_no_bwd(&attention)?;
            let attn = layer.ln_attn.forward(&ctx.matmul(&layer.o.w)?, &layer.o.b, &x)?;
            let up = attn.matmul(&layer.up.w)?.apply_op1_no_bwd(&BiasGelu { bias: &layer.up.b })?;
            x = layer.ln_out.forward(&up.matmul(&layer.down.w)?, &layer.down.b, &attn)?;
        }
        x.reshape((b, l, h))
    }

    /// The weights as flat f32 arrays for the GPU encoder (linear weights [in, out]).
    pub fn export(&self) -> Result<BertWeights> {
        let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(ctx("export"));
        let h = self.config.hidden_size;
        let mut position = flat(&self.position)?;
        let type0 = flat(&self.token_type0)?;
        for row in position.chunks_mut(h) {
            row.iter_mut().zip(&type0).for_each(|(p, t)| *p += t);
        }
        let ln = |l: &LayerNorm| (l.gamma.clone(), l.beta.clone());
        let lin = |l: &Linear| -> Result<(Vec<f32>, Vec<f32>)> { Ok((flat(&l.w)?, l.b.clone())) };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            layers.push(LayerWeights {
                qkv: (flat(&l.qkv)?, flat(&l.qkv_b)?),
                o: lin(&l.o)?,
                ln_attn: ln(&l.ln_attn),
                up: lin(&l.up)?,
                down: lin(&l.down)?,
                ln_out: ln(&l.ln_out),
            });
        }
        Ok(BertWeights {
            hidden: h,
            heads: self.config.num_attention_heads,
            intermediate: self.config.intermediate_size,
            max_positions: self.position.dims()[0],
            eps: self.ln_emb.eps,
            word: flat(&self.word)?,
            position,
            ln_emb: ln(&self.ln_emb),
            layers,
        })
    }

    /// Sentence vectors (B × H, row-major): pooled token vectors, L2-normalised when
    /// `normalize`.
    pub fn embed(
        &self,
        ids: &[u32],
        mask: &[u32],
        b: usize,
        l: usize,
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        let hidden = self.forward(ids, mask, b, l)?;
        let hidden: Vec<f32> = hidden.flatten_all().and_then(|t| t.to_vec1()).map_err(ctx("read back"))?;
        let h = self.config.hidden_size;
        let mut out = vec![0.0f32; b * h];
        for s in 0..b {
            let o = &mut out[s * h..(s + 1) * h];
            let tokens = (0..l).filter(|&t| mask[s * l + t] != 0);
            let row = |t: usize| &hidden[(s * l + t) * h..(s * l + t + 1) * h];
            match pooling {
                Pooling::Cls => o.copy_from_slice(row(0)),
                Pooling::Max => {
                    o.fill(f32::NEG_INFINITY);
                    for t in tokens {
                        o.iter_mut().zip(row(t)).for_each(|(a, &v)| *a = a.max(v));
                    }
                }
                Pooling::Mean | Pooling::MeanSqrtLen => {
                    let mut count = 0usize;
                    for t in tokens {
                        o.iter_mut().zip(row(t)).for_each(|(a, &v)| *a += v);
                        count += 1;
                    }
                    let div = if pooling == Pooling::Mean { count as f32 } else { (count as f32).sqrt() };
                    o.iter_mut().for_each(|a| *a /= div.max(1e-9));
                }
            }
            // L2 normalisation, as sentence-transformers' Normalize module (ε = 1e-12).
            if normalize {
                let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                o.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(out)
    }
}

/// A BERT checkpoint as flat f32 arrays, linear weights stored [in, out] (what the WGSL
/// encoder uploads).
#[derive(Debug, Clone)]
pub struct BertWeights {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub eps: f32,
    pub word: Vec<f32>,
    /// Position table with the token-type-0 row added.
    pub position: Vec<f32>,
    pub ln_emb: (Vec<f32>, Vec<f32>),
    pub layers: Vec<LayerWeights>,
}

/// One encoder layer of a [`BertWeights`].
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub qkv: (Vec<f32>, Vec<f32>),
    pub o: (Vec<f32>, Vec<f32>),
    pub ln_attn: (Vec<f32>, Vec<f32>),
    pub up: (Vec<f32>, Vec<f32>),
    pub down: (Vec<f32>, Vec<f32>),
    pub ln_out: (Vec<f32>, Vec<f32>),
}
