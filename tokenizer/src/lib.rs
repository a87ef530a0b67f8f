//! Japanese-aware byte-level BPE for nanochat-jp.
//!
//! * **Split patterns** ([`pattern`]): nanochat's GPT-4 pattern and Japanese-aware ones, on a
//!   hand-written splitter that matches fancy-regex exactly.
//! * **Two-stage training** (opt-in, [`TrainConfig::span`]): characters and kanji words first,
//!   then tokens across words and punctuation up to whitespace (SuperBPE-style); 5–16 % fewer
//!   tokens than nanochat's tokenizer on held-out Japanese (`bench/RESULTS.md`).
//! * **Training** ([`train`]): parallel chunk counting with `i64` counts, a flat in-place word
//!   store, incremental pair counts with a lazy max-heap, parallel merges; identical output for
//!   any thread count.
//! * **Encoding** ([`Tokenizer`]): tiktoken semantics (ranks of concatenations, whole-chunk
//!   tokens), linear scan for short chunks and a heap for long ones, parallel batches, decode
//!   and streaming decode. Special-token strings in text are never special.
//! * **Formats** ([`io`]): native directory, tiktoken rank file, Hugging Face `tokenizer.json`;
//!   nanochat's `tokenizer.pkl` is read without Python by a data-only pickle reader ([`pickle`]).
//! * **Chat template** ([`chat`]): nanochat's `render_conversation` rules with an explicit
//!   truncation policy and a report of what it cost.
//!
//! ```
//! use njp_tokenizer::{train_from_iter, NoProgress, TrainConfig, SplitPattern};
//! let docs = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。"];
//! let config = TrainConfig { vocab_size: 256 + 9 + 20, ..TrainConfig::default() };
//! let (tok, stats) = train_from_iter(docs, &config, None, None, &NoProgress)?;
//! assert_eq!(tok.vocab_size(), 285);
//! let ids = tok.encode("吾輩は猫である。<|bos|>");
//! assert_eq!(tok.decode(&ids)?, "吾輩は猫である。<|bos|>");
//! assert!(!ids.contains(&tok.bos_id()?)); // special strings in text are plain bytes
//! # Ok::<(), njp_tokenizer::Error>(())
//! ```

pub(crate) mod bpe;
pub mod chat;
pub mod error;
pub mod io;
mod pair_table;
pub mod pattern;
pub mod pickle;
pub mod special;
mod stream;
mod tokenizer;
pub mod train;

pub use chat::{
    ChatRenderer, RenderError, RenderOutcome, RenderReport, Rendered, TruncationPolicy,
    parse_conversation_json,
};
pub use error::{Error, Result};
pub use pattern::{SplitPattern, Splitter};
pub use special::{NANOCHAT_SPECIALS, Special};
pub use stream::StreamDecoder;
pub use tokenizer::Tokenizer;
pub use train::{
    ChunkCounter, NoProgress, Phase, Progress, SPAN_TRANSITION_VOCAB, Stage2, Stage2Stats,
    TrainConfig, TrainStats, train_from_iter,
};
