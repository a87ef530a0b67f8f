//! The four canonical record types every dataset in nanochat-jp is stored as.
//!
//! Their JSON form (used by JSONL I/O and by `njp tok render`) is the serde form below; their
//! Arrow form is in [`crate::schema`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of records a dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// [`Document`]: plain text for pretraining and tokenizer training.
    Document,
    /// [`Conversation`]: chat turns for midtraining and SFT.
    Conversation,
    /// [`MultipleChoice`]: questions with choices and an answer index.
    #[serde(rename = "mc")]
    MultipleChoice,
    /// [`MathProblem`]: word problems with calculator-annotated solutions.
    Math,
}

impl Kind {
    /// All kinds, in a stable order.
    pub const ALL: [Kind; 4] = [
        Kind::Document,
        Kind::Conversation,
        Kind::MultipleChoice,
        Kind::Math,
    ];

    /// The short name used on the command line, in manifests and in SQL (`catalog.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Document => "document",
            Kind::Conversation => "conversation",
            Kind::MultipleChoice => "mc",
            Kind::Math => "math",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "document" | "doc" | "documents" => Ok(Kind::Document),
            "conversation" | "conv" | "conversations" | "chat" => Ok(Kind::Conversation),
            "mc" | "multiple_choice" | "multiple-choice" => Ok(Kind::MultipleChoice),
            "math" | "math_problem" => Ok(Kind::Math),
            other => Err(format!(
                "unknown dataset kind `{other}` (expected document, conversation, mc or math)"
            )),
        }
    }
}

/// A plain-text document (pretraining, tokenizer training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique within the dataset.
    pub id: String,
    pub text: String,
    /// Where the row came from (file, hub repo, upstream id…).
    #[serde(default)]
    pub source: String,
    /// Free-form JSON object with anything else worth keeping (title, author, scores…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(format!(
                "unknown role `{other}` (expected system, user or assistant)"
            )),
        }
    }
}

/// What a part of a message is. Only assistant messages carry tool parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// Ordinary text.
    Text,
    /// A calculator / python tool call written by the assistant (supervised in SFT).
    Python,
    /// The tool's output, produced by the interpreter at inference time (never supervised).
    PythonOutput,
}

impl PartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Text => "text",
            PartKind::Python => "python",
            PartKind::PythonOutput => "python_output",
        }
    }
}

impl fmt::Display for PartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(PartKind::Text),
            "python" => Ok(PartKind::Python),
            "python_output" => Ok(PartKind::PythonOutput),
            other => Err(format!(
                "unknown part kind `{other}` (expected text, python or python_output)"
            )),
        }
    }
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub kind: PartKind,
    pub text: String,
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Part {
            kind: PartKind::Text,
            text: text.into(),
        }
    }
    pub fn python(text: impl Into<String>) -> Self {
        Part {
            kind: PartKind::Python,
            text: text.into(),
        }
    }
    pub fn python_output(text: impl Into<String>) -> Self {
        Part {
            kind: PartKind::PythonOutput,
            text: text.into(),
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    /// A message made of a single text part.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            parts: vec![Part::text(text)],
        }
    }

    /// The concatenated text of every part (tool parts included), as a reader would see it.
    pub fn joined_text(&self) -> String {
        self.parts.iter().map(|p| p.text.as_str()).collect()
    }
}

/// A chat conversation: an optional leading system message, then user/assistant turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

/// A multiple-choice question (JCommonsenseQA, JMMLU, KUCI…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipleChoice {
    pub id: String,
    pub question: String,
    pub choices: Vec<String>,
    /// Index into `choices` of the correct answer.
    pub answer: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default)]
    pub source: String,
}

/// A math word problem (GSM8K, MAWPS-ja, MGSM-ja…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MathProblem {
    pub id: String,
    pub question: String,
    /// The worked solution, without the final `#### answer` line. It may contain GSM8K-style
    /// calculator annotations `<<expr=result>>`, which become python tool calls.
    pub solution: String,
    /// The final answer as a normalized number (ASCII digits, no separators, see
    /// [`crate::validate::normalize_number`]).
    pub answer: String,
    #[serde(default)]
    pub source: String,
}

/// A record of any kind, for code that handles datasets generically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Document(Document),
    Conversation(Conversation),
    MultipleChoice(MultipleChoice),
    Math(MathProblem),
}

impl Record {
    /// All of the record's text in one string, for deduplication, filters and contamination
    /// checks: a document's text; a conversation's parts with a newline after each message; a
    /// question and its choices on separate lines; a math question and its solution.
    pub fn text(&self) -> String {
        match self {
            Record::Document(d) => d.text.clone(),
            Record::Conversation(c) => {
                let mut s = String::new();
                for m in &c.messages {
                    for p in &m.parts {
                        s.push_str(&p.text);
                    }
                    s.push('\n');
                }
                s
            }
            Record::MultipleChoice(mc) => {
                let mut s = mc.question.clone();
                for c in &mc.choices {
                    s.push('\n');
                    s.push_str(c);
                }
                s
            }
            Record::Math(m) => format!("{}\n{}", m.question, m.solution),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::Document(_) => Kind::Document,
            Record::Conversation(_) => Kind::Conversation,
            Record::MultipleChoice(_) => Kind::MultipleChoice,
            Record::Math(_) => Kind::Math,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Record::Document(r) => &r.id,
            Record::Conversation(r) => &r.id,
            Record::MultipleChoice(r) => &r.id,
            Record::Math(r) => &r.id,
        }
    }

    /// Checks the record's own invariants (see [`crate::validate`]).
    pub fn validate(&self) -> Result<(), crate::validate::Invalid> {
        match self {
            Record::Document(r) => crate::validate::document(r),
            Record::Conversation(r) => crate::validate::conversation(r),
            Record::MultipleChoice(r) => crate::validate::multiple_choice(r),
            Record::Math(r) => crate::validate::math(r),
        }
    }

    /// Turns the record into a conversation for chat training (documents have none).
    pub fn to_conversation(&self) -> Option<Conversation> {
        match self {
            Record::Document(_) => None,
            Record::Conversation(c) => Some(c.clone()),
            Record::MultipleChoice(mc) => Some(crate::convert::mc_to_conversation(mc)),
            Record::Math(m) => Some(crate::convert::math_to_conversation(m)),
        }
    }
}
