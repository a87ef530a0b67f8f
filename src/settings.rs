//! Configuration precedence: flag > `NJP_*` environment variable > `njp.toml` > built-in default.
//!
//! clap already applies flag > env (`#[arg(env = …)]`); this module adds the `njp.toml` layer
//! and the defaults. `njp.toml` is looked for at `--config`/`NJP_CONFIG`, else `./njp.toml`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::GlobalArgs;

/// The `njp.toml` file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Catalog home directory.
    pub(crate) home: Option<PathBuf>,
    /// Worker threads.
    pub(crate) threads: Option<usize>,
    /// Default tokenizer directory for commands that take `--tokenizer`.
    pub(crate) tokenizer: Option<PathBuf>,
    /// Compression of the Parquet files written (`zstd`, `zstd:<level>`, `snappy`, `none`).
    pub(crate) compression: Option<String>,
}

impl ConfigFile {
    pub(crate) fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let (path, required) = match &global.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("njp.toml"), false),
        };
        if !required && !path.exists() {
            return Ok(ConfigFile::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: ConfigFile =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        // Relative paths in the file are relative to the file, not to the working directory.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for p in [&mut cfg.home, &mut cfg.tokenizer].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}

/// Settings every command shares.
#[derive(Debug)]
pub(crate) struct GlobalSettings {
    pub(crate) home: PathBuf,
    pub(crate) tokenizer: Option<PathBuf>,
}

impl GlobalSettings {
    pub(crate) fn resolve(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cfg = ConfigFile::load(global)?;
        let home = global
            .home
            .clone()
            .or(cfg.home)
            .unwrap_or_else(|| PathBuf::from(".njp"));
        if let Some(threads) = global.threads.or(cfg.threads) {
            // Ignore the error when a pool already exists (tests calling twice).
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global();
        }
        let (compression, from) = match (&global.compression, &cfg.compression) {
            (Some(c), _) => (Some(c), "--compression / NJP_COMPRESSION"),
            (None, Some(c)) => (Some(c), "njp.toml `compression`"),
            (None, None) => (None, ""),
        };
        if let Some(c) = compression {
            let codec: njp_datasets::io::Codec = c
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{from}: {e}"))?;
            anyhow::ensure!(
                njp_datasets::io::set_codec(codec),
                "compression {codec}: another codec was already set in this process"
            );
        }
        Ok(GlobalSettings {
            home,
            tokenizer: cfg.tokenizer,
        })
    }
}
