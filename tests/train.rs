//! `njp train`: base on the bundled documents (through the catalog), resume, mid and sft from
//! it, export, bench, and the errors a user meets first. Small models (depth 2, T 128, the
//! byte-level stand-in tokenizer) so the whole flow takes seconds.

use std::path::Path;

use crate::common::Env;

fn conversations() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("train/tests/data/conversations.jsonl")
        .display()
        .to_string()
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

const SMALL: [&str; 8] = [
    "--device-batch-size",
    "4",
    "--total-batch-size",
    "512",
    "--tokenizer",
    "byte",
    "--eval-batches",
    "2",
];

fn base(env: &Env, out: &Path, extra: &[&str]) -> crate::common::Run {
    let out = out.display().to_string();
    let mut args = vec![
        "train",
        "base",
        "--data",
        "sample_documents",
        "--val-data",
        "sample_documents",
        "--out",
        &out,
        "--steps",
        "30",
        "--eval-every",
        "10",
        "--depth",
        "2",
        "--seq-len",
        "128",
    ];
    args.extend(SMALL);
    args.extend(extra);
    env.run(&args)
}

#[test]
fn base_resume_mid_sft_export() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let a = env.dir.path().join("base");
    let err = base(&env, &a, &["--sample-every", "30"]).ok().stderr;
    assert!(
        err.contains("njp train base:") && err.contains("finished at step 30"),
        "{err}"
    );
    assert!(err.contains("val bpb"), "{err}");
    let l = losses(&a);
    assert_eq!(l.len(), 30);
    assert!(
        l[29].1 < l[0].1 - 1.5,
        "loss did not fall: {:?} → {:?}",
        l[0],
        l[29]
    );
    for f in [
        "config.json",
        "loss.svg",
        "samples.jsonl",
        "model_000030.safetensors",
        "meta_000030.json",
    ] {
        assert!(a.join(f).exists(), "{f}");
    }

    // The same run in two sittings gives the same losses.
    let b = env.dir.path().join("resumed");
    let err = base(&env, &b, &["--stop-at", "12"]).ok().stderr;
    assert!(err.contains("stopped at step 12"), "{err}");
    let again = base(&env, &b, &[]);
    assert_eq!(
        again.code, 2,
        "a fresh run into a directory with checkpoints must be refused"
    );
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    let b_arg = b.display().to_string();
    let args = [
        "train",
        "base",
        "--data",
        "sample_documents",
        "--val-data",
        "sample_documents",
    ];
    let mut resume: Vec<&str> = args.to_vec();
    resume.extend(["--resume", &b_arg, "--tokenizer", "byte"]);
    env.run(&resume).ok();
    assert_eq!(losses(&b), l);

    // mid from the base run (a JSONL file of conversations), then sft from mid.
    let convs = conversations();
    let mid = env.dir.path().join("mid");
    let (a_arg, mid_arg) = (a.display().to_string(), mid.display().to_string());
    let mut args = vec![
        "train", "mid", "--data", &convs, "--from", &a_arg, "--out", &mid_arg, "--steps", "6",
    ];
    args.extend(SMALL);
    let err = env.run(&args).ok().stderr;
    assert!(err.contains("finished at step 6"), "{err}");
    let sft = env.dir.path().join("sft");
    let sft_arg = sft.display().to_string();
    let mut args = vec![
        "train", "sft", "--data", &convs, "--from", &mid_arg, "--out", &sft_arg,
    ];
    args.extend([
        "--device-batch-size",
        "4",
        "--total-batch-size",
        "8",
        "--tokenizer",
        "byte",
    ]);
    let err = env.run(&args).ok().stderr;
    // 49 conversations / 8 per step = 6 steps; the multi-turn one is longer than 129 tokens.
    assert!(err.contains("finished at step 6"), "{err}");
    assert!(
        err.contains("skipped record multi") && err.contains("never truncated"),
        "{err}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sft.join("meta_000006.json")).unwrap())
            .unwrap();
    assert_eq!(meta["stage"], "sft");
    assert_eq!(meta["model_config"]["n_embd"], 128);

    // SFT with padded best-fit packing: several whole conversations per row, none cropped.
    let packed = env.dir.path().join("sft-packed");
    let packed_arg = packed.display().to_string();
    let args = [
        "train",
        "sft",
        "--data",
        &convs,
        "--from",
        &mid_arg,
        "--out",
        &packed_arg,
        "--packing",
        "best-fit",
        "--steps",
        "3",
        "--device-batch-size",
        "2",
        "--total-batch-size",
        "4",
        "--tokenizer",
        "byte",
    ];
    let err = env.run(&args).ok().stderr;
    assert!(err.contains("finished at step 3"), "{err}");
    assert!(
        err.contains("skipped record multi") && err.contains("never truncated"),
        "{err}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(packed.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["sft_packing"], "best_fit");

    // Export: nanochat keys and PyTorch shapes.
    let file = env.dir.path().join("export.safetensors");
    let file_arg = file.display().to_string();
    env.run(&["train", "export", "--from", &sft_arg, "--out", &file_arg])
        .ok();
    let bytes = std::fs::read(&file).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(
        header["transformer.h.1.mlp.c_fc.weight"]["shape"],
        serde_json::json!([512, 128])
    );
    assert_eq!(
        header["lm_head.weight"]["shape"],
        serde_json::json!([320, 128])
    );
}

#[test]
fn bench_prints_json() {
    let env = Env::new();
    let run = env
        .run(&[
            "train",
            "bench",
            "--depth",
            "1",
            "--vocab",
            "300",
            "--seq-len",
            "32",
            "--device-batch-size",
            "2",
            "--steps",
            "2",
            "--warmup",
            "1",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["params"], 2 * 320 * 64 + 12 * 64 * 64);
}

#[test]
fn user_errors() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let out = env.dir.path().join("x").display().to_string();
    let tiny = ["--preset", "tiny", "--tokenizer", "byte"];
    let with =
        |a: &[&str]| -> Vec<String> { a.iter().chain(&tiny).map(|s| s.to_string()).collect() };

    let r = env.run(&with(&[
        "train",
        "mid",
        "--data",
        "sample_conversations",
        "--out",
        &out,
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--from"), "{}", r.stderr);
    let r = env.run(&with(&[
        "train",
        "base",
        "--data",
        "sample_documents",
        "--out",
        &out,
        "--packing",
        "row",
    ]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("does not apply to `train base`"),
        "{}",
        r.stderr
    );
    let r = env.run(&with(&[
        "train",
        "base",
        "--data",
        "no-such-dataset",
        "--out",
        &out,
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no-such-dataset"), "{}", r.stderr);
    let r = env.run(&with(&[
        "train",
        "base",
        "--data",
        "sample_mc",
        "--out",
        &out,
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("holds mc records"), "{}", r.stderr);

    // Eval-only datasets are refused for training.
    let mc = env.file(
        "mc.jsonl",
        "{\"id\":\"q1\",\"question\":\"1+1?\",\"choices\":[\"1\",\"2\"],\"answer\":1}\n",
    );
    env.import(&mc, "mc", "held_out", &["--eval-only"]).ok();
    let r = env.run(&[
        "train",
        "sft",
        "--data",
        "held_out",
        "--out",
        &out,
        "--from",
        "x.safetensors",
        "--depth",
        "1",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("eval-only"), "{}", r.stderr);

    let bad = env.file(
        "bad.jsonl",
        "{\"id\": \"a\", \"text\": \"ok\"}\n{\"id\": 5}\n",
    );
    let bad = bad.display().to_string();
    let r = env.run(&[
        "train",
        "base",
        "--data",
        &bad,
        "--out",
        &out,
        "--depth",
        "1",
        "--seq-len",
        "16",
        "--device-batch-size",
        "1",
        "--total-batch-size",
        "16",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.jsonl:2:"), "{}", r.stderr);
    let r = env.run(&[
        "train",
        "base",
        "--data",
        "sample_documents",
        "--out",
        &out,
        "--depth",
        "2",
        "--device-batch-size",
        "3",
        "--total-batch-size",
        "1000",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a multiple"), "{}", r.stderr);
}

#[test]
fn pretokenized_datasets_train_like_their_sources() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    // Documents: a base run on the tokens dataset gives exactly the losses of the text dataset.
    let err = env
        .run(&["mix", "tokenize", "sample_documents", "--tokenizer", "byte"])
        .ok()
        .stderr;
    assert!(err.contains("published sample_documents_tokens@1"), "{err}");
    // A table (here the tokens dataset itself) is refused with a clear error, nothing published.
    let r = env.run(&[
        "mix",
        "tokenize",
        "sample_documents_tokens",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("sample_documents_tokens@1 is a table, not a dataset of records"),
        "{}",
        r.stderr
    );
    assert!(
        !env.home()
            .join("datasets/sample_documents_tokens_tokens")
            .exists()
    );
    let a = env.dir.path().join("a");
    let b = env.dir.path().join("b");
    let run = |out: &Path, data: &str, extra: &[&str]| {
        let out = out.display().to_string();
        let mut args = vec![
            "train",
            "base",
            "--data",
            data,
            "--out",
            &out,
            "--steps",
            "4",
            "--depth",
            "1",
            "--seq-len",
            "64",
            "--eval-every",
            "100",
        ];
        args.extend(SMALL);
        args.extend(extra);
        env.run(&args).ok();
    };
    run(&a, "sample_documents", &[]);
    run(&b, "sample_documents_tokens", &[]);
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 4);
    assert_eq!(la, lb, "pre-tokenized documents must give the same batches");
    // Two sittings (the reader seeks back to the buffered rows) give the same losses.
    let c = env.dir.path().join("c");
    run(&c, "sample_documents_tokens", &["--stop-at", "2"]);
    let c_arg = c.display().to_string();
    env.run(&[
        "train",
        "base",
        "--data",
        "sample_documents_tokens",
        "--resume",
        &c_arg,
        "--tokenizer",
        "byte",
    ])
    .ok();
    assert_eq!(losses(&c), la);

    // Conversations: SFT reads the masks; the one too long for a row is reported, not cut.
    env.import(Path::new(&conversations()), "conversation", "convs", &[])
        .ok();
    env.run(&["mix", "tokenize", "convs", "--tokenizer", "byte"])
        .ok();
    let sft = env.dir.path().join("sft").display().to_string();
    let from = a.display().to_string();
    let err = env
        .run(&[
            "train",
            "sft",
            "--data",
            "convs_tokens",
            "--from",
            &from,
            "--out",
            &sft,
            "--steps",
            "2",
            "--device-batch-size",
            "2",
            "--total-batch-size",
            "2",
            "--tokenizer",
            "byte",
        ])
        .ok()
        .stderr;
    assert!(err.contains("finished at step 2"), "{err}");
    assert!(
        err.contains("skipped record multi") && err.contains("never truncated"),
        "{err}"
    );

    // The wrong stage and a different tokenizer are refused, naming the dataset.
    let x = env.dir.path().join("x").display().to_string();
    let r = env.run(&[
        "train",
        "base",
        "--data",
        "convs_tokens",
        "--out",
        &x,
        "--depth",
        "1",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("holds tokens of conversation records"),
        "{}",
        r.stderr
    );
    let tok = env.dir.path().join("tok");
    let tok_arg = tok.display().to_string();
    env.run(&[
        "tok",
        "train",
        "--dataset",
        "sample_documents",
        "--vocab-size",
        "300",
        "--out",
        &tok_arg,
    ])
    .ok();
    let r = env.run(&[
        "train",
        "base",
        "--data",
        "sample_documents_tokens",
        "--out",
        &x,
        "--depth",
        "1",
        "--tokenizer",
        &tok_arg,
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("was tokenized with byte") && r.stderr.contains("different tokenizer"),
        "{}",
        r.stderr
    );
}

/// `njp train --tokenizer DIR` with nanochat's tokenizer directory (only `tokenizer.pkl`).
#[test]
fn base_trains_with_a_nanochat_tokenizer_pkl() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let tok = env.dir.path().join("nanochat-tokenizer");
    std::fs::create_dir(&tok).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tokenizer/tests/data/nanochat_pkl/protocol5/tokenizer.pkl"),
        tok.join("tokenizer.pkl"),
    )
    .unwrap();
    let out = env.dir.path().join("run");
    let (tok, out) = (tok.display().to_string(), out.display().to_string());
    let err = env
        .run(&[
            "train",
            "base",
            "--data",
            "sample_documents",
            "--out",
            &out,
            "--steps",
            "3",
            "--depth",
            "1",
            "--seq-len",
            "64",
            "--device-batch-size",
            "2",
            "--total-batch-size",
            "128",
            "--tokenizer",
            &tok,
        ])
        .ok()
        .stderr;
    assert!(err.contains("finished at step 3"), "{err}");
    assert_eq!(losses(Path::new(&out)).len(), 3);
}
