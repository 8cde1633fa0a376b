//! Errors of the model crate.
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum NnError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {reason}")]
    TensorFile { path: PathBuf, reason: String },
    #[error("invalid model specification: {0}")]
    Spec(String),
}

pub type Result<T> = std::result::Result<T, NnError>;
