//! Learning-rate and momentum schedules per stage (nanochat-spec §5.2).

use serde::{Deserialize, Serialize};

/// Training stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Pretraining on documents (`scripts/base_train.py`).
    Base,
    /// Midtraining on rendered conversations, loss on every token (`scripts/mid_train.py`).
    Mid,
    /// Supervised fine-tuning, loss on assistant tokens (`scripts/chat_sft.py`).
    Sft,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Base => "base",
            Stage::Mid => "mid",
            Stage::Sft => "sft",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Base: constant, then a linear warmdown over the last `warmdown_ratio` of the run to
/// `final_lr_frac` (optional linear warmup). Python's `round` (ties to even) for the phase
/// lengths, as nanochat.
pub fn base_lr_multiplier(
    it: u64,
    num_iterations: u64,
    warmup_ratio: f64,
    warmdown_ratio: f64,
    final_lr_frac: f64,
) -> f64 {
    let n = num_iterations as f64;
    let warmup = (warmup_ratio * n).round_ties_even();
    let warmdown = (warmdown_ratio * n).round_ties_even();
    let it = it as f64;
    if it < warmup {
        (it + 1.0) / warmup
    } else if it <= n - warmdown {
        1.0
    } else {
        let progress = (n - it) / warmdown;
        progress + (1.0 - progress) * final_lr_frac
    }
}

/// Mid: 1.0 until 80 % of the data is read, then linear to 0 at 100 %. `progress` is clamped to
/// 1 (nanochat's cursor wraps to the start for the very last step, which would briefly restore
/// the full rate; clamping keeps the decay monotone).
pub fn mid_lr_multiplier(progress: f64) -> f64 {
    let p = progress.clamp(0.0, 1.0);
    // 1 − (p − 0.8)/0.2, written so that p = 1 gives exactly 0.
    if p < 0.8 { 1.0 } else { (1.0 - p) / 0.2 }
}

/// SFT: linear decay `1 − it/num_iterations`.
pub fn sft_lr_multiplier(it: u64, num_iterations: u64) -> f64 {
    1.0 - it as f64 / num_iterations.max(1) as f64
}

/// Muon momentum warm-up 0.85 → 0.95 over the first 300 steps (base and mid).
pub fn muon_momentum(it: u64) -> f64 {
    let frac = (it as f64 / 300.0).min(1.0);
    (1.0 - frac) * 0.85 + frac * 0.95
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_schedule() {
        // 100 iterations, warmdown 20: 1.0 through it = 80, then (100 − it)/20.
        assert_eq!(base_lr_multiplier(0, 100, 0.0, 0.2, 0.0), 1.0);
        assert_eq!(base_lr_multiplier(80, 100, 0.0, 0.2, 0.0), 1.0);
        assert!((base_lr_multiplier(81, 100, 0.0, 0.2, 0.0) - 0.95).abs() < 1e-12);
        assert!((base_lr_multiplier(99, 100, 0.0, 0.2, 0.5) - (0.05 + 0.95 * 0.5)).abs() < 1e-12);
        assert!((base_lr_multiplier(4, 100, 0.1, 0.2, 0.0) - 0.5).abs() < 1e-12);
        // round(2.5) = 2 in Python: 0.2 × 12.5
        assert_eq!(base_lr_multiplier(10, 12, 0.0, 0.2083333, 0.0), 1.0);
    }

    #[test]
    fn other_schedules() {
        assert_eq!(mid_lr_multiplier(0.5), 1.0);
        assert!((mid_lr_multiplier(0.9) - 0.5).abs() < 1e-12);
        assert_eq!(mid_lr_multiplier(1.7), 0.0);
        assert!((sft_lr_multiplier(25, 100) - 0.75).abs() < 1e-12);
        assert_eq!(muon_momentum(0), 0.85);
        assert!((muon_momentum(150) - 0.90).abs() < 1e-12);
        assert_eq!(muon_momentum(1000), 0.95);
    }
}
