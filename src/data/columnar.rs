//! Columnar tables: Parquet and Arrow IPC files, and Arrow record batches handed over in memory
//! (the Python package's DataFrames and Arrow tables).
//!
//! The same roles, the same missing-value rules and the same [`Table`] as the CSV reader, so a
//! table fits the same whether it arrives as CSV, Parquet or a DataFrame: a null is missing in
//! every role, and so is a string cell that CSV reads as missing (`""`, `NA`, `NaN`, ...); a
//! floating-point NaN is a missing number. Only the role columns are read (a Parquet
//! projection, an IPC projection). Numbers come from any integer, floating-point or decimal
//! column, or from strings parsed as the CSV reader parses them; categories from strings,
//! dictionaries, integers, booleans, floats and dates (as their text); text from strings. A
//! column of another type is refused by name ([`Error::ColumnType`]); a bad cell is named by its
//! row group and row ([`Error::Cell`]).

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType};

use super::{CategoricalColumn, Columns, NumericColumn, Roles, Slot, Strictness, Table, TextColumn, is_missing};
use crate::foundation::error::{Error, Result};
use crate::foundation::guard;

/// How a table file is stored, told by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// `.parquet`, `.pq`.
    Parquet,
    /// Arrow IPC: `.arrow`, `.feather`, `.ipc` (the file format) and `.arrows` (the stream format).
    ArrowIpc,
}

impl Format {
    /// The format of `path` by its extension (any case); CSV (or TSV, or `;`-separated) otherwise.
    pub fn of(path: &Path) -> Format {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Format::Parquet,
            "arrow" | "feather" | "ipc" | "arrows" => Format::ArrowIpc,
            _ => Format::Csv,
        }
    }
}

/// Reads the role columns of a Parquet file, only those columns, one row group at a time.
pub fn read_parquet(path: &Path, roles: &Roles, strictness: Strictness) -> Result<Table> {
    guard::catch(path, "Parquet", || parquet_table(path, roles, strictness))
}

fn parquet_table(path: &Path, roles: &Roles, strictness: Strictness) -> Result<Table> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let not_parquet = |e: parquet::errors::ParquetError| Error::Table {
        file: path.to_path_buf(),
        message: format!("not a readable Parquet file ({e}); a Parquet file ends with the bytes PAR1"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let columns = Columns::of(path, &names, roles, strictness)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.slots.iter().map(|(p, _)| *p));
    let mut starts = Vec::new();
    let mut at = 0usize;
    for g in builder.metadata().row_groups() {
        starts.push(at);
        at += usize::try_from(g.num_rows()).unwrap_or(0);
    }
    let reader = builder.with_projection(mask).with_batch_size(BATCH_ROWS).build().map_err(not_parquet)?;
    let mut fill = Fill::new(path, columns, starts);
    for batch in reader {
        let batch = batch.map_err(|e| fill.decode_error(e))?;
        fill.push(&batch)?;
    }
    fill.finish(strictness)
}

/// Rows per decoded batch (a row group is read in pieces of this size).
const BATCH_ROWS: usize = 64 * 1024;

/// Reads the role columns of an Arrow IPC file (`.arrow`, `.feather`: the file format, read with
/// a projection) or stream (`.arrows`, or any IPC file without the file format's footer).
pub fn read_ipc(path: &Path, roles: &Roles, strictness: Strictness) -> Result<Table> {
    guard::catch(path, "Arrow IPC", || ipc_table(path, roles, strictness))
}

fn ipc_table(path: &Path, roles: &Roles, strictness: Strictness) -> Result<Table> {
    use arrow_ipc::reader::{FileReader, StreamReader};

    let open = || File::open(path).map_err(|e| Error::io(path, e));
    let not_ipc = |e: ArrowError| Error::Table {
        file: path.to_path_buf(),
        message: format!(
            "not a readable Arrow IPC file ({e}); .arrow/.feather/.ipc hold the IPC file format, .arrows the stream format"
        ),
    };
    let mut magic = [0u8; 6];
    let is_file = std::io::Read::read_exact(&mut open()?, &mut magic).is_ok() && &magic == b"ARROW1";
    if is_file {
        let reader = FileReader::try_new_buffered(open()?, None).map_err(not_ipc)?;
        let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
        let columns = Columns::of(path, &names, roles, strictness)?;
        let projection: Vec<usize> = columns.slots.iter().map(|(p, _)| *p).collect();
        let reader = FileReader::try_new_buffered(open()?, Some(projection)).map_err(not_ipc)?;
        let mut fill = Fill::new(path, columns, Vec::new());
        for batch in reader {
            fill.push(&batch.map_err(|e| fill.decode_error(e))?)?;
        }
        fill.finish(strictness)
    } else {
        let reader = StreamReader::try_new_buffered(open()?, None).map_err(not_ipc)?;
        let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
        table_from_batches(path, &names, reader, roles, strictness)
    }
}

/// A [`Table`] from record batches in memory (a DataFrame handed over through the Arrow C stream
/// interface): `source` names them in messages, `names` are the schema's column names.
pub fn table_from_batches<E: std::fmt::Display>(
    source: &Path,
    names: &[String],
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
    roles: &Roles,
    strictness: Strictness,
) -> Result<Table> {
    let columns = Columns::of(source, names, roles, strictness)?;
    let mut fill = Fill::new(source, columns, Vec::new());
    for batch in batches {
        let batch = batch.map_err(|e| fill.decode_error(e))?;
        fill.push(&batch)?;
    }
    fill.finish(strictness)
}

/// The role columns filled batch by batch.
struct Fill<'a> {
    file: &'a Path,
    columns: Columns,
    /// First row of each Parquet row group (empty for other sources).
    groups: Vec<usize>,
    rows: usize,
}

impl<'a> Fill<'a> {
    fn new(file: &'a Path, columns: Columns, groups: Vec<usize>) -> Self {
        Fill { file, columns, groups, rows: 0 }
    }

    /// Where data row `row` is: its row group (when the file has several) and row.
    fn at(&self, row: usize) -> String {
        at_row(&self.groups, row)
    }

    /// A batch that could not be decoded, named by where its rows start.
    fn decode_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Cell {
            file: self.file.to_path_buf(),
            at: format!("{} onwards", self.at(self.rows)),
            column: String::new(),
            message: format!("the data cannot be decoded: {e}"),
        }
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        for (_, slot) in &self.columns.slots {
            let name = match slot {
                Slot::Cat(c) => &self.columns.categorical[*c].name,
                Slot::Num(c) => &self.columns.numeric[*c].name,
                Slot::Text => &self.columns.text.as_ref().expect("a text slot has its column").name,
            };
            // Projected batches hold the role columns by name (IPC and Parquet keep file order).
            let i = schema.index_of(name).map_err(|_| Error::Cell {
                file: self.file.to_path_buf(),
                at: self.at(self.rows),
                column: name.clone(),
                message: "the column is missing from this batch of rows".into(),
            })?;
            let array = batch.column(i);
            match slot {
                Slot::Cat(c) => {
                    let values = self.strings(array, &self.columns.categorical[*c].name, Role::Categorical)?;
                    let col: &mut CategoricalColumn = &mut self.columns.categorical[*c];
                    col.values.extend(values.into_iter().map(|v| v.map(|s| s.trim().to_string())));
                }
                Slot::Num(c) => {
                    let values = self.numbers(array, &self.columns.numeric[*c].name)?;
                    let col: &mut NumericColumn = &mut self.columns.numeric[*c];
                    col.values.extend(values);
                }
                Slot::Text => {
                    let col = self.columns.text.as_ref().expect("a text slot has its column");
                    let values = self.strings(array, &col.name, Role::Text)?;
                    let col: &mut TextColumn = self.columns.text.as_mut().expect("a text slot has its column");
                    col.values.extend(values);
                }
            }
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    fn type_error(&self, column: &str, found: &DataType, role: Role) -> Error {
        let hint = match role {
            Role::Numeric if matches!(found, DataType::Boolean) => "name it as a categorical column (--cat / cat=)",
            Role::Numeric => "convert it to numbers, or name it as a categorical column",
            Role::Categorical => "convert it to strings or integers",
            Role::Text => "convert it to strings",
        };
        Error::ColumnType {
            file: self.file.to_path_buf(),
            column: column.to_string(),
            found: found.to_string(),
            role: role.name().to_string(),
            hint: hint.to_string(),
        }
    }

    /// The cells of a numeric column as f64, NaN for missing (null, NaN, or a missing-value
    /// string); an infinite value, or a string that is not a number, is an error naming its row.
    fn numbers(&self, array: &ArrayRef, column: &str) -> Result<Vec<f64>> {
        let dt = array.data_type();
        let bad = |row: usize, value: String| Error::Cell {
            file: self.file.to_path_buf(),
            at: self.at(self.rows + row),
            column: column.to_string(),
            message: format!("{value:?} is not a finite number; fix it, or make the cell null to mark it missing"),
        };
        if dt.is_numeric() || matches!(dt, DataType::Null) {
            let f =
                arrow_cast::cast(array, &DataType::Float64).map_err(|_| self.type_error(column, dt, Role::Numeric))?;
            let f = f.as_primitive::<arrow_array::types::Float64Type>();
            let mut out = Vec::with_capacity(f.len());
            for i in 0..f.len() {
                let v = if f.is_null(i) { f64::NAN } else { f.value(i) };
                if v.is_infinite() {
                    return Err(bad(i, v.to_string()));
                }
                out.push(v);
            }
            return Ok(out);
        }
        let strings = match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
                self.strings(array, column, Role::Numeric)?
            }
            _ => return Err(self.type_error(column, dt, Role::Numeric)),
        };
        strings
            .into_iter()
            .enumerate()
            .map(|(i, s)| match s {
                None => Ok(f64::NAN),
                Some(s) => match s.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(bad(i, s)),
                },
            })
            .collect()
    }

    /// The cells of a column as strings, `None` for missing (a null, or a cell CSV reads as
    /// missing). Text columns take strings only; categorical ones also the text of integers,
    /// booleans, floats, decimals and dates.
    fn strings(&self, array: &ArrayRef, column: &str, role: Role) -> Result<Vec<Option<String>>> {
        let dt = array.data_type();
        let stringy = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let castable = match dt {
            DataType::Null => true,
            t if stringy(t) => true,
            DataType::Dictionary(_, v) => stringy(v) || (role != Role::Text && castable_category(v)),
            t => role != Role::Text && castable_category(t),
        };
        if !castable {
            return Err(self.type_error(column, dt, role));
        }
        let s = arrow_cast::cast(array, &DataType::Utf8).map_err(|_| self.type_error(column, dt, role))?;
        let s = s.as_string::<i32>();
        Ok((0..s.len()).map(|i| (!s.is_null(i) && !is_missing(s.value(i))).then(|| s.value(i).to_string())).collect())
    }

    fn finish(self, strictness: Strictness) -> Result<Table> {
        let mut table = self.columns.finish(self.file.to_path_buf(), Vec::new(), self.rows, strictness)?;
        table.row_groups = if self.groups.len() > 1 { self.groups } else { Vec::new() };
        Ok(table)
    }
}

/// Types whose text is a category level (an integer code, a flag, a date).
fn castable_category(t: &DataType) -> bool {
    t.is_numeric() || t.is_temporal() || matches!(t, DataType::Boolean)
}

/// "row group G, row R" (when a file has several row groups) or "row R".
pub(super) fn at_row(groups: &[usize], row: usize) -> String {
    if groups.len() > 1 {
        let g = groups.partition_point(|&s| s <= row).saturating_sub(1);
        format!("row group {g}, row {row}")
    } else {
        format!("row {row}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Categorical,
    Numeric,
    Text,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Categorical => "categorical",
            Role::Numeric => "numeric",
            Role::Text => "text",
        }
    }
}
