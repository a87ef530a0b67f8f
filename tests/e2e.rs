//! End-to-end tests of the `njp` binary, one module per verb.

#[path = "e2e/train.rs"]
mod train;
