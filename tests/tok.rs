//! `njp tok`: train on the bundled sample, then encode, decode, render and compare through the CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn njp(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_njp"))
        .args(args)
        .env("NJP_NO_PROGRESS", "true")
        .env_remove("NJP_TOKENIZER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn njp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tokenizer/tests/data/aozora_sample.jsonl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn train_encode_decode_render_compare() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tok");
    let o = njp(
        &[
            "tok",
            "train",
            "--input",
            sample().to_str().unwrap(),
            "--vocab-size",
            "1200",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trained 1200 tokens"), "{err}");
    // The default --doc-cap 10000 cuts the longer works, and says so.
    assert!(err.contains("--doc-cap 10000"), "{err}");
    let t = out.to_str().unwrap();

    let o = njp(
        &["tok", "encode", "--tokenizer", t],
        "吾輩は猫である。<|bos|>",
    );
    assert!(o.status.success());
    let ids: Vec<u32> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(
        ids.iter().all(|&i| i < 1191),
        "special text must not become a special id: {ids:?}"
    );
    let o = njp(
        &["tok", "decode", "--tokenizer", t],
        &serde_json::to_string(&ids).unwrap(),
    );
    assert_eq!(stdout(&o), "吾輩は猫である。<|bos|>");

    let conv = r#"{"messages":[{"role":"user","content":"こんにちは"},{"role":"assistant","content":"はい。"}]}"#;
    let o = njp(&["tok", "render", "--tokenizer", t], conv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["ids"][0], 1191); // <|bos|>
    assert_eq!(
        r["ids"].as_array().unwrap().len(),
        r["mask"].as_array().unwrap().len()
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 kept"));

    // Too long under the default policy: exit 2 with a hint; drop: nothing, exit 0.
    let o = njp(
        &["tok", "render", "--tokenizer", t, "--max-tokens", "4"],
        conv,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exceed the limit of 4") && err.contains("truncate"),
        "{err}"
    );
    let o = njp(
        &[
            "tok",
            "render",
            "--tokenizer",
            t,
            "--max-tokens",
            "4",
            "--policy",
            "drop",
        ],
        conv,
    );
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");

    let text = dir.path().join("held.txt");
    std::fs::write(&text, "吾輩は猫である。\n名前はまだ無い。\n").unwrap();
    let o = njp(
        &[
            "tok",
            "compare",
            "--json",
            "--tokenizer",
            t,
            "--text",
            text.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["bytes"], 48);
    assert!(v["bytes_per_token"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"ok\"}\n{\"txt\": 1}\n").unwrap();
    let out = dir.path().join("tok");
    let o = njp(
        &[
            "tok",
            "train",
            "--input",
            bad.to_str().unwrap(),
            "--vocab-size",
            "300",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.jsonl:2") && err.contains("`text`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written on error");

    let env = crate::common::Env::new();
    let out = out.to_str().unwrap();
    let r = env.run(&["tok", "train", "--dataset", "wiki", "--out", out]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no dataset named `wiki`"), "{}", r.stderr);
}

#[test]
fn two_stage_ja_char_then_ja_span() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tok");
    let t = out.to_str().unwrap();
    let input = sample();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "tok",
            "train",
            "--input",
            input.to_str().unwrap(),
            "--vocab-size",
            "1500",
            "--out",
            t,
        ];
        args.extend_from_slice(extra);
        njp(&args, "")
    };
    let o = train(&[
        "--pattern",
        "ja-char",
        "--stage2-pattern",
        "ja-span",
        "--transition-vocab",
        "800",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ja-span after ja-char up to 800 tokens"),
        "{err}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("njp-tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(meta["pattern"]["name"], "ja-span", "{meta}");
    let text = "梅雨（つゆ）は、1995年に「東京」で見た。";
    let o = njp(&["tok", "encode", "--tokenizer", t], text);
    let ids: Vec<u32> = serde_json::from_str(stdout(&o).trim()).unwrap();
    let o = njp(
        &["tok", "decode", "--tokenizer", t],
        &serde_json::to_string(&ids).unwrap(),
    );
    assert_eq!(stdout(&o), text);

    // A transition outside bytes + specials ..= vocab size, or a second stage without one.
    std::fs::remove_dir_all(&out).unwrap();
    let o = train(&["--stage2-pattern", "ja-span", "--transition-vocab", "2000"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("transition vocab 2000 must lie between"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written on error");
    let o = train(&["--stage2-pattern", "ja-span"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--transition-vocab"));
}

#[test]
fn train_from_a_catalog_dataset() {
    let env = crate::common::Env::new();
    env.run(&["samples", "import"]).ok();
    let out = env.dir.path().join("tok");
    let out = out.to_str().unwrap();
    let r = env
        .run(&[
            "tok",
            "train",
            "--dataset",
            "sample_documents",
            "--vocab-size",
            "2000",
            "--out",
            out,
        ])
        .ok();
    assert!(r.stderr.contains("on 75 documents"), "{}", r.stderr);
    let enc = env
        .cmd()
        .args(["tok", "encode", "--tokenizer", out])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(enc.status.success());
    let r = env.run(&["tok", "train", "--dataset", "sample_mc", "--out", out]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("a mc dataset; tokenizer training reads document datasets"),
        "{}",
        r.stderr
    );
}

/// nanochat's tokenizer directory (`tokenizer.pkl`, a pickled tiktoken Encoding) works with
/// every `njp tok` command, without Python; ids are tiktoken's (fixture `expected.json`).
#[test]
fn nanochat_tokenizer_pkl() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tokenizer/tests/data/nanochat_pkl");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("expected.json")).unwrap())
            .unwrap();
    // A nanochat-style directory: only tokenizer.pkl.
    let dir = tempfile::tempdir().unwrap();
    let tok_dir = dir.path().join("tokenizer");
    std::fs::create_dir(&tok_dir).unwrap();
    std::fs::copy(
        data.join("protocol4/tokenizer.pkl"),
        tok_dir.join("tokenizer.pkl"),
    )
    .unwrap();
    let t = tok_dir.to_str().unwrap();
    let pkl = tok_dir.join("tokenizer.pkl");
    for case in expected["nanochat"]["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        for arg in [t, pkl.to_str().unwrap()] {
            let o = njp(&["tok", "encode", "--tokenizer", arg], text);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let ids: Vec<u32> = serde_json::from_str(stdout(&o).trim()).unwrap();
            assert_eq!(ids, want, "{text:?} with --tokenizer {arg}");
        }
        let o = njp(
            &["tok", "decode", "--tokenizer", t],
            &serde_json::to_string(&want).unwrap(),
        );
        assert_eq!(stdout(&o), text);
    }

    let conv = r#"{"messages":[{"role":"user","content":"こんにちは"},{"role":"assistant","content":"はい。"}]}"#;
    let o = njp(&["tok", "render", "--tokenizer", t], conv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        r["ids"][0],
        expected["nanochat"]["special_tokens"]["<|bos|>"]
    );

    let text = dir.path().join("held.txt");
    std::fs::write(&text, "吾輩は猫である。\n").unwrap();
    let o = njp(
        &[
            "tok",
            "compare",
            "--json",
            "--tokenizer",
            t,
            "--text",
            text.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A pickle that would run a command is refused; nothing runs.
    let evil = data.join("evil.pkl");
    let o = njp(
        &["tok", "encode", "--tokenizer", evil.to_str().unwrap()],
        "x",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("evil.pkl") && err.contains("posix.system") && err.contains("refused"),
        "{err}"
    );
    // A directory with neither format says so.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = njp(
        &["tok", "encode", "--tokenizer", empty.to_str().unwrap()],
        "x",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("neither njp-tokenizer.json") && err.contains("tokenizer.pkl"),
        "{err}"
    );
}
