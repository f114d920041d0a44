//! segmix integration tests: one binary (linking is the slow part of a test build), one module
//! per area.

mod cli;
mod compare;
mod data_errors;
mod em;
mod embed;
mod explain;
mod fit_quality;
mod util;
