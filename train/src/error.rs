//! Errors of the training crate.

use std::path::PathBuf;

/// Everything that stops a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model crate failed (config, weights).
    #[error(transparent)]
    Model(#[from] njp_model::Error),
    /// A training setting that cannot work.
    #[error("invalid training config: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file is malformed at a given line.
    #[error("{path}:{line}: {reason}")]
    Record {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// The data source cannot produce a batch.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint directory or file is missing, incomplete or inconsistent.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The loss or the gradient became NaN or infinite: the run stops before the optimizer
    /// touches the weights.
    #[error(
        "non-finite {what} ({value}) at step {step}, micro-batch {micro_step}; batch rows: {rows}; last good checkpoint: {}",
        last_checkpoint.as_ref().map_or_else(|| "none".to_string(), |p| p.display().to_string())
    )]
    NonFinite {
        /// `loss` or `gradient norm`.
        what: &'static str,
        value: f64,
        /// The optimizer step being computed (0-based).
        step: u64,
        micro_step: usize,
        /// The rows of the offending batch (or of the whole step for the gradient), each the
        /// record ids packed into it.
        rows: String,
        last_checkpoint: Option<PathBuf>,
    },
}

/// Result with the training crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
