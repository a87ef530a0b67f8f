//! Run metrics: one JSON object per line in `metrics.jsonl`, and a loss curve as SVG.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed after this one (1-based, like nanochat's checkpoint numbering).
    pub step: u64,
    /// Mean training loss over the step's micro-batches.
    pub loss: f64,
    /// Debiased EMA of the loss (β = 0.9, nanochat's `smooth_train_loss`).
    pub smooth_loss: f64,
    /// Muon learning rate used (schedule included).
    pub lr: f64,
    /// Schedule multiplier.
    pub lrm: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (with targets) processed per second in this step.
    pub tokens_per_s: f64,
    /// Model FLOPs utilization against the configured peak, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    /// Wall time of the step in seconds.
    pub dt_s: f64,
    /// Input positions processed so far in the run (rows × cols, padding included).
    pub tokens: u64,
    /// Positions of this step that carried loss (SFT masks most of them).
    pub targets: u64,
}

/// One validation pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub step: u64,
    pub val_bpb: f64,
}

/// Appends metrics to `metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens (creating) the log. With `keep_until = Some(step)` (a resumed run) every line
    /// describing a later step is dropped first, so the log matches the checkpoint.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        if let Some(step) = keep_until.filter(|_| path.exists()) {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                        .is_some_and(|s| s <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            njp_model::weights::atomic_write_bytes(path, kept.as_bytes())?;
        } else if keep_until.is_none() && path.exists() {
            std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens (creating) a log for appending, keeping what is there.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open_append(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record and flushes it.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("metrics serialize");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// `(step, value)` points of one metric.
pub type Series = Vec<(u64, f64)>;

/// Reads `(step, loss)` and `(step, val_bpb)` series back from a metrics log.
///
/// # Errors
/// I/O errors or a malformed line (naming the line).
pub fn read_series(path: &Path) -> Result<(Series, Series)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let (mut loss, mut bpb) = (Vec::new(), Vec::new());
    for (i, l) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| Error::Record {
            path: path.into(),
            line: i as u64 + 1,
            reason: e.to_string(),
        })?;
        let step = v
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if let Some(x) = v.get("loss").and_then(serde_json::Value::as_f64) {
            loss.push((step, x));
        }
        if let Some(x) = v.get("val_bpb").and_then(serde_json::Value::as_f64) {
            bpb.push((step, x));
        }
    }
    Ok((loss, bpb))
}

/// Renders training loss (and validation bpb, if any) against step as a standalone SVG.
pub fn loss_svg(title: &str, loss: &[(u64, f64)], val_bpb: &[(u64, f64)]) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 420.0, 64.0, 20.0, 36.0, 48.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let finite = |s: &[(u64, f64)]| {
        s.iter()
            .filter(|p| p.1.is_finite())
            .copied()
            .collect::<Vec<_>>()
    };
    let (loss, bpb) = (finite(loss), finite(val_bpb));
    let all: Vec<&(u64, f64)> = loss.iter().chain(bpb.iter()).collect();
    let xmax = all.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let ymin = all
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let ymax = all
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(ymin + 1e-9);
    let ymax = if ymax.is_finite() { ymax * 1.05 } else { 1.0 };
    let x = |s: f64| ml + pw * s / xmax;
    let y = |v: f64| mt + ph * (1.0 - (v - ymin) / (ymax - ymin));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>
"##,
        w / 2.0,
        njp_datasets::svg::escape_text(title)
    );
    for i in 0..=5 {
        let v = ymin + (ymax - ymin) * f64::from(i) / 5.0;
        let s = xmax * f64::from(i) / 5.0;
        svg += &format!(
            "<line x1=\"{ml}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>\n",
            ml + pw,
            ml - 6.0,
            y(v) + 4.0,
            y0 = y(v)
        );
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(s),
            mt + ph + 18.0,
            s.round()
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
        ml + pw / 2.0,
        h - 8.0
    );
    let line = |pts: &[(u64, f64)], color: &str| {
        let p: Vec<String> = pts
            .iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s as f64), y(v)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            p.join(" ")
        )
    };
    svg += &line(&loss, "#1f77b4");
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">train loss</text>\n",
        ml + 8.0,
        mt + 16.0
    );
    if !bpb.is_empty() {
        svg += &line(&bpb, "#d62728");
        for &(s, v) in &bpb {
            svg += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d62728\"/>\n",
                x(s as f64),
                y(v)
            );
        }
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"#d62728\">val bpb</text>\n",
            ml + 8.0,
            mt + 32.0
        );
    }
    svg += "</svg>\n";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_truncates_on_resume_and_plots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(&p, None).unwrap();
        for s in 1..=5u64 {
            log.write(&serde_json::json!({"step": s, "loss": 5.0 - s as f64 * 0.5}))
                .unwrap();
        }
        log.write(&EvalMetrics {
            step: 5,
            val_bpb: 2.0,
        })
        .unwrap();
        drop(log);
        let mut log = MetricsLog::open(&p, Some(3)).unwrap();
        log.write(&serde_json::json!({"step": 4, "loss": 9.0}))
            .unwrap();
        let (loss, bpb) = read_series(&p).unwrap();
        assert_eq!(loss, vec![(1, 4.5), (2, 4.0), (3, 3.5), (4, 9.0)]);
        assert!(bpb.is_empty());
        let svg = loss_svg("base <tiny>", &loss, &[(4, 2.5)]);
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("&lt;tiny&gt;")
        );
        std::fs::write(dir.path().join("bad.jsonl"), "{\"step\":1}\nnot json\n").unwrap();
        assert!(
            read_series(&dir.path().join("bad.jsonl"))
                .unwrap_err()
                .to_string()
                .contains("bad.jsonl:2")
        );
    }
}
