//! What a sentence transformer does after pooling: the `modules.json` chain past the
//! Transformer and Pooling modules. Dense modules (LaBSE's and distiluse's heads: a linear map
//! and an activation, `y = f(W p + b)`) run on the pooled vector, in order, on the host: a head
//! costs one small matrix-vector product per text next to the encoder's dozens of layers.
//! Normalize is segmix's own last step whether or not the chain has it (sentence vectors are
//! compared by direction; a model without it, such as distiluse, gives sentence-transformers'
//! vectors up to their length). Any other module is refused rather than skipped.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use serde::Deserialize;

use super::read_json;
use crate::foundation::error::{Error, Result};

/// One entry of a sentence-transformers `modules.json`.
#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

/// `{path}/config.json` of a Dense module.
#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default)]
    activation_function: Option<String>,
}

fn yes() -> bool {
    true
}

/// The activations a Dense module may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
}

/// A Dense module: y = f(W p + b), W stored [out, in] as PyTorch's `Linear`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub activation: Activation,
}

impl Dense {
    /// Reads the Dense module in `dir` (its `config.json` and `model.safetensors`).
    fn load(dir: &Path) -> Result<Dense> {
        let c: DenseConfig = read_json(&dir.join("config.json"))?;
        let activation = match c.activation_function.as_deref().map(|f| f.rsplit('.').next().unwrap_or(f)) {
            None | Some("Identity") => Activation::Identity,
            Some("Tanh") => Activation::Tanh,
            Some(f) => {
                return Err(Error::Embedder(format!(
                    "{}: activation {f:?} is not supported; segmix runs Dense heads with Tanh or no activation",
                    dir.join("config.json").display()
                )));
            }
        };
        let file = dir.join("model.safetensors");
        if !file.is_file() {
            return Err(Error::Embedder(format!(
                "{} has no model.safetensors (segmix reads safetensors only; a pytorch_model.bin can be converted \
                 with `safetensors.torch.save_file(torch.load(\"pytorch_model.bin\"), \"model.safetensors\")`)",
                dir.display()
            )));
        }
        let mut t: HashMap<String, candle_core::Tensor> = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::Embedder(format!("{}: cannot read weights: {e}", file.display())))?;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let v = t.remove(name).ok_or_else(|| Error::Embedder(format!("{}: no tensor {name:?}", file.display())))?;
            if v.dims() != shape {
                return Err(Error::Embedder(format!(
                    "{}: {name} has shape {:?}, config.json says {shape:?}",
                    file.display(),
                    v.dims()
                )));
            }
            v.to_dtype(DType::F32)
                .and_then(|v| v.flatten_all())
                .and_then(|v| v.to_vec1())
                .map_err(|e| Error::Embedder(format!("{}: {name}: {e}", file.display())))
        };
        let weight = take("linear.weight", &[c.out_features, c.in_features])?;
        let bias = if c.bias { take("linear.bias", &[c.out_features])? } else { vec![0.0; c.out_features] };
        Ok(Dense { inputs: c.in_features, outputs: c.out_features, weight, bias, activation })
    }

    /// y = f(W x + b), in f64 accumulation.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .map(|(w, b)| {
                let v = w.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() + f64::from(*b);
                match self.activation {
                    Activation::Identity => v as f32,
                    Activation::Tanh => v.tanh() as f32,
                }
            })
            .collect()
    }
}

/// The modules after pooling, in order.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub dense: Vec<Dense>,
}

impl Head {
    /// The head `dir/modules.json` describes (none without one), checked against the encoder's
    /// hidden size.
    pub fn read(dir: &Path, hidden: usize) -> Result<Head> {
        let path = dir.join("modules.json");
        if !path.is_file() {
            return Ok(Head::default());
        }
        let modules: Vec<ModuleEntry> = read_json(&path)?;
        let mut dense: Vec<Dense> = Vec::new();
        for m in &modules {
            let name = m.kind.rsplit('.').next().unwrap_or(&m.kind);
            match name {
                "Transformer" | "Pooling" | "Normalize" => {}
                "Dense" => {
                    let d = Dense::load(&dir.join(&m.path))?;
                    let width = dense.last().map_or(hidden, |p| p.outputs);
                    if d.inputs != width {
                        return Err(Error::Embedder(format!(
                            "{}: the Dense module takes {} inputs but gets {width}",
                            dir.join(&m.path).display(),
                            d.inputs
                        )));
                    }
                    dense.push(d);
                }
                _ => {
                    return Err(Error::Embedder(format!(
                        "{}: module {name:?} ({}) is not supported; segmix runs Transformer → Pooling → \
                         Dense → Normalize chains",
                        path.display(),
                        if m.path.is_empty() { "the model folder" } else { &m.path }
                    )));
                }
            }
        }
        Ok(Head { dense })
    }

    /// Whether there is anything to run after pooling.
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// The sentence vector's width after the head, for a pooled width `hidden`.
    pub fn outputs(&self, hidden: usize) -> usize {
        self.dense.last().map_or(hidden, |d| d.outputs)
    }

    /// Runs the head on `b` pooled vectors of width `hidden` and L2-normalises the results
    /// (ε = 1e-12, as sentence-transformers' Normalize).
    pub fn apply(&self, pooled: &[f32], hidden: usize) -> Vec<f32> {
        let out = self.outputs(hidden);
        let mut v = Vec::with_capacity(pooled.len() / hidden.max(1) * out);
        for p in pooled.chunks_exact(hidden.max(1)) {
            let mut x = p.to_vec();
            for d in &self.dense {
                x = d.apply(&x);
            }
            let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.extend(x.iter().map(|a| a / norm));
        }
        v
    }
}
