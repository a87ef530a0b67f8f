//! Streaming Parquet (zstd by default, see [`Codec`]) and JSONL I/O of canonical records.
//!
//! Nothing here holds a whole dataset in memory: writers flush a batch every
//! [`BATCH_ROWS`] rows or [`BATCH_BYTES`] bytes of text, readers yield one batch at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

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

/// The compression of the Parquet files datasets are written in.
///
/// `zstd` (level 3, the default) makes the smallest files; `snappy` (what pyarrow and Hugging
/// Face `datasets` write by default) costs less CPU per byte for files about twice the size;
/// `none` writes plain pages. Readers need no setting: the codec is recorded in each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level from 1 to 22.
    Zstd(i32),
    Snappy,
    Uncompressed,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Zstd(3)
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    /// `zstd`, `zstd:<level 1–22>`, `snappy` or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown compression `{s}`: expected zstd, zstd:<1-22>, snappy or none (uncompressed)"
            )
        };
        match s {
            "zstd" => Ok(Codec::default()),
            "snappy" => Ok(Codec::Snappy),
            "none" | "uncompressed" => Ok(Codec::Uncompressed),
            _ => {
                let level: i32 = s
                    .strip_prefix("zstd:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (1..=22).contains(&level) {
                    Ok(Codec::Zstd(level))
                } else {
                    Err(format!("zstd level {level} out of range 1-22"))
                }
            }
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Zstd(level) => write!(f, "zstd:{level}"),
            Codec::Snappy => f.write_str("snappy"),
            Codec::Uncompressed => f.write_str("none"),
        }
    }
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).expect("level checked on parse"))
            }
            Codec::Snappy => Compression::SNAPPY,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        }
    }
}

/// The process's codec, chosen once by the program (the CLI's `--compression`).
static CODEC: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();

/// Sets the codec of every dataset file this process writes from now on. The first call wins:
/// returns false (and changes nothing) when another codec was already set.
pub fn set_codec(codec: Codec) -> bool {
    *CODEC.get_or_init(|| codec) == codec
}

/// The codec dataset files are written with: the one set with [`set_codec`], else zstd:3.
pub fn codec() -> Codec {
    CODEC.get().copied().unwrap_or_default()
}

/// The writer properties every dataset file uses: [`codec`], row groups of [`ROW_GROUP_ROWS`].
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(codec().compression())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// The writer properties of a dataset file of `kind`: [`writer_properties`], with its free-text
/// columns (ids, texts, message parts, meta, questions, choices, solutions) written plain,
/// without statistics. Their values are nearly all distinct: a dictionary only costs a hash and
/// a compare per value until it overflows and the writer falls back to plain pages, and min/max
/// statistics of prose prune nothing. Short repeated columns (`source`, `role`, part `kind`,
/// `subject`, the math `answer`) keep their dictionaries.
pub fn dataset_writer_properties(kind: Kind) -> WriterProperties {
    let mut b = writer_properties().into_builder();
    let leaves = ArrowSchemaConverter::new()
        .convert(&schema::schema(kind))
        .expect("the canonical schemas convert to Parquet");
    for leaf in leaves.columns() {
        let path = leaf.path().parts();
        let (first, last) = (path[0].as_str(), path[path.len() - 1].as_str());
        if first == "id" {
            b = b.set_column_dictionary_enabled(leaf.path().clone(), false);
        } else if matches!(last, "text" | "meta" | "question" | "solution") || first == "choices" {
            b = b
                .set_column_dictionary_enabled(leaf.path().clone(), false)
                .set_column_statistics_enabled(leaf.path().clone(), EnabledStatistics::None);
        }
    }
    b.build()
}

/// Row groups being encoded at once (beyond the one being filled), per sink: two on a small
/// machine (more only holds more memory, ≈ 10 MB of text each before encoding; 4, together
/// with ingest's deeper queues, cost ≈ 4 % more time and 20 MB on two cores), a quarter of
/// the pool's threads on a large one.
fn row_groups_in_flight() -> usize {
    (rayon::current_num_threads() / 4).max(2)
}

/// Writes records of one kind to a Parquet file, batch by batch.
///
/// Row groups are encoded and compressed on the rayon pool while the next one fills (zstd is
/// most of a writer's work), and appended to the file in order: the file is byte-identical
/// whatever the thread count. Called from inside the rayon pool, a sink encodes inline. A
/// thread that the pool's workers wait on (a producer feeding a parallel stage through a
/// channel) must not write a sink while those workers are blocked: the encoding jobs would have
/// no worker to run on.
pub struct ParquetSink {
    path: PathBuf,
    writer: SerializedFileWriter<BufWriter<HashingWriter<File>>>,
    factory: Arc<ArrowRowGroupWriterFactory>,
    schema: SchemaRef,
    builder: BatchBuilder,
    /// The row group being filled: its batches, rows and text bytes.
    group: Vec<RecordBatch>,
    group_rows: usize,
    group_bytes: usize,
    /// Row groups handed out for encoding (in file order) and the next row group's index.
    pending: VecDeque<Receiver<EncodedGroup>>,
    next_group: usize,
    rows: u64,
    /// A `sync_data` of what was written so far, running on a thread of its own.
    syncing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

type EncodedGroup = std::thread::Result<parquet::errors::Result<Vec<ArrowColumnChunk>>>;

impl ParquetSink {
    pub fn create(path: &Path, kind: Kind) -> Result<Self, IoError> {
        let file = File::create(path).map_err(IoError::io(path))?;
        let schema = schema::schema(kind);
        // ArrowWriter writes the Arrow schema into the footer metadata; its serialized writer
        // and row-group factory then let row groups be encoded elsewhere.
        let (writer, factory) = ArrowWriter::try_new(
            BufWriter::new(HashingWriter::new(file)),
            schema.clone(),
            Some(dataset_writer_properties(kind)),
        )
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(IoError::parquet(path))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            writer,
            factory: Arc::new(factory),
            schema,
            builder: BatchBuilder::new(kind),
            group: Vec::new(),
            group_rows: 0,
            group_bytes: 0,
            pending: VecDeque::new(),
            next_group: 0,
            rows: 0,
            syncing: None,
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
        let bytes = batch.get_array_memory_size();
        self.add_to_group(batch.clone(), bytes)
    }

    fn flush_batch(&mut self) -> Result<(), IoError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let bytes = self.builder.bytes();
        let batch = self.builder.finish();
        self.add_to_group(batch, bytes)
    }

    /// Adds a batch to the row group being filled; a group is closed at [`ROW_GROUP_ROWS`] rows
    /// (a batch is split at the boundary) or [`BATCH_BYTES`] bytes of text (memory stays flat
    /// when rows are long).
    fn add_to_group(&mut self, mut batch: RecordBatch, bytes: usize) -> Result<(), IoError> {
        while batch.num_rows() > 0 {
            let room = ROW_GROUP_ROWS - self.group_rows;
            let n = batch.num_rows();
            let (head, rest) = if n > room {
                (batch.slice(0, room), batch.slice(room, n - room))
            } else {
                (batch, RecordBatch::new_empty(self.schema.clone()))
            };
            self.group_rows += head.num_rows();
            self.group_bytes += bytes * head.num_rows() / n.max(1);
            self.group.push(head);
            if self.group_rows >= ROW_GROUP_ROWS || self.group_bytes >= BATCH_BYTES {
                self.close_group()?;
            }
            batch = rest;
        }
        Ok(())
    }

    /// Hands the filled row group to the pool (or encodes it here inside the pool).
    fn close_group(&mut self) -> Result<(), IoError> {
        if self.group.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.group);
        self.group_rows = 0;
        self.group_bytes = 0;
        let writers = self
            .factory
            .create_column_writers(self.next_group)
            .map_err(IoError::parquet(&self.path))?;
        self.next_group += 1;
        let schema = self.schema.clone();
        let (tx, rx) = sync_channel(1);
        let job = move || {
            let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                encode_group(&schema, writers, &batches)
            }));
            drop(batches);
            let _ = tx.send(encoded);
        };
        if rayon::current_thread_index().is_some() {
            job();
        } else {
            rayon::spawn(job);
        }
        self.pending.push_back(rx);
        while self.pending.len() > row_groups_in_flight() {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group in flight and appends it to the file.
    fn append_oldest(&mut self) -> Result<(), IoError> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let chunks = match rx.recv().expect("an encoding job always answers") {
            Ok(chunks) => chunks.map_err(IoError::parquet(&self.path))?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let path = &self.path;
        let mut group = self
            .writer
            .next_row_group()
            .map_err(IoError::parquet(path))?;
        for chunk in chunks {
            chunk
                .append_to_row_group(&mut group)
                .map_err(IoError::parquet(path))?;
        }
        group.close().map_err(IoError::parquet(path))?;
        self.sync_in_background()
    }

    /// Starts writing what the file holds so far to disk, on a thread of its own, unless such a
    /// sync is still running: the `fsync` that ends the file then waits for the last row groups
    /// only. That wait was the end of every ingest (32 ms of idle cores for 67 MB on a 2-vCPU
    /// VM). An error here is the sink's error, reported at the latest by `finish`.
    fn sync_in_background(&mut self) -> Result<(), IoError> {
        if self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return Ok(());
        }
        self.join_sync()?;
        let file = self
            .writer
            .inner()
            .get_ref()
            .inner
            .try_clone()
            .map_err(IoError::io(&self.path))?;
        self.syncing = Some(std::thread::spawn(move || file.sync_data()));
        Ok(())
    }

    /// Waits for a background sync, if one was started, and returns its error.
    fn join_sync(&mut self) -> Result<(), IoError> {
        match self.syncing.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(done)) => done.map_err(IoError::io(&self.path)),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the file and fsyncs it. Returns the number of rows written.
    pub fn finish(self) -> Result<u64, IoError> {
        self.finish_written().map(|w| w.rows)
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Like [`ParquetSink::finish`], also returning the file's size and SHA-256, computed from
    /// the bytes as they were written (no second read of the file).
    pub fn finish_written(mut self) -> Result<Written, IoError> {
        self.flush_batch()?;
        self.close_group()?;
        while !self.pending.is_empty() {
            self.append_oldest()?;
        }
        self.join_sync()?;
        let inner = self
            .writer
            .into_inner()
            .map_err(IoError::parquet(&self.path))?;
        let hashing = inner.into_inner().map_err(|e| IoError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        let (file, sha256, bytes) = hashing.finish();
        file.sync_all().map_err(IoError::io(&self.path))?;
        Ok(Written {
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

/// A finished Parquet file: rows, size in bytes and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that hashes (SHA-256) and counts every byte it passes on, in order.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        use sha2::Digest;
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        use sha2::Digest;
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Encodes and compresses one row group: its leaf columns in parallel.
fn encode_group(
    schema: &SchemaRef,
    writers: Vec<ArrowColumnWriter>,
    batches: &[RecordBatch],
) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
    let mut leaves: Vec<Vec<ArrowLeafColumn>> = writers.iter().map(|_| Vec::new()).collect();
    for batch in batches {
        let mut slot = leaves.iter_mut();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                slot.next().expect("one writer per leaf column").push(leaf);
            }
        }
    }
    writers
        .into_par_iter()
        .zip(leaves)
        .map(|(mut writer, leaves)| {
            for leaf in &leaves {
                writer.write(leaf)?;
            }
            writer.close()
        })
        .collect()
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

    /// Free text is written plain and without statistics; a short repeated column keeps its
    /// dictionary (read back from the file's column-chunk metadata).
    #[test]
    fn free_text_columns_are_plain() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let mut sink = ParquetSink::create(&path, Kind::Document).unwrap();
        for i in 0..1_000 {
            sink.push(&Record::Document(Document {
                id: i.to_string(),
                text: format!("文書{}", i % 3),
                source: "aozora".into(),
                meta: None,
            }))
            .unwrap();
        }
        sink.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let column = |name: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("column {name}"))
        };
        let dictionary = |name: &str| {
            column(name)
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
        };
        // Three distinct texts would make a tiny dictionary: still written plain.
        assert!(!dictionary("text"), "text is written plain");
        assert!(!dictionary("id"), "ids are written plain");
        assert!(dictionary("source"), "source keeps its dictionary");
        assert!(
            column("text").statistics().is_none(),
            "no statistics of prose"
        );
        assert!(column("id").statistics().is_some(), "ids keep statistics");
    }

    #[test]
    fn codecs_parse_and_print() {
        for (s, c) in [
            ("zstd", Codec::Zstd(3)),
            ("zstd:1", Codec::Zstd(1)),
            ("zstd:22", Codec::Zstd(22)),
            ("snappy", Codec::Snappy),
            ("none", Codec::Uncompressed),
        ] {
            assert_eq!(s.parse::<Codec>(), Ok(c), "{s}");
            assert_eq!(c.to_string().parse::<Codec>(), Ok(c));
        }
        for s in ["zstd:0", "zstd:23", "zstd:x", "lzo", ""] {
            let e = s.parse::<Codec>().unwrap_err();
            assert!(e.contains("zstd"), "{s}: {e}");
        }
    }

    /// The digest taken while writing is the digest of the file on disk (several row groups,
    /// so several appends through the buffered writer).
    #[test]
    fn written_digest_matches_the_file() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let mut sink = ParquetSink::create(&path, Kind::Document).unwrap();
        let rows = 3 * ROW_GROUP_ROWS + 7;
        for i in 0..rows {
            sink.push(&Record::Document(Document {
                id: i.to_string(),
                text: format!("文書{i}は{}", i * 7919),
                source: String::new(),
                meta: None,
            }))
            .unwrap();
        }
        let w = sink.finish_written().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(w.rows, rows as u64);
        assert_eq!(w.bytes, bytes.len() as u64);
        assert_eq!(w.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
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
