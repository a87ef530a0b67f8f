//! Autoregressive generation with the KV cache: greedy or temperature / top-k sampling from the
//! host RNG (reproducible and resumable, unlike backend RNGs).

use burn::tensor::{Int, Tensor, TensorData};

use crate::attention::AttentionBackend;
use crate::cache::KvCache;
use crate::gpt::Gpt;
use crate::rng::Rng;

/// How to pick each new token.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Stop after this many new tokens.
    pub max_new_tokens: usize,
    /// 0 = greedy (argmax).
    pub temperature: f64,
    /// Keep only the k most likely tokens before sampling (ignored when greedy).
    pub top_k: Option<usize>,
    /// Stop right after producing one of these ids (the stop token is included).
    pub stop: Vec<u32>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            max_new_tokens: 32,
            temperature: 0.0,
            top_k: None,
            stop: Vec::new(),
        }
    }
}

/// Continues `prompt` and returns only the new tokens.
///
/// The prompt is prefilled in one forward pass; then one token per step attends to the cache.
/// Generation stops early at a stop token or when the rotary table (10 × `sequence_len`) is full.
pub fn generate<B: AttentionBackend>(
    model: &Gpt<B>,
    prompt: &[u32],
    opts: &SampleOptions,
    rng: &mut Rng,
) -> Vec<u32> {
    if prompt.is_empty() || opts.max_new_tokens == 0 {
        return Vec::new();
    }
    let config = model.config();
    let max_len = (prompt.len() + opts.max_new_tokens).min(config.rotary_len());
    if prompt.len() >= max_len {
        return Vec::new();
    }
    let device = model.lm_head.weight.device();
    let mut cache = KvCache::<B>::new(&config, 1, max_len, &device);
    let to_ids = |ids: &[u32]| {
        let v: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, ids.len()]), &device)
    };
    let mut out = Vec::new();
    let mut logits = model.forward_cached(to_ids(prompt), &mut cache);
    loop {
        let t = logits.dims()[1];
        let last = logits.narrow(1, t - 1, 1).flatten::<1>(0, 2);
        let next = pick(last, opts, rng);
        out.push(next);
        if opts.stop.contains(&next) || out.len() >= opts.max_new_tokens || cache.pos() >= max_len {
            break;
        }
        logits = model.forward_cached(to_ids(&[next]), &mut cache);
    }
    out
}

fn pick<B: AttentionBackend>(logits: Tensor<B, 1>, opts: &SampleOptions, rng: &mut Rng) -> u32 {
    if opts.temperature <= 0.0 {
        let i: i64 = logits.argmax(0).into_scalar().elem();
        return i as u32;
    }
    let v = logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    sample_host(&v, opts.temperature, opts.top_k, rng)
}

/// Samples an index from `softmax(logits / temperature)` restricted to the top k.
pub fn sample_host(logits: &[f32], temperature: f64, top_k: Option<usize>, rng: &mut Rng) -> u32 {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if let Some(k) = top_k {
        idx.truncate(k.max(1));
    }
    let max = f64::from(logits[idx[0]]);
    let weights: Vec<f64> = idx
        .iter()
        .map(|&i| ((f64::from(logits[i]) - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.next_f64() * total;
    for (w, &i) in weights.iter().zip(&idx) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    idx[idx.len() - 1] as u32
}

use burn::tensor::ElementConversion;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GptConfig, ModelOptions};
    use burn::backend::Flex;

    #[test]
    fn cached_decoding_matches_full_forward() {
        let cfg = GptConfig {
            sequence_len: 8,
            vocab_size: 50,
            n_layer: 2,
            n_head: 2,
            n_kv_head: 1,
            n_embd: 16,
        };
        let device = Default::default();
        let mut model = Gpt::<Flex>::init(&cfg, ModelOptions::default(), 5, &device).unwrap();
        let mut rng = Rng::new(1);
        // Non-zero head and projections so the logits depend on the context.
        let w = |rng: &mut Rng, s: [usize; 2]| {
            let mut v = vec![0f32; s[0] * s[1]];
            rng.fill_normal(&mut v, 0.0, 0.3);
            burn::module::Param::from_data(TensorData::new(v, s), &device)
        };
        model.lm_head.weight = w(&mut rng, [16, 64]);
        for b in &mut model.transformer.h {
            b.attn.c_proj.weight = w(&mut rng, [16, 16]);
            b.mlp.c_proj.weight = w(&mut rng, [64, 16]);
        }
        let prompt = [3u32, 7, 11];
        let opts = SampleOptions {
            max_new_tokens: 6,
            ..Default::default()
        };
        let fast = generate(&model, &prompt, &opts, &mut Rng::new(0));
        // Reference: recompute the whole sequence for every new token, no cache.
        let mut seq: Vec<u32> = prompt.to_vec();
        for _ in 0..6 {
            let v: Vec<i64> = seq.iter().map(|&i| i64::from(i)).collect();
            let idx =
                Tensor::<Flex, 2, Int>::from_data(TensorData::new(v, [1, seq.len()]), &device);
            let logits = model.forward(idx);
            let t = logits.dims()[1];
            let last = logits.narrow(1, t - 1, 1).flatten::<1>(0, 2);
            let i: i64 = last.argmax(0).into_scalar().elem();
            seq.push(i as u32);
        }
        assert_eq!(fast, seq[3..].to_vec());
        // Chunked prefill after a first prefill uses the prefix mask: same logits as one pass.
        let mut cache = KvCache::<Flex>::new(&cfg, 1, 8, &device);
        let ids = |v: &[i64]| {
            Tensor::<Flex, 2, Int>::from_data(TensorData::new(v.to_vec(), [1, v.len()]), &device)
        };
        let _ = model.forward_cached(ids(&[3, 7]), &mut cache);
        let part = model.forward_cached(ids(&[11, 4, 9]), &mut cache);
        let full = model.forward(ids(&[3, 7, 11, 4, 9])).narrow(1, 2, 3);
        part.into_data()
            .assert_approx_eq::<f32>(&full.into_data(), burn::tensor::Tolerance::absolute(1e-5));
    }

    #[test]
    fn host_sampling_respects_top_k() {
        let logits = [0.0f32, 5.0, 4.9, -3.0];
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let i = sample_host(&logits, 1.0, Some(2), &mut rng);
            assert!(i == 1 || i == 2);
        }
    }
}
