//! `njp audit NAME|RECIPE`: token-length percentiles, histogram and the cost of each truncation
//! policy, per component and overall. Stored as the dataset's `audit` stats.

use std::path::PathBuf;

use anyhow::{Context, bail};
use njp_catalog::Catalog;
use njp_mix::audit::{Audit, Summary, measure_all};
use njp_mix::plan::{Plan, component_of};
use njp_mix::{Recipe, load_tokenizer};
use njp_tokenizer::TruncationPolicy;

use super::mix::{is_recipe, tokenizer_spec};
use super::{Ctx, ExitStatus};
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// A dataset (`name` or `name@v`) or a recipe file (`*.toml`).
    #[arg(value_name = "NAME|RECIPE")]
    pub(crate) target: String,
    /// Tokenizer directory (njp's or nanochat's `tokenizer.pkl`), or `byte` [default: the
    /// mixture's or recipe's, then njp.toml].
    #[arg(long, value_name = "DIR")]
    pub(crate) tokenizer: Option<String>,
    /// Row limit [default: the mixture's or recipe's max_seq_len].
    #[arg(long, value_name = "N")]
    pub(crate) max_seq_len: Option<usize>,
    /// Truncation policy whose failure sets the exit code [default: the recipe's, else error].
    #[arg(long, value_parser = parse_policy)]
    pub(crate) policy: Option<TruncationPolicy>,
    /// Print the audit as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Where to write the histogram image [default: ./NAME.audit.svg].
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
}

fn parse_policy(s: &str) -> Result<TruncationPolicy, String> {
    s.parse()
}

pub(crate) fn run(ctx: &Ctx, a: AuditArgs) -> anyhow::Result<ExitStatus> {
    let catalog = Catalog::open(&ctx.settings.home)?;
    let (audit, name) = if is_recipe(&a.target) {
        let path = PathBuf::from(&a.target);
        let mut recipe = Recipe::load(&path)?;
        if let Some(n) = a.max_seq_len {
            recipe.max_seq_len = n;
        }
        if let Some(p) = a.policy {
            // Audit every row: the policy only decides the exit code here.
            recipe.truncation = p;
        }
        let policy = recipe.truncation;
        let spec = tokenizer_spec(ctx, a.tokenizer.as_deref(), recipe.tokenizer.as_deref())?;
        let (tok, hash) = load_tokenizer(&spec).with_context(|| format!("loading {spec}"))?;
        // Not enforcing the policy: every selected row is measured, none removed or refused.
        let plan = Plan::make_with(&catalog, &recipe, &tok, &spec, &hash, false)
            .with_context(|| format!("planning {}", path.display()))?;
        let mut audit = plan.audit(&a.target);
        audit.policy = policy;
        (audit, recipe.name.clone())
    } else {
        let m = catalog.resolve(&a.target)?;
        let mix = m.parameters.get("mix");
        let recipe: Option<Recipe> = mix
            .and_then(|x| x.get("recipe"))
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        let max = a
            .max_seq_len
            .or(recipe.as_ref().map(|r| r.max_seq_len))
            .context("pass --max-seq-len N (the dataset is not a mixture with a recipe limit)")?;
        let policy = a
            .policy
            .or(recipe.as_ref().map(|r| r.truncation))
            .unwrap_or_default();
        let from_mix = mix
            .and_then(|x| x.get("tokenizer"))
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let spec = tokenizer_spec(ctx, a.tokenizer.as_deref(), from_mix.as_deref())?;
        let (tok, _) = load_tokenizer(&spec).with_context(|| format!("loading {spec}"))?;
        let records = catalog
            .records(&m)?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading {}", m.id()))?;
        let mut names: Vec<String> = match &recipe {
            Some(r) => r.components.iter().map(|c| c.name.clone()).collect(),
            None => vec![m.name.clone()],
        };
        let mut groups = Vec::with_capacity(records.len());
        for r in &records {
            let g = match &recipe {
                None => 0,
                Some(_) => {
                    let c = component_of(r.id()).unwrap_or(r.id());
                    match names.iter().position(|n| n == c) {
                        Some(i) => i,
                        None => {
                            names.push(c.to_string());
                            names.len() - 1
                        }
                    }
                }
            };
            groups.push(g);
        }
        let rows = measure_all(&tok, &records, max).map_err(|(i, reason)| {
            anyhow::anyhow!("{}: row {} (id `{}`): {reason}", m.id(), i, records[i].id())
        })?;
        let audit = Audit::new(&m.id(), &rows, &groups, &names, max, policy);
        catalog.set_stats(&m, "audit", serde_json::to_value(&audit)?)?;
        (audit, m.name.clone())
    };

    let svg_path = a
        .svg
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.audit.svg")));
    write_atomic(&svg_path, audit.histogram_svg().as_bytes())
        .with_context(|| format!("writing {}", svg_path.display()))?;

    let p = &ctx.printer;
    if a.json {
        p.out(serde_json::to_string_pretty(&audit)?)?;
    } else {
        print_audit(ctx, &audit)?;
        p.out(format!("histogram image: {}", svg_path.display()))?;
    }
    if audit.fails() {
        let s = &audit.overall;
        p.warn(format!(
            "truncation policy `error`: {} row(s) exceed max_seq_len {} and {} have no assistant turn",
            s.over_limit, audit.max_seq_len, s.unsupervised
        ));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

fn print_audit(ctx: &Ctx, audit: &Audit) -> anyhow::Result<()> {
    let p = &ctx.printer;
    p.out(format!(
        "audit of {} (max_seq_len {}, policy {})",
        audit.target, audit.max_seq_len, audit.policy
    ))?;
    let mut t = Table::new(
        [
            "component",
            "rows",
            "tokens",
            "supervised",
            "p50",
            "p90",
            "p99",
            "max",
            "over limit",
            "no assistant",
        ]
        .map(String::from)
        .to_vec(),
    );
    let row = |name: &str, s: &Summary| {
        vec![
            name.to_string(),
            s.rows.to_string(),
            s.tokens.to_string(),
            s.supervised.to_string(),
            s.p50.to_string(),
            s.p90.to_string(),
            s.p99.to_string(),
            s.max.to_string(),
            s.over_limit.to_string(),
            s.unsupervised.to_string(),
        ]
    };
    for (name, s) in &audit.components {
        t.push_row(row(name, s));
    }
    t.push_row(row("(all)", &audit.overall));
    p.out(t.render().trim_end())?;
    p.out("cost of each truncation policy (all rows):")?;
    let mut t = Table::new(
        [
            "policy",
            "rows kept",
            "rows dropped",
            "tokens cut",
            "supervised lost",
            "rows with 0 supervised",
        ]
        .map(String::from)
        .to_vec(),
    );
    for name in ["error", "drop", "truncate", "crop"] {
        let c = &audit.overall.policies[name];
        let label = match name {
            "error" if c.fails => "error (fails)".to_string(),
            "crop" => "crop (nanochat v1)".to_string(),
            n => n.to_string(),
        };
        t.push_row(vec![
            label,
            c.rows_kept.to_string(),
            c.rows_dropped.to_string(),
            c.tokens_cut.to_string(),
            c.supervised_lost.to_string(),
            c.rows_zero_supervised.to_string(),
        ]);
    }
    p.out(t.render().trim_end())?;
    p.out("token lengths:")?;
    for line in audit.histogram_lines(40) {
        p.out(format!("  {line}"))?;
    }
    Ok(())
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!("directory {} does not exist", dir.display());
    }
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}
