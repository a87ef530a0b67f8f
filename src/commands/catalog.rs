//! `njp catalog list|show|rm|gc`.

use std::time::Duration;

use anyhow::bail;
use njp_catalog::{Catalog, Manifest};

use super::{Ctx, ExitStatus};
use crate::table::Table;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CatalogCommand {
    /// List datasets (latest versions; --all for every version).
    List {
        /// Every version, not only the latest.
        #[arg(long)]
        all: bool,
        /// Manifests as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one dataset's manifest: NAME (latest) or NAME@VERSION.
    Show {
        #[arg(value_name = "NAME[@VERSION]")]
        dataset: String,
        /// The manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a dataset version (NAME@VERSION) or every version (NAME).
    Rm {
        #[arg(value_name = "NAME[@VERSION]")]
        dataset: String,
        /// Remove even when other datasets were built from it (their lineage will dangle).
        #[arg(long)]
        force: bool,
    },
    /// Delete leftovers of interrupted builds.
    Gc,
}

pub(crate) fn run(ctx: &Ctx, cmd: CatalogCommand) -> anyhow::Result<ExitStatus> {
    let catalog = Catalog::open(&ctx.settings.home)?;
    let p = &ctx.printer;
    match cmd {
        CatalogCommand::List { all, json } => {
            let list = if all {
                catalog.list_all()?
            } else {
                catalog.list()?
            };
            if json {
                p.out(serde_json::to_string_pretty(&list)?)?;
            } else if list.is_empty() {
                p.info(format!(
                    "no datasets in {} (try `njp samples import`)",
                    catalog.home().display()
                ));
            } else {
                let mut t = Table::new(
                    [
                        "name", "version", "kind", "rows", "license", "flags", "created",
                    ]
                    .map(String::from)
                    .to_vec(),
                );
                for m in &list {
                    t.push_row(vec![
                        m.name.clone(),
                        m.version.to_string(),
                        m.kind.to_string(),
                        m.rows.to_string(),
                        m.license.clone(),
                        flags(m),
                        m.created.clone(),
                    ]);
                }
                p.out(t.render().trim_end())?;
            }
        }
        CatalogCommand::Show { dataset, json } => {
            let m = catalog.resolve(&dataset)?;
            if json {
                p.out(serde_json::to_string_pretty(&m)?)?;
            } else {
                p.out(describe(&catalog, &m))?;
            }
        }
        CatalogCommand::Rm { dataset, force } => {
            let r = njp_catalog::DatasetRef::parse(&dataset)?;
            catalog.resolve(&dataset)?; // not found → error before anything else
            let dependents: Vec<Manifest> = catalog
                .dependents(&r.name, r.version)?
                .into_iter()
                .filter(|d| d.name != r.name)
                .collect();
            if !dependents.is_empty() && !force {
                let names: Vec<String> = dependents.iter().map(Manifest::id).collect();
                bail!(
                    "{dataset} is a parent of {}; pass --force to remove it anyway",
                    names.join(", ")
                );
            }
            for m in catalog.remove(&dataset)? {
                p.info(format!("removed {}", m.id()));
            }
        }
        CatalogCommand::Gc => {
            let report = catalog.gc(Duration::from_secs(24 * 3600))?;
            for path in &report.removed {
                p.info(format!("removed {}", path.display()));
            }
            for path in &report.in_progress {
                p.info(format!("kept {} (build in progress)", path.display()));
            }
            p.info(format!(
                "freed {} bytes in {} leftover build(s)",
                report.bytes,
                report.removed.len()
            ));
        }
    }
    Ok(ExitStatus::Success)
}

fn flags(m: &Manifest) -> String {
    let mut f = Vec::new();
    if m.eval_only {
        f.push("eval-only".to_string());
    }
    if m.rejects > 0 {
        f.push(format!("{} rejects", m.rejects));
    }
    if m.commercial_use == Some(false) {
        f.push("non-commercial".to_string());
    }
    f.join(", ")
}

fn describe(catalog: &Catalog, m: &Manifest) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{}  ({} kind)", m.id(), m.kind);
    if let Some(d) = &m.description {
        let _ = writeln!(s, "  {d}");
    }
    let _ = writeln!(
        s,
        "license:   {}{}",
        m.license,
        if m.eval_only {
            " (evaluation only)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "rows:      {} ({} bytes in {} file(s)), {} rejected",
        m.rows,
        m.bytes,
        m.files.len(),
        m.rejects
    );
    let _ = writeln!(s, "created:   {} by {}", m.created, m.tool_version);
    let _ = writeln!(
        s,
        "source:    {}",
        serde_json::to_string(&m.source).unwrap_or_default()
    );
    if !m.parents.is_empty() {
        let _ = writeln!(
            s,
            "parents:   {}",
            m.parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !m.parameters.is_null() {
        let _ = writeln!(s, "built by:  {}", m.parameters);
    }
    for (k, v) in &m.stats {
        let _ = writeln!(s, "stats.{k}: {v}");
    }
    let _ = writeln!(s, "location:  {}", catalog.data_dir(m).display());
    if let Ok(versions) = catalog.versions(&m.name) {
        let _ = write!(
            s,
            "versions:  {}",
            versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}
