//! Fused logit softcap + cross-entropy.
//!
//! nanochat computes `loss = cross_entropy(15·tanh(logits/15), targets, ignore_index=-1)`. Built
//! from separate tensor ops, autodiff keeps and re-walks four or five `[N, V]` tensors (the
//! scaled logits, the tanh, the log-softmax, the gathered one-hot), and the logits are the
//! largest tensors of a training step (`B·T × vocab`). The fused op computes, per row,
//!
//! - `z = c·tanh(l/c)`, `lse = log Σ exp(z)`, `nll = lse − z[target]` (0 where `target < 0`);
//! - during a tracked forward pass, the gradient per unit upstream gradient
//!   `G = (softmax(z) − onehot(target)) ∘ (1 − (z/c)²)` (zero rows where `target < 0`),
//!
//! so the backward pass is one row scaling `dL/dl = G ∘ g[:, None]`. The saved state is `G`
//! alone. [`reference_softcap_ce`] writes this with ordinary tensor ops (every backend, e.g. CUDA);
//! on `Flex` a row-parallel kernel does each row in cache ([`flex_softcap_ce`]).

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// Per-row softcapped negative log-likelihood and, when `with_grad`, the gradient factor `G`,
/// with ordinary tensor ops.
///
/// # Shapes
/// `logits`: `[N, V]` (f32), `targets`: `[N]` (`< 0` = ignored) → (`[N]`, `[N, V]`).
pub fn reference_softcap_ce<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    cap: f64,
    with_grad: bool,
) -> (Tensor<B, 1>, Option<Tensor<B, 2>>) {
    let z = (logits / cap).tanh() * cap;
    let m = z.clone().max_dim(1);
    let lse = (z.clone() - m.clone()).exp().sum_dim(1).log() + m; // [N, 1]
    let idx = targets.clone().clamp_min(0).unsqueeze_dim::<2>(1); // [N, 1]
    let valid = targets.greater_equal_elem(0).float().unsqueeze_dim::<2>(1); // [N, 1]
    let picked = z.clone().gather(1, idx.clone());
    let nll = ((lse.clone() - picked) * valid.clone()).squeeze_dim::<1>(1);
    let grad = with_grad.then(|| {
        let p = (z.clone() - lse).exp() * valid.clone();
        let dz = p.scatter(1, idx, valid.neg(), IndexingUpdateOp::Add);
        let dtanh = (z.square() * (-1.0 / (cap * cap))) + 1.0;
        dz * dtanh
    });
    (nll, grad)
}

/// `factor ∘ upstream[:, None]` with ordinary tensor ops.
pub fn reference_scale_rows<B: Backend>(
    factor: Tensor<B, 2>,
    upstream: Tensor<B, 1>,
) -> Tensor<B, 2> {
    factor * upstream.unsqueeze_dim::<2>(1)
}

fn flex_primitive(t: Tensor<Flex, 2>) -> FlexTensor {
    t.into_primitive().tensor()
}

fn flex_tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_data(TensorData::new(data, shape), &Default::default())
}

/// One row: writes `z` or `G` into `buf`, returns the row's nll.
fn ce_row(l: &[f32], target: i64, cap: f32, buf: &mut [f32], with_grad: bool) -> f32 {
    let v = l.len();
    if target < 0 {
        if with_grad {
            buf.fill(0.0);
        }
        return 0.0;
    }
    let t = target as usize;
    assert!(
        t < v,
        "cross-entropy target id {t} is outside the vocabulary of {v} logits"
    );
    let inv = 1.0 / cap;
    let mut m = f32::NEG_INFINITY;
    for (z, &x) in buf.iter_mut().zip(l) {
        *z = cap * (x * inv).tanh();
        m = m.max(*z);
    }
    let s: f64 = buf.iter().map(|&z| f64::from((z - m).exp())).sum();
    let lse = m + (s.ln() as f32);
    let nll = lse - buf[t];
    if with_grad {
        let zt = buf[t];
        for z in buf.iter_mut() {
            let y = *z * inv;
            *z = (*z - lse).exp() * (1.0 - y * y);
        }
        // onehot term: (p − 1)·(1 − y²) = p·(1 − y²) − (1 − y²) at the target column.
        let y = zt * inv;
        buf[t] -= 1.0 - y * y;
    }
    nll
}

/// [`reference_softcap_ce`] on `Flex`: rows in parallel, each in one pass over cache-resident
/// data. Falls back to the reference for non-f32 logits.
pub fn flex_softcap_ce(
    logits: Tensor<Flex, 2>,
    targets: Tensor<Flex, 1, Int>,
    cap: f64,
    with_grad: bool,
) -> (Tensor<Flex, 1>, Option<Tensor<Flex, 2>>) {
    if logits.dtype() != burn::tensor::DType::F32 {
        return reference_softcap_ce(logits, targets, cap, with_grad);
    }
    let [n, v] = logits.dims();
    let targets: Vec<i64> = targets.into_data().iter::<i64>().collect();
    let l = flex_primitive(logits).to_contiguous();
    let l: &[f32] = l.as_slice::<f32>().expect("contiguous f32 logits");
    let cap32 = cap as f32;
    let mut nll = vec![0f32; n];
    if with_grad {
        let mut g = vec![0f32; n * v];
        g.par_chunks_mut(v)
            .zip(nll.par_iter_mut())
            .enumerate()
            .for_each(|(r, (buf, out))| {
                *out = ce_row(&l[r * v..(r + 1) * v], targets[r], cap32, buf, true);
            });
        (flex_tensor(nll, [n]), Some(flex_tensor(g, [n, v])))
    } else {
        nll.par_iter_mut().enumerate().for_each_init(
            || vec![0f32; v],
            |buf, (r, out)| {
                *out = ce_row(&l[r * v..(r + 1) * v], targets[r], cap32, buf, false);
            },
        );
        (flex_tensor(nll, [n]), None)
    }
}

/// [`reference_scale_rows`] on `Flex`, in place when the factor is not shared.
pub fn flex_scale_rows(factor: Tensor<Flex, 2>, upstream: Tensor<Flex, 1>) -> Tensor<Flex, 2> {
    let [_, v] = factor.dims();
    if factor.dtype() != burn::tensor::DType::F32 || upstream.dtype() != burn::tensor::DType::F32 {
        return reference_scale_rows(factor, upstream);
    }
    let up: Vec<f32> = upstream.into_data().iter::<f32>().collect();
    let mut f = flex_primitive(factor).to_contiguous();
    f.storage_mut::<f32>()
        .par_chunks_mut(v)
        .zip(up.par_iter())
        .for_each(|(row, &g)| row.iter_mut().for_each(|x| *x *= g));
    Tensor::from_primitive(TensorPrimitive::Float(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionBackend;
    use burn::backend::Autodiff;
    use burn::tensor::Tolerance;
    use burn::tensor::activation::log_softmax;

    type Ad = Autodiff<Flex>;

    fn logits<B: Backend>(n: usize, v: usize, seed: u64) -> Tensor<B, 2> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut x = vec![0f32; n * v];
        rng.fill_normal(&mut x, 0.0, 20.0); // well past the cap, so tanh saturates somewhere
        Tensor::from_data(TensorData::new(x, [n, v]), &Default::default())
    }

    fn targets<B: Backend>(t: &[i64]) -> Tensor<B, 1, Int> {
        Tensor::from_data(TensorData::new(t.to_vec(), [t.len()]), &Default::default())
    }

    /// The unfused composition the model used before: softcap, log-softmax, gather, mask.
    fn unfused<B: Backend>(l: Tensor<B, 2>, t: Tensor<B, 1, Int>, cap: f64) -> Tensor<B, 1> {
        let z = (l / cap).tanh() * cap;
        let valid = t.clone().greater_equal_elem(0);
        let picked = log_softmax(z, 1).gather(1, t.clamp_min(0).unsqueeze_dim(1));
        picked.squeeze_dim::<1>(1).neg() * valid.float()
    }

    #[test]
    fn fused_matches_unfused_forward_and_backward() {
        let t = [3i64, -1, 0, 36, 5, -1, 12];
        let (n, v) = (t.len(), 37);
        let w: Tensor<Ad, 1> = logits::<Ad>(1, n, 9).reshape([n]); // random upstream gradient
        let l1 = logits::<Ad>(n, v, 1).require_grad();
        let l2 = logits::<Ad>(n, v, 1).require_grad();
        let a = unfused(l1.clone(), targets(&t), 15.0);
        let b = Ad::softcap_cross_entropy(l2.clone(), targets(&t), 15.0, false).0;
        b.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-5));
        let g1 = (a * w.clone()).sum().backward();
        let g2 = (b * w).sum().backward();
        let d1 = l1.grad(&g1).unwrap();
        let d2 = l2.grad(&g2).unwrap();
        d2.to_data()
            .assert_approx_eq::<f32>(&d1.to_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn flex_kernel_matches_reference() {
        let t = [3i64, -1, 0, 63, 5];
        let (n, v) = (t.len(), 64);
        let (a, ga) = reference_softcap_ce::<Flex>(logits(n, v, 2), targets(&t), 15.0, true);
        let (b, gb) = flex_softcap_ce(logits(n, v, 2), targets(&t), 15.0, true);
        b.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-5));
        let (ga, gb) = (ga.unwrap(), gb.unwrap());
        gb.to_data()
            .assert_approx_eq::<f32>(&ga.to_data(), Tolerance::absolute(1e-6));
        let (c, none) = flex_softcap_ce(logits(n, v, 2), targets(&t), 15.0, false);
        assert!(none.is_none());
        c.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-5));
        // Ignored rows: zero loss and zero gradient.
        let row = gb.slice([1..2, 0..v]).abs().sum().into_scalar();
        assert_eq!(row, 0.0);
        let up = Tensor::<Flex, 1>::from_data(
            TensorData::new(vec![1.0f32, 2., 3., 4., 5.], [5]),
            &Default::default(),
        );
        let s1 = reference_scale_rows(ga.clone(), up.clone());
        let s2 = flex_scale_rows(ga, up);
        s2.to_data()
            .assert_approx_eq::<f32>(&s1.to_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    #[should_panic(expected = "outside the vocabulary")]
    fn target_out_of_range_is_named() {
        let _ = flex_softcap_ce(logits(2, 8, 3), targets(&[1, 8]), 15.0, false);
    }
}
