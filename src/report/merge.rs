//! `segmix report DIR --merge-to G`: the fit's classes combined into G groups by the class
//! hierarchy of `clusters.json` ([`crate::explain::hierarchy`]). Writes into the fit folder, as
//! one change of it:
//!
//! * `merge-G.csv` — `row,group,max_posterior,post_1..post_G`: each row's posterior of a
//!   group is the sum of its classes' posteriors from `assignments.csv`;
//! * `merge-G.json` — the groups: their classes, size, weight and categorical and metric
//!   profiles (combined from the classes', [`group_profiles`]).

use std::path::{Path, PathBuf};

use crate::explain::hierarchy::{Group, cut, group_profiles};
use crate::foundation::error::{Error, Result};
use crate::foundation::folder::{FolderWrite, Keep};
use crate::foundation::stats::argmax;

use super::html::read_clusters;
use super::{write_atomic, write_csv};

/// What [`write_merged`] wrote.
#[derive(Debug, Clone)]
pub struct Merged {
    pub csv: PathBuf,
    pub json: PathBuf,
    pub groups: Vec<Group>,
}

/// The posteriors `post_1..post_K` of `assignments.csv`, row by row.
fn read_posteriors(path: &Path, k: usize) -> Result<Vec<f64>> {
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header = r.headers().map_err(|e| bad(e.to_string()))?.clone();
    let cols = (1..=k)
        .map(|c| {
            let name = format!("post_{c}");
            header.iter().position(|h| h == name).ok_or_else(|| bad(format!("no column {name:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut post = Vec::new();
    for (no, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        for (class, &c) in cols.iter().enumerate() {
            let v = rec.get(c).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite());
            post.push(v.ok_or_else(|| bad(format!("line {}: post_{} is not a number", no + 2, class + 1)))?);
        }
    }
    Ok(post)
}

/// Combines the fit's classes in `dir` into `groups` groups and writes `merge-<groups>.csv` and
/// `merge-<groups>.json` there (checked against the folder's manifest first).
pub fn write_merged(dir: &Path, groups: usize) -> Result<Merged> {
    let clusters_path = dir.join("clusters.json");
    let tx = FolderWrite::begin(dir, Keep::Others)?;
    tx.check(&["clusters.json", "assignments.csv"])?;
    let clusters = read_clusters(&clusters_path)?;
    let k = clusters.classes.len();
    if groups == 0 || groups > k {
        return Err(Error::config(format!("--merge-to must be between 1 and the fit's K = {k}")));
    }
    if clusters.hierarchy.len() + 1 != k {
        return Err(Error::Model {
            path: clusters_path,
            message: "has no class hierarchy (written by an older segmix); run `segmix fit` again".into(),
        });
    }
    let of = cut(&clusters.hierarchy, k, groups);
    let post = read_posteriors(&dir.join("assignments.csv"), k)?;
    let n = post.len() / k.max(1);
    let mut merged = vec![0.0; n * groups];
    for (row, out) in post.chunks_exact(k).zip(merged.chunks_exact_mut(groups)) {
        for (c, &v) in row.iter().enumerate() {
            out[of[c]] += v;
        }
    }
    let mut sizes = vec![0usize; groups];
    merged.chunks_exact(groups).for_each(|r| sizes[argmax(r).0] += 1);
    let profiles = group_profiles(&clusters.classes, &of, &sizes);
    let (csv_name, json_name) = (format!("merge-{groups}.csv"), format!("merge-{groups}.json"));
    write_csv(&tx.path(&csv_name), |w| {
        for name in ["row", "group", "max_posterior"] {
            w.text(name)?;
        }
        for g in 1..=groups {
            w.value(format_args!("post_{g}"))?;
        }
        w.end()?;
        for (i, r) in merged.chunks_exact(groups).enumerate() {
            let (best, max) = argmax(r);
            w.value(i)?;
            w.value(best + 1)?;
            w.num(max)?;
            for &v in r {
                w.num(v)?;
            }
            w.end()?;
        }
        Ok(())
    })?;
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "format": "segmix-merge",
        "version": 1,
        "k": k,
        "groups": profiles,
    }))
    .expect("groups serialise");
    write_atomic(&tx.path(&json_name), |w| w.write_all(json.as_bytes()))?;
    tx.commit()?;
    Ok(Merged { csv: dir.join(csv_name), json: dir.join(json_name), groups: profiles })
}
