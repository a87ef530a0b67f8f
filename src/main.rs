//! `njp`: the nanochat-jp command line. Parsing, logging and exit codes live here; each verb is a
//! module under `commands/`.

// burn: Autodiff<Cuda> with fusion needs a deeper trait-resolution limit (burn-notes §0).
#![recursion_limit = "256"]

mod alloc;
mod cli;
mod commands;
mod logging;
mod printer;
mod settings;
mod table;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    alloc::skip_cleanup_at_exit();
    let cli = cli::Cli::parse();
    logging::init(&cli.global);
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            if printer::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            printer::error(&err);
            ExitCode::from(2)
        }
    }
}
