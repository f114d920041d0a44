//! segmix finds latent segments in tables that mix categorical columns, a free-text column and
//! numeric metrics, and explains each segment in words.
//!
//! The modules are layers; each imports only from the layers below it:
//!
//! | layer | modules |
//! |---|---|
//! | the whole job as library calls | [`pipeline`] (fit, predict, compare, bench) |
//! | files | [`report`] (model, assignments, selection, clusters, HTML and Markdown) |
//! | meaning | [`explain`] (prototypes, decoder and keywords, profiles, maps, prompts) |
//! | the fitted model | [`model`] (`model.json`: schema and mixture parameters) |
//! | the latent class model | [`mixture`] (parameters, starts, EM, selection, predict) |
//! | features | [`featurize`] (text vectors → PCA; standardization and transforms: the schema) |
//! | input | [`data`] (CSV, Parquet, Arrow IPC or Arrow batches → typed table, roles, vector files) |
//! | kernels | [`backend`] (mixture kernels, CPU and WGSL) and [`encoders`] (sentence transformers, candle and WGSL) |
//! | foundations | [`foundation`] (errors, RNG, linear algebra, metrics, the GPU device toolkit) |
//!
//! The `segmix` command (`cli/`) and the Python bindings (`python/`) are separate crates on top
//! of [`pipeline`].

pub mod backend;
pub mod data;
pub mod encoders;
pub mod explain;
pub mod featurize;
pub mod foundation;
pub mod mixture;
pub mod model;
pub mod pipeline;
pub mod report;

pub use foundation::error::{Error, Result};
