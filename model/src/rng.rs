//! A small seedable host RNG (xoshiro256**, seeded through SplitMix64) whose whole state is four
//! `u64`s, so a training run can save and restore it exactly. Backend RNGs cannot be read back
//! and differ between Flex and CUDA (burn-notes §2, §3.9); everything random that must be
//! reproducible (weight init, sampling) draws from this one.

use serde::{Deserialize, Serialize};

/// xoshiro256** (Blackman & Vigna). Not cryptographic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the four state words with SplitMix64, as the reference implementation recommends.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The raw state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Restores a state saved with [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias worth caring about for n ≪ 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fills `out` with N(mean, std²) samples (Box–Muller, both outputs used).
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f64, std: f64) {
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (a, b) = self.normal_pair();
            pair[0] = (mean + std * a) as f32;
            pair[1] = (mean + std * b) as f32;
        }
        if let [last] = chunks.into_remainder() {
            *last = (mean + std * self.normal_pair().0) as f32;
        }
    }

    fn normal_pair(&mut self) -> (f64, f64) {
        // 1 - u keeps the log argument in (0, 1].
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        (r * theta.cos(), r * theta.sin())
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_restorable() {
        let mut a = Rng::new(42);
        let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let saved = a.state();
        let x = a.next_u64();
        let mut b = Rng::from_state(saved);
        assert_eq!(b.next_u64(), x);
        assert_ne!(first[0], first[1]);
        assert_eq!(Rng::new(42).next_u64(), first[0]);
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(7);
        let mut v = vec![0f32; 200_001];
        r.fill_normal(&mut v, 0.0, 2.0);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 4.0).abs() < 0.05, "var {var}");
    }
}
