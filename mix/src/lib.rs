//! SQL mixtures for nanochat-jp: recipes, a reproducible blend, Japanese decontamination and
//! token-length audits.
//!
//! * [`recipe`]: the TOML recipe (components = SQL + quantity) and its hash.
//! * [`plan`]: runs the queries, refuses eval-only and `unknown`-license inputs, removes
//!   contaminated rows, measures tokens, applies quantities, shuffles with a seeded PRNG.
//! * [`build`]: publishes the mixture (records in blend order), its validation rows and its
//!   blend index as catalog datasets with the recipe in their lineage.
//! * [`decontam`]: normalization and the character n-gram index.
//! * [`audit`]: token-length percentiles, histograms and the cost of each truncation policy.
//! * [`tokens`]: pre-tokenized datasets (ids + masks per record) for training.
//!
//! See `mix/README.md` for the recipe format and the decontamination measurement.

pub mod audit;
pub mod build;
pub mod decontam;
pub mod error;
pub mod plan;
pub mod recipe;
pub mod rng;
pub mod tokens;

pub use audit::{Audit, RowTokens, Summary};
pub use build::{Built, build};
pub use error::{Error, Result};
pub use plan::{Plan, byte_tokenizer, load_tokenizer};
pub use recipe::{Quantity, Recipe};
