//! Record sources and background tokenization.
//!
//! A [`RecordReader`] yields dataset records in a fixed order and can seek to a record index: the
//! integration point for the catalog (a catalog dataset of `Document`s or `Conversation`s), with
//! an in-memory [`VecReader`] and a JSONL [`JsonlReader`] here. A [`DocStream`] reads records on a
//! background thread, tokenizes them in parallel (rayon, order preserved), and hands
//! [`TokenDoc`]s to the packers in [`crate::packing`], looping over epochs when asked. Every
//! position is `(epoch, index)`, so a packer can describe its state exactly and restart a stream
//! at any record.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a record sits in the stream: pass over the data and record index within it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Pos {
    pub epoch: u64,
    pub index: u64,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.index)
    }
}

/// A source of records in a fixed order.
pub trait RecordReader<T>: Send {
    /// Number of records, when known.
    fn num_records(&self) -> Option<u64>;
    /// Makes the next [`RecordReader::next_record`] return record `index` (0-based).
    ///
    /// # Errors
    /// I/O errors or an index past the end.
    fn seek(&mut self, index: u64) -> Result<()>;
    /// The next record, or `None` at the end of the data.
    ///
    /// # Errors
    /// I/O errors or a malformed record (naming file and line).
    fn next_record(&mut self) -> Result<Option<T>>;
    /// A name for messages (file or dataset).
    fn name(&self) -> String;
}

/// Records held in memory.
#[derive(Debug, Clone)]
pub struct VecReader<T> {
    records: Arc<Vec<T>>,
    pos: usize,
    name: String,
}

impl<T> VecReader<T> {
    pub fn new(name: impl Into<String>, records: Vec<T>) -> Self {
        VecReader {
            records: Arc::new(records),
            pos: 0,
            name: name.into(),
        }
    }
}

impl<T: Clone + Send + Sync> RecordReader<T> for VecReader<T> {
    fn num_records(&self) -> Option<u64> {
        Some(self.records.len() as u64)
    }
    fn seek(&mut self, index: u64) -> Result<()> {
        if index as usize > self.records.len() {
            return Err(Error::Data(format!(
                "{}: seek to record {index} past the end ({})",
                self.name,
                self.records.len()
            )));
        }
        self.pos = index as usize;
        Ok(())
    }
    fn next_record(&mut self) -> Result<Option<T>> {
        let r = self.records.get(self.pos).cloned();
        self.pos += usize::from(r.is_some());
        Ok(r)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A JSON Lines file of records (`Document` or `Conversation` in their serde form), streamed.
/// Blank lines are not records; every other line must parse.
#[derive(Debug)]
pub struct JsonlReader<T> {
    path: PathBuf,
    reader: BufReader<File>,
    line: u64,
    len: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> JsonlReader<T> {
    /// Opens the file and counts its records.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut len = 0u64;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(path, e))?;
            len += u64::from(!line.trim().is_empty());
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(JsonlReader {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            line: 0,
            len,
            _t: PhantomData,
        })
    }

    fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            let mut s = String::new();
            let n = self
                .reader
                .read_line(&mut s)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !s.trim().is_empty() {
                return Ok(Some(s));
            }
        }
    }
}

impl<T: DeserializeOwned> RecordReader<T> for JsonlReader<T> {
    fn num_records(&self) -> Option<u64> {
        Some(self.len)
    }
    fn seek(&mut self, index: u64) -> Result<()> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        self.reader = BufReader::new(file);
        self.line = 0;
        for i in 0..index {
            if self.next_line()?.is_none() {
                return Err(Error::Data(format!(
                    "{}: seek to record {index} past the end ({i})",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }
    fn next_record(&mut self) -> Result<Option<T>> {
        let Some(line) = self.next_line()? else {
            return Ok(None);
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| Error::Record {
                path: self.path.clone(),
                line: self.line,
                reason: e.to_string(),
            })
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// One tokenized record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDoc {
    pub pos: Pos,
    /// The record's id in its dataset.
    pub id: String,
    pub ids: Arc<Vec<u32>>,
    /// Supervision mask (SFT); `None` means every token is a target.
    pub mask: Option<Arc<Vec<u8>>>,
}

/// A record that produced no tokens to train on, and why. Never silent: packers collect these
/// and the trainer reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    pub pos: Pos,
    pub id: String,
    pub reason: String,
}

/// What tokenizing one record gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Doc(TokenDoc),
    Skip(Skip),
}

impl Item {
    pub fn pos(&self) -> Pos {
        match self {
            Item::Doc(d) => d.pos,
            Item::Skip(s) => s.pos,
        }
    }
}

/// Tokenized form of a record: `(record id, ids, optional mask)` or a reason to skip it.
pub type Tokenized = std::result::Result<(Vec<u32>, Option<Vec<u8>>), String>;

/// Turns a record into tokens (runs on rayon workers).
pub type TokenizeFn<T> = Arc<dyn Fn(&T) -> (String, Tokenized) + Send + Sync>;

const CHUNK: usize = 64;
const QUEUE: usize = 4;

type Message = Result<Vec<Item>>;

/// Records → tokens on a background thread, in order.
pub struct DocStream<T: Send + 'static> {
    rx: Option<Receiver<Message>>,
    handle: Option<JoinHandle<Box<dyn RecordReader<T>>>>,
    reader: Option<Box<dyn RecordReader<T>>>,
    tokenize: TokenizeFn<T>,
    pending: VecDeque<Item>,
    looping: bool,
    len: Option<u64>,
    name: String,
    finished: bool,
}

impl<T: Send + 'static> std::fmt::Debug for DocStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocStream")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> DocStream<T> {
    /// A stream starting at record 0 of epoch 0. With `looping`, the data repeats forever
    /// (epoch increments); without, the stream ends after one pass.
    pub fn new(reader: Box<dyn RecordReader<T>>, tokenize: TokenizeFn<T>, looping: bool) -> Self {
        let len = reader.num_records();
        let name = reader.name();
        DocStream {
            rx: None,
            handle: None,
            reader: Some(reader),
            tokenize,
            pending: VecDeque::new(),
            looping,
            len,
            name,
            finished: false,
        }
    }

    /// Number of records per epoch, when known.
    pub fn num_records(&self) -> Option<u64> {
        self.len
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Restarts the stream so that the next item is record `start`.
    ///
    /// # Errors
    /// The reader cannot seek there.
    pub fn restart(&mut self, start: Pos) -> Result<()> {
        self.stop();
        let mut reader = self.reader.take().expect("reader present when stopped");
        if let Err(e) = reader.seek(start.index) {
            self.reader = Some(reader);
            return Err(e);
        }
        self.pending.clear();
        self.finished = false;
        let (tx, rx) = sync_channel(QUEUE);
        let tokenize = self.tokenize.clone();
        let looping = self.looping;
        self.handle = Some(std::thread::spawn(move || {
            produce(reader, tokenize, tx, start, looping)
        }));
        self.rx = Some(rx);
        Ok(())
    }

    /// The next tokenized record; `None` when a non-looping stream is exhausted.
    ///
    /// # Errors
    /// Read errors from the background thread.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.rx.is_none() && !self.finished {
            self.restart(Pos::default())?;
        }
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.finished {
                return Ok(None);
            }
            let msg = self.rx.as_ref().expect("started").recv();
            match msg {
                Ok(Ok(items)) => self.pending.extend(items),
                Ok(Err(e)) => {
                    self.finished = true;
                    self.stop();
                    return Err(e);
                }
                Err(_) => {
                    // Sender dropped: the data ended (non-looping).
                    self.finished = true;
                    self.stop();
                }
            }
        }
    }

    fn stop(&mut self) {
        self.rx = None; // the producer's next send fails and it returns the reader
        if let Some(h) = self.handle.take() {
            match h.join() {
                Ok(reader) => self.reader = Some(reader),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

impl<T: Send + 'static> Drop for DocStream<T> {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn produce<T: Send + 'static>(
    mut reader: Box<dyn RecordReader<T>>,
    tokenize: TokenizeFn<T>,
    tx: SyncSender<Message>,
    start: Pos,
    looping: bool,
) -> Box<dyn RecordReader<T>> {
    let mut pos = start;
    let mut read_this_epoch = 0u64;
    loop {
        let mut records = Vec::with_capacity(CHUNK);
        let mut end = false;
        while records.len() < CHUNK {
            match reader.next_record() {
                Ok(Some(r)) => {
                    records.push((pos, r));
                    pos.index += 1;
                    read_this_epoch += 1;
                }
                Ok(None) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return reader;
                }
            }
        }
        let items: Vec<Item> = records
            .into_par_iter()
            .map(|(p, r)| match tokenize(&r) {
                (id, Ok((ids, mask))) => Item::Doc(TokenDoc {
                    pos: p,
                    id,
                    ids: Arc::new(ids),
                    mask: mask.map(Arc::new),
                }),
                (id, Err(reason)) => Item::Skip(Skip { pos: p, id, reason }),
            })
            .collect();
        if !items.is_empty() && tx.send(Ok(items)).is_err() {
            return reader;
        }
        if end {
            if !looping {
                return reader;
            }
            if read_this_epoch == 0 && pos.index == 0 {
                let _ = tx.send(Err(Error::Data(format!(
                    "{}: the dataset is empty",
                    reader.name()
                ))));
                return reader;
            }
            if let Err(e) = reader.seek(0) {
                let _ = tx.send(Err(e));
                return reader;
            }
            pos = Pos {
                epoch: pos.epoch + 1,
                index: 0,
            };
            read_this_epoch = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: u32) -> Box<dyn RecordReader<u32>> {
        Box::new(VecReader::new("numbers", (0..n).collect()))
    }

    fn tok() -> TokenizeFn<u32> {
        Arc::new(|x: &u32| {
            let id = format!("r{x}");
            if *x == 3 {
                (id, Err("three is skipped".into()))
            } else {
                (id, Ok((vec![*x; *x as usize + 1], None)))
            }
        })
    }

    #[test]
    fn order_skips_epochs_and_restart() {
        let mut s = DocStream::new(numbers(200), tok(), true);
        let items: Vec<Item> = (0..450).map(|_| s.next_item().unwrap().unwrap()).collect();
        for (k, it) in items.iter().enumerate() {
            assert_eq!(
                it.pos(),
                Pos {
                    epoch: k as u64 / 200,
                    index: k as u64 % 200
                }
            );
        }
        assert!(
            matches!(&items[3], Item::Skip(Skip { reason, .. }) if reason == "three is skipped")
        );
        s.restart(Pos {
            epoch: 1,
            index: 150,
        })
        .unwrap();
        let it = s.next_item().unwrap().unwrap();
        assert_eq!(it, items[350]);
    }

    #[test]
    fn non_looping_ends_and_empty_errors() {
        let mut s = DocStream::new(numbers(5), tok(), false);
        let n = std::iter::from_fn(|| s.next_item().unwrap()).count();
        assert_eq!(n, 5);
        let mut e = DocStream::new(numbers(0), tok(), true);
        assert!(e.next_item().unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn jsonl_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"id\":\"a\",\"text\":\"x\"}\n\n{\"id\":\"b\"}\n").unwrap();
        let mut r = JsonlReader::<njp_datasets::Document>::open(&p).unwrap();
        assert_eq!(r.num_records(), Some(2));
        assert_eq!(r.next_record().unwrap().unwrap().id, "a");
        let err = r.next_record().unwrap_err().to_string();
        assert!(err.contains("d.jsonl:3:") && err.contains("text"), "{err}");
        r.seek(1).unwrap();
        assert!(r.next_record().is_err());
    }
}
