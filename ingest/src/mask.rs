//! Masks for machine translation: spans a translator must not touch are replaced with numbered
//! placeholders `⟦n⟧` before sending and restored after; a translation is checked before it
//! is accepted (every placeholder exactly once, no digits of its own, enough Japanese script, a
//! plausible length).
//!
//! Masked spans: fenced code blocks, OpenMathInstruct `<llm-code>` blocks and outputs, GSM8K
//! calculator annotations `<<expr=result>>`, inline code, URLs, markup tags, `####` answer
//! markers, choice letters at line starts (`A)`, `(B)`, `C.`), and numbers (with separators,
//! decimals, currency signs and percent).

use std::sync::LazyLock;

use regex::Regex;

use crate::normalize::japanese_share;

static MASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?s:```.*?```)",
        r"|(?s:<llm-code>.*?</llm-code>)",
        r"|(?s:<llm-code-output>.*?</llm-code-output>)",
        r"|<<[^<>]*>>",
        r"|`[^`\n]+`",
        r"|https?://[^\s)>\]]+",
        r"|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>",
        r"|####",
        r"|(?m:^[ \t]*(?:\([A-J]\)|[A-J][).:]))",
        r"|[$€£¥]?[0-9０-９][0-9０-９,，]*(?:[.．][0-9０-９]+)?%?",
    ))
    .expect("valid mask regex")
});

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"⟦(\d+)⟧").expect("valid placeholder regex"));

/// A text with its protected spans replaced by `⟦0⟧`, `⟦1⟧`, ….
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub text: String,
    pub spans: Vec<String>,
}

impl Masked {
    /// Whether anything is left to translate (some letters outside placeholders).
    pub fn has_words(&self) -> bool {
        strip_placeholders(&self.text)
            .chars()
            .any(char::is_alphabetic)
    }
}

/// Replaces protected spans with placeholders. Fails when the text already contains `⟦`/`⟧`.
pub fn mask(text: &str) -> Result<Masked, String> {
    if text.contains('⟦') || text.contains('⟧') {
        return Err("text contains the placeholder brackets ⟦ ⟧".into());
    }
    let mut spans = Vec::new();
    let out = MASK.replace_all(text, |c: &regex::Captures<'_>| {
        let i = spans.len();
        spans.push(c[0].to_string());
        format!("⟦{i}⟧")
    });
    Ok(Masked {
        text: out.into_owned(),
        spans,
    })
}

fn strip_placeholders(s: &str) -> String {
    PLACEHOLDER.replace_all(s, "").into_owned()
}

/// Limits a translation must respect.
#[derive(Debug, Clone, Copy)]
pub struct Gates {
    /// Least share of Japanese script among the letters of the translation.
    pub min_japanese: f64,
    /// Allowed range of translated / source characters (placeholders and whitespace excluded).
    pub min_ratio: f64,
    pub max_ratio: f64,
    /// Sources shorter than this (in characters) skip the length-ratio check.
    pub ratio_min_chars: usize,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_japanese: 0.5,
            min_ratio: 0.15,
            max_ratio: 2.5,
            ratio_min_chars: 20,
        }
    }
}

/// Checks a translation of `src` and restores its spans. The error is the reject reason.
pub fn unmask(src: &Masked, translated: &str, gates: &Gates) -> Result<String, String> {
    let mut seen = vec![0usize; src.spans.len()];
    for c in PLACEHOLDER.captures_iter(translated) {
        let i: usize = c[1]
            .parse()
            .map_err(|_| format!("unknown placeholder {}", &c[0]))?;
        match seen.get_mut(i) {
            Some(n) => *n += 1,
            None => return Err(format!("unknown placeholder {}", &c[0])),
        }
    }
    if let Some(i) = seen.iter().position(|&n| n == 0) {
        return Err(format!("placeholder lost: ⟦{i}⟧ (`{}`)", src.spans[i]));
    }
    if let Some(i) = seen.iter().position(|&n| n > 1) {
        return Err(format!("placeholder repeated: ⟦{i}⟧"));
    }
    let bare = strip_placeholders(translated);
    if let Some(d) = bare
        .chars()
        .find(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
    {
        return Err(format!(
            "number changed: the translation has the digit `{d}` outside the masked numbers"
        ));
    }
    let src_bare = strip_placeholders(&src.text);
    if src_bare.chars().filter(char::is_ascii_alphabetic).count() >= 3 {
        let (share, _) = japanese_share(&bare);
        if share < gates.min_japanese {
            return Err(format!(
                "too little Japanese script ({:.2} < {})",
                share, gates.min_japanese
            ));
        }
    }
    let count = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    let (n_src, n_out) = (count(&src_bare), count(&bare));
    if n_src >= gates.ratio_min_chars {
        let ratio = n_out as f64 / n_src as f64;
        if ratio < gates.min_ratio || ratio > gates.max_ratio {
            return Err(format!(
                "implausible length ratio {ratio:.2} (translation {n_out} / source {n_src} characters; allowed {}–{})",
                gates.min_ratio, gates.max_ratio
            ));
        }
    }
    let restored = PLACEHOLDER.replace_all(translated, |c: &regex::Captures<'_>| {
        let i: usize = c[1].parse().expect("checked above");
        src.spans[i].clone()
    });
    Ok(restored.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_annotations_numbers_code_and_letters() {
        let m =
            mask("Weng earns $12 an hour: 12/60 = $<<12/60=0.2>>0.2 per minute.\n#### 10").unwrap();
        assert_eq!(
            m.spans,
            ["$12", "12", "60", "<<12/60=0.2>>", "0.2", "####", "10"]
        );
        assert_eq!(
            m.text,
            "Weng earns ⟦0⟧ an hour: ⟦1⟧/⟦2⟧ = $⟦3⟧⟦4⟧ per minute.\n⟦5⟧ ⟦6⟧"
        );
        let m = mask(
            "A) apples\n(B) pears\nSee `x + 1` and ```\ncode 1\n``` at https://example.com/a.",
        )
        .unwrap();
        assert!(m.spans.contains(&"A)".to_string()), "{m:?}");
        assert!(m.spans.contains(&"(B)".to_string()), "{m:?}");
        assert!(m.spans.contains(&"`x + 1`".to_string()), "{m:?}");
        assert!(
            m.spans.contains(&"https://example.com/a.".to_string()),
            "{m:?}"
        );
        assert!(mask("bad ⟦0⟧").is_err());
    }

    #[test]
    fn gates() {
        let g = Gates::default();
        let src = mask("Natalia sold clips to 48 of her friends in April.").unwrap();
        assert_eq!(src.spans, vec!["48"]);
        let ok = unmask(
            &src,
            "ナタリアは四月に友達⟦0⟧人にクリップを売りました。",
            &g,
        );
        assert_eq!(
            ok.unwrap(),
            "ナタリアは四月に友達48人にクリップを売りました。"
        );
        assert!(
            unmask(&src, "ナタリアは友達にクリップを売りました。", &g)
                .unwrap_err()
                .contains("placeholder lost")
        );
        assert!(
            unmask(&src, "ナタリアは友達⟦0⟧人に7個のクリップを売りました。", &g)
                .unwrap_err()
                .contains("number changed")
        );
        assert!(
            unmask(&src, "Natalia sold clips to ⟦0⟧ friends.", &g)
                .unwrap_err()
                .contains("Japanese")
        );
        assert!(
            unmask(&src, "ナ⟦0⟧", &g)
                .unwrap_err()
                .contains("length ratio")
        );
        assert!(
            unmask(&src, "ナタリア⟦0⟧⟦0⟧", &g)
                .unwrap_err()
                .contains("repeated")
        );
        assert!(
            unmask(&src, "ナタリア⟦0⟧⟦5⟧", &g)
                .unwrap_err()
                .contains("unknown")
        );
    }
}
