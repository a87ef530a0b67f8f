//! Causal self-attention kernels.
//!
//! burn 0.21 trains attention through the decomposed fallback (`q·kᵀ` → softmax → `·v`), whose
//! autodiff graph keeps about three `[B, H, T, T]` tensors per layer: ~10 GB per sequence for
//! d20 at T = 2048 in f32 (burn-notes §3.1). [`AttentionBackend::chunked_causal_attention`] is
//! the memory-efficient path: the forward pass walks over query chunks with an exact softmax and
//! saves only `q, k, v, o` and the per-row log-sum-exp; the backward pass recomputes the
//! probabilities chunk by chunk (FlashAttention-2's algorithm, written with ordinary tensor ops so
//! it runs on every backend). Saved state is O(T) per layer; the scratch peak is a few
//! `[B, H, chunk, T]` tensors. Key columns past a chunk's causal boundary are skipped, which also
//! halves the matmul work of the plain path.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Int, Tensor, TensorPrimitive};

use crate::loss;

/// The model's own kernels: chunked causal attention and the fused softcap cross-entropy
/// ([`crate::loss`]). Inference backends use the defaults (forward only); `Autodiff<B>` adds the
/// custom backward passes; `Flex` overrides the cross-entropy with a row-parallel kernel.
pub trait AttentionBackend: Backend {
    /// Per-row `cross_entropy(c·tanh(logits/c), target)` (0 where `target < 0`) and, when
    /// `with_grad`, its gradient per unit upstream gradient (see [`crate::loss`]). On
    /// `Autodiff<B>` the result is tracked and `with_grad` is decided by the graph.
    ///
    /// # Shapes
    /// `logits`: `[N, V]`, `targets`: `[N]` → (`[N]`, `[N, V]`).
    fn softcap_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        cap: f64,
        with_grad: bool,
    ) -> (Tensor<Self, 1>, Option<Tensor<Self, 2>>) {
        loss::reference_softcap_ce(logits, targets, cap, with_grad)
    }

    /// Split-halves rotary embedding ([`crate::gpt::apply_rotary`]; see [`crate::rotary`]).
    ///
    /// # Shapes
    /// `x`: `[B, T, H, hd]`; `cos`, `sin`: `[T, hd/2]`.
    fn rotary(x: Tensor<Self, 4>, cos: Tensor<Self, 2>, sin: Tensor<Self, 2>) -> Tensor<Self, 4> {
        crate::gpt::apply_rotary(x, cos, sin)
    }

    /// `factor ∘ upstream[:, None]` (the fused cross-entropy's backward).
    fn scale_rows(factor: Tensor<Self, 2>, upstream: Tensor<Self, 1>) -> Tensor<Self, 2> {
        loss::reference_scale_rows(factor, upstream)
    }

    /// Causal attention `softmax(q·kᵀ/√d + causal) · v` over query chunks of `chunk` rows.
    ///
    /// # Shapes
    /// `q, k, v`: `[B, H, T, D]` (same number of heads: expand GQA keys first); output
    /// `[B, H, T, D]` in the dtype of `q`.
    fn chunked_causal_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        chunk: usize,
    ) -> Tensor<Self, 4> {
        chunked_forward(q, k, v, chunk).0
    }
}

impl AttentionBackend for burn::backend::Flex {
    fn softcap_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        cap: f64,
        with_grad: bool,
    ) -> (Tensor<Self, 1>, Option<Tensor<Self, 2>>) {
        loss::flex_softcap_ce(logits, targets, cap, with_grad)
    }

    fn scale_rows(factor: Tensor<Self, 2>, upstream: Tensor<Self, 1>) -> Tensor<Self, 2> {
        loss::flex_scale_rows(factor, upstream)
    }

    fn rotary(x: Tensor<Self, 4>, cos: Tensor<Self, 2>, sin: Tensor<Self, 2>) -> Tensor<Self, 4> {
        crate::rotary::flex_rotary(x, cos, sin)
    }
}

#[cfg(feature = "cuda")]
impl AttentionBackend for burn::backend::Cuda<f32, i32> {}

#[cfg(feature = "cuda")]
impl AttentionBackend for burn::backend::Cuda<burn::tensor::bf16, i32> {}

/// Row ranges `[r0, r0 + len)` of the query chunks.
fn chunks(t: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunk = chunk.max(1);
    (0..t).step_by(chunk).map(move |r0| (r0, chunk.min(t - r0)))
}

/// Causal mask for query rows `[r0, r0 + c)` against key columns `[0, r0 + c)`: `true` where the
/// key lies in the future of the query.
fn causal_block_mask<B: Backend>(r0: usize, c: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    Tensor::<B, 2, Bool>::tril_mask([c, r0 + c], r0 as i64, device)
}

/// Masked, scaled scores of one query chunk in f32.
///
/// # Shapes
/// `qc`: `[B, H, c, D]`, `kc`: `[B, H, r0 + c, D]` → `[B, H, c, r0 + c]`.
fn chunk_scores<B: Backend>(
    qc: Tensor<B, 4>,
    kc: Tensor<B, 4>,
    r0: usize,
    scale: f64,
) -> Tensor<B, 4> {
    let [b, h, c, _] = qc.dims();
    let device = qc.device();
    let s = qc.matmul(kc.swap_dims(2, 3)).cast(DType::F32) * scale;
    let mask = causal_block_mask::<B>(r0, c, &device)
        .unsqueeze::<4>()
        .expand([b, h, c, r0 + c]);
    s.mask_fill(mask, f32::NEG_INFINITY)
}

/// Forward pass: output and per-row log-sum-exp (f32).
///
/// # Shapes
/// `q, k, v`: `[B, H, T, D]` → (`[B, H, T, D]`, `[B, H, T, 1]`).
pub fn chunked_forward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    chunk: usize,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let [_, _, t, d] = q.dims();
    let dtype = q.dtype();
    let scale = 1.0 / (d as f64).sqrt();
    let mut outs = Vec::new();
    let mut lses = Vec::new();
    for (r0, c) in chunks(t, chunk) {
        let r1 = r0 + c;
        let s = chunk_scores(
            q.clone().narrow(2, r0, c),
            k.clone().narrow(2, 0, r1),
            r0,
            scale,
        );
        let m = s.clone().max_dim(3);
        let p = (s - m.clone()).exp();
        let l = p.clone().sum_dim(3);
        let o = p
            .cast(dtype)
            .matmul(v.clone().narrow(2, 0, r1))
            .cast(DType::F32)
            / l.clone();
        outs.push(o.cast(dtype));
        lses.push(m + l.log());
    }
    (Tensor::cat(outs, 2), Tensor::cat(lses, 2))
}

/// Backward pass: gradients of `q, k, v` from the saved forward state and `d_o`.
///
/// With `P = exp(S − lse)`, `Δ = rowsum(dO ∘ O)`: `dV = Pᵀ·dO`, `dS = P ∘ (dO·Vᵀ − Δ)`,
/// `dQ = dS·K·scale`, `dK = dSᵀ·Q·scale`, accumulated over query chunks in f32.
#[allow(clippy::too_many_arguments)]
pub fn chunked_backward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    o: Tensor<B, 4>,
    lse: Tensor<B, 4>,
    d_o: Tensor<B, 4>,
    chunk: usize,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    let [b, h, t, d] = q.dims();
    let dtype = q.dtype();
    let device = q.device();
    let scale = 1.0 / (d as f64).sqrt();
    let delta = (d_o.clone().cast(DType::F32) * o.cast(DType::F32)).sum_dim(3); // [B, H, T, 1]
    let mut dk = Tensor::<B, 4>::zeros([b, h, t, d], (&device, DType::F32));
    let mut dv = Tensor::<B, 4>::zeros([b, h, t, d], (&device, DType::F32));
    let mut dqs = Vec::new();
    for (r0, c) in chunks(t, chunk) {
        let r1 = r0 + c;
        let qc = q.clone().narrow(2, r0, c);
        let kc = k.clone().narrow(2, 0, r1);
        let vc = v.clone().narrow(2, 0, r1);
        let doc = d_o.clone().narrow(2, r0, c);
        let s = chunk_scores(qc.clone(), kc.clone(), r0, scale);
        let p = (s - lse.clone().narrow(2, r0, c)).exp(); // [B, H, c, r1]
        let dv_part = p
            .clone()
            .cast(dtype)
            .swap_dims(2, 3)
            .matmul(doc.clone())
            .cast(DType::F32);
        let dp = doc.matmul(vc.swap_dims(2, 3)).cast(DType::F32);
        let ds = p * (dp - delta.clone().narrow(2, r0, c));
        let ds_lo = ds.cast(dtype);
        dqs.push((ds_lo.clone().matmul(kc).cast(DType::F32) * scale).cast(dtype));
        let dk_part = ds_lo.swap_dims(2, 3).matmul(qc).cast(DType::F32) * scale;
        let range = [0..b, 0..h, 0..r1, 0..d];
        let dk_new = dk.clone().slice(range.clone()) + dk_part;
        dk = dk.slice_assign(range.clone(), dk_new);
        let dv_new = dv.clone().slice(range.clone()) + dv_part;
        dv = dv.slice_assign(range, dv_new);
    }
    (Tensor::cat(dqs, 2), dk.cast(dtype), dv.cast(dtype))
}

fn wrap<B: Backend>(p: B::FloatTensorPrimitive) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn unwrap<B: Backend>(t: Tensor<B, 4>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

#[derive(Debug)]
struct ChunkedAttentionBackward {
    chunk: usize,
}

impl<B: Backend> Backward<B, 3> for ChunkedAttentionBackward {
    /// `q, k, v, o, lse` on the inner backend.
    type State = (
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_o = grads.consume::<B>(&ops.node);
        let (q, k, v, o, lse) = ops.state;
        let (dq, dk, dv) = chunked_backward::<B>(
            wrap(q),
            wrap(k),
            wrap(v),
            wrap(o),
            wrap(lse),
            wrap(d_o),
            self.chunk,
        );
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, unwrap(grad));
            }
        }
    }
}

#[derive(Debug)]
struct SoftcapCeBackward;

impl<B: AttentionBackend> Backward<B, 1> for SoftcapCeBackward {
    /// The gradient factor `G` (`[N, V]`) on the inner backend.
    type State = B::FloatTensorPrimitive;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let upstream = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let factor = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(ops.state));
            let up = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(upstream));
            let grad = B::scale_rows(factor, up);
            grads.register::<B>(node.id, grad.into_primitive().tensor());
        }
    }
}

#[derive(Debug)]
struct RotaryBackward;

impl<B: AttentionBackend> Backward<B, 1> for RotaryBackward {
    /// The `cos` and `sin` tables on the inner backend.
    type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let upstream = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let (cos, sin) = ops.state;
            let cos = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(cos));
            let sin = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(sin));
            // The rotation is orthogonal: its transpose is the rotation by −θ.
            let grad = B::rotary(wrap(upstream), cos, sin.neg());
            grads.register::<B>(node.id, unwrap(grad));
        }
    }
}

impl<B: AttentionBackend, C: CheckpointStrategy> AttentionBackend for Autodiff<B, C> {
    fn rotary(x: Tensor<Self, 4>, cos: Tensor<Self, 2>, sin: Tensor<Self, 2>) -> Tensor<Self, 4> {
        let x = unwrap(x);
        let node = x.node.clone();
        let xi = wrap::<B>(x.primitive);
        let ci = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(
            cos.into_primitive().tensor().primitive,
        ));
        let si = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(
            sin.into_primitive().tensor().primitive,
        ));
        let prep = RotaryBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = (
                    ci.clone().into_primitive().tensor(),
                    si.clone().into_primitive().tensor(),
                );
                prep.finish(state, unwrap(B::rotary(xi, ci, si)))
            }
            OpsKind::UnTracked(prep) => prep.finish(unwrap(B::rotary(xi, ci, si))),
        };
        wrap(out)
    }

    fn softcap_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        cap: f64,
        _with_grad: bool,
    ) -> (Tensor<Self, 1>, Option<Tensor<Self, 2>>) {
        let logits = logits.into_primitive().tensor();
        let node = logits.node.clone();
        let li = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(logits.primitive));
        let ti = Tensor::<B, 1, Int>::from_primitive(targets.into_primitive());
        let prep = SoftcapCeBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let (nll, grad) = B::softcap_cross_entropy(li, ti, cap, true);
                let grad = grad.expect("with_grad returns the gradient factor");
                prep.finish(
                    grad.into_primitive().tensor(),
                    nll.into_primitive().tensor(),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (nll, _) = B::softcap_cross_entropy(li, ti, cap, false);
                prep.finish(nll.into_primitive().tensor())
            }
        };
        (Tensor::from_primitive(TensorPrimitive::Float(out)), None)
    }

    fn chunked_causal_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        chunk: usize,
    ) -> Tensor<Self, 4> {
        let (q, k, v) = (unwrap(q), unwrap(k), unwrap(v));
        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        let (qi, ki, vi) = (
            wrap::<B>(q.primitive),
            wrap::<B>(k.primitive),
            wrap::<B>(v.primitive),
        );
        let prep = ChunkedAttentionBackward { chunk }
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let (o, lse) = chunked_forward(qi.clone(), ki.clone(), vi.clone(), chunk);
                let state = (
                    unwrap(qi),
                    unwrap(ki),
                    unwrap(vi),
                    unwrap(o.clone()),
                    unwrap(lse),
                );
                prep.finish(state, unwrap(o))
            }
            OpsKind::UnTracked(prep) => prep.finish(unwrap(chunked_forward(qi, ki, vi, chunk).0)),
        };
        wrap(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Distribution, Tolerance};

    type Ad = Autodiff<Flex>;

    fn rand4<B: Backend>(shape: [usize; 4], seed: u64, device: &B::Device) -> Tensor<B, 4> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut v = vec![0f32; shape.iter().product()];
        rng.fill_normal(&mut v, 0.0, 1.0);
        Tensor::from_data(burn::tensor::TensorData::new(v, shape), device)
    }

    fn plain<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>) -> Tensor<B, 4> {
        let opts = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        attention(q, k, v, None, None, opts)
    }

    #[test]
    fn chunked_matches_plain_forward_and_backward() {
        let device = Default::default();
        let shape = [2, 3, 37, 16]; // T not a multiple of the chunk: ragged last chunk
        for chunk in [1, 8, 16, 64] {
            let mk = |seed| rand4::<Ad>(shape, seed, &device).require_grad();
            let (q1, k1, v1) = (mk(1), mk(2), mk(3));
            let (q2, k2, v2) = (mk(1), mk(2), mk(3));
            let w = rand4::<Ad>(shape, 4, &device); // random upstream gradient
            let o1 = plain(q1.clone(), k1.clone(), v1.clone());
            let o2 = Ad::chunked_causal_attention(q2.clone(), k2.clone(), v2.clone(), chunk);
            o2.to_data()
                .assert_approx_eq::<f32>(&o1.to_data(), Tolerance::absolute(1e-5));
            let g1 = (o1 * w.clone()).sum().backward();
            let g2 = (o2 * w).sum().backward();
            for (a, b) in [(&q1, &q2), (&k1, &k2), (&v1, &v2)] {
                let ga = a.grad(&g1).unwrap();
                let gb = b.grad(&g2).unwrap();
                gb.to_data()
                    .assert_approx_eq::<f32>(&ga.to_data(), Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn inference_backend_forward_only() {
        let device = Default::default();
        let q = Tensor::<Flex, 4>::random([1, 2, 20, 8], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<Flex, 4>::random([1, 2, 20, 8], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<Flex, 4>::random([1, 2, 20, 8], Distribution::Normal(0.0, 1.0), &device);
        let a = plain(q.clone(), k.clone(), v.clone());
        let b = Flex::chunked_causal_attention(q, k, v, 6);
        b.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-5));
    }
}
