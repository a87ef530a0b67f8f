//! Adapters from upstream row shapes (JSON objects) to canonical records.
//!
//! Recognized without any mapping:
//!
//! | kind | shapes |
//! |---|---|
//! | conversation | OpenAI `messages` (`content` a string or `[{type, text}]`), canonical `messages` with `parts`, ShareGPT `conversations` (`from`/`value`), Alpaca `instruction`/`input`/`output`, nanochat CustomJSON (a bare array of messages) |
//! | document | `text` |
//! | mc | JCommonsenseQA `question` + `choice0…` + `label`; KUCI `context` + `choice_a…` + `label`; `question` + `choices` + `answer` (index, letter or choice text) |
//! | math | GSM8K `question` + `answer` ending in `#### N`; `question` + `solution` + `answer`; `question` + numeric `answer` |
//!
//! A [`Mapping`] (`--map target=source.path`) points a canonical field at another field first.

use serde_json::{Map, Value};

use crate::records::{
    Conversation, Document, Kind, MathProblem, Message, MultipleChoice, Part, PartKind, Record,
    Role,
};
use crate::validate::normalize_number;

/// `target=source.path` field mappings. A source path is dotted (`a.b.0.c`); several sources
/// separated by `,` make a list (`choices=A,B,C,D`).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub fields: Vec<(String, Vec<String>)>,
}

impl Mapping {
    /// Parses `target=source[,source…]` items.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut fields = Vec::new();
        for item in items {
            let item = item.as_ref();
            let (target, source) = item
                .split_once('=')
                .ok_or_else(|| format!("mapping `{item}` is not `target=source.path`"))?;
            let target = target.trim();
            if target.is_empty() || source.trim().is_empty() {
                return Err(format!("mapping `{item}` is not `target=source.path`"));
            }
            fields.push((
                target.to_string(),
                source.split(',').map(|s| s.trim().to_string()).collect(),
            ));
        }
        Ok(Mapping { fields })
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The object with mapped fields written over the originals.
    pub fn apply(&self, value: &Value) -> Result<Value, String> {
        if self.fields.is_empty() {
            return Ok(value.clone());
        }
        let mut obj = match value {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other.clone());
                m
            }
        };
        for (target, sources) in &self.fields {
            let mut got = Vec::new();
            for s in sources {
                got.push(
                    lookup(value, s)
                        .ok_or_else(|| format!("mapped field `{s}` (for `{target}`) is missing"))?
                        .clone(),
                );
            }
            let v = if got.len() == 1 {
                got.pop().expect("one")
            } else {
                Value::Array(got)
            };
            obj.insert(target.clone(), v);
        }
        Ok(Value::Object(obj))
    }
}

/// Follows a dotted path (`a.b.0.c`) into a JSON value.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Defaults for fields the row does not carry.
#[derive(Debug, Clone)]
pub struct RowDefaults<'a> {
    /// Used when the row has no id field (e.g. `file.jsonl:12`).
    pub id: &'a str,
    /// Used when the row has no `source` field.
    pub source: &'a str,
}

const ID_KEYS: [&str; 7] = ["id", "q_id", "qid", "idx", "dialogue_id", "uid", "uuid"];

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "field `{key}` is {}, expected a string",
            type_name(other)
        )),
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    get_str(obj, key)?.ok_or_else(|| format!("missing field `{key}`"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn id_of(obj: &Map<String, Value>, defaults: &RowDefaults<'_>) -> Result<String, String> {
    for k in ID_KEYS {
        if let Some(v) = obj.get(k) {
            if v.is_null() {
                continue;
            }
            return scalar_string(v).ok_or_else(|| {
                format!(
                    "field `{k}` is {}, expected a string or number",
                    type_name(v)
                )
            });
        }
    }
    Ok(defaults.id.to_string())
}

fn source_of(obj: &Map<String, Value>, defaults: &RowDefaults<'_>) -> Result<String, String> {
    Ok(get_str(obj, "source")?
        .unwrap_or(defaults.source)
        .to_string())
}

fn meta_of(obj: &Map<String, Value>, used: &[&str]) -> Option<Value> {
    let rest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| {
            !used.contains(&k.as_str()) && !ID_KEYS.contains(&k.as_str()) && k.as_str() != "source"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        None
    } else {
        Some(Value::Object(rest))
    }
}

/// Adapts one row to a record of `kind`. The error is the reject reason.
pub fn adapt(
    kind: Kind,
    value: &Value,
    mapping: &Mapping,
    defaults: &RowDefaults<'_>,
) -> Result<Record, String> {
    // Without a mapping the row is used as is (no copy).
    let mapped;
    let value = if mapping.is_empty() {
        value
    } else {
        mapped = mapping.apply(value)?;
        &mapped
    };
    // nanochat CustomJSON: a line that is an array of messages.
    if let (Kind::Conversation, Value::Array(items)) = (kind, value) {
        let messages = messages_from_array(items, "messages")?;
        return Ok(Record::Conversation(Conversation {
            id: defaults.id.to_string(),
            messages,
            source: defaults.source.to_string(),
            meta: None,
        }));
    }
    let Value::Object(obj) = value else {
        return Err(format!(
            "row is {}, expected a JSON object",
            type_name(value)
        ));
    };
    match kind {
        Kind::Document => {
            let text = req_str(obj, "text")?;
            Ok(Record::Document(Document {
                id: id_of(obj, defaults)?,
                text: text.to_string(),
                source: source_of(obj, defaults)?,
                meta: meta_of(obj, &["text", "meta"]).or_else(|| obj.get("meta").cloned()),
            }))
        }
        Kind::Conversation => conversation(obj, defaults).map(Record::Conversation),
        Kind::MultipleChoice => multiple_choice(obj, defaults).map(Record::MultipleChoice),
        Kind::Math => math(obj, defaults).map(Record::Math),
    }
}

fn role(s: &str) -> Result<Role, String> {
    match s.to_ascii_lowercase().as_str() {
        "system" => Ok(Role::System),
        "user" | "human" | "prompter" => Ok(Role::User),
        "assistant" | "gpt" | "bot" | "model" | "chatgpt" => Ok(Role::Assistant),
        other => Err(format!(
            "unsupported role `{other}` (expected system, user or assistant)"
        )),
    }
}

fn parts_of(content: &Value, at: &str) -> Result<Vec<Part>, String> {
    match content {
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let Value::Object(p) = p else {
                    return Err(format!("{at}.{j} is {}, expected an object", type_name(p)));
                };
                let kind = get_str(p, "type")?
                    .or(get_str(p, "kind")?)
                    .unwrap_or("text");
                let kind = match kind {
                    "text" => PartKind::Text,
                    "python" | "tool_call" => PartKind::Python,
                    "python_output" | "tool_output" => PartKind::PythonOutput,
                    other => return Err(format!("{at}.{j}: unsupported part type `{other}`")),
                };
                let text =
                    get_str(p, "text")?.ok_or_else(|| format!("{at}.{j}: missing `text`"))?;
                Ok(Part {
                    kind,
                    text: text.to_string(),
                })
            })
            .collect(),
        other => Err(format!(
            "{at} is {}, expected a string or a list of parts",
            type_name(other)
        )),
    }
}

fn messages_from_array(items: &[Value], field: &str) -> Result<Vec<Message>, String> {
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(format!(
                "{field}.{i} is {}, expected an object",
                type_name(m)
            ));
        };
        let r = get_str(m, "role")?
            .or(get_str(m, "from")?)
            .ok_or_else(|| format!("{field}.{i}: missing `role`"))?;
        let role = role(r).map_err(|e| format!("{field}.{i}: {e}"))?;
        let content = m
            .get("content")
            .or_else(|| m.get("value"))
            .or_else(|| m.get("parts"))
            .or_else(|| m.get("text"))
            .ok_or_else(|| format!("{field}.{i}: missing `content`"))?;
        let parts = parts_of(content, &format!("{field}.{i}.content"))?;
        out.push(Message { role, parts });
    }
    Ok(out)
}

fn conversation(
    obj: &Map<String, Value>,
    defaults: &RowDefaults<'_>,
) -> Result<Conversation, String> {
    let (messages, used): (Vec<Message>, &[&str]) = if let Some(v) = obj.get("messages") {
        let Value::Array(items) = v else {
            return Err(format!(
                "field `messages` is {}, expected an array",
                type_name(v)
            ));
        };
        (messages_from_array(items, "messages")?, &["messages"])
    } else if let Some(v) = obj.get("conversations") {
        let Value::Array(items) = v else {
            return Err(format!(
                "field `conversations` is {}, expected an array",
                type_name(v)
            ));
        };
        (
            messages_from_array(items, "conversations")?,
            &["conversations"],
        )
    } else if obj.contains_key("instruction") && obj.contains_key("output") {
        let instruction = req_str(obj, "instruction")?;
        let input = get_str(obj, "input")?.unwrap_or("");
        let output = req_str(obj, "output")?;
        let user = if input.trim().is_empty() {
            instruction.to_string()
        } else {
            format!("{instruction}\n\n{input}")
        };
        let mut msgs = Vec::new();
        if let Some(system) = get_str(obj, "system")?.filter(|s| !s.trim().is_empty()) {
            msgs.push(Message::new(Role::System, system));
        }
        msgs.push(Message::new(Role::User, user));
        msgs.push(Message::new(Role::Assistant, output));
        (msgs, &["instruction", "input", "output", "system"])
    } else {
        return Err(
            "no conversation fields found (expected `messages`, ShareGPT `conversations`, or Alpaca `instruction`/`output`); use --map messages=<field>".into(),
        );
    };
    Ok(Conversation {
        id: id_of(obj, defaults)?,
        messages,
        source: source_of(obj, defaults)?,
        meta: meta_of(obj, used),
    })
}

/// An answer given as an index (number or numeric string), a letter, or the choice's text.
fn answer_index(v: &Value, choices: &[String], one_based: bool) -> Result<u32, String> {
    let from_index = |i: i64| -> Result<u32, String> {
        let i = if one_based { i - 1 } else { i };
        u32::try_from(i).map_err(|_| format!("answer index {i} is negative"))
    };
    match v {
        Value::Number(n) => {
            let i = n
                .as_i64()
                .ok_or_else(|| format!("answer `{n}` is not an integer index"))?;
            from_index(i)
        }
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return from_index(i);
            }
            let mut chars = t.chars();
            if let (Some(c), None) = (chars.next(), chars.next())
                && c.is_ascii_alphabetic()
            {
                return Ok(u32::from(c.to_ascii_uppercase() as u8 - b'A'));
            }
            choices
                .iter()
                .position(|c| c.trim() == t)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    format!("answer `{t}` is neither an index, a letter, nor one of the choices")
                })
        }
        other => Err(format!(
            "answer is {}, expected an index, a letter or the choice text",
            type_name(other)
        )),
    }
}

fn multiple_choice(
    obj: &Map<String, Value>,
    defaults: &RowDefaults<'_>,
) -> Result<MultipleChoice, String> {
    let question = get_str(obj, "question")?
        .or(get_str(obj, "context")?)
        .ok_or("missing field `question`")?;
    let mut used: Vec<String> = vec!["question".into(), "context".into()];
    let choices: Vec<String> = if let Some(v) = obj.get("choices") {
        used.push("choices".into());
        let Value::Array(items) = v else {
            return Err(format!(
                "field `choices` is {}, expected an array",
                type_name(v)
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, c)| {
                scalar_string(c)
                    .ok_or_else(|| format!("choices.{i} is {}, expected a string", type_name(c)))
            })
            .collect::<Result<_, _>>()?
    } else {
        let mut out = Vec::new();
        for i in 0.. {
            let key_num = format!("choice{i}");
            let key_letter = format!("choice_{}", char::from(b'a' + (i as u8).min(25)));
            let key = if obj.contains_key(&key_num) {
                key_num
            } else if i < 26 && obj.contains_key(&key_letter) {
                key_letter
            } else {
                break;
            };
            let v = &obj[&key];
            out.push(
                scalar_string(v).ok_or_else(|| {
                    format!("field `{key}` is {}, expected a string", type_name(v))
                })?,
            );
            used.push(key);
        }
        if out.is_empty() {
            return Err("no choices found (expected `choices`, `choice0`… or `choice_a`…); use --map choices=a,b,c".into());
        }
        out
    };
    let (answer_key, answer) = ["answer", "label"]
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
        .ok_or("missing field `answer` (or `label`)")?;
    used.push(answer_key.into());
    let answer = answer_index(answer, &choices, false)?;
    let subject = get_str(obj, "subject")?.map(str::to_string);
    Ok(MultipleChoice {
        id: id_of(obj, defaults)?,
        question: question.to_string(),
        choices,
        answer,
        subject,
        source: source_of(obj, defaults)?,
    })
}

fn math(obj: &Map<String, Value>, defaults: &RowDefaults<'_>) -> Result<MathProblem, String> {
    let question = req_str(obj, "question")?;
    let answer_v = obj
        .get("answer")
        .filter(|v| !v.is_null())
        .ok_or("missing field `answer`")?;
    let answer_text = scalar_string(answer_v).ok_or_else(|| {
        format!(
            "field `answer` is {}, expected a string or number",
            type_name(answer_v)
        )
    })?;
    let (solution, answer) = if let Some(solution) = get_str(obj, "solution")? {
        (solution.to_string(), answer_text)
    } else if let Some((before, after)) = answer_text.rsplit_once("####") {
        (before.trim_end().to_string(), after.trim().to_string())
    } else {
        (String::new(), answer_text)
    };
    let answer = normalize_number(&answer).map_err(|e| e.to_string())?;
    Ok(MathProblem {
        id: id_of(obj, defaults)?,
        question: question.to_string(),
        solution,
        answer,
        source: source_of(obj, defaults)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Typed fast path for the most common conversation shapes

/// A JSON Lines row of a known conversation shape straight to a record, without building a
/// `serde_json::Value`: `{"id"?, "conversations": [{"from", "value"}…]}` (ShareGPT) or
/// `{"id"?, "messages": [{"role", "content"}…]}` (OpenAI, string content), with no other fields.
///
/// `None` when the row is anything else (other fields, `null`s, content parts, duplicate keys,
/// an unknown role, invalid JSON…): the caller then parses a `Value` and calls [`adapt`], which
/// gives the record or the reject reason. Whenever this returns a record, it is the one
/// [`adapt`] (without a mapping) makes of the same row.
pub fn conversation_from_json(text: &str, defaults: &RowDefaults<'_>) -> Option<Record> {
    let row: FastRow = serde_json::from_str(text).ok()?;
    let items = match (row.conversations, row.messages) {
        (Some(items), None) | (None, Some(items)) => items,
        _ => return None,
    };
    let mut messages = Vec::with_capacity(items.len());
    for m in items {
        // `role` first, then `from`; `content` first, then `value` (as `messages_from_array`).
        let r = m.role.or(m.from)?;
        let role = role(r).ok()?;
        let content = m.content.or(m.value)?;
        messages.push(Message {
            role,
            parts: vec![Part::text(content)],
        });
    }
    let id = match row.id {
        None => defaults.id.to_string(),
        Some(FastId(id)) => id,
    };
    Some(Record::Conversation(Conversation {
        id,
        messages,
        source: defaults.source.to_string(),
        meta: None,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastRow<'a> {
    #[serde(default)]
    id: Option<FastId>,
    #[serde(default, deserialize_with = "present", borrow)]
    conversations: Option<Vec<FastMessage<'a>>>,
    #[serde(default, deserialize_with = "present", borrow)]
    messages: Option<Vec<FastMessage<'a>>>,
}

/// A message field must be a string when present: `null` fails the typed parse (the generic
/// adapter treats `null` and absent differently for some fields). Roles are borrowed from the
/// line (a role with an escape in it fails the typed parse and takes the generic route).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastMessage<'a> {
    #[serde(default, deserialize_with = "present", borrow)]
    role: Option<&'a str>,
    #[serde(default, deserialize_with = "present", borrow)]
    from: Option<&'a str>,
    #[serde(default, deserialize_with = "present")]
    content: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<String>,
}

/// A present field: `Some`, and `null` is an error (absent fields are `None` by `default`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// An id as [`id_of`] renders it: a string as is, an integer or a boolean as text (`null` is
/// "no id", handled by `Option`). Floats fail the typed parse.
struct FastId(String);

impl<'de> serde::Deserialize<'de> for FastId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FastId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, an integer or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FastId, E> {
                Ok(FastId(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<FastId, E> {
                Ok(FastId(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FastId, E> {
                Ok(FastId(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FastId, E> {
                Ok(FastId(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<FastId, E> {
                Ok(FastId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d() -> RowDefaults<'static> {
        RowDefaults {
            id: "f:1",
            source: "f",
        }
    }

    fn conv(v: Value) -> Conversation {
        match adapt(Kind::Conversation, &v, &Mapping::default(), &d()).unwrap() {
            Record::Conversation(c) => c,
            _ => unreachable!(),
        }
    }

    #[test]
    fn conversation_shapes() {
        let openai = conv(
            json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]}),
        );
        assert_eq!(openai.messages.len(), 2);
        let sharegpt = conv(
            json!({"id": 7, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
        );
        assert_eq!(sharegpt.id, "7");
        assert_eq!(sharegpt.messages[1].role, Role::Assistant);
        let alpaca = conv(json!({"instruction": "訳して", "input": "cat", "output": "猫"}));
        assert_eq!(alpaca.messages[0].parts[0].text, "訳して\n\ncat");
        let custom =
            conv(json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]));
        assert_eq!(custom.id, "f:1");
        let err = adapt(
            Kind::Conversation,
            &json!({"foo": 1}),
            &Mapping::default(),
            &d(),
        )
        .unwrap_err();
        assert!(err.contains("no conversation fields"), "{err}");
        let err = adapt(
            Kind::Conversation,
            &json!({"messages": [{"role": "tool", "content": "x"}]}),
            &Mapping::default(),
            &d(),
        )
        .unwrap_err();
        assert!(err.contains("unsupported role `tool`"), "{err}");
    }

    #[test]
    fn typed_fast_path_agrees_with_adapt() {
        let rows = [
            r#"{"id": "r1", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a\n\u00e9"}]}"#,
            r#"{"conversations": [{"from": "human", "value": "q"}]}"#,
            r#"{"id": 7, "messages": [{"role": "user", "content": "hi"}, {"role": "Assistant", "content": ""}]}"#,
            r#"{"id": -3, "messages": [{"role": "system", "content": "s"}]}"#,
            r#"{"id": true, "messages": []}"#,
            r#"{"id": null, "messages": [{"role": "user", "from": "gpt", "content": "x", "value": "y"}]}"#,
            r#"{"messages": [{"from": "human", "value": "x"}]}"#,
        ];
        for text in rows {
            let fast = conversation_from_json(text, &d()).unwrap_or_else(|| panic!("{text}"));
            let v: Value = serde_json::from_str(text).unwrap();
            let slow = adapt(Kind::Conversation, &v, &Mapping::default(), &d()).unwrap();
            assert_eq!(fast, slow, "{text}");
        }
        // Anything else goes through `adapt` (which makes a record or gives the reason).
        let others = [
            r#"{"id": 1.5, "messages": []}"#,
            r#"{"id": "x", "source": "s", "messages": []}"#,
            r#"{"id": "x", "extra": 1, "messages": []}"#,
            r#"{"messages": [], "conversations": []}"#,
            r#"{"messages": [{"role": "user", "content": null}]}"#,
            r#"{"messages": [{"role": null, "from": "human", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}"#,
            r#"{"messages": [{"role": "tool", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": "x", "content": "y"}]}"#,
            r#"{"messages": [{"role": "user", "content": "x"}]} trailing"#,
            r#"[{"role": "user", "content": "a"}]"#,
            r#"{"instruction": "a", "output": "b"}"#,
            r#"{"id": "x"}"#,
        ];
        for text in others {
            assert!(conversation_from_json(text, &d()).is_none(), "{text}");
        }
    }

    #[test]
    fn mc_shapes() {
        let jcqa = json!({"q_id": 0, "question": "どれ？", "choice0": "世界", "choice1": "写真集", "choice2": "絵本", "label": 2});
        let Record::MultipleChoice(mc) =
            adapt(Kind::MultipleChoice, &jcqa, &Mapping::default(), &d()).unwrap()
        else {
            unreachable!()
        };
        assert_eq!((mc.id.as_str(), mc.choices.len(), mc.answer), ("0", 3, 2));
        let jmmlu = json!({"0": "q", "1": "a", "2": "b", "3": "c", "4": "d", "5": "C"});
        let map = Mapping::parse(&["question=0", "choices=1,2,3,4", "answer=5"]).unwrap();
        let Record::MultipleChoice(mc) = adapt(Kind::MultipleChoice, &jmmlu, &map, &d()).unwrap()
        else {
            unreachable!()
        };
        assert_eq!((mc.choices.len(), mc.answer), (4, 2));
        let kuci = json!({"context": "c", "choice_a": "x", "choice_b": "y", "label": "b"});
        let Record::MultipleChoice(mc) =
            adapt(Kind::MultipleChoice, &kuci, &Mapping::default(), &d()).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(mc.answer, 1);
    }

    #[test]
    fn math_shapes() {
        let gsm =
            json!({"question": "q", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72"});
        let Record::Math(m) = adapt(Kind::Math, &gsm, &Mapping::default(), &d()).unwrap() else {
            unreachable!()
        };
        assert_eq!(m.answer, "72");
        assert_eq!(m.solution, "Natalia sold 48/2 = <<48/2=24>>24 clips.");
        let mawps = json!({"idx": 3, "question": "q", "answer": "０.５"});
        let Record::Math(m) = adapt(Kind::Math, &mawps, &Mapping::default(), &d()).unwrap() else {
            unreachable!()
        };
        assert_eq!((m.answer.as_str(), m.solution.as_str()), ("0.5", ""));
        let bad = json!({"question": "q", "answer": "たくさん"});
        assert!(
            adapt(Kind::Math, &bad, &Mapping::default(), &d())
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn mapping_errors() {
        assert!(Mapping::parse(&["nonsense"]).is_err());
        let map = Mapping::parse(&["text=body.main"]).unwrap();
        let err = adapt(Kind::Document, &json!({"body": {}}), &map, &d()).unwrap_err();
        assert!(err.contains("`body.main`"), "{err}");
        let Record::Document(doc) = adapt(
            Kind::Document,
            &json!({"body": {"main": "本文"}, "title": "t"}),
            &map,
            &d(),
        )
        .unwrap() else {
            unreachable!()
        };
        assert_eq!(doc.text, "本文");
    }
}
