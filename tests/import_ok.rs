//! Imports that succeed: samples, upstream shapes, encodings, formats, reject ratios.

use crate::common::Env;

fn manifest(env: &Env, name: &str) -> serde_json::Value {
    let out = env.run(&["catalog", "show", name, "--json"]).ok();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn samples_import_and_query() {
    let env = Env::new();
    let first = env.run(&["samples", "import"]).ok();
    assert!(
        first.stderr.contains("published sample_mc@1 (500 rows"),
        "{}",
        first.stderr
    );
    let again = env.run(&["samples", "import"]).ok();
    assert!(
        again.stderr.contains("sample_mc@1 is up to date"),
        "{}",
        again.stderr
    );
    let mut names = env.datasets();
    names.sort();
    assert_eq!(
        names,
        [
            "sample_conversations@1",
            "sample_documents@1",
            "sample_math@1",
            "sample_mc@1"
        ]
    );
    for (name, rows) in [
        ("sample_conversations", 150),
        ("sample_mc", 500),
        ("sample_math", 300),
        ("sample_documents", 75),
    ] {
        let m = manifest(&env, name);
        assert_eq!(m["rows"], rows, "{name}");
        assert_eq!(m["source"]["type"], "local");
        assert_eq!(
            m["source"]["files"][0]["sha256"].as_str().unwrap().len(),
            64
        );
    }
    let q = env
        .run(&[
            "sql",
            "SELECT kind, count(*) AS n FROM catalog GROUP BY kind ORDER BY kind",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(
        q.stdout,
        "kind,n\nconversation,1\ndocument,1\nmath,1\nmc,1\n"
    );
    // Nested conversation columns are queryable.
    let q = env
        .run(&[
            "sql",
            "SELECT count(*) AS n FROM sample_conversations WHERE messages[1]['role'] = 'user'",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(q.stdout, "n\n150\n");
    let table = env
        .run(&["sql", "SELECT question FROM sample_mc LIMIT 2"])
        .ok();
    assert!(
        table.stdout.contains("主に子ども向けのもので"),
        "{}",
        table.stdout
    );
}

#[test]
fn upstream_shapes_and_formats() {
    let env = Env::new();
    let sharegpt = env.file("sg.jsonl", "{\"id\":\"s1\",\"conversations\":[{\"from\":\"human\",\"value\":\"質問\"},{\"from\":\"gpt\",\"value\":\"回答\"}]}\n");
    env.import(&sharegpt, "conversation", "sharegpt", &[]).ok();
    let alpaca = env.file("alpaca.json", "[{\"instruction\":\"翻訳して\",\"input\":\"cat\",\"output\":\"猫\"},\n{\"instruction\":\"挨拶して\",\"input\":\"\",\"output\":\"こんにちは\"}]");
    env.import(&alpaca, "conversation", "alpaca", &[]).ok();
    let q = env
        .run(&[
            "sql",
            "SELECT messages[1]['parts'][1]['text'] AS u FROM alpaca ORDER BY id",
            "--format",
            "jsonl",
        ])
        .ok();
    assert!(q.stdout.contains("翻訳して\\n\\ncat"), "{}", q.stdout);
    // JMMLU-style: CSV without header, with a BOM, mapped.
    let jmmlu = env.file("jmmlu.csv", "\u{feff}\"S_5 の指数は？\",8,2,24,120,C\n\"次のうち正しいものは\n（複数行）\",あ,い,う,え,A\n");
    env.import(
        &jmmlu,
        "mc",
        "jmmlu",
        &[
            "--no-header",
            "--map",
            "question=0",
            "--map",
            "choices=1,2,3,4",
            "--map",
            "answer=5",
        ],
    )
    .ok();
    let q = env
        .run(&[
            "sql",
            "SELECT answer, choices[1] AS c FROM jmmlu ORDER BY id",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(q.stdout, "answer,c\n2,8\n0,あ\n");
    // MGSM-style TSV with thousands separators; GSM8K-style answers.
    let mgsm = env.file(
        "mgsm.tsv",
        "ジャネットのアヒルは…？\t18\n合計はいくら？\t2,125\n",
    );
    env.import(
        &mgsm,
        "math",
        "mgsm",
        &[
            "--no-header",
            "--map",
            "question=0",
            "--map",
            "answer=1",
            "--eval-only",
        ],
    )
    .ok();
    let q = env
        .run(&[
            "sql",
            "SELECT answer FROM mgsm ORDER BY id",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(q.stdout, "answer\n18\n2125\n");
    assert_eq!(manifest(&env, "mgsm")["eval_only"], true);
    // gzip, detected by magic bytes.
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all("{\"text\":\"圧縮された文書\"}\n".as_bytes())
        .unwrap();
    let gzp = env.file("docs.jsonl.gz", gz.finish().unwrap());
    env.import(&gzp, "document", "gzdocs", &[]).ok();
    // Shift_JIS with --encoding.
    let sjis = encoding_rs::SHIFT_JIS
        .encode("{\"text\":\"吾輩は猫である。\"}\n")
        .0
        .into_owned();
    let p = env.file("sjis.jsonl", sjis);
    env.import(&p, "document", "sjis", &["--encoding", "shift_jis"])
        .ok();
    let q = env
        .run(&["sql", "SELECT text FROM sjis", "--format", "csv"])
        .ok();
    assert_eq!(q.stdout, "text\n吾輩は猫である。\n");
    // Parquet round trip through `sql --format parquet`.
    let out = env.dir.path().join("mc.parquet");
    env.run(&[
        "sql",
        "SELECT * FROM jmmlu",
        "--format",
        "parquet",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    env.import(&out, "mc", "jmmlu_copy", &[]).ok();
    assert_eq!(manifest(&env, "jmmlu_copy")["rows"], 2);
}

#[test]
fn reject_ratio_and_rejects_table() {
    let env = Env::new();
    let p = env.file(
        "mixed.jsonl",
        "{\"text\":\"a\"}\n{\"text\":\"\"}\nnot json\n{\"text\":\"b\"}\n",
    );
    let refused = env.import(&p, "document", "mixed", &["--max-reject-ratio", "0.4"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("nothing published"),
        "{}",
        refused.stderr
    );
    let run = env
        .import(&p, "document", "mixed", &["--max-reject-ratio", "0.5"])
        .ok();
    assert!(
        run.stderr.contains("read 4, ok 2, rejected 2"),
        "{}",
        run.stderr
    );
    let q = env
        .run(&[
            "sql",
            "SELECT line, reason FROM rejects.\"mixed@1\" ORDER BY line",
            "--format",
            "csv",
        ])
        .ok();
    let lines: Vec<&str> = q.stdout.lines().collect();
    assert_eq!(lines[0], "line,reason");
    assert!(lines[1].starts_with("2,empty text"), "{}", q.stdout);
    assert!(lines[2].starts_with("3,invalid JSON"), "{}", q.stdout);
    assert_eq!(manifest(&env, "mixed")["rejects"], 2);
}

#[test]
fn catalog_verbs() {
    let env = Env::new();
    let p = env.file("d.jsonl", "{\"text\":\"一\"}\n");
    env.import(&p, "document", "docs", &[]).ok();
    env.import(&p, "document", "docs", &[]).ok();
    let list = env.run(&["catalog", "list"]).ok();
    assert!(
        list.stdout.contains("docs") && list.stdout.contains("│ 2 "),
        "{}",
        list.stdout
    );
    let show = env.run(&["catalog", "show", "docs@1"]).ok();
    assert!(
        show.stdout.contains("docs@1") && show.stdout.contains("versions:  1, 2"),
        "{}",
        show.stdout
    );
    let missing = env.run(&["catalog", "show", "docs@7"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("has no version 7 (versions: 1, 2)"),
        "{}",
        missing.stderr
    );
    env.run(&["sql", "SELECT * FROM docs", "--save", "docs_copy"])
        .ok();
    let blocked = env.run(&["catalog", "rm", "docs"]);
    assert_eq!(blocked.code, 2);
    assert!(
        blocked.stderr.contains("parent of docs_copy@1"),
        "{}",
        blocked.stderr
    );
    env.run(&["catalog", "rm", "docs@1"]).ok();
    env.run(&["catalog", "rm", "docs", "--force"]).ok();
    assert_eq!(env.datasets(), ["docs_copy@1"]);
    env.import(&p, "document", "docs", &[]).ok();
    assert_eq!(
        manifest(&env, "docs")["version"],
        3,
        "version numbers are never reused"
    );
}

/// `--compression` > `NJP_COMPRESSION` > `njp.toml` > zstd: the codec of every column chunk of
/// the published files (a Parquet file records the codec, not the zstd level); a bad value is
/// an error naming where it came from.
#[test]
fn compression_follows_the_config_precedence() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let env = Env::new();
    let data = env.file(
        "docs.jsonl",
        (0..50)
            .map(|i| format!("{{\"id\": \"{i}\", \"text\": \"文書その{i}です。\"}}\n"))
            .collect::<String>(),
    );
    let codecs = |name: &str| -> Vec<String> {
        let c = njp_catalog::Catalog::open(env.home()).unwrap();
        let m = c.resolve(name).unwrap();
        let mut out = Vec::new();
        for path in c.data_files(&m) {
            let r = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            for rg in r.metadata().row_groups() {
                out.extend(rg.columns().iter().map(|col| {
                    let c = format!("{:?}", col.compression());
                    c.split('(').next().unwrap().to_string()
                }));
            }
        }
        out.sort();
        out.dedup();
        out
    };
    let import = |name: &str, env_codec: Option<&str>, extra: &[&str]| {
        let mut cmd = env.cmd();
        if let Some(c) = env_codec {
            cmd.env("NJP_COMPRESSION", c);
        }
        let out = cmd
            .args(["import", data.to_str().unwrap(), "--kind", "document"])
            .args(["--name", name, "--license", "CC-BY-4.0"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = import("d_default", None, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(codecs("d_default"), ["ZSTD"]);

    env.file("njp.toml", "compression = \"none\"\n");
    let (code, err) = import("d_toml", None, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(codecs("d_toml"), ["UNCOMPRESSED"]);

    let (code, err) = import("d_env", Some("snappy"), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(codecs("d_env"), ["SNAPPY"]);

    let (code, err) = import("d_flag", Some("snappy"), &["--compression", "zstd:1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(codecs("d_flag"), ["ZSTD"]);

    // All four read back the same records.
    let q = env
        .run(&[
            "sql",
            "SELECT (SELECT count(*) FROM d_default) + (SELECT count(*) FROM d_toml) \
             + (SELECT count(*) FROM d_env) + (SELECT count(*) FROM d_flag) AS n",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(q.stdout, "n\n200\n");

    let (code, err) = import("d_bad", None, &["--compression", "lzo"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--compression") && err.contains("unknown compression `lzo`"),
        "{err}"
    );
    env.file("njp.toml", "compression = \"zstd:30\"\n");
    let (code, err) = import("d_bad", None, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("njp.toml") && err.contains("out of range"),
        "{err}"
    );
}
