//! An OpenAI-compatible chat-completions endpoint with a deterministic fake translator.
//!
//! `POST …/chat/completions` with `{model, messages}` answers `{choices: [{message: {role,
//! content}}]}` where `content` is the last user message "translated": every run of ASCII
//! letters becomes katakana (one kana per letter), `.`/`,`/`?`/`!` become `。`/`、`/`？`/`！`,
//! everything else (placeholders such as `⟦3⟧`, digits, newlines) is kept. That is enough for a
//! translation pipeline's gates (placeholders kept, numbers unchanged, Japanese script, plausible
//! length) to pass, while faults make them fail on purpose.
//!
//! Fault subjects are the last user message; [`crate::FaultKind::Custom`] names:
//! `drop_placeholder` (the first `⟦n⟧` disappears), `change_number` (a `7` is added),
//! `echo` (the input comes back unchanged), `english` (the input with placeholders but no
//! translation), `truncate` (only the first few characters come back).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Delivery, Fault, FaultKind, Faults, Handler, Request, Response};

/// The chat endpoint stand-in. Clone it to keep a handle on faults and counters.
#[derive(Clone, Default)]
pub struct ChatStandIn {
    pub faults: Faults,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    /// Requests per user message.
    seen: Arc<Mutex<HashMap<String, usize>>>,
    /// Required `Authorization: Bearer …`, if any.
    pub api_key: Arc<Mutex<Option<String>>>,
}

impl ChatStandIn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fault(&self, matches: &str, kind: FaultKind, times: usize) {
        self.faults.add(Fault::new(matches, kind, times));
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Completion requests answered so far (faulty answers included).
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }

    /// Requests whose user message contained `needle`.
    pub fn requests_containing(&self, needle: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.contains(needle))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset_counters(&self) {
        self.seen.lock().unwrap().clear();
        self.max_in_flight.store(0, Ordering::SeqCst);
    }
}

const KANA: [&str; 26] = [
    "ア", "バ", "カ", "ダ", "エ", "フ", "ガ", "ハ", "イ", "ジ", "ク", "ル", "マ", "ナ", "オ", "パ",
    "キ", "ラ", "サ", "タ", "ウ", "ヴ", "ワ", "ク", "ヤ", "ザ",
];

/// The fake translation.
pub fn fake_translate(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | 'A'..='Z' => {
                out.push_str(KANA[(c.to_ascii_lowercase() as u8 - b'a') as usize]);
                // Drop the space between two words, as Japanese does.
                if chars.peek() == Some(&' ') {
                    let mut look = chars.clone();
                    look.next();
                    if look.peek().is_some_and(char::is_ascii_alphabetic) {
                        chars.next();
                    }
                }
            }
            '.' => out.push('。'),
            ',' => out.push('、'),
            '?' => out.push('？'),
            '!' => out.push('！'),
            other => out.push(other),
        }
    }
    out
}

fn misbehave(name: &str, input: &str) -> String {
    match name {
        "drop_placeholder" => {
            let t = fake_translate(input);
            match (t.find('⟦'), t.find('⟧')) {
                (Some(a), Some(b)) if b > a => format!("{}{}", &t[..a], &t[b + '⟧'.len_utf8()..]),
                _ => t,
            }
        }
        "change_number" => format!("{}7", fake_translate(input)),
        "echo" => input.to_string(),
        "english" => input.to_string().to_uppercase(),
        "truncate" => fake_translate(input).chars().take(3).collect(),
        other => panic!("unknown chat fault `{other}`"),
    }
}

impl Handler for ChatStandIn {
    fn handle(&self, req: &Request) -> Response {
        if req.method != "POST" || !req.path.ends_with("/chat/completions") {
            return Response::json(404, &serde_json::json!({"error": "not found"}));
        }
        if let Some(key) = self.api_key.lock().unwrap().clone()
            && req.header("authorization") != Some(&format!("Bearer {key}"))
        {
            return Response::json(401, &serde_json::json!({"error": "bad api key"}));
        }
        let body: serde_json::Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return Response::json(400, &serde_json::json!({"error": e.to_string()})),
        };
        let model = body["model"].as_str().unwrap_or("").to_string();
        let Some(user) = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .map(str::to_string)
        else {
            return Response::json(400, &serde_json::json!({"error": "no user message"}));
        };
        *self.seen.lock().unwrap().entry(user.clone()).or_default() += 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Give concurrent requests a chance to overlap.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let fault = self.faults.take(&user);
        let resp = match fault {
            Some(FaultKind::Status(code, headers)) => {
                let mut r = Response::json(
                    code,
                    &serde_json::json!({"error": {"message": format!("injected {code}")}}),
                );
                for (k, v) in headers {
                    r = r.header(&k, v);
                }
                r
            }
            Some(FaultKind::InvalidJson) => {
                Response::new(200, "{\"choices\": [").header("content-type", "application/json")
            }
            other => {
                let content = match &other {
                    Some(FaultKind::Custom(name)) => misbehave(name, &user),
                    _ => fake_translate(&user),
                };
                let mut r = Response::json(
                    200,
                    &serde_json::json!({
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }),
                );
                match other {
                    Some(FaultKind::Delay(d)) => r.delivery = Delivery::Delay(d),
                    Some(FaultKind::CutAfter(n)) => r.delivery = Delivery::CutAfter(n),
                    _ => {}
                }
                r
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_keeps_placeholders_and_numbers() {
        let t = fake_translate("Natalia sold ⟦0⟧ clips, 48 of them.");
        assert!(
            t.contains("⟦0⟧") && t.contains("48") && t.ends_with('。'),
            "{t}"
        );
        assert!(!t.chars().any(|c| c.is_ascii_alphabetic()), "{t}");
        assert!(t.starts_with("ナアタアルイアサオルダ ⟦0⟧"), "{t}");
        assert_eq!(misbehave("drop_placeholder", "a ⟦1⟧ b"), "ア  バ");
    }
}
