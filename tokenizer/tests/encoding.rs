//! Encoding and decoding: round trips, special-token injection, streaming, batch, long chunks.

mod common;

use common::Rng;
use njp_tokenizer::{SplitPattern, Tokenizer};
use std::sync::OnceLock;

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| common::train(SplitPattern::Ja, 4000).0)
}

/// tiktoken's algorithm written the slow, obvious way (split, then per chunk: whole-token check,
/// then repeatedly merge the leftmost lowest-rank concatenation).
fn reference_encode(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let splitter = njp_tokenizer::Splitter::new_regex(tok.pattern()).unwrap();
    let mut out = Vec::new();
    for chunk in splitter.chunks(text).unwrap() {
        if let Some(id) = tok.token_id(chunk.as_bytes()) {
            out.push(id);
            continue;
        }
        let mut parts: Vec<Vec<u8>> = chunk.bytes().map(|b| vec![b]).collect();
        loop {
            let best = (0..parts.len().saturating_sub(1))
                .filter_map(|i| {
                    tok.token_id(&[parts[i].clone(), parts[i + 1].clone()].concat())
                        .map(|r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let r = parts.remove(i + 1);
            parts[i].extend(r);
        }
        out.extend(parts.iter().map(|p| tok.token_id(p).unwrap()));
    }
    out
}

#[test]
fn round_trip_japanese_sample() {
    let tok = tok();
    for doc in common::sample_docs() {
        let ids = tok.encode(&doc);
        assert_eq!(tok.decode(&ids).unwrap(), doc);
        assert!(
            ids.len() * 2 < doc.len(),
            "a 4K vocab should compress Japanese at least 2 B/tok"
        );
    }
}

#[test]
fn matches_reference_tiktoken_algorithm() {
    let tok = tok();
    let text: String = common::sample_docs().concat();
    let text: String = text.chars().take(40_000).collect();
    assert_eq!(tok.encode(&text), reference_encode(tok, &text));
    let odd = "ーーーーー漢字漢字漢字漢字かなかなかなカタカナ!!!!!    \n\n\t 123456 don't 😀😀😀";
    assert_eq!(tok.encode(odd), reference_encode(tok, odd));
}

#[test]
fn round_trip_random_bytes_and_chars() {
    let tok = tok();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..300 {
        let n = rng.below(200);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let s = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(tok.decode(&tok.encode(&s)).unwrap(), s);
        // Random unicode scalar values, including astral planes.
        let s: String = (0..rng.below(60))
            .filter_map(|_| char::from_u32((rng.next() % 0x11_0000) as u32))
            .collect();
        assert_eq!(tok.decode(&tok.encode(&s)).unwrap(), s);
    }
    // Any id sequence decodes to exactly the concatenated token bytes.
    for _ in 0..100 {
        let ids: Vec<u32> = (0..rng.below(50))
            .map(|_| rng.below(tok.n_mergeable()) as u32)
            .collect();
        let want: Vec<u8> = ids
            .iter()
            .flat_map(|&i| tok.token_bytes_of(i).unwrap().to_vec())
            .collect();
        assert_eq!(tok.decode_bytes(&ids).unwrap(), want);
    }
}

#[test]
fn special_token_strings_in_text_are_plain_bytes() {
    let tok = tok();
    for name in njp_tokenizer::NANOCHAT_SPECIALS {
        let text = format!("前{name}後 {name}");
        let ids = tok.encode(&text);
        assert!(
            ids.iter().all(|&i| !tok.is_special(i)),
            "{name} was parsed as special"
        );
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    let ids = tok
        .encode_with_special("<|bos|>猫<|user_start|>", &["<|bos|>"])
        .unwrap();
    assert_eq!(ids[0], tok.bos_id().unwrap());
    assert!(ids[1..].iter().all(|&i| !tok.is_special(i)));
    assert_eq!(tok.decode(&ids).unwrap(), "<|bos|>猫<|user_start|>");
    assert!(tok.encode_with_special("x", &["<|nope|>"]).is_err());
}

#[test]
fn stream_decoder_never_emits_half_characters() {
    let tok = common::bytes_only();
    let text = "吾輩は猫である。😀 é";
    let ids = tok.encode(text);
    let mut d = tok.stream_decoder();
    let mut out = String::new();
    for &id in &ids {
        let piece = d.push(id).unwrap();
        assert!(!piece.contains('\u{fffd}'));
        out.push_str(&piece);
    }
    out.push_str(&d.finish());
    assert_eq!(out, text);

    // Invalid sequences become U+FFFD exactly as `decode` does; a dangling lead byte at the end too.
    let tok = tok_ref();
    let mut rng = Rng(99);
    for _ in 0..200 {
        let ids: Vec<u32> = (0..rng.below(30))
            .map(|_| rng.below(tok.n_mergeable()) as u32)
            .collect();
        let mut d = tok.stream_decoder();
        let mut s = d.push_all(&ids).unwrap();
        s.push_str(&d.finish());
        assert_eq!(s, tok.decode(&ids).unwrap());
    }
    assert!(tok.decode(&[u32::MAX]).is_err());
}

fn tok_ref() -> &'static Tokenizer {
    tok()
}

#[test]
fn batch_equals_single() {
    let tok = tok();
    let docs = common::sample_paragraphs();
    let docs = &docs[..2000.min(docs.len())];
    let batch = tok.encode_batch(docs);
    for (d, ids) in docs.iter().zip(&batch) {
        assert_eq!(&tok.encode(d), ids);
    }
}

#[test]
fn long_chunks_stay_fast_and_exact() {
    let tok = tok();
    // One 600 KB chunk under the gpt4 letter rule would be one piece; under `ja` a long kanji run
    // is one chunk. Both must encode quickly (heap merge) and round-trip.
    let run: String = "漢字".repeat(100_000);
    let t = std::time::Instant::now();
    let ids = tok.encode(&run);
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "long chunk took {:?}",
        t.elapsed()
    );
    assert_eq!(tok.decode(&ids).unwrap(), run);
    let spaces = " ".repeat(200_000) + "x";
    assert_eq!(tok.decode(&tok.encode(&spaces)).unwrap(), spaces);
}

#[test]
fn two_stage_tokenizer_matches_reference_tiktoken_algorithm() {
    let (tok, _) = common::train_two_stage(4000, 2000);
    let text: String = common::sample_docs().concat();
    let text: String = text.chars().take(40_000).collect();
    assert_eq!(tok.encode(&text), reference_encode(&tok, &text));
    assert_eq!(tok.decode(&tok.encode(&text)).unwrap(), text);
}

#[test]
fn span_tokenizer_matches_reference_tiktoken_algorithm() {
    // Paragraph-sized chunks: the encoder's heap path on long chunks.
    let docs = common::sample_docs();
    let (tok, _) = njp_tokenizer::train_from_iter(
        docs.clone(),
        &njp_tokenizer::TrainConfig::span(4000),
        None,
        None,
        &njp_tokenizer::NoProgress,
    )
    .unwrap();
    let text: String = docs.concat().chars().take(40_000).collect();
    assert_eq!(tok.encode(&text), reference_encode(&tok, &text));
}

#[test]
fn chunk_cache_is_exact_and_per_tokenizer() {
    // Encoding the same text again (chunks now cached) and interleaving two tokenizers with
    // different vocabularies on one thread must give each tokenizer's own reference ids.
    let text: String = common::sample_docs()
        .concat()
        .chars()
        .take(20_000)
        .collect();
    let bytes = common::bytes_only();
    let (a, b) = (tok(), &bytes);
    let (ra, rb) = (reference_encode(a, &text), reference_encode(b, &text));
    for _ in 0..3 {
        assert_eq!(a.encode(&text), ra);
        assert_eq!(b.encode(&text), rb);
    }
    assert_ne!(ra, rb, "the two test vocabularies differ");
    // A clone shares the cache entries and the ids.
    assert_eq!(a.clone().encode(&text), ra);
}
