//! End-to-end tests of the `njp` binary: one test binary, one module per verb.

mod common;
mod import_errors;
mod import_ok;
mod ingest;
mod kill;
mod mix;
mod quickstart;
mod sql;
mod tok;
mod train;
