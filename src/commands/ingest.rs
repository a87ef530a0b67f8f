//! `njp ingest RECIPE`: a recipe's source (hub, local files or a bundled sample) → a cataloged
//! dataset, and `njp translate DATASET`: its Japanese translation through an OpenAI-compatible
//! endpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use njp_catalog::Catalog;
use njp_ingest::hub::{DownloadProgress, Hub, HubConfig};
use njp_ingest::mask::Gates;
use njp_ingest::pipeline::{
    IngestOptions, IngestProgress, IngestReport, Input, fetch_hub, ingest, local_inputs,
};
use njp_ingest::recipe::{Recipe, SourceType};
use njp_ingest::translate::{TranslateConfig, TranslateProgress, TranslateReport, translate};

use super::{Ctx, ExitStatus};
use crate::printer::Printer;

/// Arguments of `njp ingest`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// A bundled recipe name (`njp recipes list`) or a path to a recipe `.toml`.
    #[arg(value_name = "RECIPE")]
    pub(crate) recipe: String,
    /// Hub revision (branch, tag, refs/convert/parquet or commit) instead of the recipe's.
    #[arg(long)]
    pub(crate) revision: Option<String>,
    /// Read at most N input rows.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Publish under this dataset name instead of the recipe's.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Largest share of rejected rows that still publishes.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) max_reject_ratio: f64,
    /// Download cache [default: <home>/cache/hub].
    #[arg(long, env = "NJP_HUB_CACHE", value_name = "DIR")]
    pub(crate) cache: Option<PathBuf>,
    /// Seconds without progress before a request times out.
    #[arg(long, env = "NJP_HTTP_TIMEOUT", default_value_t = 60.0)]
    pub(crate) timeout: f64,
    /// Retries per request after the first attempt.
    #[arg(long, env = "NJP_HTTP_RETRIES", default_value_t = 5)]
    pub(crate) retries: u32,
}

/// Arguments of `njp translate`.
#[derive(Debug, clap::Args)]
pub(crate) struct TranslateArgs {
    /// The dataset to translate (`name` or `name@version`).
    #[arg(value_name = "DATASET")]
    pub(crate) dataset: String,
    /// Target language (only `ja`).
    #[arg(long, default_value = "ja")]
    pub(crate) to: String,
    /// OpenAI-compatible endpoint (`http://host:port/v1`).
    #[arg(long, env = "NJP_TRANSLATE_ENDPOINT")]
    pub(crate) endpoint: String,
    /// Model name sent to the endpoint.
    #[arg(long, env = "NJP_TRANSLATE_MODEL")]
    pub(crate) model: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Environment variable holding the API key (sent as a bearer token, never stored).
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "VAR")]
    pub(crate) api_key_env: String,
    /// Output dataset name [default: <dataset>_ja].
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Translate at most N records.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Largest share of rejected records that still publishes.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) max_reject_ratio: f64,
    /// Seconds before a request times out.
    #[arg(long, env = "NJP_HTTP_TIMEOUT", default_value_t = 120.0)]
    pub(crate) timeout: f64,
    /// Retries per request after the first attempt.
    #[arg(long, env = "NJP_HTTP_RETRIES", default_value_t = 5)]
    pub(crate) retries: u32,
}

/// First backoff delay (`NJP_HTTP_BACKOFF_MS`, default 500 ms; doubled per retry).
fn backoff() -> Duration {
    let ms = std::env::var("NJP_HTTP_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}

fn check_ratio(r: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&r) {
        anyhow::bail!("--max-reject-ratio must be between 0 and 1, got {r}");
    }
    Ok(())
}

fn seconds(s: f64, flag: &str) -> anyhow::Result<Duration> {
    if !(s > 0.0 && s.is_finite()) {
        anyhow::bail!("{flag} must be a positive number of seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

struct Bars {
    printer: Printer,
    bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl DownloadProgress for Bars {
    fn start(&self, file: &str, done: u64, total: u64) {
        let mut bars = self.bars.lock().expect("not poisoned");
        let bar = bars.entry(file.to_string()).or_insert_with(|| {
            let b = self.printer.bar(total, file);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        bar.set_length(total);
        bar.set_position(done);
    }
    fn advance(&self, file: &str, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("not poisoned").get(file) {
            b.inc(bytes);
        }
    }
    fn finish(&self, file: &str, cached: bool) {
        if let Some(b) = self.bars.lock().expect("not poisoned").remove(file) {
            b.finish_and_clear();
        }
        if cached {
            self.printer.info(format!("{file}: cached"));
        } else {
            self.printer
                .info(format!("{file}: downloaded and verified"));
        }
    }
    fn retry(&self, what: &str, attempt: u32, reason: &str) {
        self.printer
            .warn(format!("{what}: {reason}; retry {attempt}"));
    }
}

struct RowBar(indicatif::ProgressBar);

impl IngestProgress for RowBar {
    fn rows(&self, read: u64, _kept: u64) {
        self.0.set_position(read);
    }
}

/// Writes a bundled sample to the cache so it can be read like any file.
fn bundled_input(home: &std::path::Path, file: &str) -> anyhow::Result<Input> {
    let sample = super::samples::SAMPLES
        .iter()
        .find(|s| s.file == file)
        .with_context(|| {
            format!(
                "no bundled sample file `{file}` (known: {})",
                super::samples::SAMPLES
                    .iter()
                    .map(|s| s.file)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let dir = home.join("cache").join("bundled");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file);
    njp_catalog::store::write_atomic(&path, sample.bytes)?;
    Ok(Input {
        path,
        label: format!("bundled:{file}"),
    })
}

pub(crate) fn run_ingest(ctx: &Ctx, args: IngestArgs) -> anyhow::Result<ExitStatus> {
    check_ratio(args.max_reject_ratio)?;
    let (recipe, text) = Recipe::load(&args.recipe)?;
    let catalog = Catalog::open(&ctx.settings.home)?;
    let printer = ctx.printer;
    if args.revision.is_some() && recipe.source.kind != SourceType::Hub {
        anyhow::bail!(
            "--revision applies to hub recipes only; `{}` reads {:?} files",
            recipe.name,
            recipe.source.kind
        );
    }
    let fetched = match recipe.source.kind {
        SourceType::Hub => {
            let mut cfg = HubConfig::from_env(
                args.cache
                    .clone()
                    .unwrap_or_else(|| ctx.settings.home.join("cache").join("hub")),
            );
            cfg.timeout = seconds(args.timeout, "--timeout")?;
            cfg.retries = args.retries;
            cfg.backoff = backoff();
            tracing::info!(endpoint = %cfg.endpoint, token = cfg.token.is_some(), "hub");
            let hub = Hub::new(cfg)?;
            let bars = Bars {
                printer,
                bars: Mutex::new(HashMap::new()),
            };
            fetch_hub(&hub, &recipe, args.revision.as_deref(), &bars)
                .with_context(|| format!("fetching recipe `{}`", recipe.name))?
        }
        SourceType::Local => local_inputs(
            recipe
                .source
                .paths
                .iter()
                .map(|p| Input {
                    path: PathBuf::from(p),
                    label: p.clone(),
                })
                .collect(),
        )?,
        SourceType::Bundled => local_inputs(vec![bundled_input(
            &ctx.settings.home,
            recipe.source.file.as_deref().unwrap_or_default(),
        )?])?,
    };
    let opts = IngestOptions {
        revision: args.revision.clone(),
        limit: args.limit,
        max_reject_ratio: args.max_reject_ratio,
        name: args.name.clone(),
    };
    let bar = RowBar(printer.spinner("rows"));
    let report = ingest(&catalog, &recipe, &text, &fetched, &opts, &bar)
        .with_context(|| format!("ingesting recipe `{}`", recipe.name))?;
    bar.0.finish_and_clear();
    Ok(summarize_ingest(&printer, &report))
}

fn summarize_ingest(printer: &Printer, r: &IngestReport) -> ExitStatus {
    printer.info(format!(
        "read {}, ok {}, rejected {}, dropped {}{}",
        r.read,
        r.ok,
        r.rejected,
        r.dropped.values().sum::<u64>(),
        if r.limited {
            " (stopped at --limit)"
        } else {
            ""
        }
    ));
    for (reason, n) in &r.dropped {
        printer.info(format!("  dropped {n:>8}  {reason}"));
    }
    super::import::print_first_rejects(printer, &r.first_rejects, r.rejected);
    let n = &r.normalize;
    printer.info(format!(
        "normalized: {} records changed (unicode {}, newlines {}, whitespace {}, control {} texts / {} chars)",
        n.records_changed, n.unicode_form, n.newlines_fixed, n.whitespace_fixed, n.control_removed, n.control_chars
    ));
    let d = &r.dedup;
    printer.info(format!(
        "dedup: {} exact, {} near duplicates dropped ({} against earlier datasets) in {} clusters",
        d.exact_dropped, d.near_dropped, d.against_dropped, d.clusters
    ));
    for a in &r.against_missing {
        printer.warn(format!(
            "dedup against `{a}` skipped: no such dataset in the catalog"
        ));
    }
    match &r.published {
        Some(m) => super::import::published(printer, m),
        None => super::import::nothing_published(
            printer,
            &r.name,
            r.ok,
            r.rejected,
            r.read,
            r.max_reject_ratio,
        ),
    }
}

struct UnitBar {
    bar: indicatif::ProgressBar,
    printer: Printer,
}

impl TranslateProgress for UnitBar {
    fn units(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }
    fn retry(&self, attempt: u32, reason: &str) {
        self.printer
            .warn(format!("translation request: {reason}; retry {attempt}"));
    }
}

pub(crate) fn run_translate(ctx: &Ctx, args: TranslateArgs) -> anyhow::Result<ExitStatus> {
    check_ratio(args.max_reject_ratio)?;
    if args.to != "ja" {
        anyhow::bail!("--to {}: only `ja` is supported", args.to);
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let api_key = std::env::var(&args.api_key_env)
        .ok()
        .filter(|k| !k.is_empty());
    let cfg = TranslateConfig {
        endpoint: args.endpoint,
        model: args.model,
        api_key,
        concurrency: args.concurrency,
        retries: args.retries,
        timeout: seconds(args.timeout, "--timeout")?,
        backoff: backoff(),
        max_retry_after: Duration::from_secs(60),
        gates: Gates::default(),
        max_reject_ratio: args.max_reject_ratio,
        name: args.name,
        limit: args.limit,
    };
    let catalog = Catalog::open(&ctx.settings.home)?;
    let bar = UnitBar {
        bar: ctx.printer.bar(0, "translating"),
        printer: ctx.printer,
    };
    let report = translate(&catalog, &args.dataset, &cfg, &bar)
        .with_context(|| format!("translating `{}`", args.dataset))?;
    bar.bar.finish_and_clear();
    Ok(summarize_translate(&ctx.printer, &report))
}

fn summarize_translate(printer: &Printer, r: &TranslateReport) -> ExitStatus {
    let s = &r.stats;
    printer.info(format!(
        "records {}, translated {}, rejected {}; units {} (sent {}, cached {}, nothing to translate {}), requests {}, retries {}",
        s.records, s.translated, s.rejected, s.units, s.units - s.cache_hits - s.untranslatable, s.cache_hits, s.untranslatable, s.requests, s.retries
    ));
    if s.cache_bad_lines > 0 {
        printer.warn(format!(
            "{} unreadable translation cache lines ignored",
            s.cache_bad_lines
        ));
    }
    for (reason, n) in &s.reject_reasons {
        printer.info(format!("  rejected {n:>8}  {reason}"));
    }
    for rej in &r.first_rejects {
        printer.info(format!("  rejected {rej}"));
    }
    match &r.published {
        Some(m) => {
            printer.info(format!(
                "published {} ({} rows, {} kind)",
                m.id(),
                m.rows,
                m.kind
            ));
            ExitStatus::Success
        }
        None => {
            printer.warn(format!(
                "nothing published for `{}`: {} of {} records rejected (--max-reject-ratio {})",
                r.name, s.rejected, s.records, r.max_reject_ratio
            ));
            ExitStatus::Failure
        }
    }
}
