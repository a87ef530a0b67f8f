//! The chat template: a [`Conversation`] to `(ids, mask)`, by nanochat's rules, without silent
//! truncation.
//!
//! | element | tokens | mask |
//! |---|---|---|
//! | start | `<\|bos\|>` | 0 |
//! | user message | `<\|user_start\|>` text `<\|user_end\|>` | 0 |
//! | assistant start | `<\|assistant_start\|>` | 0 |
//! | assistant text part | text | 1 |
//! | python part (tool call) | `<\|python_start\|>` code `<\|python_end\|>` | 1 |
//! | python_output part | `<\|output_start\|>` output `<\|output_end\|>` | 0 |
//! | assistant end | `<\|assistant_end\|>` | 1 |
//!
//! A leading system message is merged into the first user message as `system + "\n\n" + user`
//! (nanochat has no system token). Roles must alternate user, assistant, user…; a conversation
//! may end on a user message. Text is encoded with [`Tokenizer::encode`], so special-token
//! strings inside messages stay plain text.
//!
//! nanochat cut every row at 2,048 tokens without a word, which produced rows with no target
//! and NaN losses (nanochat-spec §8.3). Here the caller picks a [`TruncationPolicy`]:
//! * `Error` (default): a conversation longer than `max_tokens` is an error;
//! * `Drop`: it is skipped (`Ok(None)`);
//! * `Truncate`: whole trailing turns are cut so the row ends with the `<|assistant_end|>` of
//!   the last assistant turn that fits; if not even the first assistant turn fits, it is dropped.
//!
//! A row with zero supervised tokens (no assistant turn) is never returned: an error under
//! `Error`, dropped otherwise. [`RenderReport`] counts the rows and tokens each policy cost.

use std::fmt;
use std::str::FromStr;

use njp_datasets::{Conversation, Message, Part, PartKind, Role};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::special::Special;
use crate::tokenizer::Tokenizer;

/// What to do with a conversation longer than the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncationPolicy {
    /// Fail with [`RenderError::TooLong`].
    #[default]
    Error,
    /// Skip the conversation.
    Drop,
    /// Cut whole trailing turns; the row ends with an `<|assistant_end|>`.
    Truncate,
}

impl FromStr for TruncationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(TruncationPolicy::Error),
            "drop" => Ok(TruncationPolicy::Drop),
            "truncate" => Ok(TruncationPolicy::Truncate),
            o => Err(format!(
                "unknown truncation policy `{o}` (expected error, drop or truncate)"
            )),
        }
    }
}

impl fmt::Display for TruncationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TruncationPolicy::Error => "error",
            TruncationPolicy::Drop => "drop",
            TruncationPolicy::Truncate => "truncate",
        })
    }
}

/// A rendered training row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// Token ids, starting with `<|bos|>`.
    pub ids: Vec<u32>,
    /// 1 where the model is trained to predict the token, 0 elsewhere; same length as `ids`.
    pub mask: Vec<u8>,
}

impl Rendered {
    /// Number of supervised tokens (mask 1).
    pub fn supervised(&self) -> usize {
        self.mask.iter().filter(|&&m| m == 1).count()
    }
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the row is empty (never true for a rendered conversation).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Why a conversation produced no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Longer than the row (under `Drop`, or not even the first assistant turn fits under
    /// `Truncate`).
    TooLong,
    /// No assistant turn, so nothing to learn.
    NoSupervision,
}

/// What rendering did to one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderOutcome {
    /// Rendered whole.
    Kept(Rendered),
    /// Trailing turns were cut.
    Truncated {
        rendered: Rendered,
        /// Length of the whole conversation.
        full_tokens: usize,
        /// Supervised tokens of the whole conversation.
        full_supervised: usize,
        /// Messages cut (after the system merge).
        cut_messages: usize,
    },
    /// No row.
    Dropped {
        reason: DropReason,
        full_tokens: usize,
        full_supervised: usize,
    },
}

impl RenderOutcome {
    /// The row, if any.
    pub fn into_rendered(self) -> Option<Rendered> {
        match self {
            RenderOutcome::Kept(r) | RenderOutcome::Truncated { rendered: r, .. } => Some(r),
            RenderOutcome::Dropped { .. } => None,
        }
    }
}

/// Why a conversation cannot be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The conversation breaks the template's structure rules.
    #[error("conversation `{id}`: {reason}")]
    Invalid { id: String, reason: String },
    /// Longer than `max_tokens` under [`TruncationPolicy::Error`].
    #[error(
        "conversation `{id}`: {tokens} tokens exceed the limit of {max} (truncation policy `error`; use `drop` or `truncate` to accept it)"
    )]
    TooLong {
        id: String,
        tokens: usize,
        max: usize,
    },
    /// No supervised token under [`TruncationPolicy::Error`].
    #[error("conversation `{id}`: no assistant turn, so no supervised tokens")]
    NoSupervision { id: String },
    /// The tokenizer lacks a special token the template needs.
    #[error(transparent)]
    Tokenizer(#[from] Error),
}

/// Rows and tokens kept and lost, accumulated over many conversations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderReport {
    /// Conversations seen (including failures).
    pub rows_in: u64,
    /// Rendered whole.
    pub rows_kept: u64,
    /// Rendered with trailing turns cut.
    pub rows_truncated: u64,
    /// Dropped because too long.
    pub rows_dropped_too_long: u64,
    /// Dropped because nothing was supervised.
    pub rows_dropped_unsupervised: u64,
    /// Failed with an error.
    pub rows_failed: u64,
    /// Tokens of all conversations rendered whole (excluding failures).
    pub tokens_in: u64,
    /// Tokens in the returned rows.
    pub tokens_out: u64,
    /// Tokens removed by truncation.
    pub tokens_truncated: u64,
    /// Tokens of dropped conversations.
    pub tokens_dropped: u64,
    /// Supervised tokens of all conversations rendered whole.
    pub supervised_in: u64,
    /// Supervised tokens in the returned rows.
    pub supervised_out: u64,
}

impl RenderReport {
    /// Counts one outcome.
    pub fn record(&mut self, o: &RenderOutcome) {
        self.rows_in += 1;
        match o {
            RenderOutcome::Kept(r) => {
                self.rows_kept += 1;
                self.tokens_in += r.len() as u64;
                self.tokens_out += r.len() as u64;
                self.supervised_in += r.supervised() as u64;
                self.supervised_out += r.supervised() as u64;
            }
            RenderOutcome::Truncated {
                rendered,
                full_tokens,
                full_supervised,
                ..
            } => {
                self.rows_truncated += 1;
                self.tokens_in += *full_tokens as u64;
                self.tokens_out += rendered.len() as u64;
                self.tokens_truncated += (*full_tokens - rendered.len()) as u64;
                self.supervised_in += *full_supervised as u64;
                self.supervised_out += rendered.supervised() as u64;
            }
            RenderOutcome::Dropped {
                reason,
                full_tokens,
                full_supervised,
            } => {
                match reason {
                    DropReason::TooLong => self.rows_dropped_too_long += 1,
                    DropReason::NoSupervision => self.rows_dropped_unsupervised += 1,
                }
                self.tokens_in += *full_tokens as u64;
                self.tokens_dropped += *full_tokens as u64;
                self.supervised_in += *full_supervised as u64;
            }
        }
    }

    /// Counts one failure.
    pub fn record_error(&mut self) {
        self.rows_in += 1;
        self.rows_failed += 1;
    }

    /// Adds another report (e.g. from another thread).
    pub fn merge(&mut self, o: &RenderReport) {
        self.rows_in += o.rows_in;
        self.rows_kept += o.rows_kept;
        self.rows_truncated += o.rows_truncated;
        self.rows_dropped_too_long += o.rows_dropped_too_long;
        self.rows_dropped_unsupervised += o.rows_dropped_unsupervised;
        self.rows_failed += o.rows_failed;
        self.tokens_in += o.tokens_in;
        self.tokens_out += o.tokens_out;
        self.tokens_truncated += o.tokens_truncated;
        self.tokens_dropped += o.tokens_dropped;
        self.supervised_in += o.supervised_in;
        self.supervised_out += o.supervised_out;
    }
}

impl fmt::Display for RenderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} conversations: {} kept, {} truncated, {} dropped (too long), {} dropped (no assistant turn), {} failed; \
             tokens {} in, {} out ({} cut by truncation, {} in dropped rows); supervised {} in, {} out",
            self.rows_in,
            self.rows_kept,
            self.rows_truncated,
            self.rows_dropped_too_long,
            self.rows_dropped_unsupervised,
            self.rows_failed,
            self.tokens_in,
            self.tokens_out,
            self.tokens_truncated,
            self.tokens_dropped,
            self.supervised_in,
            self.supervised_out
        )
    }
}

/// A renderer with fixed settings that keeps a [`RenderReport`].
#[derive(Debug)]
pub struct ChatRenderer<'a> {
    tok: &'a Tokenizer,
    max_tokens: usize,
    policy: TruncationPolicy,
    report: RenderReport,
}

impl<'a> ChatRenderer<'a> {
    /// A renderer for rows of at most `max_tokens` tokens.
    pub fn new(tok: &'a Tokenizer, max_tokens: usize, policy: TruncationPolicy) -> Self {
        ChatRenderer {
            tok,
            max_tokens,
            policy,
            report: RenderReport::default(),
        }
    }

    /// Renders one conversation and records the outcome.
    ///
    /// # Errors
    /// As [`Tokenizer::render_outcome`].
    pub fn render(&mut self, conv: &Conversation) -> Result<Option<Rendered>, RenderError> {
        match self.tok.render_outcome(conv, self.max_tokens, self.policy) {
            Ok(o) => {
                self.report.record(&o);
                Ok(o.into_rendered())
            }
            Err(e) => {
                self.report.record_error();
                Err(e)
            }
        }
    }

    /// The report so far.
    pub fn report(&self) -> &RenderReport {
        &self.report
    }
}

/// Special ids the template uses.
struct Ids {
    bos: u32,
    user_start: u32,
    user_end: u32,
    assistant_start: u32,
    assistant_end: u32,
    python_start: u32,
    python_end: u32,
    output_start: u32,
    output_end: u32,
}

impl Ids {
    fn of(tok: &Tokenizer) -> Result<Self, Error> {
        Ok(Ids {
            bos: tok.special(Special::Bos)?,
            user_start: tok.special(Special::UserStart)?,
            user_end: tok.special(Special::UserEnd)?,
            assistant_start: tok.special(Special::AssistantStart)?,
            assistant_end: tok.special(Special::AssistantEnd)?,
            python_start: tok.special(Special::PythonStart)?,
            python_end: tok.special(Special::PythonEnd)?,
            output_start: tok.special(Special::OutputStart)?,
            output_end: tok.special(Special::OutputEnd)?,
        })
    }
}

/// The whole conversation rendered, with the length after each assistant turn.
struct Full {
    r: Rendered,
    /// (length after `<|assistant_end|>`, messages up to and including that turn).
    turn_ends: Vec<(usize, usize)>,
    messages: usize,
}

fn invalid(conv: &Conversation, reason: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        id: conv.id.clone(),
        reason: reason.into(),
    }
}

fn plain_text<'c>(
    conv: &Conversation,
    i: usize,
    m: &'c Message,
) -> Result<std::borrow::Cow<'c, str>, RenderError> {
    if let Some(p) = m.parts.iter().find(|p| p.kind != PartKind::Text) {
        return Err(invalid(
            conv,
            format!(
                "message {i} ({}) has a `{}` part; only assistant messages may",
                m.role, p.kind
            ),
        ));
    }
    Ok(match m.parts.as_slice() {
        [one] => std::borrow::Cow::Borrowed(one.text.as_str()),
        parts => std::borrow::Cow::Owned(parts.iter().map(|p| p.text.as_str()).collect()),
    })
}

impl Tokenizer {
    fn render_full(&self, conv: &Conversation) -> Result<Full, RenderError> {
        let ids = Ids::of(self)?;
        let msgs = &conv.messages;
        if msgs.is_empty() {
            return Err(invalid(conv, "no messages"));
        }
        // Merge a leading system message into the first user message.
        let (first_user, rest_from) = if msgs[0].role == Role::System {
            let sys = plain_text(conv, 0, &msgs[0])?;
            match msgs.get(1) {
                Some(m) if m.role == Role::User => {
                    (Some(format!("{sys}\n\n{}", plain_text(conv, 1, m)?)), 2)
                }
                _ => {
                    return Err(invalid(
                        conv,
                        "a system message must be followed by a user message",
                    ));
                }
            }
        } else {
            (None, 0)
        };
        // About 3 bytes of Japanese text per token: one allocation for most conversations.
        let bytes: usize = msgs
            .iter()
            .flat_map(|m| &m.parts)
            .map(|p| p.text.len())
            .sum();
        let mut r = Rendered {
            ids: Vec::with_capacity(bytes / 2 + 4 * msgs.len() + 8),
            mask: Vec::with_capacity(bytes / 2 + 4 * msgs.len() + 8),
        };
        r.ids.push(ids.bos);
        r.mask.push(0);
        let mut turn_ends = Vec::new();
        let push = |r: &mut Rendered, toks: &[u32], m: u8| {
            r.ids.extend_from_slice(toks);
            r.mask.extend(std::iter::repeat_n(m, toks.len()));
        };
        // Encodes straight into the row (no per-part vector).
        let enc = |r: &mut Rendered, text: &str, m: u8| {
            let n0 = r.ids.len();
            self.encode_into(text, &mut r.ids);
            r.mask.extend(std::iter::repeat_n(m, r.ids.len() - n0));
        };
        let mut n = 0; // messages after the merge
        if let Some(u) = &first_user {
            push(&mut r, &[ids.user_start], 0);
            enc(&mut r, u, 0);
            push(&mut r, &[ids.user_end], 0);
            n += 1;
        }
        for (i, m) in msgs.iter().enumerate().skip(rest_from) {
            let want = if n % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            if m.role != want {
                return Err(invalid(
                    conv,
                    format!(
                        "message {i} is `{}` but `{want}` was expected (roles must alternate user, assistant, …)",
                        m.role
                    ),
                ));
            }
            match m.role {
                Role::User => {
                    let text = plain_text(conv, i, m)?;
                    push(&mut r, &[ids.user_start], 0);
                    enc(&mut r, &text, 0);
                    push(&mut r, &[ids.user_end], 0);
                }
                Role::Assistant => {
                    push(&mut r, &[ids.assistant_start], 0);
                    for Part { kind, text } in &m.parts {
                        match kind {
                            PartKind::Text => enc(&mut r, text, 1),
                            PartKind::Python => {
                                push(&mut r, &[ids.python_start], 1);
                                enc(&mut r, text, 1);
                                push(&mut r, &[ids.python_end], 1);
                            }
                            PartKind::PythonOutput => {
                                push(&mut r, &[ids.output_start], 0);
                                enc(&mut r, text, 0);
                                push(&mut r, &[ids.output_end], 0);
                            }
                        }
                    }
                    push(&mut r, &[ids.assistant_end], 1);
                    turn_ends.push((r.ids.len(), n + 1));
                }
                Role::System => unreachable!("checked above"),
            }
            n += 1;
        }
        Ok(Full {
            r,
            turn_ends,
            messages: n,
        })
    }

    /// Renders a conversation for training and says what the policy did.
    ///
    /// # Errors
    /// [`RenderError::Invalid`] for a malformed conversation; under
    /// [`TruncationPolicy::Error`], [`RenderError::TooLong`] and [`RenderError::NoSupervision`].
    pub fn render_outcome(
        &self,
        conv: &Conversation,
        max_tokens: usize,
        policy: TruncationPolicy,
    ) -> Result<RenderOutcome, RenderError> {
        let full = self.render_full(conv)?;
        let full_tokens = full.r.len();
        let full_supervised = full.r.supervised();
        if full_supervised == 0 {
            return match policy {
                TruncationPolicy::Error => Err(RenderError::NoSupervision {
                    id: conv.id.clone(),
                }),
                _ => Ok(RenderOutcome::Dropped {
                    reason: DropReason::NoSupervision,
                    full_tokens,
                    full_supervised,
                }),
            };
        }
        if full_tokens <= max_tokens {
            return Ok(RenderOutcome::Kept(full.r));
        }
        let dropped = RenderOutcome::Dropped {
            reason: DropReason::TooLong,
            full_tokens,
            full_supervised,
        };
        match policy {
            TruncationPolicy::Error => Err(RenderError::TooLong {
                id: conv.id.clone(),
                tokens: full_tokens,
                max: max_tokens,
            }),
            TruncationPolicy::Drop => Ok(dropped),
            TruncationPolicy::Truncate => {
                match full
                    .turn_ends
                    .iter()
                    .rev()
                    .find(|(len, _)| *len <= max_tokens)
                {
                    None => Ok(dropped),
                    Some(&(len, kept)) => {
                        let mut r = full.r;
                        r.ids.truncate(len);
                        r.mask.truncate(len);
                        Ok(RenderOutcome::Truncated {
                            rendered: r,
                            full_tokens,
                            full_supervised,
                            cut_messages: full.messages - kept,
                        })
                    }
                }
            }
        }
    }

    /// Renders a conversation for training: `Ok(None)` when the policy dropped it. A returned row
    /// always has at least one supervised token and at most `max_tokens` tokens.
    ///
    /// # Errors
    /// As [`Tokenizer::render_outcome`].
    pub fn render_conversation(
        &self,
        conv: &Conversation,
        max_tokens: usize,
        policy: TruncationPolicy,
    ) -> Result<Option<Rendered>, RenderError> {
        Ok(self
            .render_outcome(conv, max_tokens, policy)?
            .into_rendered())
    }

    /// The prompt for generation: the conversation without its final assistant message (if it
    /// ends with one), followed by `<|assistant_start|>`.
    ///
    /// # Errors
    /// A malformed conversation, one that does not end with a user turn once the final
    /// assistant message is removed, or a prompt longer than `max_tokens` (never cut).
    pub fn render_for_completion(
        &self,
        conv: &Conversation,
        max_tokens: usize,
    ) -> Result<Vec<u32>, RenderError> {
        let mut c = conv.clone();
        if c.messages.last().is_some_and(|m| m.role == Role::Assistant) {
            c.messages.pop();
        }
        if c.messages.last().is_none_or(|m| m.role != Role::User) {
            return Err(invalid(
                conv,
                "a completion prompt must end with a user message",
            ));
        }
        let full = self.render_full(&c)?;
        let mut ids = full.r.ids;
        ids.push(self.special(Special::AssistantStart)?);
        if ids.len() > max_tokens {
            return Err(RenderError::TooLong {
                id: conv.id.clone(),
                tokens: ids.len(),
                max: max_tokens,
            });
        }
        Ok(ids)
    }
}

/// Parses a conversation from JSON in either form:
/// * the canonical record (`{"id", "messages": [{"role", "parts": [{"kind", "text"}]}], …}`);
/// * nanochat's (`{"messages": [{"role", "content": "…" | [{"type", "text"}]}], …}`).
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_conversation_json(text: &str) -> Result<Conversation, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let msgs = v
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("expected an object with a `messages` array")?;
    let canonical = msgs.iter().all(|m| m.get("parts").is_some());
    if canonical {
        let mut v = v.clone();
        if v.get("id").is_none() {
            v["id"] = serde_json::Value::String(String::new());
        }
        return serde_json::from_value(v).map_err(|e| format!("invalid conversation record: {e}"));
    }
    let id = match v.get("id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role: Role = m
            .get("role")
            .and_then(|r| r.as_str())
            .ok_or_else(|| format!("message {i}: missing `role`"))?
            .parse()
            .map_err(|e| format!("message {i}: {e}"))?;
        let parts = match m.get("content") {
            Some(serde_json::Value::String(s)) => vec![Part::text(s.clone())],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    let kind: PartKind = p
                        .get("type")
                        .and_then(|t| t.as_str())
                        .ok_or_else(|| format!("message {i} part {j}: missing `type`"))?
                        .parse()
                        .map_err(|e| format!("message {i} part {j}: {e}"))?;
                    let text = p
                        .get("text")
                        .and_then(|t| t.as_str())
                        .ok_or_else(|| format!("message {i} part {j}: missing `text`"))?;
                    Ok(Part {
                        kind,
                        text: text.to_string(),
                    })
                })
                .collect::<Result<_, String>>()?,
            _ => {
                return Err(format!(
                    "message {i}: `content` must be a string or a list of parts"
                ));
            }
        };
        messages.push(Message { role, parts });
    }
    Ok(Conversation {
        id,
        messages,
        source: String::new(),
        meta: None,
    })
}
