use super::{Ctx, ExitStatus};

/// Arguments of `njp import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {}

pub(crate) fn run(_ctx: &Ctx, _args: ImportArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("njp import: not built yet")
}
