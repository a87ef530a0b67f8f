//! Decontamination against evaluation sets with character n-grams suited to Japanese.
//!
//! Both sides go through [`normalize`]: NFKC (full-width ASCII and half-width katakana fold to
//! their usual forms, `ｶﾞ` → `ガ`), lowercase, then every whitespace, punctuation and symbol
//! character is removed (`、。！？「」・（）` and ASCII punctuation alike). Japanese has no word
//! boundaries, so the unit is the character: an evaluation item is indexed by its character
//! n-grams, and a training row is contaminated by an item when it contains at least
//! `min_fraction` of that item's n-grams. Items shorter than n characters after normalization are
//! indexed whole (a row must contain them verbatim); items under [`MIN_ITEM_CHARS`] characters are
//! skipped and counted, since they match by chance.
//!
//! The n (default [`crate::recipe::DEFAULT_NGRAM`]) was chosen by measurement on
//! JCommonsenseQA: see the crate README and `bench/mix`.

use std::hash::{Hash, Hasher};

use njp_datasets::Record;
use rustc_hash::{FxHashMap, FxHasher};
use unicode_normalization::UnicodeNormalization;

/// Evaluation items shorter than this (after normalization) are not indexed.
pub const MIN_ITEM_CHARS: usize = 6;

/// NFKC, lowercase, and no whitespace, punctuation or symbols.
pub fn normalize(text: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len() / 2);
    for c in text.nfkc() {
        if c.is_whitespace() || is_punct_or_symbol(c) {
            continue;
        }
        if c.is_uppercase() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Punctuation and symbols (ASCII, CJK, full-width forms, general punctuation, arrows…).
fn is_punct_or_symbol(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || c.is_ascii_control();
    }
    let u = c as u32;
    matches!(u,
        0x00A0..=0x00BF        // Latin-1 punctuation and signs
        | 0x00D7 | 0x00F7
        | 0x2000..=0x2BFF      // general punctuation, super/subscripts, letterlike, arrows, math, box, shapes, dingbats
        | 0x3000..=0x3004      // ideographic space, 、。〃 〄
        | 0x3008..=0x3020      // brackets 〈〉《》「」『』【】〒〓〔〕…〜
        | 0x3030 | 0x303D
        | 0x30FB               // ・
        | 0xFE30..=0xFE4F      // CJK compatibility forms
        | 0xFE50..=0xFE6F      // small form variants
        | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65 // full-width punctuation (before NFKC)
        | 0xFFE0..=0xFFEE
    ) || c.is_control()
}

fn hash_chars(chars: &[char]) -> u64 {
    let mut h = FxHasher::default();
    chars.len().hash(&mut h);
    for c in chars {
        (*c as u32).hash(&mut h);
    }
    h.finish()
}

/// The part of an evaluation record that must not leak into training data: the question for
/// multiple choice and math, the user turns for conversations, the text for documents.
pub fn eval_text(r: &Record) -> String {
    match r {
        Record::Document(d) => d.text.clone(),
        Record::Conversation(c) => c
            .messages
            .iter()
            .filter(|m| m.role == njp_datasets::Role::User)
            .map(|m| m.joined_text())
            .collect::<Vec<_>>()
            .join("\n"),
        Record::MultipleChoice(mc) => mc.question.clone(),
        Record::Math(m) => m.question.clone(),
    }
}

/// One evaluation item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalItem {
    /// `name@version` of the evaluation dataset.
    pub dataset: String,
    pub id: String,
    pub text: String,
}

/// A training row's match.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index into [`Index::items`].
    pub item: usize,
    /// The item's n-grams found in the row.
    pub matched: u32,
    /// The item's distinct n-grams.
    pub of: u32,
}

/// An n-gram index over evaluation items.
#[derive(Debug)]
pub struct Index {
    n: usize,
    min_fraction: f64,
    items: Vec<EvalItem>,
    /// Distinct n-grams (or whole short items) per item.
    item_grams: Vec<u32>,
    grams: FxHashMap<u64, Vec<u32>>,
    /// Lengths of short items indexed whole.
    short_lens: Vec<usize>,
    skipped: usize,
}

impl Index {
    /// Indexes `items` by character n-grams of size `n`.
    pub fn build(items: Vec<EvalItem>, n: usize, min_fraction: f64) -> Index {
        let mut grams: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        let mut item_grams = Vec::with_capacity(items.len());
        let mut short_lens = Vec::new();
        let mut skipped = 0;
        for (i, item) in items.iter().enumerate() {
            let chars = normalize(&item.text);
            let mut mine: Vec<u64> = if chars.len() < MIN_ITEM_CHARS {
                skipped += 1;
                Vec::new()
            } else if chars.len() < n {
                if !short_lens.contains(&chars.len()) {
                    short_lens.push(chars.len());
                }
                vec![hash_chars(&chars)]
            } else {
                chars.windows(n).map(hash_chars).collect()
            };
            mine.sort_unstable();
            mine.dedup();
            for g in &mine {
                grams.entry(*g).or_default().push(i as u32);
            }
            item_grams.push(mine.len() as u32);
        }
        short_lens.sort_unstable();
        if skipped > 0 {
            tracing::info!(
                skipped,
                min_chars = MIN_ITEM_CHARS,
                "evaluation items too short to index"
            );
        }
        Index {
            n,
            min_fraction,
            items,
            item_grams,
            grams,
            short_lens,
            skipped,
        }
    }

    pub fn items(&self) -> &[EvalItem] {
        &self.items
    }

    /// Items not indexed because they are shorter than [`MIN_ITEM_CHARS`].
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// The best-matching evaluation item the text is contaminated by, if any.
    pub fn check(&self, text: &str) -> Option<Hit> {
        if self.grams.is_empty() {
            return None;
        }
        let chars = normalize(text);
        let mut seen: FxHashMap<u64, ()> = FxHashMap::default();
        let mut counts: FxHashMap<u32, u32> = FxHashMap::default();
        let mut visit = |h: u64| {
            if let Some(items) = self.grams.get(&h)
                && seen.insert(h, ()).is_none()
            {
                for &i in items {
                    *counts.entry(i).or_default() += 1;
                }
            }
        };
        if chars.len() >= self.n {
            for w in chars.windows(self.n) {
                visit(hash_chars(w));
            }
        }
        for &l in &self.short_lens {
            if chars.len() >= l {
                for w in chars.windows(l) {
                    visit(hash_chars(w));
                }
            }
        }
        let mut best: Option<Hit> = None;
        for (item, matched) in counts {
            let of = self.item_grams[item as usize];
            if of == 0 || (matched as f64) < self.min_fraction * of as f64 {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => {
                    let (x, y) = (matched as f64 / of as f64, b.matched as f64 / b.of as f64);
                    x > y || (x == y && (item as usize) < b.item)
                }
            };
            if better {
                best = Some(Hit {
                    item: item as usize,
                    matched,
                    of,
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str) -> EvalItem {
        EvalItem {
            dataset: "ev@1".into(),
            id: "1".into(),
            text: text.into(),
        }
    }

    #[test]
    fn normalization_folds_width_and_punctuation() {
        let a: String = normalize("電子機器で使用される、最も主要な電子回路基板の事をなんと言う？")
            .into_iter()
            .collect();
        let b: String = normalize("電子機器で使用される最も主要な電子回路基板の事をなんと言う?")
            .into_iter()
            .collect();
        assert_eq!(a, b);
        let c: String = normalize("ＡＢＣ　１２３ ｶﾞｷﾞ「テスト」・")
            .into_iter()
            .collect();
        assert_eq!(c, "abc123ガギテスト");
    }

    #[test]
    fn finds_perturbed_copies_only() {
        let idx = Index::build(
            vec![
                item("電子機器で使用される最も主要な電子回路基板の事をなんと言う？"),
                item("田んぼが広がる風景を何という？"),
                item("はい"),
            ],
            10,
            0.5,
        );
        assert_eq!(idx.skipped(), 1);
        let hit = idx
            .check("多肢選択問題：電子機器で使用される、最も主要な電子回路基板の事を、なんと言う?\n- 掲示板=A")
            .unwrap();
        assert_eq!(hit.item, 0);
        assert_eq!(hit.matched, hit.of);
        assert!(idx.check("Ｑ：田んぼが広がる風景を何という").is_some());
        assert!(
            idx.check("電子レンジで温めた牛乳を飲む。田んぼの風景")
                .is_none()
        );
        assert!(idx.check("はい、そうです").is_none());
    }
}
