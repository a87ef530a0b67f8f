//! nanochat's `tokenizer.pkl` (a pickled `tiktoken.Encoding`) loads without Python and encodes
//! exactly as tiktoken does. Fixtures: `data/nanochat_pkl/` (written by `generate.py` there with
//! rustbpe + tiktoken; `expected.json` holds tiktoken's ids).

use std::path::{Path, PathBuf};

use njp_tokenizer::pattern::GPT4_PATTERN;
use njp_tokenizer::pickle::{self, PICKLE_FILE, PickleError, TiktokenEncoding, Value};
use njp_tokenizer::{Error, NANOCHAT_SPECIALS, SplitPattern, Tokenizer};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nanochat_pkl")
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(data().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Encodes and decodes every case of `expected.json`'s `which` section with `tok`.
fn assert_matches_tiktoken(tok: &Tokenizer, which: &str) {
    let exp = &expected()[which];
    assert_eq!(tok.vocab_size() as u64, exp["n_vocab"].as_u64().unwrap());
    for (name, id) in exp["special_tokens"].as_object().unwrap() {
        assert_eq!(
            tok.special_id(name).map(u64::from),
            id.as_u64(),
            "special {name}"
        );
    }
    let cases = exp["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text), want, "ids of {text:?}");
        assert_eq!(tok.decode(&want).unwrap(), text);
    }
}

fn pickle_error(e: Error) -> PickleError {
    match e {
        Error::Pickle { source, .. } => source,
        other => panic!("expected a pickle error, got {other:?}"),
    }
}

#[test]
fn every_protocol_loads_and_encodes_like_tiktoken() {
    for protocol in 2..=5 {
        let dir = data().join(format!("protocol{protocol}"));
        let tok = Tokenizer::load(&dir).unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        assert_eq!(
            tok.pattern(),
            &SplitPattern::Gpt4,
            "nanochat's SPLIT_PATTERN"
        );
        assert_eq!(tok.special_tokens(), NANOCHAT_SPECIALS);
        assert_eq!(tok.n_mergeable(), 1015);
        assert_matches_tiktoken(&tok, "nanochat");
        // The pickle file itself loads too.
        let same = Tokenizer::load(dir.join(PICKLE_FILE)).unwrap();
        assert_eq!(
            same.mergeable_tokens().collect::<Vec<_>>(),
            tok.mergeable_tokens().collect::<Vec<_>>()
        );
    }
}

#[test]
fn other_patterns_and_specials_load_as_given() {
    let tok = Tokenizer::load(data().join("custom")).unwrap();
    // rustbpe's default GPT-4 pattern (digit groups of 3) is not nanochat's: a custom regex.
    let SplitPattern::Custom(re) = tok.pattern() else {
        panic!("expected a custom pattern, got {:?}", tok.pattern());
    };
    assert!(re.contains(r"\p{N}{1,3}"), "{re}");
    assert_eq!(tok.special_tokens(), ["<|endoftext|>"]);
    assert!(tok.bos_id().is_err());
    assert_matches_tiktoken(&tok, "custom");
}

#[test]
fn loaded_pickle_round_trips_through_the_native_format() {
    let tok = Tokenizer::load(data().join("protocol4")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    // A directory with both formats loads the native one.
    std::fs::copy(
        data().join("protocol4").join(PICKLE_FILE),
        dir.path().join(PICKLE_FILE),
    )
    .unwrap();
    let back = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(back.pattern(), &SplitPattern::Gpt4);
    assert_matches_tiktoken(&back, "nanochat");
}

#[test]
fn forbidden_globals_are_refused_and_nothing_runs() {
    // generate.py's evil.pkl: a dict whose value is
    // `os.system("echo … > njp-pickle-was-executed")` (pickled as `posix.system` + REDUCE).
    let path = data().join("evil.pkl");
    let err = Tokenizer::load(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("evil.pkl"), "{msg}");
    match pickle_error(err) {
        PickleError::ForbiddenGlobal {
            offset,
            opcode,
            module,
            name,
        } => {
            assert_eq!((module.as_str(), name.as_str()), ("posix", "system"));
            assert_eq!(opcode, "STACK_GLOBAL");
            assert_eq!(offset, 58);
        }
        other => panic!("expected ForbiddenGlobal, got {other:?}"),
    }
    assert!(
        msg.contains("byte 58") && msg.contains("posix.system"),
        "{msg}"
    );
    assert!(!Path::new("njp-pickle-was-executed").exists());
    assert!(!data().join("njp-pickle-was-executed").exists());

    // Protocol 0–2 GLOBAL spelling, and other classics.
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("tiktoken.core", "get_encoding"),
        ("tiktoken.registry", "get_encoding"),
    ] {
        let mut p = vec![0x80, 2, b'c'];
        p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        p.extend_from_slice(b"X\x04\x00\x00\x00true\x85R.");
        match pickle::parse(&p).unwrap_err() {
            PickleError::ForbiddenGlobal {
                offset: 2,
                opcode: "GLOBAL",
                module: m,
                name: n,
            } => assert_eq!((m.as_str(), n.as_str()), (module, name)),
            other => panic!("{module}.{name}: {other:?}"),
        }
    }
}

#[test]
fn truncated_and_corrupt_pickles_are_clear_errors() {
    let path = data().join("protocol4").join(PICKLE_FILE);
    let good = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Cut anywhere: an error naming the file, never a panic or a partial tokenizer.
    let cut = dir.path().join("cut.pkl");
    for len in (0..good.len()).step_by(97).chain([good.len() - 1]) {
        std::fs::write(&cut, &good[..len]).unwrap();
        let err = Tokenizer::load(&cut).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cut.pkl"), "{msg}");
        assert!(
            matches!(
                pickle_error(err),
                PickleError::Truncated { .. } | PickleError::Malformed { .. }
            ),
            "{msg}"
        );
    }
    // Protocol 4 frames its data: the frame length already shows the cut.
    std::fs::write(&cut, &good[..good.len() - 1]).unwrap();
    let msg = Tokenizer::load(&cut).unwrap_err().to_string();
    assert!(
        msg.contains("byte 2: the data ends inside FRAME (truncated file?)"),
        "{msg}"
    );
    // Protocol 3 has no frames.
    let p3 = std::fs::read(data().join("protocol3").join(PICKLE_FILE)).unwrap();
    std::fs::write(&cut, &p3[..p3.len() - 1]).unwrap();
    let msg = Tokenizer::load(&cut).unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("no STOP"),
        "{msg}"
    );

    // An unknown opcode.
    let mut bad = good.clone();
    bad[11] = 0xff;
    match pickle::parse(&bad).unwrap_err() {
        PickleError::UnknownOpcode {
            offset: 11,
            byte: 0xff,
        } => {}
        other => panic!("{other:?}"),
    }
    // Not a pickle at all.
    let json = dir.path().join("tokenizer.pkl");
    std::fs::write(&json, "{\"not\": \"a pickle\"}").unwrap();
    let msg = Tokenizer::load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("tokenizer.pkl") && msg.contains("not a pickle opcode"),
        "{msg}"
    );

    // Any single-byte corruption: an error or a tokenizer, never a panic.
    for i in (0..good.len()).step_by(7) {
        for v in [0x00, 0x28, 0x80, 0x94, 0xff] {
            let mut bad = good.clone();
            bad[i] = v;
            let _ = TiktokenEncoding::from_pickle(&bad).map(|e| e.to_tokenizer());
        }
    }
}

/// A hand-written protocol-4 pickle of a tiktoken Encoding, as tiktoken writes it.
fn encoding_pickle(state: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 4];
    p.extend(unicode("tiktoken.core"));
    p.extend(unicode("Encoding"));
    p.extend([0x93, b')', 0x81]);
    p.extend(state);
    p.extend(b"b.");
    p
}

fn unicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}

fn int(i: i32) -> Vec<u8> {
    let mut v = vec![b'J'];
    v.extend(i.to_le_bytes());
    v
}

fn state(tokens: &[(Vec<u8>, i32)], specials: &[(&str, i32)]) -> Vec<u8> {
    let mut s = vec![b'}', b'('];
    s.extend(unicode("name"));
    s.extend(unicode("rustbpe"));
    s.extend(unicode("pat_str"));
    s.extend(unicode(GPT4_PATTERN));
    s.extend(unicode("mergeable_ranks"));
    s.extend([b'}', b'(']);
    for (t, r) in tokens {
        s.push(b'B');
        s.extend((t.len() as u32).to_le_bytes());
        s.extend(t);
        s.extend(int(*r));
    }
    s.push(b'u');
    s.extend(unicode("special_tokens"));
    s.extend([b'}', b'(']);
    for (name, id) in specials {
        s.extend(unicode(name));
        s.extend(int(*id));
    }
    s.extend([b'u', b'u']);
    s
}

fn bytes_tokens() -> Vec<(Vec<u8>, i32)> {
    (0..=255u8).map(|b| (vec![b], i32::from(b))).collect()
}

fn load_bytes(p: &[u8]) -> Result<Tokenizer, Error> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(PICKLE_FILE), p).unwrap();
    Tokenizer::load(dir.path())
}

#[test]
fn hand_written_encoding_pickles_and_their_vocabulary_checks() {
    let specials: Vec<(&str, i32)> = NANOCHAT_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, 257 + i as i32))
        .collect();
    let mut tokens = bytes_tokens();
    tokens.push((b"ab".to_vec(), 256));
    let tok = load_bytes(&encoding_pickle(&state(&tokens, &specials))).unwrap();
    assert_eq!(tok.vocab_size(), 266);
    assert_eq!(tok.encode("abc"), vec![256, 99]);
    assert_eq!(tok.bos_id().unwrap(), 257);

    let fails = |tokens: &[(Vec<u8>, i32)], specials: &[(&str, i32)], want: &str| {
        let err = load_bytes(&encoding_pickle(&state(tokens, specials))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Format { .. }), "{msg}");
        assert!(msg.contains(PICKLE_FILE) && msg.contains(want), "{msg}");
    };
    // A missing single byte.
    let mut no_a = bytes_tokens();
    no_a[0x41].0 = b"AA".to_vec();
    fails(&no_a, &[], "byte 0x41 is not a token");
    // A gap in the ranks.
    let mut gap = bytes_tokens();
    gap.push((b"ab".to_vec(), 300));
    fails(&gap, &[], "rank 300 is outside 0..257");
    // A repeated rank.
    let mut twice = bytes_tokens();
    twice.push((b"ab".to_vec(), 5));
    fails(&twice, &[], "rank 5 appears twice");
    // Specials that do not follow the ranks.
    fails(
        &tokens,
        &[("<|bos|>", 300)],
        "special token `<|bos|>` has id 300",
    );
    fails(
        &tokens,
        &[("<|bos|>", 257), ("<|user_start|>", 259)],
        "expected 258",
    );

    // A registered encoding pickles by name only.
    let by_name = encoding_pickle(&unicode("cl100k_base"));
    let msg = load_bytes(&by_name).unwrap_err().to_string();
    assert!(msg.contains("registered encoding `cl100k_base`"), "{msg}");
    // Another object shape: a state without ranks.
    let mut no_ranks = vec![b'}', b'('];
    no_ranks.extend(unicode("name"));
    no_ranks.extend(unicode("x"));
    no_ranks.extend(unicode("pat_str"));
    no_ranks.extend(unicode("x"));
    no_ranks.push(b'u');
    let msg = load_bytes(&encoding_pickle(&no_ranks))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no `mergeable_ranks`"), "{msg}");
    // A plain value instead of an Encoding.
    let msg = load_bytes(b"\x80\x04N.").unwrap_err().to_string();
    assert!(msg.contains("not a pickled tiktoken Encoding"), "{msg}");
}

#[test]
fn parse_interprets_the_data_opcodes() {
    // Integers: BININT1, BININT2, BININT (negative), LONG1 (negative, 5 bytes), NONE, booleans,
    // in a TUPLE built from a MARK.
    let p = b"\x80\x05(K\x07M\x00\x01J\xff\xff\xff\xff\x8a\x05\x00\x00\x00\x00\x80N\x88\x89t.";
    assert_eq!(
        pickle::parse(p).unwrap(),
        Value::Tuple(vec![
            Value::Int(7),
            Value::Int(256),
            Value::Int(-1),
            Value::Int(-(1i64 << 39)),
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
        ])
    );
    // A list that holds itself (MEMOIZE, MARK, BINGET, APPENDS): refused, not recursed forever.
    let p = b"\x80\x04]\x94(h\x00K\x01e.";
    assert!(matches!(
        pickle::parse(p).unwrap_err(),
        PickleError::Shape(_)
    ));
    // The memo shares objects: L = []; D = {"k": L}; then L.append(1); (L, D) — D sees [1].
    let p = b"\x80\x04]\x94}\x94\x8c\x01k\x94h\x00s0K\x01ah\x01\x86.";
    assert_eq!(
        pickle::parse(p).unwrap(),
        Value::Tuple(vec![
            Value::List(vec![Value::Int(1)]),
            Value::Dict(vec![(
                Value::Str("k".into()),
                Value::List(vec![Value::Int(1)])
            )]),
        ])
    );
    // Protocol 2 spells bytes as _codecs.encode(str, "latin1").
    let p = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00\xc3\xbfaX\x06\x00\x00\x00latin1\x86R.";
    assert_eq!(pickle::parse(p).unwrap(), Value::Bytes(vec![0xff, b'a']));
    // Unsupported opcodes are named.
    assert_eq!(
        pickle::parse(b"\x80\x04G\x00\x00\x00\x00\x00\x00\x00\x00.")
            .unwrap_err()
            .to_string(),
        "byte 2: opcode BINFLOAT is not supported by this data-only pickle reader"
    );
    // A newer protocol and a stack underflow.
    assert!(
        pickle::parse(b"\x80\x06N.")
            .unwrap_err()
            .to_string()
            .contains("protocol 6")
    );
    assert_eq!(
        pickle::parse(b"\x80\x04(\x86.").unwrap_err().to_string(),
        "byte 3: TUPLE2: needs 2 items on the stack"
    );
    // Shared references cannot blow a small file up into a huge tree.
    let mut p = b"\x80\x04)\x94".to_vec();
    for i in 0..40u8 {
        p.extend([b'h', i, b'h', i, 0x86, 0x94]);
    }
    p.push(b'.');
    assert!(matches!(
        pickle::parse(&p).unwrap_err(),
        PickleError::Shape(s) if s.contains("expand")
    ));
}
