use super::{Ctx, ExitStatus};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SamplesCommand {
    /// Import the bundled samples.
    Import,
}

pub(crate) fn run(_ctx: &Ctx, _cmd: SamplesCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("njp samples: not built yet")
}
