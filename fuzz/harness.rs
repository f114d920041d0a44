//! What every fuzz target checks, shared with the regression tests that replay the saved cases
//! (`fuzz/regressions/<target>/`, run by `cargo test`): any input is either refused with an
//! error or read into something whole; a panic is a bug.

// Each fuzz target uses one of these.
#![allow(dead_code)]

use std::path::Path;

use segmix::backend::CpuBackend;
use segmix::data::{Roles, Strictness, read_table_from};
use segmix::featurize::schema::Schema;
use segmix::model::ModelFile;

fn roles(cat: &[&str], num: &[&str], text: Option<&str>) -> Roles {
    Roles {
        categorical: cat.iter().map(|s| s.to_string()).collect(),
        numeric: num.iter().map(|s| s.to_string()).collect(),
        text: text.map(str::to_string),
    }
}

/// The CSV reader (first byte: roles and strictness), then the schema a fit learns from the
/// table and its transform.
pub fn csv(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let roles = match sel % 4 {
        0 => roles(&["a"], &["b"], Some("c")),
        1 => roles(&[], &["a", "b"], None),
        2 => roles(&["a", "b"], &[], None),
        _ => roles(&[], &["b"], Some("a")),
    };
    let strictness = if sel & 4 == 0 { Strictness::Fit } else { Strictness::Predict };
    let Ok(table) = read_table_from(Path::new("fuzz.csv"), body, &roles, strictness) else { return };
    let n = table.n_rows;
    assert!(n > 0 && table.lines.len() == n);
    assert!(table.lines.windows(2).all(|w| w[0] < w[1]), "lines increase: {:?}", table.lines);
    assert!(table.categorical.iter().all(|c| c.values.len() == n));
    assert!(table.numeric.iter().all(|c| c.values.len() == n && c.values.iter().all(|v| !v.is_infinite())));
    assert!(table.text.iter().all(|c| c.values.len() == n));
    if strictness == Strictness::Fit
        && let Ok((schema, _)) = Schema::fit(&table, None, 4, &[])
        && let Ok((data, _)) = schema.transform(&table, None)
    {
        assert_eq!(data.x.len(), n * data.p);
        assert!(data.x.iter().all(|v| v.is_finite()), "standardized values are finite");
    }
}

/// The `.npy` reader: a parsed array holds exactly rows × cols values.
pub fn npy(data: &[u8]) {
    let Ok(npy) = segmix::data::embeddings::parse_npy(Path::new("fuzz.npy"), data) else { return };
    let (rows, cols) = (npy.rows, npy.cols);
    assert_eq!(npy.into_f32().values.len(), rows * cols);
}

/// The model loader: a model that loads predicts rows (all missing, and with the first level and
/// 0.5 everywhere) to finite posteriors that sum to one, or refuses with an error.
pub fn model(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(model) = ModelFile::parse(Path::new("model.json"), text) else { return };
    if model.schema.text.is_some() {
        return; // needs vectors; the parameters are checked the same way
    }
    let s = &model.schema;
    let names: Vec<&str> =
        s.categorical.iter().map(|c| c.name.as_str()).chain(s.numeric.iter().map(|c| c.name.as_str())).collect();
    let quote = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    let mut csv = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",") + "\n";
    csv += &vec![""; names.len()].join(",");
    csv += "\n";
    let row: Vec<String> =
        s.categorical.iter().map(|c| quote(&c.levels[0])).chain(s.numeric.iter().map(|_| "0.5".to_string())).collect();
    csv += &(row.join(",") + "\n");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, csv).expect("write rows");
    if let Ok(p) = segmix::pipeline::predict(&CpuBackend::new(), &model, &path, None, None) {
        for r in p.posteriors.resp.chunks_exact(model.params.k) {
            let sum: f64 = r.iter().sum();
            assert!(r.iter().all(|v| v.is_finite()) && (sum - 1.0).abs() < 1e-9, "posteriors {r:?}");
        }
    }
}

/// The model loader, structure-aware: the input is a list of edits to the numbers of a valid
/// model (`fuzz/seeds/model/full`): per 9 bytes, which number (byte 0, modulo their count) and
/// its new value (an f64 from bytes 1–8, or, for a few tags, 0, −1, 1, 2, a huge or a tiny value).
/// Byte-level mutation rarely keeps the JSON valid; this reaches the checks behind the parser.
pub fn model_edits(data: &[u8]) {
    let mut json: serde_json::Value = serde_json::from_str(MODEL_SEED).expect("the seed model is JSON");
    let mut leaves = Vec::new();
    number_paths(&json, String::new(), &mut leaves);
    for edit in data.chunks_exact(9) {
        let path = &leaves[edit[0] as usize % leaves.len()];
        let bits = f64::from_le_bytes(edit[1..].try_into().expect("8 bytes"));
        let value = match edit[1] {
            0 => serde_json::json!(0),
            1 => serde_json::json!(-1),
            2 => serde_json::json!(1),
            3 => serde_json::json!(2),
            4 => serde_json::json!(1e300),
            5 => serde_json::json!(1e-300),
            _ if bits.is_finite() => serde_json::json!(bits),
            _ => continue,
        };
        *json.pointer_mut(path).expect("a number's path") = value;
    }
    model(serde_json::to_string(&json).expect("serializes").as_bytes());
}

const MODEL_SEED: &str = include_str!("seeds/model/full");

/// JSON pointers of every number in `v`.
fn number_paths(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(_) => out.push(at),
        serde_json::Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| number_paths(x, format!("{at}/{i}"), out))
        }
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| number_paths(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

/// The embedding cache: any file content opens (or is refused) without a panic, a vector read
/// has the model's width, and a vector put is read back, also after reopening.
pub fn cache(data: &[u8]) {
    use segmix::encoders::cache::Cache;
    let info = segmix::encoders::EmbedderInfo {
        name: "fuzz".into(),
        sha256: "0".repeat(64),
        weights: None,
        dim: 4,
        max_length: 8,
        pooling: segmix::encoders::bert::Pooling::Mean,
        normalize: true,
        prefix: None,
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = Cache::open(dir.path(), &info).expect("a new cache").path().to_path_buf();
    std::fs::write(&path, data).expect("write the cache file");
    let Ok(cache) = Cache::open(dir.path(), &info) else { return };
    for t in ["a", "b", ""] {
        assert!(cache.get(t).is_none_or(|v| v.len() == 4));
    }
    let v = [1.0f32, 2.0, 3.0, 4.0];
    cache.put(&[("fuzz", &v)]);
    assert_eq!(cache.get("fuzz").as_deref(), Some(&v[..]), "{:?}", cache.take_warning());
    drop(cache);
    let again = Cache::open(dir.path(), &info).expect("the cache reopens");
    assert_eq!(again.get("fuzz").as_deref(), Some(&v[..]));
}
