//! The messages of a fit over shards: the driver's requests and the shards' answers as bytes.
//! Control requests and their answers travel as JSON (with `float_roundtrip`, exact); the
//! per-iteration messages (kernel parameters, statistics) and rows as tagged binary
//! ([`crate::foundation::wire`]: floats bit for bit).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backend::{EStepSummary, KernelParams, MixtureData, Posteriors, SuffStats};
use crate::data::{CategoricalColumn, NumericColumn, Table, TextColumn};
use crate::encoders::EmbedderInfo;
use crate::explain::RowStats;
use crate::featurize::schema::{Schema, TableSummary, TieQuery};
use crate::foundation::error::Result;
use crate::foundation::wire::{Reader, Writer, damaged};
use crate::mixture::params::Params;
use crate::model::ModelFile;

/// The control requests (sent as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Control {
    Summary,
    Ties(TieQuery),
    Prepare(Box<Schema>),
    Patterns(Vec<Vec<bool>>),
    Sample { first_row: usize, rate: f64, seed: u64 },
    Posteriors(Box<Params>),
    Assign { params: Box<Params>, path: PathBuf, first_row: usize },
    Explain { model: Box<ModelFile>, first_row: usize, rate: f64, seed: u64, prototypes: usize },
}

pub(super) const JSON: &[u8; 4] = b"JSON";
pub(super) const ESTEP: &[u8; 4] = b"ESTP";
pub(super) const STATS: &[u8; 4] = b"STAT";
pub(super) const ROWS: &[u8; 4] = b"ROWS";
pub(super) const POST: &[u8; 4] = b"POST";

pub(super) fn json_message<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = JSON.to_vec();
    serde_json::to_writer(&mut out, value).expect("protocol messages serialize");
    out
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    let body = bytes.strip_prefix(JSON.as_slice()).ok_or_else(|| damaged("expected a JSON message"))?;
    serde_json::from_slice(body).map_err(damaged)
}

pub(super) fn encode_kernel_params(kp: &KernelParams) -> Vec<u8> {
    Writer::new(ESTEP)
        .usize(kp.k)
        .usize(kp.p)
        .usize(kp.n_patterns)
        .f64s(&kp.log_weights)
        .f64s(&kp.log_alpha)
        .f64s(&kp.means)
        .f64s(&kp.prec_chol)
        .f64s(&kp.log_norm)
        .f64s(&kp.fill)
        .finish()
}

pub(super) fn decode_kernel_params(bytes: &[u8]) -> Result<KernelParams> {
    let mut r = Reader::new(bytes, ESTEP)?;
    let kp = KernelParams {
        k: r.usize()?,
        p: r.usize()?,
        n_patterns: r.usize()?,
        log_weights: r.f64s()?,
        log_alpha: r.f64s()?,
        means: r.f64s()?,
        prec_chol: r.f64s()?,
        log_norm: r.f64s()?,
        fill: r.f64s()?,
    };
    r.end()?;
    Ok(kp)
}

pub(super) fn encode_stats(summary: &EStepSummary, st: &SuffStats) -> Vec<u8> {
    Writer::new(STATS)
        .f64s(&[summary.loglik, summary.entropy])
        .usize(st.k)
        .usize(st.p)
        .f64s(&st.nk)
        .f64s(&st.sum_d)
        .f64s(&st.sum_dd)
        .f64s(&st.cat)
        .f64s(&st.pattern_mass)
        .finish()
}

pub(super) fn decode_stats(bytes: &[u8]) -> Result<(EStepSummary, SuffStats)> {
    let mut r = Reader::new(bytes, STATS)?;
    let s = r.f64s()?;
    let [loglik, entropy] = s[..] else { return Err(damaged("an E-step summary of the wrong length")) };
    let st = SuffStats {
        k: r.usize()?,
        p: r.usize()?,
        nk: r.f64s()?,
        sum_d: r.f64s()?,
        sum_dd: r.f64s()?,
        cat: r.f64s()?,
        pattern_mass: r.f64s()?,
    };
    r.end()?;
    Ok((EStepSummary { loglik, entropy }, st))
}

/// Rows on the wire: what differs from row to row (the layout is the schema's).
pub(super) fn encode_rows(d: &MixtureData) -> Vec<u8> {
    Writer::new(ROWS).usize(d.n).f64s(&d.x).u32s(&d.pattern).u32s(&d.codes).f64s(&d.log_jacobian).finish()
}

/// Rows read into `layout` (the schema's, with the global pattern table).
pub(super) fn decode_rows(bytes: &[u8], layout: &MixtureData) -> Result<MixtureData> {
    let mut r = Reader::new(bytes, ROWS)?;
    let d = MixtureData {
        n: r.usize()?,
        x: r.f64s()?,
        pattern: r.u32s()?,
        codes: r.u32s()?,
        log_jacobian: r.f64s()?,
        ..layout.clone()
    };
    r.end()?;
    let ok = d.x.len() == d.n * d.p
        && d.pattern.len() == d.n
        && d.codes.len() == d.n * d.n_cat()
        && d.pattern.iter().all(|&o| (o as usize) < d.patterns.len());
    if ok { Ok(d) } else { Err(damaged("rows of the wrong shape")) }
}

pub(super) fn encode_posteriors(p: &Posteriors) -> Vec<u8> {
    Writer::new(POST).usize(p.k).f64s(&p.resp).f64s(&p.row_loglik).finish()
}

pub(super) fn decode_posteriors(bytes: &[u8]) -> Result<Posteriors> {
    let mut r = Reader::new(bytes, POST)?;
    let p = Posteriors { k: r.usize()?, resp: r.f64s()?, row_loglik: r.f64s()? };
    r.end()?;
    if p.resp.len() == p.k * p.row_loglik.len() { Ok(p) } else { Err(damaged("posteriors of the wrong shape")) }
}

/// Rows of several parts (their patterns indices into one table) one after the other.
pub(super) fn concat(parts: Vec<MixtureData>, layout: MixtureData) -> MixtureData {
    let mut out = layout;
    for d in parts {
        out.n += d.n;
        out.x.extend(d.x);
        out.pattern.extend(d.pattern);
        out.codes.extend(d.codes);
        out.log_jacobian.extend(d.log_jacobian);
    }
    out
}

/// Which of `n` rows, the first of them row `first_row` of the whole table, are in the seeded
/// sample of `rate`.
pub(super) fn sampled(n: usize, first_row: usize, rate: f64, seed: u64) -> Vec<usize> {
    (0..n).filter(|&i| in_sample(seed, first_row + i, rate)).collect()
}

/// Whether the row at global index `row` is in the seeded sample of `rate` (a hash of the seed
/// and the index: the same rows whatever the split into shards).
fn in_sample(seed: u64, row: usize, rate: f64) -> bool {
    let mut z = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_5A3B_1E00_0000;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < rate
}

/// What a shard says in answer to Summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ShardSummary {
    pub(super) summary: TableSummary,
    pub(super) embedder: Option<EmbedderInfo>,
    pub(super) notes: Vec<String>,
}

/// What a shard says in answer to Prepare.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Prepared {
    pub(super) rows: usize,
    pub(super) log_jacobian: f64,
    pub(super) patterns: Vec<Vec<bool>>,
    pub(super) warnings: Vec<String>,
}

/// The cells of some rows of a table (NaN metrics as `None`, which JSON can hold).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Cells {
    pub(super) rows: usize,
    pub(super) categorical: Vec<(String, Vec<Option<String>>)>,
    pub(super) numeric: Vec<(String, Vec<Option<f64>>)>,
    pub(super) text: Option<(String, Vec<Option<String>>)>,
}

impl Cells {
    /// The cells of rows `idx` of `t`.
    pub(super) fn of(t: &Table, idx: &[usize]) -> Cells {
        let pick = |values: &[Option<String>]| idx.iter().map(|&i| values[i].clone()).collect();
        Cells {
            rows: idx.len(),
            categorical: t.categorical.iter().map(|c| (c.name.clone(), pick(&c.values))).collect(),
            numeric: t
                .numeric
                .iter()
                .map(|c| (c.name.clone(), idx.iter().map(|&i| Some(c.values[i]).filter(|v| !v.is_nan())).collect()))
                .collect(),
            text: t.text.as_ref().map(|c| (c.name.clone(), pick(&c.values))),
        }
    }

    /// The cells as a table named `path`.
    pub(super) fn into_table(self, path: PathBuf) -> Table {
        Table {
            path,
            n_rows: self.rows,
            categorical: self
                .categorical
                .into_iter()
                .map(|(name, values)| CategoricalColumn { name, values, present: true })
                .collect(),
            numeric: self
                .numeric
                .into_iter()
                .map(|(name, values)| NumericColumn {
                    name,
                    values: values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
                    present: true,
                })
                .collect(),
            text: self.text.map(|(name, values)| TextColumn { name, values }),
            lines: Vec::new(),
            row_groups: Vec::new(),
            delimiter: b',',
        }
    }
}

/// A shard's answer to Explain: the cells of its rows in the sample, and the explanation's sums
/// over all its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ShardExplanation {
    pub(super) cells: Cells,
    pub(super) stats: RowStats,
}

/// What a shard says when it has written its assignments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    pub path: PathBuf,
    pub rows: usize,
    /// Rows whose most probable class is each class.
    pub class_rows: Vec<usize>,
}
