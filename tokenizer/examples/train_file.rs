//! Trains on a text file (one document per line) without the CLI, printing statistics as JSON.
//!
//! `cargo run --release -p njp-tokenizer --example train_file -- FILE VOCAB PATTERN OUT_DIR`
//!
//! PATTERN is `ja`, `ja-script`, `gpt4` or `regex:<pattern>`. Used for pattern experiments.
//! Two-stage training: `… OUT_DIR STAGE2_PATTERN TRANSITION_VOCAB`.
#![allow(clippy::print_stdout)]

use std::io::BufRead;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        return Err("usage: train_file FILE VOCAB PATTERN OUT_DIR".into());
    }
    let config = njp_tokenizer::TrainConfig {
        vocab_size: a[2].parse()?,
        pattern: a[3].parse()?,
        stage2: match (a.get(5), a.get(6)) {
            (Some(p), Some(t)) => Some(njp_tokenizer::Stage2 {
                pattern: p.parse()?,
                transition_vocab: t.parse()?,
            }),
            _ => None,
        },
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let lines = std::io::BufReader::new(std::fs::File::open(&a[1])?)
        .lines()
        .map_while(Result::ok);
    let (tok, stats) =
        njp_tokenizer::train_from_iter(lines, &config, None, None, &njp_tokenizer::NoProgress)?;
    let secs = t.elapsed().as_secs_f64();
    tok.save_with_stats(&a[4], &stats)?;
    println!(
        "{{\"seconds\": {secs:.3}, \"stats\": {}}}",
        serde_json::to_string(&stats)?
    );
    Ok(())
}
