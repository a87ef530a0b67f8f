//! One module per verb. `run` resolves settings and dispatches; each verb returns an
//! [`ExitStatus`] or an error (printed once by `main`, exit code 2).

pub(crate) mod audit;
pub(crate) mod catalog;
pub(crate) mod import;
pub(crate) mod ingest;
pub(crate) mod mix;
pub(crate) mod quickstart;
pub(crate) mod recipes;
pub(crate) mod samples;
pub(crate) mod sql;
pub(crate) mod tok;
pub(crate) mod train;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// How a command that ran to completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// Everything went fine (0).
    Success,
    /// The command ran but a check failed: rejects over the limit, an audit over threshold (1).
    Failure,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
        }
    }
}

/// What every command gets: resolved global settings and the printer.
pub(crate) struct Ctx {
    pub(crate) settings: GlobalSettings,
    pub(crate) printer: Printer,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let settings = GlobalSettings::resolve(&cli.global)?;
    let printer = Printer::new(cli.global.quiet, cli.global.no_progress);
    let ctx = Ctx { settings, printer };
    match cli.command {
        Command::Quickstart(args) => quickstart::run(&ctx, args),
        Command::Import(args) => import::run(&ctx, args),
        Command::Ingest(args) => ingest::run_ingest(&ctx, args),
        Command::Translate(args) => ingest::run_translate(&ctx, args),
        Command::Recipes(cmd) => recipes::run(&ctx, cmd),
        Command::Sql(args) => sql::run(&ctx, args),
        Command::Catalog(cmd) => catalog::run(&ctx, cmd),
        Command::Samples(cmd) => samples::run(&ctx, cmd),
        Command::Tok(cmd) => tok::run(&ctx, cmd),
        Command::Train(cmd) => train::run(&ctx, cmd),
        Command::Mix(cmd) => mix::run(&ctx, cmd),
        Command::Audit(args) => audit::run(&ctx, args),
    }
}
