//! `njp recipes`, `njp ingest` and `njp translate` against local HTTP servers (njp-testkit): a
//! Hugging Face hub stand-in reached through `HF_ENDPOINT` and an OpenAI-compatible chat
//! endpoint, both with injected faults.

use std::path::Path;
use std::time::Duration;

use njp_catalog::{Catalog, Manifest, Source};
use njp_datasets::{PartKind, Record};
use njp_testkit::chat::ChatStandIn;
use njp_testkit::hub::HubStandIn;
use njp_testkit::{FaultKind, Server};

use crate::common::{Env, Run};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hub"))
}

struct Hub {
    stand_in: HubStandIn,
    server: Server,
}

fn hub() -> Hub {
    let stand_in = HubStandIn::new();
    stand_in.load_dir(fixtures()).expect("load hub fixtures");
    let server = Server::start(stand_in.clone());
    Hub { stand_in, server }
}

impl Env {
    fn ingest(&self, hub: &Hub, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut c = self.cmd();
        c.arg("ingest")
            .args(args)
            .env("HF_ENDPOINT", hub.server.url())
            .env_remove("HF_TOKEN")
            .env("NJP_HTTP_BACKOFF_MS", "10")
            .env("NJP_HTTP_TIMEOUT", "5");
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().expect("run njp");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "njp panicked:\n{}",
            run.stderr
        );
        run
    }

    fn manifest(&self, name: &str) -> Manifest {
        Catalog::open(self.home()).unwrap().resolve(name).unwrap()
    }

    fn records(&self, name: &str) -> Vec<Record> {
        let c = Catalog::open(self.home()).unwrap();
        let m = c.resolve(name).unwrap();
        c.records(&m).unwrap().map(Result::unwrap).collect()
    }
}

fn recipe_names(env: &Env) -> Vec<String> {
    let out = env.run(&["recipes", "list", "--json"]).ok();
    out.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn recipes_list_and_show() {
    let env = Env::new();
    let names = recipe_names(&env);
    assert!(names.len() >= 20, "{names:?}");
    for want in [
        "llm-jp-magpie-sft-v1.0",
        "kunishou-oasst1-89k-ja",
        "ku-nlp-kuci",
        "jmmlu",
        "mgsm-ja",
        "openmathinstruct-1-ja",
        "abeja-cc-ja",
        "wikipedia-ja",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let table = env.run(&["recipes", "list"]).ok();
    assert!(table.stdout.contains("CC-BY-NC-ND-4.0"), "{}", table.stdout);
    let show = env.run(&["recipes", "show", "jmmlu"]).ok();
    assert!(show.stdout.contains("eval_only = true"), "{}", show.stdout);
    let bad = env.run(&["recipes", "show", "no-such-recipe"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown recipe `no-such-recipe`"),
        "{}",
        bad.stderr
    );
    // A recipe file with a typo is refused with the file and key named.
    let typo = env.file("typo.toml", show.stdout.replace("eval_only", "evalonly"));
    let r = env.run(&["ingest", typo.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("typo.toml") && r.stderr.contains("evalonly"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_recipe_ingests_from_the_hub_stand_in() {
    let env = Env::new();
    let hub = hub();
    // oasst2 first: oasst1 and the oasst1 trees deduplicate against it.
    let mut names = recipe_names(&env);
    names.sort_by_key(|n| {
        (
            n != "llm-jp-oasst2-33k-ja",
            n != "llm-jp-oasst1-21k-ja",
            n.clone(),
        )
    });
    for name in &names {
        let r = env.ingest(&hub, &[name, "--max-reject-ratio", "0.5"], &[]);
        assert_eq!(r.code, 0, "{name}\nstderr:\n{}", r.stderr);
        assert!(r.stderr.contains("published"), "{name}: {}", r.stderr);
    }
    // Provenance: the branch and the commit it resolved to, with file checksums.
    let m = env.manifest("magpie_sft_v1");
    match &m.source {
        Source::Hub {
            repo,
            revision,
            resolved,
            files,
        } => {
            assert_eq!(repo, "llm-jp/magpie-sft-v1.0");
            assert_eq!(revision, "refs/convert/parquet");
            assert_eq!(
                Some(resolved.clone()),
                hub.stand_in
                    .commit_of("llm-jp/magpie-sft-v1.0", "refs/convert/parquet")
            );
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].path, "default/train/0000.parquet");
            assert_eq!(files[0].sha256.len(), 64);
        }
        other => panic!("expected a hub source, got {other:?}"),
    }
    assert_eq!(m.license, "Apache-2.0");
    assert_eq!(m.commercial_use, Some(true));
    // The data files' checksums (taken while writing) are those of the files on disk.
    let c = Catalog::open(env.home()).unwrap();
    for (f, path) in m.files.iter().zip(c.data_files(&m)) {
        assert_eq!(
            njp_catalog::store::sha256_file(&path).unwrap(),
            (f.sha256.clone(), f.bytes),
            "{}",
            path.display()
        );
    }
    // 5 rows: one exact duplicate, one English conversation.
    assert_eq!(m.rows, 3);
    assert_eq!(m.stats["dedup"]["exact_dropped"], 1);
    assert_eq!(m.stats["ingest"]["dropped"]["japanese share below 0.3"], 1);
    assert_eq!(m.stats["normalize"]["newlines_fixed"], 1);
    assert!(m.stats["normalize"]["whitespace_fixed"].as_u64().unwrap() >= 2);
    assert!(
        m.parameters["recipe_toml"]
            .as_str()
            .unwrap()
            .contains("magpie")
    );

    // Cross-dataset dedup: oasst1's first conversation is oasst2's.
    let m = env.manifest("oasst1_21k_ja");
    assert_eq!(m.rows, 1);
    assert_eq!(m.stats["dedup"]["against_dropped"], 1);
    assert_eq!(m.parents[0].name, "oasst2_33k_ja");

    // Message trees: best-ranked path per tree, deleted reply dropped and counted.
    let convs = env.records("oasst1_89k_ja");
    assert_eq!(convs.len(), 2);
    let Record::Conversation(c) = &convs[0] else {
        panic!()
    };
    let texts: Vec<String> = c.messages.iter().map(|m| m.joined_text()).collect();
    assert_eq!(
        texts,
        [
            "茶道とは何ですか？",
            "茶道は客をもてなすために抹茶をたてる日本の伝統的な作法です。",
            "誰が大成させたのですか？",
            "安土桃山時代の千利休が大成させました。"
        ]
    );
    let m = env.manifest("oasst1_89k_ja");
    assert_eq!(m.stats["oasst"]["flagged_removed"], 1);

    // KUCI morpheme spaces repaired; letter labels → indices.
    let Record::MultipleChoice(mc) = &env.records("kuci_train")[0] else {
        panic!()
    };
    assert_eq!(mc.question, "電池の減りはやはり早いので、");
    assert_eq!(mc.choices[3], "充電用にＵＳＢケーブル買います");
    assert_eq!(mc.answer, 3);
    let Record::MultipleChoice(mc) = &env.records("kuci_train")[2] else {
        panic!()
    };
    assert_eq!(mc.choices[2], "iPhone 12を捨てる");

    // JMMLU: subject from the file name, eval-only, letter answers.
    let m = env.manifest("jmmlu");
    assert!(m.eval_only);
    let recs = env.records("jmmlu");
    assert_eq!(recs.len(), 8);
    assert!(recs.iter().any(|r| matches!(r, Record::MultipleChoice(mc) if mc.subject.as_deref() == Some("anatomy") && mc.answer == 1)));
    assert_eq!(env.manifest("jmmlu_nc_nd").license, "CC-BY-NC-ND-4.0");

    // Translated GSM8K: the row with a wrong annotation is a counted reject.
    let m = env.manifest("gsm8k_ja_sara237");
    assert_eq!((m.rows, m.rejects), (2, 1));

    // OpenMathInstruct: code → python tool calls; calculator mode keeps only arithmetic.
    let Record::Conversation(c) = &env.records("openmathinstruct_1_ja")[1] else {
        panic!()
    };
    let kinds: Vec<PartKind> = c.messages[1].parts.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PartKind::Text,
            PartKind::Python,
            PartKind::PythonOutput,
            PartKind::Text
        ]
    );
    let calc = env.records("openmathinstruct_1_ja_calc");
    assert_eq!(calc.len(), 1);
    let Record::Math(mp) = &calc[0] else { panic!() };
    assert!(mp.solution.contains("<<3 * 7=21>>"), "{}", mp.solution);
    let m = env.manifest("openmathinstruct_1_ja_calc");
    assert_eq!(
        m.stats["ingest"]["dropped"]["open_math: code is not a calculator expression"],
        1
    );
    assert_eq!(
        m.stats["ingest"]["dropped"]["open_math: answer is not a number"],
        1
    );

    // Documents: quality-score filter, Japanese share, near duplicates.
    let m = env.manifest("abeja_cc_ja");
    assert_eq!(m.rows, 1);
    assert_eq!(
        m.stats["ingest"]["dropped"]["filter: `quality_score` < 0.5"],
        1
    );
    assert_eq!(m.stats["dedup"]["near_dropped"], 1);
    assert_eq!(m.stats["ingest"]["dropped"]["japanese share below 0.5"], 1);
    assert_eq!(env.manifest("fineweb2_jpn").rows, 1);
    assert!(env.manifest("mgsm_ja").eval_only);
    assert_eq!(env.records("mawps_ja").len(), 3);
    let Record::Math(mp) = &env.records("mawps_ja")[0] else {
        panic!()
    };
    assert!(!mp.question.starts_with("問題"), "{}", mp.question);
    assert!(!mp.question.ends_with("解答："), "{}", mp.question);
    // Bundled samples: a local source with checksums.
    let m = env.manifest("sample_conversations_ingested");
    assert!(
        matches!(&m.source, Source::Local { files } if files[0].path == "bundled:conversations.jsonl")
    );
    assert_eq!(m.rows, 150);
}

const ABEJA: &str = "kajuma/ABEJA-CC-JA";

fn resolve_requests(hub: &Hub, repo: &str) -> Vec<njp_testkit::LogEntry> {
    hub.server
        .log()
        .into_iter()
        .filter(|e| e.path.starts_with(&format!("/datasets/{repo}/resolve/")))
        .collect()
}

#[test]
fn hub_faults_end_in_a_retry_or_a_clear_error() {
    let env = Env::new();
    let hub = hub();
    // 404: a revision that does not exist.
    let r = env.ingest(&hub, &["abeja-cc-ja", "--revision", "v9"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("HTTP 404") && r.stderr.contains("v9"),
        "{}",
        r.stderr
    );
    assert!(env.datasets().is_empty());

    // An interrupted transfer is resumed with Range; a 429 with Retry-After and two 500s are
    // retried; a stalled answer times out and is retried.
    hub.stand_in.fault("/resolve/", FaultKind::CutAfter(100), 1);
    hub.stand_in.fault(
        "/api/datasets/kajuma",
        FaultKind::Status(429, vec![("Retry-After".into(), "1".into())]),
        1,
    );
    hub.stand_in
        .fault("train-00001-of-00002", FaultKind::Status(500, vec![]), 2);
    hub.stand_in.fault(
        "train-00001-of-00002",
        FaultKind::Delay(Duration::from_secs(4)),
        1,
    );
    let r = env.ingest(&hub, &["abeja-cc-ja", "--timeout", "1"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(hub.stand_in.faults.remaining(), 0);
    assert!(r.stderr.contains("HTTP 429; retry 1"), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 500; retry"), "{}", r.stderr);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    let ranged: Vec<_> = resolve_requests(&hub, ABEJA)
        .into_iter()
        .filter(|e| e.range.as_deref() == Some("bytes=100-"))
        .collect();
    assert_eq!(ranged.len(), 1, "{:?}", hub.server.log());
    assert_eq!(ranged[0].status, 206);
    let m = env.manifest("abeja_cc_ja");
    assert_eq!(m.rows, 1);
    let dl = m.stats["download"].as_array().unwrap();
    assert_eq!(dl[0]["resumed"], 1);

    // A second run is served from the cache (no file requests) and gives the same rows.
    hub.server.clear_log();
    let r = env.ingest(&hub, &["abeja-cc-ja"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("cached"), "{}", r.stderr);
    assert!(resolve_requests(&hub, ABEJA).is_empty());
    assert_eq!(env.manifest("abeja_cc_ja").version, 2);

    // A corrupted download is detected and downloaded again; twice is an error, and nothing
    // is published or left in the cache.
    hub.stand_in
        .fault("/resolve/", FaultKind::Corrupt { from: 10 }, 1);
    let cache = env.dir.path().join("cache1");
    let r = env.ingest(
        &hub,
        &["wikipedia-ja", "--cache", cache.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("checksum mismatch; retry 1"),
        "{}",
        r.stderr
    );
    assert_eq!(
        env.manifest("wikipedia_ja").stats["download"][0]["checksum_failures"],
        1
    );
    hub.stand_in
        .fault("/resolve/", FaultKind::Corrupt { from: 10 }, 2);
    let cache = env.dir.path().join("cache2");
    let r = env.ingest(
        &hub,
        &["fineweb-2-jpn", "--cache", cache.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("failed its checksum after 2 download(s): expected sha256"),
        "{}",
        r.stderr
    );
    assert!(!env.datasets().iter().any(|d| d.starts_with("fineweb2_jpn")));
    let leftovers: Vec<_> = walk(&cache).into_iter().filter(|p| p.is_file()).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Retries run out: a clear error naming the file and the last failure.
    hub.stand_in
        .fault("000_00000.parquet", FaultKind::Status(503, vec![]), 10);
    let r = env.ingest(
        &hub,
        &[
            "fineweb-2-jpn",
            "--retries",
            "2",
            "--cache",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "downloading `data/jpn_Jpan/train/000_00000.parquet` failed after 3 attempts: HTTP 503"
        ),
        "{}",
        r.stderr
    );
    hub.stand_in.faults.clear();

    // Invalid JSON from the revision API is retried, then an error.
    hub.stand_in
        .fault("/api/datasets/juletxara", FaultKind::InvalidJson, 1);
    let r = env.ingest(&hub, &["mgsm-ja"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    hub.stand_in
        .fault("/api/datasets/juletxara", FaultKind::InvalidJson, 10);
    let r = env.ingest(&hub, &["mgsm-ja", "--retries", "1"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
    hub.stand_in.faults.clear();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn gated_datasets_need_the_token_and_never_store_it() {
    let env = Env::new();
    let hub = hub();
    let secret = "hf_secret_token_1234";
    hub.stand_in.set_gated("juletxara/mgsm", secret);
    let r = env.ingest(&hub, &["mgsm-ja"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("set HF_TOKEN"),
        "{}",
        r.stderr
    );
    let r = env.ingest(&hub, &["mgsm-ja", "-vv"], &[("HF_TOKEN", secret)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
    let auth: Vec<_> = hub
        .server
        .log()
        .into_iter()
        .filter_map(|e| e.authorization)
        .collect();
    assert!(auth.iter().any(|a| a == &format!("Bearer {secret}")));
    for p in walk(&env.home()) {
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "{} holds the token",
                p.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// translate

const GSM8K_EN: &str = r#"{"id": "g0", "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}
{"id": "g1", "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?", "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"}
{"id": "g2", "question": "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. How much more money does Betty need to buy the wallet?", "answer": "In the beginning, Betty has only 100 / 2 = $<<100/2=50>>50.\nBetty's grandparents gave her 15 * 2 = $<<15*2=30>>30.\nThis means, Betty needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n#### 5"}
{"id": "g3", "question": "Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, she read twice as many pages as yesterday. If she wants to read half of the remaining pages tomorrow, how many pages should she read?", "answer": "Maila read 12 x 2 = <<12*2=24>>24 pages today.\nSo she was able to read a total of 12 + 24 = <<12+24=36>>36 pages since yesterday.\nThere are 120 - 36 = <<120-36=84>>84 pages left to be read.\nSince she wants to read half of the remaining pages tomorrow, then she should read 84/2 = <<84/2=42>>42 pages.\n#### 42"}
{"id": "g4", "question": "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?", "answer": "He writes each friend 3*2=<<3*2=6>>6 pages a week\nSo he writes 6*2=<<6*2=12>>12 pages every week\nThat means he writes 12*52=<<12*52=624>>624 pages a year\n#### 624"}
{"id": "g5", "question": "Albert is wondering how much pizza he can eat in one day. He buys 2 large pizzas and 2 small pizzas. A large pizza has 16 slices and a small pizza has 8 slices. If he eats it all, how many pieces does he eat that day?", "answer": "He eats 32 from the largest pizzas because 2 x 16 = <<2*16=32>>32\nHe eats 16 from the small pizza because 2 x 8 = <<2*8=16>>16\nHe eats 48 pieces because 32 + 16 = <<32+16=48>>48\n#### 48"}
"#;

impl Env {
    fn translate(&self, chat: &Server, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut c = self.cmd();
        let endpoint = format!("{}/v1", chat.url());
        c.arg("translate")
            .args(args)
            .args(["--endpoint", &endpoint, "--model", "test-mt"])
            .env("NJP_HTTP_BACKOFF_MS", "10")
            .env_remove("OPENAI_API_KEY");
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().expect("run njp");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "njp panicked:\n{}",
            run.stderr
        );
        run
    }
}

/// The tool calls of a math record's conversation, evaluated with nanochat's calculator.
fn tool_calls(r: &Record) -> Vec<(String, String, String)> {
    let c = r.to_conversation().unwrap();
    let parts = &c.messages[1].parts;
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if p.kind == PartKind::Python {
            let value = njp_datasets::calc::use_calculator(&p.text).unwrap();
            out.push((p.text.clone(), parts[i + 1].text.clone(), value));
        }
    }
    out
}

#[test]
fn translating_gsm8k_keeps_tool_calls_and_survives_faults() {
    let env = Env::new();
    // GSM8K train from the hub (the `gsm8k-en` recipe; its fixture holds GSM8K_EN's rows
    // and one test-split row that must not be read).
    let hub = hub();
    let r = env.ingest(&hub, &["gsm8k-en"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = env.manifest("gsm8k_en");
    assert_eq!((m.rows, m.license.as_str()), (6, "MIT"));
    let questions: Vec<String> = env
        .records("gsm8k_en")
        .iter()
        .map(|r| match r {
            Record::Math(mp) => mp.question.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    for line in GSM8K_EN.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(questions.contains(&row["question"].as_str().unwrap().to_string()));
    }
    let chat = ChatStandIn::new();
    let server = Server::start(chat.clone());
    *chat.api_key.lock().unwrap() = Some("sk-test-secret".into());
    // Transient faults: retried.
    chat.fault(
        "Natalia sold clips",
        FaultKind::Status(429, vec![("Retry-After".into(), "1".into())]),
        1,
    );
    chat.fault("Weng earns", FaultKind::Status(500, vec![]), 1);
    chat.fault("Betty is saving", FaultKind::InvalidJson, 1);
    chat.fault(
        "Julie is reading",
        FaultKind::Delay(Duration::from_secs(3)),
        1,
    );
    // Bad translations: rejected and counted, whatever the retries.
    chat.fault(
        "James writes",
        FaultKind::Custom("drop_placeholder".into()),
        100,
    );
    chat.fault(
        "Albert is wondering",
        FaultKind::Custom("change_number".into()),
        100,
    );
    let r = env.translate(
        &server,
        &[
            "gsm8k_en",
            "--concurrency",
            "3",
            "--timeout",
            "1",
            "--max-reject-ratio",
            "0.5",
            "--api-key-env",
            "TEST_KEY",
        ],
        &[("TEST_KEY", "sk-test-secret")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rejected 2"), "{}", r.stderr);
    assert!(r.stderr.contains("placeholder lost"), "{}", r.stderr);
    assert!(r.stderr.contains("number changed"), "{}", r.stderr);
    assert!(chat.max_in_flight() <= 3, "{}", chat.max_in_flight());
    let m = env.manifest("gsm8k_en_ja");
    assert_eq!((m.rows, m.rejects), (4, 2));
    assert_eq!(m.parameters["model"], "test-mt");
    assert_eq!(
        m.parameters["prompt_version"],
        njp_ingest::translate::PROMPT_VERSION
    );
    assert_eq!(
        m.parameters["endpoint_host"],
        server.url().trim_start_matches("http://")
    );
    assert_eq!(m.parents[0].name, "gsm8k_en");
    assert!(m.stats["translate"]["retries"].as_u64().unwrap() >= 4);
    assert!(
        !serde_json::to_string(&m)
            .unwrap()
            .contains("sk-test-secret")
    );
    // The translation is Japanese, and its tool calls evaluate to the original results.
    let src: Vec<Record> = env.records("gsm8k_en");
    let out = env.records("gsm8k_en_ja");
    for r in &out {
        let Record::Math(mp) = r else { panic!() };
        assert!(
            njp_ingest::normalize::japanese_share(&mp.question).0 > 0.9,
            "{}",
            mp.question
        );
        let orig = src.iter().find(|s| s.id() == r.id()).unwrap();
        let calls = tool_calls(r);
        assert!(!calls.is_empty());
        assert_eq!(calls, tool_calls(orig));
        for (expr, result, value) in &calls {
            assert_eq!(
                value.parse::<f64>().unwrap(),
                result.trim_start_matches('$').parse::<f64>().unwrap(),
                "{expr}"
            );
        }
    }
    // A rerun is free: everything accepted is in the cache.
    let before = chat.requests();
    chat.faults.clear();
    let r = env.translate(
        &server,
        &["gsm8k_en", "--name", "again", "--api-key-env", "TEST_KEY"],
        &[("TEST_KEY", "sk-test-secret")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let resent = chat.requests() - before;
    // Only the two rejected records' units are sent again.
    assert!(resent <= 4, "{resent} requests on a rerun");
    assert_eq!(env.manifest("again").rows, 6);
    // A missing API key is a clear error, not a reject (a dataset not in the cache yet).
    let other = env.file(
        "other.jsonl",
        r#"{"id": "o1", "question": "Tom has 3 apples and buys 4 more. How many apples does he have now?", "answer": "Tom has 3+4 = <<3+4=7>>7 apples.\n#### 7"}"#,
    );
    env.import(&other, "math", "other_en", &[]).ok();
    let r = env.translate(&server, &["other_en", "--name", "nokey"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("API key"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_interrupted_translation_resumes_from_the_cache() {
    let env = Env::new();
    let input = env.file("gsm8k_en.jsonl", GSM8K_EN);
    env.import(&input, "math", "gsm8k_en", &[]).ok();
    let chat = ChatStandIn::new();
    let server = Server::start(chat.clone());
    // The first run stops after 3 records (as if interrupted).
    let r = env.translate(
        &server,
        &["gsm8k_en", "--limit", "3", "--name", "part"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = chat.requests();
    assert_eq!(first, 6, "question + solution of 3 records");
    let r = env.translate(&server, &["gsm8k_en"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        chat.requests() - first,
        6,
        "only the 3 new records are sent"
    );
    assert!(r.stderr.contains("cached 6"), "{}", r.stderr);
    // A cache line cut by a crash is skipped and counted, not fatal.
    let dir = env.home().join("cache").join("translate");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"k\": \"abc\", \"t\": \"cut").unwrap();
    let r = env.translate(&server, &["gsm8k_en", "--name", "third"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("1 unreadable translation cache lines ignored"),
        "{}",
        r.stderr
    );
}

/// Rows of every kind the row-local stage tells apart: typed fast-path shapes (ShareGPT,
/// OpenAI), shapes that need the generic adapter (content parts, extra fields, Alpaca), broken
/// JSON, blank lines, invalid records, duplicate ids, exact and near duplicates, English rows,
/// and text the normalizer changes. Enough rows for several reader batches.
fn mixed_chat_jsonl(rows: usize) -> String {
    let sentences = [
        "吾輩は猫である。",
        "名前はまだ無い。",
        "どこで生れたかとんと見当がつかぬ。",
        "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
        "親譲りの無鉄砲で小供の時から損ばかりしている。",
        "小学校に居る時分学校の二階から飛び降りて一週間ほど腰を抜かした事がある。",
        "国境の長いトンネルを抜けると雪国であった。",
        "夜の底が白くなった。",
    ];
    let mut out = String::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..rows {
        let r = next();
        let mut a = String::new();
        for k in 0..(2 + r % 4) {
            a.push_str(sentences[((r >> (8 + 3 * k)) % sentences.len() as u64) as usize]);
            a.push_str(&format!("{}番目。\n", (r >> 20) % 1000));
        }
        let q = format!("{}について教えてください。", sentences[i % sentences.len()]);
        let json = |s: &str| serde_json::to_string(s).unwrap();
        let line = match i % 23 {
            0 => "{\"id\": \"broken\", \"conversations\": [".to_string(),
            1 => String::new(),
            2 => format!(
                r#"{{"id": "r{i}", "conversations": [{{"from": "gpt", "value": {}}}]}}"#,
                json(&a)
            ),
            3 => format!(
                r#"{{"id": "r{}", "conversations": [{{"from": "human", "value": {}}}, {{"from": "gpt", "value": {}}}]}}"#,
                i.saturating_sub(12),
                json(&q),
                json(&a)
            ),
            4 => format!(
                r#"{{"messages": [{{"role": "user", "content": {}}}, {{"role": "assistant", "content": [{{"type": "text", "text": {}}}]}}]}}"#,
                json(&q),
                json(&a)
            ),
            5 => format!(
                r#"{{"id": "r{i}", "lang": "ja", "conversations": [{{"from": "human", "value": {}}}, {{"from": "gpt", "value": {}}}]}}"#,
                json(&q),
                json(&a)
            ),
            6 => format!(
                r#"{{"id": {i}, "instruction": {}, "output": {}}}"#,
                json(&q),
                json(&a)
            ),
            7 => format!(
                r#"{{"id": "r{i}", "conversations": [{{"from": "human", "value": "Tell me about cats, please."}}, {{"from": "gpt", "value": "Cats are small domesticated carnivores."}}]}}"#
            ),
            8 => format!(
                r#"{{"id": "r{i}", "conversations": [{{"from": "human", "value": {}}}, {{"from": "gpt", "value": {}}}]}}"#,
                json(sentences[0]),
                json(&format!("{}{}", sentences[1], sentences[2]))
            ),
            9 => format!(
                r#"{{"id": "r{i}", "messages": [{{"role": "user", "content": {}}}, {{"role": "assistant", "content": {}}}]}}"#,
                json(&format!("\u{feff}{q}\r\n\r\n\r\n")),
                json(&(a.replace('\n', "\r\n").replace("が", "か\u{3099}") + "  \u{7}"))
            ),
            10 => {
                format!(r#"{{"id": "r{i}", "conversations": [{{"from": "robot", "value": "x"}}]}}"#)
            }
            _ => format!(
                r#"{{"id": "r{i}", "conversations": [{{"from": "human", "value": {}}}, {{"from": "gpt", "value": {}}}]}}"#,
                json(&q),
                json(&a)
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn ingest_output_does_not_depend_on_the_thread_count() {
    let env = Env::new();
    let data = env.file("chat.jsonl", mixed_chat_jsonl(10_000));
    let recipe = |name: &str, dedup: bool| {
        env.file(
            &format!("{name}.toml"),
            format!(
                r#"name = "{name}"
dataset = "{name}"
description = "thread-count determinism"
kind = "conversation"
license = "LicenseRef-PublicDomain"
layout = "verified"
[source]
type = "local"
paths = [{data:?}]
[filter]
min_japanese = 0.3
[dedup]
exact = {dedup}
near = {dedup}
"#
            ),
        )
    };
    let catalog = |home: &Path| Catalog::open(home).unwrap();
    for (name, dedup) in [("mixed_dedup", true), ("mixed_plain", false)] {
        let path = recipe(name, dedup);
        let mut outputs = Vec::new();
        for threads in ["1", "2", "5"] {
            let home = env.dir.path().join(format!("home-{name}-{threads}"));
            let out = env
                .cmd()
                .arg("--home")
                .arg(&home)
                .args(["--threads", threads, "ingest"])
                .arg(&path)
                .args(["--max-reject-ratio", "0.5"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(0), "{name} x{threads}:\n{stderr}");
            // Rejects name the file and line (line 1 is the first broken row).
            assert!(
                stderr.contains("chat.jsonl:1: invalid JSON"),
                "{name} x{threads}:\n{stderr}"
            );
            let c = catalog(&home);
            let m = c.resolve(name).unwrap();
            let rejects = std::fs::read(c.rejects_file(&m).expect("rejects stored")).unwrap();
            let files: Vec<(String, u64, String)> = m
                .files
                .iter()
                .map(|f| (f.path.clone(), f.rows, f.sha256.clone()))
                .collect();
            outputs.push((threads, m.rows, m.rejects, m.stats.clone(), files, rejects));
        }
        let (_, rows, rejects, stats, files, rejects_file) = &outputs[0];
        // Every kind of row happened.
        assert!(*rows > 4_000, "{rows}");
        let ingest = &stats["ingest"];
        assert!(*rejects > 1_000, "{rejects}");
        assert!(ingest["dropped"]["japanese share below 0.3"].as_u64() > Some(300));
        let reasons = ingest["reject_reasons"].to_string();
        for reason in ["invalid JSON", "duplicate id", "unsupported role"] {
            assert!(reasons.contains(reason), "{reason}: {reasons}");
        }
        assert!(stats["normalize"]["unicode_form"].as_u64() > Some(100));
        assert!(stats["normalize"]["control_removed"].as_u64() > Some(100));
        if *name == *"mixed_dedup" {
            assert!(stats["dedup"]["exact_dropped"].as_u64() > Some(100));
            assert!(ingest["dropped"]["duplicate (exact)"].as_u64() > Some(100));
        }
        for (threads, r, rj, st, f, rf) in &outputs[1..] {
            assert_eq!((r, rj), (rows, rejects), "{name}: 1 vs {threads} threads");
            assert_eq!(st, stats, "{name}: 1 vs {threads} threads");
            assert_eq!(f, files, "{name}: data files, 1 vs {threads} threads");
            assert!(
                rf == rejects_file,
                "{name}: rejects, 1 vs {threads} threads"
            );
        }
    }
}
