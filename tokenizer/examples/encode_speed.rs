//! Single-thread encode throughput, for `bench/tokenizer`.
//!
//! `cargo run --release -p njp-tokenizer --example encode_speed -- TOKENIZER_DIR TEXT_FILE [REPEATS] [IDS_OUT]`
//!
//! Encodes the whole file as one string, `REPEATS` times (default 5), on the calling thread, and
//! prints one JSON line: bytes, tokens, best and median MB/s. With `IDS_OUT`, writes the ids as
//! little-endian u32 for parity checks against other encoders.
#![allow(clippy::print_stdout)]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: encode_speed TOKENIZER_DIR TEXT_FILE [REPEATS] [IDS_OUT]".into());
    }
    let tok = njp_tokenizer::Tokenizer::load(&args[1])?;
    let text = std::fs::read_to_string(&args[2])?;
    let repeats: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        ids = tok.encode(&text);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let mb = text.len() as f64 / 1e6;
    println!(
        "{{\"bytes\": {}, \"tokens\": {}, \"best_mb_s\": {:.2}, \"median_mb_s\": {:.2}}}",
        text.len(),
        ids.len(),
        mb / times[0],
        mb / times[times.len() / 2]
    );
    if let Some(out) = args.get(4) {
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(out, bytes)?;
    }
    Ok(())
}
