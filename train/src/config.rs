//! The resolved training configuration, saved as `config.json` in the run directory and inside
//! every checkpoint's meta.

use njp_model::{GptConfig, ModelOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::OptimConfig;
use crate::schedule::Stage;

/// How base-stage documents become rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Packing {
    /// BOS-aligned best fit over a buffer of this many documents (nanochat HEAD uses 1,000).
    BestFit { buffer_docs: usize },
    /// nanochat v1: concatenate and cut (rows cross document boundaries).
    Stream,
}

/// How SFT conversations become rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SftPacking {
    /// One conversation per row, padded to the longest row of the batch (nanochat v1).
    #[default]
    Row,
    /// Whole conversations packed by best fit into rows of `sequence_len + 1`, padding instead
    /// of cropping; the total batch then counts rows, not conversations.
    BestFit,
}

/// Everything a run needs besides data and device. Defaults follow nanochat per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub stage: Stage,
    pub model: GptConfig,
    pub options: ModelOptions,
    pub optim: OptimConfig,
    /// Seed of the weight init and of the run's host RNG.
    pub seed: u64,
    /// Rows per micro-batch (nanochat `device_batch_size`).
    pub device_batch_size: usize,
    /// Base and mid: tokens per optimizer step (a multiple of `device_batch_size × sequence_len`;
    /// the ratio is the gradient accumulation). SFT: conversations per step.
    pub total_batch_size: usize,
    /// Optimizer steps. `None`: base from `target_param_data_ratio`, mid one pass over the data,
    /// SFT `num_epochs` passes.
    pub num_iterations: Option<u64>,
    /// Base: training tokens = ratio × parameters (Chinchilla-style 20).
    pub target_param_data_ratio: f64,
    /// SFT passes over the data.
    pub num_epochs: u64,
    /// Multiplier on every learning rate (mid 1.0, SFT 0.02).
    pub init_lr_frac: f64,
    pub warmup_ratio: f64,
    pub warmdown_ratio: f64,
    pub final_lr_frac: f64,
    /// Global gradient-norm clip (base 1.0; none for mid and SFT).
    pub grad_clip: Option<f64>,
    pub packing: Packing,
    /// SFT rows: one conversation per row (nanochat v1, default) or padded best fit of whole
    /// conversations (`njp_train::packing::BestFitPacker::padded`).
    #[serde(default)]
    pub sft_packing: SftPacking,
    /// SFT rows are padded to a multiple of this many columns.
    pub sft_pad_multiple: usize,
    /// Validation bits per byte every N steps (and at the end) when validation data is given.
    pub eval_every: Option<u64>,
    /// Micro-batches per validation pass.
    pub eval_batches: usize,
    /// Greedy samples every N steps (and at the end) when a tokenizer is given.
    pub sample_every: Option<u64>,
    pub sample_tokens: usize,
    /// Checkpoint every N steps (and always at the end).
    pub save_every: Option<u64>,
    /// Peak FLOP/s of the device for the MFU estimate (H100/H200 bf16 dense: 989e12).
    pub peak_flops: Option<f64>,
}

impl TrainConfig {
    /// nanochat's defaults for `stage` (nanochat-spec §5.2, §6.1), on one device.
    pub fn for_stage(stage: Stage, model: GptConfig) -> Self {
        let t = model.sequence_len;
        let (device_batch_size, total_batch_size) = match stage {
            Stage::Base | Stage::Mid => (32, 524_288.max(32 * t)),
            Stage::Sft => (4, 32),
        };
        TrainConfig {
            stage,
            model,
            options: ModelOptions::default(),
            optim: OptimConfig::default(),
            seed: 42,
            device_batch_size,
            total_batch_size,
            num_iterations: None,
            target_param_data_ratio: 20.0,
            num_epochs: 1,
            init_lr_frac: if stage == Stage::Sft { 0.02 } else { 1.0 },
            warmup_ratio: 0.0,
            warmdown_ratio: 0.2,
            final_lr_frac: 0.0,
            grad_clip: (stage == Stage::Base).then_some(1.0),
            packing: Packing::BestFit { buffer_docs: 1000 },
            sft_packing: SftPacking::Row,
            sft_pad_multiple: 1,
            eval_every: Some(match stage {
                Stage::Base => 250,
                Stage::Mid => 150,
                Stage::Sft => 100,
            }),
            eval_batches: 20,
            sample_every: Some(2000),
            sample_tokens: 32,
            save_every: None,
            peak_flops: None,
        }
    }

    /// Tokens (positions) per micro-batch for base/mid; rows for SFT.
    pub fn micro_batch_units(&self) -> usize {
        match self.stage {
            Stage::Sft => self.device_batch_size,
            _ => self.device_batch_size * self.model.sequence_len,
        }
    }

    /// Micro-batches per optimizer step.
    pub fn grad_accum(&self) -> usize {
        self.total_batch_size / self.micro_batch_units()
    }

    /// Checks the numbers fit together.
    ///
    /// # Errors
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let bad = |m: String| Err(Error::Config(m));
        if self.device_batch_size == 0 || self.total_batch_size == 0 {
            return bad("batch sizes must be positive".into());
        }
        let unit = self.micro_batch_units();
        let what = if self.stage == Stage::Sft {
            "conversations"
        } else {
            "tokens"
        };
        if !self.total_batch_size.is_multiple_of(unit) {
            return bad(format!(
                "total batch of {} {what} is not a multiple of one micro-batch ({unit} {what} = {} rows{})",
                self.total_batch_size,
                self.device_batch_size,
                if self.stage == Stage::Sft {
                    String::new()
                } else {
                    format!(" × {} tokens", self.model.sequence_len)
                }
            ));
        }
        if self.num_iterations == Some(0) {
            return bad("the number of steps must be positive".into());
        }
        if let Packing::BestFit { buffer_docs: 0 } = self.packing {
            return bad("best-fit packing needs a buffer of at least one document".into());
        }
        if self.grad_clip.is_some_and(|c| c <= 0.0) {
            return bad("grad clip must be positive".into());
        }
        if let njp_model::AttentionKind::Chunked { chunk: 0 } = self.options.attention {
            return bad("attention chunk must be positive".into());
        }
        Ok(())
    }

    /// Optimizer steps for this run given the training data size (records), or `None` for "until
    /// the data wraps" (mid without `num_iterations`).
    ///
    /// # Errors
    /// SFT without a known data size.
    pub fn resolve_iterations(&self, data_len: Option<u64>) -> Result<Option<u64>> {
        if let Some(n) = self.num_iterations {
            return Ok(Some(n));
        }
        match self.stage {
            Stage::Base => {
                let tokens = self.target_param_data_ratio * self.model.num_params() as f64;
                Ok(Some(
                    ((tokens / self.total_batch_size as f64) as u64).max(1),
                ))
            }
            Stage::Mid => Ok(None),
            Stage::Sft => {
                let len = data_len.ok_or_else(|| {
                    Error::Config("SFT needs a dataset of known size or --steps".into())
                })?;
                Ok(Some(
                    (len / self.total_batch_size as u64 * self.num_epochs).max(1),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use njp_model::Preset;

    #[test]
    fn defaults_and_horizons() {
        let c = TrainConfig::for_stage(Stage::Base, Preset::D20.config(65_536));
        assert_eq!(c.grad_accum(), 8); // one device: 32 × 2048 per micro-batch, 524,288 per step
        // nanochat d20: 20 × 560,988,160 // 524,288 = 21,400 steps.
        assert_eq!(c.resolve_iterations(None).unwrap(), Some(21_400));
        let s = TrainConfig::for_stage(Stage::Sft, Preset::D20.config(65_536));
        assert_eq!(s.grad_accum(), 8);
        assert_eq!(s.resolve_iterations(Some(22_443)).unwrap(), Some(701));
        assert_eq!(
            TrainConfig::for_stage(Stage::Mid, Preset::D20.config(100))
                .resolve_iterations(None)
                .unwrap(),
            None
        );
        let mut bad = c.clone();
        bad.total_batch_size = 1000;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("not a multiple")
        );
    }
}
