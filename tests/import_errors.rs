//! Bad inputs: each names the file and the line or row, exits with the right code, does not
//! panic, and publishes nothing.

use crate::common::Env;

struct Case {
    name: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    kind: &'static str,
    extra: Vec<&'static str>,
    code: i32,
    /// Substrings the error output must contain (besides the file name).
    expect: Vec<&'static str>,
}

fn case(
    name: &'static str,
    file: &'static str,
    bytes: impl Into<Vec<u8>>,
    kind: &'static str,
    code: i32,
    expect: &[&'static str],
) -> Case {
    Case {
        name,
        file,
        bytes: bytes.into(),
        kind,
        extra: Vec::new(),
        code,
        expect: expect.to_vec(),
    }
}

const OK_CONV: &str = r#"{"messages":[{"role":"user","content":"こんにちは"},{"role":"assistant","content":"こんにちは！"}]}"#;

/// A valid conversation Parquet file, written with the canonical schema.
fn valid_parquet() -> Vec<u8> {
    use njp_datasets::{Conversation, Kind, Message, Record, Role};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.parquet");
    let mut sink = njp_datasets::io::ParquetSink::create(&path, Kind::Conversation).unwrap();
    for i in 0..50 {
        let c = Conversation {
            id: i.to_string(),
            messages: vec![
                Message::new(Role::User, "質問"),
                Message::new(Role::Assistant, format!("答え{i}")),
            ],
            source: String::new(),
            meta: None,
        };
        sink.push(&Record::Conversation(c)).unwrap();
    }
    sink.finish().unwrap();
    std::fs::read(path).unwrap()
}

fn cases() -> Vec<Case> {
    let sjis = encoding_rs::SHIFT_JIS
        .encode("{\"text\":\"吾輩は猫である。名前はまだ無い。\"}\n")
        .0
        .into_owned();
    let deep = format!("{{\"messages\":{}{}}}\n", "[".repeat(300), "]".repeat(300));
    let mut truncated_parquet = valid_parquet();
    truncated_parquet.truncate(truncated_parquet.len() / 2);
    let mut with_map = case(
        "mapped field missing",
        "map.jsonl",
        "{\"body\":\"x\"}\n",
        "document",
        1,
        &["map.jsonl:1", "`content`"],
    );
    with_map.extra = vec!["--map", "text=content"];
    let mut bad_license = case(
        "invalid license",
        "lic.jsonl",
        format!("{OK_CONV}\n"),
        "conversation",
        2,
        &["CC BY SA", "SPDX"],
    );
    bad_license.extra = vec!["--license", "CC BY SA"];
    let mut bad_encoding = case(
        "unknown encoding",
        "enc.jsonl",
        format!("{OK_CONV}\n"),
        "conversation",
        2,
        &["unknown encoding `klingon`"],
    );
    bad_encoding.extra = vec!["--encoding", "klingon"];
    vec![
        case(
            "malformed JSON line",
            "bad.jsonl",
            format!("{OK_CONV}\n{{\"messages\": [\n"),
            "conversation",
            1,
            &["bad.jsonl:2", "invalid JSON"],
        ),
        case(
            "missing messages",
            "missing.jsonl",
            "{\"foo\": 1}\n",
            "conversation",
            1,
            &["missing.jsonl:1", "no conversation fields"],
        ),
        case(
            "messages not a list",
            "mistyped.jsonl",
            "{\"messages\": \"hi\"}\n",
            "conversation",
            1,
            &["mistyped.jsonl:1", "expected an array"],
        ),
        case(
            "unknown role",
            "role.jsonl",
            r#"{"messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#,
            "conversation",
            1,
            &["role.jsonl:1", "unsupported role `tool`"],
        ),
        case(
            "role order",
            "order.jsonl",
            r#"{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}"#,
            "conversation",
            1,
            &["order.jsonl:1", "expected role assistant"],
        ),
        case(
            "ends with user",
            "ends.jsonl",
            r#"{"messages":[{"role":"user","content":"a"}]}"#,
            "conversation",
            1,
            &["ends.jsonl:1", "end with an assistant"],
        ),
        case(
            "empty message text",
            "empty_text.jsonl",
            r#"{"messages":[{"role":"user","content":""},{"role":"assistant","content":"b"}]}"#,
            "conversation",
            1,
            &["empty_text.jsonl:1", "empty text"],
        ),
        case(
            "tool part in a user turn",
            "tool_user.jsonl",
            r#"{"messages":[{"role":"user","content":[{"type":"python","text":"1+1"}]},{"role":"assistant","content":"2"}]}"#,
            "conversation",
            1,
            &["tool_user.jsonl:1", "outside an assistant turn"],
        ),
        case(
            "invalid UTF-8",
            "latin1.jsonl",
            b"{\"text\":\"ok\"}\n{\"text\":\"caf\xe9\"}\n".to_vec(),
            "document",
            2,
            &["latin1.jsonl", "byte 26", "line 2"],
        ),
        case(
            "Shift_JIS without --encoding",
            "sjis.jsonl",
            sjis,
            "document",
            2,
            &["sjis.jsonl", "invalid UTF-8 at byte", "--encoding"],
        ),
        case(
            "empty file",
            "empty.jsonl",
            "",
            "document",
            2,
            &["empty.jsonl", "file is empty"],
        ),
        case(
            "only blank lines",
            "blank.jsonl",
            "\n\n  \n",
            "document",
            1,
            &["no valid rows"],
        ),
        case(
            "trailing garbage",
            "trailing.jsonl",
            "{\"text\":\"a\"} xyz\n",
            "document",
            1,
            &["trailing.jsonl:1", "trailing characters"],
        ),
        case(
            "duplicate ids",
            "dup.jsonl",
            "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"a\",\"text\":\"y\"}\n",
            "document",
            1,
            &["dup.jsonl:2", "duplicate id `a`", "dup.jsonl:1"],
        ),
        case(
            "deep nesting",
            "deep.jsonl",
            deep,
            "conversation",
            1,
            &["deep.jsonl:1", "recursion limit"],
        ),
        case(
            "lone surrogate",
            "surrogate.jsonl",
            "{\"text\":\"\\ud800x\"}\n",
            "document",
            1,
            &["surrogate.jsonl:1", "surrogate"],
        ),
        case(
            "truncated Parquet",
            "trunc.parquet",
            truncated_parquet,
            "conversation",
            2,
            &["trunc.parquet", "Parquet"],
        ),
        case(
            "CSV unclosed quote",
            "quote.csv",
            "question,choice0,choice1,label\n\"ok\",a,b,0\n\"broken,a,b,1\nnext,a,b,0\n",
            "mc",
            1,
            &["quote.csv:3", "fields, expected 4"],
        ),
        case(
            "TSV field count",
            "fields.tsv",
            "question\tanswer\n1+1は？\t2\n2+2は？\t4\textra\n",
            "math",
            1,
            &["fields.tsv:3", "3 fields, expected 2"],
        ),
        case(
            "MC answer out of range",
            "range.jsonl",
            r#"{"question":"q","choices":["a","b"],"answer":5}"#,
            "mc",
            1,
            &["range.jsonl:1", "out of range"],
        ),
        case(
            "MC duplicate choices",
            "dupchoice.jsonl",
            r#"{"question":"q","choice0":"犬","choice1":"猫","choice2":"犬","label":0}"#,
            "mc",
            1,
            &["dupchoice.jsonl:1", "are the same"],
        ),
        case(
            "MC label not an index",
            "label.jsonl",
            r#"{"question":"q","choices":["a","b"],"answer":"zzz"}"#,
            "mc",
            1,
            &["label.jsonl:1", "neither an index"],
        ),
        case(
            "math wrong annotation",
            "wrong.jsonl",
            r#"{"question":"q","answer":"3 + 4 = <<3+4=8>>8\n#### 8"}"#,
            "math",
            1,
            &["wrong.jsonl:1", "is wrong"],
        ),
        case(
            "math unbalanced annotation",
            "unbal.jsonl",
            r#"{"question":"q","answer":"3 + 4 = <<3+4=7 so 7\n#### 7"}"#,
            "math",
            1,
            &["unbal.jsonl:1", "unbalanced"],
        ),
        case(
            "math non-numeric answer",
            "nonnum.jsonl",
            r#"{"question":"q","answer":"たくさん"}"#,
            "math",
            1,
            &["nonnum.jsonl:1", "not a number"],
        ),
        case(
            "math missing question",
            "noq.jsonl",
            r#"{"answer":"1"}"#,
            "math",
            1,
            &["noq.jsonl:1", "missing field `question`"],
        ),
        case(
            "document empty text",
            "emptydoc.jsonl",
            "{\"text\":\"   \"}\n",
            "document",
            1,
            &["emptydoc.jsonl:1", "empty text"],
        ),
        case(
            "JSON array truncated",
            "arr.json",
            "[\n {\"text\":\"a\"},\n {\"text\":\"b\"",
            "document",
            2,
            &["arr.json", "line 3", "truncated"],
        ),
        case(
            "JSON array trailing garbage",
            "arr2.json",
            "[{\"text\":\"a\"}]\n}",
            "document",
            2,
            &["arr2.json", "trailing characters"],
        ),
        case(
            "JSON array element not an object",
            "arr3.json",
            "[{\"text\":\"a\"}, 5]",
            "document",
            1,
            &["arr3.json:1", "expected a JSON object"],
        ),
        case(
            "corrupt gzip",
            "bad.jsonl.gz",
            b"\x1f\x8b\x08\x00garbage-not-deflate".to_vec(),
            "document",
            2,
            &["bad.jsonl.gz"],
        ),
        case(
            "unknown extension",
            "data.xyz",
            "{}",
            "document",
            2,
            &["data.xyz", "--format"],
        ),
        with_map,
        bad_license,
        bad_encoding,
    ]
}

#[test]
fn bad_inputs_are_reported_and_nothing_is_published() {
    let env = Env::new();
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let path = env.file(c.file, &c.bytes);
        let mut extra: Vec<&str> = c.extra.clone();
        let license_given = extra.contains(&"--license");
        let mut args = vec![
            "import".to_string(),
            path.display().to_string(),
            "--kind".into(),
            c.kind.into(),
            "--name".into(),
            "bad".into(),
        ];
        if !license_given {
            extra.extend(["--license", "CC-BY-4.0"]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let run = env.run(&args);
        let mut problems = Vec::new();
        if run.code != c.code {
            problems.push(format!("exit code {} (expected {})", run.code, c.code));
        }
        for e in &c.expect {
            if !run.stderr.contains(e) {
                problems.push(format!("stderr lacks `{e}`"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n--- stderr:\n{}",
                c.name,
                problems.join("; "),
                run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        env.datasets().is_empty(),
        "a bad import published something: {:?}",
        env.datasets()
    );
    let missing = env.run(&[
        "import",
        "does/not/exist.jsonl",
        "--kind",
        "document",
        "--name",
        "x",
        "--license",
        "MIT",
    ]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("does/not/exist.jsonl: no such file"),
        "{}",
        missing.stderr
    );
    let bad_name = env.run(&[
        "import",
        "x.jsonl",
        "--kind",
        "document",
        "--name",
        "Bad-Name",
        "--license",
        "MIT",
    ]);
    assert_eq!(bad_name.code, 2);
    assert!(
        bad_name.stderr.contains("not a valid dataset name"),
        "{}",
        bad_name.stderr
    );
    let dir = env.run(&[
        "import",
        ".",
        "--kind",
        "document",
        "--name",
        "x",
        "--license",
        "MIT",
    ]);
    assert_eq!(dir.code, 2);
    assert!(dir.stderr.contains("is a directory"), "{}", dir.stderr);
    // Leftovers of the refused imports are gone too.
    let staging = env.home().join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging leftovers: {left:?}");
}
