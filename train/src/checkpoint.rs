//! Checkpoints: `model_XXXXXX.safetensors` (nanochat keys and shapes), `optim_XXXXXX.safetensors`
//! (AdamW moments and Muon momentum buffers by parameter path) and `meta_XXXXXX.json` (configs,
//! step, data position, RNG, loop and optimizer scalars). Files are written atomically and the
//! meta file last: a checkpoint exists once its meta file does.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use njp_model::weights::{self, atomic_write_bytes};
use njp_model::{Gpt, GptConfig};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::optim::{OptimMeta, Optimizers};
use crate::schedule::Stage;

/// Format tag written into every meta file.
pub const FORMAT: &str = "njp-checkpoint/1";

/// Loop scalars needed to continue exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Raw (not debiased) EMA of the training loss.
    pub smooth_loss_ema: f64,
    /// Seconds spent in training steps so far.
    pub total_training_time: f64,
    /// Input positions processed so far.
    pub tokens: u64,
    pub min_val_bpb: Option<f64>,
    /// Records skipped so far (reported as warnings).
    pub skipped_records: u64,
}

/// `meta_XXXXXX.json`. `step` and `model_config` have nanochat's names and meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub step: u64,
    pub stage: Stage,
    pub model_config: GptConfig,
    pub train_config: TrainConfig,
    /// The training data source's exact position ([`crate::packing::BatchSource::state`]).
    pub data_state: serde_json::Value,
    /// Host RNG state ([`njp_model::Rng::state`]).
    pub rng: [u64; 4],
    pub loop_state: LoopState,
    pub optimizer: OptimMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bpb: Option<f64>,
}

/// Paths of the checkpoint at `step` in `dir`: (model, optimizer, meta).
pub fn paths(dir: &Path, step: u64) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("model_{step:06}.safetensors")),
        dir.join(format!("optim_{step:06}.safetensors")),
        dir.join(format!("meta_{step:06}.json")),
    )
}

/// Writes a checkpoint; returns the model file's path.
///
/// # Errors
/// I/O errors.
pub fn save<B>(
    dir: &Path,
    model: &Gpt<B>,
    optim: &Optimizers<B::InnerBackend>,
    meta: &Meta,
) -> Result<PathBuf>
where
    B: burn::tensor::backend::AutodiffBackend,
{
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (mp, op, metap) = paths(dir, meta.step);
    weights::save_model(model, &mp)?;
    let (tensors, _) = optim.state();
    weights::write_safetensors(&op, &tensors, None)?;
    let json = serde_json::to_string_pretty(meta).expect("meta serializes");
    atomic_write_bytes(&metap, json.as_bytes())?;
    Ok(mp)
}

/// Steps of the complete checkpoints in `dir` (meta file present), ascending.
///
/// # Errors
/// The directory cannot be listed.
pub fn list(dir: &Path) -> Result<Vec<u64>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut steps = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(s) = name
            .strip_prefix("meta_")
            .and_then(|s| s.strip_suffix(".json"))
            && let Ok(step) = s.parse::<u64>()
        {
            steps.push(step);
        }
    }
    steps.sort_unstable();
    Ok(steps)
}

/// The newest complete checkpoint in `dir`.
///
/// # Errors
/// No checkpoint there, or its meta cannot be read.
pub fn latest(dir: &Path) -> Result<Meta> {
    let step = *list(dir)?
        .last()
        .ok_or_else(|| Error::checkpoint(dir, "no checkpoint here (no meta_XXXXXX.json)"))?;
    load_meta(dir, step)
}

/// Reads and checks `meta_XXXXXX.json`.
///
/// # Errors
/// Unreadable or malformed meta, or a missing weight/optimizer file.
pub fn load_meta(dir: &Path, step: u64) -> Result<Meta> {
    let (mp, op, metap) = paths(dir, step);
    let text = std::fs::read_to_string(&metap).map_err(|e| Error::io(&metap, e))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(&metap, format!("malformed meta: {e}")))?;
    if meta.format != FORMAT {
        return Err(Error::checkpoint(
            &metap,
            format!("format `{}`, expected `{FORMAT}`", meta.format),
        ));
    }
    for p in [&mp, &op] {
        if !p.exists() {
            return Err(Error::checkpoint(
                p,
                "missing (the checkpoint is incomplete)",
            ));
        }
    }
    Ok(meta)
}

/// Loads the model weights of checkpoint `meta` from `dir` into `model`.
///
/// # Errors
/// Unreadable or mismatched weights.
pub fn load_model<B: Backend>(dir: &Path, meta: &Meta, model: Gpt<B>) -> Result<Gpt<B>> {
    let (mp, _, _) = paths(dir, meta.step);
    Ok(weights::load_model(model, &mp)?)
}

/// Loads the optimizer state of checkpoint `meta` from `dir`.
///
/// # Errors
/// Unreadable or mismatched state.
pub fn load_optim<B: Backend>(
    dir: &Path,
    meta: &Meta,
    optim: &mut Optimizers<B>,
    device: &B::Device,
) -> Result<()> {
    let (_, op, _) = paths(dir, meta.step);
    let (tensors, _) = weights::read_safetensors(&op)?;
    optim
        .load_state(&tensors, &meta.optimizer, device)
        .map_err(|e| Error::checkpoint(&op, e.to_string()))
}

/// Resolves a weights argument: a `.safetensors` file, or a run directory (its newest
/// checkpoint's model file).
///
/// # Errors
/// Neither a file nor a directory with checkpoints.
pub fn weights_file(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let meta = latest(path)?;
        Ok(paths(path, meta.step).0)
    } else if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(Error::checkpoint(path, "no such file or directory"))
    }
}
