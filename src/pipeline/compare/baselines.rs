//! The baselines `segmix compare` runs beside the joint model: k-means with restarts, Huang's
//! k-prototypes, and the row serialisation behind "sentence embedding + k-means".

use std::borrow::Cow;

use crate::foundation::MISSING_CODE;
use crate::foundation::error::{Error, Result};
use crate::foundation::rng::Rng;
use crate::mixture::init::{InitFeatures, KMeans, kmeans};

/// k-means (greedy k-means++ seeding, Lloyd on GEMM distances) with `n_init` restarts; the
/// restart with the lowest inertia wins. Restart r draws from `Rng::new(seed + r)`.
pub fn kmeans_restarts(x: &[f64], n: usize, f: usize, k: usize, n_init: usize, seed: u64) -> KMeans {
    let feat = InitFeatures::from_matrix(n, f, Cow::Borrowed(x));
    (0..n_init.max(1) as u64)
        .map(|r| kmeans(&feat, k, &mut Rng::new(seed.wrapping_add(r))))
        .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
        .expect("at least one restart")
}

/// Mixed rows for k-prototypes: numeric values (n × p, standardized, missing as NaN) and
/// category codes (n × J, [`MISSING_CODE`] when missing).
#[derive(Debug, Clone)]
pub struct MixedRows<'a> {
    pub n: usize,
    pub p: usize,
    pub num: &'a [f64],
    pub n_levels: &'a [usize],
    pub codes: &'a [u32],
}

/// A k-prototypes solution.
#[derive(Debug, Clone)]
pub struct Prototypes {
    pub labels: Vec<u32>,
    /// K × p numeric prototypes.
    pub means: Vec<f64>,
    /// K × J categorical modes (`MISSING_CODE` for a column a cluster never observed).
    pub modes: Vec<u32>,
    /// Σ_i ‖x_i − m_c‖² + γ · #{j : x_ij ≠ mode_cj} over observed values.
    pub cost: f64,
    /// Cost after each assignment pass (non-increasing).
    pub trace: Vec<f64>,
}

/// Huang's γ rule (as in the `kmodes` package): half the mean standard deviation of the numeric
/// columns, which is 1/2 on standardized columns. With no numeric column, γ = 1 (k-modes).
pub fn huang_gamma(rows: &MixedRows) -> f64 {
    if rows.p == 0 {
        return 1.0;
    }
    let mut sd_sum = 0.0;
    for a in 0..rows.p {
        let vals: Vec<f64> = (0..rows.n).map(|i| rows.num[i * rows.p + a]).filter(|v| !v.is_nan()).collect();
        let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
        let var = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len().max(1) as f64;
        sd_sum += var.sqrt();
    }
    0.5 * sd_sum / rows.p as f64
}

fn row_cost(rows: &MixedRows, i: usize, means: &[f64], modes: &[u32], c: usize, gamma: f64) -> f64 {
    let (p, j) = (rows.p, rows.n_levels.len());
    let mut d = 0.0;
    for a in 0..p {
        let v = rows.num[i * p + a];
        if !v.is_nan() {
            d += (v - means[c * p + a]).powi(2);
        }
    }
    for jj in 0..j {
        let code = rows.codes[i * j + jj];
        if code != MISSING_CODE && code != modes[c * j + jj] {
            d += gamma;
        }
    }
    d
}

/// Huang's k-prototypes (1997): numeric squared distance + γ × categorical mismatches; missing
/// values contribute nothing. Batch iterations (assign every row, then update means and modes,
/// modes breaking ties towards the lower level) until no label changes; `n_init` restarts from
/// distinct random rows, the lowest cost wins.
pub fn kprototypes(rows: &MixedRows, k: usize, gamma: f64, n_init: usize, seed: u64) -> Result<Prototypes> {
    if k == 0 || k > rows.n {
        return Err(Error::TooManyClasses { k, n: rows.n });
    }
    let mut best: Option<Prototypes> = None;
    for r in 0..n_init.max(1) as u64 {
        let mut rng = Rng::new(seed.wrapping_add(r));
        // Distinct random rows as the first prototypes (missing numerics at 0, the mean).
        let mut idx: Vec<usize> = (0..rows.n).collect();
        for t in 0..k {
            let s = t + rng.below(rows.n - t);
            idx.swap(t, s);
        }
        let (p, j) = (rows.p, rows.n_levels.len());
        let mut means = vec![0.0; k * p];
        let mut modes = vec![MISSING_CODE; k * j];
        for c in 0..k {
            let i = idx[c];
            for a in 0..p {
                let v = rows.num[i * p + a];
                means[c * p + a] = if v.is_nan() { 0.0 } else { v };
            }
            modes[c * j..(c + 1) * j].copy_from_slice(&rows.codes[i * j..(i + 1) * j]);
        }
        let run = iterate(rows, k, gamma, means, modes);
        if best.as_ref().is_none_or(|b| run.cost < b.cost) {
            best = Some(run);
        }
    }
    Ok(best.expect("at least one restart"))
}

/// Batch k-prototypes iterations from the given prototypes.
pub fn iterate(rows: &MixedRows, k: usize, gamma: f64, mut means: Vec<f64>, mut modes: Vec<u32>) -> Prototypes {
    let (n, p, j) = (rows.n, rows.p, rows.n_levels.len());
    let mut labels = vec![u32::MAX; n];
    let mut trace = Vec::new();
    for _ in 0..100 {
        let mut changed = 0;
        let mut cost = 0.0;
        for i in 0..n {
            let (c, d) = (0..k)
                .map(|c| (c, row_cost(rows, i, &means, &modes, c, gamma)))
                .fold((0, f64::INFINITY), |b, x| if x.1 < b.1 { x } else { b });
            cost += d;
            if labels[i] != c as u32 {
                labels[i] = c as u32;
                changed += 1;
            }
        }
        trace.push(cost);
        if changed == 0 {
            break;
        }
        // Update: numeric means over observed values; modes by count (lowest level on ties).
        let mut sums = vec![0.0; k * p];
        let mut counts = vec![0.0; k * p];
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(rows.n_levels.iter().scan(0, |s, &l| {
                *s += l;
                Some(*s)
            }))
            .collect();
        let mut freq = vec![0usize; k * offsets[j]];
        for i in 0..n {
            let c = labels[i] as usize;
            for a in 0..p {
                let v = rows.num[i * p + a];
                if !v.is_nan() {
                    sums[c * p + a] += v;
                    counts[c * p + a] += 1.0;
                }
            }
            for jj in 0..j {
                let code = rows.codes[i * j + jj];
                if code != MISSING_CODE {
                    freq[c * offsets[j] + offsets[jj] + code as usize] += 1;
                }
            }
        }
        for c in 0..k {
            for a in 0..p {
                if counts[c * p + a] > 0.0 {
                    means[c * p + a] = sums[c * p + a] / counts[c * p + a];
                }
            }
            for jj in 0..j {
                let f = &freq[c * offsets[j] + offsets[jj]..c * offsets[j] + offsets[jj + 1]];
                let (lvl, cnt) = f.iter().enumerate().fold((0, 0), |b, (l, &v)| if v > b.1 { (l, v) } else { b });
                if cnt > 0 {
                    modes[c * j + jj] = lvl as u32;
                }
            }
        }
    }
    let cost = *trace.last().unwrap_or(&0.0);
    Prototypes { labels, means, modes, cost, trace }
}

/// Serialises a row as text for the "embed every column, then k-means" recipe. The default
/// template is `Column: value` pairs joined by ", " in role order (categoricals, numerics, then
/// the text), skipping missing cells; a custom template names columns in braces, e.g.
/// `"{Ad_Text} ({Country}, {Channel})"`, and a missing cell becomes empty.
#[derive(Debug, Clone)]
pub struct RowTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Column(usize),
}

impl RowTemplate {
    /// Parses `template` against the row's column names; `None` builds the default.
    pub fn new(template: Option<&str>, columns: &[String]) -> Result<Self> {
        let Some(t) = template else {
            let mut parts = Vec::new();
            for (c, name) in columns.iter().enumerate() {
                parts.push(Part::Literal(format!("{}{name}: ", if c > 0 { ", " } else { "" })));
                parts.push(Part::Column(c));
            }
            return Ok(RowTemplate { parts });
        };
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| {
                Error::config(format!("--template: unclosed '{{' in {t:?}; write columns as {{Name}}"))
            })? + open;
            let name = &rest[open + 1..close];
            let c = columns.iter().position(|x| x == name).ok_or_else(|| {
                Error::config(format!(
                    "--template names {{{name}}}, which is not one of the --cat/--num/--text columns ({})",
                    columns.join(", ")
                ))
            })?;
            parts.push(Part::Column(c));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(RowTemplate { parts })
    }

    /// Renders one row from its cells (`None` = missing). The default template drops the
    /// `Name: ` label of a missing cell along with it.
    pub fn render(&self, cells: &[Option<String>], default_labels: bool) -> String {
        let mut out = String::new();
        let mut pending: Option<&str> = None;
        for part in &self.parts {
            match part {
                Part::Literal(s) if default_labels => pending = Some(s),
                Part::Literal(s) => out.push_str(s),
                Part::Column(c) => {
                    if let Some(v) = &cells[*c] {
                        if let Some(label) = pending.take() {
                            out.push_str(if out.is_empty() { label.trim_start_matches(", ") } else { label });
                        }
                        out.push_str(v);
                    }
                    pending = None;
                }
            }
        }
        out
    }
}
