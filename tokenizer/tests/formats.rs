//! Files: native save/load, tiktoken ranks and Hugging Face tokenizer.json read back.

mod common;

use njp_tokenizer::io::{
    HF_FILE, META_FILE, RANKS_FILE, read_hf_tokenizer_json, read_tiktoken_ranks,
};
use njp_tokenizer::{SplitPattern, Tokenizer};

#[test]
fn save_load_round_trip_and_exports_read_back() {
    let (tok, stats) = common::train(SplitPattern::Ja, 1500);
    let dir = tempfile::tempdir().unwrap();
    tok.save_with_stats(dir.path(), &stats).unwrap();
    let back = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.pattern(), &SplitPattern::Ja);
    assert!(back.mergeable_tokens().eq(tok.mergeable_tokens()));
    assert_eq!(back.special_tokens(), tok.special_tokens());
    let text = common::sample_docs().concat();
    assert_eq!(back.encode(&text), tok.encode(&text));

    // tiktoken rank file: base64 lines, rank == id.
    let ranks = read_tiktoken_ranks(&dir.path().join(RANKS_FILE)).unwrap();
    assert!(ranks.iter().map(Vec::as_slice).eq(tok.mergeable_tokens()));
    let first = std::fs::read_to_string(dir.path().join(RANKS_FILE)).unwrap();
    assert_eq!(first.lines().next(), Some("AA== 0"));

    // HF tokenizer.json: same tokens, regex and specials.
    let (hf_tokens, regex, specials) = read_hf_tokenizer_json(&dir.path().join(HF_FILE)).unwrap();
    assert!(
        hf_tokens
            .iter()
            .map(Vec::as_slice)
            .eq(tok.mergeable_tokens())
    );
    assert_eq!(regex, SplitPattern::Ja.regex());
    let want: Vec<(String, u32)> = tok
        .special_tokens()
        .iter()
        .map(|s| (s.clone(), tok.special_id(s).unwrap()))
        .collect();
    assert_eq!(specials, want);

    // Meta records the pattern regex and training stats.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(META_FILE)).unwrap())
            .unwrap();
    assert_eq!(meta["pattern"]["name"], "ja");
    assert_eq!(meta["training"]["merges"], stats.merges);
}

#[test]
fn two_stage_tokenizer_saves_its_coarse_pattern() {
    let (tok, stats) = common::train_two_stage(2000, 1000);
    let dir = tempfile::tempdir().unwrap();
    tok.save_with_stats(dir.path(), &stats).unwrap();
    let back = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(back.pattern(), &SplitPattern::JaPhrase);
    assert!(back.mergeable_tokens().eq(tok.mergeable_tokens()));
    let text = common::sample_docs().concat();
    assert_eq!(back.encode(&text), tok.encode(&text));
    let (_, regex, _) = read_hf_tokenizer_json(&dir.path().join(HF_FILE)).unwrap();
    assert_eq!(regex, SplitPattern::JaPhrase.regex());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(META_FILE)).unwrap())
            .unwrap();
    assert_eq!(meta["pattern"]["name"], "ja-phrase");
    assert_eq!(meta["training"]["stage2"]["stage1_merges"], 1000 - 265);
}

#[test]
fn corrupted_files_are_reported_with_their_path() {
    let tok = common::bytes_only();
    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let ranks = dir.path().join(RANKS_FILE);
    let mut text = std::fs::read_to_string(&ranks).unwrap();
    text.push_str("QUJD 256\n");
    std::fs::write(&ranks, &text).unwrap();
    let err = Tokenizer::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("checksum") && err.contains(RANKS_FILE),
        "{err}"
    );

    std::fs::write(&ranks, "AA== 0\nnot base64 1\n").unwrap();
    let err = read_tiktoken_ranks(&ranks).unwrap_err().to_string();
    assert!(err.contains(":2:"), "{err}");
    std::fs::write(&ranks, "AA== 0\nAQ== 2\n").unwrap();
    assert!(
        read_tiktoken_ranks(&ranks)
            .unwrap_err()
            .to_string()
            .contains("rank 1 is missing")
    );

    let missing = Tokenizer::load(dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope"), "{missing}");
}

#[test]
fn custom_patterns_survive_save_and_load() {
    let tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let p = SplitPattern::Custom(r"\p{L}+|\s+|.".into());
    let tok = Tokenizer::from_tokens(tokens, p.clone(), &["<|bos|>"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let back = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(back.pattern(), &p);
    assert_eq!(back.encode("ab c"), vec![97, 98, 32, 99]);
}
