//! `njp train`: base / mid / SFT training, and nanochat checkpoint import / export.
//!
//! The backend is chosen here and only here: `--device cpu` runs `Autodiff<Flex>`; with the
//! `cuda` cargo feature, `--device cuda[:N]` runs `Autodiff<Cuda<f32>>` (f32 master weights,
//! bf16 matmuls by default).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::backend::Autodiff;
use burn::backend::flex::{Flex, FlexDevice};
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use njp_datasets::{Conversation, Document};
use njp_mix::tokens::{TokenRow, TokensInfo};
use njp_model::{AttentionBackend, AttentionKind, GptConfig, ModelOptions, Precision, Preset};
use njp_train::data::{DocStream, JsonlReader, RecordReader, TokenizeFn, Tokenized};
use njp_train::metrics::{EvalMetrics, StepMetrics};
use njp_train::packing::{BatchSource, BestFitPacker, SftBatcher, StreamPacker};
use njp_train::tokenizer::{ByteTokenizer, TokenizerApi};
use njp_train::trainer::{Data, Init, Reporter, RunInfo, RunSpec};
use njp_train::{Packing, SftPacking, Stage, TrainConfig};

use super::{Ctx, ExitStatus};
use crate::printer::Printer;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrainCommand {
    /// Pretrain on a dataset of documents (nanochat base_train).
    Base(StageArgs),
    /// Midtrain on conversations, loss on every token (nanochat mid_train).
    Mid(StageArgs),
    /// Fine-tune on conversations, loss on assistant tokens (nanochat chat_sft).
    Sft(StageArgs),
    /// Convert a nanochat model_XXXXXX.pt (+ meta_XXXXXX.json) to safetensors.
    Import(ImportArgs),
    /// Write a checkpoint's weights as safetensors under nanochat's keys and shapes.
    Export(ExportArgs),
    /// Time optimizer steps on random tokens (tokens/s, MFU); one JSON line on stdout.
    Bench(BenchArgs),
}

/// Arguments of `njp train bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Model size preset: tiny, d20, d26, d32.
    #[arg(long, conflicts_with = "depth")]
    preset: Option<Preset>,
    /// Model depth (width = depth × 64).
    #[arg(long)]
    depth: Option<usize>,
    /// Vocabulary size.
    #[arg(long, default_value_t = 65_536)]
    vocab: usize,
    /// Context length [default: the preset's; 2048 for --depth].
    #[arg(long)]
    seq_len: Option<usize>,
    /// Rows per step.
    #[arg(long, default_value_t = 8)]
    device_batch_size: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first (kernel compilation, autotuning).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: DeviceArg,
    /// f32 or bf16 [default: f32 on cpu, bf16 on cuda].
    #[arg(long, value_parser = parse_precision)]
    precision: Option<Precision>,
    /// plain, chunked or chunked:ROWS [default: plain on cpu, chunked:256 on cuda].
    #[arg(long, value_parser = parse_attention)]
    attention: Option<AttentionKind>,
    /// Peak FLOP/s for MFU [default: 989e12 on cuda].
    #[arg(long)]
    peak_flops: Option<f64>,
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceArg {
    Cpu,
    Cuda(usize),
}

fn parse_device(s: &str) -> Result<DeviceArg, String> {
    match s {
        "cpu" => Ok(DeviceArg::Cpu),
        "cuda" => Ok(DeviceArg::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(DeviceArg::Cuda)
            .ok_or_else(|| format!("unknown device `{s}` (expected cpu, cuda or cuda:N)")),
    }
}

fn parse_attention(s: &str) -> Result<AttentionKind, String> {
    match s {
        "plain" => Ok(AttentionKind::Plain),
        "chunked" => Ok(AttentionKind::Chunked { chunk: 256 }),
        _ => s
            .strip_prefix("chunked:")
            .and_then(|c| c.parse().ok())
            .filter(|&c| c > 0)
            .map(|chunk| AttentionKind::Chunked { chunk })
            .ok_or_else(|| {
                format!("unknown attention `{s}` (expected plain, chunked or chunked:ROWS)")
            }),
    }
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        _ => Err(format!("unknown precision `{s}` (expected f32 or bf16)")),
    }
}

/// Arguments shared by `njp train base|mid|sft`.
#[derive(Debug, clap::Args)]
pub(crate) struct StageArgs {
    /// Training data: a catalog dataset name, or a JSONL file of records
    /// (documents for base, conversations for mid and sft).
    #[arg(long, value_name = "NAME|FILE")]
    data: String,
    /// Validation data for bits per byte (same kinds as --data).
    #[arg(long, value_name = "NAME|FILE")]
    val_data: Option<String>,
    /// Tokenizer directory (njp's, or nanochat's with `tokenizer.pkl`) or a `tokenizer.pkl`
    /// file; `byte` selects the built-in byte-level stand-in (vocab 265).
    #[arg(long, value_name = "DIR|byte")]
    tokenizer: Option<String>,
    /// Run directory: checkpoints, metrics.jsonl, loss.svg, config.json, samples.jsonl.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in DIR exactly where its newest checkpoint left it.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Start from these weights (a run directory or a .safetensors file); mid and sft need it.
    #[arg(long, value_name = "DIR|FILE")]
    from: Option<PathBuf>,
    /// Model size preset: tiny, d20, d26, d32.
    #[arg(long, conflicts_with = "depth")]
    preset: Option<Preset>,
    /// Model depth (width = depth × 64, head dim 128), as nanochat's --depth.
    #[arg(long)]
    depth: Option<usize>,
    /// Context length [default: the preset's; 2048 for --depth].
    #[arg(long)]
    seq_len: Option<usize>,
    /// Key/value heads (GQA) [default: as many as query heads].
    #[arg(long)]
    kv_heads: Option<usize>,
    /// Optimizer steps [default: base 20 tokens per parameter, mid one pass, sft one epoch].
    #[arg(long)]
    steps: Option<u64>,
    /// Rows per micro-batch.
    #[arg(long)]
    device_batch_size: Option<usize>,
    /// Tokens per optimizer step (base, mid) or conversations per step (sft).
    #[arg(long)]
    total_batch_size: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: DeviceArg,
    /// Matmul precision: f32 or bf16 [default: f32 on cpu, bf16 on cuda].
    #[arg(long, value_parser = parse_precision)]
    precision: Option<Precision>,
    /// Attention kernel: plain, chunked or chunked:ROWS [default: plain on cpu, chunked:256 on cuda].
    #[arg(long, value_parser = parse_attention)]
    attention: Option<AttentionKind>,
    /// Rows from records. base: best-fit (BOS-aligned, default) or stream (nanochat v1);
    /// sft: row (one conversation per row, default) or best-fit (whole conversations packed,
    /// padded, never cropped); mid always streams.
    #[arg(long, value_parser = ["best-fit", "stream", "row"])]
    packing: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Validation every N steps (and at the end).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Micro-batches per validation pass.
    #[arg(long)]
    eval_batches: Option<usize>,
    /// Greedy samples every N steps (and at the end).
    #[arg(long)]
    sample_every: Option<u64>,
    /// Checkpoint every N steps (and always at the end).
    #[arg(long)]
    save_every: Option<u64>,
    /// Save and stop after this step (continue later with --resume).
    #[arg(long)]
    stop_at: Option<u64>,
    /// Peak FLOP/s for the MFU estimate [default: 989e12 on cuda, none on cpu].
    #[arg(long)]
    peak_flops: Option<f64>,
}

/// Arguments of `njp train import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// nanochat model_XXXXXX.pt.
    #[arg(long, value_name = "FILE")]
    pt: PathBuf,
    /// nanochat meta_XXXXXX.json [default: next to the .pt].
    #[arg(long, value_name = "FILE")]
    meta: Option<PathBuf>,
    /// Output .safetensors file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Arguments of `njp train export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// A run directory (newest checkpoint) or a model .safetensors file.
    #[arg(long, value_name = "DIR|FILE")]
    from: PathBuf,
    /// Output .safetensors file (nanochat keys, PyTorch [out, in] shapes, model_config metadata).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(crate) fn run(ctx: &Ctx, cmd: TrainCommand) -> anyhow::Result<ExitStatus> {
    crate::alloc::keep_freed_memory();
    match cmd {
        TrainCommand::Base(a) => run_stage(ctx, Stage::Base, a),
        TrainCommand::Mid(a) => run_stage(ctx, Stage::Mid, a),
        TrainCommand::Sft(a) => run_stage(ctx, Stage::Sft, a),
        TrainCommand::Import(a) => import(ctx, a),
        TrainCommand::Export(a) => export(ctx, a),
        TrainCommand::Bench(a) => bench(ctx, a),
    }
}

fn bench(ctx: &Ctx, a: BenchArgs) -> anyhow::Result<ExitStatus> {
    let model = match (a.preset, a.depth) {
        (Some(p), _) => GptConfig {
            sequence_len: a.seq_len.unwrap_or(p.sequence_len()),
            ..p.config(a.vocab)
        },
        (None, Some(d)) => GptConfig::from_depth(d, a.vocab, a.seq_len.unwrap_or(2048)),
        (None, None) => bail!("choose a model size with --preset or --depth"),
    };
    model.validate()?;
    let on_cuda = matches!(a.device, DeviceArg::Cuda(_));
    let precision = a.precision.unwrap_or(if on_cuda {
        Precision::Bf16
    } else {
        Precision::F32
    });
    let attention = a.attention.unwrap_or(if on_cuda {
        AttentionKind::Chunked { chunk: 256 }
    } else {
        AttentionKind::Plain
    });
    let opts = ModelOptions {
        precision,
        attention,
    };
    let peak = a.peak_flops.or(on_cuda.then_some(989e12));
    let (device_name, r) = match a.device {
        DeviceArg::Cpu => (
            "cpu".to_string(),
            bench_on::<Autodiff<Flex>>(&model, opts, &a, &FlexDevice)?,
        ),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda(i) => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            (
                format!("cuda:{i}"),
                bench_on::<Autodiff<Cuda<f32, i32>>>(&model, opts, &a, &CudaDevice::new(i))?,
            )
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda(_) => {
            bail!("this njp was built without CUDA; rebuild with `--features cuda`")
        }
    };
    let tokens = (a.device_batch_size * model.sequence_len) as f64;
    let tps = tokens / r.median_step_s;
    let json = serde_json::json!({
        "tool": "njp",
        "device": device_name,
        "threads": rayon::current_num_threads(),
        "model_config": model,
        "params": model.num_params(),
        "precision": precision,
        "attention": attention,
        "batch": a.device_batch_size,
        "seq_len": model.sequence_len,
        "steps": a.steps,
        "step_s": r.median_step_s,
        "step_s_all": r.step_s,
        "tokens_per_s": tps,
        "mfu": peak.map(|p| model.flops_per_token() * tps / p),
        "init_s": r.init_s,
        "first_step_s": r.first_step_s,
        "loss_first": r.losses.first(),
        "loss_last": r.losses.last(),
        "peak_rss_mib": peak_rss_mib(),
    });
    ctx.printer.out(json.to_string())?;
    Ok(ExitStatus::Success)
}

/// Peak resident memory of this process (Linux `VmHWM`), for CPU memory comparisons.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct BenchResult {
    init_s: f64,
    first_step_s: f64,
    step_s: Vec<f64>,
    median_step_s: f64,
    losses: Vec<f64>,
}

fn bench_on<B>(
    config: &GptConfig,
    opts: ModelOptions,
    a: &BenchArgs,
    device: &B::Device,
) -> anyhow::Result<BenchResult>
where
    B: AutodiffBackend + AttentionBackend,
    B::InnerBackend: AttentionBackend,
{
    use njp_train::optim::{OptimConfig, Optimizers, clip_grads, grad_norm};
    let t0 = Instant::now();
    let mut model = njp_model::Gpt::<B>::init(config, opts, 0, device)?;
    let mut optim = Optimizers::<B::InnerBackend>::new(OptimConfig {
        ns_precision: opts.precision,
        ..OptimConfig::default()
    });
    let init_s = t0.elapsed().as_secs_f64();
    let mut rng = njp_model::Rng::new(1);
    let n = a.device_batch_size * config.sequence_len;
    let mut draw = || {
        (0..n)
            .map(|_| rng.below(config.vocab_size as u64) as i64)
            .collect::<Vec<_>>()
    };
    let batch = njp_train::packing::Batch {
        rows: a.device_batch_size,
        cols: config.sequence_len,
        inputs: draw(),
        targets: draw(),
        row_ids: vec![String::new(); a.device_batch_size],
    };
    let (mut step_s, mut losses, mut first_step_s) = (Vec::new(), Vec::new(), 0.0);
    for i in 0..a.warmup + a.steps {
        let t = Instant::now();
        let (loss, mut grads) = njp_train::trainer::forward_backward(&model, &batch, 1, device);
        anyhow::ensure!(loss.is_finite(), "non-finite loss {loss} at bench step {i}");
        let norm = grad_norm(&model, &grads);
        clip_grads(&model, &mut grads, norm, 1.0);
        let lrs = optim.lrs(
            config.n_embd,
            1.0,
            1.0,
            njp_train::schedule::muon_momentum(i as u64),
        );
        model = optim.step(model, &mut grads, lrs)?;
        let _ = model.lm_head.weight.val().slice([0..1, 0..1]).into_scalar(); // wait for the update
        let dt = t.elapsed().as_secs_f64();
        if i == 0 {
            first_step_s = dt;
        }
        if i >= a.warmup {
            step_s.push(dt);
        }
        losses.push(loss);
    }
    let mut sorted = step_s.clone();
    sorted.sort_by(f64::total_cmp);
    let median_step_s = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(BenchResult {
        init_s,
        first_step_s,
        step_s,
        median_step_s,
        losses,
    })
}

fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<ExitStatus> {
    let device = FlexDevice;
    let model = njp_model::weights::import_nanochat::<Flex>(
        &a.pt,
        a.meta.as_deref(),
        ModelOptions::default(),
        &device,
    )?;
    njp_model::weights::save_model(&model, &a.out)?;
    ctx.printer.info(format!(
        "imported {} ({}) -> {}",
        a.pt.display(),
        model.config(),
        a.out.display()
    ));
    Ok(ExitStatus::Success)
}

fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<ExitStatus> {
    let file = njp_train::checkpoint::weights_file(&a.from)?;
    let config = njp_model::weights::safetensors_config(&file)?.with_context(|| {
        format!(
            "{}: no model_config in the safetensors header",
            file.display()
        )
    })?;
    let model = njp_model::Gpt::<Flex>::init(&config, ModelOptions::default(), 0, &FlexDevice)?;
    let model = njp_model::weights::load_model(model, &file)?;
    njp_model::weights::save_model(&model, &a.out)?;
    ctx.printer.info(format!(
        "exported {} ({config}) -> {}",
        file.display(),
        a.out.display()
    ));
    Ok(ExitStatus::Success)
}

/// A content fingerprint of a tokenizer spec: `byte`, or the hash `njp mix` records.
pub(crate) fn tokenizer_fingerprint(spec: &str) -> anyhow::Result<String> {
    if spec == "byte" {
        return Ok("byte".into());
    }
    let (_, hash) =
        njp_mix::load_tokenizer(spec).with_context(|| format!("loading the tokenizer {spec}"))?;
    Ok(hash)
}

/// The tokenizer spec in effect: the flag, else njp.toml's.
fn tokenizer_arg(ctx: &Ctx, arg: Option<&str>) -> Option<String> {
    arg.map(str::to_string).or_else(|| {
        ctx.settings
            .tokenizer
            .as_ref()
            .map(|p| p.display().to_string())
    })
}

pub(crate) fn load_tokenizer(
    ctx: &Ctx,
    arg: Option<&str>,
) -> anyhow::Result<Arc<dyn TokenizerApi>> {
    let arg = tokenizer_arg(ctx, arg)
        .context("no tokenizer: pass --tokenizer DIR (or `byte` for the byte-level stand-in)")?;
    if arg == "byte" {
        return Ok(Arc::new(ByteTokenizer));
    }
    let tok = njp_tokenizer::Tokenizer::load(&arg)
        .with_context(|| format!("loading the tokenizer in {arg}"))?;
    Ok(Arc::new(tok))
}

/// The catalog dataset `spec` names (`name` or `name@version`), refused when eval-only; `None`
/// when `spec` is a file.
fn training_dataset(
    ctx: &Ctx,
    spec: &str,
) -> anyhow::Result<Option<(njp_catalog::Catalog, njp_catalog::Manifest)>> {
    if Path::new(spec).is_file() {
        return Ok(None);
    }
    let catalog = njp_catalog::Catalog::open(&ctx.settings.home)?;
    let m = catalog.resolve(spec).with_context(|| {
        format!(
            "`{spec}` is neither a file nor a dataset in the catalog at {}",
            ctx.settings.home.display()
        )
    })?;
    if m.eval_only {
        bail!(
            "{} is marked eval-only: it may not be used for training",
            m.id()
        );
    }
    Ok(Some((catalog, m)))
}

/// A dataset version's data files with their row counts, in catalog order.
fn data_files(catalog: &njp_catalog::Catalog, m: &njp_catalog::Manifest) -> Vec<(PathBuf, u64)> {
    catalog
        .data_files(m)
        .into_iter()
        .zip(m.files.iter().map(|f| f.rows))
        .collect()
}

/// Opens training data as records of type `T`: a JSONL file of canonical records (`dataset`
/// is `None`), or a catalog dataset of a kind that converts to `T`.
fn open_records<T>(
    spec: &str,
    dataset: Option<&(njp_catalog::Catalog, njp_catalog::Manifest)>,
) -> anyhow::Result<Box<dyn RecordReader<T>>>
where
    T: FromRecord + serde::de::DeserializeOwned + Send + 'static,
{
    let Some((catalog, m)) = dataset else {
        return Ok(Box::new(JsonlReader::<T>::open(Path::new(spec))?));
    };
    let kind = m
        .kind
        .record_kind()
        .with_context(|| format!("{} is a table, not a dataset of records", m.id()))?;
    if !T::accepts(kind) {
        bail!(
            "{} holds {kind} records; this stage trains on {}",
            m.id(),
            T::WHAT
        );
    }
    Ok(Box::new(CatalogReader::<T>::new(catalog, m, kind)))
}

/// Catalog records convertible to what a stage trains on: documents for base; conversations
/// (and multiple-choice / math problems through nanochat's conversions) for mid and sft.
trait FromRecord: Sized {
    const WHAT: &'static str;
    fn accepts(kind: njp_datasets::Kind) -> bool;
    fn from_record(r: njp_datasets::Record) -> Option<Self>;
}

impl FromRecord for Document {
    const WHAT: &'static str = "documents";
    fn accepts(kind: njp_datasets::Kind) -> bool {
        kind == njp_datasets::Kind::Document
    }
    fn from_record(r: njp_datasets::Record) -> Option<Self> {
        match r {
            njp_datasets::Record::Document(d) => Some(d),
            _ => None,
        }
    }
}

impl FromRecord for Conversation {
    const WHAT: &'static str = "conversations (or mc / math problems)";
    fn accepts(kind: njp_datasets::Kind) -> bool {
        kind != njp_datasets::Kind::Document
    }
    fn from_record(r: njp_datasets::Record) -> Option<Self> {
        r.to_conversation()
    }
}

/// Streams a catalog dataset version file by file; seeks with the per-file row counts of the
/// manifest.
struct CatalogReader<T> {
    name: String,
    kind: njp_datasets::Kind,
    /// (path, rows) per data file, in catalog order.
    files: Vec<(PathBuf, u64)>,
    rows: u64,
    file: usize,
    current: Option<njp_datasets::io::ParquetRecords>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> CatalogReader<T> {
    fn new(
        catalog: &njp_catalog::Catalog,
        m: &njp_catalog::Manifest,
        kind: njp_datasets::Kind,
    ) -> Self {
        let files = data_files(catalog, m);
        CatalogReader {
            name: m.id(),
            kind,
            rows: files.iter().map(|f| f.1).sum(),
            files,
            file: 0,
            current: None,
            _t: std::marker::PhantomData,
        }
    }

    fn open(&mut self, file: usize) -> njp_train::Result<()> {
        self.file = file;
        self.current = match self.files.get(file) {
            Some((path, _)) => Some(
                njp_datasets::io::ParquetRecords::open(path, self.kind)
                    .map_err(|e| njp_train::Error::Data(format!("{}: {e}", self.name)))?,
            ),
            None => None,
        };
        Ok(())
    }
}

/// The data file holding record `index` of a dataset and the index of that file's first record
/// (`(files.len(), total)` for the end).
fn locate(name: &str, files: &[(PathBuf, u64)], index: u64) -> njp_train::Result<(usize, u64)> {
    let total: u64 = files.iter().map(|f| f.1).sum();
    if index > total {
        return Err(njp_train::Error::Data(format!(
            "{name}: seek to record {index} past the end ({total})"
        )));
    }
    let (mut file, mut start) = (0, 0);
    while file < files.len() && start + files[file].1 <= index {
        start += files[file].1;
        file += 1;
    }
    Ok((file, start))
}

impl<T: FromRecord> RecordReader<T> for CatalogReader<T> {
    fn num_records(&self) -> Option<u64> {
        Some(self.rows)
    }

    fn seek(&mut self, index: u64) -> njp_train::Result<()> {
        let (file, start) = locate(&self.name, &self.files, index)?;
        self.open(file)?;
        for _ in start..index {
            self.next_record()?;
        }
        Ok(())
    }

    fn next_record(&mut self) -> njp_train::Result<Option<T>> {
        loop {
            if self.current.is_none() {
                if self.file >= self.files.len() {
                    return Ok(None);
                }
                self.open(self.file)?;
            }
            match self.current.as_mut().and_then(Iterator::next) {
                Some(Ok(r)) => {
                    let id = r.id().to_string();
                    return T::from_record(r).map(Some).ok_or_else(|| {
                        njp_train::Error::Data(format!(
                            "{}: record {id} cannot be converted to {}",
                            self.name,
                            T::WHAT
                        ))
                    });
                }
                Some(Err(e)) => return Err(njp_train::Error::Data(format!("{}: {e}", self.name))),
                None => {
                    self.current = None;
                    self.file += 1;
                }
            }
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

pub(crate) fn document_tokenizer(tok: Arc<dyn TokenizerApi>) -> TokenizeFn<Document> {
    Arc::new(move |d: &Document| {
        let mut ids = vec![tok.bos_id()];
        ids.extend(tok.encode(&d.text));
        (d.id.clone(), Tokenized::Ok((ids, None)))
    })
}

pub(crate) fn conversation_tokenizer(
    tok: Arc<dyn TokenizerApi>,
    keep_mask: bool,
) -> TokenizeFn<Conversation> {
    Arc::new(move |c: &Conversation| {
        let r = tok
            .render_conversation(c)
            .map(|r| (r.ids, keep_mask.then_some(r.mask)));
        (c.id.clone(), r)
    })
}

/// Catalog rows of a pre-tokenized dataset (`njp mix tokenize`), with `seek`.
struct TokensReader {
    name: String,
    files: Vec<(PathBuf, u64)>,
    rows: u64,
    file: usize,
    current: Option<njp_mix::tokens::TokenFile>,
}

impl TokensReader {
    fn open_at(&mut self, file: usize, offset: u64) -> njp_train::Result<()> {
        self.file = file;
        self.current = match self.files.get(file) {
            Some((path, _)) => Some(
                njp_mix::tokens::TokenFile::open(path, offset as usize)
                    .map_err(|e| njp_train::Error::Data(format!("{}: {e}", self.name)))?,
            ),
            None => None,
        };
        Ok(())
    }
}

impl RecordReader<TokenRow> for TokensReader {
    fn num_records(&self) -> Option<u64> {
        Some(self.rows)
    }

    fn seek(&mut self, index: u64) -> njp_train::Result<()> {
        let (file, start) = locate(&self.name, &self.files, index)?;
        self.open_at(file, index - start)
    }

    fn next_record(&mut self) -> njp_train::Result<Option<TokenRow>> {
        loop {
            let Some(cur) = self.current.as_mut() else {
                return Ok(None);
            };
            match cur
                .next_row()
                .map_err(|e| njp_train::Error::Data(format!("{}: {e}", self.name)))?
            {
                Some(r) => return Ok(Some(r)),
                None => self.open_at(self.file + 1, 0)?,
            }
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A pre-tokenized dataset (`njp mix tokenize`), checked against the stage and the tokenizer.
fn open_tokens(
    catalog: &njp_catalog::Catalog,
    m: &njp_catalog::Manifest,
    info: &TokensInfo,
    stage: Stage,
    tok_spec: Option<&str>,
) -> anyhow::Result<Box<dyn RecordReader<TokenRow>>> {
    let want = if stage == Stage::Base {
        "document"
    } else {
        "conversation"
    };
    if info.kind != want {
        bail!(
            "{} holds tokens of {} records; `train {stage}` trains on {want}s",
            m.id(),
            info.kind
        );
    }
    let tok_spec = tok_spec.context("no tokenizer")?;
    if tokenizer_fingerprint(tok_spec)? != info.tokenizer_fingerprint {
        bail!(
            "{} was tokenized with {} ({}), a different tokenizer from {tok_spec}: pass that \
             --tokenizer, or re-run `njp mix tokenize {} --tokenizer {tok_spec}`",
            m.id(),
            info.tokenizer,
            info.source,
            info.source
        );
    }
    let files = data_files(catalog, m);
    let mut r = TokensReader {
        name: m.id(),
        rows: files.iter().map(|f| f.1).sum(),
        files,
        file: 0,
        current: None,
    };
    r.open_at(0, 0)?;
    Ok(Box::new(r))
}

/// Pre-tokenized rows pass through; `keep_mask` as for conversations.
fn token_rows(keep_mask: bool) -> TokenizeFn<TokenRow> {
    Arc::new(move |r: &TokenRow| {
        (
            r.id.clone(),
            Tokenized::Ok((r.ids.clone(), r.mask.clone().filter(|_| keep_mask))),
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn source(
    ctx: &Ctx,
    stage: Stage,
    spec: &str,
    cfg: &TrainConfig,
    tok: &Arc<dyn TokenizerApi>,
    tok_spec: Option<&str>,
    looping: bool,
) -> anyhow::Result<Box<dyn BatchSource>> {
    let dataset = training_dataset(ctx, spec)?;
    if let Some((catalog, m)) = &dataset
        && let Some(info) = TokensInfo::of(m)
    {
        let reader = open_tokens(catalog, m, &info, stage, tok_spec)?;
        let f = token_rows(stage == Stage::Sft);
        return packer(stage, DocStream::new(reader, f, looping), cfg, tok);
    }
    match stage {
        Stage::Base => {
            let f = document_tokenizer(tok.clone());
            let reader = open_records::<Document>(spec, dataset.as_ref())?;
            packer(stage, DocStream::new(reader, f, looping), cfg, tok)
        }
        Stage::Mid | Stage::Sft => {
            let f = conversation_tokenizer(tok.clone(), stage == Stage::Sft);
            let reader = open_records::<Conversation>(spec, dataset.as_ref())?;
            packer(stage, DocStream::new(reader, f, looping), cfg, tok)
        }
    }
}

/// The stage's packer over a token stream.
fn packer<T: Send + 'static>(
    stage: Stage,
    stream: DocStream<T>,
    cfg: &TrainConfig,
    tok: &Arc<dyn TokenizerApi>,
) -> anyhow::Result<Box<dyn BatchSource>> {
    let (rows, t) = (cfg.device_batch_size, cfg.model.sequence_len);
    Ok(match stage {
        Stage::Base => match cfg.packing {
            Packing::BestFit { buffer_docs } => {
                Box::new(BestFitPacker::new(stream, rows, t, buffer_docs))
            }
            Packing::Stream => Box::new(StreamPacker::new(stream, rows, t)),
        },
        Stage::Mid => Box::new(StreamPacker::new(stream, rows, t)),
        Stage::Sft => {
            let pad = tok
                .special_id("<|assistant_end|>")
                .context("tokenizer has no <|assistant_end|>")?;
            match cfg.sft_packing {
                SftPacking::Row => {
                    Box::new(SftBatcher::new(stream, rows, t, pad, cfg.sft_pad_multiple))
                }
                SftPacking::BestFit => {
                    let buffer = match cfg.packing {
                        Packing::BestFit { buffer_docs } => buffer_docs,
                        Packing::Stream => 1000,
                    };
                    Box::new(BestFitPacker::padded(stream, rows, t, buffer, pad))
                }
            }
        }
    })
}

/// Resolves flags (and, when resuming, the saved config) into the run's [`TrainConfig`].
fn resolve_config(
    stage: Stage,
    a: &StageArgs,
    tok: &dyn TokenizerApi,
    out: &Path,
    resume: bool,
) -> anyhow::Result<TrainConfig> {
    let on_cuda = matches!(a.device, DeviceArg::Cuda(_));
    if resume {
        let meta = njp_train::checkpoint::latest(out)?;
        let mut cfg = meta.train_config;
        if cfg.stage != stage {
            bail!(
                "{} holds a {} run; resume it with `njp train {}`",
                out.display(),
                cfg.stage,
                cfg.stage
            );
        }
        // Only the horizon and the bookkeeping cadences may change on resume.
        if a.steps.is_some() {
            cfg.num_iterations = a.steps;
        }
        cfg.eval_every = a.eval_every.or(cfg.eval_every);
        cfg.save_every = a.save_every.or(cfg.save_every);
        cfg.sample_every = a.sample_every.or(cfg.sample_every);
        return Ok(cfg);
    }
    let vocab = tok.vocab_size();
    let model = match (a.preset, a.depth, &a.from) {
        (Some(p), _, _) => {
            let mut m = p.config(vocab);
            if let Some(t) = a.seq_len {
                m.sequence_len = t;
            }
            m
        }
        (None, Some(d), _) => GptConfig::from_depth(d, vocab, a.seq_len.unwrap_or(2048)),
        (None, None, Some(from)) => {
            // Continue with the architecture of the weights we start from.
            let file = njp_train::checkpoint::weights_file(from)?;
            let m = njp_model::weights::safetensors_config(&file)?.with_context(|| {
                format!(
                    "{}: no model_config in the header; pass --preset or --depth",
                    file.display()
                )
            })?;
            GptConfig {
                sequence_len: a.seq_len.unwrap_or(m.sequence_len),
                ..m
            }
        }
        (None, None, None) => {
            bail!("choose a model size with --preset (tiny, d20, d26, d32) or --depth N")
        }
    };
    let model = GptConfig {
        n_kv_head: a.kv_heads.unwrap_or(model.n_kv_head),
        ..model
    };
    let tiny = a.preset == Some(Preset::Tiny);
    let mut cfg = TrainConfig::for_stage(stage, model);
    if tiny {
        // Sized for a 2-core CPU: 8 rows × 256 tokens per step, frequent feedback.
        cfg.device_batch_size = if stage == Stage::Sft { 4 } else { 8 };
        cfg.total_batch_size = if stage == Stage::Sft {
            4
        } else {
            8 * cfg.model.sequence_len
        };
        cfg.eval_every = Some(50);
        cfg.eval_batches = 4;
        cfg.sample_every = Some(200);
    }
    if let Some(b) = a.device_batch_size {
        cfg.device_batch_size = b;
        if a.total_batch_size.is_none() {
            cfg.total_batch_size = cfg.total_batch_size.max(cfg.micro_batch_units())
                / cfg.micro_batch_units()
                * cfg.micro_batch_units();
        }
    }
    if let Some(t) = a.total_batch_size {
        cfg.total_batch_size = t;
    }
    cfg.num_iterations = a.steps;
    cfg.seed = a.seed.unwrap_or(cfg.seed);
    cfg.eval_every = a.eval_every.or(cfg.eval_every);
    cfg.eval_batches = a.eval_batches.unwrap_or(cfg.eval_batches);
    cfg.sample_every = a.sample_every.or(cfg.sample_every);
    cfg.save_every = a.save_every;
    match (stage, a.packing.as_deref()) {
        (_, None) => {}
        (Stage::Base, Some("stream")) => cfg.packing = Packing::Stream,
        (Stage::Base, Some("best-fit")) => {}
        (Stage::Sft, Some("row")) => cfg.sft_packing = SftPacking::Row,
        (Stage::Sft, Some("best-fit")) => cfg.sft_packing = SftPacking::BestFit,
        (stage, Some(p)) => bail!(
            "--packing {p} does not apply to `train {stage}` (base: best-fit|stream; sft: row|best-fit; mid always streams)"
        ),
    }
    let precision = a.precision.unwrap_or(if on_cuda {
        Precision::Bf16
    } else {
        Precision::F32
    });
    let attention = a.attention.unwrap_or(if on_cuda {
        AttentionKind::Chunked { chunk: 256 }
    } else {
        AttentionKind::Plain
    });
    cfg.options = ModelOptions {
        precision,
        attention,
    };
    cfg.optim.ns_precision = precision;
    cfg.peak_flops = a.peak_flops.or(on_cuda.then_some(989e12));
    cfg.validate()?;
    Ok(cfg)
}

fn run_stage(ctx: &Ctx, stage: Stage, a: StageArgs) -> anyhow::Result<ExitStatus> {
    let (out, resume) = match (&a.resume, &a.out) {
        (Some(r), Some(o)) if r != o => bail!(
            "--resume continues in place: drop --out or make it {}",
            r.display()
        ),
        (Some(r), _) => (r.clone(), true),
        (None, Some(o)) => (o.clone(), false),
        (None, None) => bail!("pass --out DIR (or --resume DIR)"),
    };
    if !resume && njp_train::checkpoint::list(&out).is_ok_and(|l| !l.is_empty()) {
        bail!(
            "{} already holds checkpoints; continue with --resume {} or choose a new --out",
            out.display(),
            out.display()
        );
    }
    let init = match (resume, &a.from) {
        (true, _) => Init::Resume,
        (false, Some(f)) => Init::Weights(f.clone()),
        (false, None) if stage == Stage::Base => Init::Fresh,
        (false, None) => {
            bail!("`njp train {stage}` starts from trained weights: pass --from DIR|FILE")
        }
    };
    let tok = load_tokenizer(ctx, a.tokenizer.as_deref())?;
    let cfg = resolve_config(stage, &a, tok.as_ref(), &out, resume)?;
    if tok.vocab_size() != cfg.model.vocab_size {
        bail!(
            "the tokenizer has {} tokens but the model expects {}",
            tok.vocab_size(),
            cfg.model.vocab_size
        );
    }
    let tok_spec = tokenizer_arg(ctx, a.tokenizer.as_deref());
    let train = source(ctx, stage, &a.data, &cfg, &tok, tok_spec.as_deref(), true)?;
    let val = a
        .val_data
        .as_deref()
        .map(|v| source(ctx, stage, v, &cfg, &tok, tok_spec.as_deref(), true))
        .transpose()?;
    let prompts: Vec<String> = match stage {
        Stage::Base => ["日本の首都は", "昔々、あるところに", "吾輩は猫である。"]
            .map(String::from)
            .to_vec(),
        _ => [
            "こんにちは！自己紹介をしてください。",
            "日本で一番高い山は何ですか？",
            "1+1は？",
        ]
        .map(String::from)
        .to_vec(),
    };
    let data = Data {
        train,
        val,
        tokenizer: Some(tok),
        sample_prompts: prompts,
    };
    let spec = RunSpec {
        config: cfg,
        out_dir: out,
        init,
        stop_at: a.stop_at,
    };
    let mut reporter = CliReporter::new(ctx.printer);
    let result = match a.device {
        DeviceArg::Cpu => train_on::<Autodiff<Flex>>(&spec, data, &FlexDevice, &mut reporter),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda(i) => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            train_on::<Autodiff<Cuda<f32, i32>>>(&spec, data, &CudaDevice::new(i), &mut reporter)
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda(_) => {
            bail!("this njp was built without CUDA; rebuild with `--features cuda`")
        }
    };
    reporter.finish();
    match result {
        Ok(s) => {
            let status = if s.finished { "finished" } else { "stopped" };
            ctx.printer.info(format!(
                "{status} at step {} ({} tokens, {:.1}s training){}{}; checkpoint {}",
                s.steps,
                s.tokens,
                s.training_time_s,
                s.last_loss
                    .map(|l| format!(", loss {l:.4}"))
                    .unwrap_or_default(),
                s.last_val_bpb
                    .map(|b| format!(", val bpb {b:.4}"))
                    .unwrap_or_default(),
                s.last_checkpoint
                    .as_ref()
                    .map_or("none".into(), |p| p.display().to_string()),
            ));
            if s.skipped_records > 0 {
                ctx.printer.warn(format!(
                    "{} records were skipped (see the warnings above)",
                    s.skipped_records
                ));
            }
            Ok(ExitStatus::Success)
        }
        Err(e @ njp_train::Error::NonFinite { .. }) => {
            crate::printer::error(
                &anyhow::Error::new(e).context(format!("njp train {stage} stopped")),
            );
            Ok(ExitStatus::Failure)
        }
        Err(e) => Err(e).context(format!("njp train {stage}")),
    }
}

fn train_on<B>(
    spec: &RunSpec,
    data: Data,
    device: &B::Device,
    reporter: &mut CliReporter,
) -> njp_train::Result<njp_train::Summary>
where
    B: AutodiffBackend + AttentionBackend,
    B::InnerBackend: AttentionBackend,
{
    njp_train::run::<B>(spec, data, device, reporter)
}

/// Draws the progress bar and prints evals, samples, checkpoints and skips on stderr.
struct CliReporter {
    printer: Printer,
    bar: Option<ProgressBar>,
    started: Instant,
    skips_shown: u64,
}

impl CliReporter {
    fn new(printer: Printer) -> Self {
        CliReporter {
            printer,
            bar: None,
            started: Instant::now(),
            skips_shown: 0,
        }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(s),
            _ => self.printer.info(s),
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Reporter for CliReporter {
    fn started(&mut self, info: &RunInfo) {
        let total = info.total_steps.unwrap_or(0);
        // Mid without --steps runs until the data wraps: the bar's length grows with the steps.
        let bar = self.printer.bar(total, info.stage.as_str());
        bar.set_position(info.start_step);
        self.printer.info(format!(
            "njp train {}: {} parameters, {} micro-batches per step, {} steps{}; output {}",
            info.stage,
            info.num_params,
            info.grad_accum,
            info.total_steps
                .map_or("until the data wraps".into(), |n| n.to_string()),
            info.resumed_from
                .as_ref()
                .map(|p| format!(", resumed from {}", p.display()))
                .unwrap_or_default(),
            info.out_dir.display()
        ));
        self.bar = Some(bar);
        self.started = Instant::now();
    }

    fn step(&mut self, m: &StepMetrics, total: Option<u64>) {
        if let Some(b) = &self.bar {
            if total.is_none() {
                b.set_length(m.step);
            }
            b.set_position(m.step);
            let mfu = m
                .mfu
                .map(|u| format!(" mfu {:.1}%", 100.0 * u))
                .unwrap_or_default();
            b.set_message(format!(
                "loss {:.4} {:.0} tok/s{mfu}",
                m.smooth_loss, m.tokens_per_s
            ));
            if b.is_hidden() && (m.step.is_multiple_of(10) || m.step == 1) {
                self.printer.info(format!(
                    "step {:>6} loss {:.4} (smooth {:.4}) lr {:.2e} grad {:.3} {:.0} tok/s{mfu}",
                    m.step, m.loss, m.smooth_loss, m.lr, m.grad_norm, m.tokens_per_s
                ));
            }
        }
    }

    fn eval(&mut self, m: &EvalMetrics) {
        self.line(format!("step {:>6} val bpb {:.4}", m.step, m.val_bpb));
    }

    fn sample(&mut self, step: u64, prompt: &str, completion: &str) {
        // Control characters (an untrained model emits any byte) are shown escaped.
        let shown: String = completion
            .chars()
            .map(|c| match c {
                '\n' => "⏎".to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect();
        self.line(format!("step {step:>6} sample: {prompt}|{shown}"));
    }

    fn checkpoint(&mut self, step: u64, path: &Path) {
        self.line(format!(
            "step {step:>6} checkpoint {} ({:.0}s)",
            path.display(),
            self.started.elapsed().as_secs_f64()
        ));
    }

    fn skipped(&mut self, skip: &njp_train::data::Skip) {
        self.skips_shown += 1;
        if self.skips_shown <= 20 {
            let msg = format!(
                "skipped record {} (position {}): {}",
                skip.id, skip.pos, skip.reason
            );
            match &self.bar {
                Some(b) if !b.is_hidden() => b.println(format!("warning: {msg}")),
                _ => self.printer.warn(msg),
            }
        } else if self.skips_shown == 21 {
            self.printer
                .warn("more records skipped; the total is reported at the end");
        }
    }
}
