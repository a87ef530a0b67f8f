//! `njp ingest`: a recipe's source files → filtered, normalized, deduplicated records →
//! a published catalog dataset with provenance.
//!
//! Per input row: raw-field filters → adapter → normalization → validation → Japanese-share and
//! length filters → duplicate id check → exact and near dedup → the Parquet sink. Rows that
//! cannot be read, adapted or validated are **rejects** (stored in the rejects table with file,
//! line, row, reason and raw text); rows that are valid but filtered out or duplicates are
//! **drops**, counted by reason in the manifest's stats. Nothing disappears without a count.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use njp_catalog::import::{Reject, RejectSink};
use njp_catalog::manifest::{Draft, Manifest, Source, SourceFile};
use njp_catalog::store::sha256_file;
use njp_catalog::{Catalog, Parent};
use njp_datasets::Record;
use njp_datasets::adapt::Mapping;
use njp_datasets::read::{ReadOptions, detect_format, encoding_for_label, open_rows};

use crate::adapters::{Adapted, OasstForest, RowCtx, adapt_row, field_filters};
use crate::dedup::{Dedup, DedupStats, Verdict};
use crate::error::{Error, Result};
use crate::hub::{DownloadProgress, DownloadStats, Hub};
use crate::normalize::{NormStats, Normalizer, japanese_share, record_text};
use crate::recipe::{AdapterKind, Recipe, SourceType};

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// How the file is named in the manifest and rejects (path in the repository, or as given).
    pub label: String,
}

/// A recipe's source, fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub source: Source,
    pub inputs: Vec<Input>,
    /// Per file: what the download took.
    pub downloads: Vec<(String, DownloadStats)>,
}

/// Resolves and downloads a hub recipe's files (`revision` overrides the recipe's).
pub fn fetch_hub(
    hub: &Hub,
    recipe: &Recipe,
    revision: Option<&str>,
    progress: &dyn DownloadProgress,
) -> Result<Fetched> {
    let s = &recipe.source;
    if s.kind != SourceType::Hub {
        return Err(Error::Recipe {
            recipe: recipe.name.clone(),
            reason: "not a hub recipe".into(),
        });
    }
    let repo = s.repo.as_deref().expect("checked by the recipe");
    let requested = revision
        .or(s.revision.as_deref())
        .expect("checked by the recipe");
    let rev = hub.resolve(repo, requested, progress)?;
    let files = rev.select(&s.hub_patterns(), !s.files.is_empty())?;
    let mut inputs = Vec::new();
    let mut sources = Vec::new();
    let mut downloads = Vec::new();
    for f in &files {
        let d = hub.download(&rev, f, progress)?;
        sources.push(SourceFile {
            path: f.path.clone(),
            sha256: d.sha256.clone(),
            bytes: std::fs::metadata(&d.local)
                .map(|m| m.len())
                .unwrap_or(f.size),
        });
        downloads.push((f.path.clone(), d.stats.clone()));
        inputs.push(Input {
            path: d.local,
            label: f.path.clone(),
        });
    }
    Ok(Fetched {
        source: Source::Hub {
            repo: repo.to_string(),
            revision: requested.to_string(),
            resolved: rev.sha,
            files: sources,
        },
        inputs,
        downloads,
    })
}

/// Local files as a source (checksummed).
pub fn local_inputs(inputs: Vec<Input>) -> Result<Fetched> {
    let mut files = Vec::new();
    for i in &inputs {
        let (sha256, bytes) = sha256_file(&i.path)?;
        files.push(SourceFile {
            path: i.label.clone(),
            sha256,
            bytes,
        });
    }
    Ok(Fetched {
        source: Source::Local { files },
        inputs,
        downloads: Vec::new(),
    })
}

/// How to run a recipe.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Revision asked for (recorded in the parameters; the fetch already used it).
    pub revision: Option<String>,
    /// Read at most this many input rows.
    pub limit: Option<u64>,
    /// Largest share of rejected rows that still publishes.
    pub max_reject_ratio: f64,
    /// Publish under this name instead of the recipe's `dataset`.
    pub name: Option<String>,
}

/// Progress of the row loop.
pub trait IngestProgress {
    fn rows(&self, _read: u64, _kept: u64) {}
}

impl IngestProgress for () {}

/// The outcome of a run.
#[derive(Debug)]
pub struct IngestReport {
    pub name: String,
    pub read: u64,
    pub ok: u64,
    pub rejected: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<String, u64>,
    pub first_rejects: Vec<Reject>,
    pub reasons: Vec<(String, u64)>,
    pub normalize: NormStats,
    pub dedup: DedupStats,
    /// `against` datasets not in the catalog (cross-dataset dedup skipped for them).
    pub against_missing: Vec<String>,
    pub limited: bool,
    pub published: Option<Manifest>,
    pub max_reject_ratio: f64,
}

struct Pipeline<'a> {
    recipe: &'a Recipe,
    normalizer: Normalizer,
    norm: NormStats,
    dedup: Dedup,
    sink: njp_datasets::io::ParquetSink,
    rejects: RejectSink,
    dropped: BTreeMap<String, u64>,
    ids: HashMap<String, String>,
}

impl Pipeline<'_> {
    fn drop(&mut self, reason: impl Into<String>) {
        *self.dropped.entry(reason.into()).or_default() += 1;
    }

    fn push(
        &mut self,
        mut rec: Record,
        origin: &str,
        loc: (String, Option<u64>, u64),
    ) -> Result<()> {
        self.normalizer.record(&mut rec, &mut self.norm);
        if let Err(e) = rec.validate() {
            let raw = serde_json::to_string(&rec).ok();
            self.rejects
                .push_at(loc.0, loc.1, loc.2, e.to_string(), raw)?;
            return Ok(());
        }
        let text = record_text(&rec);
        let f = &self.recipe.filter;
        if let Some(min) = f.min_japanese {
            let (share, _) = japanese_share(&text);
            if share < min {
                self.drop(format!("japanese share below {min}"));
                return Ok(());
            }
        }
        let chars = text.chars().count();
        if let Some(min) = f.min_chars
            && chars < min
        {
            self.drop(format!("shorter than {min} characters"));
            return Ok(());
        }
        if let Some(max) = f.max_chars
            && chars > max
        {
            self.drop(format!("longer than {max} characters"));
            return Ok(());
        }
        let id = rec.id().to_string();
        if let Some(first) = self.ids.get(&id) {
            let raw = serde_json::to_string(&rec).ok();
            self.rejects.push_at(
                loc.0,
                loc.1,
                loc.2,
                format!("duplicate id `{id}` (first seen at {first})"),
                raw,
            )?;
            return Ok(());
        }
        self.ids.insert(id.clone(), origin.to_string());
        match self.dedup.offer(&id, &text) {
            Verdict::Keep => {}
            Verdict::Exact { .. } => {
                self.drop("duplicate (exact)");
                return Ok(());
            }
            Verdict::Near { .. } => {
                self.drop("duplicate (near)");
                return Ok(());
            }
        }
        self.sink.push(&rec)?;
        Ok(())
    }
}

fn read_options(recipe: &Recipe) -> Result<ReadOptions> {
    let s = &recipe.source;
    let bad = |reason: String| Error::Recipe {
        recipe: recipe.name.clone(),
        reason,
    };
    Ok(ReadOptions {
        format: s
            .format
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?,
        encoding: s.encoding.as_deref().map(encoding_for_label).transpose()?,
        no_header: s.no_header,
    })
}

/// Runs `recipe` over `fetched` and publishes the result (unless too many rows are rejected).
pub fn ingest(
    catalog: &Catalog,
    recipe: &Recipe,
    recipe_text: &str,
    fetched: &Fetched,
    opts: &IngestOptions,
    progress: &dyn IngestProgress,
) -> Result<IngestReport> {
    let name = opts.name.clone().unwrap_or_else(|| recipe.dataset.clone());
    let read_opts = read_options(recipe)?;
    let mapping = Mapping::parse(&recipe.adapter.map).map_err(|reason| Error::Recipe {
        recipe: recipe.name.clone(),
        reason,
    })?;
    // Cross-dataset dedup: rows of the `against` datasets come first.
    let mut dedup = Dedup::new(&recipe.dedup);
    let mut parents = Vec::new();
    let mut against_missing = Vec::new();
    let normalizer = Normalizer::new(recipe.normalize.clone());
    for a in &recipe.dedup.against {
        match catalog.resolve(a) {
            Ok(m) => {
                for r in catalog.records(&m)? {
                    let r = r?;
                    dedup.add_reference(&format!("{}:{}", m.id(), r.id()), &record_text(&r));
                }
                parents.push(Parent {
                    name: m.name.clone(),
                    version: m.version,
                });
            }
            Err(njp_catalog::Error::NotFound { .. }) => {
                tracing::info!(dataset = %a, "dedup `against` dataset not in the catalog; skipped");
                against_missing.push(a.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut staging = catalog.stage(&name)?;
    let sink = staging.sink(recipe.kind)?;
    let mut p = Pipeline {
        recipe,
        normalizer,
        norm: NormStats::default(),
        dedup,
        sink,
        rejects: RejectSink::new(staging.rejects_path()),
        dropped: BTreeMap::new(),
        ids: HashMap::new(),
    };
    let mut forest = (recipe.adapter.kind == AdapterKind::OasstTree).then(OasstForest::default);
    let mut read = 0u64;
    let mut limited = false;
    'files: for input in &fetched.inputs {
        // Cached hub blobs are named by hash: the format comes from the repository path.
        let mut ro = read_opts.clone();
        if ro.format.is_none() {
            ro.format = detect_format(std::path::Path::new(&input.label));
        }
        let rows = open_rows(&input.path, &ro, Arc::new(AtomicU64::new(0)))
            .map_err(|e| relabel(e, input))?;
        let stem = input
            .label
            .rsplit('/')
            .next()
            .unwrap_or(&input.label)
            .split('.')
            .next()
            .unwrap_or("")
            .to_string();
        for row in rows {
            if opts.limit.is_some_and(|l| read >= l) {
                limited = true;
                break 'files;
            }
            let row = row.map_err(|e| relabel(e, input))?;
            read += 1;
            if read.is_multiple_of(4096) {
                progress.rows(read, p.sink.rows());
            }
            // Row numbers are unique per file (a CSV row may span lines): default ids use them.
            let origin = format!("{}:{}", input.label, row.location.row);
            let loc = (input.label.clone(), row.location.line, row.location.row);
            let value = match &row.value {
                Ok(v) => v,
                Err(reason) => {
                    p.rejects
                        .push_at(loc.0, loc.1, loc.2, reason.clone(), row.raw.clone())?;
                    continue;
                }
            };
            match field_filters(&recipe.filter.fields, value) {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    p.drop(reason);
                    continue;
                }
                Err(reason) => {
                    p.rejects
                        .push_at(loc.0, loc.1, loc.2, reason, Some(value.to_string()))?;
                    continue;
                }
            }
            if let Some(forest) = &mut forest {
                if let Err(reason) = forest.add(recipe, &mapping, value, &origin) {
                    p.rejects
                        .push_at(loc.0, loc.1, loc.2, reason, Some(value.to_string()))?;
                }
                continue;
            }
            let ctx = RowCtx {
                id: &origin,
                source: &recipe.name,
                file_stem: &stem,
            };
            match adapt_row(recipe, &mapping, value, &ctx) {
                Ok(Adapted::Records(recs)) => {
                    for r in recs {
                        p.push(r, &origin, loc.clone())?;
                    }
                }
                Ok(Adapted::Dropped(reason)) => p.drop(reason),
                Err(reason) => {
                    p.rejects
                        .push_at(loc.0, loc.1, loc.2, reason, Some(value.to_string()))?;
                }
            }
        }
    }
    let mut extra_stats = serde_json::Map::new();
    if let Some(forest) = &forest {
        let (convs, st) = forest.finish(recipe.adapter.branches.unwrap_or_default(), &recipe.name);
        if st.flagged_removed > 0 {
            *p.dropped
                .entry("oasst: flagged message and its replies".into())
                .or_default() += st.flagged_removed;
        }
        if st.not_followed > 0 {
            *p.dropped
                .entry("oasst: reply not on the chosen path".into())
                .or_default() += st.not_followed;
        }
        if st.orphans > 0 {
            *p.dropped
                .entry("oasst: parent message missing".into())
                .or_default() += st.orphans;
        }
        extra_stats.insert(
            "oasst".into(),
            serde_json::to_value(&st).expect("serializes"),
        );
        for (origin, c) in convs {
            let (file, line) = origin.rsplit_once(':').unwrap_or((origin.as_str(), "0"));
            let n: u64 = line.parse().unwrap_or(0);
            p.push(
                Record::Conversation(c),
                &origin,
                (file.to_string(), Some(n), n),
            )?;
        }
    }
    progress.rows(read, p.sink.rows());
    let ok = p.sink.rows();
    p.sink.finish()?;
    let rejected = p.rejects.count();
    let first_rejects = p.rejects.first().to_vec();
    let reasons = p.rejects.reason_counts();
    p.rejects.finish()?;
    let dedup_stats = p.dedup.stats();
    let mut report = IngestReport {
        name: name.clone(),
        read,
        ok,
        rejected,
        dropped: p.dropped.clone(),
        first_rejects,
        reasons,
        normalize: p.norm.clone(),
        dedup: dedup_stats,
        against_missing,
        limited,
        published: None,
        max_reject_ratio: opts.max_reject_ratio,
    };
    let ratio = if read == 0 {
        0.0
    } else {
        rejected as f64 / read as f64
    };
    if ok == 0 || ratio > opts.max_reject_ratio {
        tracing::info!(read, ok, rejected, "not published");
        return Ok(report);
    }
    let mut draft = Draft::new(recipe.kind, recipe.license.clone(), fetched.source.clone());
    draft.eval_only = recipe.eval_only;
    draft.commercial_use = recipe.commercial_use;
    draft.description = Some(recipe.description.clone());
    draft.rejects = rejected;
    draft.parents = parents;
    draft.parameters = serde_json::json!({
        "command": "ingest",
        "recipe": recipe.name,
        "recipe_toml": recipe_text,
        "revision": opts.revision,
        "limit": opts.limit,
        "limited": limited,
        "max_reject_ratio": opts.max_reject_ratio,
        "layout": recipe.layout,
    });
    draft.stats.insert(
        "ingest".into(),
        serde_json::json!({
            "read": read,
            "ok": ok,
            "rejected": rejected,
            "dropped": report.dropped,
            "reject_reasons": report.reasons.iter().map(|(r, n)| serde_json::json!({"reason": r, "rows": n})).collect::<Vec<_>>(),
            "against_missing": report.against_missing,
        }),
    );
    draft.stats.insert(
        "normalize".into(),
        serde_json::to_value(&report.normalize).expect("serializes"),
    );
    draft.stats.insert(
        "dedup".into(),
        serde_json::to_value(&report.dedup).expect("serializes"),
    );
    if !fetched.downloads.is_empty() {
        draft.stats.insert(
            "download".into(),
            serde_json::Value::Array(
                fetched
                    .downloads
                    .iter()
                    .map(|(f, s)| {
                        serde_json::json!({"file": f, "cached": s.cached, "retries": s.retries, "resumed": s.resumed, "checksum_failures": s.checksum_failures})
                    })
                    .collect(),
            ),
        );
    }
    draft.stats.extend(extra_stats);
    report.published = Some(staging.publish(draft)?);
    Ok(report)
}

/// Read errors name the cached blob; point them at the repository path instead.
fn relabel(e: njp_datasets::read::ReadError, input: &Input) -> Error {
    Error::Other(format!("{} ({}): {e}", input.label, input.path.display()))
}
