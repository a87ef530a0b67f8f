//! Training for nanochat-jp: nanochat v1's base, mid and SFT stages on burn 0.21.
//!
//! - [`optim`]: Muon + AdamW with nanochat's exact update rules, global-norm clipping,
//!   gradient accumulation; [`schedule`]: per-stage LR and momentum schedules.
//! - [`data`] + [`packing`]: records → tokens on background threads → `[B, T]` micro-batches
//!   (BOS-aligned best fit, v1 stream, SFT padded rows), all with exactly restorable positions.
//! - [`trainer::run`]: the loop, generic over the burn backend, with validation bits per byte,
//!   greedy samples, metrics JSONL, a loss plot, atomic checkpoints ([`checkpoint`]) and exact
//!   resume; a NaN or infinite loss or gradient stops the run naming the step, the batch rows and
//!   the last good checkpoint.
//! - [`tokenizer::TokenizerApi`]: what the trainer needs from a tokenizer (the integration point
//!   for `njp-tokenizer`), with a byte-level stand-in.
//!
//! Libraries never print: progress goes through [`trainer::Reporter`].

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod metrics;
pub mod optim;
pub mod packing;
pub mod schedule;
pub mod tokenizer;
pub mod trainer;

pub use config::{Packing, SftPacking, TrainConfig};
pub use error::{Error, Result};
pub use schedule::Stage;
pub use trainer::{Data, Init, Reporter, RunInfo, RunSpec, Silent, Summary, run};
