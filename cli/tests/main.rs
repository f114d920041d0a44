//! The `segmix` command end to end: one binary (linking is the slow part of a test build), one
//! module per area. The library's own tests are in the workspace root's `tests/`.

mod commands;
#[path = "../../tests/common.rs"]
mod common;
mod compare;
mod embed;
mod explain;
mod util;
