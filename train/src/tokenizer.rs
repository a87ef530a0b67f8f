//! What training needs from a tokenizer, as a trait, plus a byte-level stand-in.
//!
//! The trainer only sees token ids. [`TokenizerApi`] is the integration point for `njp-tokenizer`
//! (an adapter implements it over `Tokenizer::load(dir)`); [`ByteTokenizer`] (256 byte tokens +
//! nanochat's 9 specials, vocab 265) implements nanochat's `render_conversation` rules so tests
//! and tiny CPU runs work without a trained tokenizer.

use njp_datasets::{Conversation, PartKind, Role};

/// nanochat's nine special tokens, in id order after the ordinary tokens (nanochat-spec §7.1).
pub const SPECIALS: [&str; 9] = [
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
];

/// A conversation rendered for training: token ids and a 0/1 supervision mask of equal length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
}

/// The tokenizer operations training and sampling use.
pub trait TokenizerApi: Send + Sync {
    /// Number of token ids (ordinary + special).
    fn vocab_size(&self) -> usize;
    /// Id of a special token such as `<|bos|>`.
    fn special_id(&self, name: &str) -> Option<u32>;
    /// Encodes ordinary text (special-token text in the input is never parsed as special).
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Decodes ids to text (invalid UTF-8 becomes U+FFFD).
    fn decode(&self, ids: &[u32]) -> String;
    /// Raw UTF-8 byte length of each token, 0 for specials (the bits-per-byte denominator).
    fn token_bytes(&self) -> Vec<u32>;
    /// nanochat's `render_conversation` without any truncation: the caller decides what to do
    /// with conversations that do not fit.
    ///
    /// # Errors
    /// A conversation that breaks the chat template's rules (roles out of order…).
    fn render_conversation(&self, conv: &Conversation) -> Result<Rendered, String>;
    /// nanochat's `render_for_completion`: the conversation without its last assistant message,
    /// followed by `<|assistant_start|>`. A conversation ending on a user message is rendered
    /// whole.
    ///
    /// # Errors
    /// As [`TokenizerApi::render_conversation`].
    fn render_for_completion(&self, conv: &Conversation) -> Result<Vec<u32>, String>;

    /// `<|bos|>`.
    ///
    /// # Panics
    /// When the tokenizer has no `<|bos|>` (every nanochat tokenizer has it).
    fn bos_id(&self) -> u32 {
        self.special_id("<|bos|>").expect("tokenizer has <|bos|>")
    }
}

/// nanochat's chat rendering rules over any `encode` (nanochat-spec §8.2): `<|bos|>`; a leading
/// system message merged into the first user message as `system + "\n\n" + user`; user turns in
/// `<|user_start|>…<|user_end|>` (mask 0); `<|assistant_start|>` (0), assistant text and python
/// calls (1, python wrapped in `<|python_start|>…<|python_end|>`), tool output in
/// `<|output_start|>…<|output_end|>` (0), `<|assistant_end|>` (1). Roles must alternate user,
/// assistant, … starting with user.
///
/// # Errors
/// Roles out of order, a system message not followed by a user message, or a non-text part in
/// a user message.
pub fn render_with(
    conv: &Conversation,
    special: impl Fn(&str) -> u32,
    encode: impl Fn(&str) -> Vec<u32>,
    for_completion: bool,
) -> Result<Rendered, String> {
    let mut messages: Vec<(Role, Vec<(PartKind, String)>)> = conv
        .messages
        .iter()
        .map(|m| {
            (
                m.role,
                m.parts.iter().map(|p| (p.kind, p.text.clone())).collect(),
            )
        })
        .collect();
    if messages.first().is_some_and(|m| m.0 == Role::System) {
        let (_, system) = messages.remove(0);
        let system: String = system.into_iter().map(|(_, t)| t).collect();
        match messages.first_mut() {
            Some((Role::User, parts)) => {
                let user: String = parts.drain(..).map(|(_, t)| t).collect();
                parts.push((PartKind::Text, format!("{system}\n\n{user}")));
            }
            _ => return Err("a system message must be followed by a user message".into()),
        }
    }
    if for_completion && messages.last().is_some_and(|m| m.0 == Role::Assistant) {
        messages.pop();
    }
    let mut out = Rendered::default();
    let push = |ids: Vec<u32>, m: u8, out: &mut Rendered| {
        out.mask.extend(std::iter::repeat_n(m, ids.len()));
        out.ids.extend(ids);
    };
    push(vec![special("<|bos|>")], 0, &mut out);
    for (i, (role, parts)) in messages.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        if *role != expected {
            return Err(format!(
                "message {i} is from {role}, expected {expected} (roles must alternate)"
            ));
        }
        match role {
            Role::User => {
                if parts.iter().any(|(k, _)| *k != PartKind::Text) {
                    return Err(format!("message {i}: user messages can only hold text"));
                }
                let text: String = parts.iter().map(|(_, t)| t.as_str()).collect();
                push(vec![special("<|user_start|>")], 0, &mut out);
                push(encode(&text), 0, &mut out);
                push(vec![special("<|user_end|>")], 0, &mut out);
            }
            Role::Assistant => {
                push(vec![special("<|assistant_start|>")], 0, &mut out);
                for (kind, text) in parts {
                    match kind {
                        PartKind::Text => push(encode(text), 1, &mut out),
                        PartKind::Python => {
                            push(vec![special("<|python_start|>")], 1, &mut out);
                            push(encode(text), 1, &mut out);
                            push(vec![special("<|python_end|>")], 1, &mut out);
                        }
                        PartKind::PythonOutput => {
                            push(vec![special("<|output_start|>")], 0, &mut out);
                            push(encode(text), 0, &mut out);
                            push(vec![special("<|output_end|>")], 0, &mut out);
                        }
                    }
                }
                push(vec![special("<|assistant_end|>")], 1, &mut out);
            }
            Role::System => {
                unreachable!("only a leading system message is allowed and it was merged")
            }
        }
    }
    if for_completion {
        push(vec![special("<|assistant_start|>")], 0, &mut out);
    }
    Ok(out)
}

/// Byte-level tokenizer: ids 0–255 are bytes, 256–264 nanochat's specials. A stand-in for tests
/// and quick CPU runs; real runs use `njp-tokenizer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl TokenizerApi for ByteTokenizer {
    fn vocab_size(&self) -> usize {
        256 + SPECIALS.len()
    }
    fn special_id(&self, name: &str) -> Option<u32> {
        SPECIALS
            .iter()
            .position(|s| *s == name)
            .map(|i| 256 + i as u32)
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        let mut out = String::new();
        for &id in ids {
            if id < 256 {
                bytes.push(id as u8);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
                out.push_str(SPECIALS.get(id as usize - 256).copied().unwrap_or("<|?|>"));
            }
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        out
    }
    fn token_bytes(&self) -> Vec<u32> {
        (0..self.vocab_size()).map(|i| u32::from(i < 256)).collect()
    }
    fn render_conversation(&self, conv: &Conversation) -> Result<Rendered, String> {
        render_with(
            conv,
            |s| self.special_id(s).expect("known special"),
            |t| self.encode(t),
            false,
        )
    }
    fn render_for_completion(&self, conv: &Conversation) -> Result<Vec<u32>, String> {
        render_with(
            conv,
            |s| self.special_id(s).expect("known special"),
            |t| self.encode(t),
            true,
        )
        .map(|r| r.ids)
    }
}

/// A trained `njp-tokenizer` (the one `njp tok train` writes) as the trainer's tokenizer: its own
/// chat template renders conversations (nanochat's rules), whole — rows that do not fit are the
/// packer's to skip and report, never cut here.
impl TokenizerApi for njp_tokenizer::Tokenizer {
    fn vocab_size(&self) -> usize {
        njp_tokenizer::Tokenizer::vocab_size(self)
    }
    fn special_id(&self, name: &str) -> Option<u32> {
        njp_tokenizer::Tokenizer::special_id(self, name)
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        njp_tokenizer::Tokenizer::encode(self, text)
    }
    fn decode(&self, ids: &[u32]) -> String {
        // Unknown ids cannot come out of a model whose vocabulary matches; if they do, show them.
        njp_tokenizer::Tokenizer::decode(self, ids).unwrap_or_else(|e| format!("<{e}>"))
    }
    fn token_bytes(&self) -> Vec<u32> {
        njp_tokenizer::Tokenizer::token_bytes(self)
    }
    fn render_conversation(&self, conv: &Conversation) -> Result<Rendered, String> {
        use njp_tokenizer::{RenderOutcome, TruncationPolicy};
        match self
            .render_outcome(conv, usize::MAX, TruncationPolicy::Drop)
            .map_err(|e| e.to_string())?
        {
            RenderOutcome::Kept(r) | RenderOutcome::Truncated { rendered: r, .. } => Ok(Rendered {
                ids: r.ids,
                mask: r.mask,
            }),
            RenderOutcome::Dropped { reason, .. } => Err(format!(
                "conversation `{}` gives no training row ({reason:?})",
                conv.id
            )),
        }
    }
    fn render_for_completion(&self, conv: &Conversation) -> Result<Vec<u32>, String> {
        njp_tokenizer::Tokenizer::render_for_completion(self, conv, usize::MAX)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use njp_datasets::{Message, Part};

    fn conv(messages: Vec<Message>) -> Conversation {
        Conversation {
            id: "c".into(),
            messages,
            source: String::new(),
            meta: None,
        }
    }

    #[test]
    fn nanochat_masking_rules() {
        let t = ByteTokenizer;
        let c = conv(vec![
            Message::new(Role::System, "S"),
            Message::new(Role::User, "U"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::text("a"),
                    Part::python("1+1"),
                    Part::python_output("2"),
                    Part::text("b"),
                ],
            },
        ]);
        let r = t.render_conversation(&c).unwrap();
        let sp = |s| t.special_id(s).unwrap();
        let mut want_ids = vec![sp("<|bos|>"), sp("<|user_start|>")];
        want_ids.extend(t.encode("S\n\nU"));
        want_ids.extend([
            sp("<|user_end|>"),
            sp("<|assistant_start|>"),
            u32::from(b'a'),
            sp("<|python_start|>"),
        ]);
        want_ids.extend(t.encode("1+1"));
        want_ids.extend([
            sp("<|python_end|>"),
            sp("<|output_start|>"),
            u32::from(b'2'),
            sp("<|output_end|>"),
        ]);
        want_ids.extend([u32::from(b'b'), sp("<|assistant_end|>")]);
        assert_eq!(r.ids, want_ids);
        let want_mask: Vec<u8> = vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1];
        assert_eq!(r.mask, want_mask);
        let p = t.render_for_completion(&c).unwrap();
        assert_eq!(p.last(), Some(&sp("<|assistant_start|>")));
        assert_eq!(p.len(), 8);
        assert_eq!(t.decode(&p[..3]), "<|bos|><|user_start|>S");
    }

    #[test]
    fn role_order_is_checked() {
        let c = conv(vec![Message::new(Role::Assistant, "x")]);
        assert!(
            ByteTokenizer
                .render_conversation(&c)
                .unwrap_err()
                .contains("expected user")
        );
        let c = conv(vec![
            Message::new(Role::System, "x"),
            Message::new(Role::Assistant, "y"),
        ]);
        assert!(
            ByteTokenizer
                .render_conversation(&c)
                .unwrap_err()
                .contains("system message")
        );
    }

    #[test]
    fn japanese_bytes_round_trip() {
        let t = ByteTokenizer;
        let ids = t.encode("日本語");
        assert_eq!(ids.len(), 9);
        assert_eq!(t.decode(&ids), "日本語");
        assert_eq!(t.token_bytes().iter().sum::<u32>(), 256);
    }
}
