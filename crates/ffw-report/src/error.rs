//! Errors of the report: each names the file it is about and what is wrong with it.
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum ReportError {
    #[error("{dir}: no sweep.json here; `ffw report` reads the output directory of `ffw sweep`")]
    NoManifest { dir: PathBuf },
    #[error("{manifest}: a study lists job {id}, but the manifest's jobs do not")]
    UnknownJob { id: String, manifest: PathBuf },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `reason` says how to get a font.
    #[error("font {path}: {reason}")]
    Font { path: PathBuf, reason: String },
    #[error("drawing {path}: {reason}")]
    Figure { path: PathBuf, reason: String },
    #[error(
        "{dir}: jobs ran on different kinds of device ({counts}); their numbers differ in the \
         last digits, so no table mixes them: rerun the jobs of one kind (delete their \
         jobs/<id>/result.json) or pass --mixed-devices"
    )]
    MixedDevices { dir: PathBuf, counts: String },
    #[error(transparent)]
    Results(#[from] ffw_results::ResultsError),
}

impl ReportError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, ReportError>;
