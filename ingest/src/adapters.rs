//! Recipe adapters: upstream rows → canonical records.
//!
//! `generic` is [`njp_datasets::adapt`] (OpenAI / ShareGPT / Alpaca / JCQA / KUCI / GSM8K…) plus
//! a field mapping; the others handle layouts that need more than renaming fields:
//! OpenAssistant message trees, KUCI's morpheme-split text, OpenMathInstruct code solutions and
//! RealPersonaChat two-speaker dialogues.

use std::collections::HashMap;

use njp_datasets::adapt::{Mapping, RowDefaults, adapt, conversation_from_json, lookup};
use njp_datasets::validate::normalize_number;
use njp_datasets::{Conversation, Kind, MathProblem, Message, Part, Record, Role};
use serde_json::Value;

use crate::recipe::{AdapterKind, Branches, CodeMode, FieldFilter, IfMissing, Recipe};

/// What an adapter made of a row.
#[derive(Debug)]
pub enum Adapted {
    Records(Vec<Record>),
    /// The row is valid but not wanted (reason counted in the stats).
    Dropped(String),
}

/// Row-level context.
pub struct RowCtx<'a> {
    /// Default id (`file:line`).
    pub id: &'a str,
    /// The record's `source` (recipe name).
    pub source: &'a str,
    /// The input file's stem (JMMLU subjects).
    pub file_stem: &'a str,
}

/// Applies the recipe's raw-field filters. `Ok(None)` = keep, `Ok(Some(reason))` = drop,
/// `Err` = reject.
pub fn field_filters(filters: &[FieldFilter], value: &Value) -> Result<Option<String>, String> {
    for f in filters {
        let Some(v) = lookup(value, &f.field).filter(|v| !v.is_null()) else {
            match f.if_missing {
                IfMissing::Reject => return Err(format!("filter field `{}` is missing", f.field)),
                IfMissing::Drop => return Ok(Some(format!("filter: `{}` missing", f.field))),
                IfMissing::Keep => continue,
            }
        };
        let num = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        if f.min.is_some() || f.max.is_some() {
            let Some(x) = num else {
                return Err(format!(
                    "filter field `{}` is `{v}`, expected a number",
                    f.field
                ));
            };
            if let Some(min) = f.min
                && x < min
            {
                return Ok(Some(format!("filter: `{}` < {min}", f.field)));
            }
            if let Some(max) = f.max
                && x > max
            {
                return Ok(Some(format!("filter: `{}` > {max}", f.field)));
            }
        }
        if let Some(eq) = &f.equals
            && !loose_eq(v, eq)
        {
            return Ok(Some(format!("filter: `{}` != {eq}", f.field)));
        }
        if !f.one_of.is_empty() && !f.one_of.iter().any(|x| loose_eq(v, x)) {
            return Ok(Some(format!(
                "filter: `{}` not in the allowed values",
                f.field
            )));
        }
        if f.not_one_of.iter().any(|x| loose_eq(v, x)) {
            return Ok(Some(format!("filter: `{}` = {v}", f.field)));
        }
    }
    Ok(None)
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::Bool(x), Value::Number(n)) | (Value::Number(n), Value::Bool(x)) => {
            n.as_f64() == Some(f64::from(u8::from(*x)))
        }
        _ => a == b,
    }
}

/// Adapts one row with a row-local adapter (everything but `oasst_tree`).
pub fn adapt_row(
    recipe: &Recipe,
    mapping: &Mapping,
    value: &Value,
    ctx: &RowCtx<'_>,
) -> Result<Adapted, String> {
    let a = &recipe.adapter;
    let defaults = RowDefaults {
        id: ctx.id,
        source: ctx.source,
    };
    match a.kind {
        AdapterKind::Generic | AdapterKind::Kuci => {
            let mut rec = adapt(recipe.kind, value, mapping, &defaults)?;
            set_source(&mut rec, ctx.source);
            match &mut rec {
                Record::MultipleChoice(mc) => {
                    if a.kind == AdapterKind::Kuci {
                        mc.question = join_morphemes(&mc.question);
                        for c in &mut mc.choices {
                            *c = join_morphemes(c);
                        }
                    }
                    mc.question = strip(&mc.question, &a.strip_prefix, &a.strip_suffix);
                    if a.subject_from_file && mc.subject.is_none() {
                        mc.subject = Some(ctx.file_stem.to_string());
                    }
                }
                Record::Math(m) => {
                    m.question = strip(&m.question, &a.strip_prefix, &a.strip_suffix);
                }
                _ => {}
            }
            Ok(Adapted::Records(vec![rec]))
        }
        AdapterKind::OpenMath => open_math(recipe, mapping, value, ctx),
        AdapterKind::PersonaChat => persona_chat(mapping, value, ctx),
        AdapterKind::OasstTree => Err("oasst_tree rows are adapted per tree".into()),
    }
}

/// Whether this recipe's JSON Lines rows may take the typed fast path ([`adapt_line`]): the
/// generic adapter making conversations, without a field mapping or raw-field filters.
pub fn line_fast_path(recipe: &Recipe, mapping: &Mapping) -> bool {
    recipe.adapter.kind == AdapterKind::Generic
        && recipe.kind == Kind::Conversation
        && mapping.is_empty()
        && recipe.filter.fields.is_empty()
}

/// Adapts a JSON Lines row straight from its text when it has a known conversation shape
/// ([`conversation_from_json`]); the record is the one [`adapt_row`] makes of the parsed row.
/// `None`: parse the row and use [`adapt_row`]. Only for recipes passing [`line_fast_path`].
pub fn adapt_line(text: &str, ctx: &RowCtx<'_>) -> Option<Record> {
    let defaults = RowDefaults {
        id: ctx.id,
        source: ctx.source,
    };
    let mut rec = conversation_from_json(text, &defaults)?;
    set_source(&mut rec, ctx.source);
    Some(rec)
}

fn set_source(rec: &mut Record, source: &str) {
    let s = match rec {
        Record::Document(d) => &mut d.source,
        Record::Conversation(c) => &mut c.source,
        Record::MultipleChoice(m) => &mut m.source,
        Record::Math(m) => &mut m.source,
    };
    if s.is_empty()
        || s.ends_with(".jsonl")
        || s.ends_with(".json")
        || s.ends_with(".parquet")
        || s.ends_with(".csv")
        || s.ends_with(".tsv")
    {
        *s = source.to_string();
    }
}

fn strip(s: &str, prefixes: &[String], suffixes: &[String]) -> String {
    let mut t = s.trim();
    for p in prefixes {
        if let Some(r) = t.strip_prefix(p.as_str()) {
            t = r.trim_start();
        }
    }
    for p in suffixes {
        if let Some(r) = t.strip_suffix(p.as_str()) {
            t = r.trim_end();
        }
    }
    t.to_string()
}

/// KUCI text is Juman++ morphemes joined by spaces: remove them, keeping a space only between
/// two ASCII alphanumerics (`iPhone 12`).
pub fn join_morphemes(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars[i + 1..].iter().find(|c| **c != ' ');
            if let (Some(p), Some(n)) = (prev, next)
                && p.is_ascii_alphanumeric()
                && n.is_ascii_alphanumeric()
                && !out.ends_with(' ')
            {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn str_field<'a>(value: &'a Value, field: &str) -> Result<&'a str, String> {
    match lookup(value, field) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(format!("missing field `{field}`")),
        Some(other) => Err(format!("field `{field}` is `{other}`, expected a string")),
    }
}

fn id_field(value: &Value, keys: &[&str], default: &str) -> String {
    for k in keys {
        match lookup(value, k) {
            Some(Value::String(s)) if !s.is_empty() => return s.clone(),
            Some(Value::Number(n)) => return n.to_string(),
            _ => {}
        }
    }
    default.to_string()
}

/// One piece of an OpenMathInstruct solution.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Code {
        code: String,
        output: Option<String>,
    },
}

/// Splits `text <llm-code>code</llm-code> <llm-code-output>out</llm-code-output> text…`.
fn code_pieces(solution: &str) -> Result<Vec<Piece>, String> {
    const OPEN: &str = "<llm-code>";
    const CLOSE: &str = "</llm-code>";
    const OUT_OPEN: &str = "<llm-code-output>";
    const OUT_CLOSE: &str = "</llm-code-output>";
    let mut out = Vec::new();
    let mut rest = solution;
    while let Some(o) = rest.find(OPEN) {
        if !rest[..o].trim().is_empty() {
            out.push(Piece::Text(rest[..o].trim().to_string()));
        }
        let after = &rest[o + OPEN.len()..];
        let c = after.find(CLOSE).ok_or("unclosed <llm-code> block")?;
        let code = after[..c].trim_matches('\n').to_string();
        rest = &after[c + CLOSE.len()..];
        let mut output = None;
        let trimmed = rest.trim_start();
        if let Some(o2) = trimmed.strip_prefix(OUT_OPEN) {
            let c2 = o2
                .find(OUT_CLOSE)
                .ok_or("unclosed <llm-code-output> block")?;
            output = Some(o2[..c2].trim().to_string());
            rest = &o2[c2 + OUT_CLOSE.len()..];
        }
        out.push(Piece::Code { code, output });
    }
    if rest.contains(CLOSE) || rest.contains(OUT_OPEN) {
        return Err("stray </llm-code> or <llm-code-output> tag".into());
    }
    if !rest.trim().is_empty() {
        out.push(Piece::Text(rest.trim().to_string()));
    }
    Ok(out)
}

/// A code block that is one arithmetic expression (optionally inside `print(…)`).
fn calculator_expr(code: &str) -> Option<String> {
    let line = code.trim();
    if line.contains('\n') {
        return None;
    }
    let inner = line
        .strip_prefix("print(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(line)
        .trim();
    (!inner.is_empty()
        && inner.chars().all(|c| "0123456789+-*/(). ".contains(c))
        && !inner.contains("**"))
    .then(|| inner.to_string())
}

fn open_math(
    recipe: &Recipe,
    mapping: &Mapping,
    value: &Value,
    ctx: &RowCtx<'_>,
) -> Result<Adapted, String> {
    let a = &recipe.adapter;
    let value = mapping.apply(value)?;
    let q = str_field(&value, a.question_field.as_deref().unwrap_or("question"))?;
    let sol = str_field(
        &value,
        a.solution_field.as_deref().unwrap_or("generated_solution"),
    )?;
    let id = id_field(&value, &["id", "idx"], ctx.id);
    let pieces = code_pieces(sol)?;
    match a.code.unwrap_or_default() {
        CodeMode::Python => {
            let mut parts = Vec::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => parts.push(Part::text(t)),
                    Piece::Code { code, output } => {
                        if code.trim().is_empty() {
                            return Err("empty <llm-code> block".into());
                        }
                        parts.push(Part::python(code));
                        if let Some(o) = output.filter(|o| !o.is_empty()) {
                            parts.push(Part::python_output(o));
                        }
                    }
                }
            }
            Ok(Adapted::Records(vec![Record::Conversation(Conversation {
                id,
                messages: vec![
                    Message::new(Role::User, q),
                    Message {
                        role: Role::Assistant,
                        parts,
                    },
                ],
                source: ctx.source.to_string(),
                meta: None,
            })]))
        }
        CodeMode::Calculator => {
            let ans_field = a.answer_field.as_deref().unwrap_or("expected_answer");
            let answer = match lookup(&value, ans_field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(format!("missing field `{ans_field}`")),
            };
            let Ok(answer) = normalize_number(&answer) else {
                return Ok(Adapted::Dropped("open_math: answer is not a number".into()));
            };
            let mut solution = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => {
                        if !solution.is_empty() {
                            solution.push('\n');
                        }
                        solution.push_str(&t);
                    }
                    Piece::Code { code, output } => {
                        let Some(expr) = calculator_expr(&code) else {
                            return Ok(Adapted::Dropped(
                                "open_math: code is not a calculator expression".into(),
                            ));
                        };
                        let Some(out) = output else {
                            return Ok(Adapted::Dropped(
                                "open_math: code block without output".into(),
                            ));
                        };
                        if njp_datasets::validate::check_annotation(&expr, &out).is_err() {
                            return Ok(Adapted::Dropped(
                                "open_math: output differs from the expression's value".into(),
                            ));
                        }
                        solution.push_str(&format!(" <<{expr}={out}>>{out}"));
                    }
                }
            }
            Ok(Adapted::Records(vec![Record::Math(MathProblem {
                id,
                question: q.to_string(),
                solution: solution.trim().to_string(),
                answer,
                source: ctx.source.to_string(),
            })]))
        }
    }
}

fn persona_chat(mapping: &Mapping, value: &Value, ctx: &RowCtx<'_>) -> Result<Adapted, String> {
    let value = mapping.apply(value)?;
    let speakers = match lookup(&value, "interlocutors") {
        Some(Value::Array(a)) if a.len() == 2 => a.clone(),
        _ => return Err("`interlocutors` must be a list of the two speaker ids".into()),
    };
    let Some(Value::Array(utts)) = lookup(&value, "utterances") else {
        return Err("missing field `utterances` (a list)".into());
    };
    let mut msgs: Vec<Message> = Vec::new();
    for (i, u) in utts.iter().enumerate() {
        let who = lookup(u, "interlocutor_id")
            .ok_or_else(|| format!("utterances.{i}: missing `interlocutor_id`"))?;
        let text = match lookup(u, "text") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(format!("utterances.{i}: missing `text`")),
        };
        let role = if *who == speakers[0] {
            Role::User
        } else if *who == speakers[1] {
            Role::Assistant
        } else {
            return Err(format!(
                "utterances.{i}: speaker {who} is not one of the interlocutors"
            ));
        };
        match msgs.last_mut() {
            Some(last) if last.role == role => {
                last.parts[0].text.push('\n');
                last.parts[0].text.push_str(text);
            }
            _ => msgs.push(Message::new(role, text)),
        }
    }
    if msgs.last().is_some_and(|m| m.role == Role::User) {
        msgs.pop();
    }
    if msgs.is_empty() {
        return Ok(Adapted::Dropped("persona_chat: no assistant turn".into()));
    }
    let id = match lookup(&value, "dialogue_id") {
        Some(Value::Number(n)) => format!("rpc-{n}"),
        Some(Value::String(s)) => format!("rpc-{s}"),
        _ => ctx.id.to_string(),
    };
    Ok(Adapted::Records(vec![Record::Conversation(Conversation {
        id,
        messages: msgs,
        source: ctx.source.to_string(),
        meta: None,
    })]))
}

/// OpenAssistant message trees, collected row by row and turned into conversations at the end.
#[derive(Default)]
pub struct OasstForest {
    nodes: Vec<OasstNode>,
    by_id: HashMap<String, usize>,
    /// Messages dropped by `drop_flags` (with their replies: counted at `finish`).
    pub flagged: u64,
}

struct OasstNode {
    id: String,
    parent: Option<String>,
    role: Role,
    text: String,
    rank: Option<f64>,
    flagged: bool,
    origin: String,
}

/// Counts from building conversations out of trees.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OasstStats {
    pub messages: u64,
    pub trees: u64,
    pub conversations: u64,
    /// Messages removed by a drop flag, their replies included.
    pub flagged_removed: u64,
    /// Messages whose parent is not in the input.
    pub orphans: u64,
    /// Messages on no chosen path (other replies with `branches = "best"`, trailing prompts).
    pub not_followed: u64,
}

impl OasstForest {
    /// Adds one message row. `origin` names it in errors (`file:line`).
    pub fn add(
        &mut self,
        recipe: &Recipe,
        mapping: &Mapping,
        value: &Value,
        origin: &str,
    ) -> Result<(), String> {
        let a = &recipe.adapter;
        let value = mapping.apply(value)?;
        let id = id_field(&value, &["message_id"], "");
        if id.is_empty() {
            return Err("missing field `message_id`".into());
        }
        let parent = match lookup(&value, "parent_id") {
            None | Some(Value::Null) => None,
            // pandas-exported dumps (kunishou/oasst1-89k-ja) write a root's missing parent as "nan".
            Some(Value::String(s)) if s.is_empty() || s == "nan" => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(format!("field `parent_id` is `{other}`, expected a string"));
            }
        };
        let role = match str_field(&value, "role")? {
            "prompter" | "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(format!(
                    "unsupported role `{other}` (expected prompter or assistant)"
                ));
            }
        };
        let text = str_field(&value, a.text_field.as_deref().unwrap_or("text"))?.to_string();
        let rank = lookup(&value, "rank").and_then(Value::as_f64);
        let flagged = a.drop_flags.iter().any(|f| match lookup(&value, f) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() == Some(1.0),
            Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
            _ => false,
        });
        if self.by_id.contains_key(&id) {
            return Err(format!("duplicate message_id `{id}`"));
        }
        self.by_id.insert(id.clone(), self.nodes.len());
        self.nodes.push(OasstNode {
            id,
            parent,
            role,
            text,
            rank,
            flagged,
            origin: origin.to_string(),
        });
        Ok(())
    }

    /// Conversations (root-to-leaf paths) in input order of their roots, and the stats.
    pub fn finish(
        &self,
        branches: Branches,
        source: &str,
    ) -> (Vec<(String, Conversation)>, OasstStats) {
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        let mut st = OasstStats {
            messages: self.nodes.len() as u64,
            ..OasstStats::default()
        };
        for (i, n) in self.nodes.iter().enumerate() {
            match &n.parent {
                None => roots.push(i),
                Some(p) => match self.by_id.get(p) {
                    Some(&pi) => children.entry(pi).or_default().push(i),
                    None => st.orphans += 1,
                },
            }
        }
        // Best-ranked reply first (rank 0 best; unranked after ranked, in input order).
        for v in children.values_mut() {
            v.sort_by(|&a, &b| {
                let ra = self.nodes[a].rank.unwrap_or(f64::INFINITY);
                let rb = self.nodes[b].rank.unwrap_or(f64::INFINITY);
                ra.total_cmp(&rb).then(a.cmp(&b))
            });
        }
        fn subtree(i: usize, children: &HashMap<usize, Vec<usize>>) -> u64 {
            1 + children
                .get(&i)
                .map_or(0, |c| c.iter().map(|&j| subtree(j, children)).sum())
        }
        let mut out = Vec::new();
        for &r in &roots {
            st.trees += 1;
            if self.nodes[r].flagged {
                st.flagged_removed += subtree(r, &children);
                continue;
            }
            let mut paths: Vec<Vec<usize>> = Vec::new();
            let mut stack = vec![vec![r]];
            while let Some(path) = stack.pop() {
                let last = *path.last().expect("non-empty");
                let kids: Vec<usize> = children
                    .get(&last)
                    .map(|c| {
                        c.iter()
                            .copied()
                            .filter(|&k| !self.nodes[k].flagged)
                            .collect()
                    })
                    .unwrap_or_default();
                if kids.is_empty() {
                    paths.push(path);
                    continue;
                }
                match branches {
                    Branches::Best => {
                        let mut p = path;
                        p.push(kids[0]);
                        stack.push(p);
                    }
                    Branches::All => {
                        for &k in kids.iter().rev() {
                            let mut p = path.clone();
                            p.push(k);
                            stack.push(p);
                        }
                    }
                }
            }
            for path in paths {
                let mut path = path;
                // Conversations end with the assistant.
                while path
                    .last()
                    .is_some_and(|&i| self.nodes[i].role != Role::Assistant)
                {
                    path.pop();
                }
                if path.is_empty() {
                    continue;
                }
                let leaf = &self.nodes[*path.last().expect("non-empty")];
                let messages = path
                    .iter()
                    .map(|&i| Message::new(self.nodes[i].role, self.nodes[i].text.clone()))
                    .collect();
                let id = match branches {
                    Branches::Best => self.nodes[r].id.clone(),
                    Branches::All => format!("{}/{}", self.nodes[r].id, leaf.id),
                };
                out.push((
                    self.nodes[r].origin.clone(),
                    Conversation {
                        id,
                        messages,
                        source: source.to_string(),
                        meta: None,
                    },
                ));
            }
        }
        // Flagged messages below the root: they and their replies are removed.
        for (i, n) in self.nodes.iter().enumerate() {
            if n.flagged && n.parent.is_some() {
                let parent_flagged_chain = {
                    let mut p = n.parent.clone();
                    let mut any = false;
                    while let Some(pid) = p {
                        match self.by_id.get(&pid) {
                            Some(&pi) => {
                                if self.nodes[pi].flagged {
                                    any = true;
                                    break;
                                }
                                p = self.nodes[pi].parent.clone();
                            }
                            None => break,
                        }
                    }
                    any
                };
                if !parent_flagged_chain {
                    st.flagged_removed += subtree(i, &children);
                }
            }
        }
        st.conversations = out.len() as u64;
        let used: u64 = out.iter().map(|(_, c)| c.messages.len() as u64).sum();
        if branches == Branches::Best {
            st.not_followed = st
                .messages
                .saturating_sub(used + st.flagged_removed + st.orphans);
        }
        (out, st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuci_spaces_are_repaired() {
        assert_eq!(
            join_morphemes("電池 の 減り は やはり 早い ので 、"),
            "電池の減りはやはり早いので、"
        );
        assert_eq!(join_morphemes("iPhone 12 を 買った"), "iPhone 12を買った");
    }

    #[test]
    fn open_math_pieces() {
        let s = "まず計算します。\n<llm-code>\nprint(12 * 5)\n</llm-code>\n<llm-code-output>\n60\n</llm-code-output>\n答えは60です。";
        let p = code_pieces(s).unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("まず計算します。".into()),
                Piece::Code {
                    code: "print(12 * 5)".into(),
                    output: Some("60".into())
                },
                Piece::Text("答えは60です。".into()),
            ]
        );
        assert_eq!(calculator_expr("print(12 * 5)"), Some("12 * 5".into()));
        assert_eq!(calculator_expr("x = 5\nprint(x)"), None);
        assert!(code_pieces("a <llm-code> b").is_err());
    }
}
