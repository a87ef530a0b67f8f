//! Shared fixtures: the bundled Aozora sample and small tokenizers trained in-process.
#![allow(dead_code, unreachable_pub)]

use njp_tokenizer::{
    NoProgress, SplitPattern, Tokenizer, TrainConfig, TrainStats, train_from_iter,
};

/// The texts of `data/aozora_sample.jsonl` (public domain, see `data/ATTRIBUTION.md`).
pub fn sample_docs() -> Vec<String> {
    let raw = include_str!("../data/aozora_sample.jsonl");
    raw.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("sample JSONL");
            v["text"].as_str().expect("text").to_string()
        })
        .collect()
}

/// Sample paragraphs (one per line), as training documents.
pub fn sample_paragraphs() -> Vec<String> {
    sample_docs()
        .iter()
        .flat_map(|d| d.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Trains on the sample paragraphs.
pub fn train(pattern: SplitPattern, vocab_size: u32) -> (Tokenizer, TrainStats) {
    let config = TrainConfig::one_stage(vocab_size, pattern);
    train_from_iter(sample_paragraphs(), &config, None, None, &NoProgress).expect("training")
}

/// A tokenizer with only the 256 byte tokens and nanochat's specials: ids are byte values.
pub fn bytes_only() -> Tokenizer {
    let tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    Tokenizer::from_tokens(tokens, SplitPattern::Ja, &njp_tokenizer::NANOCHAT_SPECIALS)
        .expect("tokenizer")
}

/// Deterministic xorshift64.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Two-stage training on the sample paragraphs: `ja` up to `transition` ids, then `ja-phrase`.
pub fn train_two_stage(vocab_size: u32, transition: u32) -> (Tokenizer, TrainStats) {
    let config = TrainConfig {
        vocab_size,
        pattern: SplitPattern::Ja,
        stage2: Some(njp_tokenizer::Stage2 {
            pattern: SplitPattern::JaPhrase,
            transition_vocab: transition,
        }),
        ..TrainConfig::default()
    };
    train_from_iter(sample_paragraphs(), &config, None, None, &NoProgress).expect("training")
}
