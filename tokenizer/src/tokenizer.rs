//! The [`Tokenizer`]: split pattern + mergeable tokens + special tokens.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::bpe::{Bpe, SHORT_MAX, short_key};
use crate::error::{Error, Result};
use crate::pattern::{SplitPattern, Splitter};
use crate::special::Special;
use crate::stream::StreamDecoder;

/// A byte-level BPE tokenizer with tiktoken semantics.
///
/// Ids `0..n_mergeable` are the mergeable tokens (id == tiktoken rank), followed by the special
/// tokens in order. Cheap to share across threads (`&Tokenizer` is `Sync`).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    bpe: Bpe,
    pattern: SplitPattern,
    splitter: Splitter,
    specials: Vec<String>,
    special_ids: FxHashMap<String, u32>,
    /// Identifies this vocabulary in the per-thread chunk cache (clones share it).
    uid: u64,
}

/// Distinct ids for [`Tokenizer::uid`].
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// Entries kept in a thread's chunk cache before it is cleared.
const CHUNK_CACHE_MAX: usize = 1 << 17;

/// Chunks longer than this are not cached (long chunks rarely repeat).
const CHUNK_CACHE_MAX_LEN: usize = 64;

/// Per-thread cache of merged chunks: the tokens of chunks that are not whole tokens. Japanese
/// script runs and English words repeat a lot, so most merges are looked up instead of redone
/// (Hugging Face `tokenizers` caches words the same way). Keyed by tokenizer uid so that two
/// tokenizers in one process never share entries.
struct ChunkCache {
    owner: u64,
    /// Chunks of at most `SHORT_MAX` bytes, keyed by `short_key`.
    short: FxHashMap<u128, Box<[u32]>>,
    long: FxHashMap<Box<[u8]>, Box<[u32]>>,
}

impl ChunkCache {
    fn get(&self, c: &[u8]) -> Option<&[u32]> {
        if c.len() <= SHORT_MAX {
            self.short.get(&short_key(c)).map(|v| &v[..])
        } else {
            self.long.get(c).map(|v| &v[..])
        }
    }

    fn insert(&mut self, c: &[u8], ids: &[u32]) {
        if self.short.len() + self.long.len() >= CHUNK_CACHE_MAX {
            self.short.clear();
            self.long.clear();
        }
        if c.len() <= SHORT_MAX {
            self.short.insert(short_key(c), ids.into());
        } else {
            self.long.insert(c.into(), ids.into());
        }
    }
}

thread_local! {
    static CHUNK_CACHE: RefCell<ChunkCache> = RefCell::new(ChunkCache {
        owner: 0,
        short: FxHashMap::default(),
        long: FxHashMap::default(),
    });
}

impl Tokenizer {
    /// Builds a tokenizer from mergeable token bytes (index = id = rank), a pattern and special
    /// token names (ids follow the mergeable tokens in order).
    ///
    /// # Errors
    /// Duplicate or empty tokens, a missing single byte, duplicate special names, a pattern that
    /// does not compile.
    pub fn from_tokens(
        tokens: Vec<Vec<u8>>,
        pattern: SplitPattern,
        specials: &[&str],
    ) -> Result<Self> {
        let bpe = Bpe::new(tokens)?;
        let splitter = Splitter::new(&pattern)?;
        let mut special_ids = FxHashMap::default();
        for (i, s) in specials.iter().enumerate() {
            if s.is_empty() {
                return Err(Error::Vocab("empty special token name".into()));
            }
            if special_ids
                .insert((*s).to_string(), (bpe.len() + i) as u32)
                .is_some()
            {
                return Err(Error::Vocab(format!("special token `{s}` listed twice")));
            }
        }
        Ok(Tokenizer {
            bpe,
            pattern,
            splitter,
            specials: specials.iter().map(|s| (*s).to_string()).collect(),
            special_ids,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Loads a tokenizer directory written by [`Tokenizer::save`] (`njp-tokenizer.json` +
    /// `ranks.tiktoken`), or nanochat's tokenizer: a directory holding `tokenizer.pkl` (and no
    /// `njp-tokenizer.json`), or the path of such a pickle file. The pickle is read by a
    /// data-only reader that executes nothing ([`crate::pickle`]).
    ///
    /// # Errors
    /// Missing or malformed files, a ranks file whose checksum does not match, a pickle that is
    /// not a tiktoken `Encoding` or names anything but tiktoken's class.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        crate::io::load(dir.as_ref())
    }

    /// Writes the tokenizer to `dir` (created if needed): `njp-tokenizer.json` (pattern, special
    /// tokens, checksum), `ranks.tiktoken` (tiktoken's base64 rank file) and `tokenizer.json`
    /// (Hugging Face). Each file is written to a temporary name, synced and renamed.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::io::save(self, dir.as_ref(), None)
    }

    /// As [`Tokenizer::save`], also recording training statistics in `njp-tokenizer.json`.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn save_with_stats(&self, dir: impl AsRef<Path>, stats: &crate::TrainStats) -> Result<()> {
        crate::io::save(self, dir.as_ref(), Some(stats))
    }

    /// The split pattern.
    pub fn pattern(&self) -> &SplitPattern {
        &self.pattern
    }

    /// Total number of ids: mergeable tokens plus special tokens.
    pub fn vocab_size(&self) -> usize {
        self.bpe.len() + self.specials.len()
    }

    /// Number of mergeable (non-special) tokens.
    pub fn n_mergeable(&self) -> usize {
        self.bpe.len()
    }

    /// Special token names in id order.
    pub fn special_tokens(&self) -> &[String] {
        &self.specials
    }

    /// The id of a special token by name (`"<|bos|>"`).
    pub fn special_id(&self, name: &str) -> Option<u32> {
        self.special_ids.get(name).copied()
    }

    /// The id of a nanochat special token.
    ///
    /// # Errors
    /// [`Error::UnknownSpecial`] when the tokenizer was built without it.
    pub fn special(&self, s: Special) -> Result<u32> {
        self.special_id(s.name())
            .ok_or_else(|| Error::UnknownSpecial(s.name().to_string()))
    }

    /// `<|bos|>`'s id.
    ///
    /// # Errors
    /// As [`Tokenizer::special`].
    pub fn bos_id(&self) -> Result<u32> {
        self.special(Special::Bos)
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        (id as usize) >= self.bpe.len() && (id as usize) < self.vocab_size()
    }

    /// The raw bytes of a mergeable token; `None` for special or unknown ids.
    pub fn token_bytes_of(&self, id: u32) -> Option<&[u8]> {
        self.bpe.token(id)
    }

    /// Mergeable token bytes in id order.
    pub fn mergeable_tokens(&self) -> impl Iterator<Item = &[u8]> {
        self.bpe.tokens().iter().map(|t| &t[..])
    }

    /// The id of exactly these bytes if they are one mergeable token.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.bpe.lookup(bytes)
    }

    /// Number of raw UTF-8 bytes of every id (0 for special tokens): the bits-per-byte
    /// denominator. Raw bytes, not the length of a lossy decode (nanochat PR #693): a Japanese
    /// character split across tokens counts each token's own bytes.
    pub fn token_bytes(&self) -> Vec<u32> {
        self.bpe
            .tokens()
            .iter()
            .map(|t| t.len() as u32)
            .chain(std::iter::repeat_n(0, self.specials.len()))
            .collect()
    }

    pub(crate) fn pair_table(&self) -> &FxHashMap<u64, u32> {
        self.bpe.pair_table()
    }

    /// Encodes text. Special-token strings in `text` are ordinary bytes.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, &mut out);
        out
    }

    /// Appends the tokens of `text` to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let bpe = &self.bpe;
        let split = CHUNK_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.owner != self.uid {
                cache.short.clear();
                cache.long.clear();
                cache.owner = self.uid;
            }
            self.splitter.for_each(text, |c| {
                let c = c.as_bytes();
                if bpe.encode_direct(c, out) {
                    return;
                }
                if c.len() > CHUNK_CACHE_MAX_LEN {
                    bpe.merge(c, out);
                    return;
                }
                if let Some(ids) = cache.get(c) {
                    out.extend_from_slice(ids);
                    return;
                }
                let n0 = out.len();
                bpe.merge(c, out);
                cache.insert(c, &out[n0..]);
            })
        });
        if let Err(e) = split {
            // Only custom patterns fail (fancy-regex's backtracking limit). The text after the
            // failure point becomes one chunk so that nothing is lost.
            let offset = match e {
                Error::Split { offset, .. } => offset,
                _ => 0,
            };
            tracing::warn!(offset, error = %e, "split pattern failed; encoding the rest as one chunk");
            bpe.encode_chunk(&text.as_bytes()[offset..], out);
        }
    }

    /// Encodes many texts in parallel (rayon); the result is in input order.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Encodes text, turning the listed special-token strings into their ids (tiktoken's
    /// `allowed_special`). Everything else, other special strings included, is ordinary text.
    ///
    /// # Errors
    /// [`Error::UnknownSpecial`] for a name in `allowed` this tokenizer does not have.
    pub fn encode_with_special(&self, text: &str, allowed: &[&str]) -> Result<Vec<u32>> {
        let mut specials: Vec<(&str, u32)> = Vec::with_capacity(allowed.len());
        for a in allowed {
            let id = self
                .special_id(a)
                .ok_or_else(|| Error::UnknownSpecial((*a).to_string()))?;
            specials.push((a, id));
        }
        // Longest first, so a special that is a prefix of another never wins.
        specials.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let hit = specials
                .iter()
                .filter_map(|(s, id)| rest.find(s).map(|at| (at, s.len(), *id)))
                .min_by_key(|(at, len, _)| (*at, std::cmp::Reverse(*len)));
            match hit {
                Some((at, len, id)) => {
                    self.encode_into(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_into(rest, &mut out);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The raw bytes of a token sequence (special tokens as their names).
    ///
    /// # Errors
    /// [`Error::UnknownId`] for an id outside the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            self.append_bytes(id, &mut out)?;
        }
        Ok(out)
    }

    pub(crate) fn append_bytes(&self, id: u32, out: &mut Vec<u8>) -> Result<()> {
        if let Some(t) = self.bpe.token(id) {
            out.extend_from_slice(t);
        } else if let Some(s) = self
            .specials
            .get((id as usize).wrapping_sub(self.bpe.len()))
        {
            out.extend_from_slice(s.as_bytes());
        } else {
            return Err(Error::UnknownId {
                id,
                vocab_size: self.vocab_size(),
            });
        }
        Ok(())
    }

    /// Decodes to text; invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD, as
    /// tiktoken's `errors="replace"`.
    ///
    /// # Errors
    /// [`Error::UnknownId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// A decoder for ids arriving one at a time (generation) that never emits half a character.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }
}
