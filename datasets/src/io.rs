//! Streaming Parquet (zstd) and JSONL I/O of canonical records.
//!
//! Nothing here holds a whole dataset in memory: writers flush a batch every
//! [`BATCH_ROWS`] rows or [`BATCH_BYTES`] bytes of text, readers yield one batch at a time.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::records::{Kind, Record};
use crate::schema::{self, BatchBuilder, SchemaError};

/// Rows per written batch.
pub const BATCH_ROWS: usize = 4096;
/// Text bytes per written batch (keeps memory flat when rows are tens of MB long).
pub const BATCH_BYTES: usize = 64 << 20;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 16 * 1024;

/// An I/O error with the file it happened on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Schema { path: PathBuf, source: SchemaError },
    #[error("{path}: line {line}: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

impl IoError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
        move |source| IoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn parquet(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> IoError + '_ {
        move |source| IoError::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The writer properties every dataset file uses: zstd(3), row groups of [`ROW_GROUP_ROWS`].
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Writes records of one kind to a Parquet file, batch by batch.
pub struct ParquetSink {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    builder: BatchBuilder,
    rows: u64,
}

impl ParquetSink {
    pub fn create(path: &Path, kind: Kind) -> Result<Self, IoError> {
        let file = File::create(path).map_err(IoError::io(path))?;
        let writer = ArrowWriter::try_new(
            BufWriter::new(file),
            schema::schema(kind),
            Some(writer_properties()),
        )
        .map_err(IoError::parquet(path))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            writer,
            builder: BatchBuilder::new(kind),
            rows: 0,
        })
    }

    pub fn push(&mut self, record: &Record) -> Result<(), IoError> {
        self.builder.push(record);
        self.rows += 1;
        if self.builder.len() >= BATCH_ROWS || self.builder.bytes() >= BATCH_BYTES {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Writes an already-built batch of this sink's kind.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        self.flush_batch()?;
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .map_err(IoError::parquet(&self.path))
    }

    fn flush_batch(&mut self) -> Result<(), IoError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish();
        self.writer
            .write(&batch)
            .map_err(IoError::parquet(&self.path))?;
        // Keep row groups bounded in bytes too: a row group is buffered in memory until flushed.
        if self.writer.in_progress_size() >= BATCH_BYTES {
            self.writer.flush().map_err(IoError::parquet(&self.path))?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the file and fsyncs it. Returns the number of rows written.
    pub fn finish(mut self) -> Result<u64, IoError> {
        self.flush_batch()?;
        let inner = self
            .writer
            .into_inner()
            .map_err(IoError::parquet(&self.path))?;
        let file = inner.into_inner().map_err(|e| IoError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(IoError::io(&self.path))?;
        Ok(self.rows)
    }
}

/// Streams the records of a Parquet file of one kind.
pub struct ParquetRecords {
    path: PathBuf,
    kind: Kind,
    reader: ParquetRecordBatchReader,
    pending: std::vec::IntoIter<Record>,
}

impl ParquetRecords {
    pub fn open(path: &Path, kind: Kind) -> Result<Self, IoError> {
        let file = File::open(path).map_err(IoError::io(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(IoError::parquet(path))?
            .with_batch_size(1024)
            .build()
            .map_err(IoError::parquet(path))?;
        Ok(ParquetRecords {
            path: path.to_path_buf(),
            kind,
            reader,
            pending: Vec::new().into_iter(),
        })
    }

    /// Total rows according to the file footer.
    pub fn num_rows(path: &Path) -> Result<u64, IoError> {
        let file = File::open(path).map_err(IoError::io(path))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(IoError::parquet(path))?;
        Ok(builder.metadata().file_metadata().num_rows() as u64)
    }
}

impl Iterator for ParquetRecords {
    type Item = Result<Record, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.next() {
                return Some(Ok(r));
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => {
                    return Some(Err(IoError::Parquet {
                        path: self.path.clone(),
                        source: e.into(),
                    }));
                }
            };
            match schema::from_batch(&batch, self.kind) {
                Ok(records) => self.pending = records.into_iter(),
                Err(source) => {
                    return Some(Err(IoError::Schema {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
        }
    }
}

/// Writes records as canonical JSON, one per line.
pub fn write_jsonl<'a, W: Write>(
    mut out: W,
    records: impl IntoIterator<Item = &'a Record>,
) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads canonical JSONL records of one kind (the inverse of [`write_jsonl`]). For arbitrary
/// upstream shapes use the importer, which adapts and validates.
pub fn read_jsonl(
    path: &Path,
    kind: Kind,
) -> Result<impl Iterator<Item = Result<Record, IoError>>, IoError> {
    let file = File::open(path).map_err(IoError::io(path))?;
    let path = path.to_path_buf();
    let lines = BufReader::new(file).lines().enumerate();
    Ok(lines.filter_map(move |(i, line)| {
        let line = match line {
            Ok(l) => l,
            Err(source) => {
                return Some(Err(IoError::Io {
                    path: path.clone(),
                    source,
                }));
            }
        };
        if line.trim().is_empty() {
            return None;
        }
        let parsed = match kind {
            Kind::Document => serde_json::from_str(&line).map(Record::Document),
            Kind::Conversation => serde_json::from_str(&line).map(Record::Conversation),
            Kind::MultipleChoice => serde_json::from_str(&line).map(Record::MultipleChoice),
            Kind::Math => serde_json::from_str(&line).map(Record::Math),
        };
        Some(parsed.map_err(|source| IoError::Json {
            path: path.clone(),
            line: i + 1,
            source,
        }))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Document;

    #[test]
    fn parquet_round_trip_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let mut sink = ParquetSink::create(&path, Kind::Document).unwrap();
        let docs: Vec<Record> = (0..10_000)
            .map(|i| {
                Record::Document(Document {
                    id: i.to_string(),
                    text: format!("文書{i}"),
                    source: String::new(),
                    meta: None,
                })
            })
            .collect();
        for d in &docs {
            sink.push(d).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), 10_000);
        assert_eq!(ParquetRecords::num_rows(&path).unwrap(), 10_000);
        let back: Vec<Record> = ParquetRecords::open(&path, Kind::Document)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, docs);
    }

    #[test]
    fn truncated_parquet_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let mut sink = ParquetSink::create(&path, Kind::Document).unwrap();
        sink.push(&Record::Document(Document {
            id: "1".into(),
            text: "x".into(),
            source: String::new(),
            meta: None,
        }))
        .unwrap();
        sink.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = ParquetRecords::open(&path, Kind::Document).err().unwrap();
        assert!(err.to_string().contains("d.parquet"), "{err}");
    }
}
