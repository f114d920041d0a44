//! The library's error type. Every message names what the user has to look at (file, line,
//! column) and, where there is one, what to change. The binary adds nothing but the exit code.

use std::path::PathBuf;

/// Convenient alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in segmix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: the file is empty; it needs a header line and at least one data row")]
    EmptyFile { file: PathBuf },

    #[error("{file}: line {line}: {message}")]
    Csv { file: PathBuf, line: u64, message: String },

    #[error(
        "{file}: line {line} has {found} fields but the header has {expected}; \
         every row needs the same number of fields (quote cells that contain commas)"
    )]
    Ragged { file: PathBuf, line: u64, expected: usize, found: usize },

    #[error(
        "{file}: line {line}, column {column:?}: the bytes are not valid UTF-8; \
         re-save the file as UTF-8"
    )]
    NotUtf8 { file: PathBuf, line: u64, column: String },

    #[error("{file}: there is no column {column:?} (the header has: {available})")]
    NoSuchColumn { file: PathBuf, column: String, available: String },

    #[error("{file}: column {column:?} is named twice in the roles (--cat/--num/--text)")]
    DuplicateRole { file: PathBuf, column: String },

    #[error(
        "{file}: line {line} (row {row}), column {column:?}: {value:?} is not a number; \
         fix it, or leave the cell empty (or NA) to mark it missing"
    )]
    NotNumeric { file: PathBuf, line: u64, row: usize, column: String, value: String },

    /// A table file that cannot be read as a whole (not Parquet, a damaged Arrow file).
    #[error("{file}: {message}")]
    Table { file: PathBuf, message: String },

    /// A bad cell of a columnar table (Parquet, Arrow, a DataFrame): `at` is its row group and row.
    #[error("{file}: {at}{}: {message}", if column.is_empty() { String::new() } else { format!(", column {column:?}") })]
    Cell { file: PathBuf, at: String, column: String, message: String },

    /// A columnar table's column whose type its role cannot read (strings for --num that are
    /// not numbers are a [`Error::Cell`] instead).
    #[error("{file}: column {column:?} holds {found}, which a {role} column cannot read; {hint}")]
    ColumnType { file: PathBuf, column: String, found: String, role: String, hint: String },

    #[error(
        "{file}: column {column:?} has no value in any row; drop it from the roles \
         or fill it in"
    )]
    AllMissing { file: PathBuf, column: String },

    #[error("{file}: {message}")]
    Embeddings { file: PathBuf, message: String },

    #[error(
        "{file}: {found} embedding rows but the table has {expected} rows; \
         the embeddings must have one row per data row, in the same order"
    )]
    EmbeddingRows { file: PathBuf, found: usize, expected: usize },

    #[error(
        "K = {k} is larger than the number of rows ({n}); ask for fewer classes (--k) \
         or give more data"
    )]
    TooManyClasses { k: usize, n: usize },

    #[error("{0}")]
    Config(String),

    #[error("{0}")]
    Numerical(String),

    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },

    #[error("sentence embedder: {0}")]
    Embedder(String),

    /// The caller asked the run to stop (Ctrl-C in the Python package).
    #[error("interrupted")]
    Cancelled,

    /// A worker of a fit over shards was asked for something the requests that set it up
    /// provide, and it has not had them: it was restarted, and its transport must send them again.
    #[error("a shard was asked for {0} before it was set up (it was restarted?)")]
    ShardNotSetUp(String),

    /// No usable GPU adapter, a wgpu validation or out-of-memory error, or a lost device.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }
}
