//! Files: the native directory format, tiktoken rank files and Hugging Face `tokenizer.json`.
//!
//! A tokenizer directory holds
//! * `ranks.tiktoken` — tiktoken's format, one line per mergeable token: `base64(bytes) rank`,
//!   ranks `0..n` in order (this *is* the tiktoken export);
//! * `njp-tokenizer.json` — format version, split pattern (name and regex), special tokens with
//!   their ids, the SHA-256 of the rank file, and training statistics when trained here;
//! * `tokenizer.json` — the same tokenizer for Hugging Face `tokenizers` (byte-level BPE with the
//!   split regex, GPT-2 byte-to-unicode alphabet, specials as added tokens).
//!
//! [`Tokenizer::load`] also reads nanochat's own tokenizer directory (`tokenizer.pkl`, a pickled
//! `tiktoken.Encoding`) without Python, through the data-only reader in [`crate::pickle`].
//!
//! In Python, tiktoken loads it as
//! `tiktoken.Encoding(name, pat_str=meta["pattern"]["regex"], mergeable_ranks=load_tiktoken_bpe(
//! "ranks.tiktoken"), special_tokens={s["name"]: s["id"] for s in meta["special_tokens"]})`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::pattern::SplitPattern;
use crate::pickle::PICKLE_FILE;
use crate::tokenizer::Tokenizer;
use crate::train::TrainStats;

/// File names inside a tokenizer directory.
pub const META_FILE: &str = "njp-tokenizer.json";
/// tiktoken rank file.
pub const RANKS_FILE: &str = "ranks.tiktoken";
/// Hugging Face tokenizer file.
pub const HF_FILE: &str = "tokenizer.json";

const FORMAT: &str = "njp-tokenizer";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    version: u32,
    pattern: SplitPattern,
    vocab_size: usize,
    mergeable_tokens: usize,
    ranks_file: String,
    ranks_sha256: String,
    special_tokens: Vec<SpecialEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training: Option<TrainStats>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SpecialEntry {
    name: String,
    id: u32,
}

/// Writes `bytes` to `path` atomically: temporary file in the same directory, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// The tiktoken rank file of a tokenizer.
pub fn tiktoken_ranks(tok: &Tokenizer) -> Vec<u8> {
    let mut out = Vec::with_capacity(tok.n_mergeable() * 16);
    for (rank, t) in tok.mergeable_tokens().enumerate() {
        out.extend_from_slice(B64.encode(t).as_bytes());
        out.extend_from_slice(format!(" {rank}\n").as_bytes());
    }
    out
}

/// Parses a tiktoken rank file (`base64 rank` lines). Ranks must be `0..n` without gaps.
///
/// # Errors
/// A malformed line (with its number), a gap or repeat in the ranks.
pub fn read_tiktoken_ranks(path: &Path) -> Result<Vec<Vec<u8>>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut tokens: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let ln = Some(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let (b64, rank) = line
            .split_once(' ')
            .ok_or_else(|| Error::format(path, ln, "expected `base64 rank`"))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| Error::format(path, ln, format!("bad base64: {e}")))?;
        let rank: usize = rank
            .trim()
            .parse()
            .map_err(|_| Error::format(path, ln, format!("bad rank `{rank}`")))?;
        if rank >= tokens.len() {
            tokens.resize(rank + 1, None);
        }
        if tokens[rank].replace(bytes).is_some() {
            return Err(Error::format(
                path,
                ln,
                format!("rank {rank} appears twice"),
            ));
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(r, t)| t.ok_or_else(|| Error::format(path, None, format!("rank {r} is missing"))))
        .collect()
}

pub(crate) fn save(tok: &Tokenizer, dir: &Path, stats: Option<&TrainStats>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ranks = tiktoken_ranks(tok);
    let sha = hex::encode(Sha256::digest(&ranks));
    write_atomic(&dir.join(RANKS_FILE), &ranks)?;
    write_atomic(&dir.join(HF_FILE), &hf_tokenizer_json(tok))?;
    let meta = Meta {
        format: FORMAT.into(),
        version: VERSION,
        pattern: tok.pattern().clone(),
        vocab_size: tok.vocab_size(),
        mergeable_tokens: tok.n_mergeable(),
        ranks_file: RANKS_FILE.into(),
        ranks_sha256: sha,
        special_tokens: tok
            .special_tokens()
            .iter()
            .map(|s| SpecialEntry {
                name: s.clone(),
                id: tok.special_id(s).expect("own special"),
            })
            .collect(),
        training: stats.cloned(),
    };
    let mut json = serde_json::to_vec_pretty(&meta).expect("serializable");
    json.push(b'\n');
    // Written last: a crash before this leaves the previous meta, whose checksum then fails.
    write_atomic(&dir.join(META_FILE), &json)
}

/// Loads `path`: a native tokenizer directory; a directory with nanochat's `tokenizer.pkl` and
/// no `njp-tokenizer.json`; or a pickle file itself.
pub(crate) fn load(path: &Path) -> Result<Tokenizer> {
    if path.is_file() {
        if path.file_name() == Some(META_FILE.as_ref())
            && let Some(dir) = path.parent()
        {
            return load_native(dir);
        }
        return crate::pickle::load_tokenizer(path);
    }
    let meta_path = path.join(META_FILE);
    let pkl = path.join(PICKLE_FILE);
    if !meta_path.exists() {
        if pkl.is_file() {
            return crate::pickle::load_tokenizer(&pkl);
        }
        if path.is_dir() {
            return Err(Error::format(
                path,
                None,
                format!(
                    "not a tokenizer directory: it has neither {META_FILE} (njp) nor \
                     {PICKLE_FILE} (nanochat)"
                ),
            ));
        }
    }
    load_native(path)
}

fn load_native(dir: &Path) -> Result<Tokenizer> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| Error::format(&meta_path, Some(e.line()), e.to_string()))?;
    if meta.format != FORMAT || meta.version != VERSION {
        return Err(Error::format(
            &meta_path,
            None,
            format!(
                "unsupported format {} version {}",
                meta.format, meta.version
            ),
        ));
    }
    let ranks_path: PathBuf = dir.join(&meta.ranks_file);
    let raw = std::fs::read(&ranks_path).map_err(|e| Error::io(&ranks_path, e))?;
    let sha = hex::encode(Sha256::digest(&raw));
    if sha != meta.ranks_sha256 {
        return Err(Error::format(
            &ranks_path,
            None,
            format!(
                "checksum {sha} does not match {} in {META_FILE}",
                meta.ranks_sha256
            ),
        ));
    }
    let tokens = read_tiktoken_ranks(&ranks_path)?;
    if tokens.len() != meta.mergeable_tokens {
        return Err(Error::format(
            &ranks_path,
            None,
            format!(
                "{} tokens, {META_FILE} says {}",
                tokens.len(),
                meta.mergeable_tokens
            ),
        ));
    }
    let mut specials: Vec<&SpecialEntry> = meta.special_tokens.iter().collect();
    specials.sort_by_key(|s| s.id);
    for (i, s) in specials.iter().enumerate() {
        if s.id as usize != tokens.len() + i {
            return Err(Error::format(
                &meta_path,
                None,
                format!(
                    "special token {} has id {}, expected {}",
                    s.name,
                    s.id,
                    tokens.len() + i
                ),
            ));
        }
    }
    let names: Vec<&str> = specials.iter().map(|s| s.name.as_str()).collect();
    let tok = Tokenizer::from_tokens(tokens, meta.pattern, &names)?;
    if tok.vocab_size() != meta.vocab_size {
        return Err(Error::format(
            &meta_path,
            None,
            "vocab_size does not match the files",
        ));
    }
    Ok(tok)
}

/// GPT-2's reversible byte → printable character map used by byte-level BPE in `tokenizers`.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        map[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid")
        };
    }
    map
}

fn hf_string(bytes: &[u8], map: &[char; 256]) -> String {
    bytes.iter().map(|&b| map[b as usize]).collect()
}

/// The Hugging Face `tokenizer.json` for this tokenizer.
///
/// Merges list every way to split each token into two tokens, grouped by the token's rank, so
/// `tokenizers`' lowest-rank-pair rule reproduces tiktoken's lowest-rank-concatenation rule;
/// `ignore_merges` reproduces tiktoken's "a chunk that is a token is emitted whole".
pub fn hf_tokenizer_json(tok: &Tokenizer) -> Vec<u8> {
    use serde_json::{Map, Value, json};
    let map = bytes_to_unicode();
    let mut vocab = Map::new();
    let strings: Vec<String> = tok.mergeable_tokens().map(|t| hf_string(t, &map)).collect();
    for (id, s) in strings.iter().enumerate() {
        vocab.insert(s.clone(), json!(id));
    }
    let mut pairs: Vec<(u32, u32, u32)> = tok
        .pair_table()
        .iter()
        .map(|(&k, &v)| (v, (k >> 32) as u32, k as u32))
        .collect();
    // By merged token rank, then by the length of the left part (shortest first).
    pairs.sort_by_key(|&(v, l, _)| (v, tok.token_bytes_of(l).map_or(0, <[u8]>::len)));
    let merges: Vec<Value> = pairs
        .iter()
        .map(|&(_, l, r)| Value::String(format!("{} {}", strings[l as usize], strings[r as usize])))
        .collect();
    let added: Vec<Value> = tok
        .special_tokens()
        .iter()
        .map(|s| {
            json!({"id": tok.special_id(s), "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern().regex()}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": true, "vocab": vocab, "merges": merges}
    });
    let mut out = serde_json::to_vec(&doc).expect("serializable");
    out.push(b'\n');
    out
}

/// What [`read_hf_tokenizer_json`] returns: token bytes by id, the split regex, and the special
/// tokens with their ids.
pub type HfContents = (Vec<Vec<u8>>, String, Vec<(String, u32)>);

/// Reads the vocabulary (token bytes by id), the split regex and the special tokens back from
/// a Hugging Face `tokenizer.json` with a byte-level BPE model (as written by
/// [`hf_tokenizer_json`]).
///
/// # Errors
/// A file that is not byte-level BPE JSON of that shape.
pub fn read_hf_tokenizer_json(path: &Path) -> Result<HfContents> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, Some(e.line()), e.to_string()))?;
    let bad = |what: &str| {
        Error::format(
            path,
            None,
            format!("not a byte-level BPE tokenizer.json: {what}"),
        )
    };
    let map = bytes_to_unicode();
    let mut back = rustc_hash::FxHashMap::default();
    for (b, c) in map.iter().enumerate() {
        back.insert(*c, b as u8);
    }
    let vocab = v["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab"))?;
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; vocab.len()];
    for (s, id) in vocab {
        let id = id.as_u64().ok_or_else(|| bad("vocab id"))? as usize;
        let bytes: Option<Vec<u8>> = s.chars().map(|c| back.get(&c).copied()).collect();
        let slot = tokens
            .get_mut(id)
            .ok_or_else(|| bad("vocab id out of range"))?;
        *slot = Some(bytes.ok_or_else(|| bad("character outside the byte alphabet"))?);
    }
    let tokens: Vec<Vec<u8>> = tokens
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| bad("gap in vocab ids"))?;
    let regex = v["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
        .as_str()
        .ok_or_else(|| bad("pre_tokenizer Split regex"))?
        .to_string();
    let mut specials = Vec::new();
    for a in v["added_tokens"]
        .as_array()
        .ok_or_else(|| bad("added_tokens"))?
    {
        let name = a["content"]
            .as_str()
            .ok_or_else(|| bad("added token content"))?;
        let id = a["id"].as_u64().ok_or_else(|| bad("added token id"))?;
        specials.push((name.to_string(), id as u32));
    }
    Ok((tokens, regex, specials))
}
