//! A real child process killed in the middle of an import leaves the catalog unchanged, and
//! `njp catalog gc` removes what it left behind.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::Env;

#[test]
fn sigkill_during_import_publishes_nothing() {
    let env = Env::new();
    env.run(&["samples", "import"]).ok();
    let before = env.datasets();
    // Enough rows that the import runs for a while even in release mode.
    let path = env.dir.path().join("big.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let turn = "とても長い会話の一部です。".repeat(20);
    for i in 0..400_000 {
        writeln!(f, r#"{{"id":"c{i}","messages":[{{"role":"user","content":"{turn}"}},{{"role":"assistant","content":"{turn}{i}"}}]}}"#).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let mut child = env
        .cmd()
        .args([
            "import",
            path.to_str().unwrap(),
            "--kind",
            "conversation",
            "--name",
            "big",
            "--license",
            "MIT",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the import has started writing into its staging directory.
    let staging = env.home().join("staging");
    let start = Instant::now();
    loop {
        let writing = std::fs::read_dir(&staging)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("big."))
            })
            .unwrap_or(false);
        if writing {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "import never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import finished before it could be killed; make the input bigger"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        env.datasets(),
        before,
        "a killed import must not publish anything"
    );
    let gc = env.run(&["catalog", "gc"]).ok();
    assert!(
        gc.stderr.contains("removed") && gc.stderr.contains("big."),
        "{}",
        gc.stderr
    );
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    assert_eq!(env.datasets(), before);
}
