//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong building a model or moving its weights in and out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration that cannot describe a nanochat GPT.
    #[error("invalid model config: {0}")]
    Config(String),
    /// An unknown preset name.
    #[error("unknown preset `{0}` (expected tiny, d20, d26 or d32)")]
    UnknownPreset(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A weight file is malformed or does not match the model.
    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    /// A JSON file (config or nanochat meta) is malformed.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Result with the model crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn weights(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
