//! Pre-tokenization: the split patterns that cut text into chunks before BPE.
//!
//! BPE never merges across chunk boundaries, so the pattern decides which tokens can exist and
//! how large the training dictionary (unique chunks) gets.
//!
//! * [`SplitPattern::Gpt4`] is nanochat's `SPLIT_PATTERN` exactly (GPT-4 with `\p{N}{1,2}`). Under
//!   it a whole run of kana and kanji is one `\p{L}+` chunk, so Japanese chunks are clause-sized
//!   and nearly all unique (see `tokenizer-notes.md`).
//! * [`SplitPattern::Ja`] (the default) keeps the GPT-4 structure and replaces only the letter
//!   branch: kanji runs keep their trailing hiragana (送り仮名, particles, です/ます endings),
//!   hiragana, katakana (with `ー`) and other letters form separate runs. Measured on Aozora +
//!   held-out text it trains several times faster than `gpt4` and compresses held-out Japanese
//!   better (numbers and method in `bench/RESULTS.md`).
//! * [`SplitPattern::JaScript`] is the plain script split (no okurigana), kept for comparison.
//! * [`SplitPattern::JaPhrase`] and [`SplitPattern::JaSpan`] are coarse patterns for a second
//!   training stage ([`crate::Stage2`]); [`SplitPattern::JaChar`] (kanji words, every other
//!   character alone) is the first stage of the best-compressing tokenizer,
//!   [`crate::TrainConfig::span`].
//! * [`SplitPattern::Custom`] is any fancy-regex pattern.
//!
//! The built-in patterns run on a hand-written splitter ([`Splitter`]) that produces exactly
//! the chunks fancy-regex produces for the same pattern string (property-tested against
//! fancy-regex on random and Japanese text), at several times the speed and without fancy-regex's
//! backtracking limit on long whitespace runs. Custom patterns go through fancy-regex.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// nanochat's `SPLIT_PATTERN` (the GPT-4 pattern with digit groups of at most 2).
pub const GPT4_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The Japanese default: kanji runs keep trailing hiragana; hiragana, katakana (+ `ー`) and other
/// letters are separate runs. Digits in groups of at most 2, punctuation and whitespace as GPT-4.
pub const JA_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+(?:[\p{Han}々〆ヶ]+\p{Hiragana}*|\p{Hiragana}+|[\p{Katakana}ー]+|[^\P{L}\p{Han}\p{Hiragana}\p{Katakana}]+)|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The plain script split: Han, Hiragana, Katakana (+ `ー`) and other letters never share a chunk.
pub const JA_SCRIPT_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+(?:[\p{Han}々〆ヶ]+|\p{Hiragana}+|[\p{Katakana}ー]+|[^\P{L}\p{Han}\p{Hiragana}\p{Katakana}]+)|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The coarse pattern for two-stage training ([`crate::Stage2`]): nanochat's `\p{L}+` letter runs
/// that also keep the Japanese closing punctuation after them (`、。，．！？」』）`), so that the
/// second stage can learn tokens such as `である。` or `ました」`. Everything else as GPT-4.
pub const JA_PHRASE_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+[、。，．！？」』）]*|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The coarse pattern of the best-compressing two-stage tokenizer ([`crate::TrainConfig::span`]):
/// a chunk runs from a letter up to the next whitespace or digit, punctuation and brackets
/// included, so the second stage can learn tokens across words, particles and punctuation
/// (`）は、`, `である。`, `」と`). Digits stay in nanochat's groups of at most 2; the last group
/// may carry the letters after it (`95年に`), so a number's own digits are never merged beyond
/// two. Apostrophe contractions, other symbols and whitespace as GPT-4.
pub const JA_SPAN_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}[^\s\p{N}]*|\p{N}{1,2}(?:\p{L}[^\s\p{N}]*)?| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The first-stage pattern of [`crate::TrainConfig::span`]: a kanji run with the hiragana
/// after it (送り仮名) is one chunk, every other character is a chunk of its own. The first
/// merges then build whole characters and kanji words before the second stage (over
/// [`JA_SPAN_PATTERN`] chunks) starts; not meant as a one-stage pattern.
pub const JA_CHAR_PATTERN: &str = r"[\p{Han}々〆ヶ]+\p{Hiragana}*|(?s:.)";

/// The closing punctuation [`JA_PHRASE_PATTERN`] attaches to a letter run.
const JA_CLOSE: [char; 9] = ['、', '。', '，', '．', '！', '？', '」', '』', '）'];

/// Which split pattern a tokenizer uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SplitPattern {
    /// Kanji + okurigana, hiragana, katakana, other letters (the default).
    #[default]
    Ja,
    /// Plain script split.
    JaScript,
    /// nanochat's GPT-4-style pattern.
    Gpt4,
    /// GPT-4 letter runs with trailing Japanese punctuation (an opt-in two-stage coarse pattern).
    JaPhrase,
    /// Letters up to the next whitespace or digit (the coarse pattern of `TrainConfig::span`).
    JaSpan,
    /// Kanji + okurigana, every other character alone (the first stage of `TrainConfig::span`).
    JaChar,
    /// Any other fancy-regex pattern.
    Custom(String),
}

impl SplitPattern {
    /// The short name: `ja`, `ja-script`, `gpt4`, `ja-phrase`, `ja-span`, `ja-char` or `custom`.
    pub fn name(&self) -> &str {
        match self {
            SplitPattern::Ja => "ja",
            SplitPattern::JaScript => "ja-script",
            SplitPattern::Gpt4 => "gpt4",
            SplitPattern::JaPhrase => "ja-phrase",
            SplitPattern::JaSpan => "ja-span",
            SplitPattern::JaChar => "ja-char",
            SplitPattern::Custom(_) => "custom",
        }
    }

    /// The regular expression (fancy-regex / tiktoken syntax).
    pub fn regex(&self) -> &str {
        match self {
            SplitPattern::Ja => JA_PATTERN,
            SplitPattern::JaScript => JA_SCRIPT_PATTERN,
            SplitPattern::Gpt4 => GPT4_PATTERN,
            SplitPattern::JaPhrase => JA_PHRASE_PATTERN,
            SplitPattern::JaSpan => JA_SPAN_PATTERN,
            SplitPattern::JaChar => JA_CHAR_PATTERN,
            SplitPattern::Custom(r) => r,
        }
    }

    /// The built-in pattern whose regex is exactly `regex`, else `Custom(regex)`.
    pub fn from_regex(regex: &str) -> Self {
        [
            SplitPattern::Ja,
            SplitPattern::JaScript,
            SplitPattern::Gpt4,
            SplitPattern::JaPhrase,
            SplitPattern::JaSpan,
            SplitPattern::JaChar,
        ]
        .into_iter()
        .find(|p| p.regex() == regex)
        .unwrap_or_else(|| SplitPattern::Custom(regex.to_string()))
    }
}

impl fmt::Display for SplitPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SplitPattern {
    type Err = Error;
    /// `ja`, `ja-script`, `gpt4`, `ja-phrase`, `ja-span`, `ja-char`, or `regex:<pattern>` for a
    /// custom pattern.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ja" => Ok(SplitPattern::Ja),
            "ja-script" | "script" => Ok(SplitPattern::JaScript),
            "gpt4" | "nanochat" => Ok(SplitPattern::Gpt4),
            "ja-phrase" => Ok(SplitPattern::JaPhrase),
            "ja-span" => Ok(SplitPattern::JaSpan),
            "ja-char" => Ok(SplitPattern::JaChar),
            other => match other.strip_prefix("regex:") {
                Some(r) => Ok(SplitPattern::from_regex(r)),
                None => Err(Error::Pattern {
                    pattern: other.to_string(),
                    reason:
                        "expected ja, ja-script, gpt4, ja-phrase, ja-span, ja-char or regex:<pattern>"
                            .to_string(),
                }),
            },
        }
    }
}

/// Serialized as `{ "name": …, "regex": … }`; loading trusts the regex, not the name.
#[derive(Serialize, Deserialize)]
struct PatternRepr {
    name: String,
    regex: String,
}

impl Serialize for SplitPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PatternRepr {
            name: self.name().to_string(),
            regex: self.regex().to_string(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SplitPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = PatternRepr::deserialize(d)?;
        Ok(SplitPattern::from_regex(&r.regex))
    }
}

/// How the letter branch of a built-in pattern groups letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letters {
    /// `\p{L}+`
    All,
    /// `[\p{Han}々〆ヶ]+ | \p{Hiragana}+ | [\p{Katakana}ー]+ | other letters+`
    Script,
    /// As `Script`, but a kanji run takes the hiragana that follows it.
    KanjiOkurigana,
    /// `\p{L}+[、。，．！？」』）]*`
    AllClose,
    /// `\p{L}[^\s\p{N}]*`, and the digit branch `\p{N}{1,2}(?:\p{L}[^\s\p{N}]*)?`.
    Span,
}

/// Splits text into chunks according to a [`SplitPattern`].
#[derive(Debug, Clone)]
pub struct Splitter {
    engine: Engine,
}

#[derive(Debug, Clone)]
enum Engine {
    Fast(Letters),
    /// [`JA_CHAR_PATTERN`].
    KanjiOrChar,
    Regex(Box<fancy_regex::Regex>),
}

impl Splitter {
    /// Builds the splitter for `pattern`.
    ///
    /// # Errors
    /// A custom pattern that fancy-regex cannot compile.
    pub fn new(pattern: &SplitPattern) -> Result<Self> {
        let engine = match pattern {
            SplitPattern::Ja => Engine::Fast(Letters::KanjiOkurigana),
            SplitPattern::JaScript => Engine::Fast(Letters::Script),
            SplitPattern::Gpt4 => Engine::Fast(Letters::All),
            SplitPattern::JaPhrase => Engine::Fast(Letters::AllClose),
            SplitPattern::JaSpan => Engine::Fast(Letters::Span),
            SplitPattern::JaChar => Engine::KanjiOrChar,
            SplitPattern::Custom(r) => Engine::Regex(Box::new(compile(r)?)),
        };
        if !matches!(engine, Engine::Regex(_)) {
            let _ = table();
        }
        Ok(Splitter { engine })
    }

    /// A splitter that always uses fancy-regex, even for a built-in pattern (for tests and
    /// benchmarks of the hand-written splitter).
    ///
    /// # Errors
    /// A pattern that fancy-regex cannot compile.
    pub fn new_regex(pattern: &SplitPattern) -> Result<Self> {
        Ok(Splitter {
            engine: Engine::Regex(Box::new(compile(pattern.regex())?)),
        })
    }

    /// Calls `f` with each chunk of `text`, in order. The chunks concatenate to `text`.
    ///
    /// # Errors
    /// Only a custom pattern can fail (fancy-regex's backtracking limit); the built-in patterns
    /// never do.
    pub fn for_each<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) -> Result<()> {
        match &self.engine {
            Engine::Fast(letters) => {
                walk(text, |i| match_at(*letters, text, i), f);
                Ok(())
            }
            Engine::KanjiOrChar => {
                walk(text, |i| kanji_or_char_at(text, i), f);
                Ok(())
            }
            Engine::Regex(re) => {
                let mut last = 0;
                for m in re.find_iter(text) {
                    let m = m.map_err(|e| Error::Split {
                        offset: last,
                        reason: e.to_string(),
                    })?;
                    if m.start() > last {
                        // Text no branch matched: keep it as its own chunk so nothing is lost.
                        f(&text[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        f(m.as_str());
                    }
                    last = m.end();
                }
                if last < text.len() {
                    f(&text[last..]);
                }
                Ok(())
            }
        }
    }

    /// All chunks of `text`.
    ///
    /// # Errors
    /// As [`Splitter::for_each`].
    pub fn chunks<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut out = Vec::new();
        self.for_each(text, |c| out.push(c))?;
        Ok(out)
    }
}

fn compile(regex: &str) -> Result<fancy_regex::Regex> {
    fancy_regex::Regex::new(regex).map_err(|e| Error::Pattern {
        pattern: regex.to_string(),
        reason: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// The hand-written splitter. At each position the branches of the pattern are tried in order,
// exactly as the regex's leftmost-first alternation would; comments quote the branch.

const L: u8 = 1; // \p{L}
const N: u8 = 2; // \p{N}
const WS: u8 = 4; // \s (Unicode White_Space)
const HAN: u8 = 8; // [\p{Han}々〆ヶ]
const HIRA: u8 = 16; // \p{Hiragana}
const KATA: u8 = 32; // [\p{Katakana}ー]
const OTHER: u8 = 64; // [^\P{L}\p{Han}\p{Hiragana}\p{Katakana}]

/// One byte of class bits per code point (1.1 MB), built once from regex-syntax's tables.
fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; 0x11_0000];
        for (class, bit) in [
            (r"\p{L}", L),
            (r"\p{N}", N),
            (r"\s", WS),
            (r"[\p{Han}々〆ヶ]", HAN),
            (r"\p{Hiragana}", HIRA),
            (r"[\p{Katakana}ー]", KATA),
            (r"[^\P{L}\p{Han}\p{Hiragana}\p{Katakana}]", OTHER),
        ] {
            for (lo, hi) in class_ranges(class) {
                for c in lo..=hi {
                    t[c as usize] |= bit;
                }
            }
        }
        t
    })
}

/// The code point ranges of a one-class regex, from regex-syntax (the tables fancy-regex uses).
fn class_ranges(class: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::Parser::new()
        .parse(class)
        .expect("built-in class parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        HirKind::Literal(lit) => {
            let c = std::str::from_utf8(&lit.0)
                .expect("utf8")
                .chars()
                .next()
                .expect("char");
            vec![(c as u32, c as u32)]
        }
        other => unreachable!("class {class} parsed to {other:?}"),
    }
}

#[inline]
fn bits(c: char) -> u8 {
    // SAFETY-free indexing: the table covers every char.
    table()[c as usize]
}

#[inline]
fn char_at(t: &str, i: usize) -> Option<char> {
    t[i..].chars().next()
}

/// End (exclusive) of the longest run starting at `i` of chars whose class has none of `stop`.
#[inline]
fn run_end_without(t: &str, mut i: usize, stop: u8) -> usize {
    for c in t[i..].chars() {
        if bits(c) & stop != 0 {
            break;
        }
        i += c.len_utf8();
    }
    i
}

/// End (exclusive) of the longest run starting at `i` of chars whose class has `bit`.
#[inline]
fn run_end(t: &str, mut i: usize, bit: u8) -> usize {
    for c in t[i..].chars() {
        if bits(c) & bit == 0 {
            break;
        }
        i += c.len_utf8();
    }
    i
}

fn is_contraction_s(c: char) -> bool {
    // (?i:s) also matches U+017F LATIN SMALL LETTER LONG S (Unicode simple case folding).
    matches!(c, 's' | 'S' | 'ſ' | 'd' | 'D' | 'm' | 'M' | 't' | 'T')
}

/// `'(?i:[sdmt]|ll|ve|re)` at `i` (where `t[i]` is `'`).
fn contraction(t: &str, i: usize) -> Option<usize> {
    let mut it = t[i + 1..].chars();
    let c1 = it.next()?;
    if is_contraction_s(c1) {
        return Some(i + 1 + c1.len_utf8());
    }
    let c2 = it.next()?;
    let (a, b) = (c1.to_ascii_lowercase(), c2.to_ascii_lowercase());
    if c1.is_ascii() && c2.is_ascii() && matches!((a, b), ('l', 'l') | ('v', 'e') | ('r', 'e')) {
        return Some(i + 3);
    }
    None
}

/// The letter group of the letter branch, starting at `p`; `None` when no alternative matches.
#[inline]
fn letters_at(letters: Letters, t: &str, p: usize) -> Option<usize> {
    let c = char_at(t, p)?;
    let b = bits(c);
    match letters {
        Letters::All => (b & L != 0).then(|| run_end(t, p, L)),
        Letters::AllClose => (b & L != 0).then(|| {
            let mut e = run_end(t, p, L);
            for c in t[e..].chars() {
                if !JA_CLOSE.contains(&c) {
                    break;
                }
                e += c.len_utf8();
            }
            e
        }),
        Letters::Span => (b & L != 0).then(|| run_end_without(t, p, WS | N)),
        Letters::Script | Letters::KanjiOkurigana => {
            if b & HAN != 0 {
                let e = run_end(t, p, HAN);
                Some(if letters == Letters::KanjiOkurigana {
                    run_end(t, e, HIRA)
                } else {
                    e
                })
            } else if b & HIRA != 0 {
                Some(run_end(t, p, HIRA))
            } else if b & KATA != 0 {
                Some(run_end(t, p, KATA))
            } else if b & OTHER != 0 {
                Some(run_end(t, p, OTHER))
            } else {
                None
            }
        }
    }
}

/// Calls `f` with each chunk of `t`, where `end(i)` (always > `i`) ends the chunk starting at `i`.
#[inline]
fn walk<'t>(t: &'t str, end: impl Fn(usize) -> usize, mut f: impl FnMut(&'t str)) {
    let mut i = 0;
    while i < t.len() {
        let e = end(i);
        f(&t[i..e]);
        i = e;
    }
}

/// End of the [`JA_CHAR_PATTERN`] match at `i`: `[\p{Han}々〆ヶ]+\p{Hiragana}*|(?s:.)`.
fn kanji_or_char_at(t: &str, i: usize) -> usize {
    let c = char_at(t, i).expect("i < len");
    if bits(c) & HAN != 0 {
        run_end(t, run_end(t, i, HAN), HIRA)
    } else {
        i + c.len_utf8()
    }
}

/// End of the match starting at `i` (always > `i`).
fn match_at(letters: Letters, t: &str, i: usize) -> usize {
    let c = char_at(t, i).expect("i < len");
    let cl = c.len_utf8();
    let b = bits(c);
    // '(?i:[sdmt]|ll|ve|re)
    if c == '\''
        && let Some(e) = contraction(t, i)
    {
        return e;
    }
    // [^\r\n\p{L}\p{N}]?+ <letters>   (the optional prefix is possessive)
    let start = if c != '\r' && c != '\n' && b & (L | N) == 0 {
        i + cl
    } else {
        i
    };
    if start < t.len()
        && let Some(e) = letters_at(letters, t, start)
    {
        return e;
    }
    // \p{N}{1,2}, for `Span` followed by (?:\p{L}[^\s\p{N}]*)?
    if b & N != 0 {
        let mut e = i + cl;
        if let Some(d) = char_at(t, e)
            && bits(d) & N != 0
        {
            e += d.len_utf8();
        }
        if letters == Letters::Span
            && let Some(l) = char_at(t, e)
            && bits(l) & L != 0
        {
            e = run_end_without(t, e, WS | N);
        }
        return e;
    }
    //  ?[^\s\p{L}\p{N}]++[\r\n]*
    let p = if c == ' ' { i + 1 } else { i };
    if let Some(d) = char_at(t, p)
        && bits(d) & (WS | L | N) == 0
    {
        let e = run_end_without(t, p, WS | L | N);
        let rest = &t.as_bytes()[e..];
        return e + rest
            .iter()
            .take_while(|&&x| x == b'\r' || x == b'\n')
            .count();
    }
    if b & WS != 0 {
        let e = run_end(t, i, WS);
        // \s*[\r\n]: up to and including the last \r or \n of the whitespace run.
        if let Some(j) = t.as_bytes()[i..e]
            .iter()
            .rposition(|&x| x == b'\r' || x == b'\n')
        {
            return i + j + 1;
        }
        // \s+(?!\S): the whole run at the end of the text, else all but its last char.
        if e == t.len() {
            return e;
        }
        let last = t[i..e].chars().next_back().expect("non-empty run");
        if e - last.len_utf8() > i {
            return e - last.len_utf8();
        }
        // \s+
        return e;
    }
    // Unreachable for these patterns (every char is a letter, number, space or punctuation);
    // kept total so a table change can never loop forever.
    i + cl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(p: &SplitPattern, text: &str) {
        let fast = Splitter::new(p).unwrap().chunks(text).unwrap();
        let slow = Splitter::new_regex(p).unwrap().chunks(text).unwrap();
        assert_eq!(fast, slow, "pattern {p} on {text:?}");
    }

    #[test]
    fn built_in_patterns_compile_in_fancy_regex() {
        for p in [
            SplitPattern::Ja,
            SplitPattern::JaScript,
            SplitPattern::Gpt4,
            SplitPattern::JaPhrase,
            SplitPattern::JaSpan,
            SplitPattern::JaChar,
        ] {
            Splitter::new_regex(&p).unwrap();
        }
    }

    #[test]
    fn gpt4_keeps_japanese_runs_whole_and_ja_splits_by_script() {
        let text = "吾輩は猫である。名前はまだ無い。";
        let g = Splitter::new(&SplitPattern::Gpt4)
            .unwrap()
            .chunks(text)
            .unwrap();
        assert_eq!(g, ["吾輩は猫である", "。名前はまだ無い", "。"]);
        let j = Splitter::new(&SplitPattern::Ja)
            .unwrap()
            .chunks(text)
            .unwrap();
        assert_eq!(j, ["吾輩は", "猫である", "。名前はまだ", "無い", "。"]);
        let s = Splitter::new(&SplitPattern::JaScript)
            .unwrap()
            .chunks(text)
            .unwrap();
        assert_eq!(
            s,
            [
                "吾輩",
                "は",
                "猫",
                "である",
                "。名前",
                "はまだ",
                "無",
                "い",
                "。"
            ]
        );
    }

    #[test]
    fn ja_span_runs_to_whitespace_or_digits_and_ja_char_keeps_kanji_words() {
        let text = "梅雨（つゆ）は、1995年に東京で見た。 Don't 3 cats";
        let s = Splitter::new(&SplitPattern::JaSpan)
            .unwrap()
            .chunks(text)
            .unwrap();
        assert_eq!(
            s,
            [
                "梅雨（つゆ）は、",
                "19",
                "95年に東京で見た。",
                " Don't",
                " ",
                "3",
                " cats"
            ]
        );
        let c = Splitter::new(&SplitPattern::JaChar)
            .unwrap()
            .chunks("吾輩は猫である。\n\nA")
            .unwrap();
        assert_eq!(c, ["吾輩は", "猫である", "。", "\n", "\n", "A"]);
    }

    #[test]
    fn edge_cases_match_fancy_regex() {
        let cases = [
            "",
            " ",
            "   ",
            "a   b",
            "a \n\n b\r\n",
            "don't I'LL we've 'ſ 'x",
            "123456 ¹²³ 〇〇 二〇二四年",
            "ヶ月 関ヶ原 〆切 コーヒー ーー ｶﾀｶﾅ",
            "  \u{3000}全角\u{3000}スペース　",
            "⺀あ ⺀ 🈀あ",
            "emoji 😀😀 !!\n\n",
            "tab\t\tx\u{85}y\u{a0}z",
            "吾輩は猫である。名前は、まだ無い！？」』）。 end.」 x、\n",
        ];
        for p in [
            SplitPattern::Ja,
            SplitPattern::JaScript,
            SplitPattern::Gpt4,
            SplitPattern::JaPhrase,
            SplitPattern::JaSpan,
            SplitPattern::JaChar,
        ] {
            for c in cases {
                both(&p, c);
            }
        }
    }

    #[test]
    fn random_text_matches_fancy_regex() {
        // A deterministic xorshift over an alphabet of every class boundary that matters.
        let alphabet: Vec<char> = "aZ '’sSdlLvVeErR\r\n\t \u{3000}\u{a0}\u{85}0９①〇一二漢字々〆ヶあいゝゞアイーｱﾞ!?、。「」・()）！？，．』αЖ😀🈀⺀\u{301}-_."
            .chars()
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pats = [
            SplitPattern::Ja,
            SplitPattern::JaScript,
            SplitPattern::Gpt4,
            SplitPattern::JaPhrase,
            SplitPattern::JaSpan,
            SplitPattern::JaChar,
        ];
        let fast: Vec<_> = pats.iter().map(|p| Splitter::new(p).unwrap()).collect();
        let slow: Vec<_> = pats
            .iter()
            .map(|p| Splitter::new_regex(p).unwrap())
            .collect();
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y ^= y << 13;
                y ^= y >> 7;
                y ^= y << 17;
                s.push(alphabet[(y % alphabet.len() as u64) as usize]);
            }
            for (f, r) in fast.iter().zip(&slow) {
                assert_eq!(f.chunks(&s).unwrap(), r.chunks(&s).unwrap(), "{s:?}");
            }
        }
    }

    #[test]
    fn pattern_names_round_trip() {
        for s in ["ja", "ja-script", "gpt4", "ja-phrase", "ja-span", "ja-char"] {
            assert_eq!(s.parse::<SplitPattern>().unwrap().name(), s);
        }
        assert_eq!(
            format!("regex:{GPT4_PATTERN}")
                .parse::<SplitPattern>()
                .unwrap(),
            SplitPattern::Gpt4
        );
        assert!("nope".parse::<SplitPattern>().is_err());
    }
}
