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

/// The key of `result.json` naming its job: a result copied or renamed into another job's
/// directory is not that job's.
pub const RESULT_JOB_KEY: &str = "job";

/// What a job's `result.json` holds, as far as deciding whether the job is done goes.
#[derive(Clone, Debug, PartialEq)]
pub enum ResultFile {
    Missing,
    /// A JSON object naming this job (or no job: written before results named theirs), of
    /// a schema this ffw reads.
    Valid,
    /// Unreadable or another job's: it cannot be trusted, and the job runs again.
    Damaged(String),
    /// Written by a newer ffw (schema `found`): neither done nor to be overwritten.
    Newer {
        found: u32,
    },
}

impl ResultFile {
    /// `Newer` as the error naming the file and both versions.
    pub fn newer_error(&self, path: &Path) -> Option<ResultsError> {
        match self {
            ResultFile::Newer { found } => Some(ResultsError::NewerSchema {
                path: path.to_path_buf(),
                found: *found,
            }),
            _ => None,
        }
    }
}

/// Classifies job `job`'s `result.json` at `path` without parsing it as a result type: the
/// sweep's done-check and the report agree through this one function.
pub fn check_result(path: &Path, job: &str) -> ResultFile {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ResultFile::Missing,
        Err(e) => return ResultFile::Damaged(e.to_string()),
    };
    let map = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => return ResultFile::Damaged("not a JSON object".into()),
        Err(e) => return ResultFile::Damaged(format!("not JSON ({e})")),
    };
    let schema = match map.get("schema") {
        None => unversioned(),
        Some(v) => match v.as_u64().and_then(|v| u32::try_from(v).ok()) {
            Some(v) => v,
            None => return ResultFile::Damaged(format!("schema {v} is not a version")),
        },
    };
    if schema > SCHEMA_VERSION {
        return ResultFile::Newer { found: schema };
    }
    match map.get(RESULT_JOB_KEY) {
        None => ResultFile::Valid,
        Some(serde_json::Value::String(j)) if j == job => ResultFile::Valid,
        Some(other) => ResultFile::Damaged(format!("it is the result of job {other}")),
    }
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
    fn the_done_check_tells_newer_from_damaged_and_reads_older() {
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &str| check_result(&write(&dir, text), "mine");
        assert_eq!(
            check(V1),
            ResultFile::Damaged(r#"it is the result of job "0123456789abcdef""#.into())
        );
        assert_eq!(check(r#"{"job": "mine"}"#), ResultFile::Valid);
        assert_eq!(
            check(&format!(r#"{{"job": "mine", "schema": {SCHEMA_VERSION}}}"#)),
            ResultFile::Valid
        );
        // Newer is not damaged: the sweep must neither trust it nor overwrite it.
        let newer = check(r#"{"job": "mine", "schema": 99, "renamed": {}}"#);
        assert_eq!(newer, ResultFile::Newer { found: 99 });
        let msg = newer
            .newer_error(Path::new("x/result.json"))
            .unwrap()
            .to_string();
        assert!(
            msg.contains("x/result.json") && msg.contains("version 99"),
            "{msg}"
        );
        assert!(matches!(
            check(r#"{"job": "mine", "schema": "two"}"#),
            ResultFile::Damaged(_)
        ));
        assert!(matches!(check(r#"{"job": "#), ResultFile::Damaged(_)));
        assert_eq!(
            check_result(&dir.path().join("absent.json"), "mine"),
            ResultFile::Missing
        );
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
