//! Byte-pair encoding of one chunk, with tiktoken's semantics.
//!
//! tiktoken (which nanochat encodes with) repeatedly merges the adjacent pair of parts whose
//! *concatenated bytes* have the lowest rank, leftmost first, and emits a chunk that is itself a
//! token directly. This module does the same, but looks pairs up by token id in a table built
//! once from the vocabulary (every way to split every token into two tokens), so a merge step
//! costs one integer-keyed hash probe instead of hashing a byte slice.
//!
//! Short chunks use tiktoken's linear scan; chunks of [`HEAP_MIN`] bytes or more use a min-heap
//! over a doubly linked list of parts, O(n log n), so pathological inputs (a megabyte without a
//! split point) stay fast.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Chunks at least this long (in bytes) use the heap-based merge.
pub(crate) const HEAP_MIN: usize = 64;

const NONE: u32 = u32::MAX;

#[inline]
pub(crate) fn pair_key(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// The mergeable vocabulary: token bytes by id (id == rank), and the lookup tables.
#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    tokens: Vec<Box<[u8]>>,
    encoder: FxHashMap<Box<[u8]>, u32>,
    byte_ids: [u32; 256],
    /// (left id, right id) -> id of the token whose bytes are left ++ right.
    pairs: FxHashMap<u64, u32>,
    /// Tokens of at most [`SHORT_MAX`] bytes keyed by [`short_key`]: an integer hash and compare
    /// instead of hashing and `memcmp`-ing a byte slice (most chunks are this short).
    short: FxHashMap<u128, u32>,
}

/// Longest byte string with a [`short_key`].
pub(crate) const SHORT_MAX: usize = 15;

/// Bytes (at most [`SHORT_MAX`]) and their length packed into one integer.
#[inline]
pub(crate) fn short_key(bytes: &[u8]) -> u128 {
    debug_assert!(bytes.len() <= SHORT_MAX);
    let mut b = [0u8; 16];
    b[..bytes.len()].copy_from_slice(bytes);
    b[15] = bytes.len() as u8;
    u128::from_le_bytes(b)
}

impl Bpe {
    /// Builds the tables. Every single byte must be a token and tokens must be distinct.
    pub(crate) fn new(tokens: Vec<Vec<u8>>) -> Result<Self> {
        let tokens: Vec<Box<[u8]>> = tokens.into_iter().map(Vec::into_boxed_slice).collect();
        let mut encoder = FxHashMap::with_capacity_and_hasher(tokens.len(), Default::default());
        for (id, t) in tokens.iter().enumerate() {
            if t.is_empty() {
                return Err(Error::Vocab(format!("token {id} is empty")));
            }
            let id = u32::try_from(id).map_err(|_| Error::Vocab("more than 2^32 tokens".into()))?;
            if let Some(prev) = encoder.insert(t.clone(), id) {
                return Err(Error::Vocab(format!(
                    "tokens {prev} and {id} have the same bytes {t:?}"
                )));
            }
        }
        let mut byte_ids = [NONE; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = *encoder
                .get(&[b as u8][..])
                .ok_or_else(|| Error::Vocab(format!("byte 0x{b:02x} is not a token")))?;
        }
        let mut pairs = FxHashMap::default();
        for (id, t) in tokens.iter().enumerate() {
            for k in 1..t.len() {
                if let (Some(&l), Some(&r)) = (encoder.get(&t[..k]), encoder.get(&t[k..])) {
                    pairs.insert(pair_key(l, r), id as u32);
                }
            }
        }
        let short = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.len() <= SHORT_MAX)
            .map(|(id, t)| (short_key(t), id as u32))
            .collect();
        Ok(Bpe {
            tokens,
            encoder,
            byte_ids,
            pairs,
            short,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    pub(crate) fn token(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(id as usize).map(|t| &t[..])
    }

    pub(crate) fn tokens(&self) -> &[Box<[u8]>] {
        &self.tokens
    }

    /// The id of exactly these bytes, if they are one token.
    pub(crate) fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        self.encoder.get(bytes).copied()
    }

    /// Every (left, right) -> merged entry, for exports.
    pub(crate) fn pair_table(&self) -> &FxHashMap<u64, u32> {
        &self.pairs
    }

    #[inline]
    fn rank(&self, a: u32, b: u32) -> u32 {
        self.pairs.get(&pair_key(a, b)).copied().unwrap_or(NONE)
    }

    /// Appends the tokens of one chunk to `out`.
    pub(crate) fn encode_chunk(&self, chunk: &[u8], out: &mut Vec<u32>) {
        if !self.encode_direct(chunk, out) {
            self.merge(chunk, out);
        }
    }

    /// Appends the chunk's token when the chunk is a single byte or a whole token; `false`
    /// (nothing appended) when it needs merging.
    #[inline]
    pub(crate) fn encode_direct(&self, chunk: &[u8], out: &mut Vec<u32>) -> bool {
        if chunk.len() == 1 {
            out.push(self.byte_ids[chunk[0] as usize]);
            return true;
        }
        if chunk.len() <= SHORT_MAX {
            return match self.short.get(&short_key(chunk)) {
                Some(&id) => {
                    out.push(id);
                    true
                }
                None => false,
            };
        }
        if let Some(&id) = self.encoder.get(chunk) {
            out.push(id);
            return true;
        }
        false
    }

    /// Appends the merged tokens of a chunk of two or more bytes.
    pub(crate) fn merge(&self, chunk: &[u8], out: &mut Vec<u32>) {
        if chunk.len() < HEAP_MIN {
            self.merge_small(chunk, out);
        } else {
            self.merge_large(chunk, out);
        }
    }

    /// tiktoken's linear scan: O(n²) but tiny constants for short chunks.
    fn merge_small(&self, chunk: &[u8], out: &mut Vec<u32>) {
        let mut ids: [u32; HEAP_MIN] = [0; HEAP_MIN];
        let mut ranks: [u32; HEAP_MIN] = [NONE; HEAP_MIN];
        let mut n = chunk.len();
        for (i, &b) in chunk.iter().enumerate() {
            ids[i] = self.byte_ids[b as usize];
        }
        for i in 0..n - 1 {
            ranks[i] = self.rank(ids[i], ids[i + 1]);
        }
        loop {
            let mut best = NONE;
            let mut at = 0;
            for (i, &r) in ranks[..n - 1].iter().enumerate() {
                if r < best {
                    best = r;
                    at = i;
                }
            }
            if best == NONE {
                break;
            }
            ids[at] = best;
            ids.copy_within(at + 2..n, at + 1);
            ranks.copy_within(at + 2..n, at + 1);
            n -= 1;
            ranks[n - 1] = NONE;
            if at + 1 < n {
                ranks[at] = self.rank(ids[at], ids[at + 1]);
            } else {
                ranks[at] = NONE;
            }
            if at > 0 {
                ranks[at - 1] = self.rank(ids[at - 1], ids[at]);
            }
            if n == 1 {
                break;
            }
        }
        out.extend_from_slice(&ids[..n]);
    }

    /// Heap over (rank, position) with lazy invalidation on a doubly linked list of parts.
    ///
    /// `prank[i]` is the rank of the pair that starts at live part `i` (`NONE`: no pair, or
    /// `i` was merged away). A heap entry `(r, i)` is current exactly when `prank[i] == r`: the
    /// pair at `i` then merges into token `r`, and since a rank names one byte string, an
    /// entry pushed for an earlier pair at `i` with the same rank is the same merge. Entries
    /// pack into one `u64` (rank high, position low), so the heap orders by rank, then leftmost.
    fn merge_large(&self, chunk: &[u8], out: &mut Vec<u32>) {
        let n = chunk.len();
        let mut ids: Vec<u32> = chunk.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        next[n - 1] = NONE;
        prev[0] = NONE;
        let mut prank = vec![NONE; n];
        let entry = |r: u32, i: u32| Reverse((u64::from(r) << 32) | u64::from(i));
        let mut initial = Vec::with_capacity(n);
        for i in 0..n - 1 {
            let r = self.rank(ids[i], ids[i + 1]);
            prank[i] = r;
            if r != NONE {
                initial.push(entry(r, i as u32));
            }
        }
        let mut heap = BinaryHeap::from(initial);
        while let Some(Reverse(key)) = heap.pop() {
            let (r, i) = ((key >> 32) as u32, key as u32);
            let iu = i as usize;
            if prank[iu] != r {
                continue;
            }
            // Merge part j into part i.
            let j = next[iu] as usize;
            ids[iu] = r;
            prank[j] = NONE;
            let k = next[j];
            next[iu] = k;
            prank[iu] = NONE;
            if k != NONE {
                prev[k as usize] = i;
                let rr = self.rank(r, ids[k as usize]);
                prank[iu] = rr;
                if rr != NONE {
                    heap.push(entry(rr, i));
                }
            }
            let p = prev[iu];
            if p != NONE {
                let rp = self.rank(ids[p as usize], r);
                prank[p as usize] = rp;
                if rp != NONE {
                    heap.push(entry(rp, p));
                }
            }
        }
        let mut i = 0u32;
        while i != NONE {
            out.push(ids[i as usize]);
            i = next[i as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(extra: &[&[u8]]) -> Bpe {
        let mut t: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        t.extend(extra.iter().map(|e| e.to_vec()));
        Bpe::new(t).unwrap()
    }

    /// tiktoken's algorithm, written the slow obvious way, as the reference.
    fn reference(bpe: &Bpe, chunk: &[u8]) -> Vec<u32> {
        if let Some(id) = bpe.lookup(chunk) {
            return vec![id];
        }
        let mut parts: Vec<Vec<u8>> = chunk.iter().map(|&b| vec![b]).collect();
        loop {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..parts.len().saturating_sub(1) {
                let cat = [parts[i].clone(), parts[i + 1].clone()].concat();
                if let Some(r) = bpe.lookup(&cat)
                    && best.is_none_or(|(br, _)| r < br)
                {
                    best = Some((r, i));
                }
            }
            let Some((_, i)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].extend(right);
        }
        parts.iter().map(|p| bpe.lookup(p).unwrap()).collect()
    }

    #[test]
    fn small_and_large_agree_with_reference() {
        let bpe = vocab(&[b"ab", b"bc", b"abc", b"aa", b"aaaa", b"ca", b"bca", b"cab"]);
        let mut x: u64 = 12345;
        for len in [2usize, 3, 5, 17, 63, 64, 65, 200, 1000] {
            for _ in 0..50 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        b"abcx"[(x % 4) as usize]
                    })
                    .collect();
                let want = reference(&bpe, &s);
                let mut small = Vec::new();
                let mut large = Vec::new();
                if len < HEAP_MIN {
                    bpe.merge_small(&s, &mut small);
                } else {
                    small = want.clone();
                }
                bpe.merge_large(&s, &mut large);
                assert_eq!(small, want, "{:?}", String::from_utf8_lossy(&s));
                assert_eq!(large, want, "{:?}", String::from_utf8_lossy(&s));
            }
        }
    }

    #[test]
    fn duplicate_tokens_are_rejected() {
        let mut t: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        t.push(b"ab".to_vec());
        t.push(b"ab".to_vec());
        assert!(matches!(Bpe::new(t), Err(Error::Vocab(_))));
    }
}
