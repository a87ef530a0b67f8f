//! Text normalization and the share-of-Japanese-script check.
//!
//! Every text field of a record goes through the same steps, each counted when it changes
//! something ([`NormStats`]):
//!
//! 1. control characters: C0/C1 controls other than tab and newline, U+FEFF (a BOM inside text),
//!    U+FFFE/U+FFFF are removed;
//! 2. newlines: CRLF, CR, NEL (U+0085), U+2028 and U+2029 become LF;
//! 3. Unicode form: NFC by default (canonical composition only: half-width katakana and
//!    full-width ASCII stay as written), NFKC optionally (folds both);
//! 4. whitespace: trailing spaces and tabs at line ends are removed, three or more newlines
//!    become two, and the text is trimmed. Code (python tool calls) keeps its indentation and
//!    blank lines; only steps 1–3 apply to it.

use std::borrow::Cow;

use njp_datasets::{PartKind, Record};
use serde::Serialize;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick, is_nfkc_quick};

use crate::recipe::{Form, NormalizeSpec};

/// What normalization changed, over a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NormStats {
    /// Text fields looked at.
    pub texts: u64,
    /// Records with at least one change.
    pub records_changed: u64,
    /// Text fields changed by each step.
    pub control_removed: u64,
    pub newlines_fixed: u64,
    pub unicode_form: u64,
    pub whitespace_fixed: u64,
    /// Control characters removed in total.
    pub control_chars: u64,
}

impl NormStats {
    pub fn add(&mut self, o: &NormStats) {
        self.texts += o.texts;
        self.records_changed += o.records_changed;
        self.control_removed += o.control_removed;
        self.newlines_fixed += o.newlines_fixed;
        self.unicode_form += o.unicode_form;
        self.whitespace_fixed += o.whitespace_fixed;
        self.control_chars += o.control_chars;
    }
}

/// Applies a [`NormalizeSpec`].
#[derive(Debug, Clone)]
pub struct Normalizer {
    spec: NormalizeSpec,
}

const fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

const fn is_newline_variant(c: char) -> bool {
    matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters that are NFC (quick check Yes) and starters (combining class 0), whatever
/// surrounds them: Latin up to U+02FF, common punctuation, arrows and symbols, CJK symbols
/// without the tone marks U+302A–U+302F, kana without the combining (han)dakuten
/// U+3099/U+309A, the unified ideographs (extension A included), and the half- and full-width
/// forms. A text made only of these is NFC. Checked against the Unicode tables by a
/// test over every one of them.
const fn is_nfc_safe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{2ff}'
        | '\u{2010}'..='\u{2027}'
        | '\u{2030}'..='\u{205e}'
        | '\u{2190}'..='\u{21ff}'
        | '\u{2460}'..='\u{24ff}'
        | '\u{2500}'..='\u{27bf}'
        | '\u{3000}'..='\u{3029}'
        | '\u{3400}'..='\u{4dbf}'
        | '\u{3030}'..='\u{3098}'
        | '\u{309b}'..='\u{30ff}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{ff00}'..='\u{ffef}')
}

/// Whether a three-byte character leaves every [`Scan`] flag alone (NFC-safe, neither a control
/// character nor a line break variant): bit `t & 0x3f` of entry `(l & 0x0f) << 6 | (m & 0x3f)`
/// for the UTF-8 bytes `l m t`. One lookup decides kana, kanji and CJK punctuation alike, with no
/// branch on which script a character is in (a scan that branched on the lead byte mispredicted
/// at every switch between kana and kanji).
static THREE_BYTE_QUIET: [u64; 1024] = {
    let mut table = [0u64; 1024];
    let mut i = 0;
    while i < 1024 {
        let mut bits = 0u64;
        let mut t = 0;
        while t < 64 {
            let cp = ((i as u32) << 6) | t as u32;
            if cp >= 0x800
                && let Some(c) = char::from_u32(cp)
                && is_nfc_safe(c)
                && !is_control(c)
                && !is_newline_variant(c)
            {
                bits |= 1u64 << t;
            }
            t += 1;
        }
        table[i] = bits;
        i += 1;
    }
    table
};

/// [`THREE_BYTE_QUIET`] for the UTF-8 bytes of a three-byte character.
#[inline(always)]
fn three_byte_quiet(lead: u8, second: u8, third: u8) -> bool {
    let bits = THREE_BYTE_QUIET[((lead as usize & 0x0f) << 6) | (second as usize & 0x3f)];
    bits >> (third & 0x3f) & 1 == 1
}

/// What one pass over a text found (each flag may be a false alarm, never a miss).
struct Scan {
    control: bool,
    newline: bool,
    nfc_safe: bool,
    /// Leading/trailing blanks, blanks before a line break or 3+ line breaks.
    whitespace: bool,
}

impl Scan {
    /// One pass over the bytes: ASCII and the three-byte characters that raise no flag (kana,
    /// CJK punctuation, kanji and the rest of [`THREE_BYTE_QUIET`]) are decided from the bytes;
    /// anything else is decoded.
    fn of(s: &str) -> Scan {
        let b = s.as_bytes();
        let mut scan = Scan {
            control: false,
            newline: false,
            nfc_safe: true,
            whitespace: needs_trim(s),
        };
        let mut i = 0;
        let mut newlines = 0usize;
        while i < b.len() {
            let c = b[i];
            if c < 0x80 {
                if c == b'\n' {
                    newlines += 1;
                    scan.whitespace |= newlines >= 3
                        || (i > 0 && matches!(b[i - 1], b' ' | b'\t'))
                        || (i >= 3 && b[i - 3..i] == [0xe3, 0x80, 0x80]);
                } else {
                    newlines = 0;
                    match c {
                        b'\r' => scan.newline = true,
                        b'\t' => {}
                        0..=0x1f | 0x7f => scan.control = true,
                        _ => {}
                    }
                }
                i += 1;
                continue;
            }
            newlines = 0;
            // A valid &str: a three-byte lead (0xE0–0xEF) is followed by two continuation bytes.
            if c & 0xf0 == 0xe0 && three_byte_quiet(c, b[i + 1], b[i + 2]) {
                i += 3;
                continue;
            }
            let ch = s[i..].chars().next().expect("a char starts here");
            scan.control |= is_control(ch);
            scan.newline |= is_newline_variant(ch);
            scan.nfc_safe &= is_nfc_safe(ch);
            i += ch.len_utf8();
        }
        scan
    }
}

impl Normalizer {
    pub fn new(spec: NormalizeSpec) -> Self {
        Normalizer { spec }
    }

    /// Normalizes one text; `code` keeps indentation and blank lines.
    pub fn text<'a>(&self, s: &'a str, code: bool, st: &mut NormStats) -> Cow<'a, str> {
        st.texts += 1;
        // One pass decides which steps can have work to do; most texts are clean.
        let scan = Scan::of(s);
        let mut cur: Cow<'a, str> = Cow::Borrowed(s);
        if self.spec.control && scan.control && cur.chars().any(is_control) {
            let before = cur.chars().count();
            let cleaned: String = cur.chars().filter(|&c| !is_control(c)).collect();
            st.control_chars += (before - cleaned.chars().count()) as u64;
            st.control_removed += 1;
            cur = Cow::Owned(cleaned);
        }
        if self.spec.newlines && scan.newline && cur.chars().any(is_newline_variant) {
            let mut out = String::with_capacity(cur.len());
            let mut chars = cur.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => {
                        if chars.peek() == Some(&'\n') {
                            chars.next();
                        }
                        out.push('\n');
                    }
                    '\u{85}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
                    other => out.push(other),
                }
            }
            st.newlines_fixed += 1;
            cur = Cow::Owned(out);
        }
        match self.spec.form {
            Form::Nfc => {
                // Removing characters or turning line breaks into LF keeps a text made of
                // NFC-safe characters NFC-safe.
                if !scan.nfc_safe && is_nfc_quick(cur.chars()) != IsNormalized::Yes {
                    let n: String = cur.nfc().collect();
                    if n != cur {
                        st.unicode_form += 1;
                        cur = Cow::Owned(n);
                    }
                }
            }
            Form::Nfkc => {
                if is_nfkc_quick(cur.chars()) != IsNormalized::Yes {
                    let n: String = cur.nfkc().collect();
                    if n != cur {
                        st.unicode_form += 1;
                        cur = Cow::Owned(n);
                    }
                }
            }
            Form::None => {}
        }
        // An unchanged text was checked by the scan; a changed one is checked again.
        let untouched = matches!(cur, Cow::Borrowed(_));
        if self.spec.whitespace
            && !code
            && (if untouched {
                scan.whitespace
            } else {
                needs_whitespace_cleanup(&cur)
            })
            && let Some(fixed) = clean_whitespace(&cur)
        {
            st.whitespace_fixed += 1;
            cur = Cow::Owned(fixed);
        }
        cur
    }

    /// Normalizes every text of a record in place. Returns whether anything changed.
    pub fn record(&self, r: &mut Record, st: &mut NormStats) -> bool {
        let mut changed = false;
        let mut apply = |s: &mut String, code: bool, st: &mut NormStats| {
            if let Cow::Owned(n) = self.text(s, code, st)
                && n != *s
            {
                *s = n;
                changed = true;
            }
        };
        match r {
            Record::Document(d) => apply(&mut d.text, false, st),
            Record::Conversation(c) => {
                for m in &mut c.messages {
                    for p in &mut m.parts {
                        // Tool outputs are compared with calculator results: only control
                        // characters and newlines may change there, as in code.
                        let code = p.kind != PartKind::Text;
                        apply(&mut p.text, code, st);
                    }
                }
            }
            Record::MultipleChoice(mc) => {
                apply(&mut mc.question, false, st);
                for c in &mut mc.choices {
                    apply(c, false, st);
                }
                if let Some(s) = &mut mc.subject {
                    apply(s, false, st);
                }
            }
            Record::Math(m) => {
                apply(&mut m.question, false, st);
                apply(&mut m.solution, false, st);
            }
        }
        if changed {
            st.records_changed += 1;
        }
        changed
    }
}

fn is_edge(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n')
}

/// Blanks at either end.
fn needs_trim(s: &str) -> bool {
    s.starts_with(is_edge) || s.ends_with(is_edge) || s.ends_with('\u{3000}')
}

/// Whether [`clean_whitespace`] can change `s`.
fn needs_whitespace_cleanup(s: &str) -> bool {
    needs_trim(s)
        || s.contains(" \n")
        || s.contains("\t\n")
        || s.contains("\n\n\n")
        || s.contains("\u{3000}\n")
}

/// Trailing blanks removed per line, 3+ newlines → 2, whole text trimmed. `None` when unchanged.
fn clean_whitespace(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut newlines = 0usize;
    for (i, line) in s.trim_matches(is_edge).split('\n').enumerate() {
        let line = line.trim_end_matches([' ', '\t', '\u{3000}']);
        if i > 0 {
            if line.is_empty() {
                newlines += 1;
                continue;
            }
            out.push_str(if newlines >= 1 { "\n\n" } else { "\n" });
            newlines = 0;
        }
        out.push_str(line);
    }
    (out != s).then_some(out)
}

/// Whether a character is Japanese script: hiragana, katakana (full and half width), kanji
/// (CJK unified ideographs and extensions, compatibility ideographs) and the iteration marks.
pub fn is_japanese(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{309f}'   // hiragana
        | '\u{30a0}'..='\u{30ff}' // katakana
        | '\u{31f0}'..='\u{31ff}' // katakana phonetic extensions
        | '\u{ff66}'..='\u{ff9f}' // half-width katakana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{f900}'..='\u{faff}' // compatibility ideographs
        | '\u{20000}'..='\u{3134f}' // extensions B–G
        | '々' | '〆' | '〇')
}

/// Share of Japanese-script characters among the letters of `text` (0 when it has no letters),
/// and the number of letters.
pub fn japanese_share(text: &str) -> (f64, usize) {
    let mut letters = 0usize;
    let mut ja = 0usize;
    for c in text.chars() {
        if is_japanese(c) {
            ja += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters == 0 {
        (0.0, 0)
    } else {
        (ja as f64 / letters as f64, letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_byte_table_matches_the_character_tests() {
        let quiet = |c: char| {
            let mut buf = [0u8; 4];
            let b = c.encode_utf8(&mut buf).as_bytes();
            assert_eq!(b.len(), 3, "U+{:04X}", c as u32);
            three_byte_quiet(b[0], b[1], b[2])
        };
        for c in (0x800..=0xffffu32).filter_map(char::from_u32) {
            let expected = is_nfc_safe(c) && !is_control(c) && !is_newline_variant(c);
            assert_eq!(quiet(c), expected, "U+{:04X}", c as u32);
        }
        // Kana, kanji and CJK punctuation take the table's fast way; the combining dakuten,
        // U+2028 and a BOM do not.
        for c in ['あ', 'ア', '漢', '。', '「', '　'] {
            assert!(quiet(c), "{c}");
        }
        for c in ['\u{3099}', '\u{2028}', '\u{feff}'] {
            assert!(!quiet(c), "U+{:04X}", c as u32);
        }
    }

    fn norm(spec: NormalizeSpec, s: &str) -> (String, NormStats) {
        let mut st = NormStats::default();
        let out = Normalizer::new(spec).text(s, false, &mut st).into_owned();
        (out, st)
    }

    #[test]
    fn steps_are_counted() {
        let (out, st) = norm(
            NormalizeSpec::default(),
            "\u{feff}こんにちは \r\n\r\n\r\n\r\n世界\u{7}\r",
        );
        assert_eq!(out, "こんにちは\n\n世界");
        assert_eq!(
            (
                st.control_removed,
                st.control_chars,
                st.newlines_fixed,
                st.whitespace_fixed,
                st.unicode_form
            ),
            (1, 2, 1, 1, 0)
        );
        // NFC composes か + ゛ (combining) into が; half-width katakana stays under NFC.
        let (out, st) = norm(NormalizeSpec::default(), "か\u{3099}ｶﾞ");
        assert_eq!(out, "がｶﾞ");
        assert_eq!(st.unicode_form, 1);
        let nfkc = NormalizeSpec {
            form: Form::Nfkc,
            ..NormalizeSpec::default()
        };
        let (out, _) = norm(nfkc, "ｶﾞＡ１");
        assert_eq!(out, "ガA1");
        let (out, st) = norm(NormalizeSpec::default(), "already clean\nline");
        assert_eq!(out, "already clean\nline");
        assert_eq!(
            st,
            NormStats {
                texts: 1,
                ..NormStats::default()
            }
        );
    }

    #[test]
    fn code_keeps_indentation() {
        let mut st = NormStats::default();
        let n = Normalizer::new(NormalizeSpec::default());
        let code = "def f():\r\n    return 1\n\n\n\nprint(f())\n";
        assert_eq!(
            n.text(code, true, &mut st),
            "def f():\n    return 1\n\n\n\nprint(f())\n"
        );
    }

    #[test]
    fn nfc_safe_characters_are_nfc_starters() {
        use unicode_normalization::char::canonical_combining_class;
        let mut n = 0;
        for c in (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_nfc_safe(c))
        {
            assert_eq!(
                is_nfc_quick(std::iter::once(c)),
                IsNormalized::Yes,
                "U+{:04X}",
                c as u32
            );
            assert_eq!(canonical_combining_class(c), 0, "U+{:04X}", c as u32);
            n += 1;
        }
        assert!(n > 20_000, "{n}");
        // The scan flags every text the slow checks would act on.
        for s in [
            "か\u{3099}",
            "a\u{301}",
            "\u{f900}",
            "x\u{85}y",
            "x\u{2028}",
            "\r",
            "\u{feff}",
            "\u{7}",
            "\u{9f}",
        ] {
            let scan = Scan::of(s);
            assert!(
                !scan.nfc_safe || scan.control || scan.newline,
                "{s:?} passes the scan"
            );
            assert_eq!(scan.control, s.chars().any(is_control), "{s:?}");
            assert_eq!(scan.newline, s.chars().any(is_newline_variant), "{s:?}");
        }
        let scan = Scan::of("吾輩は猫である。ｶﾀｶﾅ　ＡＢＣ「」… abc\n\t");
        assert!(!scan.control && !scan.newline);
    }

    /// The byte scan agrees with the per-character checks on every code point of the BMP
    /// and beyond (one by one, and between Japanese text), and never misses whitespace work.
    #[test]
    fn byte_scan_agrees_with_the_character_checks() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("漢{c}か")] {
                let scan = Scan::of(&s);
                assert_eq!(
                    scan.control,
                    s.chars().any(is_control),
                    "U+{:04X}",
                    c as u32
                );
                assert_eq!(
                    scan.newline,
                    s.chars().any(is_newline_variant),
                    "U+{:04X}",
                    c as u32
                );
                assert_eq!(
                    scan.nfc_safe,
                    s.chars().all(is_nfc_safe),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
        let pieces = [" ", "\t", "\n", "\u{3000}", "a", "あ", "\r", "\u{3099}"];
        // Every string of up to four pieces.
        let mut all = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = all
                .iter()
                .flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}")))
                .collect();
            all.extend(next);
        }
        for s in &all {
            assert_eq!(Scan::of(s).whitespace, needs_whitespace_cleanup(s), "{s:?}");
            if clean_whitespace(s).is_some() {
                assert!(Scan::of(s).whitespace, "{s:?}");
            }
        }
    }

    #[test]
    fn japanese_share_counts_letters_only() {
        let (s, n) = japanese_share("りんごが3個と5個あります。Total 8");
        assert_eq!(n, 16);
        assert!((s - 11.0 / 16.0).abs() < 1e-9, "{s}");
        assert_eq!(japanese_share("12 + 3 = 15"), (0.0, 0));
        assert_eq!(japanese_share("ｶﾀｶﾅ漢字").0, 1.0);
    }
}
