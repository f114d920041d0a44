//! The library's integration tests: one binary (linking is the slow part of a test build), one
//! module per area. The command's end-to-end tests are in `cli/tests/`.

mod columnar;
mod common;
mod compare;
mod data_errors;
mod em;
mod embed;
mod explain;
mod fit_quality;
mod fuzz_cases;
mod references;
mod sharded;
mod util;
