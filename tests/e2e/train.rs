//! `njp train`: base on bundled documents, resume, mid and sft from it, export, bench, and the
//! errors a user meets first. Small models (depth 2, T 64) so the whole flow takes seconds.

use std::path::Path;
use std::process::{Command, Output};

fn njp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_njp"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("spawn njp")
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("train/tests/data")
        .join(name)
        .display()
        .to_string()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "njp failed ({:?}):\n{err}",
        o.status.code()
    );
    err
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

fn base(out: &Path, extra: &[&str]) -> Output {
    let docs = data("aozora_docs.jsonl");
    let out = out.display().to_string();
    let mut args = vec![
        "train",
        "base",
        "--data",
        &docs,
        "--val-data",
        &docs,
        "--out",
        &out,
        "--steps",
        "30",
        "--eval-every",
        "10",
    ];
    args.extend(["--depth", "2", "--seq-len", "128"]);
    args.extend(SMALL);
    args.extend(extra);
    njp(&args)
}

#[test]
fn base_resume_mid_sft_export() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("base");
    let err = ok(&base(&a, &["--sample-every", "30"]));
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
    let b = dir.path().join("resumed");
    let err = ok(&base(&b, &["--stop-at", "12"]));
    assert!(err.contains("stopped at step 12"), "{err}");
    let again = base(&b, &[]);
    assert!(
        !again.status.success(),
        "a second fresh run into a full directory must be refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let docs = data("aozora_docs.jsonl");
    ok(&njp(&[
        "train",
        "base",
        "--data",
        &docs,
        "--val-data",
        &docs,
        "--resume",
        b.to_str().unwrap(),
        "--tokenizer",
        "byte",
    ]));
    assert_eq!(losses(&b), l);

    // mid from the base run, then sft from mid.
    let convs = data("conversations.jsonl");
    let mid = dir.path().join("mid");
    let mut args = vec![
        "train",
        "mid",
        "--data",
        &convs,
        "--from",
        a.to_str().unwrap(),
        "--out",
        mid.to_str().unwrap(),
        "--steps",
        "6",
    ];
    args.extend(SMALL);
    let err = ok(&njp(&args));
    assert!(err.contains("finished at step 6"), "{err}");
    let sft = dir.path().join("sft");
    let mut args = vec![
        "train",
        "sft",
        "--data",
        &convs,
        "--from",
        mid.to_str().unwrap(),
        "--out",
        sft.to_str().unwrap(),
    ];
    args.extend([
        "--device-batch-size",
        "4",
        "--total-batch-size",
        "8",
        "--tokenizer",
        "byte",
    ]);
    let err = ok(&njp(&args));
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

    // Export: nanochat keys and PyTorch shapes.
    let file = dir.path().join("export.safetensors");
    ok(&njp(&[
        "train",
        "export",
        "--from",
        sft.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]));
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
    let o = njp(&[
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
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["params"], 2 * 320 * 64 + 12 * 64 * 64);
}

#[test]
fn user_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x").display().to_string();
    let docs = data("aozora_docs.jsonl");
    let o = njp(&[
        "train",
        "mid",
        "--data",
        &docs,
        "--out",
        &out,
        "--preset",
        "tiny",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from"));
    let o = njp(&[
        "train",
        "base",
        "--data",
        "no-such-dataset",
        "--out",
        &out,
        "--preset",
        "tiny",
        "--tokenizer",
        "byte",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-dataset"));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"a\", \"text\": \"ok\"}\n{\"id\": 5}\n").unwrap();
    let o = njp(&[
        "train",
        "base",
        "--data",
        bad.to_str().unwrap(),
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
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    let o = njp(&[
        "train",
        "base",
        "--data",
        &docs,
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
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a multiple"));
}
