//! The ingest error type. Every variant names what failed (recipe, repository and revision,
//! file, URL) and why; none carries a token or API key.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("recipe `{recipe}`: {reason}")]
    Recipe { recipe: String, reason: String },
    #[error("unknown recipe `{name}` (known: {})", known.join(", "))]
    UnknownRecipe { name: String, known: Vec<String> },
    #[error("hub dataset {repo}@{revision}: {reason}")]
    Hub {
        repo: String,
        revision: String,
        reason: String,
    },
    #[error(
        "hub dataset {repo}@{revision}: `{file}` failed its checksum after {attempts} download(s): expected {algorithm} {expected}, got {actual}"
    )]
    Checksum {
        repo: String,
        revision: String,
        file: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
        attempts: u32,
    },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] njp_catalog::Error),
    #[error(transparent)]
    Read(#[from] njp_datasets::read::ReadError),
    #[error(transparent)]
    Records(#[from] njp_datasets::io::IoError),
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
