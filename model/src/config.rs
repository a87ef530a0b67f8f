//! The model configuration: nanochat's `GPTConfig`, derived from one dial (`depth`), and the
//! runtime options that do not change the model's function (precision, attention kernel).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// nanochat's aspect ratio: `n_embd = depth × 64`.
pub const ASPECT_RATIO: usize = 64;
/// nanochat's head width: `n_head = ceil(n_embd / 128)`.
pub const HEAD_DIM: usize = 128;
/// Vocabulary rows of `wte` and `lm_head` are padded up to a multiple of this (nanochat
/// `pad_vocab_size_to=64`); logits are sliced back to `vocab_size`.
pub const VOCAB_PAD: usize = 64;
/// Rotary base (nanochat v1; HEAD uses 100,000).
pub const ROTARY_BASE: f32 = 10_000.0;
/// Rotary tables cover this many times `sequence_len` (nanochat `rotary_seq_len`).
pub const ROTARY_LEN_FACTOR: usize = 10;
/// Logit soft cap: `15·tanh(logits/15)`.
pub const SOFTCAP: f64 = 15.0;

/// nanochat's `GPTConfig`. The JSON form has exactly nanochat's `model_config` keys, so a
/// nanochat `meta_XXXXXX.json` reads into it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Training context length T; rotary tables cover `10 × sequence_len` positions.
    pub sequence_len: usize,
    /// Vocabulary size of the tokenizer (logits are sliced to this).
    pub vocab_size: usize,
    /// Number of transformer blocks (the depth).
    pub n_layer: usize,
    /// Number of query heads.
    pub n_head: usize,
    /// Number of key/value heads (`n_head` unless GQA is wanted; must divide `n_head`).
    pub n_kv_head: usize,
    /// Residual width d.
    pub n_embd: usize,
}

impl GptConfig {
    /// nanochat's derivation from `--depth`: `n_embd = depth·64`, `n_head = ceil(n_embd/128)`
    /// (head_dim 128), `n_kv_head = n_head`.
    pub fn from_depth(depth: usize, vocab_size: usize, sequence_len: usize) -> Self {
        let n_embd = depth * ASPECT_RATIO;
        let n_head = n_embd.div_ceil(HEAD_DIM).max(1);
        GptConfig {
            sequence_len,
            vocab_size,
            n_layer: depth,
            n_head,
            n_kv_head: n_head,
            n_embd,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Rows of `wte` and `lm_head`: `vocab_size` rounded up to a multiple of 64.
    pub fn padded_vocab(&self) -> usize {
        self.vocab_size.div_ceil(VOCAB_PAD) * VOCAB_PAD
    }

    /// Positions covered by the rotary tables.
    pub fn rotary_len(&self) -> usize {
        self.sequence_len * ROTARY_LEN_FACTOR
    }

    /// Checks that the numbers describe a model nanochat could build.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first violated constraint.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.n_layer == 0 || self.n_embd == 0 || self.n_head == 0 || self.n_kv_head == 0 {
            return bad(format!("every size must be positive: {self}"));
        }
        if self.vocab_size < 2 {
            return bad(format!("vocab_size {} is too small", self.vocab_size));
        }
        if self.sequence_len == 0 {
            return bad("sequence_len must be positive".into());
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if self.n_kv_head > self.n_head || !self.n_head.is_multiple_of(self.n_kv_head) {
            return bad(format!(
                "n_kv_head {} must divide n_head {} (GQA groups)",
                self.n_kv_head, self.n_head
            ));
        }
        Ok(())
    }

    /// Parameter count with the padded vocabulary, as nanochat reports it:
    /// `2·V_pad·d + L·(d·(H + 2·Hkv)·hd + d² + 8d²)`.
    pub fn num_params(&self) -> u64 {
        let d = self.n_embd as u64;
        let hd = self.head_dim() as u64;
        let (h, hkv) = (self.n_head as u64, self.n_kv_head as u64);
        let attn = d * h * hd + 2 * d * hkv * hd + d * d;
        let mlp = 8 * d * d;
        2 * self.padded_vocab() as u64 * d + self.n_layer as u64 * (attn + mlp)
    }

    /// Parameters of the embedding table (`wte`), excluded from the FLOP estimate.
    pub fn num_embedding_params(&self) -> u64 {
        self.padded_vocab() as u64 * self.n_embd as u64
    }

    /// nanochat's `estimate_flops`: `6·(N − N_wte) + 12·L·H·hd·T` per token (forward + backward).
    pub fn flops_per_token(&self) -> f64 {
        let n = (self.num_params() - self.num_embedding_params()) as f64;
        let (l, h, q, t) = (
            self.n_layer as f64,
            self.n_head as f64,
            self.head_dim() as f64,
            self.sequence_len as f64,
        );
        6.0 * n + 12.0 * l * h * q * t
    }
}

impl fmt::Display for GptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n_layer={} n_embd={} n_head={} n_kv_head={} vocab={} (padded {}) T={}",
            self.n_layer,
            self.n_embd,
            self.n_head,
            self.n_kv_head,
            self.vocab_size,
            self.padded_vocab(),
            self.sequence_len
        )
    }
}

/// Named model sizes. The vocabulary always comes from the tokenizer.
///
/// | preset | depth | d_model | heads | T | params at V = 65,536 | use |
/// |---|---|---|---|---|---|---|
/// | `tiny` | 4 | 256 | 2 | 256 | 36.7M (3.1M without embeddings) | CPU runs, quickstart |
/// | `d20` | 20 | 1280 | 10 | 2048 | 561M | nanochat speedrun ($100 tier) |
/// | `d26` | 26 | 1664 | 13 | 2048 | 1.08B | GPT-2 grade ($300 tier) |
/// | `d32` | 32 | 2048 | 16 | 2048 | 1.88B | run1000 ($1000 tier) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Tiny,
    D20,
    D26,
    D32,
}

impl Preset {
    /// The depth dial of the preset.
    pub fn depth(self) -> usize {
        match self {
            Preset::Tiny => 4,
            Preset::D20 => 20,
            Preset::D26 => 26,
            Preset::D32 => 32,
        }
    }

    /// Training context length of the preset.
    pub fn sequence_len(self) -> usize {
        match self {
            Preset::Tiny => 256,
            _ => 2048,
        }
    }

    /// The config for a tokenizer with `vocab_size` tokens.
    pub fn config(self, vocab_size: usize) -> GptConfig {
        GptConfig::from_depth(self.depth(), vocab_size, self.sequence_len())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::D20 => "d20",
            Preset::D26 => "d26",
            Preset::D32 => "d32",
        }
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "d20" => Ok(Preset::D20),
            "d26" => Ok(Preset::D26),
            "d32" => Ok(Preset::D32),
            other => Err(Error::UnknownPreset(other.to_string())),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Floating-point type of matmuls and attention. Parameters, norms, softmax-CE and the softcap
/// always stay f32 (nanochat's fp32 master weights under bf16 autocast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (CPU, tests, parity).
    #[default]
    F32,
    /// bf16 matmul inputs and attention (CUDA; flex emulates bf16 slowly).
    Bf16,
}

/// How causal self-attention is computed in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AttentionKind {
    /// burn's `attention` op. Under autodiff it is the decomposed fallback, which keeps about
    /// three `[B, H, T, T]` tensors per layer for backward.
    #[default]
    Plain,
    /// Query-chunked attention with its own backward that recomputes the probabilities from
    /// the saved log-sum-exp (flash-attention style): O(T) saved state per layer, peak
    /// `[B, H, chunk, T]` scratch.
    Chunked { chunk: usize },
}

/// Runtime options: they change speed and memory, never the function the model computes
/// (up to floating-point rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelOptions {
    pub precision: Precision,
    pub attention: AttentionKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanochat_sizes() {
        // nanochat-spec §3.6: exact parameter counts and FLOPs/token at V = 65,536, T = 2048.
        let d20 = Preset::D20.config(65_536);
        assert_eq!((d20.n_embd, d20.n_head, d20.head_dim()), (1280, 10, 128));
        assert_eq!(d20.num_params(), 560_988_160);
        assert!((d20.flops_per_token() - 3.491758e9).abs() / 3.491758e9 < 1e-6);
        let d32 = Preset::D32.config(65_536);
        assert_eq!(d32.num_params(), 1_879_048_192);
        assert!((d32.flops_per_token() - 1.207960e10).abs() / 1.207960e10 < 1e-6);
        let d26 = Preset::D26.config(65_536);
        assert_eq!((d26.n_embd, d26.n_head), (1664, 13));
        assert_eq!(d26.num_params(), 1_081_999_360);
    }

    #[test]
    fn vocab_padding_and_validation() {
        let c = GptConfig::from_depth(2, 265, 64);
        assert_eq!(c.padded_vocab(), 320);
        assert_eq!(c.n_head, 1);
        c.validate().unwrap();
        let bad = GptConfig {
            n_kv_head: 3,
            n_head: 4,
            ..GptConfig::from_depth(4, 300, 32)
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("n_kv_head 3")
        );
        let odd = GptConfig {
            n_embd: 6,
            n_head: 2,
            n_kv_head: 2,
            ..bad
        };
        assert!(odd.validate().unwrap_err().to_string().contains("even"));
    }

    #[test]
    fn config_json_uses_nanochat_keys() {
        let json = r#"{"sequence_len": 2048, "vocab_size": 65536, "n_layer": 20, "n_head": 10, "n_kv_head": 10, "n_embd": 1280}"#;
        let c: GptConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c, Preset::D20.config(65_536));
        assert!("d21".parse::<Preset>().is_err());
    }
}
