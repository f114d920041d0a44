//! Reading the user's table.
//!
//! Input: a table file (CSV with a header; Parquet or Arrow IPC by extension: [`columnar`]) or
//! Arrow record batches in memory, and the column roles chosen on the command line
//! (`--cat`, `--num`, `--text`). Output: a typed [`Table`] holding only those columns —
//! categorical columns as raw strings (encoded against a level list later, so `fit` and
//! `predict` share one code path), numeric columns as `f64` with `NaN` for missing, and the
//! text column as optional strings.
//!
//! Missing values are kept, never dropped: an empty cell, `NA`, `N/A`, `NaN` or `null` (any
//! case, surrounding spaces ignored) is missing in every role. Every error names the file, the
//! line (1-based, as an editor shows it), the 0-based data row where it matters, and the column.

pub mod columnar;
pub mod embeddings;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::foundation::error::{Error, Result};

/// Which columns play which role.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub categorical: Vec<String>,
    pub numeric: Vec<String>,
    pub text: Option<String>,
}

impl Roles {
    pub fn is_empty(&self) -> bool {
        self.categorical.is_empty() && self.numeric.is_empty() && self.text.is_none()
    }
}

/// How strictly to read: `fit` needs every role column with at least one value; `predict`
/// accepts new rows where a column is absent or empty (metrics of ad copy not yet launched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Fit,
    Predict,
}

#[derive(Debug, Clone)]
pub struct CategoricalColumn {
    pub name: String,
    /// Raw values; `None` is missing.
    pub values: Vec<Option<String>>,
    /// False when the column is absent from the file (predict only).
    pub present: bool,
}

#[derive(Debug, Clone)]
pub struct NumericColumn {
    pub name: String,
    /// Values; `NaN` is missing.
    pub values: Vec<f64>,
    pub present: bool,
}

#[derive(Debug, Clone)]
pub struct TextColumn {
    pub name: String,
    pub values: Vec<Option<String>>,
}

/// The role columns of one CSV file.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub n_rows: usize,
    pub categorical: Vec<CategoricalColumn>,
    pub numeric: Vec<NumericColumn>,
    pub text: Option<TextColumn>,
    /// 1-based file line of each data row of a CSV file (for messages about rows); empty for
    /// columnar sources.
    pub lines: Vec<u64>,
    /// First data row of each Parquet row group, when the file has several (messages name them).
    pub row_groups: Vec<usize>,
    /// The field separator the file was read with (see [`read_table_from`]).
    pub delimiter: u8,
}

impl Table {
    /// Appends the rows of `other`, a table read with the same roles (its rows are then located
    /// by their index only: the file lines and row groups of the parts no longer apply).
    pub fn append(&mut self, other: Table) {
        self.n_rows += other.n_rows;
        self.categorical.iter_mut().zip(other.categorical).for_each(|(a, b)| a.values.extend(b.values));
        self.numeric.iter_mut().zip(other.numeric).for_each(|(a, b)| a.values.extend(b.values));
        if let (Some(a), Some(b)) = (self.text.as_mut(), other.text) {
            a.values.extend(b.values);
        }
        (self.lines, self.row_groups) = (Vec::new(), Vec::new());
    }

    /// Where data row `row` is, for messages: "line L (row R)" in a CSV file, "row group G, row
    /// R" in a Parquet file of several row groups, "row R" otherwise.
    pub fn at(&self, row: usize) -> String {
        match self.lines.get(row) {
            Some(line) => format!("line {line} (row {row})"),
            None => columnar::at_row(&self.row_groups, row),
        }
    }

    /// What the user should hear about how the file was read: a separator other than a comma.
    pub fn format_note(&self) -> Option<String> {
        (self.delimiter != b',').then(|| {
            let name = match self.delimiter {
                b'\t' => "tab".to_string(),
                d => format!("{:?}", d as char),
            };
            let decimal = if self.delimiter == b';' { "; numbers may use a decimal comma" } else { "" };
            format!(
                "{}: read as {name}-separated (its header names the columns only with that separator{decimal})",
                self.path.display()
            )
        })
    }
}

/// True for the cell values segmix reads as missing.
pub fn is_missing(cell: &str) -> bool {
    let t = cell.trim();
    t.is_empty()
        || t.eq_ignore_ascii_case("na")
        || t.eq_ignore_ascii_case("n/a")
        || t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("null")
}

enum Slot {
    Cat(usize),
    Num(usize),
    Text,
}

/// Reads the role columns of `path`: CSV, or Parquet or Arrow IPC by its extension
/// ([`columnar::Format`]).
pub fn read_table(path: &Path, roles: &Roles, strictness: Strictness) -> Result<Table> {
    match columnar::Format::of(path) {
        columnar::Format::Parquet => return columnar::read_parquet(path, roles, strictness),
        columnar::Format::ArrowIpc => return columnar::read_ipc(path, roles, strictness),
        columnar::Format::Csv => {}
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_table_from(path, file, roles, strictness)
}

/// Lines longer than this are refused: no table has them, and a file without line breaks (a
/// binary file, `/dev/zero`) would otherwise be read whole into one record.
const MAX_LINE: u64 = 64 << 20;

/// Field separators tried on the header, comma first.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Where each line of the input starts, recorded as the CSV parser reads the bytes: a line
/// ends at `\n`, `\r\n` or a lone `\r` (as editors count them; the parser's own line numbers
/// are off by one for CRLF files and count a CR-only file as one line). Also counts `"` bytes:
/// a quote left open swallows the rest of the file into one field, which the parser accepts.
#[derive(Debug, Default)]
struct Lines {
    /// Byte offset of every line start after the first.
    starts: Vec<u64>,
    /// Whether an odd number of quotes came before each of `starts`.
    odd: Vec<bool>,
    at: u64,
    /// Offset of the last byte that is not a line end.
    last_content: u64,
    pending_cr: bool,
    quotes: u64,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.pending_cr && b != b'\n' {
                self.starts.push(self.at);
                self.odd.push(self.quotes % 2 == 1);
            }
            let crlf = self.pending_cr && b == b'\n';
            if b != b'\n' && b != b'\r' {
                self.last_content = self.at;
            }
            self.pending_cr = b == b'\r';
            self.at += 1;
            match b {
                // The parser ends a CRLF line at its CR and starts the next record at the LF:
                // the line starts there.
                b'\n' => {
                    self.starts.push(if crlf { self.at - 1 } else { self.at });
                    self.odd.push(self.quotes % 2 == 1);
                }
                b'"' => self.quotes += 1,
                _ => {}
            }
        }
    }

    /// The 1-based line of byte `offset`.
    fn line_of(&self, offset: u64) -> u64 {
        1 + self.starts.partition_point(|&s| s <= offset) as u64
    }

    /// Whether the bytes from line `line`'s start to the end hold an odd number of quotes.
    fn odd_quotes_from(&self, line: u64) -> bool {
        let before = if line <= 1 { false } else { self.odd[line as usize - 2] };
        before != (self.quotes % 2 == 1)
    }
}

/// A reader that tells [`Lines`] every byte it passes on.
struct Counted<R> {
    inner: R,
    lines: Rc<RefCell<Lines>>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.borrow_mut();
        lines.feed(&buf[..n]);
        if lines.at - lines.starts.last().copied().unwrap_or(0) > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} MiB: this is not a CSV table (or has no line breaks)",
                    lines.starts.len() + 1,
                    MAX_LINE >> 20
                ),
            ));
        }
        Ok(n)
    }
}

/// The separator of a table whose first line is `header`: the comma, unless another of
/// [`DELIMITERS`] splits the header into more of the role columns (a `;`-separated export of
/// a European spreadsheet, a tab-separated file). A table read with a comma would fail on
/// those anyway, so the choice never changes a file that reads today.
fn detect_delimiter(header: &[u8], roles: &Roles) -> u8 {
    let wanted: Vec<&str> =
        roles.categorical.iter().chain(&roles.numeric).chain(&roles.text).map(String::as_str).collect();
    let found = |d: u8| {
        let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(d).from_reader(header);
        let Some(Ok(rec)) = r.byte_records().next() else { return 0usize };
        // A header that is not UTF-8 finds nothing here, and is reported by the read itself.
        let Ok(names) = header_names(Path::new(""), &rec) else { return 0 };
        wanted.iter().filter(|w| names.iter().any(|n| n == *w)).count()
    };
    let mut best = (b',', found(b','));
    for &d in &DELIMITERS[1..] {
        let f = found(d);
        if f > best.1 {
            best = (d, f);
        }
    }
    best.0
}

/// Reads the role columns from any reader (buffered here); `path` is used in messages only.
pub fn read_table_from<R: std::io::Read>(
    path: &Path,
    reader: R,
    roles: &Roles,
    strictness: Strictness,
) -> Result<Table> {
    use std::io::{BufRead, Read};
    let file = path.to_path_buf();
    // The first line, to choose the separator; then read again from the start.
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let mut first = Vec::new();
    (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut first).map_err(|e| Error::io(path, e))?;
    let delimiter = detect_delimiter(&first, roles);
    let counter = Rc::new(RefCell::new(Lines::default()));
    let counted = Counted { inner: std::io::Cursor::new(first).chain(reader), lines: Rc::clone(&counter) };
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(counted);
    let mut records = rdr.byte_records();
    let line_of = |p: Option<&csv::Position>| p.map_or(0, |p| counter.borrow().line_of(p.byte()));
    let csv_error = |e: csv::Error| csv_error(&file, line_of(e.position()), e);
    let header = match records.next() {
        None => return Err(Error::EmptyFile { file }),
        Some(r) => r.map_err(csv_error)?,
    };
    let names = header_names(&file, &header)?;
    let mut columns = Columns::of(&file, &names, roles, strictness)?;
    columns.decimal_comma = delimiter == b';';
    let mut lines = Vec::new();
    for record in records {
        let record = record.map_err(csv_error)?;
        let line = line_of(record.position());
        if record.len() != names.len() {
            // A line holding a single empty field is a blank line: skip it like csv does.
            if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                continue;
            }
            return Err(Error::Ragged { file, line, expected: names.len(), found: record.len() });
        }
        columns.push(&file, &names, &record, line, lines.len())?;
        lines.push(line);
    }
    // A last record that runs over several lines and holds an odd number of quotes: a quote
    // opened there was never closed, and everything after it became one cell.
    if let Some(&last) = lines.last() {
        let c = counter.borrow();
        if c.line_of(c.last_content) > last && c.odd_quotes_from(last) {
            return Err(Error::Csv {
                file,
                line: last,
                message: "a quoted field opened on this line is never closed, so the rest of the file would be \
                          read as one cell; add the closing quote (a quote inside a quoted field is written \
                          twice: \"\")"
                    .into(),
            });
        }
    }
    let n_rows = lines.len();
    let mut table = columns.finish(file, lines, n_rows, strictness)?;
    table.delimiter = delimiter;
    Ok(table)
}

/// The header's column names (a UTF-8 BOM dropped, surrounding spaces trimmed).
fn header_names(file: &Path, header: &csv::ByteRecord) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(header.len());
    for (i, field) in header.iter().enumerate() {
        let field = if i == 0 { field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field) } else { field };
        let name = std::str::from_utf8(field).map_err(|_| Error::NotUtf8 {
            file: file.to_path_buf(),
            line: 1,
            column: format!("#{}", i + 1),
        })?;
        names.push(name.trim().to_string());
    }
    Ok(names)
}

/// The role columns being read, and where each sits in a record.
struct Columns {
    slots: Vec<(usize, Slot)>,
    categorical: Vec<CategoricalColumn>,
    numeric: Vec<NumericColumn>,
    text: Option<TextColumn>,
    /// Numbers may use a decimal comma (`1,5`): a `;`-separated table.
    decimal_comma: bool,
}

impl Columns {
    /// Maps each role to its header position: every name must exist (except model columns a
    /// prediction table may lack) and be used once.
    fn of(file: &Path, names: &[String], roles: &Roles, strictness: Strictness) -> Result<Columns> {
        let file = file.to_path_buf();
        let mut seen: HashMap<&str, ()> = HashMap::new();
        let mut cols = Columns {
            slots: Vec::new(),
            categorical: Vec::new(),
            numeric: Vec::new(),
            text: None,
            decimal_comma: false,
        };
        let all_roles = roles
            .categorical
            .iter()
            .map(|c| (c, 0))
            .chain(roles.numeric.iter().map(|c| (c, 1)))
            .chain(roles.text.iter().map(|c| (c, 2)));
        for (name, kind) in all_roles {
            if seen.insert(name.as_str(), ()).is_some() {
                return Err(Error::DuplicateRole { file, column: name.clone() });
            }
            let positions: Vec<usize> = names.iter().enumerate().filter(|(_, n)| *n == name).map(|(i, _)| i).collect();
            if positions.len() > 1 {
                return Err(Error::Csv {
                    file,
                    line: 1,
                    message: format!("the header names column {name:?} {} times; rename the copies", positions.len()),
                });
            }
            let pos = positions.first().copied();
            let absent_ok = strictness == Strictness::Predict && kind != 2;
            if pos.is_none() && !absent_ok {
                return Err(Error::NoSuchColumn {
                    file,
                    column: name.clone(),
                    available: names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
                });
            }
            let (name, present) = (name.clone(), pos.is_some());
            match (kind, pos) {
                (0, _) => {
                    cols.slots.extend(pos.map(|p| (p, Slot::Cat(cols.categorical.len()))));
                    cols.categorical.push(CategoricalColumn { name, values: Vec::new(), present });
                }
                (1, _) => {
                    cols.slots.extend(pos.map(|p| (p, Slot::Num(cols.numeric.len()))));
                    cols.numeric.push(NumericColumn { name, values: Vec::new(), present });
                }
                (_, Some(p)) => {
                    cols.slots.push((p, Slot::Text));
                    cols.text = Some(TextColumn { name, values: Vec::new() });
                }
                (_, None) => unreachable!("a text column is never absent_ok"),
            }
        }
        if cols.slots.is_empty() && !roles.is_empty() {
            let wanted: Vec<String> =
                roles.categorical.iter().chain(&roles.numeric).map(|n| format!("{n:?}")).collect();
            return Err(Error::Csv {
                file,
                line: 1,
                message: format!(
                    "the header has none of the model's columns ({}), so every row would get the same \
                     classes; it has {}. Name the columns as in the table the model was fitted on",
                    wanted.join(", "),
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(cols)
    }

    /// Appends data row `row` (file line `line`) from its record.
    fn push(&mut self, file: &Path, names: &[String], record: &csv::ByteRecord, line: u64, row: usize) -> Result<()> {
        for (pos, slot) in &self.slots {
            let bytes = record.get(*pos).unwrap_or(b"");
            let cell = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
                file: file.to_path_buf(),
                line,
                column: names[*pos].clone(),
            })?;
            match slot {
                Slot::Cat(c) => {
                    let v = if is_missing(cell) { None } else { Some(cell.trim().to_string()) };
                    self.categorical[*c].values.push(v);
                }
                Slot::Num(c) => {
                    let v = if is_missing(cell) {
                        f64::NAN
                    } else {
                        match parse_number(cell.trim(), self.decimal_comma) {
                            Some(v) if v.is_finite() => v,
                            _ => {
                                return Err(Error::NotNumeric {
                                    file: file.to_path_buf(),
                                    line,
                                    row,
                                    column: names[*pos].clone(),
                                    value: cell.to_string(),
                                });
                            }
                        }
                    };
                    self.numeric[*c].values.push(v);
                }
                Slot::Text => {
                    let v = if is_missing(cell) { None } else { Some(cell.to_string()) };
                    if let Some(t) = self.text.as_mut() {
                        t.values.push(v);
                    }
                }
            }
        }
        Ok(())
    }

    /// The table of `n_rows` rows (`lines`: their CSV lines, or empty): columns absent from a
    /// prediction table become all-missing; a fit refuses a table without data rows or with a
    /// role column that is missing on every row.
    fn finish(mut self, file: PathBuf, lines: Vec<u64>, n_rows: usize, strictness: Strictness) -> Result<Table> {
        if n_rows == 0 {
            return Err(Error::Table { file, message: "the table names its columns but has no data rows".into() });
        }
        for c in self.categorical.iter_mut().filter(|c| !c.present) {
            c.values = vec![None; n_rows];
        }
        for c in self.numeric.iter_mut().filter(|c| !c.present) {
            c.values = vec![f64::NAN; n_rows];
        }
        if strictness == Strictness::Fit {
            let all_missing = self
                .categorical
                .iter()
                .find(|c| c.values.iter().all(Option::is_none))
                .map(|c| c.name.clone())
                .or_else(|| self.numeric.iter().find(|c| c.values.iter().all(|v| v.is_nan())).map(|c| c.name.clone()))
                .or_else(|| {
                    self.text.as_ref().filter(|t| t.values.iter().all(Option::is_none)).map(|t| t.name.clone())
                });
            if let Some(column) = all_missing {
                return Err(Error::AllMissing { file, column });
            }
        }
        let Columns { categorical, numeric, text, .. } = self;
        Ok(Table { path: file, n_rows, categorical, numeric, text, lines, row_groups: Vec::new(), delimiter: b',' })
    }
}

fn csv_error(file: &Path, line: u64, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(_) => Error::Csv { file: file.to_path_buf(), line, message: e.to_string() },
        _ => Error::Csv { file: file.to_path_buf(), line, message: format!("malformed CSV: {e}") },
    }
}

/// A number as Rust (and every CSV writer) spells it; with `decimal_comma`, also `1,5` and
/// `-0,25e3` (one comma, no point: a European spreadsheet's export).
fn parse_number(cell: &str, decimal_comma: bool) -> Option<f64> {
    match cell.parse::<f64>() {
        Ok(v) => Some(v),
        Err(_) if decimal_comma && cell.matches(',').count() == 1 && !cell.contains('.') => {
            cell.replacen(',', ".", 1).parse().ok()
        }
        Err(_) => None,
    }
}

/// Parses a comma-separated list of column names (`a,b,c`); empty items are an error.
pub fn parse_column_list(flag: &str, value: &str) -> Result<Vec<String>> {
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(Error::config(format!("{flag} {value:?}: column names are separated by commas, with none empty")));
    }
    Ok(items)
}
