//! Token streams → `[B, T]` micro-batches, with exactly restorable state.
//!
//! - [`BestFitPacker`] (base, default): BOS-aligned rows of `T + 1` tokens. Each row is filled
//!   with the largest buffered document that still fits (nanochat HEAD's best-fit loader). When
//!   none fits, the shortest is cropped to fill the row, and, unlike nanochat, its remainder is
//!   kept as a *continuation* that may only start a later row: no token is discarded and no
//!   document's middle ever follows another document without its `<|bos|>`. Documents longer
//!   than a row start rows right away (they can never fit, and waiting would starve them), so
//!   long texts (novels) stream through in order.
//! - [`StreamPacker`] (mid; base with `--packing stream`): nanochat v1's loader. Documents are
//!   concatenated and each batch pops `B·T + 1` tokens; rows cross document boundaries.
//! - [`SftBatcher`] (SFT, default): one conversation per row, right-padded with
//!   `<|assistant_end|>` to the longest row; targets are −1 where the mask is 0 and in the padding
//!   (nanochat v1 §8.4). Conversations longer than `T + 1` tokens or without a supervised target
//!   are skipped and reported, never truncated, so a batch is never fully masked.
//! - [`BestFitPacker::padded`] (SFT with `--packing best-fit`): rows of `T + 1` tokens filled with
//!   *whole* conversations by best fit, like base packing, but when no buffered conversation fits
//!   the rest of the row, the row is padded (targets −1) instead of cropping one: nothing is cut,
//!   and far fewer positions are padding than with one conversation per row. Conversations too
//!   long for a row or without a supervised target are skipped and reported.
//!
//! Inputs are `row[..T]`, targets `row[1..]`. Every packer's state is a small JSON value (record
//! positions and offsets); [`BatchSource::restore`] replays the tokenizer from the oldest
//! position still buffered, so a resumed run sees exactly the batches an uninterrupted one would.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::{DocStream, Item, Pos, Skip, TokenDoc};
use crate::error::{Error, Result};

/// One micro-batch, row-major `[rows, cols]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub rows: usize,
    pub cols: usize,
    pub inputs: Vec<i64>,
    /// −1 = no loss at this position.
    pub targets: Vec<i64>,
    /// Per row, the records packed into it (`id@epoch:index`, with `+offset` for continuations).
    pub row_ids: Vec<String>,
}

impl Batch {
    /// Number of targets that carry loss.
    pub fn n_targets(&self) -> usize {
        self.targets.iter().filter(|&&t| t >= 0).count()
    }

    /// `row 0: a@0:1, b@0:2; row 1: …` for error messages.
    pub fn describe_rows(&self) -> String {
        self.row_ids
            .iter()
            .enumerate()
            .map(|(i, r)| format!("row {i}: {r}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Where micro-batches come from during training.
pub trait BatchSource: Send {
    /// The next micro-batch.
    ///
    /// # Errors
    /// Read errors, or a dataset that cannot fill a batch.
    fn next_batch(&mut self) -> Result<Batch>;
    /// The exact position, to save in a checkpoint.
    fn state(&self) -> serde_json::Value;
    /// Returns to a position saved with [`BatchSource::state`].
    ///
    /// # Errors
    /// A state from another packer kind, or a dataset that changed underneath.
    fn restore(&mut self, state: &serde_json::Value) -> Result<()>;
    /// Records per epoch, when known.
    fn num_records(&self) -> Option<u64>;
    /// Fraction of the data read so far in the current pass (nanochat mid's `cursor / size`).
    fn progress(&self) -> Option<f64>;
    /// Whether the source has started reading a second pass (nanochat mid's `last_step`).
    fn wrapped(&self) -> bool;
    /// Records skipped since the last call, for reporting.
    fn take_skips(&mut self) -> Vec<Skip>;
}

fn progress_of(next: Pos, len: Option<u64>) -> Option<f64> {
    len.filter(|&n| n > 0)
        .map(|n| next.epoch as f64 + next.index as f64 / n as f64)
}

fn to_state<S: Serialize>(kind: &str, s: &S) -> serde_json::Value {
    serde_json::json!({ "kind": kind, "state": s })
}

fn from_state<S: for<'de> Deserialize<'de>>(kind: &str, v: &serde_json::Value) -> Result<S> {
    let got = v.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    if got != kind {
        return Err(Error::Data(format!(
            "saved data state is for a `{got}` packer, this run uses `{kind}`"
        )));
    }
    serde_json::from_value(v["state"].clone())
        .map_err(|e| Error::Data(format!("malformed `{kind}` data state: {e}")))
}

/// A document (or the rest of one) waiting in a packer.
#[derive(Debug, Clone)]
struct Piece {
    doc: TokenDoc,
    offset: usize,
}

impl Piece {
    fn len(&self) -> usize {
        self.doc.ids.len() - self.offset
    }
    fn label(&self) -> String {
        if self.offset == 0 {
            format!("{}@{}", self.doc.id, self.doc.pos)
        } else {
            format!("{}@{}+{}", self.doc.id, self.doc.pos, self.offset)
        }
    }
}

/// Builds inputs/targets from `rows` token rows of `cols + 1` tokens each.
fn shift_rows(rows: &[Vec<u32>], cols: usize) -> (Vec<i64>, Vec<i64>) {
    let mut inputs = Vec::with_capacity(rows.len() * cols);
    let mut targets = Vec::with_capacity(rows.len() * cols);
    for r in rows {
        inputs.extend(r[..cols].iter().map(|&t| i64::from(t)));
        targets.extend(r[1..=cols].iter().map(|&t| i64::from(t)));
    }
    (inputs, targets)
}

/// Pulls documents from a stream, keeping skips aside.
fn pull<T: Send + 'static>(
    stream: &mut DocStream<T>,
    skips: &mut Vec<Skip>,
    next: &mut Pos,
) -> Result<Option<TokenDoc>> {
    loop {
        match stream.next_item()? {
            None => return Ok(None),
            Some(Item::Skip(s)) => {
                *next = Pos {
                    epoch: s.pos.epoch,
                    index: s.pos.index + 1,
                };
                skips.push(s);
            }
            Some(Item::Doc(d)) => {
                *next = Pos {
                    epoch: d.pos.epoch,
                    index: d.pos.index + 1,
                };
                return Ok(Some(d));
            }
        }
    }
}

/// Replays a stream from `from` up to (excluding) `until`, returning the documents read.
fn replay<T: Send + 'static>(
    stream: &mut DocStream<T>,
    from: Pos,
    until: Pos,
) -> Result<Vec<TokenDoc>> {
    stream.restart(from)?;
    let mut docs = Vec::new();
    let (mut skips, mut next) = (Vec::new(), from);
    while next < until {
        match pull(stream, &mut skips, &mut next)? {
            Some(d) if d.pos < until => docs.push(d),
            Some(_) | None => {
                return Err(Error::Data(format!(
                    "{}: the data ended before position {until}",
                    stream.name()
                )));
            }
        }
    }
    Ok(docs)
}

/// BOS-aligned best-fit packing (see the module docs).
#[derive(Debug)]
pub struct BestFitPacker<T: Send + 'static> {
    stream: DocStream<T>,
    rows: usize,
    seq_len: usize,
    buffer_docs: usize,
    buffer: Vec<Piece>,
    next: Pos,
    skips: Vec<Skip>,
    /// `Some(pad id)`: padded mode (whole documents only, see [`BestFitPacker::padded`]).
    pad: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct BestFitState {
    next: Pos,
    buffer: Vec<(Pos, usize)>,
}

impl<T: Send + 'static> BestFitPacker<T> {
    /// `rows × seq_len` batches; `buffer_docs` documents are considered for each slot
    /// (nanochat uses 1,000). The stream should loop (pretraining runs for many epochs).
    pub fn new(stream: DocStream<T>, rows: usize, seq_len: usize, buffer_docs: usize) -> Self {
        BestFitPacker {
            stream,
            rows,
            seq_len,
            buffer_docs: buffer_docs.max(1),
            buffer: Vec::new(),
            next: Pos::default(),
            skips: Vec::new(),
            pad: None,
        }
    }

    /// Padded best fit for SFT (see the module docs): whole conversations only, rows padded with
    /// `pad_id` (no target) when nothing else fits. Masks are honoured: a target exists only
    /// where the next token's mask is 1.
    pub fn padded(
        stream: DocStream<T>,
        rows: usize,
        seq_len: usize,
        buffer_docs: usize,
        pad_id: u32,
    ) -> Self {
        BestFitPacker {
            pad: Some(pad_id),
            ..Self::new(stream, rows, seq_len, buffer_docs)
        }
    }

    fn refill(&mut self) -> Result<()> {
        let cap = self.seq_len + 1;
        let mut scanned = 0u64;
        while self.buffer.iter().filter(|p| p.offset == 0).count() < self.buffer_docs {
            match pull(&mut self.stream, &mut self.skips, &mut self.next)? {
                Some(doc) => {
                    scanned += 1;
                    if self.pad.is_some() {
                        let reason = if doc.ids.len() > cap {
                            Some(format!(
                                "{} tokens do not fit a row of {cap} (skipped, never truncated)",
                                doc.ids.len()
                            ))
                        } else if doc
                            .mask
                            .as_ref()
                            .is_some_and(|m| !m.iter().skip(1).any(|&x| x == 1))
                        {
                            Some("no supervised (assistant) token to learn from".to_string())
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            self.skips.push(Skip {
                                pos: doc.pos,
                                id: doc.id,
                                reason,
                            });
                            if self.buffer.is_empty() && scanned > 10 * self.rows as u64 + 1000 {
                                return Err(Error::Data(format!(
                                    "{}: {scanned} records in a row were skipped (see the warnings); nothing to train on",
                                    self.stream.name()
                                )));
                            }
                            continue;
                        }
                    }
                    self.buffer.push(Piece { doc, offset: 0 });
                }
                None => break,
            }
        }
        Ok(())
    }

    /// One row of `seq_len + 1` tokens, its mask (1 = may be a target) and its label.
    fn build_row(&mut self) -> Result<(Vec<u32>, Vec<u8>, String)> {
        let cap = self.seq_len + 1;
        let mut row = Vec::with_capacity(cap);
        let mut mask = Vec::with_capacity(cap);
        let mut labels = Vec::new();
        while row.len() < cap {
            self.refill()?;
            let remaining = cap - row.len();
            if let Some(pad) = self.pad {
                // Whole documents only: the largest that fits, else pad the rest of the row.
                let fit = self
                    .buffer
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.len() <= remaining)
                    .max_by_key(|(i, p)| (p.len(), std::cmp::Reverse(*i)))
                    .map(|(i, _)| i);
                match fit {
                    Some(i) => {
                        let piece = self.buffer.remove(i);
                        labels.push(piece.label());
                        row.extend_from_slice(&piece.doc.ids);
                        match &piece.doc.mask {
                            Some(m) => mask.extend_from_slice(m),
                            None => mask.extend(std::iter::repeat_n(1, piece.doc.ids.len())),
                        }
                    }
                    None if row.is_empty() => {
                        return Err(Error::Data(format!(
                            "{}: no conversations left for a batch",
                            self.stream.name()
                        )));
                    }
                    None => {
                        row.extend(std::iter::repeat_n(pad, remaining));
                        mask.extend(std::iter::repeat_n(0, remaining));
                    }
                }
                continue;
            }
            // A row starts with the oldest continuation, else the oldest document too long for
            // any row (it would only wait in the buffer until cropped anyway), else best fit.
            let at_start = |long: bool| {
                row.is_empty()
                    .then(|| {
                        self.buffer.iter().position(|p| {
                            if long {
                                p.offset == 0 && p.len() > cap
                            } else {
                                p.offset > 0
                            }
                        })
                    })
                    .flatten()
            };
            let fresh = || {
                self.buffer
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.offset == 0)
            };
            let pick = at_start(false)
                .or_else(|| at_start(true))
                .or_else(|| {
                    // Largest fresh document that fits; ties go to the oldest.
                    fresh()
                        .filter(|(_, p)| p.len() <= remaining)
                        .max_by_key(|(i, p)| (p.len(), std::cmp::Reverse(*i)))
                        .map(|(i, _)| i)
                })
                .or_else(|| fresh().min_by_key(|(i, p)| (p.len(), *i)).map(|(i, _)| i))
                .or_else(|| (!self.buffer.is_empty()).then_some(0));
            let Some(i) = pick else {
                return Err(Error::Data(format!(
                    "{}: no documents to pack",
                    self.stream.name()
                )));
            };
            let piece = &mut self.buffer[i];
            let take = piece.len().min(remaining);
            labels.push(piece.label());
            let range = piece.offset..piece.offset + take;
            row.extend_from_slice(&piece.doc.ids[range.clone()]);
            match &piece.doc.mask {
                Some(m) => mask.extend_from_slice(&m[range]),
                None => mask.extend(std::iter::repeat_n(1, take)),
            }
            piece.offset += take;
            if piece.len() == 0 {
                self.buffer.remove(i);
            }
        }
        Ok((row, mask, labels.join(", ")))
    }
}

impl<T: Send + 'static> BestFitPacker<T> {
    fn state_kind(&self) -> &'static str {
        if self.pad.is_some() {
            "best_fit_padded"
        } else {
            "best_fit"
        }
    }
}

impl<T: Send + 'static> BatchSource for BestFitPacker<T> {
    fn next_batch(&mut self) -> Result<Batch> {
        let mut rows = Vec::with_capacity(self.rows);
        let mut masks = Vec::with_capacity(self.rows);
        let mut row_ids = Vec::with_capacity(self.rows);
        for _ in 0..self.rows {
            let (r, m, l) = self.build_row()?;
            rows.push(r);
            masks.push(m);
            row_ids.push(l);
        }
        let (inputs, mut targets) = shift_rows(&rows, self.seq_len);
        for (r, m) in masks.iter().enumerate() {
            for (j, t) in targets[r * self.seq_len..(r + 1) * self.seq_len]
                .iter_mut()
                .enumerate()
            {
                if m[j + 1] == 0 {
                    *t = -1;
                }
            }
        }
        Ok(Batch {
            rows: self.rows,
            cols: self.seq_len,
            inputs,
            targets,
            row_ids,
        })
    }

    fn state(&self) -> serde_json::Value {
        let s = BestFitState {
            next: self.next,
            buffer: self.buffer.iter().map(|p| (p.doc.pos, p.offset)).collect(),
        };
        to_state(self.state_kind(), &s)
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let s: BestFitState = from_state(self.state_kind(), state)?;
        let from = s
            .buffer
            .iter()
            .map(|b| b.0)
            .min()
            .unwrap_or(s.next)
            .min(s.next);
        let docs = replay(&mut self.stream, from, s.next)?;
        let mut buffer = Vec::with_capacity(s.buffer.len());
        for (pos, offset) in s.buffer {
            let doc = docs.iter().find(|d| d.pos == pos).ok_or_else(|| {
                Error::Data(format!(
                    "{}: buffered record {pos} is not a document any more (did the data change?)",
                    self.stream.name()
                ))
            })?;
            if offset > doc.ids.len() {
                return Err(Error::Data(format!(
                    "{}: record {pos} is shorter than its saved offset {offset}",
                    self.stream.name()
                )));
            }
            buffer.push(Piece {
                doc: doc.clone(),
                offset,
            });
        }
        self.buffer = buffer;
        self.next = s.next;
        self.skips.clear();
        Ok(())
    }

    fn num_records(&self) -> Option<u64> {
        self.stream.num_records()
    }
    fn progress(&self) -> Option<f64> {
        progress_of(self.next, self.stream.num_records())
    }
    fn wrapped(&self) -> bool {
        self.next.epoch > 0
    }
    fn take_skips(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skips)
    }
}

/// nanochat v1's concatenating loader (see the module docs).
#[derive(Debug)]
pub struct StreamPacker<T: Send + 'static> {
    stream: DocStream<T>,
    rows: usize,
    seq_len: usize,
    queue: VecDeque<Piece>,
    queued: usize,
    next: Pos,
    skips: Vec<Skip>,
}

#[derive(Serialize, Deserialize)]
struct StreamState {
    /// First record with unconsumed tokens and how many of its tokens are consumed.
    head: Pos,
    offset: usize,
    next: Pos,
}

impl<T: Send + 'static> StreamPacker<T> {
    pub fn new(stream: DocStream<T>, rows: usize, seq_len: usize) -> Self {
        StreamPacker {
            stream,
            rows,
            seq_len,
            queue: VecDeque::new(),
            queued: 0,
            next: Pos::default(),
            skips: Vec::new(),
        }
    }
}

impl<T: Send + 'static> BatchSource for StreamPacker<T> {
    fn next_batch(&mut self) -> Result<Batch> {
        let cols = self.seq_len;
        let needed = self.rows * cols + 1;
        while self.queued < needed {
            match pull(&mut self.stream, &mut self.skips, &mut self.next)? {
                Some(doc) => {
                    self.queued += doc.ids.len();
                    self.queue.push_back(Piece { doc, offset: 0 });
                }
                None => {
                    return Err(Error::Data(format!(
                        "{}: not enough tokens left for a batch",
                        self.stream.name()
                    )));
                }
            }
        }
        let mut tokens = Vec::with_capacity(needed);
        let mut spans: Vec<(usize, String)> = Vec::new(); // (start in tokens, label)
        while tokens.len() < needed {
            let piece = self.queue.front_mut().expect("enough tokens queued");
            let take = piece.len().min(needed - tokens.len());
            spans.push((tokens.len(), piece.label()));
            tokens.extend_from_slice(&piece.doc.ids[piece.offset..piece.offset + take]);
            piece.offset += take;
            if piece.len() == 0 {
                self.queue.pop_front();
            }
        }
        self.queued -= needed;
        let rows: Vec<Vec<u32>> = (0..self.rows)
            .map(|r| tokens[r * cols..=(r + 1) * cols].to_vec())
            .collect();
        let row_ids = (0..self.rows)
            .map(|r| {
                let (lo, hi) = (r * cols, (r + 1) * cols + 1);
                spans
                    .iter()
                    .enumerate()
                    .filter(|(k, (s, _))| *s < hi && spans.get(k + 1).map_or(needed, |n| n.0) > lo)
                    .map(|(_, (_, l))| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let (inputs, targets) = shift_rows(&rows, cols);
        Ok(Batch {
            rows: self.rows,
            cols,
            inputs,
            targets,
            row_ids,
        })
    }

    fn state(&self) -> serde_json::Value {
        let (head, offset) = self
            .queue
            .front()
            .map_or((self.next, 0), |p| (p.doc.pos, p.offset));
        to_state(
            "stream",
            &StreamState {
                head,
                offset,
                next: self.next,
            },
        )
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let s: StreamState = from_state("stream", state)?;
        let docs = replay(&mut self.stream, s.head, s.next)?;
        self.queue.clear();
        self.queued = 0;
        for (k, doc) in docs.into_iter().enumerate() {
            let offset = if k == 0 { s.offset } else { 0 };
            if k == 0 && doc.pos != s.head {
                return Err(Error::Data(format!(
                    "{}: record {} is not a document any more",
                    self.stream.name(),
                    s.head
                )));
            }
            let p = Piece { doc, offset };
            self.queued += p.len();
            self.queue.push_back(p);
        }
        self.next = s.next;
        self.skips.clear();
        Ok(())
    }

    fn num_records(&self) -> Option<u64> {
        self.stream.num_records()
    }
    fn progress(&self) -> Option<f64> {
        progress_of(self.next, self.stream.num_records())
    }
    fn wrapped(&self) -> bool {
        self.next.epoch > 0
    }
    fn take_skips(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skips)
    }
}

/// One conversation per row, padded (see the module docs).
#[derive(Debug)]
pub struct SftBatcher<T: Send + 'static> {
    stream: DocStream<T>,
    rows: usize,
    max_len: usize,
    pad_id: u32,
    pad_multiple: usize,
    next: Pos,
    skips: Vec<Skip>,
}

#[derive(Serialize, Deserialize)]
struct SftState {
    next: Pos,
}

impl<T: Send + 'static> SftBatcher<T> {
    /// `rows` conversations per batch, each at most `seq_len + 1` tokens; padding with `pad_id`
    /// (`<|assistant_end|>`); columns rounded up to a multiple of `pad_multiple` (≤ `seq_len`),
    /// which keeps kernel shapes few on GPUs without changing the loss.
    pub fn new(
        stream: DocStream<T>,
        rows: usize,
        seq_len: usize,
        pad_id: u32,
        pad_multiple: usize,
    ) -> Self {
        SftBatcher {
            stream,
            rows,
            max_len: seq_len + 1,
            pad_id,
            pad_multiple: pad_multiple.max(1),
            next: Pos::default(),
            skips: Vec::new(),
        }
    }
}

impl<T: Send + 'static> BatchSource for SftBatcher<T> {
    fn next_batch(&mut self) -> Result<Batch> {
        let mut convs: Vec<TokenDoc> = Vec::with_capacity(self.rows);
        let mut scanned = 0u64;
        while convs.len() < self.rows {
            let Some(doc) = pull(&mut self.stream, &mut self.skips, &mut self.next)? else {
                return Err(Error::Data(format!(
                    "{}: no conversations left for a batch",
                    self.stream.name()
                )));
            };
            scanned += 1;
            let mask = doc
                .mask
                .clone()
                .unwrap_or_else(|| Arc::new(vec![1; doc.ids.len()]));
            if doc.ids.len() > self.max_len {
                let reason = format!(
                    "{} tokens do not fit a row of {} (skipped, never truncated)",
                    doc.ids.len(),
                    self.max_len
                );
                self.skips.push(Skip {
                    pos: doc.pos,
                    id: doc.id,
                    reason,
                });
            } else if !mask.iter().skip(1).any(|&m| m == 1) {
                let reason = "no supervised (assistant) token to learn from".to_string();
                self.skips.push(Skip {
                    pos: doc.pos,
                    id: doc.id,
                    reason,
                });
            } else {
                convs.push(TokenDoc {
                    mask: Some(mask),
                    ..doc
                });
            }
            if scanned > 10 * self.rows as u64 + 1000 && convs.is_empty() {
                return Err(Error::Data(format!(
                    "{}: {scanned} conversations in a row were skipped (see the warnings); nothing to train on",
                    self.stream.name()
                )));
            }
        }
        let longest = convs.iter().map(|c| c.ids.len() - 1).max().unwrap_or(1);
        let cols = longest.div_ceil(self.pad_multiple) * self.pad_multiple;
        let cols = cols.min(self.max_len - 1).max(longest);
        let mut inputs = vec![i64::from(self.pad_id); self.rows * cols];
        let mut targets = vec![-1i64; self.rows * cols];
        for (r, c) in convs.iter().enumerate() {
            let mask = c.mask.as_ref().expect("set above");
            let n = c.ids.len();
            for j in 0..n - 1 {
                inputs[r * cols + j] = i64::from(c.ids[j]);
                if mask[j + 1] == 1 {
                    targets[r * cols + j] = i64::from(c.ids[j + 1]);
                }
            }
        }
        let row_ids = convs
            .iter()
            .map(|c| format!("{}@{}", c.id, c.pos))
            .collect();
        Ok(Batch {
            rows: self.rows,
            cols,
            inputs,
            targets,
            row_ids,
        })
    }

    fn state(&self) -> serde_json::Value {
        to_state("sft", &SftState { next: self.next })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let s: SftState = from_state("sft", state)?;
        self.stream.restart(s.next)?;
        self.next = s.next;
        self.skips.clear();
        Ok(())
    }

    fn num_records(&self) -> Option<u64> {
        self.stream.num_records()
    }
    fn progress(&self) -> Option<f64> {
        progress_of(self.next, self.stream.num_records())
    }
    fn wrapped(&self) -> bool {
        self.next.epoch > 0
    }
    fn take_skips(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{RecordReader, TokenizeFn, VecReader};

    const BOS: u32 = 1000;

    /// Documents of the given lengths: `[BOS, 10·k + 0, 10·k + 1, …]` (doc k).
    fn docs(lens: &[usize]) -> (Box<dyn RecordReader<usize>>, TokenizeFn<usize>) {
        let lens = lens.to_vec();
        let reader = Box::new(VecReader::new("docs", (0..lens.len()).collect()));
        let f: TokenizeFn<usize> = Arc::new(move |k: &usize| {
            let mut ids = vec![BOS];
            ids.extend((0..lens[*k] - 1).map(|j| (100 * k + j) as u32));
            (format!("d{k}"), Ok((ids, None)))
        });
        (reader, f)
    }

    fn stream(lens: &[usize]) -> DocStream<usize> {
        let (r, f) = docs(lens);
        DocStream::new(r, f, true)
    }

    #[test]
    fn best_fit_rows_start_with_bos_and_lose_nothing() {
        let lens = [3, 9, 2, 20, 5, 4, 7, 1, 6];
        let mut p = BestFitPacker::new(stream(&lens), 2, 7, 4);
        let total: usize = lens.iter().sum();
        let mut seen = Vec::new();
        for _ in 0..6 {
            let b = p.next_batch().unwrap();
            assert_eq!((b.rows, b.cols, b.inputs.len()), (2, 7, 14));
            for r in 0..2 {
                let row: Vec<i64> = b.inputs[r * 7..(r + 1) * 7].to_vec();
                let label = &b.row_ids[r];
                // A row starts with BOS unless it starts with a continuation (`+offset`).
                let first = label.split(", ").next().unwrap();
                assert_eq!(
                    row[0] == i64::from(BOS),
                    !first.contains('+'),
                    "{label} {row:?}"
                );
                // targets are the inputs shifted by one
                assert_eq!(
                    b.targets[r * 7..r * 7 + 6],
                    b.inputs[r * 7 + 1..(r + 1) * 7]
                );
                seen.extend(row);
                seen.push(b.targets[(r + 1) * 7 - 1]);
            }
        }
        // 6 batches × 2 rows × 8 tokens = 96 tokens ≥ 2 epochs (62 each... every token of epoch 0 used).
        let epoch0: Vec<i64> = (0..lens.len())
            .flat_map(|k| {
                std::iter::once(i64::from(BOS))
                    .chain((0..lens[k] - 1).map(move |j| (100 * k + j) as i64))
            })
            .filter(|&t| t != i64::from(BOS))
            .collect();
        for t in epoch0 {
            assert!(seen.contains(&t), "token {t} was dropped");
        }
        assert!(seen.len() >= total);
    }

    #[test]
    fn best_fit_prefers_the_largest_fitting_document() {
        // Capacity 8. Row 0: the largest fitting document (7 tokens), then 1 slot left where
        // nothing fits: the shortest (2 tokens) is cropped and its remainder continues row 1.
        // Row 1 starts with that continuation (no BOS), then best fit again: 5 (d0), then the
        // next pass's d1 (2) fills the last two slots exactly.
        let mut p = BestFitPacker::new(stream(&[5, 2, 3, 7, 50]), 2, 7, 4);
        let b = p.next_batch().unwrap();
        assert_eq!(
            b.row_ids,
            vec!["d3@0:3, d1@0:1", "d1@0:1+1, d0@0:0, d1@1:1"]
        );
        assert_eq!(b.inputs[7], 100); // row 1 starts with d1's second token
        // Row 2: d4 (50 tokens, longer than any row) starts a row right away.
        let b = p.next_batch().unwrap();
        assert_eq!(b.row_ids[0], "d4@0:4");
    }

    fn check_resume(mut make: impl FnMut() -> Box<dyn BatchSource>) {
        let mut a = make();
        let all: Vec<Batch> = (0..12).map(|_| a.next_batch().unwrap()).collect();
        let mut b = make();
        for _ in 0..5 {
            b.next_batch().unwrap();
        }
        let saved = b.state();
        let saved_json = serde_json::to_string(&saved).unwrap();
        let mut c = make();
        c.restore(&serde_json::from_str(&saved_json).unwrap())
            .unwrap();
        for batch in &all[5..] {
            assert_eq!(&c.next_batch().unwrap(), batch);
        }
    }

    #[test]
    fn exact_restore_every_packer() {
        let lens = [3, 9, 2, 20, 5, 4, 7, 1, 6, 11, 2, 2, 30, 8];
        check_resume(|| Box::new(BestFitPacker::new(stream(&lens), 2, 6, 3)));
        check_resume(|| Box::new(StreamPacker::new(stream(&lens), 2, 6)));
        let conv = move || {
            let (r, _) = docs(&lens);
            let f: TokenizeFn<usize> = Arc::new(move |k: &usize| {
                let n = [3, 9, 2, 20, 5, 4, 7, 1, 6, 11, 2, 2, 30, 8][*k];
                let ids: Vec<u32> = (0..n as u32).collect();
                let mask: Vec<u8> = (0..n).map(|j| u8::from(j % 2 == 1)).collect();
                (format!("c{k}"), Ok((ids, Some(mask))))
            });
            Box::new(SftBatcher::new(DocStream::new(r, f, true), 3, 10, 999, 4))
                as Box<dyn BatchSource>
        };
        check_resume(conv);
        let padded = move || {
            let (r, _) = docs(&lens);
            let f: TokenizeFn<usize> = Arc::new(move |k: &usize| {
                let n = [3, 9, 2, 20, 5, 4, 7, 1, 6, 11, 2, 2, 30, 8][*k];
                let ids: Vec<u32> = (0..n as u32).map(|j| 100 * *k as u32 + j).collect();
                let mask: Vec<u8> = (0..n).map(|j| u8::from(j % 2 == 1)).collect();
                (format!("c{k}"), Ok((ids, Some(mask))))
            });
            Box::new(BestFitPacker::padded(
                DocStream::new(r, f, true),
                2,
                10,
                3,
                999,
            )) as Box<dyn BatchSource>
        };
        check_resume(padded);
    }

    #[test]
    fn padded_best_fit_never_crops() {
        // Conversation k has ids 100·k + j; mask 1 on odd positions. Row capacity 9 (T = 8).
        let lens = [4usize, 12, 3, 5, 2, 9, 6];
        let (r, _) = docs(&[1; 7]);
        let f: TokenizeFn<usize> = Arc::new(move |k: &usize| {
            let ids: Vec<u32> = (0..lens[*k] as u32).map(|j| 100 * *k as u32 + j).collect();
            let mask: Vec<u8> = (0..lens[*k]).map(|j| u8::from(j % 2 == 1)).collect();
            (format!("c{k}"), Ok((ids, Some(mask))))
        });
        let mut p = BestFitPacker::padded(DocStream::new(r, f, false), 1, 8, 4, 999);
        let mut whole = Vec::new();
        for _ in 0..4 {
            let b = p.next_batch().unwrap();
            assert_eq!((b.rows, b.cols), (1, 8));
            assert!(b.n_targets() > 0);
            // Each row: whole conversations back to back, then padding (never a cut one).
            // `inputs` holds the row's first 8 of 9 tokens.
            let row = &b.inputs;
            let mut j = 0;
            while j < 8 && row[j] != 999 {
                let k = (row[j] / 100) as usize;
                assert_eq!(row[j] % 100, 0, "a conversation starts at its first token");
                let n = lens[k];
                let end = (j + n).min(8);
                let want: Vec<i64> = (0..(end - j) as i64).map(|x| 100 * k as i64 + x).collect();
                assert_eq!(row[j..end], want[..]);
                // Targets follow the mask of the next token: odd positions only.
                for x in 1..n {
                    let t = b.targets[j + x - 1];
                    let want = if x % 2 == 1 {
                        100 * k as i64 + x as i64
                    } else {
                        -1
                    };
                    assert_eq!(t, want, "row {row:?} conversation {k} token {x}");
                }
                whole.push(k);
                j += n;
            }
            if j < 8 {
                assert!(row[j..].iter().all(|&x| x == 999), "{row:?}");
                assert!(
                    b.targets[j..].iter().all(|&t| t == -1),
                    "padding has no target"
                );
            }
        }
        whole.sort_unstable();
        // Every conversation that fits appears exactly once; the 12-token one is reported.
        assert_eq!(whole, vec![0, 2, 3, 4, 5, 6]);
        let skips = p.take_skips();
        assert_eq!(skips.len(), 1);
        assert!(skips[0].reason.contains("12 tokens do not fit a row of 9"));
        assert!(p.next_batch().is_err(), "the data is exhausted");
    }

    #[test]
    fn stream_packer_matches_nanochat_v1() {
        let mut p = StreamPacker::new(stream(&[4, 4, 4, 4, 4, 4]), 2, 3);
        let b = p.next_batch().unwrap();
        // 7 tokens popped: d0 (4) + 3 of d1; the 7th token is only a target.
        assert_eq!(b.inputs, vec![1000, 0, 1, 2, 1000, 100]);
        assert_eq!(b.targets, vec![0, 1, 2, 1000, 100, 101]);
        assert_eq!(b.row_ids, vec!["d0@0:0", "d0@0:0, d1@0:1"]);
        let b = p.next_batch().unwrap();
        assert_eq!(b.inputs[0], 102); // the 7th token is not reused
        assert!(!p.wrapped());
        for _ in 0..3 {
            p.next_batch().unwrap();
        }
        assert!(p.wrapped());
    }

    #[test]
    fn sft_padding_masking_and_skips() {
        let (r, _) = docs(&[1, 1, 1, 1]);
        let f: TokenizeFn<usize> = Arc::new(|k: &usize| {
            let (ids, mask): (Vec<u32>, Vec<u8>) = match k {
                0 => (vec![1, 2, 3, 4], vec![0, 0, 1, 1]),
                1 => (vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], vec![1; 12]), // too long
                2 => (vec![1, 2, 3], vec![1, 0, 0]), // nothing supervised
                _ => (vec![5, 6], vec![0, 1]),
            };
            (format!("c{k}"), Ok((ids, Some(mask))))
        });
        let mut s = SftBatcher::new(DocStream::new(r, f, true), 2, 8, 99, 1);
        let b = s.next_batch().unwrap();
        assert_eq!(b.cols, 3);
        assert_eq!(b.inputs, vec![1, 2, 3, 5, 99, 99]);
        assert_eq!(b.targets, vec![-1, 3, 4, 6, -1, -1]);
        let skips = s.take_skips();
        assert_eq!(skips.len(), 2);
        assert!(skips[0].reason.contains("12 tokens do not fit a row of 9"));
        assert!(skips[1].reason.contains("no supervised"));
        assert!(b.n_targets() > 0);
    }
}
