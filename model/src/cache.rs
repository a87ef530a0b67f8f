//! Key/value cache for incremental decoding (nanochat `KVCache`), preallocated per layer and
//! written in place (burn-notes §3.8: `slice_assign` through `Tensor::inplace` avoids copying the
//! whole cache on every token).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::config::GptConfig;

/// Cached keys and values of every layer, `[B, Hkv, max_len, hd]` each.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    k: Vec<Tensor<B, 4>>,
    v: Vec<Tensor<B, 4>>,
    pos: usize,
    max_len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `batch` sequences of at most `max_len` tokens.
    pub fn new(config: &GptConfig, batch: usize, max_len: usize, device: &B::Device) -> Self {
        let shape = [batch, config.n_kv_head, max_len, config.head_dim()];
        let layer = || Tensor::<B, 4>::zeros(shape, device);
        KvCache {
            k: (0..config.n_layer).map(|_| layer()).collect(),
            v: (0..config.n_layer).map(|_| layer()).collect(),
            pos: 0,
            max_len,
        }
    }

    /// Number of positions already filled.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Capacity in positions.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Writes `t` new positions of one layer and returns the keys and values of all positions so
    /// far. The position advances once every layer has been written ([`KvCache::advance`]).
    ///
    /// # Panics
    /// When the cache would overflow.
    pub(crate) fn insert(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, t, d] = k.dims();
        let (s, e) = (self.pos, self.pos + t);
        assert!(
            e <= self.max_len,
            "KV cache overflow: {e} > {} positions",
            self.max_len
        );
        self.k[layer].inplace(|c| c.slice_assign([0..b, 0..h, s..e, 0..d], k));
        self.v[layer].inplace(|c| c.slice_assign([0..b, 0..h, s..e, 0..d], v));
        let k_all = self.k[layer].clone().slice([0..b, 0..h, 0..e, 0..d]);
        let v_all = self.v[layer].clone().slice([0..b, 0..h, 0..e, 0..d]);
        (k_all, v_all)
    }

    pub(crate) fn advance(&mut self, t: usize) {
        self.pos += t;
    }
}
