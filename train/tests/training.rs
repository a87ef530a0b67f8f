//! End-to-end training on CPU with tiny models: the loss falls, resume is exact, the NaN guard
//! stops the run, checkpoints round-trip, and mid / SFT continue from a base checkpoint.

use std::path::Path;
use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use njp_datasets::{Conversation, Document, Message, Part, Role};
use njp_model::weights::{HostTensor, read_safetensors, state_dict, write_safetensors};
use njp_model::{Gpt, GptConfig, ModelOptions};
use njp_train::checkpoint;
use njp_train::data::{DocStream, TokenizeFn, VecReader};
use njp_train::metrics::read_series;
use njp_train::packing::{BatchSource, BestFitPacker, SftBatcher, StreamPacker};
use njp_train::tokenizer::{ByteTokenizer, TokenizerApi};
use njp_train::{Data, Error, Init, Packing, RunSpec, Silent, Stage, TrainConfig, run};

type B = Autodiff<Flex>;

const TEXTS: [&str; 6] = [
    "吾輩は猫である。名前はまだ無い。",
    "どこで生れたかとんと見当がつかぬ。",
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    "春はあけぼの。やうやう白くなりゆく山ぎは、すこしあかりて。",
    "The quick brown fox jumps over the lazy dog.",
    "こんにちは、世界。今日はいい天気ですね。",
];

fn docs() -> Vec<Document> {
    (0..60)
        .map(|i| Document {
            id: format!("doc{i}"),
            text: TEXTS[i % TEXTS.len()].to_string(),
            source: String::new(),
            meta: None,
        })
        .collect()
}

fn tok() -> Arc<dyn TokenizerApi> {
    Arc::new(ByteTokenizer)
}

fn doc_tokenize(t: Arc<dyn TokenizerApi>) -> TokenizeFn<Document> {
    Arc::new(move |d: &Document| {
        let mut ids = vec![t.bos_id()];
        ids.extend(t.encode(&d.text));
        (d.id.clone(), Ok((ids, None)))
    })
}

fn model_config() -> GptConfig {
    GptConfig {
        sequence_len: 32,
        vocab_size: 265,
        n_layer: 2,
        n_head: 2,
        n_kv_head: 2,
        n_embd: 32,
    }
}

fn base_config(steps: u64) -> TrainConfig {
    let mut c = TrainConfig::for_stage(Stage::Base, model_config());
    c.device_batch_size = 4;
    c.total_batch_size = 4 * 32 * 2; // two micro-batches per step: accumulation is exercised
    c.num_iterations = Some(steps);
    c.packing = Packing::BestFit { buffer_docs: 8 };
    c.eval_every = Some(5);
    c.eval_batches = 2;
    c.sample_every = None;
    c.sample_tokens = 8;
    // Bigger steps than nanochat's so a 2-layer toy learns within seconds.
    c.optim.matrix_lr = 0.05;
    c.optim.embedding_lr = 0.3;
    c.optim.unembedding_lr = 0.02;
    c
}

fn base_data(documents: Vec<Document>) -> Data {
    let t = tok();
    let cfg = base_config(1);
    let stream = DocStream::new(
        Box::new(VecReader::new("docs", documents.clone())),
        doc_tokenize(t.clone()),
        true,
    );
    let val = DocStream::new(
        Box::new(VecReader::new("val", documents)),
        doc_tokenize(t.clone()),
        true,
    );
    let buf = match cfg.packing {
        Packing::BestFit { buffer_docs } => buffer_docs,
        Packing::Stream => 1,
    };
    Data {
        train: Box::new(BestFitPacker::new(stream, 4, 32, buf)),
        val: Some(Box::new(StreamPacker::new(val, 4, 32))),
        tokenizer: Some(t),
        sample_prompts: vec!["吾輩は".into()],
    }
}

fn spec(cfg: TrainConfig, out: &Path, init: Init, stop_at: Option<u64>) -> RunSpec {
    RunSpec {
        config: cfg,
        out_dir: out.to_path_buf(),
        init,
        stop_at,
    }
}

#[test]
fn base_loss_falls_and_outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(40);
    cfg.sample_every = Some(40);
    let s = run::<B>(
        &spec(cfg, dir.path(), Init::Fresh, None),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();
    assert!(s.finished);
    assert_eq!(s.steps, 40);
    let (loss, bpb) = read_series(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(loss.len(), 40);
    let first = loss[0].1;
    let last = loss.iter().rev().take(5).map(|p| p.1).sum::<f64>() / 5.0;
    // ln(265) ≈ 5.58 at init; the repeated texts are easy to memorise.
    assert!((first - 265f64.ln()).abs() < 0.05, "initial loss {first}");
    assert!(
        last < first - 2.0,
        "loss did not fall enough: {first} → {last}"
    );
    assert_eq!(bpb.len(), 9); // steps 0, 5, …, 40
    assert!(bpb.last().unwrap().1 < bpb[0].1);
    for f in [
        "config.json",
        "loss.svg",
        "samples.jsonl",
        "model_000040.safetensors",
        "optim_000040.safetensors",
        "meta_000040.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let first_line: serde_json::Value =
        serde_json::from_str(text.lines().find(|l| l.contains("\"loss\"")).unwrap()).unwrap();
    for key in ["step", "loss", "lr", "tokens_per_s"] {
        assert!(
            first_line.get(key).is_some(),
            "metrics line lacks {key}: {first_line}"
        );
    }
    let samples = std::fs::read_to_string(dir.path().join("samples.jsonl")).unwrap();
    assert!(samples.contains("\"prompt\":\"吾輩は\""));
}

#[test]
fn resume_is_exact() {
    let steps = 8;
    let a = tempfile::tempdir().unwrap();
    run::<B>(
        &spec(base_config(steps), a.path(), Init::Fresh, None),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();

    let b = tempfile::tempdir().unwrap();
    let s = run::<B>(
        &spec(base_config(steps), b.path(), Init::Fresh, Some(3)),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();
    assert!(!s.finished);
    assert_eq!(s.steps, 3);
    let s = run::<B>(
        &spec(base_config(steps), b.path(), Init::Resume, None),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();
    assert!(s.finished);

    let (la, va) = read_series(&a.path().join("metrics.jsonl")).unwrap();
    let (lb, vb) = read_series(&b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(la.len(), steps as usize);
    assert_eq!(la, lb, "losses differ between one run and 3 steps + resume");
    assert_eq!(va, vb);
    // Bit-identical final weights.
    let (wa, _) = read_safetensors(&checkpoint::paths(a.path(), steps).0).unwrap();
    let (wb, _) = read_safetensors(&checkpoint::paths(b.path(), steps).0).unwrap();
    assert_eq!(wa, wb);
}

#[test]
fn nan_guard_names_step_rows_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Weights whose embedding row for '#' (byte 35) is NaN; only doc "poison" contains it.
    let model = Gpt::<Flex>::init(
        &model_config(),
        ModelOptions::default(),
        3,
        &Default::default(),
    )
    .unwrap();
    let mut sd = state_dict(&model);
    let wte = sd.get_mut("transformer.wte.weight").unwrap();
    let d = wte.shape[1];
    wte.data[35 * d..36 * d]
        .iter_mut()
        .for_each(|x| *x = f32::NAN);
    let weights = dir.path().join("poisoned.safetensors");
    write_safetensors(&weights, &sd, None).unwrap();

    let mut documents = docs();
    documents.insert(
        20,
        Document {
            id: "poison".into(),
            text: "#".repeat(10),
            source: String::new(),
            meta: None,
        },
    );
    let mut cfg = base_config(20);
    cfg.eval_every = None;
    cfg.packing = Packing::Stream;
    let t = tok();
    let stream = DocStream::new(
        Box::new(VecReader::new("docs", documents)),
        doc_tokenize(t.clone()),
        true,
    );
    let data = Data {
        train: Box::new(StreamPacker::new(stream, 4, 32)),
        val: None,
        tokenizer: Some(t),
        sample_prompts: vec![],
    };
    let out = dir.path().join("run");
    let err = run::<B>(
        &spec(cfg, &out, Init::Weights(weights.clone()), None),
        data,
        &Default::default(),
        &mut Silent,
    )
    .unwrap_err();
    let Error::NonFinite {
        what,
        step,
        rows,
        last_checkpoint,
        ..
    } = &err
    else {
        panic!("unexpected error {err}")
    };
    assert_eq!(*what, "loss");
    // 20 documents of ≥ 16 bytes before "poison": it lands in the second optimizer step or later,
    // never the first.
    assert!(*step >= 1, "step {step}");
    assert!(rows.contains("poison@0:20"), "{rows}");
    assert_eq!(last_checkpoint.as_deref(), Some(weights.as_path()));
    let msg = err.to_string();
    assert!(
        msg.contains("non-finite loss") && msg.contains("poisoned.safetensors"),
        "{msg}"
    );
    // No checkpoint was written after the failure.
    assert!(checkpoint::list(&out).unwrap().is_empty());
}

#[test]
fn checkpoint_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(3);
    cfg.eval_every = None;
    run::<B>(
        &spec(cfg.clone(), dir.path(), Init::Fresh, None),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();
    let meta = checkpoint::latest(dir.path()).unwrap();
    assert_eq!((meta.step, meta.stage), (3, Stage::Base));
    assert_eq!(meta.train_config, cfg);
    assert_eq!(meta.model_config, model_config());
    assert_eq!(meta.optimizer.adam_steps["lm_head.weight"], 3);
    assert_eq!(meta.data_state["kind"], "best_fit");
    let (model_file, optim_file, _) = checkpoint::paths(dir.path(), 3);
    let (w, _) = read_safetensors(&model_file).unwrap();
    let loaded = checkpoint::load_model(
        dir.path(),
        &meta,
        Gpt::<Flex>::init(
            &model_config(),
            ModelOptions::default(),
            99,
            &Default::default(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(state_dict(&loaded), w);
    let (o, _) = read_safetensors(&optim_file).unwrap();
    // 2 AdamW groups × 2 moments + 6 Muon buffers per layer × 2 layers.
    assert_eq!(o.len(), 4 + 12);
    let mut optim = njp_train::optim::Optimizers::<Flex>::new(cfg.optim.clone());
    checkpoint::load_optim(dir.path(), &meta, &mut optim, &Default::default()).unwrap();
    assert_eq!(optim.state().0, o);
    // An incomplete checkpoint (meta present, optimizer file gone) is refused with its path.
    std::fs::remove_file(&optim_file).unwrap();
    let err = checkpoint::latest(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("optim_000003.safetensors") && err.contains("incomplete"),
        "{err}"
    );
}

fn conversations() -> Vec<Conversation> {
    let qa = [
        ("日本の首都は？", "東京です。"),
        ("1+1は？", "2です。"),
        ("富士山の高さは？", "3776メートルです。"),
        ("猫の鳴き声は？", "ニャーです。"),
    ];
    let mut out: Vec<Conversation> = (0..24)
        .map(|i| {
            let (q, a) = qa[i % qa.len()];
            Conversation {
                id: format!("conv{i}"),
                messages: vec![
                    Message::new(Role::User, q),
                    Message::new(Role::Assistant, a),
                ],
                source: String::new(),
                meta: None,
            }
        })
        .collect();
    // One with a tool call and output, one too long for a row, one with nothing to learn, early
    // in the data so one epoch reaches them.
    let special = vec![
        Conversation {
            id: "tool".into(),
            messages: vec![
                Message::new(Role::User, "2*3は？"),
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::python("2*3"),
                        Part::python_output("6"),
                        Part::text("6"),
                    ],
                },
            ],
            source: String::new(),
            meta: None,
        },
        Conversation {
            id: "long".into(),
            messages: vec![
                Message::new(Role::User, "あ".repeat(40)),
                Message::new(Role::Assistant, "はい"),
            ],
            source: String::new(),
            meta: None,
        },
        Conversation {
            id: "user-only".into(),
            messages: vec![Message::new(Role::User, "こんにちは")],
            source: String::new(),
            meta: None,
        },
    ];
    out.splice(2..2, special);
    out
}

fn chat_data(keep_mask: bool, stage: Stage) -> Data {
    let t = tok();
    let t2 = t.clone();
    let f: TokenizeFn<Conversation> = Arc::new(move |c: &Conversation| {
        let r = t2
            .render_conversation(c)
            .map(|r| (r.ids, keep_mask.then_some(r.mask)));
        (c.id.clone(), r)
    });
    let stream = DocStream::new(Box::new(VecReader::new("convs", conversations())), f, true);
    let train: Box<dyn BatchSource> = match stage {
        // Rows of up to 81 tokens: within the rotary table (10 × 32 positions).
        Stage::Sft => Box::new(SftBatcher::new(
            stream,
            4,
            80,
            t.special_id("<|assistant_end|>").unwrap(),
            8,
        )),
        _ => Box::new(StreamPacker::new(stream, 4, 32)),
    };
    Data {
        train,
        val: None,
        tokenizer: Some(t),
        sample_prompts: vec!["日本の首都は？".into()],
    }
}

#[derive(Default)]
struct Skips(Vec<String>);
impl njp_train::Reporter for Skips {
    fn skipped(&mut self, s: &njp_train::data::Skip) {
        self.0.push(format!("{}: {}", s.id, s.reason));
    }
}

#[test]
fn mid_and_sft_continue_from_base() {
    let base = tempfile::tempdir().unwrap();
    let mut cfg = base_config(4);
    cfg.eval_every = None;
    run::<B>(
        &spec(cfg, base.path(), Init::Fresh, None),
        base_data(docs()),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();

    // Mid: one pass over the conversations (no --steps), from the base run directory.
    let mid = tempfile::tempdir().unwrap();
    let mut mcfg = TrainConfig::for_stage(Stage::Mid, model_config());
    mcfg.device_batch_size = 4;
    mcfg.total_batch_size = 128;
    mcfg.eval_every = None;
    mcfg.sample_every = Some(1000);
    mcfg.sample_tokens = 6;
    let s = run::<B>(
        &spec(
            mcfg,
            mid.path(),
            Init::Weights(base.path().to_path_buf()),
            None,
        ),
        chat_data(false, Stage::Mid),
        &Default::default(),
        &mut Silent,
    )
    .unwrap();
    assert!(s.finished);
    // 24 × ~30 tokens of conversations ≈ 6 batches of 129 tokens before the data wraps.
    assert!((3..=10).contains(&s.steps), "mid ran {} steps", s.steps);
    let (loss, _) = read_series(&mid.path().join("metrics.jsonl")).unwrap();
    assert!(loss.iter().all(|p| p.1.is_finite()));

    // SFT from the mid run: 2 conversations skipped (too long, nothing supervised), never all-masked.
    let sft = tempfile::tempdir().unwrap();
    let mut scfg = TrainConfig::for_stage(Stage::Sft, model_config());
    scfg.device_batch_size = 4;
    scfg.total_batch_size = 4;
    scfg.eval_every = None;
    scfg.sample_every = None;
    let mut rep = Skips::default();
    let s = run::<B>(
        &spec(
            scfg,
            sft.path(),
            Init::Weights(mid.path().to_path_buf()),
            None,
        ),
        chat_data(true, Stage::Sft),
        &Default::default(),
        &mut rep,
    )
    .unwrap();
    assert_eq!(s.steps, 27 / 4); // one epoch
    assert!(
        rep.0
            .iter()
            .any(|m| m.starts_with("long: ") && m.contains("never truncated")),
        "{:?}",
        rep.0
    );
    assert!(
        rep.0
            .iter()
            .any(|m| m.starts_with("user-only: ") && m.contains("no supervised")),
        "{:?}",
        rep.0
    );
    let lines = std::fs::read_to_string(sft.path().join("metrics.jsonl")).unwrap();
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let Some(t) = v.get("targets") {
            assert!(t.as_u64().unwrap() > 0);
        }
    }
    let meta = checkpoint::latest(sft.path()).unwrap();
    assert_eq!(meta.stage, Stage::Sft);
    assert!((meta.train_config.init_lr_frac - 0.02).abs() < 1e-12);
}

#[test]
fn host_tensor_layout() {
    // A quick sanity check of the helpers the tests rely on.
    let t = HostTensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(t.transposed().data, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
}
