//! Typed errors of the mix crate.

use std::path::PathBuf;

/// Why a recipe cannot be planned, built or audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The recipe file is malformed.
    #[error("{path}: {reason}")]
    Recipe { path: PathBuf, reason: String },
    /// A component's query or quantity is unusable.
    #[error("component `{component}`: {reason}")]
    Component { component: String, reason: String },
    /// A component reads an evaluation-only dataset.
    #[error(
        "component `{component}` reads `{dataset}`, which is evaluation-only (set `allow_eval_only = true` in the recipe to use it anyway)"
    )]
    EvalOnly { component: String, dataset: String },
    /// A component reads a dataset whose license is `unknown`.
    #[error(
        "component `{component}` reads `{dataset}`, whose license is `unknown` (set `allow_unknown_license = true` in the recipe to accept it)"
    )]
    UnknownLicense { component: String, dataset: String },
    /// A row breaks the record rules or the chat template.
    #[error("component `{component}`, row {row} (id `{id}`): {reason}")]
    Row {
        component: String,
        row: usize,
        id: String,
        reason: String,
    },
    /// Under the `error` truncation policy, rows longer than the limit.
    #[error(
        "{count} row(s) exceed max_seq_len {max} under truncation policy `error`; first: component `{component}`, id `{id}`, {tokens} tokens (use `drop` or `truncate`, or raise max_seq_len)"
    )]
    TooLong {
        count: u64,
        component: String,
        id: String,
        tokens: usize,
        max: usize,
    },
    /// A dataset in the catalog cannot be used as asked.
    #[error("{0}")]
    Dataset(String),
    #[error(transparent)]
    Catalog(#[from] njp_catalog::Error),
    #[error(transparent)]
    Tokenizer(#[from] njp_tokenizer::Error),
    #[error(transparent)]
    Schema(#[from] njp_datasets::schema::SchemaError),
    #[error(transparent)]
    DatasetIo(#[from] njp_datasets::io::IoError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("SQL: {0}")]
    Sql(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
