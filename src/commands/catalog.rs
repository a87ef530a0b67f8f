use super::{Ctx, ExitStatus};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CatalogCommand {
    /// List datasets.
    List,
}

pub(crate) fn run(_ctx: &Ctx, _cmd: CatalogCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("njp catalog: not built yet")
}
