//! Token-length audits: how long rows are once rendered, and what each truncation policy costs.
//!
//! Every row is rendered as training sees it: conversations (and multiple choice / math through
//! nanochat's conversions) with the chat template, documents as `<|bos|>` + text. For each row
//! we keep its full length, supervised tokens, what `truncate` would keep and what nanochat's
//! silent crop (`ids[:max]`) would keep, so the cost of every policy comes from one pass:
//!
//! | policy | rows dropped | tokens cut | supervised lost | rows left with 0 supervised |
//! |---|---|---|---|---|
//! | `error` | none: the build / audit fails when a row is over the limit or unsupervised |
//! | `drop` | over the limit or unsupervised | all of theirs | all of theirs | 0 |
//! | `truncate` | unsupervised, or not even the first assistant turn fits | cut turns + dropped rows | likewise | 0 |
//! | `crop` (nanochat v1) | none | beyond the limit | beyond the limit | rows whose first supervised token is past the limit |

use std::collections::BTreeMap;

use njp_datasets::Record;
use njp_tokenizer::chat::DropReason;
use njp_tokenizer::{RenderOutcome, Tokenizer, TruncationPolicy};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Token counts of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RowTokens {
    /// Rendered length of the whole row.
    pub tokens: u32,
    /// Supervised tokens of the whole row (every token for documents).
    pub supervised: u32,
    /// Tokens kept by `truncate` (0 when it drops the row).
    pub truncated_tokens: u32,
    /// Supervised tokens kept by `truncate`.
    pub truncated_supervised: u32,
    /// Supervised tokens within the first `max_seq_len` tokens (nanochat's crop).
    pub cropped_supervised: u32,
}

/// Renders and counts one row.
///
/// # Errors
/// A message when the conversation breaks the chat template.
pub fn measure(tok: &Tokenizer, record: &Record, max: usize) -> Result<RowTokens, String> {
    if let Record::Document(d) = record {
        let n = 1 + tok.encode(&d.text).len() as u32;
        let kept = n.min(max as u32);
        return Ok(RowTokens {
            tokens: n,
            supervised: n,
            truncated_tokens: kept,
            truncated_supervised: kept,
            cropped_supervised: kept,
        });
    }
    let converted;
    let conv = match record {
        Record::Conversation(c) => c,
        other => {
            converted = other.to_conversation().expect("non-document converts");
            &converted
        }
    };
    let outcome = tok
        .render_outcome(conv, max, TruncationPolicy::Truncate)
        .map_err(|e| e.to_string())?;
    // Only rows over the limit need the whole mask again for the crop.
    let cropped = || -> Result<u32, String> {
        let full = tok
            .render_outcome(conv, usize::MAX, TruncationPolicy::Truncate)
            .map_err(|e| e.to_string())?;
        Ok(match full {
            RenderOutcome::Kept(r) => r.mask[..max.min(r.len())]
                .iter()
                .filter(|&&m| m == 1)
                .count() as u32,
            _ => 0,
        })
    };
    Ok(match outcome {
        RenderOutcome::Kept(r) => {
            let s = r.supervised() as u32;
            RowTokens {
                tokens: r.len() as u32,
                supervised: s,
                truncated_tokens: r.len() as u32,
                truncated_supervised: s,
                cropped_supervised: s,
            }
        }
        RenderOutcome::Truncated {
            rendered,
            full_tokens,
            full_supervised,
            ..
        } => RowTokens {
            tokens: full_tokens as u32,
            supervised: full_supervised as u32,
            truncated_tokens: rendered.len() as u32,
            truncated_supervised: rendered.supervised() as u32,
            cropped_supervised: cropped()?,
        },
        RenderOutcome::Dropped {
            reason,
            full_tokens,
            full_supervised,
        } => RowTokens {
            tokens: full_tokens as u32,
            supervised: full_supervised as u32,
            truncated_tokens: 0,
            truncated_supervised: 0,
            cropped_supervised: match reason {
                DropReason::NoSupervision => 0,
                DropReason::TooLong => cropped()?,
            },
        },
    })
}

/// Measures many rows in parallel; the result is in input order.
///
/// # Errors
/// The first row (by index) that cannot be rendered, with its index.
pub fn measure_all(
    tok: &Tokenizer,
    records: &[Record],
    max: usize,
) -> Result<Vec<RowTokens>, (usize, String)> {
    let out: Vec<Result<RowTokens, String>> = records
        .par_iter()
        .with_min_len(64)
        .map(|r| measure(tok, r, max))
        .collect();
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| (i, e)))
        .collect()
}

/// What one policy costs over a set of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCost {
    pub rows_kept: u64,
    pub rows_dropped: u64,
    pub tokens_kept: u64,
    pub tokens_cut: u64,
    pub supervised_lost: u64,
    pub rows_zero_supervised: u64,
    /// Only for `error`: whether the policy fails on these rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fails: bool,
}

/// A histogram bin `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

/// Length statistics and policy costs of a set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: u64,
    pub tokens: u64,
    pub supervised: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// Rows longer than `max_seq_len`.
    pub over_limit: u64,
    /// Rows with no supervised token (no assistant turn).
    pub unsupervised: u64,
    pub histogram: Vec<Bin>,
    /// `error`, `drop`, `truncate`, `crop`.
    pub policies: BTreeMap<String, PolicyCost>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes rows for a limit, with histogram bins of `bin_width` tokens.
pub fn summarize(rows: &[RowTokens], max_seq_len: usize, bins: usize, bin_width: u64) -> Summary {
    let max = max_seq_len as u64;
    let mut lens: Vec<u64> = rows.iter().map(|r| u64::from(r.tokens)).collect();
    lens.sort_unstable();
    let mut hist: Vec<Bin> = (0..bins as u64)
        .map(|i| Bin {
            lo: i * bin_width,
            hi: (i + 1) * bin_width,
            count: 0,
        })
        .collect();
    for &l in &lens {
        let i = ((l / bin_width.max(1)) as usize).min(bins.saturating_sub(1));
        if let Some(b) = hist.get_mut(i) {
            b.count += 1;
        }
    }
    let mut error = PolicyCost::default();
    let mut drop = PolicyCost::default();
    let mut trunc = PolicyCost::default();
    let mut crop = PolicyCost::default();
    let (mut over, mut unsup) = (0, 0);
    for r in rows {
        let (t, s) = (u64::from(r.tokens), u64::from(r.supervised));
        let too_long = t > max;
        if too_long {
            over += 1;
        }
        if s == 0 {
            unsup += 1;
        }
        // error
        if too_long || s == 0 {
            error.fails = true;
            error.rows_dropped += 1;
        } else {
            error.rows_kept += 1;
            error.tokens_kept += t;
        }
        // drop
        if too_long || s == 0 {
            drop.rows_dropped += 1;
            drop.tokens_cut += t;
            drop.supervised_lost += s;
        } else {
            drop.rows_kept += 1;
            drop.tokens_kept += t;
        }
        // truncate
        let tt = u64::from(r.truncated_tokens);
        if tt == 0 {
            trunc.rows_dropped += 1;
        } else {
            trunc.rows_kept += 1;
            trunc.tokens_kept += tt;
        }
        trunc.tokens_cut += t - tt;
        trunc.supervised_lost += s - u64::from(r.truncated_supervised);
        // crop
        crop.rows_kept += 1;
        crop.tokens_kept += t.min(max);
        crop.tokens_cut += t.saturating_sub(max);
        crop.supervised_lost += s - u64::from(r.cropped_supervised);
        if r.cropped_supervised == 0 {
            crop.rows_zero_supervised += 1;
        }
    }
    let mut policies = BTreeMap::new();
    policies.insert("error".to_string(), error);
    policies.insert("drop".to_string(), drop);
    policies.insert("truncate".to_string(), trunc);
    policies.insert("crop".to_string(), crop);
    Summary {
        rows: rows.len() as u64,
        tokens: lens.iter().sum(),
        supervised: rows.iter().map(|r| u64::from(r.supervised)).sum(),
        p50: percentile(&lens, 0.50),
        p90: percentile(&lens, 0.90),
        p99: percentile(&lens, 0.99),
        max: lens.last().copied().unwrap_or(0),
        over_limit: over,
        unsupervised: unsup,
        histogram: hist,
        policies,
    }
}

/// A full audit: overall and per component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// What was audited (dataset `name@v` or recipe path).
    pub target: String,
    pub max_seq_len: usize,
    pub policy: TruncationPolicy,
    pub overall: Summary,
    pub components: Vec<(String, Summary)>,
}

/// Number of histogram bins.
pub const BINS: usize = 20;

impl Audit {
    /// Audits rows grouped by component (in first-seen order of `groups`).
    pub fn new(
        target: &str,
        rows: &[RowTokens],
        groups: &[usize],
        names: &[String],
        max_seq_len: usize,
        policy: TruncationPolicy,
    ) -> Audit {
        let longest = rows.iter().map(|r| u64::from(r.tokens)).max().unwrap_or(0);
        let upper = longest.max(max_seq_len as u64 + 1).max(1);
        let width = upper.div_ceil(BINS as u64).max(1);
        let overall = summarize(rows, max_seq_len, BINS, width);
        let components = names
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let sub: Vec<RowTokens> = rows
                    .iter()
                    .zip(groups)
                    .filter(|&(_, &x)| x == g)
                    .map(|(r, _)| *r)
                    .collect();
                (name.clone(), summarize(&sub, max_seq_len, BINS, width))
            })
            .collect();
        Audit {
            target: target.to_string(),
            max_seq_len,
            policy,
            overall,
            components,
        }
    }

    /// Whether the chosen policy fails (an `error` policy and a row over the limit or unsupervised).
    pub fn fails(&self) -> bool {
        self.policy == TruncationPolicy::Error && self.overall.policies["error"].fails
    }

    /// The histogram as terminal lines with Unicode blocks.
    pub fn histogram_lines(&self, width: usize) -> Vec<String> {
        let h = &self.overall.histogram;
        let peak = h.iter().map(|b| b.count).max().unwrap_or(0).max(1);
        let blocks = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
        let lw = h.last().map(|b| b.hi.to_string().len()).unwrap_or(1);
        h.iter()
            .map(|b| {
                let eighths = (b.count as f64 / peak as f64 * (width * 8) as f64).round() as usize;
                let mut bar = "█".repeat(eighths / 8);
                if !eighths.is_multiple_of(8) {
                    bar.push(blocks[eighths % 8]);
                }
                let first_over = self.max_seq_len as u64 + 1;
                let mark = if (b.lo..b.hi).contains(&first_over) {
                    " ◀ limit"
                } else {
                    ""
                };
                format!(
                    "{:>lw$}–{:<lw$} │{:<width$} {}{mark}",
                    b.lo,
                    b.hi - 1,
                    bar,
                    b.count,
                    lw = lw,
                    width = width + 1
                )
            })
            .collect()
    }

    /// The histogram as an SVG image (bars per bin, the limit as a red line, percentiles marked).
    pub fn histogram_svg(&self) -> String {
        let (w, h) = (720.0_f64, 360.0_f64);
        let (ml, mr, mt, mb) = (60.0, 20.0, 40.0, 50.0);
        let (pw, ph) = (w - ml - mr, h - mt - mb);
        let bins = &self.overall.histogram;
        let upper = bins.last().map(|b| b.hi).unwrap_or(1).max(1) as f64;
        let peak = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
        let x = |v: f64| ml + v / upper * pw;
        let y = |c: f64| mt + ph - c / peak * ph;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        svg += &format!(
            "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{} — token lengths ({} rows, limit {})</text>\n",
            w / 2.0,
            njp_datasets::svg::escape_text(&self.target),
            self.overall.rows,
            self.max_seq_len
        );
        svg += &format!(
            "<line x1=\"{ml}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{}\" stroke=\"black\"/>\n",
            mt + ph,
            ml + pw,
            mt + ph,
            mt + ph
        );
        for b in bins {
            let (x0, x1) = (x(b.lo as f64), x(b.hi as f64));
            let top = y(b.count as f64);
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#1f77b4\" stroke=\"white\"><title>{}–{}: {}</title></rect>\n",
                x0,
                top,
                (x1 - x0).max(0.5),
                mt + ph - top,
                b.lo,
                b.hi - 1,
                b.count
            );
        }
        for i in 0..=4 {
            let v = upper * i as f64 / 4.0;
            svg += &format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>\n",
                x(v),
                mt + ph + 16.0,
                v
            );
            let c = peak * i as f64 / 4.0;
            svg += &format!(
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\n",
                ml - 6.0,
                y(c) + 4.0,
                c
            );
        }
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">tokens per row</text>\n",
            ml + pw / 2.0,
            h - 10.0
        );
        let lx = x(self.max_seq_len as f64);
        svg += &format!(
            "<line x1=\"{lx:.1}\" y1=\"{mt}\" x2=\"{lx:.1}\" y2=\"{}\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6,3\"/>\n<text x=\"{:.1}\" y=\"{}\" fill=\"#d62728\">max_seq_len {} ({} over)</text>\n",
            mt + ph,
            lx + 4.0,
            mt + 12.0,
            self.max_seq_len,
            self.overall.over_limit
        );
        for (label, v, color) in [
            ("p50", self.overall.p50, "#2ca02c"),
            ("p99", self.overall.p99, "#ff7f0e"),
        ] {
            let px = x(v as f64);
            svg += &format!(
                "<line x1=\"{px:.1}\" y1=\"{mt}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"1\"/>\n<text x=\"{:.1}\" y=\"{}\" fill=\"{color}\">{label} {v}</text>\n",
                mt + ph,
                px + 4.0,
                mt + 28.0 + if label == "p99" { 14.0 } else { 0.0 }
            );
        }
        svg += "</svg>\n";
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tokens: u32, supervised: u32, tt: u32, ts: u32, cs: u32) -> RowTokens {
        RowTokens {
            tokens,
            supervised,
            truncated_tokens: tt,
            truncated_supervised: ts,
            cropped_supervised: cs,
        }
    }

    #[test]
    fn hand_counted_costs() {
        // limit 10: a fits (8, 3 supervised); b is 14 long, truncate keeps 9 (2 sup of 5), crop
        // keeps 1 of 5; c is 20 long, nothing fits, crop keeps 0 supervised; d has no assistant.
        let rows = [
            row(8, 3, 8, 3, 3),
            row(14, 5, 9, 2, 1),
            row(20, 4, 0, 0, 0),
            row(6, 0, 0, 0, 0),
        ];
        let s = summarize(&rows, 10, 4, 5);
        assert_eq!((s.rows, s.tokens, s.supervised), (4, 48, 12));
        assert_eq!((s.over_limit, s.unsupervised), (2, 1));
        assert_eq!((s.p50, s.p90, s.max), (8, 20, 20));
        assert_eq!(
            s.histogram.iter().map(|b| b.count).collect::<Vec<_>>(),
            vec![0, 2, 1, 1]
        );
        let d = &s.policies["drop"];
        assert_eq!(
            (d.rows_dropped, d.tokens_cut, d.supervised_lost),
            (3, 40, 9)
        );
        let t = &s.policies["truncate"];
        assert_eq!(
            (
                t.rows_dropped,
                t.tokens_cut,
                t.supervised_lost,
                t.tokens_kept
            ),
            (2, 5 + 20 + 6, 3 + 4, 17)
        );
        let c = &s.policies["crop"];
        assert_eq!(
            (
                c.rows_dropped,
                c.tokens_cut,
                c.supervised_lost,
                c.rows_zero_supervised
            ),
            (0, 4 + 10, 4 + 4, 2)
        );
        assert!(s.policies["error"].fails);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
    }
}
