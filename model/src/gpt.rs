//! nanochat v1's GPT (`nanochat/gpt.py` at `10231df`) on burn 0.21.
//!
//! Notable features (nanochat-spec §3–§4):
//! - token embedding, then a **parameter-free RMSNorm** (eps = `f32::EPSILON`, PyTorch's
//!   `finfo(float32).eps`); pre-norm blocks `x + attn(norm(x))`, `x + mlp(norm(x))`; final norm;
//! - **rotary** embeddings, split halves (`y1 = x1·cos + x2·sin`, `y2 = x2·cos − x1·sin`), base
//!   10,000, tables rounded to bf16 as nanochat stores them, applied **before** QK-norm;
//! - **QK-norm** (RMSNorm over the head dim), scaled dot-product attention with the default
//!   `1/√hd`, optional GQA (`n_kv_head < n_head`, keys/values expanded);
//! - **ReLU²** MLP (`4d` hidden), no biases anywhere, untied `wte` / `lm_head`;
//! - vocabulary **padded to a multiple of 64**, logits sliced back before the **softcap 15**;
//! - init: `N(0, 1/√fan_in · min(1, √(fan_out/fan_in)))` for linears, `N(0, 1)` for `wte`,
//!   zeros for `lm_head`, `attn.c_proj`, `mlp.c_proj`.
//!
//! Parameter paths equal nanochat's state-dict keys (`transformer.h.3.attn.c_q.weight`, …).
//! Linear weights are stored `[in, out]` (burn's layout, `x·W`); [`crate::weights`] transposes to
//! PyTorch's `[out, in]` on export and import.

use burn::module::{Module, Param};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::Backend;
use burn::tensor::module::{attention, embedding, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use crate::attention::AttentionBackend;
use crate::cache::KvCache;
use crate::config::{AttentionKind, GptConfig, ModelOptions, Precision, ROTARY_BASE, SOFTCAP};
use crate::error::Result;
use crate::rng::Rng;

/// PyTorch's default `F.rms_norm` eps for f32 inputs.
pub const NORM_EPS: f64 = f32::EPSILON as f64;

/// Parameter-free RMSNorm over the last dimension.
pub fn rms_norm<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let ms = x.clone().square().mean_dim(D - 1);
    x * (ms + NORM_EPS).sqrt().recip()
}

/// Split-halves rotary embedding (nanochat `apply_rotary_emb`).
///
/// # Shapes
/// `x`: `[B, T, H, hd]`; `cos`, `sin`: `[T, hd/2]`.
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [_, t, _, hd] = x.dims();
    let half = hd / 2;
    let cos = cos.reshape([1, t, 1, half]);
    let sin = sin.reshape([1, t, 1, half]);
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let y1 = x1.clone() * cos.clone() + x2.clone() * sin.clone();
    let y2 = x2 * cos - x1 * sin;
    Tensor::cat(vec![y1, y2], 3)
}

/// nanochat's `_precompute_rotary_embeddings` in f32, then rounded to bf16 exactly as nanochat
/// stores the tables (values kept in f32 tensors).
///
/// Returns `(cos, sin)` as row-major `[len, head_dim/2]` vectors.
pub fn rotary_tables(len: usize, head_dim: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / ROTARY_BASE.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for t in 0..len {
        for &f in &inv_freq {
            let a = t as f32 * f;
            cos.push(half::bf16::from_f32(a.cos()).to_f32());
            sin.push(half::bf16::from_f32(a.sin()).to_f32());
        }
    }
    (cos, sin)
}

/// A bias-free linear layer, weight `[in, out]`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> Linear<B> {
    /// # Shapes
    /// `[..., in]` → `[..., out]`, always f32 out; with [`Precision::Bf16`] the matmul runs in bf16.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, precision: Precision) -> Tensor<B, D> {
        match precision {
            Precision::F32 => linear(x, self.weight.val(), None),
            Precision::Bf16 => {
                let w = self.weight.val().cast(DType::BF16);
                linear(x.cast(DType::BF16), w, None).cast(DType::F32)
            }
        }
    }
}

/// Token embedding table `[V_pad, d]` (same layout as PyTorch).
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
}

/// Attention projections (nanochat `CausalSelfAttention`).
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    pub c_q: Linear<B>,
    pub c_k: Linear<B>,
    pub c_v: Linear<B>,
    pub c_proj: Linear<B>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
}

/// Feed-forward block (nanochat `MLP`): `c_proj(relu(c_fc(x))²)`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub c_fc: Linear<B>,
    pub c_proj: Linear<B>,
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub attn: CausalSelfAttention<B>,
    pub mlp: Mlp<B>,
}

/// `transformer.wte` and `transformer.h`.
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    pub wte: Embedding<B>,
    pub h: Vec<Block<B>>,
}

/// The nanochat GPT.
#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    pub transformer: Transformer<B>,
    pub lm_head: Linear<B>,
    /// Rotary tables `[rotary_len, hd/2]`: constants, not parameters, never saved.
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    vocab_size: usize,
    sequence_len: usize,
    options: ModelOptions,
}

/// Draws a `[rows, cols]` f32 matrix with N(0, std²) entries, or zeros when `std == 0`.
fn normal_param<B: Backend>(
    rng: &mut Rng,
    shape: [usize; 2],
    std: f64,
    device: &B::Device,
) -> Param<Tensor<B, 2>> {
    let mut v = vec![0f32; shape[0] * shape[1]];
    if std > 0.0 {
        rng.fill_normal(&mut v, 0.0, std);
    }
    Param::from_data(TensorData::new(v, shape), device)
}

/// A linear `[in, out]` with nanochat's init `std = 1/√in · min(1, √(out/in))`, or zeros.
fn init_linear<B: Backend>(
    rng: &mut Rng,
    d_in: usize,
    d_out: usize,
    zero: bool,
    device: &B::Device,
) -> Linear<B> {
    let std = if zero {
        0.0
    } else {
        let (fi, fo) = (d_in as f64, d_out as f64);
        fi.sqrt().recip() * (fo / fi).sqrt().min(1.0)
    };
    Linear {
        weight: normal_param(rng, [d_in, d_out], std, device),
    }
}

impl<B: Backend> Gpt<B> {
    /// Builds the model with nanochat's initialization, drawing from a host RNG seeded with
    /// `seed` in module order (`wte`, then each block's `c_q, c_k, c_v, c_proj, c_fc, c_proj`,
    /// then `lm_head`), so the same seed gives the same weights on every backend.
    ///
    /// # Errors
    /// An invalid config.
    pub fn init(
        config: &GptConfig,
        options: ModelOptions,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let mut rng = Rng::new(seed);
        let d = config.n_embd;
        let hd = config.head_dim();
        let wte = Embedding {
            weight: normal_param(&mut rng, [config.padded_vocab(), d], 1.0, device),
        };
        let h = (0..config.n_layer)
            .map(|_| Block {
                attn: CausalSelfAttention {
                    c_q: init_linear(&mut rng, d, config.n_head * hd, false, device),
                    c_k: init_linear(&mut rng, d, config.n_kv_head * hd, false, device),
                    c_v: init_linear(&mut rng, d, config.n_kv_head * hd, false, device),
                    c_proj: init_linear(&mut rng, d, d, true, device),
                    n_head: config.n_head,
                    n_kv_head: config.n_kv_head,
                    head_dim: hd,
                },
                mlp: Mlp {
                    c_fc: init_linear(&mut rng, d, 4 * d, false, device),
                    c_proj: init_linear(&mut rng, 4 * d, d, true, device),
                },
            })
            .collect();
        let lm_head = init_linear(&mut rng, d, config.padded_vocab(), true, device);
        let (cos, sin) = rotary_tables(config.rotary_len(), hd);
        let table = |v: Vec<f32>| {
            Tensor::from_data(TensorData::new(v, [config.rotary_len(), hd / 2]), device)
        };
        Ok(Gpt {
            transformer: Transformer { wte, h },
            lm_head,
            cos: table(cos),
            sin: table(sin),
            vocab_size: config.vocab_size,
            sequence_len: config.sequence_len,
            options,
        })
    }

    /// The nanochat config this model was built from.
    pub fn config(&self) -> GptConfig {
        let attn = &self.transformer.h[0].attn;
        GptConfig {
            sequence_len: self.sequence_len,
            vocab_size: self.vocab_size,
            n_layer: self.transformer.h.len(),
            n_head: attn.n_head,
            n_kv_head: attn.n_kv_head,
            n_embd: self.transformer.wte.weight.dims()[1],
        }
    }

    pub fn options(&self) -> ModelOptions {
        self.options
    }

    /// Changes precision or attention kernel (does not touch weights).
    pub fn with_options(mut self, options: ModelOptions) -> Self {
        self.options = options;
        self
    }
}

impl<B: AttentionBackend> CausalSelfAttention<B> {
    /// # Shapes
    /// `x`: `[B, T, d]`, `cos`/`sin`: `[T, hd/2]` → `[B, T, d]`.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: Tensor<B, 2>,
        sin: Tensor<B, 2>,
        cache: Option<(&mut KvCache<B>, usize)>,
        opts: ModelOptions,
    ) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let (h, hkv, hd) = (self.n_head, self.n_kv_head, self.head_dim);
        let p = opts.precision;
        let q = self.c_q.forward(x.clone(), p).reshape([b, t, h, hd]);
        let k = self.c_k.forward(x.clone(), p).reshape([b, t, hkv, hd]);
        let v = self.c_v.forward(x, p).reshape([b, t, hkv, hd]);
        let q = rms_norm(B::rotary(q, cos.clone(), sin.clone())).swap_dims(1, 2);
        let k = rms_norm(B::rotary(k, cos, sin)).swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.insert(layer, k, v),
            None => (k, v),
        };
        let tk = k.dims()[2];
        let expand = |x: Tensor<B, 4>| -> Tensor<B, 4> {
            if hkv == h {
                x
            } else {
                x.unsqueeze_dim::<5>(2)
                    .expand([b, hkv, h / hkv, tk, hd])
                    .reshape([b, h, tk, hd])
            }
        };
        let (k, v) = (expand(k), expand(v));
        let (q, k, v) = match p {
            Precision::F32 => (q, k, v),
            Precision::Bf16 => (
                q.cast(DType::BF16),
                k.cast(DType::BF16),
                v.cast(DType::BF16),
            ),
        };
        let y = if t == tk {
            match opts.attention {
                AttentionKind::Chunked { chunk } => B::chunked_causal_attention(q, k, v, chunk),
                AttentionKind::Plain => attention(q, k, v, None, None, causal(true)),
            }
        } else if t == 1 {
            // Decoding one token: it attends to everything in the cache.
            attention(q, k, v, None, None, causal(false))
        } else {
            // Chunked prefill: all cached prefix columns visible, causal within the new block.
            let mask = Tensor::<B, 2, Bool>::tril_mask([t, tk], (tk - t) as i64, &q.device());
            let mask = mask.unsqueeze::<4>().expand([b, h, t, tk]);
            attention(q, k, v, Some(mask), None, causal(false))
        };
        let y = y.cast(DType::F32).swap_dims(1, 2).reshape([b, t, d]);
        self.c_proj.forward(y, p)
    }
}

fn causal(is_causal: bool) -> AttentionModuleOptions {
    AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal,
    }
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>, p: Precision) -> Tensor<B, 3> {
        self.c_proj
            .forward(relu(self.c_fc.forward(x, p)).square(), p)
    }
}

impl<B: AttentionBackend> Gpt<B> {
    /// Hidden states after the final norm.
    ///
    /// # Shapes
    /// `idx`: `[B, T]` → `[B, T, d]`.
    fn trunk(&self, idx: Tensor<B, 2, Int>, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        let [_, t] = idx.dims();
        let pos = cache.as_ref().map_or(0, |c| c.pos());
        assert!(
            pos + t <= self.cos.dims()[0],
            "sequence of {} tokens at position {pos} exceeds the rotary table ({} positions)",
            t,
            self.cos.dims()[0]
        );
        let cos = self.cos.clone().narrow(0, pos, t);
        let sin = self.sin.clone().narrow(0, pos, t);
        let mut x = rms_norm(embedding(self.transformer.wte.weight.val(), idx));
        for (i, block) in self.transformer.h.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = x.clone()
                + block.attn.forward(
                    rms_norm(x.clone()),
                    cos.clone(),
                    sin.clone(),
                    c,
                    self.options,
                );
            x = x.clone() + block.mlp.forward(rms_norm(x), self.options.precision);
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        rms_norm(x)
    }

    /// Logits after slicing to `vocab_size` and the softcap, in f32.
    ///
    /// # Shapes
    /// `idx`: `[B, T]` token ids → `[B, T, vocab_size]`.
    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = self.trunk(idx, None);
        self.head(x)
    }

    /// Like [`Gpt::forward`], continuing the sequences held in `cache` (inference).
    pub fn forward_cached(&self, idx: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let x = self.trunk(idx, Some(cache));
        self.head(x)
    }

    fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let logits = self.lm_head.forward(x, self.options.precision);
        let logits = logits.narrow(2, 0, self.vocab_size).cast(DType::F32);
        (logits / SOFTCAP).tanh() * SOFTCAP
    }

    /// Per-token negative log-likelihood, 0 where the target is negative (ignored).
    ///
    /// # Shapes
    /// `idx`, `targets`: `[B, T]` → `[B, T]`.
    pub fn nll(&self, idx: Tensor<B, 2, Int>, targets: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [b, t] = idx.dims();
        let x = self.trunk(idx, None);
        let logits = self.lm_head.forward(x, self.options.precision);
        let logits = logits
            .narrow(2, 0, self.vocab_size)
            .cast(DType::F32)
            .reshape([b * t, self.vocab_size]);
        B::softcap_cross_entropy(logits, targets.reshape([b * t]), SOFTCAP, false)
            .0
            .reshape([b, t])
    }

    /// Mean cross-entropy over targets ≥ 0: PyTorch's `cross_entropy(…, ignore_index=-1)`.
    /// A batch without any target gives 0 (not NaN); callers should never feed one.
    ///
    /// # Shapes
    /// `idx`, `targets`: `[B, T]` → `[1]`.
    pub fn loss(&self, idx: Tensor<B, 2, Int>, targets: Tensor<B, 2, Int>) -> Tensor<B, 1> {
        let count = targets
            .clone()
            .greater_equal_elem(0)
            .int()
            .sum()
            .float()
            .clamp_min(1.0);
        self.nll(idx, targets).sum() / count
    }
}

/// Negative log-likelihood per row of `logits`, zero where `targets < 0`.
///
/// # Shapes
/// `logits`: `[N, V]` (f32), `targets`: `[N]` → `[N]`.
pub fn masked_nll<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let valid = targets.clone().greater_equal_elem(0);
    let picked = log_softmax(logits, 1).gather(1, targets.clamp_min(0).unsqueeze_dim(1));
    picked.squeeze_dim::<1>(1).neg() * valid.float()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Tolerance;

    fn tiny() -> GptConfig {
        GptConfig {
            sequence_len: 16,
            vocab_size: 70,
            n_layer: 2,
            n_head: 4,
            n_kv_head: 4,
            n_embd: 32,
        }
    }

    fn ids<B: Backend>(v: &[i64], shape: [usize; 2]) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
    }

    #[test]
    fn shapes_padding_and_init() {
        let model =
            Gpt::<Flex>::init(&tiny(), ModelOptions::default(), 1, &Default::default()).unwrap();
        assert_eq!(model.transformer.wte.weight.dims(), [128, 32]);
        assert_eq!(model.lm_head.weight.dims(), [32, 128]);
        assert_eq!(model.transformer.h[0].mlp.c_fc.weight.dims(), [32, 128]);
        assert_eq!(model.config(), tiny());
        // Zero-init projections and head: the fresh model predicts the uniform distribution.
        let logits = model.forward(ids(&[1, 2, 3, 4, 5, 6], [2, 3]));
        assert_eq!(logits.dims(), [2, 3, 70]);
        assert_eq!(logits.abs().max().into_scalar(), 0.0);
        let loss = model.loss(
            ids(&[1, 2, 3, 4, 5, 6], [2, 3]),
            ids(&[2, 3, -1, -1, -1, 7], [2, 3]),
        );
        let expected = (70f32).ln();
        assert!((loss.into_scalar() - expected).abs() < 1e-5);
        // The same seed gives the same weights; another seed does not.
        let again =
            Gpt::<Flex>::init(&tiny(), ModelOptions::default(), 1, &Default::default()).unwrap();
        let other =
            Gpt::<Flex>::init(&tiny(), ModelOptions::default(), 2, &Default::default()).unwrap();
        let w = |m: &Gpt<Flex>| m.transformer.h[1].attn.c_k.weight.val().into_data();
        assert_eq!(w(&model), w(&again));
        assert_ne!(w(&model), w(&other));
    }

    #[test]
    fn masked_loss_ignores_negative_targets() {
        let device = Default::default();
        let logits = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5], [2, 3]),
            &device,
        );
        let t = Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![2i64, -1], [2]), &device);
        let nll = masked_nll(logits, t).into_data().to_vec::<f32>().unwrap();
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        assert!((nll[0] - (lse - 3.0)).abs() < 1e-6);
        assert_eq!(nll[1], 0.0);
    }

    #[test]
    fn causality_and_chunked_equivalence() {
        // Perturbing a later token never changes earlier logits; chunked == plain attention.
        let device = Default::default();
        let mut model = Gpt::<Flex>::init(&tiny(), ModelOptions::default(), 3, &device).unwrap();
        // Give the zero-initialised matrices weights so every path carries signal.
        let mut rng = Rng::new(9);
        model.lm_head = Linear {
            weight: normal_param(&mut rng, [32, 128], 0.2, &device),
        };
        for blk in &mut model.transformer.h {
            blk.attn.c_proj = Linear {
                weight: normal_param(&mut rng, [32, 32], 0.2, &device),
            };
            blk.mlp.c_proj = Linear {
                weight: normal_param(&mut rng, [128, 32], 0.1, &device),
            };
        }
        let a = model.forward(ids(&[5, 6, 7, 8, 9, 10], [1, 6]));
        let b = model.forward(ids(&[5, 6, 7, 8, 9, 60], [1, 6]));
        a.clone()
            .narrow(1, 0, 5)
            .into_data()
            .assert_approx_eq::<f32>(
                &b.clone().narrow(1, 0, 5).into_data(),
                Tolerance::absolute(1e-6),
            );
        assert!(
            (a.clone().narrow(1, 5, 1) - b.narrow(1, 5, 1))
                .abs()
                .max()
                .into_scalar()
                > 1e-4
        );
        let opts = ModelOptions {
            attention: AttentionKind::Chunked { chunk: 4 },
            ..Default::default()
        };
        let chunked = model.with_options(opts);
        let c = chunked.forward(ids(&[5, 6, 7, 8, 9, 10], [1, 6]));
        c.into_data()
            .assert_approx_eq::<f32>(&a.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn gqa_runs_and_gradients_flow() {
        let cfg = GptConfig {
            n_kv_head: 2,
            ..tiny()
        };
        let device = Default::default();
        let model = Gpt::<Autodiff<Flex>>::init(&cfg, ModelOptions::default(), 4, &device).unwrap();
        assert_eq!(model.transformer.h[0].attn.c_k.weight.dims(), [32, 16]);
        let loss = model.loss(ids(&[1, 2, 3, 4], [1, 4]), ids(&[2, 3, 4, 5], [1, 4]));
        let grads = loss.backward();
        // Only lm_head gets a gradient at init (everything upstream of a zero head gets zero).
        let g = model.lm_head.weight.grad(&grads).unwrap();
        assert!(g.abs().sum().into_scalar() > 0.0);
        let g = model.transformer.h[0].attn.c_q.weight.grad(&grads).unwrap();
        assert_eq!(g.abs().sum().into_scalar(), 0.0);
    }

    #[test]
    fn rotary_matches_closed_form() {
        let (cos, sin) = rotary_tables(4, 8);
        // position 2, channel 1: inv_freq = 10000^(-2/8) = 0.1
        let a = 2.0f32 * 0.1;
        assert!((cos[2 * 4 + 1] - a.cos()).abs() < 4e-3); // bf16 rounding
        assert_eq!(cos[2 * 4 + 1], half::bf16::from_f32(a.cos()).to_f32());
        assert_eq!(sin[0], 0.0);
    }
}
