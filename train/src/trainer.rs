//! The training loop, one for every stage (nanochat `base_train.py` / `mid_train.py` /
//! `chat_sft.py`): evaluate → sample → checkpoint → stop? → micro-batches with gradient
//! accumulation → NaN guard → clip → schedules → Muon + AdamW.
//!
//! Backend-generic (`B: AutodiffBackend`); the backend is chosen by the caller. Multi-device
//! data parallelism would slot in between backward and the optimizer step (an all-reduce of the
//! accumulated `GradientsParams`); nothing here assumes a single device beyond the device handle
//! passed in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use njp_model::{AttentionBackend, Gpt, Rng, SampleOptions};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, LoopState, Meta};
use crate::config::TrainConfig;
use crate::data::Skip;
use crate::error::{Error, Result};
use crate::metrics::{EvalMetrics, MetricsLog, StepMetrics, loss_svg, read_series};
use crate::optim::{Optimizers, accumulate, clip_grads, grad_norm};
use crate::packing::{Batch, BatchSource};
use crate::schedule::{self, Stage};
use crate::tokenizer::TokenizerApi;

/// Where the weights of a run come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// nanochat's random init from `TrainConfig::seed`.
    Fresh,
    /// Weights from a safetensors file (mid from base, SFT from mid, or an imported nanochat
    /// model). Optimizer state starts empty, as in nanochat.
    Weights(PathBuf),
    /// Continue the newest checkpoint in the output directory exactly.
    Resume,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub config: TrainConfig,
    pub out_dir: PathBuf,
    pub init: Init,
    /// Save a checkpoint and return after this step even if the run is not finished (a time
    /// slot; `--resume` continues exactly).
    pub stop_at: Option<u64>,
}

/// The data of a run.
pub struct Data {
    pub train: Box<dyn BatchSource>,
    pub val: Option<Box<dyn BatchSource>>,
    /// Needed for validation bits per byte (token byte lengths) and samples.
    pub tokenizer: Option<Arc<dyn TokenizerApi>>,
    /// Prompts for the periodic greedy samples (raw text for base; user messages for mid/SFT).
    pub sample_prompts: Vec<String>,
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data")
            .field("val", &self.val.is_some())
            .field("prompts", &self.sample_prompts)
            .finish_non_exhaustive()
    }
}

/// Facts about a run, reported once at the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub stage: Stage,
    pub num_params: u64,
    pub grad_accum: usize,
    pub total_steps: Option<u64>,
    pub start_step: u64,
    pub resumed_from: Option<PathBuf>,
    pub out_dir: PathBuf,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub steps: u64,
    pub finished: bool,
    pub last_loss: Option<f64>,
    pub last_val_bpb: Option<f64>,
    pub last_checkpoint: Option<PathBuf>,
    pub tokens: u64,
    pub training_time_s: f64,
    pub skipped_records: u64,
}

/// Progress callbacks; the CLI draws bars and prints, the library never does.
pub trait Reporter {
    fn started(&mut self, _info: &RunInfo) {}
    fn step(&mut self, _m: &StepMetrics, _total: Option<u64>) {}
    fn eval(&mut self, _m: &EvalMetrics) {}
    fn sample(&mut self, _step: u64, _prompt: &str, _completion: &str) {}
    fn checkpoint(&mut self, _step: u64, _path: &Path) {}
    fn skipped(&mut self, _skip: &Skip) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Reporter for Silent {}

fn batch_tensors<B: AutodiffBackend>(
    b: &Batch,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let x = Tensor::from_data(TensorData::new(b.inputs.clone(), [b.rows, b.cols]), device);
    let y = Tensor::from_data(TensorData::new(b.targets.clone(), [b.rows, b.cols]), device);
    (x, y)
}

/// Loss of one micro-batch (read to the host) and its gradients, scaled by `1/accum` as
/// nanochat divides each micro-loss by the accumulation steps. A non-finite loss returns empty
/// gradients (the caller stops the run).
pub fn forward_backward<B>(
    model: &Gpt<B>,
    batch: &Batch,
    accum: usize,
    device: &B::Device,
) -> (f64, GradientsParams)
where
    B: AutodiffBackend + AttentionBackend,
{
    let (x, y) = batch_tensors::<B>(batch, device);
    let loss = model.loss(x, y);
    let value = f64::from(loss.clone().into_scalar().elem::<f32>());
    if !value.is_finite() {
        return (value, GradientsParams::new());
    }
    let grads = (loss / accum as f64).backward();
    (value, GradientsParams::from_grads(grads, model))
}

/// Validation bits per byte over `batches` micro-batches (nanochat `evaluate_bpb`): nats of
/// targets with a non-zero byte length, over ln 2 × their bytes.
///
/// # Errors
/// Data errors from the source.
pub fn evaluate_bpb<B: AttentionBackend>(
    model: &Gpt<B>,
    source: &mut dyn BatchSource,
    batches: usize,
    token_bytes: &[u32],
    device: &B::Device,
) -> Result<f64> {
    let tb: Vec<f32> = token_bytes.iter().map(|&b| b as f32).collect();
    let tb = Tensor::<B, 1>::from_data(TensorData::new(tb, [token_bytes.len()]), device);
    let (mut nats, mut bytes) = (0f64, 0f64);
    for _ in 0..batches {
        let b = source.next_batch()?;
        let x = Tensor::<B, 2, Int>::from_data(
            TensorData::new(b.inputs.clone(), [b.rows, b.cols]),
            device,
        );
        let y = Tensor::<B, 1, Int>::from_data(
            TensorData::new(b.targets.clone(), [b.rows * b.cols]),
            device,
        );
        let nll = model
            .nll(x, y.clone().reshape([b.rows, b.cols]))
            .reshape([b.rows * b.cols]);
        let valid = y.clone().greater_equal_elem(0).float();
        let nb = tb.clone().select(0, y.clamp_min(0)) * valid;
        let counted = nb.clone().greater_elem(0.0).float();
        nats += f64::from((nll * counted).sum().into_scalar().elem::<f32>());
        bytes += f64::from(nb.sum().into_scalar().elem::<f32>());
    }
    Ok(if bytes > 0.0 {
        nats / (std::f64::consts::LN_2 * bytes)
    } else {
        f64::NAN
    })
}

struct State<B: AutodiffBackend> {
    model: Gpt<B>,
    optim: Optimizers<B::InnerBackend>,
    step: u64,
    rng: Rng,
    loop_state: LoopState,
    last_checkpoint: Option<PathBuf>,
    last_val_bpb: Option<f64>,
}

/// Runs (or resumes) one stage. Returns when the horizon is reached, the data wraps (mid), or
/// `stop_at` is hit; a checkpoint is written in every case.
///
/// # Errors
/// Bad config, data or checkpoint errors, and [`Error::NonFinite`] when the loss or the gradient
/// stops being finite (the weights of the failing step are never updated).
pub fn run<B>(
    spec: &RunSpec,
    mut data: Data,
    device: &B::Device,
    reporter: &mut dyn Reporter,
) -> Result<Summary>
where
    B: AutodiffBackend + AttentionBackend,
    B::InnerBackend: AttentionBackend,
{
    let cfg = &spec.config;
    cfg.validate()?;
    let out = &spec.out_dir;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut st = init_state::<B>(spec, &mut data, device)?;
    let resumed = spec.init == Init::Resume;
    let start_step = st.step;
    let config_json = serde_json::to_string_pretty(cfg).expect("config serializes");
    njp_model::weights::atomic_write_bytes(&out.join("config.json"), config_json.as_bytes())?;
    let mut log = MetricsLog::open(&out.join("metrics.jsonl"), resumed.then_some(start_step))?;
    let total = cfg.resolve_iterations(data.train.num_records())?;
    let accum = cfg.grad_accum();
    reporter.started(&RunInfo {
        stage: cfg.stage,
        num_params: cfg.model.num_params(),
        grad_accum: accum,
        total_steps: total,
        start_step,
        resumed_from: resumed.then(|| st.last_checkpoint.clone()).flatten(),
        out_dir: out.clone(),
    });
    let token_bytes = data.tokenizer.as_ref().map(|t| t.token_bytes());
    let flops_per_token = cfg.model.flops_per_token();
    // Every validation pass reads the same batches from the start of the validation data
    // (nanochat builds a fresh loader per evaluation), so values are comparable across steps
    // and across a resume.
    let val_start = data.val.as_ref().map(|v| v.state());
    let mut wrapped = data.train.wrapped();
    let mut last_loss = None;
    loop {
        let s = st.step;
        let last = match total {
            Some(n) => s >= n,
            None => wrapped,
        };
        let fresh_point = !(resumed && s == start_step);
        let due = |every: Option<u64>| every.is_some_and(|k| k > 0 && s % k == 0) || last;
        if fresh_point
            && due(cfg.eval_every)
            && let (Some(val), Some(tb), Some(start)) =
                (data.val.as_mut(), token_bytes.as_ref(), val_start.as_ref())
        {
            {
                val.restore(start)?;
                let bpb = evaluate_bpb(
                    &st.model.valid(),
                    val.as_mut(),
                    cfg.eval_batches,
                    tb,
                    device,
                )?;
                st.loop_state.min_val_bpb =
                    Some(st.loop_state.min_val_bpb.map_or(bpb, |m| m.min(bpb)));
                st.last_val_bpb = Some(bpb);
                let m = EvalMetrics {
                    step: s,
                    val_bpb: bpb,
                };
                log.write(&m)?;
                reporter.eval(&m);
            }
        }
        // Like nanochat, no samples from the untrained model at step 0.
        if fresh_point
            && s > 0
            && due(cfg.sample_every)
            && let Some(tok) = data.tokenizer.as_ref()
        {
            write_samples(&st, tok.as_ref(), &data.sample_prompts, cfg, out, reporter)?;
        }
        let stop_here = spec.stop_at.is_some_and(|k| s >= k);
        let periodic = cfg.save_every.is_some_and(|k| k > 0 && s % k == 0);
        if fresh_point && (last || stop_here || (periodic && s > start_step)) {
            save(&mut st, cfg, data.train.as_ref(), out, reporter)?;
        }
        if last || stop_here {
            break;
        }

        // One optimizer step.
        let t0 = Instant::now();
        let mut acc = GradientsParams::new();
        let mut loss_sum = 0.0;
        let mut rows = Vec::new();
        let mut positions = 0u64;
        let mut targets = 0u64;
        for micro in 0..accum {
            let batch = data.train.next_batch()?;
            for skip in data.train.take_skips() {
                st.loop_state.skipped_records += 1;
                reporter.skipped(&skip);
            }
            positions += (batch.rows * batch.cols) as u64;
            targets += batch.n_targets() as u64;
            let (value, grads) = forward_backward(&st.model, &batch, accum, device);
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    what: "loss",
                    value,
                    step: s,
                    micro_step: micro,
                    rows: batch.describe_rows(),
                    last_checkpoint: st.last_checkpoint.clone(),
                });
            }
            loss_sum += value;
            rows.push(batch.describe_rows());
            accumulate(&st.model, &mut acc, grads);
        }
        let norm = grad_norm(&st.model, &acc);
        if !norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient norm",
                value: norm,
                step: s,
                micro_step: accum - 1,
                rows: rows.join(" | "),
                last_checkpoint: st.last_checkpoint.clone(),
            });
        }
        if let Some(max) = cfg.grad_clip {
            clip_grads(&st.model, &mut acc, norm, max);
        }
        let (lrm, momentum) = match cfg.stage {
            Stage::Base => (
                schedule::base_lr_multiplier(
                    s,
                    total.unwrap_or(1),
                    cfg.warmup_ratio,
                    cfg.warmdown_ratio,
                    cfg.final_lr_frac,
                ),
                schedule::muon_momentum(s),
            ),
            Stage::Mid => {
                let progress = match total {
                    Some(n) => (s + 1) as f64 / n as f64,
                    None => data.train.progress().unwrap_or(0.0),
                };
                (
                    schedule::mid_lr_multiplier(progress),
                    schedule::muon_momentum(s),
                )
            }
            Stage::Sft => (schedule::sft_lr_multiplier(s, total.unwrap_or(1)), 0.95),
        };
        let lrs = st
            .optim
            .lrs(cfg.model.n_embd, lrm, cfg.init_lr_frac, momentum);
        st.model = st.optim.step(st.model, &mut acc, lrs)?;
        // Wait for the update before timing (one tiny read; the next step syncs anyway).
        let _ = st
            .model
            .lm_head
            .weight
            .val()
            .slice([0..1, 0..1])
            .into_scalar();
        let dt = t0.elapsed().as_secs_f64();
        st.step += 1;
        wrapped = data.train.wrapped();
        let loss = loss_sum / accum as f64;
        st.loop_state.smooth_loss_ema = 0.9 * st.loop_state.smooth_loss_ema + 0.1 * loss;
        let smooth =
            st.loop_state.smooth_loss_ema / (1.0 - 0.9f64.powi(st.step.min(10_000) as i32));
        st.loop_state.tokens += positions;
        st.loop_state.total_training_time += dt;
        let tokens_per_s = positions as f64 / dt;
        let m = StepMetrics {
            step: st.step,
            loss,
            smooth_loss: smooth,
            lr: lrs.matrix,
            lrm,
            grad_norm: norm,
            tokens_per_s,
            mfu: cfg.peak_flops.map(|p| flops_per_token * tokens_per_s / p),
            dt_s: dt,
            tokens: st.loop_state.tokens,
            targets,
        };
        log.write(&m)?;
        reporter.step(&m, total);
        last_loss = Some(loss);
    }
    plot(out, cfg)?;
    let finished = total.map_or(wrapped, |n| st.step >= n);
    Ok(Summary {
        steps: st.step,
        finished,
        last_loss,
        last_val_bpb: st.last_val_bpb,
        last_checkpoint: st.last_checkpoint,
        tokens: st.loop_state.tokens,
        training_time_s: st.loop_state.total_training_time,
        skipped_records: st.loop_state.skipped_records,
    })
}

fn init_state<B>(spec: &RunSpec, data: &mut Data, device: &B::Device) -> Result<State<B>>
where
    B: AutodiffBackend + AttentionBackend,
{
    let cfg = &spec.config;
    let model = Gpt::<B>::init(&cfg.model, cfg.options, cfg.seed, device)?;
    let mut optim = Optimizers::new(cfg.optim.clone());
    match &spec.init {
        Init::Fresh => Ok(State {
            model,
            optim,
            step: 0,
            rng: Rng::new(cfg.seed ^ 0x5EED),
            loop_state: LoopState::default(),
            last_checkpoint: None,
            last_val_bpb: None,
        }),
        Init::Weights(path) => {
            let file = checkpoint::weights_file(path)?;
            let model = njp_model::weights::load_model(model, &file)?;
            Ok(State {
                model,
                optim,
                step: 0,
                rng: Rng::new(cfg.seed ^ 0x5EED),
                loop_state: LoopState::default(),
                last_checkpoint: Some(file),
                last_val_bpb: None,
            })
        }
        Init::Resume => {
            let meta = checkpoint::latest(&spec.out_dir)?;
            let metap = checkpoint::paths(&spec.out_dir, meta.step).2;
            if meta.model_config != cfg.model || meta.stage != cfg.stage {
                return Err(Error::checkpoint(
                    &metap,
                    format!(
                        "was written by a {} run of a different model ({}); this run is {} ({})",
                        meta.stage, meta.model_config, cfg.stage, cfg.model
                    ),
                ));
            }
            let model = checkpoint::load_model(&spec.out_dir, &meta, model)?;
            checkpoint::load_optim(&spec.out_dir, &meta, &mut optim, device)?;
            data.train.restore(&meta.data_state)?;
            Ok(State {
                model,
                optim,
                step: meta.step,
                rng: Rng::from_state(meta.rng),
                loop_state: meta.loop_state.clone(),
                last_checkpoint: Some(checkpoint::paths(&spec.out_dir, meta.step).0),
                last_val_bpb: meta.val_bpb,
            })
        }
    }
}

fn save<B: AutodiffBackend>(
    st: &mut State<B>,
    cfg: &TrainConfig,
    train: &dyn BatchSource,
    out: &Path,
    reporter: &mut dyn Reporter,
) -> Result<()> {
    let (_, optim_meta) = st.optim.state();
    let meta = Meta {
        format: checkpoint::FORMAT.to_string(),
        step: st.step,
        stage: cfg.stage,
        model_config: cfg.model.clone(),
        train_config: cfg.clone(),
        data_state: train.state(),
        rng: st.rng.state(),
        loop_state: st.loop_state.clone(),
        optimizer: optim_meta,
        val_bpb: st.last_val_bpb,
    };
    let path = checkpoint::save(out, &st.model, &st.optim, &meta)?;
    reporter.checkpoint(st.step, &path);
    st.last_checkpoint = Some(path);
    plot(out, cfg)
}

fn plot(out: &Path, cfg: &TrainConfig) -> Result<()> {
    let metrics = out.join("metrics.jsonl");
    if !metrics.exists() {
        return Ok(());
    }
    let (loss, bpb) = read_series(&metrics)?;
    let title = format!("njp train {} — {}", cfg.stage, cfg.model);
    njp_model::weights::atomic_write_bytes(
        &out.join("loss.svg"),
        loss_svg(&title, &loss, &bpb).as_bytes(),
    )?;
    Ok(())
}

/// One sample line in `samples.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SampleRecord {
    step: u64,
    prompt: String,
    completion: String,
}

fn write_samples<B>(
    st: &State<B>,
    tok: &dyn TokenizerApi,
    prompts: &[String],
    cfg: &TrainConfig,
    out: &Path,
    reporter: &mut dyn Reporter,
) -> Result<()>
where
    B: AutodiffBackend,
    B::InnerBackend: AttentionBackend,
{
    if prompts.is_empty() {
        return Ok(());
    }
    let model = st.model.valid();
    let mut stop = Vec::new();
    let mut log = MetricsLog::open_append(&out.join("samples.jsonl"))?;
    for prompt in prompts {
        let ids = match cfg.stage {
            Stage::Base => {
                let mut ids = vec![tok.bos_id()];
                ids.extend(tok.encode(prompt));
                ids
            }
            Stage::Mid | Stage::Sft => {
                stop = tok.special_id("<|assistant_end|>").into_iter().collect();
                let conv = njp_datasets::Conversation {
                    id: String::new(),
                    messages: vec![njp_datasets::Message::new(
                        njp_datasets::Role::User,
                        prompt.clone(),
                    )],
                    source: String::new(),
                    meta: None,
                };
                tok.render_for_completion(&conv).map_err(Error::Data)?
            }
        };
        let opts = SampleOptions {
            max_new_tokens: cfg.sample_tokens,
            temperature: 0.0,
            top_k: None,
            stop: stop.clone(),
        };
        // Greedy decoding draws no randomness; a copy keeps the run's RNG untouched.
        let new = njp_model::generate(&model, &ids, &opts, &mut st.rng.clone());
        let completion = tok.decode(&new);
        log.write(&SampleRecord {
            step: st.step,
            prompt: prompt.clone(),
            completion: completion.clone(),
        })?;
        reporter.sample(st.step, prompt, &completion);
    }
    Ok(())
}
