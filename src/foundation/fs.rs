//! File-system helpers every layer uses: files that appear whole or not at all, checksums, and
//! the clean-up of what a killed run left behind.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// The infix of a temporary file [`write_atomic`] writes: `.<name>.tmp-<pid>`.
const TMP_INFIX: &str = ".tmp-";

/// Writes `path` atomically: `write` fills a temporary file beside it, which is flushed to disk
/// and then renamed over `path`, so a reader (or a crash) sees the old file or the new one, never
/// a part. Temporary files of the same name left by killed runs are removed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>) -> Result<()> {
    let dir = parent(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}{TMP_INFIX}{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    remove_stale_temps(dir, Some(&name));
    Ok(())
}

/// The folder `path` is in (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Removes the temporary files of [`write_atomic`] in `dir` (those of one target `name`, or all)
/// whose writing process has ended. Best effort: a file that cannot be removed, or whose process
/// cannot be checked on this platform, stays.
pub fn remove_stale_temps(dir: &Path, name: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some((target, pid)) = file.strip_prefix('.').and_then(|f| f.rsplit_once(TMP_INFIX)) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if name.is_some_and(|n| n != target) || pid == std::process::id() {
            continue;
        }
        if process_alive(pid) == Some(false) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` is running, where the platform can tell (Linux's `/proc`).
pub fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}

/// Flushes a folder's entries (renames into it) to disk, where the platform allows it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_removes_dead_runs_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("a.csv");
        // A temporary of a finished run (pid beyond any real one), and of another file.
        let dead = d.path().join(".a.csv.tmp-4000000000");
        let other = d.path().join(".b.csv.tmp-4000000000");
        std::fs::write(&dead, "x").unwrap();
        std::fs::write(&other, "x").unwrap();
        write_atomic(&target, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        if process_alive(1) == Some(true) {
            assert!(!dead.exists(), "a dead run's temporary is removed");
        }
        assert!(other.exists(), "only the target's temporaries");
        let failed = write_atomic(&target, |_| Err(std::io::Error::other("disk full")));
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new", "a failed write keeps the old file");
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
