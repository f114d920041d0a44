//! Files a fit or a prediction writes. Every file is written to a temporary name in the same
//! folder and renamed into place, so a failed run never leaves a half-written file.

pub mod html;
pub mod merge;

use std::io::Write;
use std::path::Path;

pub use crate::foundation::fs::write_atomic;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};

use crate::backend::Posteriors;
use crate::data::columnar::Format;
use crate::foundation::error::{Error, Result};
use crate::foundation::stats::argmax;
use crate::mixture::em::RunRecord;

/// Creates the output folder (and parents) if needed.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes the CSV file `path` atomically through a [`csv::Writer`] (fields quoted where they
/// need it), one field at a time: `fill` writes the records.
pub fn write_csv(path: &Path, fill: impl FnOnce(&mut CsvRows) -> csv::Result<()>) -> Result<()> {
    write_atomic(path, |w| {
        let mut rows = CsvRows { w: csv::Writer::from_writer(w as &mut dyn Write), buf: String::new() };
        fill(&mut rows)?;
        rows.w.flush()
    })
}

/// Records of a CSV file being written: text fields, numbers in [`Num`]'s round-trip format
/// (without an allocation per field), and the end of each record.
pub struct CsvRows<'a> {
    w: csv::Writer<&'a mut dyn Write>,
    buf: String,
}

impl std::fmt::Debug for CsvRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvRows").finish_non_exhaustive()
    }
}

impl CsvRows<'_> {
    /// A text field.
    pub fn text(&mut self, s: &str) -> csv::Result<()> {
        self.w.write_field(s)
    }

    /// Any displayable value as a field.
    pub fn value(&mut self, v: impl std::fmt::Display) -> csv::Result<()> {
        use std::fmt::Write as _;
        self.buf.clear();
        let _ = write!(self.buf, "{v}");
        self.w.write_field(&self.buf)
    }

    /// A float in [`Num`]'s shortest round-trip format.
    pub fn num(&mut self, v: f64) -> csv::Result<()> {
        self.value(Num(v))
    }

    /// Ends the record.
    pub fn end(&mut self) -> csv::Result<()> {
        self.w.write_record(None::<&[u8]>)
    }

    /// A whole record of text fields.
    pub fn record<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) -> csv::Result<()> {
        for f in fields {
            self.text(f.as_ref())?;
        }
        self.end()
    }
}

/// `assignments.csv` (and the prediction file): `row,class,max_posterior,loglik,post_1..post_K`
/// followed by any `extra` columns (name, one value per row).
pub fn write_assignments(path: &Path, post: &Posteriors, extra: &[(String, Vec<f64>)]) -> Result<()> {
    write_assignments_csv(path, post, extra, 0)
}

/// [`write_assignments`] of rows numbered from `first_row` (a shard's rows in the whole table).
fn write_assignments_csv(path: &Path, post: &Posteriors, extra: &[(String, Vec<f64>)], first_row: usize) -> Result<()> {
    let k = post.k;
    let n = post.row_loglik.len();
    write_csv(path, |w| {
        for name in ["row", "class", "max_posterior", "loglik"] {
            w.text(name)?;
        }
        for c in 1..=k {
            w.value(format_args!("post_{c}"))?;
        }
        for (name, _) in extra {
            w.text(name)?;
        }
        w.end()?;
        for i in 0..n {
            let r = &post.resp[i * k..(i + 1) * k];
            let (best, max) = argmax(r);
            w.value(first_row + i)?;
            w.value(best + 1)?;
            w.num(max)?;
            w.num(post.row_loglik[i])?;
            for &v in r {
                w.num(v)?;
            }
            for (_, values) in extra {
                w.num(values[i])?;
            }
            w.end()?;
        }
        Ok(())
    })
}

/// The prediction file in the format its extension names ([`Format`]): Parquet or Arrow IPC
/// with the columns of [`write_assignments`] (`row` and `class` as integers, the rest as
/// float64), else CSV.
pub fn write_assignments_as(path: &Path, post: &Posteriors, extra: &[(String, Vec<f64>)]) -> Result<()> {
    write_assignments_from(path, post, extra, 0)
}

/// [`write_assignments_as`] of rows numbered from `first_row`: one shard's part of a table's
/// assignments.
pub fn write_assignments_from(
    path: &Path,
    post: &Posteriors,
    extra: &[(String, Vec<f64>)],
    first_row: usize,
) -> Result<()> {
    let format = Format::of(path);
    if format == Format::Csv {
        return write_assignments_csv(path, post, extra, first_row);
    }
    let batch = assignments_batch(post, extra, first_row).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    write_atomic(path, |w| {
        match format {
            Format::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let mut writer = parquet::arrow::ArrowWriter::try_new(w, batch.schema(), Some(props))
                    .map_err(std::io::Error::other)?;
                writer.write(&batch).map_err(std::io::Error::other)?;
                writer.close().map_err(std::io::Error::other)?;
            }
            _ => {
                let mut writer =
                    arrow_ipc::writer::FileWriter::try_new(w, &batch.schema()).map_err(std::io::Error::other)?;
                writer.write(&batch).map_err(std::io::Error::other)?;
                writer.finish().map_err(std::io::Error::other)?;
            }
        }
        Ok(())
    })
}

/// The columns of [`write_assignments`] as one Arrow record batch.
fn assignments_batch(
    post: &Posteriors,
    extra: &[(String, Vec<f64>)],
    first_row: usize,
) -> std::result::Result<RecordBatch, ArrowError> {
    let (k, n) = (post.k, post.row_loglik.len());
    let mut best = Vec::with_capacity(n);
    let mut max = Vec::with_capacity(n);
    for r in post.resp.chunks_exact(k.max(1)).take(n) {
        let (b, m) = argmax(r);
        best.push(b as i64 + 1);
        max.push(m);
    }
    let mut fields = vec![
        Field::new("row", DataType::Int64, false),
        Field::new("class", DataType::Int64, false),
        Field::new("max_posterior", DataType::Float64, false),
        Field::new("loglik", DataType::Float64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values((first_row..first_row + n).map(|r| r as i64))),
        Arc::new(Int64Array::from(best)),
        Arc::new(Float64Array::from(max)),
        Arc::new(Float64Array::from(post.row_loglik.clone())),
    ];
    for c in 0..k {
        fields.push(Field::new(format!("post_{}", c + 1), DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values((0..n).map(|i| post.resp[i * k + c]))));
    }
    for (name, values) in extra {
        fields.push(Field::new(name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(values.clone())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// `selection.csv`: one line per (k, restart).
pub fn write_selection(path: &Path, runs: &[RunRecord]) -> Result<()> {
    write_csv(path, |w| {
        w.record([
            "k",
            "restart",
            "start",
            "loglik",
            "n_params",
            "bic",
            "icl",
            "aic",
            "iterations",
            "converged",
            "degenerate",
            "seconds",
        ])?;
        for r in runs {
            w.value(r.k)?;
            w.value(r.restart)?;
            w.text(&r.start)?;
            w.value(r.loglik)?;
            w.value(r.n_params)?;
            w.value(r.criteria.bic)?;
            w.value(r.criteria.icl)?;
            w.value(r.criteria.aic)?;
            w.value(r.iterations)?;
            w.value(r.converged)?;
            w.text(&r.degenerate.join("; "))?;
            w.value(format_args!("{:.6}", r.seconds))?;
            w.end()?;
        }
        Ok(())
    })
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
