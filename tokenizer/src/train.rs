//! Byte-level BPE training: parallel chunk counting, then incremental merges.
//!
//! # Algorithm
//! 1. **Count chunks** ([`ChunkCounter`]): documents are split with the [`Splitter`] in parallel
//!    (rayon, one batch of documents at a time); each batch is counted into per-thread maps that
//!    borrow from the batch, and only chunks new to the global map are copied. Counts are `i64`.
//!    Memory is proportional to the unique chunks, never to the corpus.
//! 2. **Words**: unique chunks of two bytes or more, sorted by bytes (a canonical order that
//!    does not depend on hashing or threads), stored flat in one vector of ids (`u16` when the
//!    vocabulary has at most 65,536 ids, else `u32`) with offsets. Words shrink in place as
//!    they are merged; nothing is reallocated per word per merge.
//! 3. **Pair index**: for every pair, its weighted count and the list of words it occurs in,
//!    sharded by a hash of the pair and built in parallel (one task per shard, words in order),
//!    each shard an open-addressing table whose buckets are prefetched ahead of their updates
//!    (`pair_table.rs`).
//! 4. **Merge loop**: a max-heap on (count, smaller pair first) with lazy refresh, as rustbpe,
//!    that holds only the most frequent pairs and takes in more from the index when it runs
//!    dry ([`Queue`]).
//!    The words of the winning pair are merged in place, in parallel when there are many
//!    (disjoint word ranges carved out with `split_at_mut`), prefetching the words ahead in the
//!    list. Each range sums its count changes per neighbour of the merged pair; the sums are
//!    expanded to pairs and applied to the index once per pair. Sums of integers do not depend
//!    on the order, so **the merges are identical for any thread count** (tested).
//!
//! 5. **Optional second stage** ([`Stage2`], SuperBPE-style): documents are then counted with
//!    the coarse stage-2 pattern; stage 1 trains on the stage-1 split of those coarse chunks up
//!    to the transition vocabulary (each coarse chunk is split once, in parallel, and remembered
//!    as a list of stage-1 chunk ids); each coarse chunk is then encoded with the stage-1 tokens
//!    by tiktoken's rule (the state the final tokenizer reaches before any stage-2 rank applies)
//!    and steps 3–4 continue on these sequences. The encoding is assembled from the encodings
//!    of the distinct stage-1 chunks, computed once each, wherever no stage-1 token can span
//!    the boundary between two of them (the result is the same as encoding the whole chunk,
//!    tested). The tokenizer splits with the coarse pattern, so tiktoken with the exported
//!    pattern and ranks reproduces the training segmentation. Measured in `bench/RESULTS.md`.
//!
//! A merge whose bytes equal an existing token (possible when two different pairs spell the
//! same string) re-uses that token's id instead of minting a duplicate, so the vocabulary always
//! has distinct tokens and exports cleanly to tiktoken; [`TrainStats::duplicate_merges`] counts
//! these.

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::bpe::pair_key;
use crate::error::{Error, Result};
use crate::pair_table::{Entry, PairTable};
use crate::pattern::{SplitPattern, Splitter};
use crate::special::NANOCHAT_SPECIALS;
use crate::tokenizer::Tokenizer;

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Total vocabulary size *including* the special tokens (nanochat: 65,536 with 9 specials).
    pub vocab_size: u32,
    /// The split pattern.
    pub pattern: SplitPattern,
    /// Special tokens appended after the mergeable tokens, in this order.
    pub special_tokens: Vec<String>,
    /// Optional second stage over coarser chunks (see [`Stage2`]).
    pub stage2: Option<Stage2>,
}

/// A second training stage (SuperBPE-style): after the first `transition_vocab` ids (including
/// the specials, counted like `vocab_size`) have been learned on the chunks of
/// [`TrainConfig::pattern`], training continues on the coarser chunks of `pattern`. Each coarse
/// chunk starts as the stage-1 tokenizer's encoding of it with tiktoken's rule (exactly what the
/// final tokenizer does before any stage-2 merge applies), and the merges continue from there.
/// The trained tokenizer splits with the coarse `pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage2 {
    /// The coarse split pattern (the final tokenizer's pattern).
    pub pattern: SplitPattern,
    /// Vocabulary size (including the specials) at which stage 2 starts.
    pub transition_vocab: u32,
}

/// Where the second stage of [`TrainConfig::span`] starts (ids including the specials): once the
/// first merges have built the characters and the common kanji words. Chosen by held-out
/// compression at 32,768 and 65,536 (`bench/RESULTS.md`); lowered for small vocabularies.
pub const SPAN_TRANSITION_VOCAB: u32 = 1024;

/// The default: one stage of [`SplitPattern::Ja`] at nanochat's 65,536 with its 9 specials.
impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::one_stage(65_536, SplitPattern::Ja)
    }
}

impl TrainConfig {
    /// The best-compressing Japanese tokenizer measured (opt-in; `bench/RESULTS.md`): two stages,
    /// `ja-char` (characters and kanji words) up to [`SPAN_TRANSITION_VOCAB`] ids, then
    /// `ja-span` (letters up to whitespace or digits, punctuation included), which is also the
    /// trained tokenizer's split pattern. Below a vocabulary of twice [`SPAN_TRANSITION_VOCAB`]
    /// the second stage starts halfway (or right after the bytes and specials). Its coarse
    /// chunks are paragraph-sized and mostly unique, so training time and memory grow with the
    /// corpus much as with nanochat's pattern: cap large corpora with `max_chars`.
    pub fn span(vocab_size: u32) -> Self {
        let first = 256 + NANOCHAT_SPECIALS.len() as u32;
        TrainConfig {
            stage2: Some(Stage2 {
                pattern: SplitPattern::JaSpan,
                transition_vocab: SPAN_TRANSITION_VOCAB.min((vocab_size / 2).max(first)),
            }),
            ..TrainConfig::one_stage(vocab_size, SplitPattern::JaChar)
        }
    }

    /// One training stage with `pattern` (e.g. [`SplitPattern::Gpt4`]: nanochat's tokenizer,
    /// merge for merge) and nanochat's 9 special tokens.
    pub fn one_stage(vocab_size: u32, pattern: SplitPattern) -> Self {
        TrainConfig {
            vocab_size,
            pattern,
            special_tokens: NANOCHAT_SPECIALS.iter().map(|s| (*s).to_string()).collect(),
            stage2: None,
        }
    }

    /// The pattern documents are counted with: the stage-2 pattern when there is a second stage
    /// (stage-1 chunks are then the stage-1 split of each coarse chunk), else `pattern`.
    pub fn count_pattern(&self) -> &SplitPattern {
        self.stage2.as_ref().map_or(&self.pattern, |s| &s.pattern)
    }

    /// The split pattern of the trained tokenizer (the same as [`TrainConfig::count_pattern`]).
    pub fn final_pattern(&self) -> &SplitPattern {
        self.count_pattern()
    }

    /// Stage-1 merges: all of them without a second stage.
    ///
    /// # Errors
    /// As [`TrainConfig::merges`]; a transition vocabulary outside `256 + specials ..= vocab_size`.
    pub fn stage1_merges(&self) -> Result<u32> {
        let total = self.merges()?;
        match &self.stage2 {
            None => Ok(total),
            Some(s2) => {
                let specials = u32::try_from(self.special_tokens.len()).unwrap_or(u32::MAX);
                s2.transition_vocab
                    .checked_sub(256 + specials)
                    .filter(|m| *m <= total)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "transition vocab {} must lie between {} (bytes + specials) and the vocab size {}",
                            s2.transition_vocab,
                            256 + specials,
                            self.vocab_size
                        ))
                    })
            }
        }
    }

    /// Number of BPE merges this configuration asks for.
    ///
    /// # Errors
    /// A vocabulary too small for the 256 bytes plus the specials.
    pub fn merges(&self) -> Result<u32> {
        let specials = u32::try_from(self.special_tokens.len()).unwrap_or(u32::MAX);
        self.vocab_size.checked_sub(256 + specials).ok_or_else(|| {
            Error::Config(format!(
                "vocab size {} is smaller than 256 byte tokens + {specials} special tokens",
                self.vocab_size
            ))
        })
    }
}

/// Training phases, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Splitting documents and counting chunks.
    Count,
    /// Building the words and the initial pair counts.
    Index,
    /// The merge loop.
    Merge,
}

impl Phase {
    /// A short label for progress bars.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Count => "count",
            Phase::Index => "pair index",
            Phase::Merge => "merge",
        }
    }
}

/// Receives training progress. The CLI implements it with progress bars; the default methods
/// ignore everything.
pub trait Progress: Sync {
    /// A phase starts; `total` is its length in its own unit (documents, words, merges).
    fn start(&self, _phase: Phase, _total: Option<u64>) {}
    /// `done` units of the current phase are finished (a running total).
    fn update(&self, _phase: Phase, _done: u64) {}
    /// A phase ended after `seconds`.
    fn finish(&self, _phase: Phase, _seconds: f64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What the input looked like and what training cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainStats {
    /// Documents read.
    pub documents: u64,
    /// Characters used for training (after the document cap).
    pub chars: u64,
    /// Bytes used for training.
    pub bytes: u64,
    /// Documents cut by the document cap.
    pub capped_documents: u64,
    /// Characters the document cap removed.
    pub capped_chars: u64,
    /// Chunks produced by the split pattern.
    pub chunks: u64,
    /// Distinct chunks.
    pub unique_chunks: u64,
    /// Total bytes of the distinct chunks.
    pub unique_chunk_bytes: u64,
    /// Merges performed (vocabulary size minus 256 minus specials, unless the data ran out).
    pub merges: u32,
    /// Merges whose bytes equalled an existing token and reused its id.
    pub duplicate_merges: u32,
    /// Seconds in each phase: counting, index, merging.
    pub count_seconds: f64,
    pub index_seconds: f64,
    pub merge_seconds: f64,
    /// Threads used.
    pub threads: usize,
    /// Two-stage training only: merges of stage 1, distinct stage-1 chunks (the stage-1 split of
    /// the distinct coarse chunks) and seconds spent preparing stage 2 (encoding the coarse
    /// chunks with the stage-1 tokens and indexing them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2: Option<Stage2Stats>,
}

/// Statistics of the second stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stage2Stats {
    /// Merges learned in stage 1.
    pub stage1_merges: u32,
    /// Distinct stage-1 chunks.
    pub stage1_unique_chunks: u64,
    /// Seconds to encode and index the coarse chunks.
    pub prepare_seconds: f64,
    /// Runs of stage-1 chunks encoded together because a stage-1 token could span the
    /// boundaries between them (everything else is assembled from the encodings of the distinct
    /// stage-1 chunks, each computed once).
    #[serde(default)]
    pub joined_encodes: u64,
}

/// Counts the chunks of documents; the first half of training.
#[derive(Debug)]
pub struct ChunkCounter {
    splitter: Splitter,
    pattern: SplitPattern,
    doc_cap: Option<usize>,
    counts: FxHashMap<Box<str>, i64>,
    stats: TrainStats,
    seconds: f64,
}

impl ChunkCounter {
    /// A counter for `pattern`; documents longer than `doc_cap` characters are cut to it
    /// (nanochat uses 10,000), and the cut is counted in the stats.
    ///
    /// # Errors
    /// A custom pattern that does not compile.
    pub fn new(pattern: &SplitPattern, doc_cap: Option<usize>) -> Result<Self> {
        Ok(ChunkCounter {
            splitter: Splitter::new(pattern)?,
            pattern: pattern.clone(),
            doc_cap,
            counts: FxHashMap::default(),
            stats: TrainStats::default(),
            seconds: 0.0,
        })
    }

    /// Counts a batch of documents (in parallel). Feed batches of a few thousand documents or a
    /// few MB; the batch is held in memory, the corpus never is.
    ///
    /// # Errors
    /// Only a custom pattern can fail to split.
    pub fn add_documents<S: AsRef<str> + Sync>(&mut self, docs: &[S]) -> Result<()> {
        let t0 = Instant::now();
        let cap = self.doc_cap;
        let splitter = &self.splitter;
        type Local<'a> = (FxHashMap<&'a str, i64>, [u64; 5]);
        let (local, s) = docs
            .par_iter()
            .map(|d| cap_text(d.as_ref(), cap))
            .try_fold(
                || -> Local<'_> { (FxHashMap::default(), [0; 5]) },
                |(mut m, mut s), (text, cut_chars)| {
                    let mut n = 0u64;
                    splitter.for_each(text, |c| {
                        n += 1;
                        *m.entry(c).or_insert(0) += 1;
                    })?;
                    s[0] += text.chars().count() as u64;
                    s[1] += text.len() as u64;
                    s[2] += u64::from(cut_chars > 0);
                    s[3] += cut_chars as u64;
                    s[4] += n;
                    Ok::<_, Error>((m, s))
                },
            )
            .try_reduce(
                || (FxHashMap::default(), [0; 5]),
                |(mut a, sa), (b, sb)| {
                    let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                    for (k, v) in small {
                        *big.entry(k).or_insert(0) += v;
                    }
                    a = big;
                    let mut s = sa;
                    for i in 0..5 {
                        s[i] += sb[i];
                    }
                    Ok((a, s))
                },
            )?;
        for (k, v) in local {
            if let Some(c) = self.counts.get_mut(k) {
                *c += v;
            } else {
                self.counts.insert(k.into(), v);
            }
        }
        self.stats.documents += docs.len() as u64;
        self.stats.chars += s[0];
        self.stats.bytes += s[1];
        self.stats.capped_documents += s[2];
        self.stats.capped_chars += s[3];
        self.stats.chunks += s[4];
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// Statistics so far (documents, characters, chunks…).
    pub fn stats(&self) -> TrainStats {
        let mut s = self.stats.clone();
        s.unique_chunks = self.counts.len() as u64;
        s.unique_chunk_bytes = self.counts.keys().map(|k| k.len() as u64).sum();
        s.count_seconds = self.seconds;
        s
    }

    /// Characters counted so far.
    pub fn chars(&self) -> u64 {
        self.stats.chars
    }

    /// Runs the merges and builds the tokenizer.
    ///
    /// # Errors
    /// A vocabulary size that cannot hold the bytes and the specials.
    pub fn train(
        self,
        config: &TrainConfig,
        progress: &dyn Progress,
    ) -> Result<(Tokenizer, TrainStats)> {
        if *config.count_pattern() != self.pattern {
            return Err(Error::Config(format!(
                "chunks were counted with pattern {} but the config asks for {}",
                self.pattern,
                config.count_pattern()
            )));
        }
        let n_merges = config.merges()?;
        let n_stage1 = config.stage1_merges()?;
        let mut stats = self.stats();
        stats.threads = rayon::current_num_threads();

        let t0 = Instant::now();
        let mut coarse: Vec<(Box<str>, i64)> = self.counts.into_iter().collect();
        progress.start(Phase::Index, Some(coarse.len() as u64));
        coarse.par_sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let (tokens, dups) = match &config.stage2 {
            None => {
                let target = 256 + n_merges as usize;
                let words = AnyWords::new(
                    Words::new(coarse.into_iter().filter(|(k, _)| k.len() >= 2)),
                    target,
                );
                let index = words.index();
                stats.index_seconds = t0.elapsed().as_secs_f64();
                progress.finish(Phase::Index, stats.index_seconds);
                let t1 = Instant::now();
                progress.start(Phase::Merge, Some(u64::from(n_merges)));
                let out = words.merge(index, bytes, target, progress);
                stats.merge_seconds = t1.elapsed().as_secs_f64();
                out
            }
            Some(_) => {
                // Stage 1 on the fine split of the coarse chunks.
                let splitter = Splitter::new(&config.pattern)?;
                let fine = fine_chunks(&coarse, &splitter)?;
                tracing::debug!(
                    seconds = t0.elapsed().as_secs_f64(),
                    fine_chunks = fine.chunks.len(),
                    "coarse chunks sorted and split"
                );
                let mut s2 = Stage2Stats {
                    stage1_merges: n_stage1,
                    stage1_unique_chunks: fine.chunks.len() as u64,
                    ..Stage2Stats::default()
                };
                // Sorted by bytes, as in one-stage training: similar words sit together, which
                // keeps the merge loop's memory accesses local.
                let mut sorted: Vec<(&str, i64)> = fine
                    .chunks
                    .iter()
                    .filter(|(k, _)| k.len() >= 2)
                    .copied()
                    .collect();
                sorted.par_sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let target1 = 256 + n_stage1 as usize;
                let words = AnyWords::new(Words::new(sorted.into_iter()), target1);
                let index = words.index();
                stats.index_seconds = t0.elapsed().as_secs_f64();
                progress.finish(Phase::Index, stats.index_seconds);
                let t1 = Instant::now();
                progress.start(Phase::Merge, Some(u64::from(n_merges)));
                let (tokens, dups1) = words.merge(index, bytes, target1, progress);
                // Stage 2 on the coarse chunks, each encoded with the stage-1 tokens.
                let t2 = Instant::now();
                let bpe = crate::bpe::Bpe::new(tokens.clone())?;
                let target = 256 + n_merges as usize;
                let (words, joined) = encode_coarse(&bpe, &coarse, &fine);
                let words = AnyWords::new(words, target);
                drop(fine);
                drop_in_background(coarse);
                let index = words.index();
                s2.prepare_seconds = t2.elapsed().as_secs_f64();
                s2.joined_encodes = joined;
                tracing::debug!(
                    seconds = s2.prepare_seconds,
                    coarse_words = words.n(),
                    joined_encodes = joined,
                    "stage 2 prepared"
                );
                stats.stage2 = Some(s2);
                let (tokens, dups2) = words.merge(index, tokens, target, progress);
                stats.merge_seconds = t1.elapsed().as_secs_f64();
                (tokens, dups1 + dups2)
            }
        };
        stats.merges = (tokens.len() - 256) as u32;
        stats.duplicate_merges = dups;
        progress.finish(Phase::Merge, stats.merge_seconds);

        let specials: Vec<&str> = config.special_tokens.iter().map(String::as_str).collect();
        let tok = Tokenizer::from_tokens(tokens, config.final_pattern().clone(), &specials)?;
        Ok((tok, stats))
    }
}

/// The stage-1 split of the coarse chunks.
struct FineSplit<'a> {
    /// Distinct stage-1 chunks (borrowed from the coarse chunks) with their summed counts, in a
    /// canonical order that depends only on the order of the coarse chunks, not on the threads:
    /// by [`FINE_SHARDS`] shard of their hash, then by first occurrence.
    chunks: Vec<(&'a str, i64)>,
    /// The stage-1 chunks of coarse chunk `i`, as indices into `chunks`:
    /// `seq[ends[i]..ends[i + 1]]`, and their lengths in bytes (`bytes[ends[i]..ends[i + 1]]`).
    seq: Vec<u32>,
    bytes: Vec<u32>,
    ends: Vec<usize>,
}

/// Shards of the stage-1 chunk dictionary (a constant, so that the order does not depend on
/// the threads).
const FINE_SHARDS: usize = 16;

#[inline]
fn fine_shard(f: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(f);
    (h >> 60) as usize % FINE_SHARDS
}

/// Splits every coarse chunk with `fine`, in parallel over ranges of chunks; the per-range
/// dictionaries are then merged in parallel over shards, each shard taking the ranges in order.
fn fine_chunks<'a>(coarse: &'a [(Box<str>, i64)], fine: &Splitter) -> Result<FineSplit<'a>> {
    struct Local<'a> {
        /// Per shard: (local id, chunk, count) in order of first occurrence.
        shards: Vec<Vec<(u32, &'a str, i64)>>,
        /// Local id -> (shard, index in that shard's list).
        at: Vec<(u8, u32)>,
        seq: Vec<u32>,
        bytes: Vec<u32>,
        lens: Vec<u32>,
    }
    let per = coarse
        .len()
        .div_ceil(rayon::current_num_threads() * 4)
        .max(1);
    let locals: Vec<Local<'a>> = coarse
        .par_chunks(per)
        .map(|part| {
            let mut map: FxHashMap<&str, u32> = FxHashMap::default();
            let mut l = Local {
                shards: vec![Vec::new(); FINE_SHARDS],
                at: Vec::new(),
                seq: Vec::new(),
                bytes: Vec::new(),
                lens: Vec::with_capacity(part.len()),
            };
            for (k, c) in part {
                let n = l.seq.len();
                fine.for_each(k, |f| {
                    let next = l.at.len() as u32;
                    let id = *map.entry(f).or_insert(next);
                    if id == next {
                        let sh = fine_shard(f);
                        l.at.push((sh as u8, l.shards[sh].len() as u32));
                        l.shards[sh].push((id, f, 0));
                    }
                    let (sh, i) = l.at[id as usize];
                    l.shards[usize::from(sh)][i as usize].2 += *c;
                    l.seq.push(id);
                    l.bytes.push(f.len() as u32);
                })?;
                l.lens.push((l.seq.len() - n) as u32);
            }
            Ok(l)
        })
        .collect::<Result<_>>()?;
    // Per shard: its distinct chunks, and (local index, shard index) for every range.
    type Shard<'a> = (Vec<(&'a str, i64)>, Vec<Vec<(u32, u32)>>);
    let shards: Vec<Shard<'a>> = (0..FINE_SHARDS)
        .into_par_iter()
        .map(|sh| {
            let mut map: FxHashMap<&str, u32> = FxHashMap::default();
            let mut chunks: Vec<(&'a str, i64)> = Vec::new();
            let assigned = locals
                .iter()
                .map(|l| {
                    let mut a = Vec::with_capacity(l.shards[sh].len());
                    for &(i, f, c) in &l.shards[sh] {
                        let next = chunks.len() as u32;
                        let id = *map.entry(f).or_insert(next);
                        if id == next {
                            chunks.push((f, 0));
                        }
                        chunks[id as usize].1 += c;
                        a.push((i, id));
                    }
                    a
                })
                .collect();
            (chunks, assigned)
        })
        .collect();
    let mut base = Vec::with_capacity(FINE_SHARDS);
    let mut total = 0u32;
    for (chunks, _) in &shards {
        base.push(total);
        total += chunks.len() as u32;
    }
    let seqs: Vec<Vec<u32>> = locals
        .par_iter()
        .enumerate()
        .map(|(li, l)| {
            let mut remap = vec![0u32; l.at.len()];
            for ((_, assigned), b) in shards.iter().zip(&base) {
                for &(i, id) in &assigned[li] {
                    remap[i as usize] = b + id;
                }
            }
            l.seq.iter().map(|&i| remap[i as usize]).collect()
        })
        .collect();
    let mut ends = Vec::with_capacity(coarse.len() + 1);
    ends.push(0);
    for l in &locals {
        for &n in &l.lens {
            ends.push(ends.last().copied().unwrap_or(0) + n as usize);
        }
    }
    let bytes = locals
        .iter()
        .flat_map(|l| l.bytes.iter().copied())
        .collect();
    Ok(FineSplit {
        chunks: shards.into_iter().flat_map(|(c, _)| c).collect(),
        seq: seqs.concat(),
        bytes,
        ends,
    })
}

/// The stage-2 words: every coarse chunk of two or more stage-1 tokens, encoded with the stage-1
/// tokens by tiktoken's rule, in the order of `coarse`. Returns the words and the number of
/// runs of stage-1 chunks that had to be encoded together.
///
/// tiktoken merges a chunk's parts lowest rank first; when no token of `bpe` can span a
/// boundary between two stage-1 chunks of a coarse chunk, no part ever spans one, each side
/// merges exactly as it would alone, and the encoding of the coarse chunk is the concatenation
/// of the encodings of its stage-1 chunks, each computed once. [`Crossings`] rules out
/// spanning tokens (it may answer "maybe", never wrongly "no"); the stage-1 chunks around a
/// "maybe" are encoded together, exactly as tiktoken would encode them inside the chunk.
fn encode_coarse(
    bpe: &crate::bpe::Bpe,
    coarse: &[(Box<str>, i64)],
    fine: &FineSplit<'_>,
) -> (Words, u64) {
    let tasks = rayon::current_num_threads() * 4;
    // Each stage-1 chunk merged alone (no whole-chunk shortcut: inside a longer chunk its bytes
    // are merged like any others).
    let per = fine.chunks.len().div_ceil(tasks).max(1);
    let parts: Vec<(Vec<u32>, Vec<u32>)> = fine
        .chunks
        .par_chunks(per)
        .map(|part| {
            let (mut ids, mut ends) = (Vec::new(), Vec::with_capacity(part.len()));
            for (k, _) in part {
                let b = k.as_bytes();
                if b.len() == 1 {
                    bpe.encode_chunk(b, &mut ids);
                } else {
                    bpe.merge(b, &mut ids);
                }
                ends.push(ids.len() as u32);
            }
            (ids, ends)
        })
        .collect();
    let mut cache: Vec<u32> = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    let mut start: Vec<usize> = Vec::with_capacity(fine.chunks.len() + 1);
    start.push(0);
    for (ids, ends) in parts {
        let base = cache.len();
        start.extend(ends.iter().map(|&e| base + e as usize));
        cache.extend_from_slice(&ids);
    }
    let crossings = Crossings::new(bpe);

    let per = coarse.len().div_ceil(tasks).max(1);
    /// Per range of coarse chunks: ids, word lengths, counts, joined runs.
    type Part = (Vec<u32>, Vec<u32>, Vec<i64>, u64);
    let parts: Vec<Part> = coarse
        .par_chunks(per)
        .enumerate()
        .map(|(p, part)| {
            let (mut ids, mut lens, mut counts, mut whole) =
                (Vec::new(), Vec::new(), Vec::new(), 0);
            for (j, (k, c)) in part.iter().enumerate() {
                let i = p * per + j;
                let b = k.as_bytes();
                let pieces = &fine.seq[fine.ends[i]..fine.ends[i + 1]];
                let n = ids.len();
                if pieces.len() == 1 {
                    // The coarse chunk is one stage-1 chunk: tiktoken's whole-chunk shortcut,
                    // else its merge.
                    if !bpe.encode_direct(b, &mut ids) {
                        let f = pieces[0] as usize;
                        ids.extend_from_slice(&cache[start[f]..start[f + 1]]);
                    }
                } else {
                    // Runs of stage-1 chunks joined by boundaries a token may span are merged
                    // as one (the whole chunk, shortcut included, when that is all of it).
                    let lens = &fine.bytes[fine.ends[i]..fine.ends[i + 1]];
                    let (mut pos, mut from, mut group) = (0, 0, 0);
                    for (q, &len) in lens.iter().enumerate() {
                        if q > 0 && !crossings.may_cross(b, pos) {
                            if group == 1 {
                                let g = pieces[q - 1] as usize;
                                ids.extend_from_slice(&cache[start[g]..start[g + 1]]);
                            } else {
                                whole += 1;
                                bpe.merge(&b[from..pos], &mut ids);
                            }
                            from = pos;
                            group = 0;
                        }
                        group += 1;
                        pos += len as usize;
                    }
                    if from == 0 {
                        whole += 1;
                        bpe.encode_chunk(b, &mut ids);
                    } else if group == 1 {
                        let g = *pieces.last().expect("pieces") as usize;
                        ids.extend_from_slice(&cache[start[g]..start[g + 1]]);
                    } else {
                        whole += 1;
                        bpe.merge(&b[from..], &mut ids);
                    }
                }
                if ids.len() - n < 2 {
                    ids.truncate(n);
                } else {
                    lens.push((ids.len() - n) as u32);
                    counts.push(*c);
                }
            }
            (ids, lens, counts, whole)
        })
        .collect();
    let mut w = Words {
        ids: Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum()),
        start: vec![0],
        len: Vec::new(),
        count: Vec::new(),
    };
    let mut whole = 0;
    for (ids, lens, counts, wh) in parts {
        for l in &lens {
            let s = *w.start.last().expect("non-empty");
            w.start.push(s + *l as usize);
        }
        w.ids.extend_from_slice(&ids);
        w.len.extend_from_slice(&lens);
        w.count.extend_from_slice(&counts);
        whole += wh;
    }
    (w, whole)
}

/// Which byte contexts a token of a vocabulary spans: for every token and every inner
/// position, the up-to-3 bytes on each side (fewer where the token ends), so that "can a
/// token span position `pos` of this text" is answered with at most 9 set look-ups.
struct Crossings {
    /// Byte bigrams inside some token (a quick "no").
    bigrams: Vec<u64>,
    keys: rustc_hash::FxHashSet<u64>,
}

impl Crossings {
    fn new(bpe: &crate::bpe::Bpe) -> Self {
        let mut bigrams = vec![0u64; 1 << 10];
        let mut keys = rustc_hash::FxHashSet::default();
        for t in bpe.tokens() {
            for p in 1..t.len() {
                let bg = (usize::from(t[p - 1]) << 8) | usize::from(t[p]);
                bigrams[bg >> 6] |= 1 << (bg & 63);
                keys.insert(Self::key(
                    &t[p.saturating_sub(3)..p],
                    &t[p..t.len().min(p + 3)],
                ));
            }
        }
        Crossings { bigrams, keys }
    }

    /// Left bytes (1–3), right bytes (1–3) and both lengths in one integer.
    #[inline]
    fn key(left: &[u8], right: &[u8]) -> u64 {
        let mut k = 0u64;
        for &x in left {
            k = (k << 8) | u64::from(x);
        }
        k = (k << 2) | left.len() as u64;
        for &x in right {
            k = (k << 8) | u64::from(x);
        }
        (k << 2) | right.len() as u64
    }

    /// Whether some token could cover bytes on both sides of `text[pos]` (`0 < pos < len`).
    /// A token that does has some left length `ll` (exact below 3, else its last 3 bytes) and
    /// right length `rl` with exactly those bytes around `pos`, so "no" is always right.
    #[inline]
    fn may_cross(&self, text: &[u8], pos: usize) -> bool {
        let bg = (usize::from(text[pos - 1]) << 8) | usize::from(text[pos]);
        if self.bigrams[bg >> 6] & (1 << (bg & 63)) == 0 {
            return false;
        }
        let (la, ra) = (pos.min(3), (text.len() - pos).min(3));
        (1..=la).any(|ll| {
            (1..=ra).any(|rl| {
                self.keys
                    .contains(&Self::key(&text[pos - ll..pos], &text[pos..pos + rl]))
            })
        })
    }
}

/// Cuts `text` to at most `cap` characters; returns the kept text and the number of chars cut.
fn cap_text(text: &str, cap: Option<usize>) -> (&str, usize) {
    match cap {
        Some(cap) if text.len() > cap => match text.char_indices().nth(cap) {
            Some((i, _)) => (&text[..i], text[i..].chars().count()),
            None => (text, 0),
        },
        _ => (text, 0),
    }
}

/// Convenience: trains on an iterator of documents, reading batches, honouring `max_chars`
/// (stop once this many characters have been counted, nanochat style) and `doc_cap`.
///
/// # Errors
/// As [`ChunkCounter::add_documents`] and [`ChunkCounter::train`].
pub fn train_from_iter<I, S>(
    docs: I,
    config: &TrainConfig,
    doc_cap: Option<usize>,
    max_chars: Option<u64>,
    progress: &dyn Progress,
) -> Result<(Tokenizer, TrainStats)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str> + Sync,
{
    let mut counter = ChunkCounter::new(config.count_pattern(), doc_cap)?;
    progress.start(Phase::Count, None);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut chars = 0u64;
    for d in docs {
        if max_chars.is_some_and(|m| chars >= m) {
            break;
        }
        let n = d.as_ref().chars().count();
        chars += doc_cap.map_or(n, |c| n.min(c)) as u64;
        batch_bytes += d.as_ref().len();
        batch.push(d);
        if batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES {
            counter.add_documents(&batch)?;
            progress.update(Phase::Count, counter.stats.documents);
            batch.clear();
            batch_bytes = 0;
        }
    }
    counter.add_documents(&batch)?;
    progress.update(Phase::Count, counter.stats.documents);
    progress.finish(Phase::Count, counter.seconds);
    counter.train(config, progress)
}

/// Documents per counting batch.
pub const BATCH_DOCS: usize = 8192;
/// Bytes per counting batch.
pub const BATCH_BYTES: usize = 32 << 20;

// ---------------------------------------------------------------------------------------------

/// Unique chunks as symbol sequences, flat. The merge loop runs on `u16` ids when every id of
/// the vocabulary fits ([`AnyWords`]): half the memory to scan and move, and the words of a
/// second stage then mostly fit in the last-level cache.
struct Words<T = u32> {
    /// Symbols of all words, word i at `start[i]..start[i] + len[i]` (capacity up to `start[i+1]`).
    ids: Vec<T>,
    start: Vec<usize>,
    len: Vec<u32>,
    count: Vec<i64>,
}

impl Words {
    fn new<S: AsRef<str>>(chunks: impl Iterator<Item = (S, i64)>) -> Self {
        let mut w = Words {
            ids: Vec::new(),
            start: vec![0],
            len: Vec::new(),
            count: Vec::new(),
        };
        for (k, c) in chunks {
            let k = k.as_ref().as_bytes();
            w.ids.extend(k.iter().map(|&b| u32::from(b)));
            w.start.push(w.ids.len());
            w.len.push(k.len() as u32);
            w.count.push(c);
        }
        w
    }
}

impl<T> Words<T> {
    fn n(&self) -> usize {
        self.len.len()
    }
}

impl Words<u32> {
    /// The same words with `u16` ids; only called when every id of the vocabulary is below
    /// 65,536 (checked: a wider id is a bug, never a silent truncation).
    fn narrow(self) -> Words<u16> {
        Words {
            ids: self
                .ids
                .iter()
                .map(|&x| u16::try_from(x).expect("ids of a vocabulary of at most 65,536"))
                .collect(),
            start: self.start,
            len: self.len,
            count: self.count,
        }
    }
}

/// A token id as stored in [`Words`].
trait Id: Copy + Eq + Send + Sync + Into<u32> + 'static {
    fn new(x: u32) -> Self;
}

impl Id for u16 {
    #[inline]
    fn new(x: u32) -> Self {
        debug_assert!(x <= u32::from(u16::MAX));
        x as u16
    }
}

impl Id for u32 {
    #[inline]
    fn new(x: u32) -> Self {
        x
    }
}

/// Words with the narrowest ids that hold every id below the target vocabulary.
enum AnyWords {
    Narrow(Words<u16>),
    Wide(Words<u32>),
}

impl AnyWords {
    fn new(words: Words<u32>, target: usize) -> Self {
        if target <= 1 << 16 {
            AnyWords::Narrow(words.narrow())
        } else {
            AnyWords::Wide(words)
        }
    }

    fn n(&self) -> usize {
        match self {
            AnyWords::Narrow(w) => w.n(),
            AnyWords::Wide(w) => w.n(),
        }
    }

    fn index(&self) -> PairIndex {
        match self {
            AnyWords::Narrow(w) => PairIndex::build(w),
            AnyWords::Wide(w) => PairIndex::build(w),
        }
    }

    /// [`merge_loop`] on these words.
    fn merge(
        self,
        index: PairIndex,
        tokens: Vec<Vec<u8>>,
        target: usize,
        progress: &dyn Progress,
    ) -> (Vec<Vec<u8>>, u32) {
        // On a worker of the pool: a merge's parallel word ranges then reach the other
        // workers through the local queue instead of the pool's injector (a sleeping worker
        // woken from outside for every merge).
        rayon::scope(|_| match self {
            AnyWords::Narrow(w) => merge_loop(w, index, tokens, target, progress),
            AnyWords::Wide(w) => merge_loop(w, index, tokens, target, progress),
        })
    }
}

/// Count and word list of one pair.
#[derive(Default)]
struct Slot {
    count: i64,
    /// Words that may contain the pair (may hold stale entries and duplicates).
    words: WordList,
}

/// A list of word indices that keeps its first entry inline: most pairs of a large index occur
/// in one word only, and then need no allocation of their own. The rest sits behind one thin
/// pointer, so that an index slot takes 24 bytes instead of 40.
struct WordList {
    /// The first entry, [`WordList::EMPTY`] when there is none.
    first: u32,
    // Deliberately boxed: one pointer in the slot instead of a three-word `Vec` (most lists
    // never need the rest); the extra allocation is paid only by lists of two words or more.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<u32>>>,
}

impl Default for WordList {
    fn default() -> Self {
        WordList {
            first: Self::EMPTY,
            rest: None,
        }
    }
}

impl WordList {
    const EMPTY: u32 = u32::MAX;

    #[inline]
    fn last(&self) -> Option<u32> {
        match self.rest.as_deref().and_then(|v| v.last()) {
            Some(&w) => Some(w),
            None => (self.first != Self::EMPTY).then_some(self.first),
        }
    }

    #[inline]
    fn push(&mut self, w: u32) {
        debug_assert_ne!(w, Self::EMPTY);
        if self.first == Self::EMPTY {
            self.first = w;
        } else {
            self.rest.get_or_insert_with(Box::default).push(w);
        }
    }

    fn extend_from_slice(&mut self, ws: &[u32]) {
        if let Some((&w, more)) = ws.split_first() {
            self.push(w);
            if !more.is_empty() {
                self.rest
                    .get_or_insert_with(Box::default)
                    .extend_from_slice(more);
            }
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first != Self::EMPTY) + self.rest.as_deref().map_or(0, Vec::len)
    }

    /// All entries (in no particular order), leaving the list empty.
    fn take(&mut self) -> Vec<u32> {
        let mut v = self.rest.take().map_or_else(Vec::new, |b| *b);
        if self.first != Self::EMPTY {
            v.push(self.first);
            self.first = Self::EMPTY;
        }
        v
    }
}

/// Pair -> slot, sharded by a hash of the pair so that the index is built in parallel without
/// per-thread copies (each shard is built by one task scanning all words).
struct PairIndex {
    shards: Vec<PairTable<Slot>>,
    shift: u32,
    /// Word-list entries at build time (the rebuild trigger uses it).
    entries: usize,
}

impl PairIndex {
    fn build<T: Id>(words: &Words<T>) -> Self {
        let t0 = Instant::now();
        let n_shards = (rayon::current_num_threads() * 2).next_power_of_two();
        let shift = 64 - n_shards.trailing_zeros();
        let shards: Vec<PairTable<Slot>> = (0..n_shards)
            .into_par_iter()
            .map(|sh| {
                let mut m: PairTable<Slot> = PairTable::default();
                let add = |m: &mut PairTable<Slot>, (key, w, c): (u64, u32, i64)| {
                    let slot = m.get_or_default(key);
                    slot.count += c;
                    if slot.words.last() != Some(w) {
                        slot.words.push(w);
                    }
                };
                // Occurrences wait in a small ring while their buckets are prefetched: the
                // table is larger than the cache, and its updates are otherwise one miss
                // after another. First in, first out: the same updates in the same order.
                let mut ring = [(0u64, 0u32, 0i64); BUILD_AHEAD];
                let mut queued = 0usize;
                for w in 0..words.n() {
                    let s = &words.ids[words.start[w]..words.start[w] + words.len[w] as usize];
                    let c = words.count[w];
                    for p in s.windows(2) {
                        let key = pair_key(p[0].into(), p[1].into());
                        if shard_of(key, shift) != sh {
                            continue;
                        }
                        m.prefetch(key);
                        let at = queued % BUILD_AHEAD;
                        if queued >= BUILD_AHEAD {
                            add(&mut m, ring[at]);
                        }
                        ring[at] = (key, w as u32, c);
                        queued += 1;
                    }
                }
                for i in queued.saturating_sub(BUILD_AHEAD)..queued {
                    add(&mut m, ring[i % BUILD_AHEAD]);
                }
                m
            })
            .collect();
        let entries = shards
            .iter()
            .flat_map(|m| m.values())
            .map(|s| s.words.len())
            .sum();
        tracing::debug!(
            seconds = t0.elapsed().as_secs_f64(),
            pairs = shards.iter().map(PairTable::len).sum::<usize>(),
            entries,
            "pair index built"
        );
        PairIndex {
            shards,
            shift,
            entries,
        }
    }

    /// Word-list entries that may be added before [`rebuild_if_due`] rebuilds the index.
    fn rebuild_after(&self) -> usize {
        (2 * self.entries).max(REBUILD_MIN)
    }

    #[inline]
    fn map(&mut self, key: u64) -> &mut PairTable<Slot> {
        let i = shard_of(key, self.shift);
        &mut self.shards[i]
    }

    #[inline]
    fn prefetch(&self, key: u64) {
        self.shards[shard_of(key, self.shift)].prefetch(key);
    }

    #[inline]
    fn count(&self, key: u64) -> i64 {
        self.shards[shard_of(key, self.shift)]
            .get(key)
            .map_or(0, |s| s.count)
    }
}

#[inline]
fn shard_of(key: u64, shift: u32) -> usize {
    if shift >= 64 {
        0
    } else {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }
}

/// Count changes summed per key, with the words that gained each key; kept across merges so
/// that its tables and word lists are allocated once.
///
/// Used twice per merge: a word range sums its occurrences per *neighbour* (an occurrence of
/// `(a, b)` with left neighbour `x` turns one `(x, a)` into `(x, new)`, one with right
/// neighbour `y` turns `(b, y)` into `(new, y)`: two updates per occurrence instead of five,
/// keys [`LEFT`]` | x` and `y`), then [`MergeDeltas::absorb_neighbours`] expands those sums into
/// the per-*pair* changes of the whole merge, which touch the large, cache-cold index once per
/// pair ([`MergeDeltas::apply`]).
#[derive(Default)]
struct MergeDeltas {
    /// Pair -> position in `entries`.
    at: FxHashMap<u64, u32>,
    /// Entries in first-touch order; only the first `used` are live (the rest keep their
    /// allocations for the next merge).
    entries: Vec<DeltaEntry>,
    used: usize,
}

/// Neighbour-sum key of a left neighbour (a right neighbour's key is its id).
const LEFT: u64 = 1 << 63;

#[derive(Default)]
struct DeltaEntry {
    /// A pair ([`pair_key`]) or a neighbour ([`LEFT`]).
    pair: u64,
    count: i64,
    /// Words that gained the pair, ascending, each once; a pair that gained anywhere is offered
    /// to the merge queue again.
    words: Vec<u32>,
}

impl MergeDeltas {
    /// `at` tables above this many buckets are dropped after a merge that used few of them
    /// (clearing costs the capacity, not the use).
    const KEEP_BUCKETS: usize = 1 << 14;

    /// The entry of `pair`, created (with nothing summed) on first use in this merge.
    #[inline]
    fn entry(&mut self, pair: u64) -> &mut DeltaEntry {
        use std::collections::hash_map::Entry;
        let i = match self.at.entry(pair) {
            Entry::Occupied(e) => *e.get() as usize,
            Entry::Vacant(e) => {
                let i = self.used;
                e.insert(i as u32);
                if i == self.entries.len() {
                    self.entries.push(DeltaEntry::default());
                }
                let en = &mut self.entries[i];
                en.pair = pair;
                en.count = 0;
                en.words.clear();
                self.used += 1;
                i
            }
        };
        &mut self.entries[i]
    }

    /// Adds an occurrence of weight `c` in word `w` to a neighbour's sum.
    #[inline]
    fn add(&mut self, neighbour: u64, c: i64, w: u32) {
        let en = self.entry(neighbour);
        en.count += c;
        if en.words.last() != Some(&w) {
            en.words.push(w);
        }
    }

    /// Adds a word range's neighbour sums (see the type) as pair changes; `merged` is the
    /// range's summed count of the merged pair. Ranges absorbed in ascending word order keep
    /// the word lists ascending.
    fn absorb_neighbours(&mut self, sums: &MergeDeltas, merged: i64, (a, b, new): (u32, u32, u32)) {
        self.entry(pair_key(a, b)).count -= merged;
        for en in sums.live() {
            let (lost, gained) = if en.pair & LEFT != 0 {
                let x = (en.pair & !LEFT) as u32;
                (pair_key(x, a), pair_key(x, new))
            } else {
                let y = en.pair as u32;
                (pair_key(b, y), pair_key(new, y))
            };
            self.entry(lost).count -= en.count;
            let g = self.entry(gained);
            g.count += en.count;
            g.words.extend_from_slice(&en.words);
        }
    }

    fn live(&self) -> &[DeltaEntry] {
        &self.entries[..self.used]
    }

    /// The summed change of `pair`'s count (0 when untouched).
    #[inline]
    fn delta(&self, pair: u64) -> i64 {
        self.at
            .get(&pair)
            .map_or(0, |&i| self.entries[i as usize].count)
    }

    /// The words that gained `pair`.
    fn gained_words(&self, pair: u64) -> &[u32] {
        self.at
            .get(&pair)
            .map_or(&[][..], |&i| &self.entries[i as usize].words)
    }

    /// At most the word-list entries [`MergeDeltas::apply`] will add.
    fn max_pushed(&self) -> usize {
        self.live().iter().map(|en| en.words.len()).sum()
    }

    /// Offers every pair that gained to the queue at the count [`MergeDeltas::apply`] will give
    /// it (kept if at or above the floor). `fresh`: the merge made a new token, so no pair that
    /// gained (they all hold it) is in the index yet.
    fn offer_gains(&self, index: &PairIndex, queue: &mut Queue, fresh: bool) {
        for en in self.live() {
            if !en.words.is_empty() {
                let count = en.count + if fresh { 0 } else { index.count(en.pair) };
                if count > 0 {
                    queue.offer(count, en.pair);
                }
            }
        }
    }

    /// Applies the summed changes to the index: each pair's count once, each gaining word
    /// appended to the pair's list; `pushed` counts the word-list entries added. A pair whose
    /// count reaches zero occurs nowhere any more: its slot (and its list of stale word indices)
    /// is freed. The queue hears of the pairs that gained from [`MergeDeltas::offer_gains`],
    /// before the next pair is chosen.
    fn apply(&mut self, index: &mut PairIndex, pushed: &mut usize) {
        let live = &mut self.entries[..self.used];
        for i in 0..live.len() {
            // The index is far larger than the cache: fetch the buckets of the next pairs
            // while this one is updated.
            if let Some(ahead) = live.get(i + APPLY_AHEAD) {
                index.prefetch(ahead.pair);
            }
            let en = &live[i];
            match index.map(en.pair).entry(en.pair) {
                Entry::Occupied(mut e) => {
                    let s = e.get_mut();
                    s.count += en.count;
                    if s.count == 0 {
                        e.remove();
                    } else {
                        s.words.extend_from_slice(&en.words);
                        *pushed += en.words.len();
                    }
                }
                Entry::Vacant(e) => {
                    // A pair new to the index can only have gained (losses need occurrences
                    // it had); its sum is zero when a later occurrence of the same merge undid
                    // the gain (`x a b a b`: the pair (new, a) comes and goes).
                    if en.count > 0 {
                        let mut words = WordList::default();
                        words.extend_from_slice(&en.words);
                        *pushed += en.words.len();
                        e.insert(Slot {
                            count: en.count,
                            words,
                        });
                    }
                }
            }
        }
        self.clear();
    }

    fn clear(&mut self) {
        if self.at.capacity() > Self::KEEP_BUCKETS && self.used < self.at.capacity() / 8 {
            self.at = FxHashMap::default();
            self.entries = Vec::new();
        } else {
            self.at.clear();
        }
        self.used = 0;
    }
}

/// How many words ahead the merge loops prefetch a word's offsets (twice this) and its first
/// ids (this): the words of a pair's list lie far apart, and each one visited is otherwise a
/// wait on memory.
const PREFETCH_AHEAD: usize = 8;

/// How many pairs ahead [`MergeDeltas::apply`] prefetches index buckets.
const APPLY_AHEAD: usize = 8;

/// How many occurrences ahead [`PairIndex::build`] prefetches index buckets.
const BUILD_AHEAD: usize = 16;

/// Asks the CPU to bring the cache line holding `p` into the cache (a hint; no effect off
/// x86_64).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees, whatever the
    // address; SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Merges `(a, b)` into `new` in every word of `part`, summing the changes per neighbour into
/// `d`; returns the summed count of the merged pair.
fn merge_part<T: Id>(part: Part<'_, T>, abn: (u32, u32, u32), d: &mut MergeDeltas) -> i64 {
    let Part {
        list,
        first,
        base,
        start,
        ids,
        len,
        count,
    } = part;
    let mut merged = 0;
    for (j, &w) in list.iter().enumerate() {
        if let Some(&ahead) = list.get(j + 2 * PREFETCH_AHEAD) {
            let k = ahead as usize - first;
            prefetch(&start[k]);
            prefetch(&len[k]);
            prefetch(&count[k]);
        }
        if let Some(&ahead) = list.get(j + PREFETCH_AHEAD) {
            prefetch(
                ids.as_ptr()
                    .wrapping_add(start[ahead as usize - first] - base),
            );
        }
        let wi = w as usize - first;
        merged += merge_word(
            &mut ids[start[wi] - base..start[wi + 1] - base],
            &mut len[wi],
            abn,
            count[wi],
            w,
            d,
        );
    }
    merged
}

/// Merges `(a, b)` into `new` in one word, in place, summing the changes per neighbour into
/// `d` (rustbpe's delta rules: each occurrence with left neighbour `x` moves `c` from `(x, a)`
/// to `(x, new)`, with right neighbour `y` from `(b, y)` to `(new, y)`); returns the count
/// the merged pair lost (`c` per occurrence).
#[inline]
fn merge_word<T: Id>(
    ids: &mut [T],
    len: &mut u32,
    (a, b, new): (u32, u32, u32),
    c: i64,
    w: u32,
    d: &mut MergeDeltas,
) -> i64 {
    let (a, b, new) = (T::new(a), T::new(b), T::new(new));
    let n = *len as usize;
    // Jump from occurrence to occurrence and move the runs between them in one copy: words of
    // a coarse second stage are paragraphs, and a merge touches few of their positions.
    let Some(first) = find_pair(&ids[..n], 0, a, b) else {
        return 0;
    };
    let mut merged = 0;
    let (mut r, mut wr) = (first, first);
    let mut next = Some(first);
    while let Some(p) = next {
        ids.copy_within(r..p, wr);
        wr += p - r;
        if wr > 0 {
            d.add(LEFT | u64::from(ids[wr - 1].into()), c, w);
        }
        merged += c;
        if p + 2 < n {
            d.add(u64::from(ids[p + 2].into()), c, w);
        }
        ids[wr] = new;
        wr += 1;
        r = p + 2;
        next = find_pair(&ids[..n], r, a, b);
    }
    ids.copy_within(r..n, wr);
    wr += n - r;
    *len = wr as u32;
    merged
}

/// The first position `p >= from` with `ids[p] == a && ids[p + 1] == b`. Blocks of sixteen
/// ids are tested for `a` without branches (vector compares) before any is looked at.
#[inline]
fn find_pair<T: Id>(ids: &[T], from: usize, a: T, b: T) -> Option<usize> {
    const BLOCK: usize = 16;
    let n = ids.len();
    if n < 2 {
        return None;
    }
    let last = n - 1; // a pair starts before this
    let mut i = from;
    while i + BLOCK <= last {
        let block: &[T; BLOCK] = ids[i..i + BLOCK].try_into().expect("a block");
        if block.iter().fold(false, |any, &x| any | (x == a)) {
            for p in i..i + BLOCK {
                if ids[p] == a && ids[p + 1] == b {
                    return Some(p);
                }
            }
        }
        i += BLOCK;
    }
    (i..last).find(|&p| ids[p] == a && ids[p + 1] == b)
}

/// The index is never rebuilt for fewer stale entries than this (small in unit tests so that
/// the rebuild path is exercised).
#[cfg(not(test))]
const REBUILD_MIN: usize = 1 << 20;
#[cfg(test)]
const REBUILD_MIN: usize = 16;

/// Below this many words a merge runs on the calling thread, pipelined with the index update of
/// the merge before it (tiny in unit tests so that both paths are compared with the reference
/// trainer). 2,048 rather than 512 since the pipelining: a merge of 512–2,048 words split over
/// the pool was 3–5 % slower overall than one thread's scan beside the other's index update.
#[cfg(not(test))]
const PAR_MIN_WORDS: usize = 2048;
#[cfg(test)]
const PAR_MIN_WORDS: usize = 2;

/// Heap entry: max count first, then the smaller pair (rustbpe's order).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    count: i64,
    pair: std::cmp::Reverse<u64>,
}

/// How many of the most frequent pairs a [`Queue`] takes in at a time (small in unit tests so
/// that refills are exercised).
#[cfg(not(test))]
const QUEUE_TAKE: usize = 1 << 14;
#[cfg(test)]
const QUEUE_TAKE: usize = 3;

/// The merge candidates: a max-heap of [`Job`]s with lazy refresh (as rustbpe), holding only
/// pairs counted at least `floor`.
///
/// Most pairs of a large index are rare and never win a merge; a heap of all of them (and of
/// every pair a merge creates) grows to millions of entries whose pops miss the cache at every
/// level. Here the heap starts with about [`QUEUE_TAKE`] pairs, the most frequent, and a pair
/// below the floor is neither pushed nor kept; when the heap runs dry, the floor drops and the
/// next most frequent pairs come in from the index.
///
/// Invariant: every pair counted at least `floor` has an entry whose count is at least its
/// current count. An entry whose count equals its pair's current count is therefore the
/// true maximum (ties to the smaller pair) when it reaches the top: every pair above the
/// floor with a higher count, or an equal count and a smaller key, has an entry ranked
/// before it, and every pair below the floor counts less than any entry pushed so far.
struct Queue {
    heap: BinaryHeap<Job>,
    floor: i64,
}

impl Queue {
    fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            floor: i64::MAX,
        }
    }

    /// Enters a pair's new count if it is at or above the floor (one below it comes back with
    /// the next refill).
    #[inline]
    fn offer(&mut self, count: i64, pair: u64) {
        if count >= self.floor {
            self.heap.push(Job {
                count,
                pair: std::cmp::Reverse(pair),
            });
        }
    }

    /// The top entry, refilling from `index` when the heap is empty; `None` when no pair is
    /// left.
    fn pop(&mut self, index: &PairIndex) -> Option<Job> {
        loop {
            if let Some(job) = self.heap.pop() {
                return Some(job);
            }
            if !self.refill(index) {
                return None;
            }
        }
    }

    /// Lowers the floor so that the next [`QUEUE_TAKE`] most frequent pairs below it (and all
    /// pairs tied with the last of them) come in; false when no pair is left below it.
    fn refill(&mut self, index: &PairIndex) -> bool {
        // Two passes over the whole index, each shard on its own task: a late refill scans
        // millions of slots while every other step of the merge loop waits.
        let floor = self.floor;
        let mut below: Vec<i64> = index
            .shards
            .par_iter()
            .flat_map_iter(|m| {
                m.values()
                    .map(|s| s.count)
                    .filter(move |&c| c > 0 && c < floor)
            })
            .collect();
        if below.is_empty() {
            return false;
        }
        let take = QUEUE_TAKE.min(below.len());
        let (_, &mut nth, _) = below.select_nth_unstable_by(take - 1, |x, y| y.cmp(x));
        self.floor = nth;
        drop(below);
        // Entries at or above the old floor are in the heap already (none are left: a refill
        // comes when the heap ran dry); those at or above the new floor come in, heapified at
        // once.
        let jobs: Vec<Job> = index
            .shards
            .par_iter()
            .flat_map_iter(|m| {
                m.iter()
                    .filter(move |(_, s)| s.count < floor && s.count >= nth)
                    .map(|(k, s)| Job {
                        count: s.count,
                        pair: std::cmp::Reverse(k),
                    })
            })
            .collect();
        let mut heap = BinaryHeap::from(jobs);
        heap.append(&mut self.heap);
        self.heap = heap;
        true
    }
}

/// Merges until `tokens` holds `target` tokens (or no pair is left); `tokens` are the ids the
/// words are written in (the 256 bytes first).
fn merge_loop<T: Id>(
    mut words: Words<T>,
    mut index_owned: PairIndex,
    mut tokens: Vec<Vec<u8>>,
    target: usize,
    progress: &dyn Progress,
) -> (Vec<Vec<u8>>, u32) {
    let t0 = Instant::now();
    let index = &mut index_owned;
    let n_merges = (target - 256) as u32;
    let mut by_bytes: FxHashMap<Vec<u8>, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut queue = Queue::new();
    // Word-list entries added since the index was built ([`rebuild_if_due`]).
    let mut pushed = 0usize;
    let mut dups = 0u32;
    let mut done = (tokens.len() - 256) as u32;
    let first = done;
    let mut rebuilds = 0u32;
    let report_every = (n_merges / 200).max(1);
    let parallel = rayon::current_num_threads() > 1;
    // One merge's summed index changes, and one per word range of a parallel merge.
    let mut deltas = MergeDeltas::default();
    let mut scratch: Vec<MergeDeltas> = Vec::new();

    // A merge's summed changes wait in `deltas` (`pending` names its pair) until the next pair
    // is chosen, against the counts they will give. When that pair's word list is short (the
    // late merges, one core each), the changes go into the index on one core while the next
    // merge rewrites its words on the other: the two touch disjoint memory (index and queue;
    // words and a scratch sum). The merges are exactly those of applying every change first.
    let mut pending: Option<Pending> = None;
    let mut pipelined = 0u32;
    std::thread::scope(|scope| {
        let helper = Helper::start(scope, parallel);

        while done < n_merges {
            let job = match &mut pending {
                None => {
                    let Some(job) = queue.pop(index) else { break };
                    job
                }
                Some(pend) => {
                    if !pend.offered {
                        deltas.offer_gains(index, &mut queue, pend.fresh);
                        pend.offered = true;
                    }
                    match queue.heap.pop() {
                        Some(job) => job,
                        None => {
                            // A refill reads the index: bring it up to date first.
                            let pend = pending.take().expect("pending");
                            settle(&mut deltas, index, &mut pushed, pend);
                            rebuild_if_due(&mut queue, index, &words, &mut pushed, &mut rebuilds);
                            continue;
                        }
                    }
                }
            };
            let key = job.pair.0;
            let current = match &pending {
                None => index.count(key),
                Some(pend) if pend.pair == key => 0,
                Some(_) => index.count(key) + deltas.delta(key),
            };
            if job.count != current {
                // Stale: counts of existing pairs only fall, except pairs that just gained (those
                // were offered again with their new count), so a too-low entry is simply dropped;
                // a too-high one comes back with the current count if that is above the floor.
                if job.count > current {
                    queue.offer(current, key);
                }
                continue;
            }
            debug_assert!(
                current >= 1,
                "the queue holds counts at or above a floor of 1 or more"
            );
            let (a, b) = ((key >> 32) as u32, key as u32);
            let mut merged = tokens[a as usize].clone();
            merged.extend_from_slice(&tokens[b as usize]);
            let (new, fresh) = match by_bytes.get(&merged) {
                Some(&id) => {
                    dups += 1;
                    (id, false)
                }
                None => {
                    let id = tokens.len() as u32;
                    by_bytes.insert(merged.clone(), id);
                    tokens.push(merged);
                    done += 1;
                    if done.is_multiple_of(report_every) {
                        progress.update(Phase::Merge, u64::from(done));
                    }
                    (id, true)
                }
            };

            // The pair's words: its list in the index, and the words that gained it in the pending
            // merge (not in the index yet).
            let mut list = index
                .map(key)
                .get_mut(key)
                .map_or_else(Vec::new, |s| s.words.take());
            if pending.is_some() {
                list.extend_from_slice(deltas.gained_words(key));
            }
            list.sort_unstable();
            list.dedup();

            let abn = (a, b, new);
            let small = !parallel || list.len() < PAR_MIN_WORDS;
            if let Some(pend) = pending.take() {
                if parallel && small && pushed + deltas.max_pushed() <= index.rebuild_after() {
                    if scratch.is_empty() {
                        scratch.push(MergeDeltas::default());
                    }
                    let mut parts = split_words(&mut words, &list, 1);
                    debug_assert_eq!(parts.len(), 1);
                    let part = parts.pop().expect("one part");
                    let d = &mut scratch[0];
                    let ((), m) = helper.join(
                        || deltas.apply(index, &mut pushed),
                        || merge_part(part, abn, d),
                    );
                    index.map(pend.pair).remove(pend.pair);
                    deltas.absorb_neighbours(&scratch[0], m, abn);
                    scratch[0].clear();
                    pending = Some(Pending {
                        pair: key,
                        fresh,
                        offered: false,
                    });
                    pipelined += 1;
                    continue;
                }
                settle(&mut deltas, index, &mut pushed, pend);
                // A rebuild now counts the words as they are: `list` still holds every word with
                // the pair (its old list and the words that gained it).
                rebuild_if_due(&mut queue, index, &words, &mut pushed, &mut rebuilds);
            }
            let parts = if small {
                split_words(&mut words, &list, 1)
            } else {
                split_words(&mut words, &list, rayon::current_num_threads() * 4)
            };
            if scratch.len() < parts.len() {
                scratch.resize_with(parts.len(), MergeDeltas::default);
            }
            let n = parts.len();
            let merged: Vec<i64> = if n == 1 {
                parts
                    .into_iter()
                    .map(|part| merge_part(part, abn, &mut scratch[0]))
                    .collect()
            } else {
                parts
                    .into_par_iter()
                    .zip(scratch.par_iter_mut())
                    .map(|(part, d)| merge_part(part, abn, d))
                    .collect()
            };
            for (d, m) in scratch[..n].iter_mut().zip(merged) {
                deltas.absorb_neighbours(d, m, abn);
                d.clear();
            }
            pending = Some(Pending {
                pair: key,
                fresh,
                offered: false,
            });
        }
        // The last merge's changes: the queue is done with, the index is not (it is freed).
        if let Some(pend) = pending.take() {
            settle(&mut deltas, index, &mut pushed, pend);
        }
    });
    progress.update(Phase::Merge, u64::from(done));
    tracing::debug!(
        seconds = t0.elapsed().as_secs_f64(),
        merges = done - first,
        rebuilds,
        pipelined,
        "merge loop done"
    );
    drop_in_background((words, index_owned, queue.heap));
    (tokens, dups)
}

/// How long the [`Helper`] spins for its next job before it parks.
const HELPER_SPIN: Duration = Duration::from_micros(50);

/// A second thread for the late merges, which come every few microseconds and each give it a
/// few microseconds of work: it waits for the next job spinning, and parks only after
/// [`HELPER_SPIN`] without one, so that handing a job over mostly costs no wake-up. A rayon
/// worker woken with a futex for each merge spent as much time in the kernel as it saved.
struct Helper<'scope> {
    shared: std::sync::Arc<HelperShared>,
    thread: Option<std::thread::ScopedJoinHandle<'scope, ()>>,
}

/// The job slot: [`Helper::join`] writes `job`, then sets `state` to `READY`; the helper takes
/// it (`RUNNING`), runs it and sets `DONE` (or `PANICKED`) — unless the joining thread, done
/// with its own side first, took it back (`READY` → `IDLE`) and ran it itself: a helper that is
/// not on a core (a busy machine) then delays nothing.
struct HelperShared {
    state: std::sync::atomic::AtomicU8,
    job: std::cell::UnsafeCell<Option<*mut (dyn FnMut() + Send)>>,
}

// SAFETY: `job` is written only by the joining thread while `state` is `IDLE` or `SLEEPING`
// (the helper does not look at it then), and taken either by the helper after it moved `READY`
// to `RUNNING` (Acquire, after the writer's Release) or by the joining thread after it moved
// `READY` back to `IDLE` — never by both; the closure behind the pointer is `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for HelperShared {}
#[allow(unsafe_code)]
unsafe impl Send for HelperShared {}

impl HelperShared {
    const IDLE: u8 = 0;
    const READY: u8 = 1;
    const DONE: u8 = 2;
    const PANICKED: u8 = 3;
    const SLEEPING: u8 = 4;
    const QUIT: u8 = 5;
    const RUNNING: u8 = 6;
}

impl<'scope> Helper<'scope> {
    /// A helper thread in `scope`, or none (`join` then runs both sides here) when `on` is false.
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, on: bool) -> Self {
        let shared = std::sync::Arc::new(HelperShared {
            state: std::sync::atomic::AtomicU8::new(HelperShared::IDLE),
            job: std::cell::UnsafeCell::new(None),
        });
        let thread = on.then(|| {
            let sh = shared.clone();
            scope.spawn(move || Self::run(&sh))
        });
        Helper { shared, thread }
    }

    fn run(sh: &HelperShared) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            match sh.state.load(Acquire) {
                HelperShared::READY => {
                    if sh
                        .state
                        .compare_exchange(
                            HelperShared::READY,
                            HelperShared::RUNNING,
                            AcqRel,
                            Acquire,
                        )
                        .is_err()
                    {
                        // The joining thread took the job back.
                        continue;
                    }
                    // SAFETY: see `HelperShared`; the joining thread keeps the closure alive
                    // until it sees `DONE` or `PANICKED`.
                    #[allow(unsafe_code)]
                    let job = unsafe { (*sh.job.get()).take() }.expect("a job");
                    #[allow(unsafe_code)]
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                        (*job)()
                    }))
                    .is_ok();
                    let done = if ok {
                        HelperShared::DONE
                    } else {
                        HelperShared::PANICKED
                    };
                    sh.state.store(done, Release);
                    idle_since = Instant::now();
                    spins = 0;
                }
                HelperShared::QUIT => return,
                HelperShared::IDLE => {
                    spins += 1;
                    if !spins.is_multiple_of(64) || idle_since.elapsed() < HELPER_SPIN {
                        std::hint::spin_loop();
                    } else if sh
                        .state
                        .compare_exchange(
                            HelperShared::IDLE,
                            HelperShared::SLEEPING,
                            AcqRel,
                            Acquire,
                        )
                        .is_ok()
                    {
                        while sh.state.load(Acquire) == HelperShared::SLEEPING {
                            std::thread::park();
                        }
                        idle_since = Instant::now();
                        spins = 0;
                    }
                }
                _ => std::hint::spin_loop(),
            }
        }
    }

    /// Runs `a` here and `b` on the helper thread (or here, after `a`, when there is no helper
    /// or it had not started `b` yet); returns when both are done. A panic in `a` unwinds from
    /// here once `b` is finished or known not to run; a panic in `b` becomes a panic here.
    fn join<RA, RB: Send>(
        &self,
        a: impl FnOnce() -> RA,
        b: impl FnOnce() -> RB + Send,
    ) -> (RA, RB) {
        use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        let Some(thread) = &self.thread else {
            let ra = a();
            return (ra, b());
        };
        let sh = &*self.shared;
        let mut b = Some(b);
        let mut rb = None;
        let mut job = || rb = Some((b.take().expect("run once"))());
        let job: &mut (dyn FnMut() + Send) = &mut job;
        // SAFETY: the pointer outlives its use: this function does not return (nor unwind, see
        // `Wait`) before the helper reported the job finished, and the helper drops its copy
        // of the pointer before reporting.
        #[allow(unsafe_code)]
        let job: *mut (dyn FnMut() + Send + 'static) = unsafe { std::mem::transmute(job) };
        #[allow(unsafe_code)]
        unsafe {
            *sh.job.get() = Some(job);
        }
        if sh.state.swap(HelperShared::READY, Release) == HelperShared::SLEEPING {
            thread.thread().unpark();
        }
        /// Waits for the helper, also when `a` unwinds.
        struct Wait<'a> {
            sh: &'a HelperShared,
            done: bool,
            panicked: bool,
        }
        impl Wait<'_> {
            /// Whether the job is still to run here (taken back before the helper started it);
            /// else waits until the helper finished it.
            fn finish(&mut self) -> bool {
                if self.done {
                    return false;
                }
                self.done = true;
                if self
                    .sh
                    .state
                    .compare_exchange(HelperShared::READY, HelperShared::IDLE, Acquire, Acquire)
                    .is_ok()
                {
                    return true;
                }
                let mut spins = 0u32;
                loop {
                    match self.sh.state.load(Acquire) {
                        HelperShared::DONE => break,
                        HelperShared::PANICKED => {
                            self.panicked = true;
                            break;
                        }
                        _ if spins < 1 << 12 => {
                            spins += 1;
                            std::hint::spin_loop();
                        }
                        _ => std::thread::yield_now(),
                    }
                }
                self.sh.state.store(HelperShared::IDLE, Relaxed);
                false
            }
        }
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                // Unwinding from `a`: the job is either not started (and is dropped with this
                // frame) or finished.
                self.finish();
            }
        }
        let mut wait = Wait {
            sh,
            done: false,
            panicked: false,
        };
        let ra = a();
        if wait.finish() {
            // SAFETY: taken back while `READY`: the helper never read the slot.
            #[allow(unsafe_code)]
            let job = unsafe { (*sh.job.get()).take() }.expect("a job");
            #[allow(unsafe_code)]
            unsafe {
                (*job)();
            }
        }
        if wait.panicked {
            panic!("a merge job panicked on the helper thread");
        }
        (ra, rb.expect("the job ran"))
    }
}

impl Drop for Helper<'_> {
    fn drop(&mut self) {
        if let Some(thread) = &self.thread
            && self
                .shared
                .state
                .swap(HelperShared::QUIT, std::sync::atomic::Ordering::AcqRel)
                == HelperShared::SLEEPING
        {
            thread.thread().unpark();
        }
    }
}

/// A merge whose summed changes wait in the loop's `deltas`.
#[derive(Clone, Copy)]
struct Pending {
    /// The merged pair.
    pair: u64,
    /// Whether the merge made a new token (then no pair with it is in the index yet).
    fresh: bool,
    /// Whether the pairs that gained were offered to the queue already.
    offered: bool,
}

/// Applies a pending merge's changes to the index and removes the merged pair.
fn settle(deltas: &mut MergeDeltas, index: &mut PairIndex, pushed: &mut usize, pend: Pending) {
    deltas.apply(index, pushed);
    index.map(pend.pair).remove(pend.pair);
}

/// Word lists keep stale entries (words that lost a pair whose count is still positive). Once
/// twice as many entries were added as the index held when built (4 bytes each, where a
/// rebuild is a full pass over the words), it is rebuilt from the words: exact same counts, so
/// the same merges, with bounded memory.
fn rebuild_if_due<T: Id>(
    queue: &mut Queue,
    index: &mut PairIndex,
    words: &Words<T>,
    pushed: &mut usize,
    rebuilds: &mut u32,
) {
    if *pushed > index.rebuild_after() {
        // The old index and queue go first: alive next to the new ones they set the peak
        // memory of the whole run (−30 to −60 MB).
        *queue = Queue::new();
        index.shards.clear();
        *index = PairIndex::build(words);
        *pushed = 0;
        *rebuilds += 1;
    }
}

/// Frees large training structures on the thread pool, so that the hundreds of thousands of
/// small frees overlap the (mostly sequential) work that follows instead of delaying it.
fn drop_in_background<T: Send + 'static>(x: T) {
    rayon::spawn(move || drop(x));
}

/// A contiguous range of words, mutably borrowed, with the sorted word list that falls in it.
struct Part<'a, T> {
    list: &'a [u32],
    first: usize,
    base: usize,
    start: &'a [usize],
    ids: &'a mut [T],
    len: &'a mut [u32],
    count: &'a [i64],
}

/// Cuts `words` into up to `k` disjoint mutable ranges following the sorted `list`.
fn split_words<'a, T>(words: &'a mut Words<T>, list: &'a [u32], k: usize) -> Vec<Part<'a, T>> {
    let per = list.len().div_ceil(k).max(1);
    let Words {
        ids,
        start,
        len,
        count,
    } = words;
    let mut ids_rest: &mut [T] = ids;
    let mut len_rest: &mut [u32] = len;
    let (mut ids_off, mut len_off) = (0usize, 0usize);
    let mut parts = Vec::new();
    for sub in list.chunks(per) {
        let first = sub[0] as usize;
        let last = *sub.last().expect("non-empty") as usize;
        // Skip to `first`.
        let (_, r) = std::mem::take(&mut ids_rest).split_at_mut(start[first] - ids_off);
        let (mine, r) = r.split_at_mut(start[last + 1] - start[first]);
        ids_rest = r;
        ids_off = start[last + 1];
        let (_, lr) = std::mem::take(&mut len_rest).split_at_mut(first - len_off);
        let (lmine, lr) = lr.split_at_mut(last + 1 - first);
        len_rest = lr;
        len_off = last + 1;
        parts.push(Part {
            list: sub,
            first,
            base: start[first],
            start: &start[first..=last + 1],
            ids: mine,
            len: lmine,
            count: &count[first..=last],
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious BPE trainer (minbpe style): recount every pair over all words each merge.
    fn reference(chunks: &[(&str, i64)], n_merges: usize) -> Vec<Vec<u8>> {
        let mut words: Vec<(Vec<u32>, i64)> = chunks
            .iter()
            .map(|(s, c)| (s.bytes().map(u32::from).collect(), *c))
            .collect();
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for _ in 0..n_merges {
            let mut counts: std::collections::BTreeMap<(u32, u32), i64> = Default::default();
            for (w, c) in &words {
                for p in w.windows(2) {
                    *counts.entry((p[0], p[1])).or_default() += c;
                }
            }
            let Some((&(a, b), _)) = counts
                .iter()
                .filter(|(_, c)| **c > 0)
                .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
            else {
                break;
            };
            let bytes = [tokens[a as usize].clone(), tokens[b as usize].clone()].concat();
            let new = match tokens.iter().position(|t| *t == bytes) {
                Some(i) => i as u32,
                None => {
                    tokens.push(bytes);
                    (tokens.len() - 1) as u32
                }
            };
            for (w, _) in &mut words {
                let mut out = Vec::new();
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && w[i] == a && w[i + 1] == b {
                        out.push(new);
                        i += 2;
                    } else {
                        out.push(w[i]);
                        i += 1;
                    }
                }
                *w = out;
            }
        }
        tokens
    }

    fn train_chunks(chunks: &[(&str, i64)], n_merges: u32) -> Vec<Vec<u8>> {
        let mut sorted: Vec<(Box<str>, i64)> =
            chunks.iter().map(|(s, c)| ((*s).into(), *c)).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let words = Words::new(sorted.into_iter().filter(|(k, _)| k.len() >= 2));
        let index = PairIndex::build(&words);
        let bytes = (0..=255u8).map(|b| vec![b]).collect();
        merge_loop(words, index, bytes, 256 + n_merges as usize, &NoProgress).0
    }

    #[test]
    fn matches_reference_trainer() {
        let chunks = [
            ("aaaa", 3),
            ("abab", 2),
            ("ababab", 1),
            ("banana", 5),
            ("bandana", 2),
            ("吾輩は猫", 4),
            ("猫である", 3),
            ("aaa", 7),
            ("abc", 2),
            ("bca", 2),
        ];
        assert_matches_reference(&chunks, &[1, 5, 20, 40]);
    }

    /// After each of `merges`, the trainer's vocabulary on one thread and on three (the parallel
    /// merge path) equals the reference trainer's.
    fn assert_matches_reference(chunks: &[(&str, i64)], merges: &[u32]) {
        let want = reference(chunks, 10_000);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &m in merges {
            let got = train_chunks(chunks, m);
            assert_eq!(
                got,
                pool.install(|| train_chunks(chunks, m)),
                "parallel path, {m} merges"
            );
            let want: Vec<_> = want.iter().take(256 + m as usize).cloned().collect();
            assert_eq!(got, want, "{m} merges");
        }
    }

    #[test]
    fn reused_tokens_match_reference_trainer() {
        // Random words over a, b, c, d with many runs: the same bytes are reached by different
        // merges (`aab` = a+ab = aa+b), so merges reuse existing tokens, and the pairs they
        // create may already exist in the same word.
        let mut x: u64 = 7;
        let mut owned: Vec<(String, i64)> = (0..60)
            .map(|i| {
                let n = 1 + (i * 7) % 40;
                let w: String = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        ["a", "a", "b", "c", "ab", "d"][(x % 6) as usize]
                    })
                    .collect();
                (w, 1 + (x % 5) as i64)
            })
            .collect();
        owned.extend([
            ("a".repeat(33), 3),
            ("ab".repeat(20), 2),
            ("abcabcaabbcc".repeat(3), 4),
        ]);
        owned.sort();
        owned.dedup_by(|a, b| a.0 == b.0);
        let chunks: Vec<(&str, i64)> = owned.iter().map(|(w, c)| (w.as_str(), *c)).collect();
        assert_matches_reference(&chunks, &[1, 10, 40, 120]);
    }

    /// Paragraphs of the bundled Aozora sample.
    fn sample_paragraphs() -> Vec<String> {
        include_str!("../tests/data/aozora_sample.jsonl")
            .lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("sample JSONL");
                let t = v["text"].as_str().expect("text").to_string();
                t.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The sorted distinct `ja-phrase` chunks of the sample, with counts.
    fn coarse_sample() -> Vec<(Box<str>, i64)> {
        let mut counter = ChunkCounter::new(&SplitPattern::JaPhrase, None).unwrap();
        counter.add_documents(&sample_paragraphs()).unwrap();
        let mut coarse: Vec<(Box<str>, i64)> = counter.counts.into_iter().collect();
        coarse.sort_by(|a, b| a.0.cmp(&b.0));
        coarse
    }

    #[test]
    fn narrow_ids_merge_like_wide_ids() {
        // The merge loop on u16 ids (vocabularies up to 65,536) and on u32 ids: same merges,
        // on paragraph-sized words (long words, the prefetching and block-compare paths).
        let coarse = coarse_sample();
        let run = |narrow: bool| {
            let words = Words::new(
                coarse
                    .iter()
                    .filter(|(k, _)| k.len() >= 2)
                    .map(|(k, c)| (&**k, *c)),
            );
            let bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            let words = if narrow {
                AnyWords::Narrow(words.narrow())
            } else {
                AnyWords::Wide(words)
            };
            let index = words.index();
            words.merge(index, bytes, 256 + 400, &NoProgress).0
        };
        let (narrow, wide) = (run(true), run(false));
        assert_eq!(narrow.len(), 256 + 400);
        assert_eq!(narrow, wide);
        assert!(matches!(
            AnyWords::new(Words::new(std::iter::empty::<(&str, i64)>()), 1 << 16),
            AnyWords::Narrow(_)
        ));
        assert!(matches!(
            AnyWords::new(Words::new(std::iter::empty::<(&str, i64)>()), (1 << 16) + 1),
            AnyWords::Wide(_)
        ));
    }

    /// The stage-2 words encoded the slow way: every coarse chunk whole, with tiktoken's rule.
    fn encode_whole(bpe: &crate::bpe::Bpe, coarse: &[(Box<str>, i64)]) -> (Vec<u32>, Vec<i64>) {
        let (mut ids, mut counts) = (Vec::new(), Vec::new());
        for (k, c) in coarse {
            let mut e = Vec::new();
            bpe.encode_chunk(k.as_bytes(), &mut e);
            if e.len() >= 2 {
                ids.extend_from_slice(&e);
                ids.push(u32::MAX); // word separator
                counts.push(*c);
            }
        }
        (ids, counts)
    }

    fn flat(w: &Words) -> Vec<u32> {
        let mut v = Vec::new();
        for i in 0..w.n() {
            v.extend_from_slice(&w.ids[w.start[i]..w.start[i] + w.len[i] as usize]);
            v.push(u32::MAX);
        }
        v
    }

    #[test]
    fn assembled_stage2_encoding_equals_whole_chunk_encoding() {
        let coarse = coarse_sample();
        let fine = fine_chunks(&coarse, &Splitter::new(&SplitPattern::Ja).unwrap()).unwrap();
        assert!(
            fine.seq.len() > coarse.len(),
            "coarse chunks hold several ja chunks"
        );
        // A stage-1-like vocabulary (tokens within ja chunks: assembled from the cache) and a
        // ja-phrase one (its tokens span ja chunks: runs must be encoded together).
        let n = coarse.len() as u64;
        for (pattern, joined) in [
            (SplitPattern::Ja, 0..n / 10),
            (SplitPattern::JaPhrase, 100..u64::MAX),
        ] {
            let config = TrainConfig::one_stage(1200, pattern.clone());
            let (tok, _) =
                train_from_iter(sample_paragraphs(), &config, None, None, &NoProgress).unwrap();
            let bpe =
                crate::bpe::Bpe::new(tok.mergeable_tokens().map(<[u8]>::to_vec).collect()).unwrap();
            let (words, j) = encode_coarse(&bpe, &coarse, &fine);
            let (want, counts) = encode_whole(&bpe, &coarse);
            assert_eq!(flat(&words), want, "{pattern}");
            assert_eq!(words.count, counts, "{pattern}");
            assert!(
                joined.contains(&j),
                "{pattern}: {j} joined runs of {n} chunks"
            );
        }
    }

    #[test]
    fn crossings_never_miss_a_spanning_token() {
        let tokens: Vec<Vec<u8>> = (0..=255u8)
            .map(|b| vec![b])
            .chain([
                b"ab".to_vec(),
                b"abc".to_vec(),
                b"bcd".to_vec(),
                b"xabcdy".to_vec(),
            ])
            .collect();
        let bpe = crate::bpe::Bpe::new(tokens.clone()).unwrap();
        let c = Crossings::new(&bpe);
        let mut x: u64 = 99;
        for _ in 0..20_000 {
            let n = 2 + (x % 9) as usize;
            let text: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"abcdxy"[(x % 6) as usize]
                })
                .collect();
            for pos in 1..n {
                let spans = tokens.iter().filter(|t| t.len() >= 2).any(|t| {
                    (1..t.len()).any(|p| {
                        pos >= p
                            && pos + t.len() - p <= n
                            && text[pos - p..pos + t.len() - p] == t[..]
                    })
                });
                if spans {
                    assert!(c.may_cross(&text, pos), "{:?} at {pos}", text);
                }
            }
        }
        assert!(!c.may_cross(b"ba", 1));
        assert!(c.may_cross(b"abc", 1) && c.may_cross(b"abc", 2));
    }

    #[test]
    fn fine_split_order_does_not_depend_on_threads() {
        let coarse = coarse_sample();
        let split = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let f = fine_chunks(&coarse, &Splitter::new(&SplitPattern::Ja).unwrap()).unwrap();
                let chunks: Vec<(String, i64)> = f
                    .chunks
                    .iter()
                    .map(|(k, c)| ((*k).to_string(), *c))
                    .collect();
                (chunks, f.seq, f.bytes, f.ends)
            })
        };
        let one = split(1);
        // Every coarse chunk is the concatenation of its pieces, with the right lengths.
        for (i, (k, _)) in coarse.iter().enumerate() {
            let (a, b) = (one.3[i], one.3[i + 1]);
            let joined: String = one.1[a..b]
                .iter()
                .map(|&f| one.0[f as usize].0.as_str())
                .collect();
            assert_eq!(&joined, &**k);
            let lens: Vec<u32> = one.1[a..b]
                .iter()
                .map(|&f| one.0[f as usize].0.len() as u32)
                .collect();
            assert_eq!(lens, one.2[a..b]);
        }
        for threads in [2, 3, 7] {
            assert!(one == split(threads), "{threads} threads");
        }
    }

    #[test]
    fn cap_text_counts_what_it_cuts() {
        assert_eq!(cap_text("あいうえお", Some(3)), ("あいう", 2));
        assert_eq!(cap_text("あいう", Some(3)), ("あいう", 0));
        assert_eq!(cap_text("abc", None), ("abc", 0));
    }
}
