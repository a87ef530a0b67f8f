//! Exact and near-duplicate removal, deterministic keep-first.
//!
//! * **Exact**: a 128-bit hash (xxh3) of the record text with whitespace removed and ASCII
//!   lowercased (the text is already Unicode-normalized by then).
//! * **Near**: MinHash over character n-grams (default 5) with `permutations` hash functions,
//!   indexed with LSH in `bands` bands. A candidate sharing a band is a duplicate when the
//!   estimated Jaccard similarity of the two signatures reaches `threshold`.
//!
//! Rows are offered in input order; the first of a group is kept, later ones are dropped and
//! attached to the kept row's cluster. Rows of `against` datasets are offered first, so their
//! duplicates in the new dataset are dropped (cross-dataset dedup).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, xxh3_128};

use crate::recipe::DedupSpec;

/// Why a row was dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Keep,
    /// Same normalized text as the kept row `of`.
    Exact {
        of: String,
    },
    /// Estimated Jaccard `similarity` ≥ threshold with the kept row `of`.
    Near {
        of: String,
        similarity: f64,
    },
}

/// A cluster of duplicates, for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cluster {
    pub kept: String,
    pub dropped: Vec<String>,
    /// Size including the kept row.
    pub size: usize,
}

/// Dedup counts for the manifest.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DedupStats {
    pub offered: u64,
    pub exact_dropped: u64,
    pub near_dropped: u64,
    /// Dropped because they duplicate a row of an `against` dataset.
    pub against_dropped: u64,
    pub clusters: u64,
    pub largest_cluster: usize,
    /// The first clusters in input order (at most 20, 10 members each).
    pub examples: Vec<Cluster>,
    pub ngram: usize,
    pub threshold: f64,
    pub permutations: usize,
    pub bands: usize,
}

/// A text as dedup sees it ([`Dedup::fingerprint`]).
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    hash: u128,
    sig: Option<Vec<u64>>,
}

/// The dedup index.
pub struct Dedup {
    spec: DedupSpec,
    rows_per_band: usize,
    /// (a, b) of the permutations `a·h + b`.
    perms: Vec<(u64, u64)>,
    exact: HashMap<u128, u32>,
    bands: Vec<HashMap<u64, Vec<u32>>>,
    /// Signatures of kept rows, `permutations` values each.
    sigs: Vec<u64>,
    labels: Vec<String>,
    /// Kept rows that came from an `against` dataset.
    reference: Vec<bool>,
    clusters: BTreeMap<u32, Vec<String>>,
    stats: DedupStats,
}

/// The text duplicates are judged on: whitespace removed, ASCII lowercased.
pub fn dedup_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Dedup {
    pub fn new(spec: &DedupSpec) -> Self {
        let perms = (0..spec.permutations as u64)
            .map(|i| {
                let a = xxh3_64_with_seed(b"njp-minhash-a", i) | 1;
                let b = xxh3_64_with_seed(b"njp-minhash-b", i);
                (a, b)
            })
            .collect();
        Dedup {
            rows_per_band: (spec.permutations / spec.bands.max(1)).max(1),
            perms,
            exact: HashMap::new(),
            bands: (0..spec.bands).map(|_| HashMap::new()).collect(),
            sigs: Vec::new(),
            labels: Vec::new(),
            reference: Vec::new(),
            clusters: BTreeMap::new(),
            stats: DedupStats {
                ngram: spec.ngram,
                threshold: spec.threshold,
                permutations: spec.permutations,
                bands: spec.bands,
                ..DedupStats::default()
            },
            spec: spec.clone(),
        }
    }

    /// The MinHash signature of a (dedup-key) text.
    pub fn signature(&self, key: &str) -> Vec<u64> {
        let chars: Vec<(usize, char)> = key.char_indices().collect();
        let n = self.spec.ngram.max(1);
        let mut sig = vec![u64::MAX; self.perms.len()];
        let mut add = |s: &str| {
            let h = xxh3_64(s.as_bytes());
            for (slot, (a, b)) in sig.iter_mut().zip(&self.perms) {
                let v = a.wrapping_mul(h).wrapping_add(*b);
                if v < *slot {
                    *slot = v;
                }
            }
        };
        if chars.len() <= n {
            add(key);
        } else {
            for i in 0..=chars.len() - n {
                let start = chars[i].0;
                let end = chars.get(i + n).map_or(key.len(), |c| c.0);
                add(&key[start..end]);
            }
        }
        sig
    }

    fn band_key(&self, band: usize, sig: &[u64]) -> u64 {
        let r = self.rows_per_band;
        let slice = &sig[band * r..(band + 1) * r];
        let mut bytes = Vec::with_capacity(r * 8 + 8);
        bytes.extend_from_slice(&(band as u64).to_le_bytes());
        for v in slice {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        xxh3_64(&bytes)
    }

    /// Offers a reference row (an `against` dataset): indexed, never counted as a drop.
    pub fn add_reference(&mut self, label: &str, text: &str) {
        let key = dedup_key(text);
        let h = xxh3_128(key.as_bytes());
        if self.exact.contains_key(&h) {
            return;
        }
        let sig = if self.spec.near {
            Some(self.signature(&key))
        } else {
            None
        };
        if let Some(sig) = &sig
            && self.near_match(sig).is_some()
        {
            return;
        }
        self.insert(label, h, sig, true);
    }

    fn near_match(&self, sig: &[u64]) -> Option<(u32, f64)> {
        let p = self.perms.len();
        let mut best: Option<(u32, f64)> = None;
        for band in 0..self.bands.len() {
            let k = self.band_key(band, sig);
            if let Some(cands) = self.bands[band].get(&k) {
                for &c in cands {
                    let other = &self.sigs[c as usize * p..(c as usize + 1) * p];
                    let same = other.iter().zip(sig).filter(|(a, b)| a == b).count();
                    let sim = same as f64 / p as f64;
                    if sim >= self.spec.threshold
                        && best.is_none_or(|(bi, bs)| sim > bs || (sim == bs && c < bi))
                    {
                        best = Some((c, sim));
                    }
                }
            }
            if best.is_some() {
                // Keep-first and deterministic: the earliest band with a match decides among
                // equals, and candidates are in insertion order.
                break;
            }
        }
        best
    }

    fn insert(&mut self, label: &str, h: u128, sig: Option<Vec<u64>>, reference: bool) -> u32 {
        let idx = self.labels.len() as u32;
        self.exact.insert(h, idx);
        if let Some(sig) = sig {
            for band in 0..self.bands.len() {
                let k = self.band_key(band, &sig);
                self.bands[band].entry(k).or_default().push(idx);
            }
            self.sigs.extend_from_slice(&sig);
        } else if self.spec.near {
            self.sigs
                .extend(std::iter::repeat_n(u64::MAX, self.perms.len()));
        }
        self.labels.push(label.to_string());
        self.reference.push(reference);
        idx
    }

    /// Whether `offer` looks at the text at all (exact or near dedup is on).
    pub fn enabled(&self) -> bool {
        self.spec.exact || self.spec.near
    }

    /// What [`Dedup::offer_fingerprint`] needs of a text: its key's hash and (near dedup) its
    /// MinHash signature. Reads only the settings, so rows can be fingerprinted in parallel.
    pub fn fingerprint(&self, text: &str) -> Fingerprint {
        if !self.enabled() {
            return Fingerprint::default();
        }
        let key = dedup_key(text);
        Fingerprint {
            hash: xxh3_128(key.as_bytes()),
            sig: self.spec.near.then(|| self.signature(&key)),
        }
    }

    /// Offers a row of the dataset being built: `Keep` indexes it, anything else is a drop
    /// (counted and attached to the kept row's cluster).
    pub fn offer(&mut self, label: &str, text: &str) -> Verdict {
        let fp = self.fingerprint(text);
        self.offer_fingerprint(label, fp)
    }

    /// [`Dedup::offer`] with the text already fingerprinted (by [`Dedup::fingerprint`] of a
    /// `Dedup` with the same settings).
    pub fn offer_fingerprint(&mut self, label: &str, fp: Fingerprint) -> Verdict {
        self.stats.offered += 1;
        if !self.enabled() {
            return Verdict::Keep;
        }
        let h = fp.hash;
        if self.spec.exact
            && let Some(&i) = self.exact.get(&h)
        {
            self.stats.exact_dropped += 1;
            return self.dropped(i, label, |of| Verdict::Exact { of });
        }
        let sig = fp.sig;
        if let Some(sig) = &sig
            && let Some((i, similarity)) = self.near_match(sig)
        {
            self.stats.near_dropped += 1;
            return self.dropped(i, label, |of| Verdict::Near { of, similarity });
        }
        self.insert(label, h, sig, false);
        Verdict::Keep
    }

    fn dropped(&mut self, kept: u32, label: &str, make: impl FnOnce(String) -> Verdict) -> Verdict {
        if self.reference[kept as usize] {
            self.stats.against_dropped += 1;
        }
        self.clusters
            .entry(kept)
            .or_default()
            .push(label.to_string());
        make(self.labels[kept as usize].clone())
    }

    /// The counts and the first clusters.
    pub fn stats(&self) -> DedupStats {
        let mut s = self.stats.clone();
        s.clusters = self.clusters.len() as u64;
        s.largest_cluster = self
            .clusters
            .values()
            .map(|d| d.len() + 1)
            .max()
            .unwrap_or(0);
        s.examples = self
            .clusters
            .iter()
            .take(20)
            .map(|(k, d)| Cluster {
                kept: self.labels[*k as usize].clone(),
                dropped: d.iter().take(10).cloned().collect(),
                size: d.len() + 1,
            })
            .collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DedupSpec {
        DedupSpec::default()
    }

    #[test]
    fn exact_ignores_whitespace_and_ascii_case() {
        let mut d = Dedup::new(&spec());
        assert_eq!(d.offer("a", "Hello 世界です"), Verdict::Keep);
        assert_eq!(
            d.offer("b", "hello  世界です\n"),
            Verdict::Exact { of: "a".into() }
        );
        assert_eq!(d.offer("c", "まったく別の文章です"), Verdict::Keep);
        let s = d.stats();
        assert_eq!((s.exact_dropped, s.near_dropped, s.clusters), (1, 0, 1));
        assert_eq!(s.examples[0].dropped, vec!["b".to_string()]);
    }

    #[test]
    fn near_duplicates_are_found_and_distinct_texts_kept() {
        let base = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。吾輩はここで始めて人間というものを見た。";
        let near = base.replace("ニャーニャー", "ニャーニャーと");
        let other = "親譲りの無鉄砲で小供の時から損ばかりしている。小学校に居る時分学校の二階から飛び降りて一週間ほど腰を抜かした事がある。なぜそんな無闇をしたと聞く人があるかも知れぬ。";
        let mut d = Dedup::new(&spec());
        assert_eq!(d.offer("a", base), Verdict::Keep);
        assert_eq!(d.offer("b", other), Verdict::Keep);
        match d.offer("c", &near) {
            Verdict::Near { of, similarity } => {
                assert_eq!(of, "a");
                assert!((0.8..1.0).contains(&similarity), "{similarity}");
            }
            v => panic!("expected a near duplicate, got {v:?}"),
        }
        // Deterministic: the same input gives the same signature.
        assert_eq!(
            d.signature(&dedup_key(base)),
            Dedup::new(&spec()).signature(&dedup_key(base))
        );
        assert_eq!(d.stats().near_dropped, 1);
    }

    #[test]
    fn reference_rows_win_across_datasets() {
        let mut d = Dedup::new(&spec());
        d.add_reference("old@1:x", "同じ質問です。答えは何ですか。");
        assert_eq!(
            d.offer("new:1", "同じ質問です。 答えは何ですか。"),
            Verdict::Exact {
                of: "old@1:x".into()
            }
        );
        assert_eq!(d.stats().against_dropped, 1);
    }

    #[test]
    fn near_can_be_disabled() {
        let mut s = spec();
        s.near = false;
        let mut d = Dedup::new(&s);
        let base = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよ";
        assert_eq!(d.offer("a", base), Verdict::Keep);
        assert_eq!(d.offer("b", &format!("{base}ん")), Verdict::Keep);
    }
}
