//! Pre-tokenized datasets: every record rendered once to token ids (and, for conversations, the
//! supervision mask), so training reads ids instead of re-tokenizing text on every run.
//!
//! A tokens dataset is a catalog table (`kind = table`) with one row per record, in the source's
//! order (document boundaries are rows):
//!
//! | column | type | |
//! |---|---|---|
//! | `id` | utf8 | the source record's id |
//! | `ids` | list<uint32> | rendered tokens (documents: `<|bos|>` + text; conversations: the chat template) |
//! | `mask` | list<uint8>, nullable | 1 where the token is a training target (null for documents) |
//!
//! Its `parameters.tokens` say what it was made from (source dataset@version, tokenizer and its
//! fingerprint) and its lineage names the source. Conversations are rendered whole, as the
//! trainer renders them: packers skip (and report) rows too long for the run's context. The trainer accepts
//! it wherever it accepts the source (`--data NAME_tokens`) and refuses it with a different
//! tokenizer. Rows the policy drops are counted in the stats, never silently lost.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ListArray, ListBuilder, StringArray, StringBuilder, UInt8Array, UInt8Builder,
    UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use njp_catalog::{Catalog, DatasetKind, Draft, Manifest, Parent, Source};
use njp_datasets::Record;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Records rendered per batch (and per Parquet write).
const BATCH: usize = 4096;

/// One pre-tokenized record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub ids: Vec<u32>,
    /// `None` for documents (every token is a target).
    pub mask: Option<Vec<u8>>,
}

/// What a record rendered to: a row, or the reason it cannot be one (counted, reported).
pub type Rendered = std::result::Result<TokenRow, String>;

/// The Arrow schema of a tokens dataset.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "ids",
            DataType::List(Arc::new(Field::new("item", DataType::UInt32, true))),
            false,
        ),
        Field::new(
            "mask",
            DataType::List(Arc::new(Field::new("item", DataType::UInt8, true))),
            true,
        ),
    ]))
}

/// How a tokens dataset was made (`parameters.tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensInfo {
    /// `name@version` of the source.
    pub source: String,
    /// `document` or `conversation`.
    pub kind: String,
    /// Where the tokenizer came from (a directory or `byte`).
    pub tokenizer: String,
    /// Content fingerprint of the tokenizer; training refuses a different one.
    pub tokenizer_fingerprint: String,
}

impl TokensInfo {
    /// The `parameters.tokens` of a manifest, if it is a tokens dataset.
    pub fn of(m: &Manifest) -> Option<TokensInfo> {
        serde_json::from_value(m.parameters.get("tokens")?.clone()).ok()
    }
}

/// Counts of a tokenize run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensStats {
    pub rows: u64,
    pub tokens: u64,
    pub supervised: u64,
    /// Records that could not become a training row (e.g. no assistant turn).
    pub dropped: u64,
    /// The first few of them, as `id: reason`.
    pub dropped_examples: Vec<String>,
}

/// Examples of dropped rows kept in the stats.
const DROP_EXAMPLES: usize = 10;

fn batch_of(rows: &[TokenRow]) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut ids = ListBuilder::new(UInt32Builder::new());
    let mut mask = ListBuilder::new(UInt8Builder::new());
    for r in rows {
        id.append_value(&r.id);
        ids.values().append_slice(&r.ids);
        ids.append(true);
        match &r.mask {
            Some(m) => {
                mask.values().append_slice(m);
                mask.append(true);
            }
            None => mask.append(false),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(ids.finish()),
        Arc::new(mask.finish()),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| Error::Dataset(e.to_string()))
}

/// Renders `source` with `render` (in parallel, order kept) and publishes the rows as the
/// tokens dataset `name`. `render` returns `Err(reason)` for a record that cannot be a training
/// row: it is counted in the stats, with the first few ids and reasons.
///
/// # Errors
/// Catalog, Parquet and I/O errors.
pub fn tokenize<F>(
    catalog: &Catalog,
    source: &Manifest,
    name: &str,
    info: TokensInfo,
    render: F,
) -> Result<(Manifest, TokensStats)>
where
    F: Fn(&Record) -> Rendered + Sync,
{
    let mut stage = catalog.stage(name)?;
    let path = stage.next_part_path();
    let perr = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(crate::error::io_err(&path))?;
    let mut w = ArrowWriter::try_new(
        BufWriter::new(file),
        schema(),
        Some(njp_datasets::io::writer_properties()),
    )
    .map_err(perr)?;
    let mut stats = TokensStats::default();
    let mut records = catalog.records(source)?;
    loop {
        let chunk: Vec<Record> = records
            .by_ref()
            .take(BATCH)
            .collect::<std::result::Result<_, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let out: Vec<Rendered> = chunk.par_iter().map(&render).collect();
        let mut rows = Vec::with_capacity(out.len());
        for (i, r) in out.into_iter().enumerate() {
            match r {
                Ok(row) => {
                    stats.tokens += row.ids.len() as u64;
                    stats.supervised += match &row.mask {
                        Some(m) => m.iter().filter(|&&x| x == 1).count() as u64,
                        None => row.ids.len() as u64,
                    };
                    rows.push(row);
                }
                Err(reason) => {
                    stats.dropped += 1;
                    if stats.dropped_examples.len() < DROP_EXAMPLES {
                        stats
                            .dropped_examples
                            .push(format!("{}: {reason}", chunk[i].id()));
                    }
                    tracing::debug!(id = chunk[i].id(), %reason, "record dropped");
                }
            }
        }
        stats.rows += rows.len() as u64;
        if !rows.is_empty() {
            w.write(&batch_of(&rows)?).map_err(perr)?;
        }
    }
    w.close().map_err(perr)?;
    let mut d = Draft::new(
        DatasetKind::Table,
        source.license.clone(),
        Source::Derived {
            how: "njp mix tokenize".into(),
        },
    );
    d.parents = vec![Parent {
        name: source.name.clone(),
        version: source.version,
    }];
    d.commercial_use = source.commercial_use;
    d.description = Some(format!(
        "`{}` rendered to token ids with {} (id, ids, mask)",
        source.id(),
        info.tokenizer
    ));
    d.parameters = serde_json::json!({ "tokens": info });
    d.stats.insert(
        "tokens".into(),
        serde_json::to_value(&stats).expect("stats serialize"),
    );
    let m = stage.publish(d)?;
    Ok((m, stats))
}

/// Reads the rows of one tokens data file from row `offset` on, `BATCH` rows at a time.
pub struct TokenFile {
    path: std::path::PathBuf,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    pending: std::collections::VecDeque<TokenRow>,
}

impl TokenFile {
    /// Opens `path` at row `offset`.
    ///
    /// # Errors
    /// I/O and Parquet errors, or a file without the tokens schema.
    pub fn open(path: &Path, offset: usize) -> Result<Self> {
        let perr = |e: parquet::errors::ParquetError| {
            Error::Dataset(format!("reading {}: {e}", path.display()))
        };
        let file = File::open(path).map_err(crate::error::io_err(path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
        let fields = builder.schema().fields();
        let has = |n: &str| fields.iter().any(|f| f.name() == n);
        if !(has("id") && has("ids") && has("mask")) {
            return Err(Error::Dataset(format!(
                "{}: not a tokens file (columns id, ids, mask expected)",
                path.display()
            )));
        }
        let reader = builder
            .with_offset(offset)
            .with_batch_size(BATCH)
            .build()
            .map_err(perr)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            reader,
            pending: Default::default(),
        })
    }

    /// The next row, or `None` at the end of the file.
    ///
    /// # Errors
    /// Parquet errors or a malformed row (naming the file).
    pub fn next_row(&mut self) -> Result<Option<TokenRow>> {
        if self.pending.is_empty() {
            let Some(batch) = self.reader.next() else {
                return Ok(None);
            };
            let batch =
                batch.map_err(|e| Error::Dataset(format!("{}: {e}", self.path.display())))?;
            self.pending = rows_of(&batch)
                .map_err(|e| Error::Dataset(format!("{}: {e}", self.path.display())))?
                .into();
        }
        Ok(self.pending.pop_front())
    }
}

fn rows_of(batch: &RecordBatch) -> std::result::Result<Vec<TokenRow>, String> {
    let col = |n: &str| batch.column_by_name(n).ok_or(format!("no `{n}` column"));
    let id = col("id")?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("`id` is not utf8")?;
    let ids = col("ids")?
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or("`ids` is not a list")?;
    let mask = col("mask")?
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or("`mask` is not a list")?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let v = ids.value(r);
        let v = v
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or("`ids` items are not uint32")?;
        let m = if mask.is_null(r) {
            None
        } else {
            let m = mask.value(r);
            let m = m
                .as_any()
                .downcast_ref::<UInt8Array>()
                .ok_or("`mask` items are not uint8")?;
            if m.len() != v.len() {
                return Err(format!(
                    "row {r} (`{}`): {} mask values for {} tokens",
                    id.value(r),
                    m.len(),
                    v.len()
                ));
            }
            Some(m.values().to_vec())
        };
        out.push(TokenRow {
            id: id.value(r).to_string(),
            ids: v.values().to_vec(),
            mask: m,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let rows: Vec<TokenRow> = (0..10_000u32)
            .map(|i| TokenRow {
                id: format!("r{i}"),
                ids: (0..(i % 7 + 1)).map(|j| i * 10 + j).collect(),
                mask: (i % 3 != 0).then(|| (0..(i % 7 + 1)).map(|j| (j % 2) as u8).collect()),
            })
            .collect();
        let file = File::create(&path).unwrap();
        let mut w = ArrowWriter::try_new(file, schema(), None).unwrap();
        for c in rows.chunks(3000) {
            w.write(&batch_of(c).unwrap()).unwrap();
        }
        w.close().unwrap();
        for offset in [0usize, 1, 4095, 4096, 9999, 10_000] {
            let mut f = TokenFile::open(&path, offset).unwrap();
            let mut got = Vec::new();
            while let Some(r) = f.next_row().unwrap() {
                got.push(r);
            }
            assert_eq!(got, rows[offset..], "offset {offset}");
        }
    }

    #[test]
    fn a_file_of_another_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["a"])) as ArrayRef],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = TokenFile::open(&path, 0).err().unwrap().to_string();
        assert!(err.contains("not a tokens file"), "{err}");
    }
}
