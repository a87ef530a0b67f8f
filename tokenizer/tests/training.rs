//! Training: determinism across thread counts and runs, vocabulary shape, statistics.

mod common;

use njp_tokenizer::{ChunkCounter, NoProgress, SplitPattern, TrainConfig};

/// Runs `f` on a rayon pool of `threads` threads.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn train_with_threads(threads: usize, pattern: SplitPattern, vocab: u32) -> Vec<Vec<u8>> {
    on_threads(threads, || {
        let (tok, stats) = common::train(pattern, vocab);
        assert_eq!(stats.threads, threads);
        tok.mergeable_tokens().map(<[u8]>::to_vec).collect()
    })
}

#[test]
fn identical_for_any_thread_count_and_run() {
    for pattern in [SplitPattern::Ja, SplitPattern::Gpt4] {
        let one = train_with_threads(1, pattern.clone(), 3000);
        for threads in [2, 3, 8] {
            assert_eq!(
                one,
                train_with_threads(threads, pattern.clone(), 3000),
                "{pattern} with {threads} threads"
            );
        }
        assert_eq!(
            one,
            train_with_threads(2, pattern.clone(), 3000),
            "{pattern}, second run"
        );
    }
}

#[test]
fn vocabulary_has_bytes_merges_and_nanochat_specials() {
    let (tok, stats) = common::train(SplitPattern::Ja, 2048);
    assert_eq!(tok.vocab_size(), 2048);
    assert_eq!(tok.n_mergeable(), 2048 - 9);
    assert_eq!(stats.merges, 2048 - 9 - 256);
    for b in 0..=255u8 {
        assert_eq!(tok.token_id(&[b]), Some(u32::from(b)));
    }
    assert_eq!(tok.special_id("<|bos|>"), Some(2039));
    assert_eq!(tok.special_id("<|output_end|>"), Some(2047));
    // Every merged token is distinct and at least two bytes.
    let mut seen = std::collections::HashSet::new();
    for t in tok.mergeable_tokens() {
        assert!(seen.insert(t.to_vec()));
    }
    // The most frequent merges of Japanese text are kana lead bytes.
    assert_eq!(tok.token_bytes_of(256).unwrap().len(), 2);
    let tb = tok.token_bytes();
    assert_eq!(tb.len(), 2048);
    assert!(tb[2039..].iter().all(|&b| b == 0));
    assert!(tb[..2039].iter().all(|&b| b >= 1));
}

#[test]
fn stats_and_doc_cap() {
    let docs = common::sample_docs();
    let total_chars: u64 = docs.iter().map(|d| d.chars().count() as u64).sum();
    let mut c = ChunkCounter::new(&SplitPattern::Ja, Some(1000)).unwrap();
    c.add_documents(&docs).unwrap();
    let s = c.stats();
    assert_eq!(s.documents, docs.len() as u64);
    assert_eq!(s.chars + s.capped_chars, total_chars);
    assert_eq!(
        s.capped_documents,
        docs.iter().filter(|d| d.chars().count() > 1000).count() as u64
    );
    assert!(s.unique_chunks > 0 && s.unique_chunks <= s.chunks);
}

#[test]
fn script_patterns_have_fewer_unique_chunk_bytes_than_gpt4() {
    let docs = common::sample_paragraphs();
    let bytes = |p: SplitPattern| {
        let mut c = ChunkCounter::new(&p, None).unwrap();
        c.add_documents(&docs).unwrap();
        c.stats().unique_chunk_bytes
    };
    // On 300 KB the dictionary has not saturated yet; on the 8.8M-char benchmark corpus the
    // ratios are 0.50 (ja) and 0.25 (ja-script), see bench/RESULTS.md.
    let (g, j, s) = (
        bytes(SplitPattern::Gpt4),
        bytes(SplitPattern::Ja),
        bytes(SplitPattern::JaScript),
    );
    assert!(j * 10 < g * 9, "ja {j} vs gpt4 {g}");
    assert!(s * 10 < g * 6, "ja-script {s} vs gpt4 {g}");
}

#[test]
fn too_small_vocab_is_an_error() {
    let config = TrainConfig {
        vocab_size: 260,
        ..TrainConfig::default()
    };
    let err =
        njp_tokenizer::train_from_iter(["abc"], &config, None, None, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("smaller than 256"), "{err}");
}

#[test]
fn stops_early_when_pairs_run_out() {
    let config = TrainConfig {
        vocab_size: 256 + 9 + 100,
        ..TrainConfig::default()
    };
    let (tok, stats) =
        njp_tokenizer::train_from_iter(["abab"], &config, None, None, &NoProgress).unwrap();
    assert!(stats.merges < 100);
    assert_eq!(tok.vocab_size(), 256 + stats.merges as usize + 9);
    assert_eq!(tok.encode("abab").len(), 1);
}

#[test]
fn max_chars_stops_after_the_document_that_crosses_it() {
    let docs = common::sample_paragraphs();
    let config = TrainConfig {
        vocab_size: 300,
        ..TrainConfig::default()
    };
    let (_, stats) =
        njp_tokenizer::train_from_iter(docs.clone(), &config, Some(50), Some(5000), &NoProgress)
            .unwrap();
    assert!(stats.chars >= 5000 && stats.chars < 5050, "{}", stats.chars);
    let used = stats.documents as usize;
    let want: u64 = docs[..used]
        .iter()
        .map(|d| d.chars().count().min(50) as u64)
        .sum();
    assert_eq!(stats.chars, want);
}

#[test]
fn two_stage_is_identical_for_any_thread_count() {
    let run = |threads: usize| {
        on_threads(threads, || {
            let (tok, stats) = common::train_two_stage(3000, 1500);
            assert_eq!(stats.threads, threads);
            tok.mergeable_tokens()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
    };
    let one = run(1);
    for threads in [2, 3, 8] {
        assert_eq!(one, run(threads), "{threads} threads");
    }
}

#[test]
fn two_stage_learns_tokens_across_stage1_chunks() {
    let (tok, stats) = common::train_two_stage(3000, 1500);
    assert_eq!(tok.pattern(), &SplitPattern::JaPhrase);
    assert_eq!(tok.vocab_size(), 3000);
    let s2 = stats.stage2.as_ref().expect("stage-2 stats");
    assert_eq!(s2.stage1_merges, 1500 - 256 - 9);
    assert!(s2.stage1_unique_chunks > stats.unique_chunks);
    // Stage-1 tokens never cross a `ja` chunk boundary; stage 2 must learn some that do
    // (e.g. a particle + `。`).
    let fine = njp_tokenizer::Splitter::new(&SplitPattern::Ja).unwrap();
    let crosses =
        |t: &[u8]| std::str::from_utf8(t).is_ok_and(|s| fine.chunks(s).unwrap().len() > 1);
    let tokens: Vec<&[u8]> = tok.mergeable_tokens().collect();
    let stage1 = 1500 - 9;
    assert!(!tokens[..stage1].iter().any(|t| crosses(t)));
    let n = tokens[stage1..].iter().filter(|t| crosses(t)).count();
    assert!(n > 100, "only {n} stage-2 tokens cross a ja chunk boundary");
    // It compresses its own training text better than one stage of `ja` at the same size.
    let text = common::sample_docs().concat();
    let one_stage = common::train(SplitPattern::Ja, 3000).0;
    assert!(tok.encode(&text).len() < one_stage.encode(&text).len());
}

#[test]
fn span_preset_is_deterministic_and_compresses_better_than_one_stage() {
    let docs = common::sample_docs();
    let run = |threads: usize| {
        on_threads(threads, || {
            njp_tokenizer::train_from_iter(
                docs.clone(),
                &TrainConfig::span(1800),
                None,
                None,
                &NoProgress,
            )
            .unwrap()
        })
    };
    let (tok, stats) = run(1);
    let (tok2, _) = run(3);
    assert!(tok.mergeable_tokens().eq(tok2.mergeable_tokens()));
    assert_eq!(tok.pattern(), &SplitPattern::JaSpan);
    assert_eq!(tok.vocab_size(), 1800);
    // 1,800 ids < 2 × 1,024: the second stage starts halfway.
    assert_eq!(stats.stage2.as_ref().unwrap().stage1_merges, 900 - 256 - 9);
    assert_eq!(
        TrainConfig::span(65_536).stage2.unwrap().transition_vocab,
        njp_tokenizer::SPAN_TRANSITION_VOCAB
    );
    let text = docs.concat();
    let one_stage = common::train(SplitPattern::Ja, 1800).0;
    assert!(tok.encode(&text).len() < one_stage.encode(&text).len());
    assert_eq!(tok.decode(&tok.encode(&text)).unwrap(), text);
}

#[test]
fn transition_vocab_out_of_range_is_an_error() {
    for t in [100, 4000] {
        let config = TrainConfig {
            vocab_size: 3000,
            stage2: Some(njp_tokenizer::Stage2 {
                pattern: SplitPattern::JaPhrase,
                transition_vocab: t,
            }),
            ..TrainConfig::default()
        };
        let err =
            njp_tokenizer::train_from_iter(["abc"], &config, None, None, &NoProgress).unwrap_err();
        assert!(err.to_string().contains("transition vocab"), "{err}");
    }
}
