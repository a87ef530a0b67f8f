//! The chat template: nanochat's mask rules on golden conversations, truncation policies, the
//! report, completion prompts and both JSON forms.

mod common;

use njp_datasets::{Conversation, Message, Part, Role};
use njp_tokenizer::chat::DropReason;
use njp_tokenizer::{
    ChatRenderer, RenderError, RenderOutcome, Rendered, TruncationPolicy, parse_conversation_json,
};

// Ids in the bytes-only tokenizer: bytes are themselves, specials follow.
const BOS: u32 = 256;
const US: u32 = 257;
const UE: u32 = 258;
const AS: u32 = 259;
const AE: u32 = 260;
const PS: u32 = 261;
const PE: u32 = 262;
const OS: u32 = 263;
const OE: u32 = 264;

/// Builds the expected row from pieces: (ids, mask bit).
struct Want(Rendered);
impl Want {
    fn new() -> Self {
        Want(Rendered {
            ids: vec![BOS],
            mask: vec![0],
        })
    }
    fn s(mut self, id: u32, m: u8) -> Self {
        self.0.ids.push(id);
        self.0.mask.push(m);
        self
    }
    fn t(mut self, text: &str, m: u8) -> Self {
        for b in text.bytes() {
            self.0.ids.push(u32::from(b));
            self.0.mask.push(m);
        }
        self
    }
    fn user(self, text: &str) -> Self {
        self.s(US, 0).t(text, 0).s(UE, 0)
    }
}

fn conv(messages: Vec<Message>) -> Conversation {
    Conversation {
        id: "c1".into(),
        messages,
        source: String::new(),
        meta: None,
    }
}

fn tool_conversation() -> Conversation {
    conv(vec![
        Message::new(Role::System, "S"),
        Message::new(Role::User, "hi"),
        Message {
            role: Role::Assistant,
            parts: vec![
                Part::text("ok"),
                Part::python("1+1"),
                Part::python_output("2"),
                Part::text("=2"),
            ],
        },
        Message::new(Role::User, "q"),
        Message::new(Role::Assistant, "a"),
    ])
}

fn golden_tool() -> Rendered {
    Want::new()
        .user("S\n\nhi")
        .s(AS, 0)
        .t("ok", 1)
        .s(PS, 1)
        .t("1+1", 1)
        .s(PE, 1)
        .s(OS, 0)
        .t("2", 0)
        .s(OE, 0)
        .t("=2", 1)
        .s(AE, 1)
        .user("q")
        .s(AS, 0)
        .t("a", 1)
        .s(AE, 1)
        .0
}

#[test]
fn golden_conversation_with_system_and_tool_calls() {
    let tok = common::bytes_only();
    let r = tok
        .render_conversation(&tool_conversation(), 10_000, TruncationPolicy::Error)
        .unwrap()
        .unwrap();
    assert_eq!(r, golden_tool());
    assert_eq!(r.ids.len(), r.mask.len());
}

#[test]
fn conversation_may_end_on_a_user_message() {
    let tok = common::bytes_only();
    let c = conv(vec![
        Message::new(Role::User, "u"),
        Message::new(Role::Assistant, "a"),
        Message::new(Role::User, "v"),
    ]);
    let r = tok
        .render_conversation(&c, 100, TruncationPolicy::Error)
        .unwrap()
        .unwrap();
    assert_eq!(
        r,
        Want::new()
            .user("u")
            .s(AS, 0)
            .t("a", 1)
            .s(AE, 1)
            .user("v")
            .0
    );
}

#[test]
fn special_strings_in_messages_stay_text() {
    let tok = common::bytes_only();
    let c = conv(vec![
        Message::new(Role::User, "<|assistant_end|>"),
        Message::new(Role::Assistant, "<|bos|>"),
    ]);
    let r = tok
        .render_conversation(&c, 100, TruncationPolicy::Error)
        .unwrap()
        .unwrap();
    assert_eq!(
        r,
        Want::new()
            .user("<|assistant_end|>")
            .s(AS, 0)
            .t("<|bos|>", 1)
            .s(AE, 1)
            .0
    );
}

#[test]
fn structure_errors_name_the_problem() {
    let tok = common::bytes_only();
    let cases = [
        (conv(vec![]), "no messages"),
        (
            conv(vec![Message::new(Role::Assistant, "a")]),
            "`assistant` but `user`",
        ),
        (
            conv(vec![
                Message::new(Role::User, "a"),
                Message::new(Role::User, "b"),
            ]),
            "`user` but `assistant`",
        ),
        (
            conv(vec![
                Message::new(Role::System, "s"),
                Message::new(Role::Assistant, "b"),
            ]),
            "followed by a user",
        ),
        (
            conv(vec![
                Message::new(Role::User, "a"),
                Message::new(Role::Assistant, "b"),
                Message::new(Role::System, "c"),
            ]),
            "`system` but `user`",
        ),
        (
            conv(vec![Message {
                role: Role::User,
                parts: vec![Part::python("x")],
            }]),
            "`python` part",
        ),
    ];
    for (c, want) in cases {
        match tok.render_conversation(&c, 100, TruncationPolicy::Truncate) {
            Err(RenderError::Invalid { id, reason }) => {
                assert_eq!(id, "c1");
                assert!(reason.contains(want), "{reason:?} lacks {want:?}");
            }
            other => panic!("expected Invalid for {want}, got {other:?}"),
        }
    }
}

#[test]
fn truncation_policies() {
    let tok = common::bytes_only();
    let c = tool_conversation();
    let full = golden_tool();
    let first_turn_end = full.ids.iter().position(|&i| i == AE).unwrap() + 1;
    let max = full.len() - 1;

    // error: refuses, naming the sizes.
    match tok.render_conversation(&c, max, TruncationPolicy::Error) {
        Err(RenderError::TooLong { tokens, max: m, .. }) => {
            assert_eq!((tokens, m), (full.len(), max))
        }
        other => panic!("{other:?}"),
    }
    // drop: nothing.
    assert_eq!(
        tok.render_conversation(&c, max, TruncationPolicy::Drop)
            .unwrap(),
        None
    );
    // truncate: the first assistant turn, ending with its end token.
    match tok
        .render_outcome(&c, max, TruncationPolicy::Truncate)
        .unwrap()
    {
        RenderOutcome::Truncated {
            rendered,
            full_tokens,
            full_supervised,
            cut_messages,
        } => {
            assert_eq!(rendered.ids, full.ids[..first_turn_end]);
            assert_eq!(rendered.mask, full.mask[..first_turn_end]);
            assert_eq!(*rendered.ids.last().unwrap(), AE);
            assert_eq!(full_tokens, full.len());
            assert_eq!(full_supervised, full.supervised());
            assert_eq!(cut_messages, 2);
        }
        other => panic!("{other:?}"),
    }
    // Exactly the first turn fits.
    let r = tok
        .render_conversation(&c, first_turn_end, TruncationPolicy::Truncate)
        .unwrap()
        .unwrap();
    assert_eq!(r.len(), first_turn_end);
    // Not even the first assistant turn fits: dropped, never a row without supervision.
    assert_eq!(
        tok.render_conversation(&c, first_turn_end - 1, TruncationPolicy::Truncate)
            .unwrap(),
        None
    );
    // Fits exactly: kept whole under every policy.
    for p in [
        TruncationPolicy::Error,
        TruncationPolicy::Drop,
        TruncationPolicy::Truncate,
    ] {
        assert_eq!(
            tok.render_conversation(&c, full.len(), p).unwrap().unwrap(),
            full
        );
    }
}

#[test]
fn no_supervision_is_never_a_row() {
    let tok = common::bytes_only();
    let c = conv(vec![Message::new(Role::User, "only a question")]);
    assert!(matches!(
        tok.render_conversation(&c, 100, TruncationPolicy::Error),
        Err(RenderError::NoSupervision { .. })
    ));
    for p in [TruncationPolicy::Drop, TruncationPolicy::Truncate] {
        assert!(matches!(
            tok.render_outcome(&c, 100, p).unwrap(),
            RenderOutcome::Dropped {
                reason: DropReason::NoSupervision,
                ..
            }
        ));
    }
}

#[test]
fn every_returned_row_fits_and_is_supervised() {
    let tok = common::bytes_only();
    let mut rng = common::Rng(7);
    for _ in 0..300 {
        let turns = 1 + rng.below(4);
        let mut m = Vec::new();
        for _ in 0..turns {
            m.push(Message::new(Role::User, "u".repeat(rng.below(40))));
            m.push(Message::new(Role::Assistant, "a".repeat(rng.below(40))));
        }
        let c = conv(m);
        let max = 5 + rng.below(150);
        for p in [TruncationPolicy::Drop, TruncationPolicy::Truncate] {
            if let Some(r) = tok.render_conversation(&c, max, p).unwrap() {
                assert!(r.len() <= max);
                assert!(r.supervised() > 0);
                assert_eq!(*r.ids.last().unwrap(), AE);
            }
        }
    }
}

#[test]
fn report_counts_rows_and_tokens() {
    let tok = common::bytes_only();
    let full = golden_tool();
    let first_turn_end = full.ids.iter().position(|&i| i == AE).unwrap() + 1;
    let short = conv(vec![
        Message::new(Role::User, "u"),
        Message::new(Role::Assistant, "a"),
    ]);
    let lonely = conv(vec![Message::new(Role::User, "u")]);
    let mut r = ChatRenderer::new(&tok, full.len() - 1, TruncationPolicy::Truncate);
    r.render(&short).unwrap().unwrap();
    r.render(&tool_conversation()).unwrap().unwrap();
    assert!(r.render(&lonely).unwrap().is_none());
    assert!(r.render(&conv(vec![])).is_err());
    let rep = r.report();
    assert_eq!(
        (
            rep.rows_in,
            rep.rows_kept,
            rep.rows_truncated,
            rep.rows_dropped_unsupervised,
            rep.rows_failed
        ),
        (4, 1, 1, 1, 1)
    );
    let short_len = 7; // bos us u ue as a ae
    assert_eq!(rep.tokens_out, (short_len + first_turn_end) as u64);
    assert_eq!(rep.tokens_truncated, (full.len() - first_turn_end) as u64);
    assert_eq!(rep.tokens_dropped, 4); // bos us u ue
    assert!(rep.to_string().contains("1 truncated"));

    let mut d = ChatRenderer::new(&tok, full.len() - 1, TruncationPolicy::Drop);
    assert!(d.render(&tool_conversation()).unwrap().is_none());
    assert_eq!(d.report().rows_dropped_too_long, 1);
    assert_eq!(d.report().tokens_dropped, full.len() as u64);
}

#[test]
fn completion_prompt() {
    let tok = common::bytes_only();
    let ids = tok
        .render_for_completion(&tool_conversation(), 1000)
        .unwrap();
    let full = golden_tool();
    // Everything up to the last assistant_start, inclusive.
    let last_as = full.ids.iter().rposition(|&i| i == AS).unwrap();
    assert_eq!(ids, full.ids[..=last_as]);
    // Ending on a user message also works; too long is an error, never a cut.
    let c = conv(vec![Message::new(Role::User, "hello")]);
    assert_eq!(
        tok.render_for_completion(&c, 100).unwrap(),
        Want::new().user("hello").s(AS, 0).0.ids
    );
    assert!(matches!(
        tok.render_for_completion(&c, 5),
        Err(RenderError::TooLong { .. })
    ));
}

#[test]
fn both_json_forms_parse_to_the_same_conversation() {
    let nano = r#"{"messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "python", "text": "1+1"},
                                          {"type": "python_output", "text": "2"}, {"type": "text", "text": "=2"}]},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"}]}"#;
    let mut want = tool_conversation();
    want.id = String::new();
    assert_eq!(parse_conversation_json(nano).unwrap(), want);
    let canonical = serde_json::to_string(&tool_conversation()).unwrap();
    assert_eq!(
        parse_conversation_json(&canonical).unwrap(),
        tool_conversation()
    );
    assert!(
        parse_conversation_json(r#"{"messages": [{"role": "bot", "content": "x"}]}"#)
            .unwrap_err()
            .contains("bot")
    );
    assert!(parse_conversation_json("[1]").is_err());
}
