//! nanochat's special tokens: names, order and roles.
//!
//! They are appended after the mergeable tokens in this order, so with a 65,536 vocabulary
//! `<|bos|>` is 65,527 and `<|output_end|>` 65,535 (nanochat-spec §7.1). Special tokens are
//! never parsed from text: [`crate::Tokenizer::encode`] treats `<|bos|>` in user data as plain
//! bytes; special ids come from the chat renderer or an explicit allow-list
//! ([`crate::Tokenizer::encode_with_special`]).

/// The nine special tokens, in id order.
pub const NANOCHAT_SPECIALS: [&str; 9] = [
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

/// A nanochat special token, for lookups without spelling the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// Document delimiter, prepended to every document and conversation.
    Bos,
    UserStart,
    UserEnd,
    AssistantStart,
    /// End of an assistant turn; also SFT padding.
    AssistantEnd,
    /// Tool call begin.
    PythonStart,
    PythonEnd,
    /// Tool output begin.
    OutputStart,
    OutputEnd,
}

impl Special {
    /// All nine, in id order.
    pub const ALL: [Special; 9] = [
        Special::Bos,
        Special::UserStart,
        Special::UserEnd,
        Special::AssistantStart,
        Special::AssistantEnd,
        Special::PythonStart,
        Special::PythonEnd,
        Special::OutputStart,
        Special::OutputEnd,
    ];

    /// The token string, e.g. `<|bos|>`.
    pub fn name(self) -> &'static str {
        NANOCHAT_SPECIALS[self as usize]
    }
}
