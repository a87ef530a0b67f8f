//! Ingest: Hugging Face hub sources, dataset recipes, adapters, normalization, exact and
//! MinHash near-duplicate removal, and EN→JA translation that keeps tool annotations.
//!
//! * [`hub`]: revision resolution, cached, resumable, checksum-verified downloads.
//! * [`recipe`]: the `datasets/recipes/*.toml` model; [`adapters`] turn upstream rows into
//!   canonical records.
//! * [`pipeline`]: `njp ingest` (filters, [`normalize`], [`dedup`], publish with provenance).
//! * [`translate`] and [`mask`]: `njp translate` against an OpenAI-compatible endpoint.

// Errors carry the repository, revision, file and both checksums so a failure names everything
// a user needs; they are returned once per file or request, never in a hot loop.
#![allow(clippy::result_large_err)]

pub mod adapters;
pub mod dedup;
pub mod error;
pub mod hub;
pub mod mask;
pub mod normalize;
pub mod pipeline;
pub mod recipe;
pub mod translate;

pub use error::{Error, Result};
