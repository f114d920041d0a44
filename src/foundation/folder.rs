//! Output folders that change as a whole: the files of one run appear together or not at all.
//!
//! A run stages its files in `.segmix-staging-<pid>/` inside the folder, under the folder's lock
//! (`.segmix.lock`). Its commit point is the staged `manifest.json` — every file's name, size and
//! SHA-256 — written last and flushed to disk. The staged files are then renamed into the folder,
//! files of the previous set that the new one lacks are removed, and the manifest is renamed into
//! place. A run killed before its commit point leaves the previous set untouched (its staging
//! folder is removed by the next run); one killed after it is finished (rolled forward) by the
//! next run that opens the folder, reader or writer. Readers check the files they read against
//! `manifest.json`, so files of two runs mixed by hand are refused too.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::fs::{remove_stale_temps, sha256_file, sync_dir, write_atomic};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The `format` field of a manifest.
const FORMAT: &str = "segmix-folder";
const STAGING_PREFIX: &str = ".segmix-staging-";
const LOCK: &str = ".segmix.lock";

/// One file of a folder's set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json`: the files of the run that wrote the folder last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub segmix_version: String,
    pub files: Vec<Entry>,
    /// Set on the staged manifest of a write that adds files to a folder without a manifest
    /// (`Keep::Others` into an unchecked folder): it is only the commit point, and is removed
    /// instead of installed, so the folder stays unchecked rather than listing a part of its set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Manifest {
    /// The manifest of `dir`, `None` when it has none (a folder written before segmix kept
    /// manifests, or not by segmix).
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Model {
            path: path.clone(),
            message: format!("not a segmix manifest ({e}); delete it to read the folder unchecked"),
        })?;
        if m.format != FORMAT {
            return Err(Error::Model { path, message: format!("format is {:?}, not {FORMAT:?}", m.format) });
        }
        Ok(Some(m))
    }

    /// Whether `name` belongs to the set.
    pub fn lists(&self, name: &str) -> bool {
        self.files.iter().any(|e| e.name == name)
    }
}

/// Opens `dir` for reading the files `names`: finishes a write a killed run left committed, then
/// checks each file against the manifest (when the folder has one). Returns the manifest.
pub fn open(dir: &Path, names: &[&str]) -> Result<Option<Manifest>> {
    if has_staging(dir) {
        let _lock = lock(dir)?;
        recover(dir)?;
    }
    check_files(dir, names)
}

/// The manifest of `dir`, after checking the files `names` against it (when there is one).
fn check_files(dir: &Path, names: &[&str]) -> Result<Option<Manifest>> {
    let manifest = Manifest::read(dir)?;
    if let Some(m) = &manifest {
        for name in names {
            verify(dir, m, name)?;
        }
    }
    Ok(manifest)
}

/// Checks that `dir/name` is the file the manifest lists, or absent from both.
fn verify(dir: &Path, m: &Manifest, name: &str) -> Result<()> {
    let path = dir.join(name);
    let bad = |message: String| Error::Model { path: path.clone(), message };
    match m.files.iter().find(|e| e.name == name) {
        None if path.exists() => Err(bad(format!(
            "not one of the files of the run that wrote this folder (see {MANIFEST}); it was copied here from \
             another run. Fit again, or delete {MANIFEST} to read the folder unchecked"
        ))),
        None => Ok(()),
        Some(_) if !path.exists() => {
            Err(bad(format!("missing, though {MANIFEST} lists it; the folder is incomplete. Fit again")))
        }
        Some(e) => {
            if sha256_file(&path)? == e.sha256 {
                Ok(())
            } else {
                Err(bad(format!(
                    "not the file the run that wrote this folder left (its SHA-256 differs from {MANIFEST}'s): it \
                     was edited, or copied from another run. Fit again, or delete {MANIFEST} to read the folder \
                     unchecked"
                )))
            }
        }
    }
}

/// What of the folder's current set a write keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The new files are the whole set; files of the old set they do not name are removed (a fit).
    Nothing,
    /// The new files replace their namesakes; the rest of the set stays (a rebuilt report).
    Others,
}

/// A write of a folder in progress: files go into [`FolderWrite::dir`], and appear in the folder
/// at [`FolderWrite::commit`]. Dropped uncommitted, it leaves the folder as it was.
#[derive(Debug)]
pub struct FolderWrite {
    out: PathBuf,
    staging: PathBuf,
    keep: Keep,
    _lock: File,
}

impl FolderWrite {
    /// Creates `out` if needed, takes its lock (waiting for another run writing it), finishes or
    /// discards what killed runs left, and opens a staging folder.
    pub fn begin(out: &Path, keep: Keep) -> Result<FolderWrite> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let lock = lock(out)?;
        recover(out)?;
        let staging = out.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(FolderWrite { out: out.to_path_buf(), staging, keep, _lock: lock })
    }

    /// The staging folder the run writes its files into.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Checks the folder's current files `names` against its manifest (see [`open`]; the lock is
    /// held already).
    pub fn check(&self, names: &[&str]) -> Result<Option<Manifest>> {
        check_files(&self.out, names)
    }

    /// Where the run writes the file `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Makes the staged files the folder's set, all at once for any reader that goes through
    /// [`open`]: writes the manifest (the commit point), then moves the files into place.
    pub fn commit(self) -> Result<()> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.staging).map_err(|e| Error::io(&self.staging, e))? {
            let entry = entry.map_err(|e| Error::io(&self.staging, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            let bytes = entry.metadata().map_err(|e| Error::io(entry.path(), e))?.len();
            files.push(Entry { sha256: sha256_file(&entry.path())?, name, bytes });
        }
        let mut partial = false;
        if self.keep == Keep::Others {
            match Manifest::read(&self.out)? {
                Some(old) => {
                    let kept: Vec<Entry> = old
                        .files
                        .into_iter()
                        .filter(|e| !files.iter().any(|f| f.name == e.name) && self.out.join(&e.name).exists())
                        .collect();
                    files.extend(kept);
                }
                None => partial = true,
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest =
            Manifest { format: FORMAT.into(), segmix_version: env!("CARGO_PKG_VERSION").into(), files, partial };
        let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
        write_atomic(&self.staging.join(MANIFEST), |w| w.write_all(json.as_bytes()))?;
        sync_dir(&self.staging)?;
        roll_forward(&self.out, &self.staging)
    }
}

impl Drop for FolderWrite {
    fn drop(&mut self) {
        // Uncommitted (an error, or a panic): the previous set stays as it was.
        if self.staging.exists() && !self.staging.join(MANIFEST).exists() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

fn stagings(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) && e.path().is_dir())
        .map(|e| e.path())
        .collect()
}

fn has_staging(dir: &Path) -> bool {
    !stagings(dir).is_empty()
}

/// Under the folder's lock: rolls committed stagings forward, removes uncommitted ones and the
/// temporary files of dead runs.
fn recover(dir: &Path) -> Result<()> {
    for staging in stagings(dir) {
        if staging.join(MANIFEST).is_file() {
            roll_forward(dir, &staging)?;
        } else {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        }
    }
    remove_stale_temps(dir, None);
    Ok(())
}

/// Moves a committed staging's files into `out`, removes those of the old set the new one does
/// not list, then installs the manifest. Idempotent: a run killed halfway is finished by the
/// next call.
fn roll_forward(out: &Path, staging: &Path) -> Result<()> {
    let new = Manifest::read(staging)?.expect("a committed staging has a manifest");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(&p, e)
    };
    for e in &new.files {
        let from = staging.join(&e.name);
        if from.exists() {
            std::fs::rename(&from, out.join(&e.name)).map_err(io(&from))?;
        }
    }
    // A corrupt old manifest names no file to remove; the new one replaces it.
    if let Ok(Some(old)) = Manifest::read(out) {
        for e in old.files.iter().filter(|e| !new.lists(&e.name)) {
            match std::fs::remove_file(out.join(&e.name)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(out.join(&e.name), err));
                }
                _ => {}
            }
        }
    }
    sync_dir(out)?;
    // A partial manifest was only the commit point: the folder stays without one.
    if !new.partial {
        let from = staging.join(MANIFEST);
        std::fs::rename(&from, out.join(MANIFEST)).map_err(io(&from))?;
        sync_dir(out)?;
    }
    std::fs::remove_dir_all(staging).map_err(io(staging))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(out: &Path, keep: Keep, files: &[(&str, &str)]) -> Result<()> {
        let tx = FolderWrite::begin(out, keep)?;
        for (name, text) in files {
            std::fs::write(tx.path(name), text).unwrap();
        }
        tx.commit()
    }

    fn read(out: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(out.join(name)).ok()
    }

    fn visible(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn adding_files_to_a_folder_without_a_manifest_leaves_it_unchecked() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        std::fs::write(out.join("model.json"), "old fit").unwrap();
        write_set(out, Keep::Others, &[("report.html", "r")]).unwrap();
        assert_eq!(visible(out), ["model.json", "report.html"]);
        assert!(Manifest::read(out).unwrap().is_none(), "a manifest listing only the report");
        assert!(open(out, &["model.json", "report.html"]).unwrap().is_none());
        // A folder with a manifest keeps it, with the new file in it.
        write_set(out, Keep::Nothing, &[("model.json", "new fit")]).unwrap();
        write_set(out, Keep::Others, &[("report.html", "r2")]).unwrap();
        assert!(open(out, &["model.json", "report.html"]).unwrap().is_some_and(|m| m.lists("report.html")));
    }

    #[test]
    fn a_commit_replaces_the_set_and_leaves_other_files_alone() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("fit");
        write_set(&out, Keep::Nothing, &[("a", "1"), ("b", "1"), ("old-only", "1")]).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        write_set(&out, Keep::Nothing, &[("a", "2"), ("b", "2")]).unwrap();
        assert_eq!(visible(&out), ["a", "b", "manifest.json", "notes.txt"]);
        assert_eq!((read(&out, "a"), read(&out, "notes.txt")), (Some("2".into()), Some("mine".into())));
        let m = open(&out, &["a", "b"]).unwrap().unwrap();
        assert_eq!(m.files.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // Keep::Others replaces one file and keeps the rest of the set.
        write_set(&out, Keep::Others, &[("b", "3")]).unwrap();
        let m = open(&out, &["a", "b"]).unwrap().unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!((read(&out, "a"), read(&out, "b")), (Some("2".into()), Some("3".into())));
    }

    #[test]
    fn an_uncommitted_write_leaves_the_old_set() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        write_set(out, Keep::Nothing, &[("a", "1")]).unwrap();
        {
            let tx = FolderWrite::begin(out, Keep::Nothing).unwrap();
            std::fs::write(tx.path("a"), "2").unwrap();
            // dropped: an error before the commit
        }
        assert_eq!(read(out, "a").as_deref(), Some("1"));
        assert!(stagings(out).is_empty());
        // A killed run's staging (no manifest) is removed by the next run that opens the folder.
        std::fs::create_dir(out.join(".segmix-staging-4000000000")).unwrap();
        std::fs::write(out.join(".segmix-staging-4000000000/a"), "torn").unwrap();
        open(out, &["a"]).unwrap();
        assert!(stagings(out).is_empty());
        assert_eq!(read(out, "a").as_deref(), Some("1"));
    }

    /// A run killed after its commit point, with half its files moved: the next reader finishes it.
    #[test]
    fn a_committed_write_cut_short_is_finished_by_the_next_reader() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        write_set(out, Keep::Nothing, &[("a", "1"), ("b", "1"), ("c", "1")]).unwrap();
        let staging = out.join(".segmix-staging-4000000000");
        std::fs::create_dir(&staging).unwrap();
        for (name, text) in [("a", "2"), ("b", "2")] {
            std::fs::write(staging.join(name), text).unwrap();
        }
        let entries =
            ["a", "b"].map(|n| Entry { name: n.into(), bytes: 1, sha256: sha256_file(&staging.join(n)).unwrap() });
        let m =
            Manifest { format: FORMAT.into(), segmix_version: "test".into(), files: entries.to_vec(), partial: false };
        std::fs::write(staging.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
        std::fs::rename(staging.join("a"), out.join("a")).unwrap();
        // Now: a is new, b is old, c is old-only, and the old manifest is in place.
        assert!(open(out, &["a", "b"]).is_ok());
        assert_eq!(visible(out), ["a", "b", "manifest.json"]);
        assert_eq!((read(out, "a"), read(out, "b")), (Some("2".into()), Some("2".into())));
        assert_eq!(Manifest::read(out).unwrap().unwrap(), m);
    }

    #[test]
    fn files_from_another_run_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        write_set(out, Keep::Nothing, &[("model.json", "{}"), ("clusters.json", "[]")]).unwrap();
        std::fs::write(out.join("clusters.json"), "[1]").unwrap();
        let e = open(out, &["model.json", "clusters.json"]).unwrap_err().to_string();
        assert!(e.contains("clusters.json") && e.contains("SHA-256 differs"), "{e}");
        std::fs::remove_file(out.join("clusters.json")).unwrap();
        let e = open(out, &["clusters.json"]).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::write(out.join("selection.csv"), "x").unwrap();
        let e = open(out, &["selection.csv"]).unwrap_err().to_string();
        assert!(e.contains("not one of the files"), "{e}");
        assert!(open(out, &["model.json"]).is_ok());
        std::fs::remove_file(out.join(MANIFEST)).unwrap();
        assert!(open(out, &["selection.csv"]).unwrap().is_none(), "no manifest: unchecked");
    }
}
