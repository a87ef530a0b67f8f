//! The nanochat-jp dataset catalog.
//!
//! A catalog is a directory (`--home` > `NJP_HOME` > `./.njp`) of published, immutable dataset
//! versions. Each version has a [`Manifest`]: kind, SPDX license, source with checksums,
//! lineage, parameters and stats. Publishing goes through a [`Staging`] directory and an atomic
//! rename, so a crash never leaves a half-written dataset visible. [`sql`] exposes every dataset
//! as a DataFusion table.

pub mod error;
pub mod import;
pub mod manifest;
pub mod sql;
pub mod store;

pub use error::{Error, Result};
pub use manifest::{DataFile, DatasetKind, Draft, Manifest, Parent, Source, SourceFile};
pub use store::{Catalog, DatasetRef, GcReport, Staging};
