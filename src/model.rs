//! `model.json`: everything `predict` needs, versioned.
//!
//! Floats are written with shortest round-trip formatting and read back bit-exactly, so a
//! model scores its training rows exactly as the fit did.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::featurize::schema::Schema;
use crate::foundation::error::{Error, Result};
use crate::foundation::{folder, fs};
use crate::mixture::em::{KSummary, Stability};
use crate::mixture::params::Params;
use crate::mixture::{Criteria, Criterion};

/// The `format` field of every segmix model file.
pub const FORMAT: &str = "segmix-model";
/// Current model file version; bump on any incompatible change.
pub const VERSION: u32 = 1;

/// Summary of the selected fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    pub n_rows: usize,
    pub k: usize,
    pub restart: usize,
    pub criterion: Criterion,
    pub loglik: f64,
    pub n_params: usize,
    pub criteria: Criteria,
    pub iterations: usize,
    pub converged: bool,
    pub seed: u64,
    pub k_range: [usize; 2],
    pub n_init: usize,
    pub seconds: f64,
    pub device: String,
    /// Every K of the range: its best eligible fit, degenerate restarts and stability.
    #[serde(default)]
    pub per_k: Vec<KSummary>,
    /// How much the selected K's restarts agree.
    #[serde(default)]
    pub stability: Option<Stability>,
    /// Starts screened over the sweep and EM iterations spent on the screen.
    #[serde(default)]
    pub screened: usize,
    #[serde(default)]
    pub screen_iterations: usize,
}

/// The whole model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    pub segmix_version: String,
    pub schema: Schema,
    /// Names of the continuous coordinates (`text_pc1..`, then the metrics).
    pub continuous: Vec<String>,
    pub params: Params,
    pub fit: FitSummary,
}

impl ModelFile {
    pub fn new(schema: Schema, params: Params, fit: FitSummary) -> Self {
        ModelFile {
            format: FORMAT.into(),
            version: VERSION,
            segmix_version: env!("CARGO_PKG_VERSION").into(),
            continuous: schema.continuous_names(),
            schema,
            params,
            fit,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("model serializes")
    }

    /// Reads a fit folder's `model.json` (or a model file anywhere): finishes a folder write a
    /// killed run committed, checks the file against the folder's manifest, then [`Self::load`]s it.
    pub fn open(path: &Path) -> Result<ModelFile> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        folder::open(fs::parent(path), &[&name])?;
        ModelFile::load(path)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<ModelFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ModelFile::parse(path, &text)
    }

    /// Parses and checks the text of a model file; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<ModelFile> {
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let probe: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not a JSON file ({e})")))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad("not a segmix model (no \"format\": \"segmix-model\")".into()));
        }
        let version = probe.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != VERSION as u64 {
            return Err(bad(format!(
                "model file version {version}; this segmix ({}) reads version {VERSION}. Refit with this version",
                env!("CARGO_PKG_VERSION")
            )));
        }
        let m: ModelFile = serde_json::from_value(probe).map_err(|e| bad(format!("malformed model: {e}")))?;
        m.check().map_err(bad)?;
        Ok(m)
    }

    /// Everything `predict` relies on, so a hand-edited or corrupt file is an error that says
    /// what is wrong and where, never a panic or silent garbage.
    fn check(&self) -> std::result::Result<(), String> {
        self.schema.validate()?;
        self.params.validate()?;
        let p = &self.params;
        let names = self.schema.continuous_names();
        if p.p != names.len() {
            return Err(format!(
                "params.p is {} but the schema has {} continuous coordinates ({} text components, {} numeric columns)",
                p.p,
                names.len(),
                names.len() - self.schema.numeric.len(),
                self.schema.numeric.len()
            ));
        }
        if self.continuous != names {
            return Err(format!("continuous lists {:?}; the schema's coordinates are {names:?}", self.continuous));
        }
        if self.schema.categorical.len() != p.n_levels.len() {
            return Err(format!(
                "schema has {} categorical columns but params.n_levels has {}",
                self.schema.categorical.len(),
                p.n_levels.len()
            ));
        }
        if let Some((c, l)) = self.schema.categorical.iter().zip(&p.n_levels).find(|(c, l)| c.levels.len() != **l) {
            return Err(format!(
                "schema.categorical {:?} has {} levels but params.n_levels says {l}",
                c.name,
                c.levels.len()
            ));
        }
        if self.fit.k != p.k {
            return Err(format!("fit.k is {} but params has {} classes", self.fit.k, p.k));
        }
        Ok(())
    }
}
