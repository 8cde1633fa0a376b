//! Errors of the surgery crate.
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum SurgeryError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Nn(#[from] ffw_nn::NnError),
    #[error(transparent)]
    Data(#[from] ffw_data::DataError),
    #[error("non-finite {what} ({value}) in {phase} epoch {epoch}")]
    NonFinite {
        phase: &'static str,
        what: String,
        epoch: usize,
        value: f64,
    },
    #[error("saved model {path}: {reason}")]
    SavedModel { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Placement(#[from] ffw_placement::PlacementError),
    /// The replicas of a data-parallel job took different decisions.
    #[error("the ranks of this data-parallel job diverged: {0}")]
    Diverged(String),
    /// A stop was requested ([`crate::interrupt`]): SIGTERM or SIGINT.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, SurgeryError>;
