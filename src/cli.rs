//! clap types only. Each verb's arguments live beside its implementation in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// nanochat-jp: datasets, tokenizer, mixtures and training for Japanese chat models.
#[derive(Debug, Parser)]
#[command(name = "njp", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every verb accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Catalog home directory [default: $NJP_HOME, else ./.njp].
    #[arg(long, global = true, env = "NJP_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Configuration file [default: ./njp.toml when it exists].
    #[arg(long, global = true, env = "NJP_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Less output: no progress bars, no summaries.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Never draw progress bars.
    #[arg(long, global = true, env = "NJP_NO_PROGRESS", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) no_progress: bool,
    /// Worker threads [default: all cores].
    #[arg(long, global = true, env = "NJP_THREADS")]
    pub(crate) threads: Option<usize>,
    /// Compression of the Parquet files written: zstd (level 3), zstd:<1-22>, snappy (larger
    /// files, less CPU) or none [default: njp.toml `compression`, else zstd].
    #[arg(long, global = true, env = "NJP_COMPRESSION", value_name = "CODEC")]
    pub(crate) compression: Option<String>,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the main job on the bundled samples (start here).
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Import local files as a cataloged dataset.
    Import(commands::import::ImportArgs),
    /// Build a dataset from a recipe: download (hub), adapt, filter, normalize, dedup, publish.
    Ingest(commands::ingest::IngestArgs),
    /// Translate a dataset to Japanese through an OpenAI-compatible endpoint.
    Translate(commands::ingest::TranslateArgs),
    /// The bundled dataset recipes (datasets/recipes/*.toml).
    #[command(subcommand)]
    Recipes(commands::recipes::RecipesCommand),
    /// Run SQL over the catalog: every dataset is a table.
    Sql(commands::sql::SqlArgs),
    /// List, show, remove and clean up datasets.
    #[command(subcommand)]
    Catalog(commands::catalog::CatalogCommand),
    /// Tokenizer: train, encode, decode, render conversations, compare.
    #[command(subcommand)]
    Tok(commands::tok::TokCommand),
    /// The small bundled samples used by the quickstart and the tests.
    #[command(subcommand)]
    Samples(commands::samples::SamplesCommand),
    /// Train the nanochat GPT: base, mid and sft stages; import / export nanochat weights.
    #[command(subcommand)]
    Train(commands::train::TrainCommand),
    /// Mixtures: plan and build SQL recipes into training datasets (blend index, decontamination).
    #[command(subcommand)]
    Mix(commands::mix::MixCommand),
    /// Token-length audit of a dataset or recipe: percentiles, histogram, truncation costs.
    Audit(commands::audit::AuditArgs),
}
