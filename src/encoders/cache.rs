//! On-disk embedding cache: vectors keyed by the embedder (weights' SHA-256, pooling, maximum
//! length) and the SHA-256 of the text, so a second fit on the same texts embeds nothing.
//!
//! One append-only file per embedder, `<dir>/<first 16 hex of the model SHA>-<pooling>-<max
//! length>.v2.vec`: an 8-byte magic `SEGMIXV2`, the dimension as u32 LE, then fixed-size records
//! of [32-byte text hash | dim × f32 LE | CRC-32 of the two, u32 LE].
//!
//! Crash- and concurrency-safe:
//!
//! * every record carries a checksum, verified when the file is indexed and again when a vector
//!   is read, so a torn or overwritten record is a miss, never another text's bytes;
//! * appends hold an exclusive lock on the file, find the real end of the file (other processes
//!   may have appended), cut a torn tail left by a writer that died mid-record back to the last
//!   whole record, and write there; offsets always come from that real end;
//! * a cache that cannot be read or written (a full disk, a read-only folder, a corrupt file) is
//!   a warning ([`Cache::take_warning`]), never a failed run: the vectors are computed anyway.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::EmbedderInfo;
use crate::foundation::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SEGMIXV2";
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
    file: File,
    /// Text hash → byte offset of its record.
    index: HashMap<[u8; 32], u64>,
    /// The first problem met (reads and writes stop being attempted after a write failure).
    warning: Option<String>,
    writable: bool,
}

fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// One record: key, vector, CRC-32 of both.
fn record(key: &[u8; 32], v: &[f32]) -> Vec<u8> {
    let mut r = Vec::with_capacity(36 + 4 * v.len());
    r.extend_from_slice(key);
    v.iter().for_each(|x| r.extend_from_slice(&x.to_le_bytes()));
    let crc = crc32fast::hash(&r);
    r.extend_from_slice(&crc.to_le_bytes());
    r
}

/// The vector of a whole record, if its checksum holds.
fn check(rec: &[u8]) -> Option<Vec<f32>> {
    let (body, crc) = rec.split_at(rec.len() - 4);
    (crc32fast::hash(body) == u32::from_le_bytes(crc.try_into().ok()?))
        .then(|| body[32..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// Bytes per record of `dim`-wide vectors.
fn record_len(dim: usize) -> u64 {
    36 + 4 * dim as u64
}

impl Cache {
    /// Opens (or creates) the cache of an embedder in folder `dir`. A cache that cannot be
    /// opened is an error here; callers that can go on without one turn it into a warning.
    pub fn open(dir: &Path, info: &EmbedderInfo) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let sha = &info.sha256[..info.sha256.len().min(16)];
        let pooling =
            serde_json::to_value(info.pooling).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let path = dir.join(format!("{sha}-{pooling}-{}.v2.vec", info.max_length));
        let dim = info.dim;
        let io = |e| Error::io(&path, e);
        let (mut file, writable) =
            match std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
                Ok(f) => (f, true),
                Err(_) => (File::open(&path).map_err(io)?, false),
            };
        let cache_err = |what: &str| Error::Embedder(format!("{}: {what}; delete it", path.display()));
        // The header is written once, under the lock, by whoever finds the file empty.
        if writable {
            file.lock().map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let wrote = if len == 0 {
                let mut header = MAGIC.to_vec();
                header.extend_from_slice(&(dim as u32).to_le_bytes());
                file.write_all(&header).and_then(|_| file.sync_data())
            } else {
                Ok(())
            };
            file.unlock().map_err(io)?;
            wrote.map_err(io)?;
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
            return Err(cache_err("not a segmix embedding cache"));
        }
        let file_dim = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if file_dim != dim {
            return Err(cache_err(&format!("it holds {file_dim}-d vectors but the model makes {dim}-d ones")));
        }
        let rec = record_len(dim) as usize;
        let mut index = HashMap::new();
        let mut bad = 0usize;
        for (i, r) in bytes[HEADER as usize..].chunks_exact(rec).enumerate() {
            if check(r).is_some() {
                index.insert(r[..32].try_into().expect("32 bytes"), HEADER + (i * rec) as u64);
            } else {
                bad += 1;
            }
        }
        let warning = (bad > 0).then(|| {
            format!("{}: {bad} damaged records were skipped (their texts are embedded again)", path.display())
        });
        Ok(Cache { path, dim, state: Mutex::new(State { file, index, warning, writable }) })
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

    /// The first problem the cache met (damaged records, a failed write), once.
    pub fn take_warning(&self) -> Option<String> {
        self.state.lock().expect("cache lock").warning.take()
    }

    /// The cached vector of `text`, if any (a record whose checksum fails is a miss).
    pub fn get(&self, text: &str) -> Option<Vec<f32>> {
        let mut st = self.state.lock().expect("cache lock");
        let off = *st.index.get(&text_hash(text))?;
        let mut rec = vec![0u8; record_len(self.dim) as usize];
        st.file.seek(SeekFrom::Start(off)).ok()?;
        st.file.read_exact(&mut rec).ok()?;
        match check(&rec).filter(|_| rec[..32] == text_hash(text)) {
            Some(v) => Some(v),
            None => {
                st.index.remove(&text_hash(text));
                None
            }
        }
    }

    /// Appends vectors (texts already cached are skipped). A failure to write becomes the
    /// cache's warning and turns writing off; it never fails the caller.
    pub fn put(&self, items: &[(&str, &[f32])]) {
        let mut st = self.state.lock().expect("cache lock");
        if !st.writable {
            return;
        }
        let mut buf = Vec::new();
        let mut fresh: Vec<([u8; 32], u64)> = Vec::new();
        for (text, v) in items {
            assert_eq!(v.len(), self.dim, "cache: vector width");
            let key = text_hash(text);
            if st.index.contains_key(&key) || fresh.iter().any(|(k, _)| *k == key) {
                continue;
            }
            fresh.push((key, buf.len() as u64));
            buf.extend(record(&key, v));
        }
        if buf.is_empty() {
            return;
        }
        match self.append(&mut st.file, &buf) {
            Ok(base) => {
                for (key, off) in fresh {
                    st.index.insert(key, base + off);
                }
            }
            Err(e) => {
                st.writable = false;
                st.warning.get_or_insert(format!(
                    "the embedding cache could not be written ({e}); the vectors were computed and used, \
                     but are not cached"
                ));
            }
        }
    }

    /// Writes whole records at the real end of the file under an exclusive lock, after cutting
    /// a torn tail back to the last whole record; returns the offset written at.
    fn append(&self, file: &mut File, buf: &[u8]) -> std::io::Result<u64> {
        file.lock()?;
        let result = (|| {
            let len = file.metadata()?.len();
            let whole = HEADER + (len.saturating_sub(HEADER)) / record_len(self.dim) * record_len(self.dim);
            if whole != len {
                file.set_len(whole)?;
            }
            file.seek(SeekFrom::Start(whole))?;
            if let Err(e) = file.write_all(buf) {
                // Leave no partial record behind.
                let _ = file.set_len(whole);
                return Err(e);
            }
            Ok(whole)
        })();
        file.unlock()?;
        result
    }
}
