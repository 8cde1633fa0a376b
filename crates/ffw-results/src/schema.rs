//! The schema version of `result.json`, and the reader that checks it before parsing.
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The version of the result types this ffw writes. Raise it when a change would make an
/// older reader misread a new file (a field renamed, removed or changing meaning); a new
/// field with a serde default does not need it.
///
/// 2: results carry `schema`. 1: everything written before that (no `schema` key).
pub const SCHEMA_VERSION: u32 = 2;

/// The version of a result written before results carried one.
pub(crate) fn unversioned() -> u32 {
    1
}

#[derive(thiserror::Error, Debug)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a result this ffw can read: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path}: written with result schema version {found}, but this ffw reads versions up to \
         {SCHEMA_VERSION}; read it with the ffw that wrote it or a newer one"
    )]
    NewerSchema { path: PathBuf, found: u32 },
}

/// The `schema` key alone, read first: a newer file may not parse as this ffw's types, and
/// its version says why better than a missing field would.
#[derive(Deserialize)]
struct Versioned {
    #[serde(default = "unversioned")]
    schema: u32,
}

/// A job's `result.json` at `path`, refused if a newer ffw wrote it; files from before the
/// schema version (version 1) still read.
pub fn read_result<T: DeserializeOwned>(path: &Path) -> Result<T, ResultsError> {
    let bytes = std::fs::read(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json = |source| ResultsError::Json {
        path: path.to_path_buf(),
        source,
    };
    let Versioned { schema } = serde_json::from_slice(&bytes).map_err(json)?;
    if schema > SCHEMA_VERSION {
        return Err(ResultsError::NewerSchema {
            path: path.to_path_buf(),
            found: schema,
        });
    }
    serde_json::from_slice(&bytes).map_err(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MagnitudeResult;

    /// A magnitude job's result as ffw wrote it before results carried `schema`.
    const V1: &str = r#"{
        "job": "0123456789abcdef",
        "sparsity_target": 0.5,
        "report": {
            "val": {"task_acc": 0.5, "bias_acc": [0.2], "mi": [0.01]},
            "test": {"task_acc": 0.4, "bias_acc": [0.3], "mi": [0.02]},
            "sparsity": {"global": 0.5, "per_layer": [{"layer": "fc", "pruned": 5, "total": 10}]},
            "probe_epochs": [7]
        },
        "wall_secs": 1.5
    }"#;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("result.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_result_without_schema_reads_as_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let r: MagnitudeResult = read_result(&write(&dir, V1)).unwrap();
        assert_eq!(r.schema, 1);
        assert_eq!(r.report.test.task_acc, 0.4);
        assert!(r.device.is_none(), "no device recorded before devices were");
    }

    #[test]
    fn a_result_written_now_reads_back_at_this_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut r: MagnitudeResult = serde_json::from_str(V1).unwrap();
        r.schema = SCHEMA_VERSION;
        let path = write(&dir, &serde_json::to_string(&r).unwrap());
        let back: MagnitudeResult = read_result(&path).unwrap();
        assert_eq!(back.schema, SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused_naming_the_file_and_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        // Fields this ffw does not know: the version, not a missing field, is the error.
        let path = write(&dir, r#"{"schema": 99, "renamed": {}}"#);
        let err = read_result::<MagnitudeResult>(&path).unwrap_err();
        assert!(matches!(err, ResultsError::NewerSchema { found: 99, .. }));
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("version 99"), "{msg}");
        assert!(msg.contains(&format!("up to {SCHEMA_VERSION}")), "{msg}");
    }

    #[test]
    fn a_damaged_result_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, r#"{"schema": 2, "sparsity_target": "#);
        let msg = read_result::<MagnitudeResult>(&path)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    }
}
