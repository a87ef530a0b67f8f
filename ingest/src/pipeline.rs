//! `njp ingest`: a recipe's source files → filtered, normalized, deduplicated records →
//! a published catalog dataset with provenance.
//!
//! Per input row: raw-field filters → adapter → normalization → validation → Japanese-share and
//! length filters → duplicate id check → exact and near dedup → the Parquet sink. Rows that
//! cannot be read, adapted or validated are **rejects** (stored in the rejects table with file,
//! line, row, reason and raw text); rows that are valid but filtered out or duplicates are
//! **drops**, counted by reason in the manifest's stats. Nothing disappears without a count.
//!
//! Parallelism: a reader thread cuts the input into batches of raw rows; the row-local steps
//! (JSON parsing — a typed parse for ShareGPT/OpenAI rows, the `Value` route otherwise —, raw
//! filters, adapter, normalization, validation, text filters, dedup fingerprints) run on the
//! rayon pool; the order-dependent steps (rejects, drop counts, id uniqueness, dedup decisions)
//! run in input order on the calling thread, which also fills the Parquet sink (its row groups
//! are encoded and compressed on the pool). The output (data, rejects, manifest stats) is
//! byte-identical whatever the number of threads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{SyncSender, sync_channel};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::Value;

use njp_catalog::import::{Reject, RejectSink};
use njp_catalog::manifest::{Draft, Manifest, Source, SourceFile};
use njp_catalog::store::sha256_file;
use njp_catalog::{Catalog, Parent};
use njp_datasets::Record;
use njp_datasets::adapt::Mapping;
use njp_datasets::read::{RawBody, ReadOptions, detect_format, encoding_for_label, open_raw_rows};

use crate::adapters::{
    Adapted, OasstForest, RowCtx, adapt_line, adapt_row, field_filters, line_fast_path,
};
use crate::dedup::{Dedup, DedupStats, Fingerprint, Verdict};
use crate::error::{Error, Result};
use crate::hub::{DownloadProgress, DownloadStats, Hub};
use crate::normalize::{NormStats, Normalizer, japanese_share};
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

/// Local files as a source. [`ingest`] computes their SHA-256 beside the pipeline (hashing
/// 1 GB takes seconds that need not come before the first row); this only checks they exist.
pub fn local_inputs(inputs: Vec<Input>) -> Result<Fetched> {
    let mut files = Vec::new();
    for i in &inputs {
        let bytes = std::fs::metadata(&i.path)
            .map_err(|source| Error::Io {
                path: i.path.clone(),
                source,
            })?
            .len();
        files.push(SourceFile {
            path: i.label.clone(),
            sha256: String::new(),
            bytes,
        });
    }
    Ok(Fetched {
        source: Source::Local { files },
        inputs,
        downloads: Vec::new(),
    })
}

/// The source files' (SHA-256, bytes), being computed on their own thread.
type Hashing = std::thread::JoinHandle<Result<Vec<(String, u64)>>>;

/// Hashes local source files on their own thread (hub files were verified on download);
/// [`with_checksums`] puts the results in place.
fn spawn_hashing(fetched: &Fetched) -> Option<Hashing> {
    if !matches!(fetched.source, Source::Local { .. }) {
        return None;
    }
    let paths: Vec<PathBuf> = fetched.inputs.iter().map(|i| i.path.clone()).collect();
    Some(std::thread::spawn(move || {
        paths
            .iter()
            .map(|p| sha256_file(p).map_err(Error::from))
            .collect()
    }))
}

/// The fetched source with the checksums computed beside the pipeline filled in.
fn with_checksums(fetched: &Fetched, hashing: Option<Hashing>) -> Result<Source> {
    let mut source = fetched.source.clone();
    let Some(handle) = hashing else {
        return Ok(source);
    };
    let sums = handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    if let Source::Local { files } = &mut source {
        for (file, (sha256, bytes)) in files.iter_mut().zip(sums) {
            file.sha256 = sha256;
            file.bytes = bytes;
        }
    }
    Ok(source)
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

/// Rows the reader hands to the workers at a time per pool thread (512 on two threads): small
/// batches keep the stages flowing and in the cache, and each thread still gets eight tasks
/// of a batch.
const BATCH_ROWS_PER_THREAD: usize = 256;
/// Rows per parallel task within a batch.
const TASK_ROWS: usize = 32;
/// Batches in flight between two stages. Few and small on purpose: a batch (a few hundred KB
/// of text and its records) then is still in the cache when the next stage takes it; the
/// former 1,024-row batches, 8 per channel and 4 row groups encoding cost 8–10 % more time
/// and 25 MB more memory (A/B, `bench/RESULTS.md`).
const IN_FLIGHT: usize = 2;

/// A row on its way from the reader to the workers.
struct ReadRow {
    at: At,
    body: RawBody,
}

/// Where a row is: input file (index), line and row.
#[derive(Debug, Clone, Copy)]
struct At {
    file: usize,
    line: Option<u64>,
    row: u64,
}

/// What the row-local (parallel) stage made of a row.
enum Outcome {
    Reject {
        reason: String,
        raw: Option<String>,
    },
    Drop(String),
    /// An `oasst_tree` message row: added to the forest in input order.
    Oasst(Value),
    Records(Vec<Checked>),
}

/// A record after normalization, validation and the text filters: what is left to do (id
/// uniqueness, dedup, writing) depends on the rows before it and runs in input order.
enum Checked {
    Invalid { reason: String, raw: Option<String> },
    Dropped(String),
    Valid { rec: Record, fp: Fingerprint },
}

/// Where a kept record's id was first seen (for duplicate-id rejects).
enum Origin {
    Row { file: usize, row: u64 },
    Named(String),
}

/// The row-local work: parse, filter raw fields, adapt, normalize, validate, text filters,
/// dedup fingerprints. Pure (no state carried between rows), so rows run in parallel and the
/// result does not depend on the number of threads.
struct Stage<'a> {
    recipe: &'a Recipe,
    mapping: &'a Mapping,
    normalizer: &'a Normalizer,
    /// Only for [`Dedup::fingerprint`] (same settings as the pipeline's index).
    fingerprints: &'a Dedup,
    inputs: &'a [Input],
    stems: &'a [String],
    fast: bool,
    oasst: bool,
}

impl Stage<'_> {
    fn row(&self, r: ReadRow, st: &mut NormStats) -> Outcome {
        let input = &self.inputs[r.at.file];
        // Row numbers are unique per file (a CSV row may span lines): default ids use them.
        let origin = format!("{}:{}", input.label, r.at.row);
        let ctx = RowCtx {
            id: &origin,
            source: &self.recipe.name,
            file_stem: &self.stems[r.at.file],
        };
        let (value, raw) = match r.body {
            RawBody::Text(text) => {
                if self.fast
                    && let Some(rec) = adapt_line(&text, &ctx)
                {
                    return Outcome::Records(vec![self.check(rec, st)]);
                }
                RawBody::Text(text).parse()
            }
            body => body.parse(),
        };
        let value = match value {
            Ok(v) => v,
            Err(reason) => return Outcome::Reject { reason, raw },
        };
        match field_filters(&self.recipe.filter.fields, &value) {
            Ok(None) => {}
            Ok(Some(reason)) => return Outcome::Drop(reason),
            Err(reason) => {
                return Outcome::Reject {
                    reason,
                    raw: Some(value.to_string()),
                };
            }
        }
        if self.oasst {
            return Outcome::Oasst(value);
        }
        match adapt_row(self.recipe, self.mapping, &value, &ctx) {
            Ok(Adapted::Records(recs)) => {
                Outcome::Records(recs.into_iter().map(|r| self.check(r, st)).collect())
            }
            Ok(Adapted::Dropped(reason)) => Outcome::Drop(reason),
            Err(reason) => Outcome::Reject {
                reason,
                raw: Some(value.to_string()),
            },
        }
    }

    fn check(&self, mut rec: Record, st: &mut NormStats) -> Checked {
        self.normalizer.record(&mut rec, st);
        if let Err(e) = rec.validate() {
            return Checked::Invalid {
                reason: e.to_string(),
                raw: serde_json::to_string(&rec).ok(),
            };
        }
        let f = &self.recipe.filter;
        let needs_text = f.min_japanese.is_some()
            || f.min_chars.is_some()
            || f.max_chars.is_some()
            || self.fingerprints.enabled();
        if !needs_text {
            return Checked::Valid {
                rec,
                fp: Fingerprint::default(),
            };
        }
        let text = rec.text();
        if let Some(min) = f.min_japanese {
            let (share, _) = japanese_share(&text);
            if share < min {
                return Checked::Dropped(format!("japanese share below {min}"));
            }
        }
        if f.min_chars.is_some() || f.max_chars.is_some() {
            let chars = text.chars().count();
            if let Some(min) = f.min_chars
                && chars < min
            {
                return Checked::Dropped(format!("shorter than {min} characters"));
            }
            if let Some(max) = f.max_chars
                && chars > max
            {
                return Checked::Dropped(format!("longer than {max} characters"));
            }
        }
        let fp = self.fingerprints.fingerprint(&text);
        Checked::Valid { rec, fp }
    }

    /// A batch of rows, in parallel; the outcomes come back in input order.
    fn batch(&self, rows: Vec<ReadRow>) -> Vec<(At, Outcome, NormStats)> {
        rows.into_par_iter()
            .with_min_len(TASK_ROWS)
            .map(|r| {
                let at = r.at;
                let mut st = NormStats::default();
                let outcome = self.row(r, &mut st);
                (at, outcome, st)
            })
            .collect()
    }
}

/// The in-order part: rejects, drops, id uniqueness and dedup. Kept records collect in `kept`
/// for the Parquet writer.
struct Pipeline {
    norm: NormStats,
    dedup: Dedup,
    kept: Vec<Record>,
    ok: u64,
    rejects: RejectSink,
    dropped: BTreeMap<String, u64>,
    ids: FxHashMap<String, Origin>,
}

impl Pipeline {
    fn drop(&mut self, reason: impl Into<String>) {
        *self.dropped.entry(reason.into()).or_default() += 1;
    }

    /// Takes a checked record located at `loc` (file label, line, row).
    fn commit(
        &mut self,
        inputs: &[Input],
        loc: (&str, Option<u64>, u64),
        origin: Origin,
        checked: Checked,
    ) -> Result<()> {
        let (rec, fp) = match checked {
            Checked::Invalid { reason, raw } => {
                return self
                    .rejects
                    .push_at(loc.0.to_string(), loc.1, loc.2, reason, raw)
                    .map_err(Into::into);
            }
            Checked::Dropped(reason) => {
                self.drop(reason);
                return Ok(());
            }
            Checked::Valid { rec, fp } => (rec, fp),
        };
        let id = rec.id();
        if let Some(first) = self.ids.get(id) {
            let first = match first {
                Origin::Row { file, row } => format!("{}:{row}", inputs[*file].label),
                Origin::Named(s) => s.clone(),
            };
            let raw = serde_json::to_string(&rec).ok();
            self.rejects.push_at(
                loc.0.to_string(),
                loc.1,
                loc.2,
                format!("duplicate id `{id}` (first seen at {first})"),
                raw,
            )?;
            return Ok(());
        }
        self.ids.insert(id.to_string(), origin);
        match self.dedup.offer_fingerprint(id, fp) {
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
        self.ok += 1;
        self.kept.push(rec);
        Ok(())
    }
}

/// The reader stage: rows of every input in order, in batches. Returns whether `limit` cut
/// the input short. Stops quietly when the next stage has gone (it failed).
fn read_inputs(
    inputs: &[Input],
    read_opts: &ReadOptions,
    limit: Option<u64>,
    tx: SyncSender<Vec<ReadRow>>,
) -> Result<bool> {
    let mut read = 0u64;
    let batch_rows = (BATCH_ROWS_PER_THREAD * rayon::current_num_threads()).clamp(512, 8192);
    let mut batch = Vec::with_capacity(batch_rows);
    for (file, input) in inputs.iter().enumerate() {
        // Cached hub blobs are named by hash: the format comes from the repository path.
        let mut ro = read_opts.clone();
        if ro.format.is_none() {
            ro.format = detect_format(std::path::Path::new(&input.label));
        }
        let rows = open_raw_rows(&input.path, &ro, Arc::new(AtomicU64::new(0)))
            .map_err(|e| relabel(e, input))?;
        for row in rows {
            if limit.is_some_and(|l| read >= l) {
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                return Ok(true);
            }
            let row = row.map_err(|e| relabel(e, input))?;
            read += 1;
            batch.push(ReadRow {
                at: At {
                    file,
                    line: row.line,
                    row: row.row,
                },
                body: row.body,
            });
            if batch.len() >= batch_rows
                && tx
                    .send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(batch_rows),
                    ))
                    .is_err()
            {
                return Ok(false);
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    Ok(false)
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
    let hashing = spawn_hashing(fetched);
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
                    dedup.add_reference(&format!("{}:{}", m.id(), r.id()), &r.text());
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
    let mut sink = staging.sink(recipe.kind)?;
    let mut p = Pipeline {
        norm: NormStats::default(),
        dedup,
        kept: Vec::new(),
        ok: 0,
        rejects: RejectSink::new(staging.rejects_path()),
        dropped: BTreeMap::new(),
        ids: FxHashMap::default(),
    };
    let inputs = &fetched.inputs;
    let stems: Vec<String> = inputs
        .iter()
        .map(|input| {
            input
                .label
                .rsplit('/')
                .next()
                .unwrap_or(&input.label)
                .split('.')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let oasst = recipe.adapter.kind == AdapterKind::OasstTree;
    let fingerprints = Dedup::new(&recipe.dedup);
    let stage = Stage {
        recipe,
        mapping: &mapping,
        normalizer: &normalizer,
        fingerprints: &fingerprints,
        inputs,
        stems: &stems,
        fast: line_fast_path(recipe, &mapping),
        oasst,
    };
    let mut forest = oasst.then(OasstForest::default);
    let mut read = 0u64;
    // Three stages: the reader (one thread), the row-local work (rayon, batch by batch) and the
    // in-order part here, which also fills the Parquet sink (whose row groups are encoded on
    // the pool). Batches keep their order through the channels, and rayon's indexed collect
    // keeps the order within a batch.
    let (raw_tx, raw_rx) = sync_channel::<Vec<ReadRow>>(IN_FLIGHT);
    let (done_tx, done_rx) = sync_channel(IN_FLIGHT);
    let limited = std::thread::scope(|s| -> Result<bool> {
        let reader = s.spawn(|| read_inputs(inputs, &read_opts, opts.limit, raw_tx));
        let stage = &stage;
        let worker = s.spawn(move || {
            for batch in raw_rx {
                if done_tx.send(stage.batch(batch)).is_err() {
                    break;
                }
            }
        });
        let mut in_order = || -> Result<()> {
            for batch in &done_rx {
                for (at, outcome, st) in batch {
                    read += 1;
                    if read.is_multiple_of(4096) {
                        progress.rows(read, p.ok);
                    }
                    p.norm.add(&st);
                    let label = inputs[at.file].label.as_str();
                    match outcome {
                        Outcome::Reject { reason, raw } => {
                            p.rejects
                                .push_at(label.to_string(), at.line, at.row, reason, raw)?;
                        }
                        Outcome::Drop(reason) => p.drop(reason),
                        Outcome::Oasst(value) => {
                            let forest = forest.as_mut().expect("oasst recipe");
                            let origin = format!("{label}:{}", at.row);
                            if let Err(reason) = forest.add(recipe, &mapping, &value, &origin) {
                                p.rejects.push_at(
                                    label.to_string(),
                                    at.line,
                                    at.row,
                                    reason,
                                    Some(value.to_string()),
                                )?;
                            }
                        }
                        Outcome::Records(checked) => {
                            for c in checked {
                                let origin = Origin::Row {
                                    file: at.file,
                                    row: at.row,
                                };
                                p.commit(inputs, (label, at.line, at.row), origin, c)?;
                            }
                        }
                    }
                }
                // Kept records go into the sink (Arrow building; their row groups are encoded
                // on the pool), then are freed on the pool. A writer thread of its own measured
                // the same: one thread fewer.
                for rec in &p.kept {
                    sink.push(rec)?;
                }
                let kept = std::mem::take(&mut p.kept);
                rayon::spawn(move || drop(kept));
            }
            Ok(())
        };
        let done = in_order();
        // On an error here the other stages see their channel closed and stop.
        drop(done_rx);
        let worked = worker.join();
        let limited = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Err(panic) = worked {
            std::panic::resume_unwind(panic);
        }
        done?;
        limited
    })?;
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
        let checked: Vec<(String, Checked, NormStats)> = convs
            .into_par_iter()
            .with_min_len(TASK_ROWS)
            .map(|(origin, c)| {
                let mut st = NormStats::default();
                let checked = stage.check(Record::Conversation(c), &mut st);
                (origin, checked, st)
            })
            .collect();
        for (origin, c, st) in checked {
            p.norm.add(&st);
            let (file, line) = origin.rsplit_once(':').unwrap_or((origin.as_str(), "0"));
            let n: u64 = line.parse().unwrap_or(0);
            let file = file.to_string();
            p.commit(
                inputs,
                (&file, Some(n), n),
                Origin::Named(origin.clone()),
                c,
            )?;
        }
    }
    for rec in std::mem::take(&mut p.kept) {
        sink.push(&rec)?;
    }
    progress.rows(read, p.ok);
    let ok = staging.finish_sink(sink)?;
    debug_assert_eq!(ok, p.ok);
    // One string per kept row: freed on the pool while the rest is published.
    let ids = std::mem::take(&mut p.ids);
    rayon::spawn(move || drop(ids));
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
    let source = with_checksums(fetched, hashing)?;
    let mut draft = Draft::new(recipe.kind, recipe.license.clone(), source);
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
