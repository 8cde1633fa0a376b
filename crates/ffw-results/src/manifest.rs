//! `sweep.json` as the report reads it: each study's jobs and the point it holds fixed, and
//! each job's place in the grid. The sweep writes it, with its config beside (which only the
//! sweep reads), so the report knows every job, run or not, without the sweep's types.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::jobs::Variant;
use crate::schema::ResultsError;

/// The manifest's file name in a sweep's directory.
pub const MANIFEST: &str = "sweep.json";

/// A dataset as records and tables know it: the benchmark's name and the settings a sweep
/// axis can vary (Biased MNIST's `rho`), by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct DataPoint {
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// Attributes chosen by name (CelebA's `target` and `bias`); absent where there are none
    /// and in manifests from before they were recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// What a study holds fixed on the axes it does not vary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BasePoint {
    pub data: DataPoint,
    pub lambda: f64,
    pub vanilla_epochs: usize,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Vanilla,
    Ffw,
    Magnitude,
}

/// One job's coordinates, with those of the vanilla job it builds on filled in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JobEntry {
    pub kind: JobKind,
    /// FFW jobs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
    pub data: DataPoint,
    /// The vanilla job's seed (the replicate).
    pub seed: u64,
    pub vanilla_epochs: usize,
    /// The checkpoints (epochs) a vanilla job saves and scores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// The vanilla checkpoint an FFW job starts from; none = the final model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude_target: Option<f64>,
}

/// A study: its jobs, and the point they share.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Study {
    pub base: BasePoint,
    pub jobs: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The config's own base point (what `ffw run` would train).
    pub base: BasePoint,
    /// Each study by name ("grid" when the config declares none).
    pub studies: BTreeMap<String, Study>,
    /// Every job of every study.
    pub jobs: BTreeMap<String, JobEntry>,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST)
    }

    /// The manifest in the sweep directory `dir`, naming the file in every error.
    pub fn read(dir: &Path) -> Result<Self, ResultsError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|source| ResultsError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ResultsError::Json { path, source })
    }
}
