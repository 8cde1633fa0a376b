//! The crate's error type: every failure names the file or parameter at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading, importing or building data.
#[derive(thiserror::Error, Debug)]
pub enum DataError {
    /// The operating system refused a read, write or rename.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its content is not what its format promises.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// A directory or a file expected inside it is absent.
    #[error("{what} (looked in {})", dir.display())]
    Missing { dir: PathBuf, what: String },
    /// A JSON file could not be parsed or holds unexpected values.
    #[error("{}: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    /// A parameter is out of range (rho outside [0, 1], sizes larger than available...).
    #[error("invalid parameter: {0}")]
    Invalid(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Shorthand for an `Io` error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for a `Format` error on `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
