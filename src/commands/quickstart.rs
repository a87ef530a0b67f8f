//! `njp quickstart`: the main job on the bundled data, end to end, in one command.
//!
//! samples → catalog → SQL → tokenizer → base → mid → SFT, on CPU in a few minutes. Every step
//! is the same code path as the verb it stands for (the arguments below are exactly what a user
//! would type), so the quickstart doubles as a smoke test of the whole pipeline. Outputs go to
//! `<home>/quickstart/`, which the quickstart owns and recreates on every run.

use std::path::Path;

use anyhow::Context;
use clap::Parser;

use super::{Ctx, ExitStatus};

/// Arguments of `njp quickstart`.
#[derive(Debug, clap::Args)]
pub(crate) struct QuickstartArgs {
    /// Base-training steps (the loss falls clearly within a few hundred).
    #[arg(long, default_value_t = 150)]
    base_steps: u64,
    /// Midtraining and SFT steps.
    #[arg(long, default_value_t = 40)]
    chat_steps: u64,
    /// Stop after importing the samples and querying the catalog (no tokenizer, no training).
    #[arg(long)]
    data_only: bool,
}

/// `njp tok …` arguments, parsed exactly as the command line would.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct TokVerb {
    #[command(subcommand)]
    cmd: super::tok::TokCommand,
}

/// `njp train …` arguments, parsed exactly as the command line would.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct TrainVerb {
    #[command(subcommand)]
    cmd: super::train::TrainCommand,
}

fn context(args: &[&str]) -> String {
    format!("quickstart arguments `{}`", args.join(" "))
}

fn tok_args(args: &[&str]) -> anyhow::Result<super::tok::TokCommand> {
    Ok(TokVerb::try_parse_from(args)
        .with_context(|| context(args))?
        .cmd)
}

fn train_args(args: &[&str]) -> anyhow::Result<super::train::TrainCommand> {
    Ok(TrainVerb::try_parse_from(args)
        .with_context(|| context(args))?
        .cmd)
}

fn step(ctx: &Ctx, n: usize, what: &str, line: &str) {
    ctx.printer.info(format!("== {n}. {what}\n   $ njp {line}"));
}

fn ok(s: ExitStatus) -> bool {
    s == ExitStatus::Success
}

pub(crate) fn run(ctx: &Ctx, args: QuickstartArgs) -> anyhow::Result<ExitStatus> {
    let p = &ctx.printer;
    let home = &ctx.settings.home;
    step(
        ctx,
        1,
        "import the bundled samples into the catalog",
        "samples import",
    );
    if !ok(super::samples::run(
        ctx,
        super::samples::SamplesCommand::Import { force: false },
    )?) {
        return Ok(ExitStatus::Failure);
    }
    let query = "SELECT name, kind, rows, license FROM catalog WHERE latest ORDER BY name";
    step(
        ctx,
        2,
        "what is in the catalog",
        &format!("sql \"{query}\""),
    );
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
    if args.data_only {
        p.info("done (data only).");
        return Ok(ExitStatus::Success);
    }

    let dir = home.join("quickstart");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| {
            format!("removing the previous quickstart run in {}", dir.display())
        })?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let s = |p: &Path| p.display().to_string();
    let tok = s(&dir.join("tokenizer"));
    let base = s(&dir.join("base"));
    let mid = s(&dir.join("mid"));
    let sft = s(&dir.join("sft"));
    let (base_steps, chat_steps) = (args.base_steps.to_string(), args.chat_steps.to_string());

    let tok_args_v = [
        "train",
        "--dataset",
        "sample_documents",
        "--vocab-size",
        "4096",
        "--out",
        &tok,
    ];
    step(
        ctx,
        3,
        "train a Japanese byte-level BPE tokenizer on the sample documents",
        &format!("tok {}", tok_args_v.join(" ")),
    );
    if !ok(super::tok::run(ctx, tok_args(&tok_args_v)?)?) {
        return Ok(ExitStatus::Failure);
    }

    // The tiny preset's batch (8 rows x 256 tokens per step) for base and mid; SFT steps are
    // counted in conversations (4 per step).
    let small = ["--device-batch-size", "8", "--total-batch-size", "2048"];
    let small_sft = ["--device-batch-size", "4", "--total-batch-size", "4"];
    let mut base_args = vec![
        "base",
        "--preset",
        "tiny",
        "--seq-len",
        "256",
        "--data",
        "sample_documents",
        "--val-data",
        "sample_documents",
        "--tokenizer",
        &tok,
        "--steps",
        &base_steps,
        "--eval-every",
        "50",
        "--out",
        &base,
    ];
    base_args.extend(small);
    step(
        ctx,
        4,
        "pretrain the tiny GPT (nanochat v1, depth 4) on the sample documents",
        &format!("train {}", base_args.join(" ")),
    );
    if !ok(super::train::run(ctx, train_args(&base_args)?)?) {
        return Ok(ExitStatus::Failure);
    }

    let mut mid_args = vec![
        "mid",
        "--from",
        &base,
        "--data",
        "sample_conversations",
        "--tokenizer",
        &tok,
        "--steps",
        &chat_steps,
        "--out",
        &mid,
    ];
    mid_args.extend(small);
    step(
        ctx,
        5,
        "midtrain on the sample conversations",
        &format!("train {}", mid_args.join(" ")),
    );
    if !ok(super::train::run(ctx, train_args(&mid_args)?)?) {
        return Ok(ExitStatus::Failure);
    }

    let mut sft_args = vec![
        "sft",
        "--from",
        &mid,
        "--data",
        "sample_math",
        "--tokenizer",
        &tok,
        "--steps",
        &chat_steps,
        "--out",
        &sft,
    ];
    sft_args.extend(small_sft);
    step(
        ctx,
        6,
        "fine-tune on the sample math problems (calculator tool calls)",
        &format!("train {}", sft_args.join(" ")),
    );
    if !ok(super::train::run(ctx, train_args(&sft_args)?)?) {
        return Ok(ExitStatus::Failure);
    }

    p.info(format!(
        "done. Runs in {}: metrics.jsonl, loss.svg, samples.jsonl and checkpoints per stage.\n\
         Next: `njp sql \"SELECT * FROM sample_conversations LIMIT 3\"`, `njp catalog show sample_math`, \
         `njp tok render --tokenizer {tok} --show`",
        dir.display()
    ));
    Ok(ExitStatus::Success)
}
