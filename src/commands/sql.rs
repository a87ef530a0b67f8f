use super::{Ctx, ExitStatus};

/// Arguments of `njp sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {}

pub(crate) fn run(_ctx: &Ctx, _args: SqlArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("njp sql: not built yet")
}
