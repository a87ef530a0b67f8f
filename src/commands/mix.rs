//! `njp mix show|build`: plan and publish SQL mixture recipes (see mix/README.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use njp_catalog::Catalog;
use njp_mix::plan::Plan;
use njp_mix::{Recipe, load_tokenizer};

use super::{Ctx, ExitStatus};
use crate::table::Table;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MixCommand {
    /// Print a recipe's plan: rows and tokens per component, share, epochs, licenses and what
    /// decontamination removed. Publishes nothing.
    Show(MixArgs),
    /// Build a recipe: publish NAME (records in blend order), NAME_val and NAME_blend.
    Build {
        #[command(flatten)]
        args: MixArgs,
        /// Publish new versions even when an identical build exists.
        #[arg(long)]
        force: bool,
    },
    /// Pre-tokenize a dataset for training: publish NAME_tokens (id, ids, mask per record),
    /// rendered exactly as `njp train` renders it; train with `--data NAME_tokens`.
    Tokenize {
        /// Dataset to render (NAME or NAME@VERSION): documents, conversations, mc or math.
        #[arg(value_name = "DATASET")]
        dataset: String,
        /// Tokenizer directory (njp's or nanochat's `tokenizer.pkl`), or `byte` [default:
        /// njp.toml's].
        #[arg(long, value_name = "DIR")]
        tokenizer: Option<String>,
        /// Name of the published dataset [default: DATASET_tokens].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct MixArgs {
    /// The recipe file (TOML).
    #[arg(value_name = "RECIPE")]
    pub(crate) recipe: PathBuf,
    /// Tokenizer directory (njp's or nanochat's `tokenizer.pkl`), or `byte` [default: the
    /// recipe's `tokenizer`, then njp.toml].
    #[arg(long, value_name = "DIR")]
    pub(crate) tokenizer: Option<String>,
    /// Also decontaminate against these catalog datasets (repeatable).
    #[arg(long = "decontam", value_name = "DATASET")]
    pub(crate) decontam: Vec<String>,
    /// Print the plan as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(ctx: &Ctx, cmd: MixCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        MixCommand::Tokenize {
            dataset,
            tokenizer,
            name,
        } => tokenize(ctx, &dataset, tokenizer.as_deref(), name.as_deref()),
        MixCommand::Show(args) => {
            let (_, plan) = plan(ctx, &args)?;
            print_plan(ctx, &plan, args.json)?;
            Ok(ExitStatus::Success)
        }
        MixCommand::Build { args, force } => {
            let (catalog, plan) = plan(ctx, &args)?;
            print_plan(ctx, &plan, args.json)?;
            let built = njp_mix::build(&catalog, &plan, force)
                .with_context(|| format!("building {}", args.recipe.display()))?;
            let p = &ctx.printer;
            if built.up_to_date {
                p.info(format!(
                    "{} is up to date (same recipe, tokenizer and inputs; --force rebuilds)",
                    built.mixture.id()
                ));
            } else {
                p.info(format!(
                    "published {} ({} rows, {}), {}{}",
                    built.mixture.id(),
                    built.mixture.rows,
                    built.mixture.kind,
                    built.blend.id(),
                    built
                        .validation
                        .as_ref()
                        .map(|v| format!(", {} ({} rows)", v.id(), v.rows))
                        .unwrap_or_default()
                ));
                if built.mixture.rejects > 0 {
                    p.info(format!(
                        "{} rows removed; see them with: njp sql 'SELECT * FROM rejects.\"{}\"'",
                        built.mixture.rejects,
                        built.mixture.id()
                    ));
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn tokenize(
    ctx: &Ctx,
    dataset: &str,
    tokenizer: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    use njp_datasets::{Kind, Record};
    use njp_mix::tokens::{TokenRow, TokensInfo};

    let catalog = Catalog::open(&ctx.settings.home)?;
    let source = catalog.resolve(dataset)?;
    let kind = source
        .kind
        .record_kind()
        .with_context(|| format!("{} is a table, not a dataset of records", source.id()))?;
    let spec = tokenizer_spec(ctx, tokenizer, None)?;
    let tok = super::train::load_tokenizer(ctx, Some(&spec))?;
    let info = TokensInfo {
        source: source.id(),
        kind: if kind == Kind::Document {
            "document"
        } else {
            "conversation"
        }
        .into(),
        tokenizer: spec.clone(),
        tokenizer_fingerprint: super::train::tokenizer_fingerprint(&spec)?,
    };
    let out = name.map_or_else(|| format!("{}_tokens", source.name), str::to_string);
    // The trainer's own tokenize functions, so the rows are exactly what training would make.
    let docs = super::train::document_tokenizer(tok.clone());
    let convs = super::train::conversation_tokenizer(tok.clone(), true);
    let render = |r: &Record| -> njp_mix::tokens::Rendered {
        let (id, t) = match r {
            Record::Document(d) => docs(d),
            other => convs(&other.to_conversation().expect("non-document converts")),
        };
        t.map(|(ids, mask)| TokenRow { id, ids, mask })
    };
    let (m, stats) = njp_mix::tokens::tokenize(&catalog, &source, &out, info, render)
        .with_context(|| format!("tokenizing {}", source.id()))?;
    let p = &ctx.printer;
    p.info(format!(
        "published {} ({} rows, {} tokens, {} supervised) from {} with {spec}",
        m.id(),
        stats.rows,
        stats.tokens,
        stats.supervised,
        source.id()
    ));
    if stats.dropped > 0 {
        p.warn(format!(
            "{} record(s) cannot be training rows and were left out, e.g. {}",
            stats.dropped,
            stats.dropped_examples.join("; ")
        ));
    }
    Ok(ExitStatus::Success)
}

/// Loads the recipe and its tokenizer and plans it.
fn plan(ctx: &Ctx, args: &MixArgs) -> anyhow::Result<(Catalog, Plan)> {
    let mut recipe = Recipe::load(&args.recipe)?;
    recipe
        .decontamination
        .datasets
        .extend(args.decontam.iter().cloned());
    let spec = tokenizer_spec(ctx, args.tokenizer.as_deref(), recipe.tokenizer.as_deref())?;
    let (tok, hash) =
        load_tokenizer(&spec).with_context(|| format!("loading the tokenizer {spec}"))?;
    let catalog = Catalog::open(&ctx.settings.home)?;
    let plan = Plan::make(&catalog, &recipe, &tok, &spec, &hash)
        .with_context(|| format!("planning {}", args.recipe.display()))?;
    Ok((catalog, plan))
}

/// The tokenizer: the flag, else the recipe's, else njp.toml's.
pub(crate) fn tokenizer_spec(
    ctx: &Ctx,
    flag: Option<&str>,
    recipe: Option<&str>,
) -> anyhow::Result<String> {
    flag.map(str::to_string)
        .or_else(|| recipe.map(str::to_string))
        .or_else(|| {
            ctx.settings
                .tokenizer
                .as_ref()
                .map(|p| p.display().to_string())
        })
        .context("no tokenizer: pass --tokenizer DIR (or `byte`), or set `tokenizer` in the recipe")
}

fn print_plan(ctx: &Ctx, plan: &Plan, json: bool) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if json {
        let v = serde_json::json!({
            "name": plan.recipe.name,
            "recipe_hash": plan.recipe_hash,
            "kind": plan.kind,
            "license": plan.license(),
            "licenses": plan.licenses,
            "components": plan.components,
            "train_rows": plan.train.len(),
            "validation_rows": plan.val.len(),
            "decontamination": plan.decontamination,
            "removed": plan.removed,
        });
        p.out(serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let mut t = Table::new(
        [
            "component",
            "kind",
            "quantity",
            "query rows",
            "removed",
            "val",
            "rows",
            "unique",
            "epochs",
            "tokens",
            "share rows",
            "share tokens",
        ]
        .map(String::from)
        .to_vec(),
    );
    for c in &plan.components {
        t.push_row(vec![
            c.name.clone(),
            c.kind.to_string(),
            c.quantity.to_string(),
            c.query_rows.to_string(),
            (c.removed_contaminated + c.removed_policy).to_string(),
            c.validation_rows.to_string(),
            c.rows.to_string(),
            c.unique_rows.to_string(),
            format!("{:.2}", c.epochs),
            c.tokens.to_string(),
            format!("{:.1}%", c.share_rows * 100.0),
            format!("{:.1}%", c.share_tokens * 100.0),
        ]);
    }
    let total_tokens: u64 = plan.components.iter().map(|c| c.tokens).sum();
    p.out(format!(
        "mixture {} ({} rows of {}, {} tokens; {} validation rows; seed {}, max_seq_len {}, truncation {})",
        plan.recipe.name,
        plan.train.len(),
        plan.kind,
        total_tokens,
        plan.val.len(),
        plan.recipe.seed,
        plan.recipe.max_seq_len,
        plan.recipe.truncation
    ))?;
    p.out(t.render().trim_end())?;
    p.out(format!(
        "licenses: {} (mixture license: {})",
        plan.licenses.iter().cloned().collect::<Vec<_>>().join(", "),
        plan.license()
    ))?;
    let d = &plan.decontamination;
    if d.eval_datasets.is_empty() {
        p.out(
            "decontamination: no evaluation datasets in the catalog (none eval-only, none named)",
        )?;
    } else {
        p.out(format!(
            "decontamination: {} items from {} ({}-grams, ≥{:.0}% of an item's n-grams; {} items too short to index): {} rows removed",
            d.eval_items,
            d.eval_datasets.join(", "),
            d.ngram,
            d.min_fraction * 100.0,
            d.items_too_short,
            d.removed
        ))?;
    }
    for r in plan.removed.iter().filter(|r| r.reason == "contaminated") {
        p.out(format!(
            "  removed {}/{}: {}",
            r.component, r.row_id, r.detail
        ))?;
    }
    let policy_removed = plan
        .removed
        .iter()
        .filter(|r| r.reason != "contaminated")
        .count();
    if policy_removed > 0 {
        p.out(format!(
            "truncation policy {}: {policy_removed} rows removed (too long or without an assistant turn)",
            plan.recipe.truncation
        ))?;
    }
    Ok(())
}

/// Whether `target` names a recipe file rather than a dataset.
pub(crate) fn is_recipe(target: &str) -> bool {
    target.ends_with(".toml") || Path::new(target).is_file()
}
