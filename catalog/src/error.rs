//! The catalog's error type.

use std::path::{Path, PathBuf};

use crate::manifest::DatasetKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt manifest: {source}")]
    BadManifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid license `{license}`: {reason}")]
    InvalidLicense { license: String, reason: String },
    #[error("invalid dataset reference `{reference}`: {reason}")]
    InvalidRef { reference: String, reason: String },
    #[error("no dataset named `{name}` (known: {})", known_list(known))]
    NotFound { name: String, known: Vec<String> },
    #[error("dataset `{name}` has no version {version} (versions: {})", available.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))]
    VersionNotFound {
        name: String,
        version: u32,
        available: Vec<u32>,
    },
    #[error("dataset `{dataset}` is a {kind} table, not canonical records")]
    NotRecords { dataset: String, kind: DatasetKind },
    #[error("nothing to publish for `{name}`: no data files were written")]
    NoData { name: String },
    #[error(transparent)]
    Read(#[from] njp_datasets::read::ReadError),
    #[error(transparent)]
    Records(#[from] njp_datasets::io::IoError),
    #[error("{0}")]
    Sql(String),
    #[error("table `{table}` not found. Known tables: {}", known_list(known))]
    UnknownTable { table: String, known: Vec<String> },
    #[error(
        "njp sql is read-only: {statement} statements are refused (query with SELECT; publish a result with --save NAME)"
    )]
    ReadOnly { statement: String },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Other(String),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none; import one with `njp import` or `njp samples import`".into()
    } else {
        known.join(", ")
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
