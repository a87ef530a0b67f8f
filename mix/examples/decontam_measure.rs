//! Measures the decontamination n-gram size on JCommonsenseQA (JGLUE v1.3):
//!
//! * **flag rate** on clean data: train questions flagged against the valid index (train and
//!   valid are disjoint by construction, so every flag is a false positive or a genuine
//!   near-duplicate the dataset authors left in);
//! * **recall** on planted copies of the valid questions: punctuation/width changes, embedded in
//!   a nanochat multiple-choice prompt, and with one or two characters substituted.
//!
//! `cargo build --release --workspace --examples && target/release/examples/decontam_measure DIR`
//! where DIR holds `train-v1.3.json` and `valid-v1.3.json` (JSON lines).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a measurement tool: prints its table

use std::path::Path;

use njp_mix::decontam::{EvalItem, Index};

fn questions(path: &Path) -> Vec<(String, String, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            let choices = (0..5)
                .filter_map(|i| v[format!("choice{i}")].as_str().map(str::to_string))
                .collect();
            (
                v["q_id"].to_string(),
                v["question"].as_str().unwrap_or_default().to_string(),
                choices,
            )
        })
        .collect()
}

/// Punctuation and width changes: ？→?, 、 inserted, ASCII → full width, a space.
fn perturb_format(q: &str) -> String {
    let mut s: String = q
        .chars()
        .map(|c| match c {
            '？' => '?',
            '。' => '．',
            c if c.is_ascii_alphanumeric() => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect();
    let n = s.chars().count();
    if n > 6 {
        let cut: usize = s.char_indices().nth(n / 2).map(|(i, _)| i).unwrap_or(0);
        s.insert_str(cut, "、 ");
    }
    format!("「{s}」")
}

/// Replaces `k` characters spread over the question with `〇`.
fn substitute(q: &str, k: usize) -> String {
    let mut chars: Vec<char> = q.chars().collect();
    let n = chars.len();
    for j in 1..=k {
        let i = n * j / (k + 1);
        if i < n {
            chars[i] = '〇';
        }
    }
    chars.into_iter().collect()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: decontam_measure JCOMMONSENSEQA_DIR");
        std::process::exit(2)
    });
    let dir = Path::new(&dir);
    let train = questions(&dir.join("train-v1.3.json"));
    let valid = questions(&dir.join("valid-v1.3.json"));
    let items: Vec<EvalItem> = valid
        .iter()
        .map(|(id, q, _)| EvalItem {
            dataset: "jcqa_valid".into(),
            id: id.clone(),
            text: q.clone(),
        })
        .collect();
    let mc_prompt =
        |q: &str, choices: &[String]| njp_datasets::convert::render_mc(&perturb_format(q), choices);
    println!(
        "JCommonsenseQA v1.3: {} train, {} valid questions",
        train.len(),
        valid.len()
    );
    println!(
        "| n | min_fraction | train flagged (clean) | recall: format | recall: in MC prompt | recall: 1 char changed | recall: 2 chars changed |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in &[5usize, 6, 8, 10, 13, 16, 20] {
        for &f in &[0.01f64, 0.5, 0.8] {
            let idx = Index::build(items.clone(), n, f);
            let flagged = train
                .iter()
                .filter(|(_, q, c)| {
                    let mut s = q.clone();
                    for x in c {
                        s.push('\n');
                        s.push_str(x);
                    }
                    idx.check(&s).is_some()
                })
                .count();
            let recall = |make: &dyn Fn(&str, &[String]) -> String| {
                let hit = valid
                    .iter()
                    .enumerate()
                    .filter(|(i, (_, q, c))| idx.check(&make(q, c)).is_some_and(|h| h.item == *i))
                    .count();
                hit as f64 / valid.len() as f64 * 100.0
            };
            println!(
                "| {n} | {} | {} ({:.2}%) | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                if f < 0.05 {
                    "any n-gram".to_string()
                } else {
                    format!("{f}")
                },
                flagged,
                flagged as f64 / train.len() as f64 * 100.0,
                recall(&|q, _| perturb_format(q)),
                recall(&|q, c| mc_prompt(q, c)),
                recall(&|q, _| perturb_format(&substitute(q, 1))),
                recall(&|q, _| perturb_format(&substitute(q, 2))),
            );
        }
    }
}
