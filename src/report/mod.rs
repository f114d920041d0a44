//! Files a fit or a prediction writes. Every file is written to a temporary name in the same
//! folder and renamed into place, so a failed run never leaves a half-written file.

pub mod html;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::backend::Posteriors;
use crate::error::{Error, Result};
use crate::mixture::em::RunRecord;

/// Writes `path` atomically: `write` fills a temporary file beside it, which is then renamed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
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
    Ok(())
}

/// Creates the output folder (and parents) if needed.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// `assignments.csv` (and the prediction file): `row,class,max_posterior,loglik,post_1..post_K`
/// followed by any `extra` columns (name, one value per row).
pub fn write_assignments(path: &Path, post: &Posteriors, extra: &[(String, Vec<f64>)]) -> Result<()> {
    let k = post.k;
    let n = post.row_loglik.len();
    write_atomic(path, |w| {
        write!(w, "row,class,max_posterior,loglik")?;
        for c in 1..=k {
            write!(w, ",post_{c}")?;
        }
        for (name, _) in extra {
            write!(w, ",{}", csv_field(name))?;
        }
        writeln!(w)?;
        for i in 0..n {
            let r = &post.resp[i * k..(i + 1) * k];
            let (best, max) = argmax(r);
            write!(w, "{i},{},{},{}", best + 1, Num(max), Num(post.row_loglik[i]))?;
            for &v in r {
                write!(w, ",{}", Num(v))?;
            }
            for (_, values) in extra {
                write!(w, ",{}", Num(values[i]))?;
            }
            writeln!(w)?;
        }
        Ok(())
    })
}

/// Index and value of the largest entry (the first on ties).
pub fn argmax(r: &[f64]) -> (usize, f64) {
    r.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
}

/// `selection.csv`: one line per (k, restart).
pub fn write_selection(path: &Path, runs: &[RunRecord]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(w, "k,restart,start,loglik,n_params,bic,icl,aic,iterations,converged,degenerate,seconds")?;
        for r in runs {
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{:.6}",
                r.k,
                r.restart,
                csv_field(&r.start),
                r.loglik,
                r.n_params,
                r.criteria.bic,
                r.criteria.icl,
                r.criteria.aic,
                r.iterations,
                r.converged,
                csv_field(&r.degenerate.join("; ")),
                r.seconds
            )?;
        }
        Ok(())
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Formats a float with the shortest representation that reads back to the same bits:
/// positional for ordinary magnitudes, exponent form below 1e-4 and from 1e15 up.
/// Non-finite values are written as `NaN`, `inf`, `-inf`.
#[derive(Debug, Clone, Copy)]
pub struct Num(pub f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        let a = v.abs();
        if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&a) { write!(f, "{v:e}") } else { write!(f, "{v}") }
    }
}

#[cfg(test)]
mod tests {
    use super::Num;

    #[test]
    fn numbers_round_trip_and_stay_short() {
        for v in [0.0, 1.0, -2.5, 0.1, 1e-4, 4.825914741376287e-20, 123456.789, 1e15, -3.3e-300, f64::MIN_POSITIVE] {
            let s = Num(v).to_string();
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
            assert!(s.len() < 26, "{s}");
        }
        assert_eq!(Num(4.825914741376287e-20).to_string(), "4.825914741376287e-20");
        assert_eq!(Num(0.25).to_string(), "0.25");
    }
}
