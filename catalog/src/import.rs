//! Importing local files as a dataset version (`njp import`).
//!
//! Each row is read ([`njp_datasets::read`]), adapted to the canonical kind
//! ([`njp_datasets::adapt`]), validated ([`njp_datasets::validate`]) and checked for a
//! duplicate id. Rows that fail go to a rejects table (file, line, row, reason, raw text) stored
//! beside the data. When the share of rejects exceeds the allowed ratio nothing is published.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use njp_datasets::adapt::{Mapping, RowDefaults, adapt};
use njp_datasets::read::{ReadOptions, Row, open_rows};
use njp_datasets::{Kind, Record};
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result, io_err};
use crate::manifest::{Draft, Manifest, Source, SourceFile, check_license};
use crate::store::{Catalog, sha256_file};

/// Longest raw row text kept in the rejects table; longer rows are cut with an explicit marker.
pub const REJECT_RAW_MAX: usize = 4096;

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub name: String,
    pub kind: Kind,
    pub license: String,
    pub read: ReadOptions,
    pub mapping: Mapping,
    /// Largest allowed share of rejected rows (0 = none allowed).
    pub max_reject_ratio: f64,
    pub eval_only: bool,
    pub commercial_use: Option<bool>,
    pub description: Option<String>,
    /// How to name the inputs in the manifest and rejects, one per path (empty: the paths).
    pub path_labels: Vec<String>,
}

/// A refused row.
#[derive(Debug, Clone)]
pub struct Reject {
    pub file: String,
    pub line: Option<u64>,
    pub row: u64,
    pub reason: String,
    pub raw: Option<String>,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.reason),
            None => write!(f, "{}: row {}: {}", self.file, self.row, self.reason),
        }
    }
}

/// The outcome of an import.
#[derive(Debug)]
pub struct ImportReport {
    pub read: u64,
    pub ok: u64,
    pub rejected: u64,
    /// The first rejects (at most 20), for the summary.
    pub first_rejects: Vec<Reject>,
    /// Reject counts by reason class (the reason up to its first `:`).
    pub reasons: Vec<(String, u64)>,
    /// `None` when nothing was published (too many rejects, or no valid rows).
    pub published: Option<Manifest>,
    pub max_reject_ratio: f64,
}

/// Progress callbacks (bytes read so far, total bytes).
pub trait ImportProgress {
    fn bytes(&self, done: u64, total: u64);
}

impl ImportProgress for () {
    fn bytes(&self, _: u64, _: u64) {}
}

/// Imports `paths` into a new version of `opts.name`.
pub fn import(
    catalog: &Catalog,
    paths: &[PathBuf],
    opts: &ImportOptions,
    progress: &dyn ImportProgress,
) -> Result<ImportReport> {
    check_license(&opts.license).map_err(|reason| Error::InvalidLicense {
        license: opts.license.clone(),
        reason,
    })?;
    if paths.is_empty() {
        return Err(Error::Other("no input files given".into()));
    }
    let mut staging = catalog.stage(&opts.name)?;
    // Checksums first: this also fails early, before any work, on a missing or unreadable path.
    let mut sources = Vec::new();
    let mut total = 0;
    for (i, p) in paths.iter().enumerate() {
        if !p.exists() {
            return Err(njp_datasets::read::ReadError::Missing { path: p.clone() }.into_catalog());
        }
        if p.is_dir() {
            return Err(njp_datasets::read::ReadError::Directory { path: p.clone() }.into_catalog());
        }
        let (sha256, bytes) = sha256_file(p)?;
        total += bytes;
        let label = opts
            .path_labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| p.display().to_string());
        sources.push(SourceFile {
            path: label,
            sha256,
            bytes,
        });
    }
    let mut sink = staging.sink(opts.kind)?;
    let mut rejects = RejectSink::new(staging.rejects_path());
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut read = 0u64;
    let mut done_before = 0u64;
    for path in paths {
        let counter = Arc::new(AtomicU64::new(0));
        let rows = open_rows(path, &opts.read, counter.clone()).map_err(|e| e.into_catalog())?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, row) in rows.enumerate() {
            let row = row.map_err(|e| e.into_catalog())?;
            read += 1;
            if i % 1024 == 0 {
                progress.bytes(
                    done_before + counter.load(std::sync::atomic::Ordering::Relaxed),
                    total,
                );
            }
            match convert(&row, opts, &file_name) {
                Ok(record) => {
                    let id = record.id().to_string();
                    if let Some(first) = seen.get(&id) {
                        rejects.push(
                            &row,
                            format!("duplicate id `{id}` (first seen at {first})"),
                            None,
                        )?;
                        continue;
                    }
                    seen.insert(id, row.location.to_string());
                    sink.push(&record)?;
                }
                Err((reason, raw)) => rejects.push(&row, reason, raw)?,
            }
        }
        done_before += std::fs::metadata(path).map_err(io_err(path))?.len();
        progress.bytes(done_before, total);
    }
    let ok = sink.rows();
    staging.finish_sink(sink)?;
    let rejected = rejects.count;
    let first_rejects = rejects.first.clone();
    let reasons = rejects.reason_counts();
    rejects.finish()?;
    let ratio = if read == 0 {
        0.0
    } else {
        rejected as f64 / read as f64
    };
    let mut report = ImportReport {
        read,
        ok,
        rejected,
        first_rejects,
        reasons,
        published: None,
        max_reject_ratio: opts.max_reject_ratio,
    };
    if ok == 0 || ratio > opts.max_reject_ratio {
        tracing::info!(read, ok, rejected, "not published");
        return Ok(report); // dropping `staging` removes it
    }
    let mut draft = Draft::new(
        opts.kind,
        opts.license.clone(),
        Source::Local { files: sources },
    );
    draft.eval_only = opts.eval_only;
    draft.commercial_use = opts.commercial_use;
    draft.description = opts.description.clone();
    draft.rejects = rejected;
    draft.parameters = serde_json::json!({
        "command": "import",
        "format": opts.read.format.map(|f| format!("{f:?}").to_lowercase()),
        "encoding": opts.read.encoding.map(|e| e.name()),
        "no_header": opts.read.no_header,
        "map": opts.mapping.fields.iter().map(|(t, s)| format!("{t}={}", s.join(","))).collect::<Vec<_>>(),
        "max_reject_ratio": opts.max_reject_ratio,
    });
    draft.stats.insert(
        "import".into(),
        serde_json::json!({
            "read": read,
            "ok": ok,
            "rejected": rejected,
            "reject_reasons": report.reasons.iter().map(|(r, n)| serde_json::json!({"reason": r, "rows": n})).collect::<Vec<_>>(),
        }),
    );
    report.published = Some(staging.publish(draft)?);
    Ok(report)
}

type RowError = (String, Option<String>);

fn convert(
    row: &Row,
    opts: &ImportOptions,
    file_name: &str,
) -> std::result::Result<Record, RowError> {
    let value = match &row.value {
        Ok(v) => v,
        Err(reason) => return Err((reason.clone(), row.raw.clone())),
    };
    let default_id = format!(
        "{file_name}:{}",
        row.location.line.unwrap_or(row.location.row)
    );
    let defaults = RowDefaults {
        id: &default_id,
        source: file_name,
    };
    let raw = || Some(value.to_string());
    let record =
        adapt(opts.kind, value, &opts.mapping, &defaults).map_err(|reason| (reason, raw()))?;
    record.validate().map_err(|e| (e.to_string(), raw()))?;
    Ok(record)
}

/// Streams rejects into `rejects.parquet` in the staging directory, a batch at a time.
pub struct RejectSink {
    path: PathBuf,
    writer: Option<ArrowWriter<std::fs::File>>,
    count: u64,
    first: Vec<Reject>,
    pending: Vec<Reject>,
    reasons: HashMap<String, u64>,
}

impl RejectSink {
    pub fn new(path: PathBuf) -> Self {
        RejectSink {
            path,
            writer: None,
            count: 0,
            first: Vec::new(),
            pending: Vec::new(),
            reasons: HashMap::new(),
        }
    }

    /// Records a refused input row.
    pub fn push(&mut self, row: &Row, reason: String, raw: Option<String>) -> Result<()> {
        self.push_at(
            row.location.file.display().to_string(),
            row.location.line,
            row.location.row,
            reason,
            raw,
        )
    }

    /// Records a refused row by location.
    pub fn push_at(
        &mut self,
        file: String,
        line: Option<u64>,
        row: u64,
        reason: String,
        raw: Option<String>,
    ) -> Result<()> {
        self.count += 1;
        let class = reason_class(&reason);
        *self.reasons.entry(class).or_default() += 1;
        let raw = raw.map(|r| {
            if r.len() > REJECT_RAW_MAX {
                let mut cut = REJECT_RAW_MAX;
                while !r.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}… [cut: {} of {} bytes kept]", &r[..cut], cut, r.len())
            } else {
                r
            }
        });
        let reject = Reject {
            file,
            line,
            row,
            reason,
            raw,
        };
        if self.first.len() < 20 {
            self.first.push(reject.clone());
        }
        self.pending.push(reject);
        if self.pending.len() >= 4096 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = rejects_batch(&self.pending)?;
        self.pending.clear();
        let path = &self.path;
        let pq =
            |e: parquet::errors::ParquetError| Error::Other(format!("{}: {e}", path.display()));
        if self.writer.is_none() {
            let file = std::fs::File::create(path).map_err(io_err(path))?;
            self.writer = Some(
                ArrowWriter::try_new(
                    file,
                    batch.schema(),
                    Some(njp_datasets::io::writer_properties()),
                )
                .map_err(pq)?,
            );
        }
        self.writer
            .as_mut()
            .expect("created")
            .write(&batch)
            .map_err(pq)
    }

    /// Rows refused so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first rejects (at most 20).
    pub fn first(&self) -> &[Reject] {
        &self.first
    }

    /// Reject counts by reason class, most frequent first.
    pub fn reason_counts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.reasons.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Writes the remaining rejects and closes the file.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            let path = self.path.clone();
            let file = w
                .into_inner()
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Groups similar reasons: numbers become `N`, quoted values `…`, JSON parser details are cut.
fn reason_class(reason: &str) -> String {
    let base = match reason.strip_prefix("invalid JSON: ") {
        Some(detail) => format!(
            "invalid JSON: {}",
            detail.split(" at line ").next().unwrap_or(detail)
        ),
        None => reason.to_string(),
    };
    let mut out = String::new();
    let mut in_quote = false;
    let mut last_digit = false;
    for c in base.chars() {
        if c == '`' {
            if !in_quote {
                out.push_str("`…`");
            }
            in_quote = !in_quote;
            continue;
        }
        if in_quote {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(c);
    }
    out
}

/// The rejects table: `file`, `line`, `row`, `reason`, `raw`.
pub fn rejects_batch(rejects: &[Reject]) -> Result<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, true),
        Field::new("row", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(
            rejects
                .iter()
                .map(|r| Some(r.file.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(rejects.iter().map(|r| r.line).collect::<UInt64Array>()),
        Arc::new(rejects.iter().map(|r| Some(r.row)).collect::<UInt64Array>()),
        Arc::new(
            rejects
                .iter()
                .map(|r| Some(r.reason.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|r| r.raw.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), cols)?)
}

trait IntoCatalog {
    fn into_catalog(self) -> Error;
}

impl IntoCatalog for njp_datasets::read::ReadError {
    fn into_catalog(self) -> Error {
        Error::Read(self)
    }
}
