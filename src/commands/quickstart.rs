//! `njp quickstart`: the main job on the bundled data, end to end, in one command.
//!
//! Imports the bundled samples into the catalog and shows what is there with SQL. Each later
//! stage (tokenizer, mixture, training) adds its step here so that a newcomer's first command
//! exercises the whole pipeline.

use super::{Ctx, ExitStatus};

/// Arguments of `njp quickstart`.
#[derive(Debug, clap::Args)]
pub(crate) struct QuickstartArgs {}

pub(crate) fn run(ctx: &Ctx, _args: QuickstartArgs) -> anyhow::Result<ExitStatus> {
    let p = &ctx.printer;
    p.info(format!(
        "== 1. import the bundled samples into {}",
        ctx.settings.home.display()
    ));
    if super::samples::run(ctx, super::samples::SamplesCommand::Import { force: false })?
        != ExitStatus::Success
    {
        return Ok(ExitStatus::Failure);
    }
    let query = "SELECT name, kind, rows, license FROM catalog WHERE latest ORDER BY name";
    p.info(format!("== 2. njp sql \"{query}\""));
    super::sql::run(
        ctx,
        super::sql::SqlArgs {
            query: query.into(),
            format: super::sql::OutputFormat::Table,
            out: None,
            max_rows: 100,
            save: None,
            license: None,
            description: None,
        },
    )?;
    p.info("done. Next: `njp sql \"SELECT * FROM sample_conversations LIMIT 3\"`, `njp catalog show sample_math`");
    Ok(ExitStatus::Success)
}
