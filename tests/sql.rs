//! `njp sql`: read-only queries, output formats, errors, `--save` with lineage.

use crate::common::Env;

fn with_samples() -> Env {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    env
}

#[test]
fn writes_are_refused() {
    let env = with_samples();
    for (sql, what) in [
        ("INSERT INTO sample_mc VALUES ('x')", "INSERT"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
        ("COPY sample_mc TO 'out.csv'", "COPY"),
        ("DROP TABLE sample_mc", "DROP TABLE"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'x.csv'",
            "CREATE EXTERNAL TABLE",
        ),
        ("SET datafusion.execution.batch_size = 1", "SET"),
    ] {
        let r = env.run(&["sql", sql]);
        assert_eq!(r.code, 2, "{sql}");
        assert!(
            r.stderr.contains("read-only") && r.stderr.contains(what),
            "{sql}: {}",
            r.stderr
        );
    }
    assert!(!env.dir.path().join("out.csv").exists());
}

#[test]
fn unknown_table_lists_known_tables() {
    let env = with_samples();
    let r = env.run(&["sql", "SELECT * FROM sample_mcq"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("table `sample_mcq` not found"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("sample_mc") && r.stderr.contains("catalog"),
        "{}",
        r.stderr
    );
    let r = env.run(&["sql", "SELEC 1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("SELEC"), "{}", r.stderr);
}

#[test]
fn output_formats() {
    let env = with_samples();
    let q = "SELECT id, answer FROM sample_mc ORDER BY id LIMIT 3";
    let csv = env.run(&["sql", q, "--format", "csv"]).ok();
    assert_eq!(csv.stdout.lines().count(), 4);
    let json = env.run(&["sql", q, "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let jsonl = env.run(&["sql", q, "--format", "jsonl"]).ok();
    assert_eq!(jsonl.stdout.lines().count(), 3);
    let out = env.dir.path().join("r.parquet");
    env.run(&[
        "sql",
        q,
        "--format",
        "parquet",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    assert!(std::fs::read(&out).unwrap().starts_with(b"PAR1"));
    let nested = env.run(&[
        "sql",
        "SELECT messages FROM sample_conversations",
        "--format",
        "csv",
    ]);
    assert_eq!(nested.code, 2);
    assert!(nested.stderr.contains("nested"), "{}", nested.stderr);
    let table = env
        .run(&["sql", "SELECT id FROM sample_mc", "--max-rows", "5"])
        .ok();
    assert!(
        table.stderr.contains("500 rows, showing the first 5"),
        "{}",
        table.stderr
    );
}

#[test]
fn save_records_lineage_and_kind() {
    let env = with_samples();
    let sql = "SELECT * FROM sample_mc WHERE answer = 0";
    let r = env.run(&["sql", sql, "--save", "mc_first"]).ok();
    assert!(
        r.stderr.contains("published mc_first@1") && r.stderr.contains("mc kind"),
        "{}",
        r.stderr
    );
    let show = env.run(&["catalog", "show", "mc_first", "--json"]).ok();
    let m: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(m["kind"], "mc");
    assert_eq!(m["license"], "CC-BY-SA-4.0");
    assert_eq!(m["parents"][0]["name"], "sample_mc");
    assert_eq!(m["parents"][0]["version"], 1);
    assert_eq!(m["parameters"]["sql"], sql);
    // Older versions are addressable; a plain table result becomes a `table` dataset.
    env.run(&[
        "sql",
        "SELECT subject, count(*) AS n FROM \"sample_mc@1\" GROUP BY subject",
        "--save",
        "counts",
        "--license",
        "CC-BY-SA-4.0",
    ])
    .ok();
    let k = env
        .run(&[
            "sql",
            "SELECT kind, parents FROM catalog WHERE name = 'counts'",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(k.stdout, "kind,parents\ntable,sample_mc@1\n");
    // Mixed licenses need an explicit one.
    let r = env.run(&[
        "sql",
        "SELECT id FROM sample_mc UNION ALL SELECT id FROM sample_math",
        "--save",
        "ids",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("different licenses"), "{}", r.stderr);
    // Invalid records are refused with the row.
    let r = env.run(&["sql", "SELECT id, question, choices, CAST(9 AS INT UNSIGNED) AS answer, subject, source FROM sample_mc", "--save", "broken"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("result row 1") && r.stderr.contains("out of range"),
        "{}",
        r.stderr
    );
    assert!(!env.datasets().iter().any(|d| d.starts_with("broken")));
}
