//! segmix finds latent segments in tables that mix categorical columns, a free-text column and
//! numeric metrics, and explains each segment in words.
//!
//! Pipeline: [`data`] (CSV → typed table) → [`reduce`] (PCA of text embeddings) → [`mixture`]
//! (joint latent class model fitted by EM over a [`backend::Backend`]) → [`report`] (files).
//! [`pipeline`] strings them together for the `segmix` binary; [`model`] is the saved model.

pub mod backend;
pub mod bench;
pub mod compare;
pub mod data;
pub mod embed;
pub mod error;
pub mod explain;
pub mod linalg;
pub mod metrics;
pub mod mixture;
pub mod model;
pub mod par;
pub mod pipeline;
pub mod reduce;
pub mod report;
pub mod rng;

pub use error::{Error, Result};
