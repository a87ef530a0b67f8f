//! Conversions to [`Conversation`] exactly as nanochat builds its MMLU and GSM8K tasks
//! (nanochat-spec §2.9, §9), with Japanese prompt wording.
//!
//! * Multiple choice: the user message lists each choice as `- {choice}={letter}` (letter after
//!   the choice, no space, so the prompt contains the same token as the answer) and the assistant
//!   answers with the bare letter.
//! * Math: the user message is the question unchanged; the solution is split on `<<expr=result>>`
//!   into text, python (`expr`) and python_output (`result`) parts, and the final `#### answer`
//!   line ends the last text part.

use crate::records::{Conversation, MathProblem, Message, MultipleChoice, Part, Role};
use crate::validate::{Segment, annotations};

/// The letters used for choice `i` (`A`, `B`, …).
pub fn choice_letter(i: usize) -> char {
    debug_assert!(i < 26);
    char::from(b'A' + i as u8)
}

/// First line of a multiple-choice prompt (nanochat: `Multiple Choice question: {q}`).
pub const MC_HEADER: &str = "多肢選択問題：";
/// Last line of a multiple-choice prompt (nanochat: `Respond only with the letter of the correct answer.`).
pub const MC_INSTRUCTION: &str = "正解の選択肢の記号だけで答えてください。";

/// nanochat's `render_mc` with Japanese wording.
pub fn render_mc(question: &str, choices: &[String]) -> String {
    let mut s = format!("{MC_HEADER}{question}\n");
    for (i, c) in choices.iter().enumerate() {
        s.push_str(&format!("- {c}={}\n", choice_letter(i)));
    }
    s.push('\n');
    s.push_str(MC_INSTRUCTION);
    s
}

/// A multiple-choice item as a two-turn conversation; `meta` carries the letters and answer for
/// evaluation (nanochat keeps `letters` on the conversation dict).
pub fn mc_to_conversation(mc: &MultipleChoice) -> Conversation {
    let letters: Vec<String> = (0..mc.choices.len())
        .map(|i| choice_letter(i).to_string())
        .collect();
    let answer = choice_letter(mc.answer as usize).to_string();
    let mut meta = serde_json::json!({ "letters": letters, "answer": answer });
    if let Some(subject) = &mc.subject {
        meta["subject"] = serde_json::Value::String(subject.clone());
    }
    Conversation {
        id: mc.id.clone(),
        messages: vec![
            Message::new(Role::User, render_mc(&mc.question, &mc.choices)),
            Message::new(Role::Assistant, answer),
        ],
        source: mc.source.clone(),
        meta: Some(meta),
    }
}

/// A math problem as a two-turn conversation with calculator tool calls.
///
/// The problem is expected to be valid ([`crate::validate::math`]); an unbalanced annotation is
/// kept as plain text rather than panicking.
pub fn math_to_conversation(m: &MathProblem) -> Conversation {
    let mut parts: Vec<Part> = match annotations(&m.solution) {
        Ok(segments) => segments
            .into_iter()
            .flat_map(|s| match s {
                Segment::Text(t) => vec![Part::text(t)],
                Segment::Call { expr, result } => {
                    vec![Part::python(expr), Part::python_output(result)]
                }
            })
            .collect(),
        Err(_) if m.solution.is_empty() => Vec::new(),
        Err(_) => vec![Part::text(m.solution.clone())],
    };
    let sep = if m.solution.trim().is_empty() {
        ""
    } else {
        "\n"
    };
    let tail = format!("{sep}#### {}", m.answer);
    match parts.last_mut() {
        Some(last) if last.kind == crate::records::PartKind::Text => last.text.push_str(&tail),
        _ => parts.push(Part::text(tail.trim_start().to_string())),
    }
    Conversation {
        id: m.id.clone(),
        messages: vec![
            Message::new(Role::User, m.question.clone()),
            Message {
                role: Role::Assistant,
                parts,
            },
        ],
        source: m.source.clone(),
        meta: Some(serde_json::json!({ "answer": m.answer })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PartKind;

    #[test]
    fn mc_renders_like_nanochat() {
        let mc = MultipleChoice {
            id: "0".into(),
            question: "主に子ども向けのものはどれ？".into(),
            choices: vec!["世界".into(), "写真集".into(), "絵本".into()],
            answer: 2,
            subject: None,
            source: "jcqa".into(),
        };
        let c = mc_to_conversation(&mc);
        assert_eq!(
            c.messages[0].parts[0].text,
            "多肢選択問題：主に子ども向けのものはどれ？\n- 世界=A\n- 写真集=B\n- 絵本=C\n\n正解の選択肢の記号だけで答えてください。"
        );
        assert_eq!(c.messages[1].parts[0].text, "C");
        assert!(crate::validate::conversation(&c).is_ok());
    }

    #[test]
    fn math_becomes_tool_calls() {
        let m = MathProblem {
            id: "1".into(),
            question: "Q".into(),
            solution: "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10".into(),
            answer: "10".into(),
            source: String::new(),
        };
        let c = math_to_conversation(&m);
        let parts = &c.messages[1].parts;
        let kinds: Vec<PartKind> = parts.iter().map(|p| p.kind).collect();
        use PartKind::*;
        assert_eq!(
            kinds,
            vec![Text, Python, PythonOutput, Text, Python, PythonOutput, Text]
        );
        assert_eq!(parts[1].text, "12/60");
        assert_eq!(parts[2].text, "0.2");
        assert_eq!(parts[6].text, "10\n#### 10");
        assert!(crate::validate::conversation(&c).is_ok());

        let ends_with_call = MathProblem {
            solution: "<<2+3=5>>".into(),
            answer: "5".into(),
            ..m
        };
        let c = math_to_conversation(&ends_with_call);
        assert_eq!(c.messages[1].parts.last().unwrap().text, "#### 5");
    }
}
