//! Rotary embedding as one op.
//!
//! nanochat's split-halves rotary (`y1 = x1·cos + x2·sin`, `y2 = x2·cos − x1·sin`) written with
//! tensor ops ([`crate::gpt::apply_rotary`]) slices the head dimension in halves and multiplies
//! by `[T, hd/2]` tables broadcast over batch and heads; on `Flex` each of those multiplies (and
//! their gradients) walks strided views one element at a time. The rotation is linear and
//! orthogonal, so its backward pass is the same rotation with `sin` negated; as one op it needs
//! no saved activations. [`flex_rotary`] does it row by row over contiguous memory.

use burn::tensor::{Tensor, TensorData};
use burn_flex::Flex;
use rayon::prelude::*;

/// [`crate::gpt::apply_rotary`] on `Flex`: rows of `H·hd` values in parallel. Falls back to the
/// tensor-op version for non-f32 inputs.
///
/// # Shapes
/// `x`: `[B, T, H, hd]`; `cos`, `sin`: `[T, hd/2]`.
pub fn flex_rotary(
    x: Tensor<Flex, 4>,
    cos: Tensor<Flex, 2>,
    sin: Tensor<Flex, 2>,
) -> Tensor<Flex, 4> {
    let f32_all = [x.dtype(), cos.dtype(), sin.dtype()]
        .iter()
        .all(|d| *d == burn::tensor::DType::F32);
    if !f32_all {
        return crate::gpt::apply_rotary(x, cos, sin);
    }
    let dims = x.dims();
    let [_, t, h, hd] = dims;
    let half = hd / 2;
    assert_eq!(cos.dims(), [t, half], "rotary cos table shape");
    assert_eq!(sin.dims(), [t, half], "rotary sin table shape");
    let cos: Vec<f32> = cos.into_data().iter::<f32>().collect();
    let sin: Vec<f32> = sin.into_data().iter::<f32>().collect();
    let xp = x.into_primitive().tensor().to_contiguous();
    let xs: &[f32] = xp.as_slice::<f32>().expect("contiguous f32 input");
    let mut out = vec![0f32; xs.len()];
    let row = h * hd; // one (b, t) position
    out.par_chunks_mut(row)
        .zip(xs.par_chunks(row))
        .enumerate()
        .for_each(|(i, (o, x))| {
            let ti = i % t;
            let (c, s) = (&cos[ti * half..][..half], &sin[ti * half..][..half]);
            for (oh, xh) in o.chunks_exact_mut(hd).zip(x.chunks_exact(hd)) {
                let (x1, x2) = xh.split_at(half);
                let (o1, o2) = oh.split_at_mut(half);
                for j in 0..half {
                    o1[j] = x1[j] * c[j] + x2[j] * s[j];
                    o2[j] = x2[j] * c[j] - x1[j] * s[j];
                }
            }
        });
    Tensor::from_data(TensorData::new(out, dims), &Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionBackend;
    use crate::gpt::{apply_rotary, rotary_tables};
    use burn::backend::Autodiff;
    use burn::tensor::Tolerance;
    use burn::tensor::backend::Backend;

    type Ad = Autodiff<Flex>;

    fn rand<B: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut v = vec![0f32; shape.iter().product()];
        rng.fill_normal(&mut v, 0.0, 1.0);
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn tables<B: Backend>(t: usize, hd: usize, offset: usize) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (c, s) = rotary_tables(t + offset, hd);
        let mk = |v: Vec<f32>| {
            Tensor::<B, 2>::from_data(
                TensorData::new(v, [t + offset, hd / 2]),
                &Default::default(),
            )
            .narrow(0, offset, t)
        };
        (mk(c), mk(s))
    }

    #[test]
    fn fused_rotary_matches_tensor_ops_forward_and_backward() {
        let shape = [2, 5, 3, 8];
        let (c, s) = tables::<Ad>(5, 8, 3); // offset tables, as during cached decoding
        let x1 = rand::<Ad, 4>(shape, 1).require_grad();
        let x2 = rand::<Ad, 4>(shape, 1).require_grad();
        let w = rand::<Ad, 4>(shape, 2);
        let a = apply_rotary(x1.clone(), c.clone(), s.clone());
        let b = Ad::rotary(x2.clone(), c, s);
        b.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-6));
        let g1 = (a * w.clone()).sum().backward();
        let g2 = (b * w).sum().backward();
        x2.grad(&g2)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(&x1.grad(&g1).unwrap().to_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn flex_rotary_on_a_strided_input() {
        // A transposed view must give the same result as its contiguous copy.
        let x = rand::<Flex, 4>([2, 3, 5, 8], 4).swap_dims(1, 2); // [2, 5, 3, 8], strided
        let (c, s) = tables::<Flex>(5, 8, 0);
        let a = apply_rotary(x.clone(), c.clone(), s.clone());
        let b = flex_rotary(x, c, s);
        b.to_data()
            .assert_approx_eq::<f32>(&a.to_data(), Tolerance::absolute(1e-6));
    }
}
