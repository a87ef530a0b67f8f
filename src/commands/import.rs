//! `njp import`: local files → a cataloged dataset.

use std::path::PathBuf;

use anyhow::Context;
use njp_catalog::Catalog;
use njp_catalog::import::{ImportOptions, ImportProgress, ImportReport, import};
use njp_datasets::Kind;
use njp_datasets::adapt::Mapping;
use njp_datasets::read::{Format, ReadOptions, encoding_for_label};

use super::{Ctx, ExitStatus};
use crate::printer::Printer;

/// Arguments of `njp import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// Input files (JSONL, JSON, CSV, TSV or Parquet; `.gz` is decompressed).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Record kind: conversation, mc, math or document.
    #[arg(long, value_parser = parse_kind)]
    pub(crate) kind: Kind,
    /// Dataset name (lowercase letters, digits, `_`; it becomes a SQL table).
    #[arg(long)]
    pub(crate) name: String,
    /// SPDX license id of the data (e.g. CC-BY-SA-4.0), or `unknown`.
    #[arg(long)]
    pub(crate) license: String,
    /// Input format.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub(crate) format: FormatArg,
    /// Text encoding of the input (e.g. shift_jis, euc-jp); default UTF-8.
    #[arg(long)]
    pub(crate) encoding: Option<String>,
    /// CSV/TSV files have no header row (columns are named 0, 1, …).
    #[arg(long)]
    pub(crate) no_header: bool,
    /// Field mapping `target=source.path` (repeatable; `choices=a,b,c` for lists).
    #[arg(long = "map", value_name = "TARGET=SOURCE")]
    pub(crate) map: Vec<String>,
    /// Largest share of rejected rows that still publishes (0 = any reject fails the import).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) max_reject_ratio: f64,
    /// Mark the dataset as evaluation-only (mixtures refuse it; decontamination uses it).
    #[arg(long)]
    pub(crate) eval_only: bool,
    /// One-line description stored in the manifest.
    #[arg(long)]
    pub(crate) description: Option<String>,
}

/// `--format auto` or a concrete format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormatArg(pub(crate) Option<Format>);

fn parse_format(s: &str) -> Result<FormatArg, String> {
    if s == "auto" {
        Ok(FormatArg(None))
    } else {
        s.parse().map(|f| FormatArg(Some(f)))
    }
}

pub(crate) fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
}

struct Bar(indicatif::ProgressBar);

impl ImportProgress for Bar {
    fn bytes(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

pub(crate) fn run(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<ExitStatus> {
    if !(0.0..=1.0).contains(&args.max_reject_ratio) {
        anyhow::bail!(
            "--max-reject-ratio must be between 0 and 1, got {}",
            args.max_reject_ratio
        );
    }
    let encoding = args
        .encoding
        .as_deref()
        .map(encoding_for_label)
        .transpose()?;
    let mapping = Mapping::parse(&args.map).map_err(anyhow::Error::msg)?;
    let opts = ImportOptions {
        name: args.name,
        kind: args.kind,
        license: args.license,
        read: ReadOptions {
            format: args.format.0,
            encoding,
            no_header: args.no_header,
        },
        mapping,
        max_reject_ratio: args.max_reject_ratio,
        eval_only: args.eval_only,
        commercial_use: None,
        description: args.description,
        path_labels: Vec::new(),
    };
    let catalog = Catalog::open(&ctx.settings.home)?;
    let bar = Bar(ctx.printer.bar(0, "importing"));
    bar.0.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let report = import(&catalog, &args.paths, &opts, &bar)
        .with_context(|| format!("importing `{}`", opts.name))?;
    bar.0.finish_and_clear();
    Ok(summarize(&ctx.printer, &opts.name, &report))
}

/// Prints the import summary and picks the exit status.
pub(crate) fn summarize(printer: &Printer, name: &str, report: &ImportReport) -> ExitStatus {
    printer.info(format!(
        "read {}, ok {}, rejected {}",
        report.read, report.ok, report.rejected
    ));
    print_first_rejects(printer, &report.first_rejects, report.rejected);
    if report.rejected > 0 && report.reasons.len() > 1 {
        printer.info("reject reasons:");
        for (reason, n) in &report.reasons {
            printer.info(format!("  {n:>8}  {reason}"));
        }
    }
    match &report.published {
        Some(m) => published(printer, m),
        None => nothing_published(
            printer,
            name,
            report.ok,
            report.rejected,
            report.read,
            report.max_reject_ratio,
        ),
    }
}

/// The first rejected rows, then how many more there were.
pub(crate) fn print_first_rejects(printer: &Printer, first: &[impl std::fmt::Display], total: u64) {
    for r in first {
        printer.info(format!("  rejected {r}"));
    }
    if total as usize > first.len() {
        printer.info(format!("  … and {} more", total as usize - first.len()));
    }
}

/// Reports a published dataset (and where its rejected rows are).
pub(crate) fn published(printer: &Printer, m: &njp_catalog::Manifest) -> ExitStatus {
    printer.info(format!(
        "published {} ({} rows, {} kind, license {})",
        m.id(),
        m.rows,
        m.kind,
        m.license
    ));
    if m.rejects > 0 {
        printer.info(format!(
            "rejected rows are in the table rejects.\"{}\"",
            m.id()
        ));
    }
    ExitStatus::Success
}

/// Says why nothing was published: no valid row, or too many rejected.
pub(crate) fn nothing_published(
    printer: &Printer,
    name: &str,
    ok: u64,
    rejected: u64,
    read: u64,
    max_reject_ratio: f64,
) -> ExitStatus {
    if ok == 0 {
        printer.warn(format!("nothing published for `{name}`: no valid rows"));
    } else {
        printer.warn(format!(
            "nothing published for `{name}`: {:.2}% of rows rejected, above --max-reject-ratio {}",
            rejected as f64 * 100.0 / read.max(1) as f64,
            max_reject_ratio
        ));
    }
    ExitStatus::Failure
}
