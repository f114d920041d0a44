//! On-disk embedding cache: vectors keyed by the embedder (weights' SHA-256, pooling, maximum
//! length) and the SHA-256 of the text, so a second fit on the same texts embeds nothing.
//!
//! One append-only file per embedder, `<dir>/<first 16 hex of the model SHA>-<pooling>-<max length>.vec`:
//! an 8-byte magic `SEGMIXV1`, the dimension as u32 LE, then records of
//! [32-byte text hash | dim × f32 LE]. Appends are whole-record writes to a file opened for
//! appending; a torn last record (a crash mid-write) is ignored on load.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::EmbedderInfo;
use crate::foundation::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SEGMIXV1";
const HEADER: u64 = 12;

/// An open cache for one model.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    dim: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: std::fs::File,
    /// Text hash → byte offset of its vector.
    index: HashMap<[u8; 32], u64>,
    len: u64,
}

fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Cache {
    /// Opens (or creates) the cache of an embedder in folder `dir`.
    pub fn open(dir: &Path, info: &EmbedderInfo) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let sha = &info.sha256[..info.sha256.len().min(16)];
        let pooling =
            serde_json::to_value(info.pooling).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let path = dir.join(format!("{sha}-{pooling}-{}.vec", info.max_length));
        let dim = info.dim;
        let io = |e| Error::io(&path, e);
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let mut len = file.metadata().map_err(io)?.len();
        if len == 0 {
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&(dim as u32).to_le_bytes());
            file.write_all(&header).map_err(io)?;
            len = HEADER;
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
            return Err(Error::Embedder(format!("{}: not a segmix embedding cache; delete it", path.display())));
        }
        let file_dim = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if file_dim != dim {
            return Err(Error::Embedder(format!(
                "{}: cache holds {file_dim}-d vectors but the model makes {dim}-d ones; delete it",
                path.display()
            )));
        }
        let record = 32 + 4 * dim;
        let mut index = HashMap::new();
        let mut at = HEADER as usize;
        while at + record <= bytes.len() {
            let key: [u8; 32] = bytes[at..at + 32].try_into().expect("32 bytes");
            index.insert(key, (at + 32) as u64);
            at += record;
        }
        len = len.min(at as u64);
        Ok(Cache { path, dim, state: Mutex::new(State { file, index, len }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.state.lock().expect("cache lock").index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached vector of `text`, if any.
    pub fn get(&self, text: &str) -> Option<Vec<f32>> {
        let mut st = self.state.lock().expect("cache lock");
        let off = *st.index.get(&text_hash(text))?;
        let mut buf = vec![0u8; 4 * self.dim];
        st.file.seek(SeekFrom::Start(off)).ok()?;
        st.file.read_exact(&mut buf).ok()?;
        Some(buf.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    /// Appends vectors (texts already cached are skipped).
    pub fn put(&self, items: &[(&str, &[f32])]) -> Result<()> {
        let mut st = self.state.lock().expect("cache lock");
        let mut buf = Vec::new();
        let mut fresh = Vec::new();
        for (text, v) in items {
            assert_eq!(v.len(), self.dim);
            let key = text_hash(text);
            if st.index.contains_key(&key) || fresh.iter().any(|(k, _)| *k == key) {
                continue;
            }
            fresh.push((key, buf.len() as u64 + 32));
            buf.extend_from_slice(&key);
            for x in *v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        st.file.write_all(&buf).map_err(|e| Error::io(&self.path, e))?;
        let base = st.len;
        for (key, off) in fresh {
            st.index.insert(key, base + off);
        }
        st.len += buf.len() as u64;
        Ok(())
    }
}
