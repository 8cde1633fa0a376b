//! Errors of the report: each names the file it is about and what is wrong with it.
use std::path::PathBuf;

use crate::plot::FONT_ENV;

#[derive(thiserror::Error, Debug)]
pub enum ReportError {
    #[error("{dir}: no sweep.json here; `ffw report` reads the output directory of `ffw sweep`")]
    NoManifest { dir: PathBuf },
    #[error(
        "{manifest}: job {id} has no jobs/{id}/spec.json and is not in the grid of the recorded \
         config (was the directory written by another version of ffw?)"
    )]
    UnknownJob { id: String, manifest: PathBuf },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "font {path}: {reason}; install the Debian/Ubuntu package fonts-dejavu-core or set \
         {FONT_ENV} to a TrueType font file"
    )]
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
    #[error(transparent)]
    Sweep(#[from] ffw_sweep::SweepError),
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
