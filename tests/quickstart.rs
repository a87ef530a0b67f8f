//! `njp quickstart`, the README's first command: the whole pipeline on the bundled samples
//! (shortened: a few steps per stage), and a rerun that replaces its own outputs.

use crate::common::Env;

#[test]
fn whole_pipeline_runs_and_reruns() {
    let env = Env::new();
    let args = ["quickstart", "--base-steps", "3", "--chat-steps", "2"];
    let err = env.run(&args).ok().stderr;
    for stage in ["== 3.", "== 4.", "== 5.", "== 6.", "done."] {
        assert!(err.contains(stage), "missing `{stage}` in:\n{err}");
    }
    let qs = env.home().join("quickstart");
    assert!(qs.join("tokenizer/ranks.tiktoken").is_file());
    for (stage, step) in [("base", 3), ("mid", 2), ("sft", 2)] {
        let ckpt = qs.join(stage).join(format!("model_{step:06}.safetensors"));
        assert!(ckpt.is_file(), "{} missing\n{err}", ckpt.display());
        let metrics = std::fs::read_to_string(qs.join(stage).join("metrics.jsonl")).unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.contains(&format!("\"step\":{step},"))),
            "{stage}: {metrics}"
        );
    }
    // A second run starts from a clean quickstart directory instead of refusing it.
    env.run(&args).ok();
}
