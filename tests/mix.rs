//! `njp mix` and `njp audit`: the tiny recipe end to end (build, audit, train mid), byte-identical
//! rebuilds, every quantity type, refusals, decontamination of a planted JCommonsenseQA valid
//! question, hand-counted audit numbers and the `error` policy.

use std::path::{Path, PathBuf};

use crate::common::Env;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn tiny_recipe() -> String {
    std::fs::read_to_string(repo("mix/recipes/tiny-ja.toml")).unwrap()
}

fn manifest(env: &Env, name: &str, version: u32) -> serde_json::Value {
    let p = env
        .home()
        .join("datasets")
        .join(name)
        .join(version.to_string())
        .join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn file_hashes(m: &serde_json::Value) -> Vec<String> {
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["sha256"].as_str().unwrap().to_string())
        .collect()
}

fn show_json(env: &Env, recipe: &Path) -> serde_json::Value {
    let r = env
        .run(&["mix", "show", &recipe.display().to_string(), "--json"])
        .ok();
    serde_json::from_str(&r.stdout).unwrap()
}

fn component<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn tiny_recipe_builds_audits_and_feeds_mid() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let recipe = repo("mix/recipes/tiny-ja.toml").display().to_string();
    let show = env.run(&["mix", "show", &recipe]).ok();
    assert!(show.stdout.contains("mixture tiny_ja"), "{}", show.stdout);
    assert!(
        show.stdout.contains("Apache-2.0") && show.stdout.contains("CC-BY-SA-4.0"),
        "license set printed: {}",
        show.stdout
    );
    assert!(env.datasets().iter().all(|d| !d.starts_with("tiny_ja")));

    let b = env.run(&["mix", "build", &recipe]).ok();
    assert!(b.stderr.contains("published tiny_ja@1"), "{}", b.stderr);
    let ds = env.datasets();
    for d in ["tiny_ja@1", "tiny_ja_val@1", "tiny_ja_blend@1"] {
        assert!(ds.contains(&d.to_string()), "{d} in {ds:?}");
    }
    let m = manifest(&env, "tiny_ja", 1);
    assert_eq!(m["kind"], "conversation");
    assert_eq!(m["license"], "Apache-2.0 AND CC-BY-SA-4.0");
    assert_eq!(m["parameters"]["mix"]["recipe"]["name"], "tiny_ja");
    assert_eq!(
        m["parameters"]["mix"]["recipe_hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let parents: Vec<String> = m["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}@{}", p["name"].as_str().unwrap(), p["version"]))
        .collect();
    assert_eq!(
        parents,
        ["sample_conversations@1", "sample_math@1", "sample_mc@1"]
    );
    assert!(m["stats"]["audit"]["overall"]["p50"].as_u64().unwrap() > 0);

    // The blend index is queryable and matches the mixture row for row.
    let q = env
        .run(&[
            "sql",
            "SELECT split, component, count(*) AS n, max(epoch) AS e FROM tiny_ja_blend GROUP BY split, component ORDER BY split, component",
            "--format",
            "csv",
        ])
        .ok();
    assert!(q.stdout.contains("train,chat,"), "{}", q.stdout);
    assert!(q.stdout.contains("train,mc,200,0"), "{}", q.stdout);
    let q = env
        .run(&[
            "sql",
            "SELECT count(*) FROM tiny_ja t JOIN tiny_ja_blend b ON t.id = b.component || ':' || CAST(b.epoch AS VARCHAR) || ':' || b.row_id WHERE b.split = 'train'",
            "--format",
            "csv",
        ])
        .ok();
    assert!(
        q.stdout.lines().nth(1).unwrap().parse::<u64>().ok() == m["rows"].as_u64(),
        "{} vs {}",
        q.stdout,
        m["rows"]
    );

    // Building again is a no-op.
    let again = env.run(&["mix", "build", &recipe]).ok();
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);

    // Audit: table, histogram image, stats stored.
    let a = env.run(&["audit", "tiny_ja", "--svg", "tiny.svg"]).ok();
    assert!(
        a.stdout.contains("p99") && a.stdout.contains("crop (nanochat v1)"),
        "{}",
        a.stdout
    );
    assert!(a.stdout.contains('█'), "{}", a.stdout);
    let svg = std::fs::read_to_string(env.dir.path().join("tiny.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("max_seq_len 2048"));
    let listed = env.run(&["catalog", "list", "--all", "--json"]).ok();
    assert!(listed.stdout.contains("\"audit\""));

    // Train: a tiny base model, then mid on the mixture by name.
    let base = env.dir.path().join("base").display().to_string();
    env.run(&[
        "train",
        "base",
        "--data",
        "sample_documents",
        "--out",
        &base,
        "--steps",
        "2",
        "--depth",
        "1",
        "--seq-len",
        "64",
        "--device-batch-size",
        "2",
        "--total-batch-size",
        "128",
        "--tokenizer",
        "byte",
        "--eval-batches",
        "1",
    ])
    .ok();
    let mid = env.dir.path().join("mid").display().to_string();
    let r = env
        .run(&[
            "train",
            "mid",
            "--data",
            "tiny_ja",
            "--val-data",
            "tiny_ja_val",
            "--from",
            &base,
            "--out",
            &mid,
            "--steps",
            "2",
            "--device-batch-size",
            "2",
            "--total-batch-size",
            "128",
            "--tokenizer",
            "byte",
            "--eval-batches",
            "1",
        ])
        .ok();
    assert!(r.stderr.contains("finished at step 2"), "{}", r.stderr);
}

#[test]
fn builds_are_byte_identical_and_seeded() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let recipe = repo("mix/recipes/tiny-ja.toml").display().to_string();
    env.run(&["mix", "build", &recipe]).ok();
    env.run(&["mix", "build", &recipe, "--force"]).ok();
    for name in ["tiny_ja", "tiny_ja_val", "tiny_ja_blend"] {
        let (a, b) = (manifest(&env, name, 1), manifest(&env, name, 2));
        assert_eq!(
            file_hashes(&a),
            file_hashes(&b),
            "{name} differs between builds"
        );
    }
    let other = env.file(
        "seed.toml",
        tiny_recipe().replace("seed = 20251013", "seed = 7"),
    );
    env.run(&["mix", "build", &other.display().to_string()])
        .ok();
    let (a, c) = (manifest(&env, "tiny_ja", 1), manifest(&env, "tiny_ja", 3));
    assert_ne!(
        file_hashes(&a),
        file_hashes(&c),
        "a different seed gives a different blend"
    );
    assert_eq!(a["rows"], c["rows"]);
}

#[test]
fn each_quantity_type() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let r = env.file(
        "q.toml",
        r#"
name = "q"
seed = 1
tokenizer = "byte"
max_seq_len = 4096
truncation = "truncate"
[decontamination]
eval_only = false
[[component]]
name = "mc"
sql = "SELECT * FROM sample_mc WHERE length(question) <= 20"
epochs = 2.5
[[component]]
name = "rows"
sql = "SELECT * FROM sample_mc WHERE length(question) > 20"
rows = 37
[[component]]
name = "math"
sql = "SELECT * FROM sample_math"
tokens = 20000
[[component]]
name = "chat"
sql = "SELECT * FROM sample_conversations"
weight = 0.25
"#,
    );
    let plan = show_json(&env, &r);
    let mc = component(&plan, "mc");
    let pool = mc["pool_rows"].as_u64().unwrap();
    assert_eq!(
        mc["rows"].as_u64().unwrap(),
        (pool as f64 * 2.5).round() as u64
    );
    assert_eq!(mc["unique_rows"], mc["pool_rows"]);
    assert_eq!(component(&plan, "rows")["rows"], 37);
    let math = component(&plan, "math");
    let t = math["tokens"].as_u64().unwrap();
    assert!((20000..20000 + 800).contains(&t), "tokens {t}");
    let chat = component(&plan, "chat");
    let fixed: u64 = ["mc", "rows", "math"]
        .iter()
        .map(|c| component(&plan, c)["rows"].as_u64().unwrap())
        .sum();
    let w = chat["rows"].as_u64().unwrap();
    assert_eq!(w, (0.25 * fixed as f64 / 0.75).round() as u64);
    assert!((chat["share_rows"].as_f64().unwrap() - 0.25).abs() < 0.01);
    assert_eq!(plan["train_rows"].as_u64().unwrap(), fixed + w);
}

#[test]
fn refuses_eval_only_and_unknown_licenses() {
    let env = Env::new();
    let fixture = repo("mix/tests/data/jcommonsenseqa-v1.3-valid-sample.jsonl");
    env.import(&fixture, "mc", "jcqa_valid", &["--eval-only"])
        .ok();
    let args: Vec<String> = [
        "import",
        &fixture.display().to_string(),
        "--kind",
        "mc",
        "--name",
        "mystery",
        "--license",
        "unknown",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    env.run(&args).ok();
    let recipe = |table: &str, allow: &str| {
        format!(
            "name = \"r\"\nseed = 1\ntokenizer = \"byte\"\nmax_seq_len = 4096\n{allow}\n[[component]]\nname = \"c\"\nsql = \"SELECT * FROM {table}\"\nepochs = 1.0\n"
        )
    };
    let r = env.file("a.toml", recipe("jcqa_valid", ""));
    let out = env.run(&["mix", "build", &r.display().to_string()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("jcqa_valid@1") && out.stderr.contains("evaluation-only"),
        "{}",
        out.stderr
    );
    let r = env.file("b.toml", recipe("mystery", ""));
    let out = env.run(&["mix", "build", &r.display().to_string()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("license is `unknown`"),
        "{}",
        out.stderr
    );
    // (The eval-only set is the same file, so decontamination is off here.)
    let r = env.file(
        "c.toml",
        recipe(
            "mystery",
            "allow_unknown_license = true\n[decontamination]\neval_only = false",
        ),
    );
    let out = env.run(&["mix", "show", &r.display().to_string()]).ok();
    assert!(
        out.stdout.contains("mixture license: unknown"),
        "{}",
        out.stdout
    );
    assert!(!env.datasets().iter().any(|d| d.starts_with("r@")));
}

#[test]
fn decontamination_catches_a_planted_valid_question() {
    let env = Env::new();
    let fixture = repo("mix/tests/data/jcommonsenseqa-v1.3-valid-sample.jsonl");
    env.import(&fixture, "mc", "jcqa_valid", &["--eval-only"])
        .ok();
    // Training data: JCommonsenseQA train rows plus valid item 8939 with its punctuation and
    // width changed (full-width ？ → ASCII ?, an added 、, half-width digits → full width).
    let mut train: String = std::fs::read_to_string(repo("samples/mc.jsonl"))
        .unwrap()
        .lines()
        .take(100)
        .map(|l| format!("{l}\n"))
        .collect();
    train.push_str(
        "{\"q_id\": 990001, \"question\": \"電子機器で使用される、最も主要な電子回路基板の事を　なんと言う?\", \"choice0\": \"掲示板\", \"choice1\": \"パソコン\", \"choice2\": \"マザーボード\", \"choice3\": \"ハードディスク\", \"choice4\": \"まな板\", \"label\": 2}\n",
    );
    // 8946 with half-width katakana (ﾊﾟｿｺﾝ) and its 、 dropped; 8966 with full-width digits.
    train.push_str(
        "{\"q_id\": 990002, \"question\": \"持ち運び使いまわりの良さに富んだﾊﾟｿｺﾝをなんという!!\", \"choice0\": \"デスクトップ\", \"choice1\": \"ノートパソコン\", \"choice2\": \"タブレット\", \"choice3\": \"スマホ\", \"choice4\": \"サーバー\", \"label\": 1}\n",
    );
    train.push_str(
        "{\"q_id\": 990003, \"question\": \"北海道札幌市北区北８条西５丁目に本部を置く日本の国立大学を何というか?\", \"choice0\": \"北海道大学\", \"choice1\": \"札幌大学\", \"choice2\": \"東京大学\", \"choice3\": \"小樽商科大学\", \"choice4\": \"旭川医科大学\", \"label\": 0}\n",
    );
    let train = env.file("train.jsonl", train);
    env.import(&train, "mc", "my_mc", &[]).ok();
    let r = env.file(
        "d.toml",
        "name = \"d\"\nseed = 3\ntokenizer = \"byte\"\nmax_seq_len = 4096\n[[component]]\nname = \"mc\"\nsql = \"SELECT * FROM my_mc\"\nepochs = 1.0\n",
    );
    let plan = show_json(&env, &r);
    let removed: Vec<(String, String)> = plan["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["reason"] == "contaminated")
        .map(|x| {
            (
                x["row_id"].as_str().unwrap().to_string(),
                x["eval_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (row, item) in [("990001", "8939"), ("990002", "8946"), ("990003", "8966")] {
        assert!(
            removed.contains(&(row.to_string(), item.to_string())),
            "{row} should hit {item}: {removed:?}"
        );
    }
    assert!(
        removed.iter().all(|(row, _)| row.starts_with("99")),
        "no false positives among the train rows: {removed:?}"
    );
    assert_eq!(plan["decontamination"]["eval_datasets"][0], "jcqa_valid@1");
    assert_eq!(
        component(&plan, "mc")["rows"].as_u64().unwrap(),
        103 - removed.len() as u64
    );
    // The build keeps the removed rows, with the item they hit, as the mixture's rejects.
    env.run(&["mix", "build", &r.display().to_string()]).ok();
    let q = env
        .run(&[
            "sql",
            "SELECT row_id, eval_dataset, eval_id FROM rejects.\"d@1\" ORDER BY row_id",
            "--format",
            "csv",
        ])
        .ok();
    assert!(
        q.stdout.contains("990001,jcqa_valid@1,8939"),
        "{}",
        q.stdout
    );
}

#[test]
fn audit_matches_a_hand_count_and_error_policy_fails() {
    let env = Env::new();
    // Byte tokenizer: a user turn is 2 + bytes, an assistant turn 2 + bytes (supervised: bytes +
    // <|assistant_end|>), plus one <|bos|>.
    //  a: "ab" / "cde"                    → 1+4+5 = 10 tokens, 4 supervised
    //  b: "ab" / "cd" / "e" / "fgh"        → 1+4+4+3+5 = 17, 3+4 = 7 supervised
    //  c: "x" / "y"×20                     → 1+3+22 = 26, 21 supervised
    let conv = |id: &str, turns: &[&str]| {
        let msgs: Vec<String> = turns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                format!("{{\"role\": \"{role}\", \"content\": \"{t}\"}}")
            })
            .collect();
        format!(
            "{{\"id\": \"{id}\", \"messages\": [{}]}}\n",
            msgs.join(", ")
        )
    };
    let y20 = "y".repeat(20);
    let data = [
        conv("a", &["ab", "cde"]),
        conv("b", &["ab", "cd", "e", "fgh"]),
        conv("c", &["x", &y20]),
    ]
    .concat();
    let f = env.file("hand.jsonl", data);
    env.import(&f, "conversation", "hand", &[]).ok();
    let r = env.run(&[
        "audit",
        "hand",
        "--tokenizer",
        "byte",
        "--max-seq-len",
        "12",
        "--json",
        "--svg",
        "hand.svg",
    ]);
    assert_eq!(
        r.code, 1,
        "policy error + rows over the limit: {}",
        r.stderr
    );
    let a: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let o = &a["overall"];
    let g = |k: &str| o[k].as_u64().unwrap();
    assert_eq!(
        (
            g("rows"),
            g("tokens"),
            g("supervised"),
            g("p50"),
            g("max"),
            g("over_limit")
        ),
        (3, 53, 32, 17, 26, 2)
    );
    let cost = |p: &str, k: &str| o["policies"][p][k].as_u64().unwrap();
    assert_eq!(
        (
            cost("drop", "rows_dropped"),
            cost("drop", "tokens_cut"),
            cost("drop", "supervised_lost")
        ),
        (2, 43, 28)
    );
    // truncate keeps b's first exchange (9 tokens, 3 supervised) and drops c.
    assert_eq!(
        (
            cost("truncate", "rows_dropped"),
            cost("truncate", "tokens_cut"),
            cost("truncate", "supervised_lost")
        ),
        (1, 8 + 26, 4 + 21)
    );
    // crop at 12: b keeps c, d, <|assistant_end|> (3 of 7); c keeps 7 y's of 21.
    assert_eq!(
        (
            cost("crop", "tokens_cut"),
            cost("crop", "supervised_lost"),
            cost("crop", "rows_zero_supervised")
        ),
        (5 + 14, 4 + 14, 0)
    );
    assert!(env.dir.path().join("hand.svg").is_file());
    let ok = env.run(&[
        "audit",
        "hand",
        "--tokenizer",
        "byte",
        "--max-seq-len",
        "12",
        "--policy",
        "drop",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let listed = env.run(&["catalog", "list", "--all", "--json"]).ok();
    assert!(
        listed.stdout.contains("\"over_limit\""),
        "audit stored as stats"
    );

    // The `error` policy fails the build when a selected row is over the limit.
    env.run(&["samples", "import"]).ok();
    let strict = env.file(
        "strict.toml",
        tiny_recipe()
            .replace("truncation = \"truncate\"", "truncation = \"error\"")
            .replace("max_seq_len = 2048", "max_seq_len = 512"),
    );
    let strict = strict.display().to_string();
    let b = env.run(&["mix", "build", &strict]);
    assert_eq!(b.code, 2, "{}", b.stderr);
    assert!(
        b.stderr.contains("exceed max_seq_len 512") && b.stderr.contains("component `chat`"),
        "{}",
        b.stderr
    );
    assert!(!env.datasets().iter().any(|d| d.starts_with("tiny_ja")));
    let staging: Vec<_> = std::fs::read_dir(env.home().join("staging"))
        .unwrap()
        .collect();
    assert!(
        staging.is_empty(),
        "a failed build leaves nothing behind: {staging:?}"
    );
    let a = env.run(&["audit", &strict]);
    assert_eq!(a.code, 1, "{}", a.stderr);
}

/// The tables in a recipe component's SQL (`FROM x` / `JOIN x`).
fn tables_in(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("from") || w[0].eq_ignore_ascii_case("join"))
        .map(|w| w[1].trim_end_matches([',', ';', ')']).to_string())
        .collect()
}

#[test]
fn nanochat_scale_recipes_read_what_the_ingest_recipes_publish() {
    let mut published = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(repo("datasets/recipes")).unwrap() {
        let path = e.unwrap().path();
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = v["dataset"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", path.display()));
        published.insert(name.to_string());
    }
    for recipe in ["mid-ja.toml", "sft-ja.toml"] {
        let path = repo(&format!("mix/recipes/{recipe}"));
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let components = v["component"].as_array().unwrap();
        assert!(components.len() >= 3, "{recipe}");
        for c in components {
            let tables = tables_in(c["sql"].as_str().unwrap());
            assert!(!tables.is_empty(), "{recipe}: {c}");
            for t in tables {
                assert!(
                    published.contains(&t),
                    "{recipe}: component `{}` reads `{t}`, which no recipe in datasets/recipes/ publishes",
                    c["name"]
                );
            }
        }
    }
}
