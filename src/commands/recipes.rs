//! `njp recipes list|show`: the dataset recipes bundled from `datasets/recipes/`.

use njp_ingest::recipe::{Recipe, SourceType};

use super::{Ctx, ExitStatus};
use crate::table::Table;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RecipesCommand {
    /// List the bundled recipes.
    List {
        /// One JSON object per recipe instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a recipe's TOML (a bundled name or a path to a `.toml` file).
    Show {
        #[arg(value_name = "RECIPE")]
        recipe: String,
    },
}

pub(crate) fn source_label(r: &Recipe) -> String {
    let s = &r.source;
    match s.kind {
        SourceType::Hub => format!(
            "hub:{}@{}",
            s.repo.as_deref().unwrap_or(""),
            s.revision.as_deref().unwrap_or("")
        ),
        SourceType::Local => format!("local:{}", s.paths.join(",")),
        SourceType::Bundled => format!("bundled:{}", s.file.as_deref().unwrap_or("")),
    }
}

pub(crate) fn run(ctx: &Ctx, cmd: RecipesCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        RecipesCommand::List { json } => {
            let all = Recipe::all_bundled()?;
            if json {
                for r in &all {
                    ctx.printer.out(serde_json::to_string(r)?)?;
                }
                return Ok(ExitStatus::Success);
            }
            let mut t = Table::new(
                [
                    "recipe",
                    "dataset",
                    "kind",
                    "license",
                    "commercial",
                    "eval_only",
                    "layout",
                    "source",
                ]
                .map(String::from)
                .to_vec(),
            );
            for r in &all {
                t.push_row(vec![
                    r.name.clone(),
                    r.dataset.clone(),
                    r.kind.to_string(),
                    r.license.clone(),
                    r.commercial_use
                        .map_or("?".into(), |c| if c { "yes".into() } else { "no".into() }),
                    r.eval_only.to_string(),
                    format!("{:?}", r.layout).to_lowercase(),
                    source_label(r),
                ]);
            }
            ctx.printer.out_raw(t.render().as_bytes())?;
            Ok(ExitStatus::Success)
        }
        RecipesCommand::Show { recipe } => {
            let (_, text) = Recipe::load(&recipe)?;
            ctx.printer.out_raw(text.as_bytes())?;
            Ok(ExitStatus::Success)
        }
    }
}
