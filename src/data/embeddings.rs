//! Precomputed vectors: one row per data row, as a NumPy `.npy` file (`<f4`, `<f8`, or
//! integer types, C order, 2-D) or a CSV of floats (an optional header line is skipped).
//!
//! A row that is entirely missing (`NaN` in `.npy`; empty/NA cells in CSV) is a row whose text
//! block is missing: it stays in the fit and is integrated out of the Gaussian. A row that is
//! only partly missing is malformed and rejected with its line and column.

use std::io::Read;
use std::path::Path;

use crate::foundation::error::{Error, Result};
use crate::foundation::matrix::Matrix;

/// Reads a `.npy` (by extension) or CSV matrix of embeddings.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let m = if is_npy { read_npy(path)?.into_f32() } else { read_csv_matrix(path)? };
    for i in 0..m.rows {
        let row = m.row(i);
        let nan = row.iter().filter(|v| v.is_nan()).count();
        if nan != 0 && nan != row.len() {
            let col = row.iter().position(|v| v.is_nan()).unwrap_or(0);
            return Err(Error::Embeddings {
                file: path.to_path_buf(),
                message: format!(
                    "row {i}, column {col}: the vector is only partly missing; \
                     a row is either a whole vector or entirely missing"
                ),
            });
        }
        if let Some(col) = row.iter().position(|v| v.is_infinite()) {
            return Err(Error::Embeddings {
                file: path.to_path_buf(),
                message: format!("row {i}, column {col}: the value is infinite"),
            });
        }
    }
    Ok(m)
}

/// Element data of a `.npy` file, widened to f64 or kept as read.
#[derive(Debug, Clone)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// A 2-D (or 1-D, read as one column) `.npy` array.
#[derive(Debug, Clone)]
pub struct Npy {
    pub rows: usize,
    pub cols: usize,
    pub data: NpyData,
}

impl Npy {
    pub fn into_f32(self) -> Matrix {
        let values = match self.data {
            NpyData::F32(v) => v,
            NpyData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            NpyData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        };
        Matrix { rows: self.rows, cols: self.cols, values }
    }
    pub fn into_f64(self) -> Vec<f64> {
        match self.data {
            NpyData::F32(v) => v.into_iter().map(f64::from).collect(),
            NpyData::F64(v) => v,
            NpyData::I64(v) => v.into_iter().map(|x| x as f64).collect(),
        }
    }
    pub fn into_i64(self) -> Vec<i64> {
        match self.data {
            NpyData::F32(v) => v.into_iter().map(|x| x as i64).collect(),
            NpyData::F64(v) => v.into_iter().map(|x| x as i64).collect(),
            NpyData::I64(v) => v,
        }
    }
}

/// Reads a NumPy `.npy` file (format versions 1–3, little-endian, C order).
pub fn read_npy(path: &Path) -> Result<Npy> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io(path, e))?;
    parse_npy(path, &bytes)
}

/// Parses the bytes of a `.npy` file; `path` is used in messages only.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Npy> {
    let bad = |message: String| Error::Embeddings { file: path.to_path_buf(), message };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (missing the \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad(format!("unsupported .npy format version {major}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or unreadable .npy header".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("the .npy header has no 'descr'".into()))?;
    let quote = descr.chars().next().filter(|c| *c == '\'' || *c == '"');
    let descr = match quote {
        Some(q) => descr[1..].split(q).next().unwrap_or(""),
        None => descr.split([',', '}']).next().unwrap_or("").trim(),
    };
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into()));
    }
    let shape_txt = dict_value(header, "shape").ok_or_else(|| bad("the .npy header has no 'shape'".into()))?;
    let inner = shape_txt.trim_start_matches('(');
    let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(format!("bad shape {shape_txt}"))))
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims.as_slice() {
        [r] => (*r, 1),
        [r, c] => (*r, *c),
        _ => {
            return Err(bad(format!("expected a 1-D or 2-D array, found shape {shape_txt}")));
        }
    };
    let body = &bytes[start + header_len..];
    // A hostile shape must not wrap around: rows × cols × 8 is checked.
    let fewer = || bad(format!("the file holds fewer values than its shape ({rows} x {cols}) says"));
    let count = rows.checked_mul(cols).filter(|c| c.checked_mul(8).is_some()).ok_or_else(fewer)?;
    let need = |size: usize| -> Result<&[u8]> { body.get(..count * size).ok_or_else(fewer) };
    let data = match descr {
        "<f4" | "|f4" => {
            NpyData::F32(need(4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        }
        "<f8" | "|f8" => {
            NpyData::F64(need(8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
        }
        "<i8" => NpyData::I64(need(8)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
        "<i4" => {
            NpyData::I64(need(4)?.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect())
        }
        other => {
            return Err(bad(format!("unsupported dtype {other}; save as float32 or float64")));
        }
    };
    Ok(Npy { rows, cols, data })
}

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k1 = format!("'{key}'");
    let k2 = format!("\"{key}\"");
    let at = header.find(&k1).map(|i| i + k1.len()).or_else(|| header.find(&k2).map(|i| i + k2.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Writes a 2-D f32 `.npy` file (version 1.0).
pub fn write_npy_f32(
    w: &mut (impl std::io::Write + ?Sized),
    rows: usize,
    cols: usize,
    values: &[f32],
) -> std::io::Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that magic + len + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

fn read_csv_matrix(path: &Path) -> Result<Matrix> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(std::io::BufReader::new(file));
    let mut values = Vec::new();
    let mut cols = None;
    let mut rows = 0usize;
    for (idx, rec) in rdr.byte_records().enumerate() {
        let rec = rec.map_err(|e| Error::Csv {
            file: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(idx as u64 + 1, |p| p.line());
        let fields: Vec<&str> = rec
            .iter()
            .enumerate()
            .map(|(c, f)| {
                std::str::from_utf8(f).map_err(|_| Error::NotUtf8 {
                    file: path.to_path_buf(),
                    line,
                    column: format!("#{}", c + 1),
                })
            })
            .collect::<Result<_>>()?;
        // An optional header: a first line whose cells are not all numbers or missing.
        if idx == 0 && fields.iter().any(|f| !crate::data::is_missing(f) && f.trim().parse::<f64>().is_err()) {
            continue;
        }
        let width = *cols.get_or_insert(fields.len());
        if fields.len() != width {
            return Err(Error::Ragged { file: path.to_path_buf(), line, expected: width, found: fields.len() });
        }
        for (c, f) in fields.iter().enumerate() {
            if crate::data::is_missing(f) {
                values.push(f32::NAN);
            } else {
                let v: f64 = f.trim().parse().map_err(|_| Error::NotNumeric {
                    file: path.to_path_buf(),
                    line,
                    row: rows,
                    column: format!("#{}", c + 1),
                    value: f.to_string(),
                })?;
                values.push(v as f32);
            }
        }
        rows += 1;
    }
    let cols = cols.ok_or_else(|| Error::EmptyFile { file: path.to_path_buf() })?;
    Ok(Matrix { rows, cols, values })
}
