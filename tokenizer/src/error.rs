//! Errors of the tokenizer crate.

use std::path::PathBuf;

/// Anything that can go wrong in training, loading, saving or encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A split pattern that does not compile or is not known.
    #[error("split pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
    /// fancy-regex failed while splitting (custom patterns only).
    #[error("splitting text at byte {offset}: {reason}")]
    Split { offset: usize, reason: String },
    /// Training settings that cannot work.
    #[error("training configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tokenizer file is malformed.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    /// A pickle (nanochat's `tokenizer.pkl`) that the data-only reader refuses.
    #[error("{}: {source}", path.display())]
    Pickle {
        path: PathBuf,
        #[source]
        source: crate::pickle::PickleError,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    UnknownId { id: u32, vocab_size: usize },
    /// A special token name that this tokenizer does not have.
    #[error("unknown special token `{0}`")]
    UnknownSpecial(String),
    /// The vocabulary itself is inconsistent (duplicate tokens, missing bytes…).
    #[error("invalid vocabulary: {0}")]
    Vocab(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
