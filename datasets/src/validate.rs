//! Record validation with typed reasons.
//!
//! Every check here is one a training run would otherwise discover the hard way: a conversation
//! whose roles do not alternate renders garbage, a tool call in a user turn is supervised where it
//! must not be, a wrong calculator annotation teaches wrong arithmetic, a duplicate choice makes a
//! multiple-choice item ambiguous.

use crate::calc;
use crate::records::{Conversation, Document, MathProblem, MultipleChoice, PartKind, Role};

/// Why a record is invalid. The `Display` form is the reason written to a rejects table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    #[error("empty id")]
    EmptyId,
    #[error("empty {field}")]
    EmptyField { field: &'static str },
    #[error("conversation has no messages")]
    NoMessages,
    #[error("message {index}: expected role {expected}, found {found}")]
    RoleOrder {
        index: usize,
        expected: &'static str,
        found: Role,
    },
    #[error("conversation must end with an assistant message, ends with {found}")]
    EndsWith { found: Role },
    #[error("message {index} ({role}) has no parts")]
    NoParts { index: usize, role: Role },
    #[error("message {index} ({role}), part {part}: empty text")]
    EmptyPart {
        index: usize,
        role: Role,
        part: usize,
    },
    #[error("message {index} ({role}): text is only whitespace")]
    BlankMessage { index: usize, role: Role },
    #[error("message {index} ({role}), part {part}: {kind} part outside an assistant turn")]
    ToolOutsideAssistant {
        index: usize,
        role: Role,
        part: usize,
        kind: PartKind,
    },
    #[error("message {index} ({role}): {parts} parts, a {role} message has exactly one text part")]
    MultiPartNonAssistant {
        index: usize,
        role: Role,
        parts: usize,
    },
    #[error("message {index}, part {part}: python_output without a preceding python call")]
    OrphanOutput { index: usize, part: usize },
    #[error("fewer than 2 choices ({0})")]
    TooFewChoices(usize),
    #[error("{0} choices; at most 26 (letters A-Z) are supported")]
    TooManyChoices(usize),
    #[error("answer index {answer} out of range for {choices} choices")]
    AnswerOutOfRange { answer: u32, choices: usize },
    #[error("choice {index} is empty")]
    EmptyChoice { index: usize },
    #[error("choices {first} and {second} are the same (`{text}`)")]
    DuplicateChoice {
        first: usize,
        second: usize,
        text: String,
    },
    #[error("answer `{0}` is not a number")]
    NotANumber(String),
    #[error("unbalanced calculator annotation at byte {0} (`<<` without `>>` or the reverse)")]
    UnbalancedAnnotation(usize),
    #[error("calculator annotation `<<{0}>>` has no `=result`")]
    AnnotationWithoutResult(String),
    #[error("calculator annotation `<<{expr}={result}>>`: {reason}")]
    AnnotationUnevaluable {
        expr: String,
        result: String,
        reason: String,
    },
    #[error("calculator annotation `<<{expr}={result}>>` is wrong: {expr} = {actual}")]
    AnnotationWrong {
        expr: String,
        result: String,
        actual: String,
    },
    #[error("calculator annotation result `{0}` is not a number")]
    AnnotationResultNotNumber(String),
}

fn non_empty(field: &'static str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        Err(Invalid::EmptyField { field })
    } else {
        Ok(())
    }
}

fn id(value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        Err(Invalid::EmptyId)
    } else {
        Ok(())
    }
}

pub fn document(d: &Document) -> Result<(), Invalid> {
    id(&d.id)?;
    non_empty("text", &d.text)
}

/// Role order: an optional leading system message, then user and assistant alternating,
/// starting with user and ending with assistant. User and system messages are one text part;
/// assistant messages may mix text, python and python_output parts.
pub fn conversation(c: &Conversation) -> Result<(), Invalid> {
    id(&c.id)?;
    if c.messages.is_empty() {
        return Err(Invalid::NoMessages);
    }
    let offset = usize::from(c.messages[0].role == Role::System);
    for (index, m) in c.messages.iter().enumerate() {
        if index >= offset {
            let expected = if (index - offset) % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            if m.role != expected {
                return Err(Invalid::RoleOrder {
                    index,
                    expected: expected.as_str(),
                    found: m.role,
                });
            }
        }
        if m.parts.is_empty() {
            return Err(Invalid::NoParts {
                index,
                role: m.role,
            });
        }
        if m.role != Role::Assistant && m.parts.len() != 1 {
            if let Some((part, p)) = m
                .parts
                .iter()
                .enumerate()
                .find(|(_, p)| p.kind != PartKind::Text)
            {
                return Err(Invalid::ToolOutsideAssistant {
                    index,
                    role: m.role,
                    part,
                    kind: p.kind,
                });
            }
            return Err(Invalid::MultiPartNonAssistant {
                index,
                role: m.role,
                parts: m.parts.len(),
            });
        }
        let mut open_call = false;
        for (part, p) in m.parts.iter().enumerate() {
            if p.text.is_empty() {
                return Err(Invalid::EmptyPart {
                    index,
                    role: m.role,
                    part,
                });
            }
            match p.kind {
                PartKind::Text => {}
                _ if m.role != Role::Assistant => {
                    return Err(Invalid::ToolOutsideAssistant {
                        index,
                        role: m.role,
                        part,
                        kind: p.kind,
                    });
                }
                PartKind::Python => open_call = true,
                PartKind::PythonOutput => {
                    if !open_call {
                        return Err(Invalid::OrphanOutput { index, part });
                    }
                    open_call = false;
                }
            }
        }
        if m.parts.iter().all(|p| p.text.trim().is_empty()) {
            return Err(Invalid::BlankMessage {
                index,
                role: m.role,
            });
        }
    }
    let last = c.messages.last().map(|m| m.role).unwrap_or(Role::User);
    if last != Role::Assistant || c.messages.len() == offset {
        return Err(Invalid::EndsWith { found: last });
    }
    Ok(())
}

pub fn multiple_choice(mc: &MultipleChoice) -> Result<(), Invalid> {
    id(&mc.id)?;
    non_empty("question", &mc.question)?;
    if mc.choices.len() < 2 {
        return Err(Invalid::TooFewChoices(mc.choices.len()));
    }
    if mc.choices.len() > 26 {
        return Err(Invalid::TooManyChoices(mc.choices.len()));
    }
    if mc.answer as usize >= mc.choices.len() {
        return Err(Invalid::AnswerOutOfRange {
            answer: mc.answer,
            choices: mc.choices.len(),
        });
    }
    for (i, c) in mc.choices.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(Invalid::EmptyChoice { index: i });
        }
        if let Some(j) = mc.choices[..i].iter().position(|d| d.trim() == c.trim()) {
            return Err(Invalid::DuplicateChoice {
                first: j,
                second: i,
                text: c.trim().to_string(),
            });
        }
    }
    Ok(())
}

pub fn math(m: &MathProblem) -> Result<(), Invalid> {
    id(&m.id)?;
    non_empty("question", &m.question)?;
    non_empty("answer", &m.answer)?;
    let normalized = normalize_number(&m.answer)?;
    if normalized != m.answer {
        return Err(Invalid::NotANumber(format!(
            "{} (normalized form is {normalized})",
            m.answer
        )));
    }
    for segment in annotations(&m.solution)? {
        if let Segment::Call { expr, result } = segment {
            check_annotation(expr, result)?;
        }
    }
    Ok(())
}

/// A piece of a GSM8K-style solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// `<<expr=result>>`, split on the last `=` as nanochat does.
    Call {
        expr: &'a str,
        result: &'a str,
    },
}

/// Splits a solution into text and `<<expr=result>>` calls, refusing unbalanced markers and
/// calls without `=`. Empty text segments are omitted (they render to no tokens).
pub fn annotations(solution: &str) -> Result<Vec<Segment<'_>>, Invalid> {
    let mut out = Vec::new();
    let mut rest = solution;
    let mut consumed = 0;
    loop {
        let open = rest.find("<<");
        let close = rest.find(">>");
        match (open, close) {
            (None, None) => break,
            (None, Some(c)) => return Err(Invalid::UnbalancedAnnotation(consumed + c)),
            (Some(o), Some(c)) if c < o => return Err(Invalid::UnbalancedAnnotation(consumed + c)),
            (Some(o), _) => {
                let after = &rest[o + 2..];
                let Some(end) = after.find(">>") else {
                    return Err(Invalid::UnbalancedAnnotation(consumed + o));
                };
                let inner = &after[..end];
                if let Some(nested) = inner.find("<<") {
                    return Err(Invalid::UnbalancedAnnotation(consumed + o + 2 + nested));
                }
                if o > 0 {
                    out.push(Segment::Text(&rest[..o]));
                }
                let (expr, result) = inner
                    .rsplit_once('=')
                    .ok_or_else(|| Invalid::AnnotationWithoutResult(inner.to_string()))?;
                out.push(Segment::Call { expr, result });
                let advance = o + 2 + end + 2;
                consumed += advance;
                rest = &rest[advance..];
            }
        }
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

/// Evaluates `expr` and checks it equals `result`, allowing the rounding the result's own
/// number of decimals implies (GSM8K writes `<<10/3=3.33>>`).
pub fn check_annotation(expr: &str, result: &str) -> Result<(), Invalid> {
    let normalized = normalize_number(result.trim().trim_start_matches('$'))
        .map_err(|_| Invalid::AnnotationResultNotNumber(result.to_string()))?;
    let want: f64 = normalized
        .parse()
        .map_err(|_| Invalid::AnnotationResultNotNumber(result.to_string()))?;
    let cleaned: String = expr.chars().filter(|&c| c != ',' && c != '$').collect();
    let got = calc::eval_arith(&cleaned).map_err(|e| Invalid::AnnotationUnevaluable {
        expr: expr.to_string(),
        result: result.to_string(),
        reason: e.to_string(),
    })?;
    let decimals = normalized.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let tolerance = 0.5 * 10f64.powi(-decimals) + 1e-9 * want.abs().max(1.0);
    if (got.as_f64() - want).abs() <= tolerance {
        Ok(())
    } else {
        Err(Invalid::AnnotationWrong {
            expr: expr.to_string(),
            result: result.to_string(),
            actual: got.to_string(),
        })
    }
}

/// Normalizes a written number to ASCII: full-width digits and signs become ASCII, thousands
/// separators (`,` `，` `、` and thin spaces) are removed, `．` becomes `.`, a leading `+` and
/// trailing zeros after the point are dropped (`18.0` → `18`). Anything else is not a number.
pub fn normalize_number(s: &str) -> Result<String, Invalid> {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        let c = match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '．' => '.',
            '－' | '−' | 'ー' | '‐' | '‒' | '–' => '-',
            '＋' => '+',
            ',' | '，' | '、' | '\u{2009}' | '\u{202f}' | '_' => continue,
            c => c,
        };
        out.push(c);
    }
    let not_a_number = || Invalid::NotANumber(s.to_string());
    let body = out.strip_prefix('+').unwrap_or(&out);
    let (neg, digits) = match body.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, body),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not_a_number());
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut n = String::new();
    if neg && !(int == "0" && frac.is_empty()) {
        n.push('-');
    }
    n.push_str(int);
    if !frac.is_empty() {
        n.push('.');
        n.push_str(frac);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Message, Part};

    fn conv(messages: Vec<Message>) -> Conversation {
        Conversation {
            id: "c".into(),
            messages,
            source: String::new(),
            meta: None,
        }
    }

    #[test]
    fn numbers_normalize() {
        assert_eq!(normalize_number("１，２３４").unwrap(), "1234");
        assert_eq!(normalize_number("2,125").unwrap(), "2125");
        assert_eq!(normalize_number("18.0").unwrap(), "18");
        assert_eq!(normalize_number("－３．５０").unwrap(), "-3.5");
        assert_eq!(normalize_number("+007").unwrap(), "7");
        assert_eq!(normalize_number(".5").unwrap(), "0.5");
        assert_eq!(normalize_number("-0").unwrap(), "0");
        assert!(normalize_number("十八").is_err());
        assert!(normalize_number("12a").is_err());
        assert!(normalize_number("").is_err());
        assert!(normalize_number("1.2.3").is_err());
    }

    #[test]
    fn annotations_are_checked() {
        assert!(check_annotation("12/60", "0.2").is_ok());
        assert!(check_annotation("10/3", "3.33").is_ok());
        assert!(check_annotation("1,000*2", "2,000").is_ok());
        assert!(matches!(
            check_annotation("2*3", "7"),
            Err(Invalid::AnnotationWrong { .. })
        ));
        assert!(matches!(
            check_annotation("x*3", "6"),
            Err(Invalid::AnnotationUnevaluable { .. })
        ));
        assert!(matches!(
            annotations("a <<2*3=6>> b <<4"),
            Err(Invalid::UnbalancedAnnotation(_))
        ));
        assert!(matches!(
            annotations("a >> b"),
            Err(Invalid::UnbalancedAnnotation(2))
        ));
        assert!(matches!(
            annotations("<<23>>"),
            Err(Invalid::AnnotationWithoutResult(_))
        ));
        let segs = annotations("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Text("Weng earns 12/60 = $"),
                Segment::Call {
                    expr: "12/60",
                    result: "0.2"
                },
                Segment::Text("0.2 per minute."),
            ]
        );
    }

    #[test]
    fn role_order() {
        let ok = conv(vec![
            Message::new(Role::System, "s"),
            Message::new(Role::User, "u"),
            Message::new(Role::Assistant, "a"),
        ]);
        assert!(conversation(&ok).is_ok());
        let bad = conv(vec![
            Message::new(Role::User, "u"),
            Message::new(Role::User, "u"),
        ]);
        assert!(matches!(
            conversation(&bad),
            Err(Invalid::RoleOrder { index: 1, .. })
        ));
        let ends_user = conv(vec![Message::new(Role::User, "u")]);
        assert!(matches!(
            conversation(&ends_user),
            Err(Invalid::EndsWith { .. })
        ));
        let system_only = conv(vec![Message::new(Role::System, "s")]);
        assert!(conversation(&system_only).is_err());
        let tool_in_user = conv(vec![
            Message {
                role: Role::User,
                parts: vec![Part::python("1+1")],
            },
            Message::new(Role::Assistant, "a"),
        ]);
        assert!(matches!(
            conversation(&tool_in_user),
            Err(Invalid::ToolOutsideAssistant { .. })
        ));
        let blank = conv(vec![
            Message::new(Role::User, "  "),
            Message::new(Role::Assistant, "a"),
        ]);
        assert!(matches!(
            conversation(&blank),
            Err(Invalid::BlankMessage { .. })
        ));
    }

    #[test]
    fn mc_checks() {
        let mut mc = MultipleChoice {
            id: "1".into(),
            question: "q".into(),
            choices: vec!["a".into(), "b".into()],
            answer: 1,
            subject: None,
            source: String::new(),
        };
        assert!(multiple_choice(&mc).is_ok());
        mc.answer = 2;
        assert!(matches!(
            multiple_choice(&mc),
            Err(Invalid::AnswerOutOfRange { .. })
        ));
        mc.answer = 0;
        mc.choices = vec!["a".into(), " a".into()];
        assert!(matches!(
            multiple_choice(&mc),
            Err(Invalid::DuplicateChoice { .. })
        ));
    }
}
