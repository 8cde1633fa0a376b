//! Errors of the sweep crate.
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum SweepError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Surgery(#[from] ffw_surgery::SurgeryError),
    #[error(transparent)]
    Data(#[from] ffw_data::DataError),
    #[error(transparent)]
    Nn(#[from] ffw_nn::NnError),
    #[error(transparent)]
    Results(#[from] ffw_results::ResultsError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Placement(#[from] ffw_placement::PlacementError),
    /// Another sweep holds the output directory.
    #[error("{0}")]
    Locked(String),
    #[error("job {job}: {reason}")]
    Job { job: String, reason: String },
}

impl SweepError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        SweepError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, SweepError>;
