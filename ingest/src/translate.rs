//! `njp translate`: a catalog dataset → its Japanese translation, through any
//! OpenAI-compatible chat-completions endpoint.
//!
//! Every text unit (a question, a solution, a choice, a message's text part, a document) is
//! masked ([`crate::mask`]), sent with bounded concurrency, retried with backoff on 429 (honouring
//! `Retry-After`), 5xx, timeouts, broken connections and invalid JSON, checked and unmasked.
//! Accepted translations go to a cache in the catalog (`cache/translate/*.jsonl`, keyed by model,
//! prompt version and masked text) as soon as they arrive, so a rerun is free and an interrupted
//! run resumes. A record with any rejected unit is a reject (reason counted, raw record kept);
//! math records must keep their calculator annotations exactly, so their tool calls evaluate to
//! the original results. Provenance records model, endpoint host and prompt version; never the
//! API key.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use njp_catalog::Catalog;
use njp_catalog::import::{Reject, RejectSink};
use njp_catalog::manifest::{Draft, Manifest, Source};
use njp_datasets::validate::annotations;
use njp_datasets::{PartKind, Record};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_err};
use crate::mask::{Gates, Masked, mask, unmask};

/// Bumped whenever the prompt or the masking changes (it is part of the cache key).
pub const PROMPT_VERSION: &str = "ja-v1";

const SYSTEM_PROMPT: &str = "You are a professional English-to-Japanese translator. Translate the user's text into natural Japanese. \
Placeholders such as ⟦0⟧ stand for numbers, formulas, code or markup: copy every placeholder exactly once, unchanged, \
in the right place. Do not write any digits yourself. Output only the translation.";

/// Where and how to translate.
#[derive(Clone)]
pub struct TranslateConfig {
    /// Base URL (`http://host:port/v1`) or the full `…/chat/completions` URL.
    pub endpoint: String,
    pub model: String,
    /// Bearer token; never logged or stored.
    pub api_key: Option<String>,
    pub concurrency: usize,
    pub retries: u32,
    pub timeout: Duration,
    pub backoff: Duration,
    pub max_retry_after: Duration,
    pub gates: Gates,
    /// Largest share of rejected records that still publishes.
    pub max_reject_ratio: f64,
    /// Output dataset name (default `<source>_ja`).
    pub name: Option<String>,
    /// Translate at most this many records.
    pub limit: Option<u64>,
}

impl std::fmt::Debug for TranslateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslateConfig")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Progress callbacks.
pub trait TranslateProgress: Send + Sync {
    fn units(&self, _done: u64, _total: u64) {}
    fn retry(&self, _attempt: u32, _reason: &str) {}
}

impl TranslateProgress for () {}

/// Counts for the manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TranslateStats {
    pub records: u64,
    pub translated: u64,
    pub rejected: u64,
    /// Text units looked at / sent to the endpoint / served from the cache / with nothing to
    /// translate (numbers, code only).
    pub units: u64,
    pub requests: u64,
    pub cache_hits: u64,
    pub untranslatable: u64,
    pub retries: u64,
    /// Cache lines that could not be read (an interrupted write), ignored.
    pub cache_bad_lines: u64,
    pub reject_reasons: BTreeMap<String, u64>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct TranslateReport {
    pub name: String,
    pub stats: TranslateStats,
    pub first_rejects: Vec<Reject>,
    pub published: Option<Manifest>,
    pub max_reject_ratio: f64,
}

/// The translation cache: one JSON line per accepted translation, appended as they arrive.
struct Cache {
    map: HashMap<String, String>,
    file: std::fs::File,
    path: PathBuf,
}

#[derive(serde::Deserialize, Serialize)]
struct CacheLine {
    k: String,
    t: String,
}

impl Cache {
    fn open(dir: &Path, model: &str, bad: &mut u64) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tag =
            hex::encode(&Sha256::digest(format!("{model}\0{PROMPT_VERSION}").as_bytes())[..8]);
        let path = dir.join(format!("{tag}.jsonl"));
        let mut map = HashMap::new();
        if path.exists() {
            let f = std::fs::File::open(&path).map_err(io_err(&path))?;
            for line in std::io::BufReader::new(f).lines() {
                let line = line.map_err(io_err(&path))?;
                match serde_json::from_str::<CacheLine>(&line) {
                    Ok(l) => {
                        map.insert(l.k, l.t);
                    }
                    Err(_) if line.trim().is_empty() => {}
                    Err(_) => *bad += 1,
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // A line cut by a crash must not glue onto the next entry.
        let needs_newline = std::fs::read(&path)
            .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
            .unwrap_or(false);
        let mut cache = Cache { map, file, path };
        if needs_newline {
            cache.file.write_all(b"\n").map_err(io_err(&cache.path))?;
        }
        Ok(cache)
    }

    fn put(&mut self, key: String, translation: String) -> Result<()> {
        let mut line = serde_json::to_string(&CacheLine {
            k: key.clone(),
            t: translation.clone(),
        })
        .expect("serializes");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io_err(&self.path))?;
        self.file.flush().map_err(io_err(&self.path))?;
        self.map.insert(key, translation);
        Ok(())
    }
}

fn cache_key(model: &str, masked: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{model}\0{PROMPT_VERSION}\0{masked}").as_bytes(),
    ))
}

/// The chat-completions URL for an endpoint.
pub fn completions_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/chat/completions") {
        e.to_string()
    } else {
        format!("{e}/chat/completions")
    }
}

/// The host (and port) of an endpoint URL, for provenance.
pub fn endpoint_host(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    // Drop any `user:password@`.
    host.rsplit('@').next().unwrap_or(host).to_string()
}

enum Outcome {
    Text(String),
    Retry(String, Option<Duration>),
}

struct Client {
    http: reqwest::Client,
    url: String,
    cfg: TranslateConfig,
    retries: AtomicU64,
    requests: AtomicU64,
}

impl Client {
    async fn once(&self, text: &str) -> Result<Outcome> {
        let body = serde_json::json!({
            "model": self.cfg.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": text},
            ],
        });
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.post(&self.url).json(&body);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "request failed"
                };
                return Ok(Outcome::Retry(what.into(), None));
            }
        };
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "transfer interrupted"
                };
                return Ok(Outcome::Retry(what.into(), None));
            }
        };
        if status == 429 || status >= 500 {
            return Ok(Outcome::Retry(format!("HTTP {status}"), after));
        }
        if status != 200 {
            let detail: String = text.chars().take(200).collect();
            let hint = match status {
                401 | 403 => " (check the API key variable)",
                404 => " (check --endpoint: it should end in /v1 or /chat/completions)",
                _ => "",
            };
            return Err(Error::Http {
                url: self.url.clone(),
                reason: format!("HTTP {status}: {detail}{hint}"),
            });
        }
        let v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Outcome::Retry(
                    format!("invalid JSON from the endpoint ({e})"),
                    None,
                ));
            }
        };
        match v["choices"][0]["message"]["content"].as_str() {
            Some(s) => Ok(Outcome::Text(s.trim().to_string())),
            None => Ok(Outcome::Retry(
                "the endpoint's answer has no choices[0].message.content".into(),
                None,
            )),
        }
    }

    /// A translation, or the reason it could not be had (after retries).
    async fn translate(
        &self,
        text: &str,
        progress: &dyn TranslateProgress,
    ) -> Result<std::result::Result<String, String>> {
        let mut attempt = 0u32;
        loop {
            match self.once(text).await? {
                Outcome::Text(t) => return Ok(Ok(t)),
                Outcome::Retry(reason, hint) => {
                    if attempt >= self.cfg.retries {
                        return Ok(Err(format!(
                            "endpoint: {reason} (after {} attempts)",
                            attempt + 1
                        )));
                    }
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(attempt, %reason, "retrying translation request");
                    progress.retry(attempt, &reason);
                    let wait = match hint {
                        Some(d) => d.min(self.cfg.max_retry_after),
                        None => self.cfg.backoff.saturating_mul(1 << (attempt - 1).min(6)),
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A text unit of a record: where it is and its masked form.
struct Unit {
    record: usize,
    slot: usize,
    masked: Masked,
}

/// Mutable references to a record's translatable texts, in a fixed order.
fn texts_mut(r: &mut Record) -> Vec<&mut String> {
    match r {
        Record::Document(d) => vec![&mut d.text],
        Record::Conversation(c) => c
            .messages
            .iter_mut()
            .flat_map(|m| m.parts.iter_mut())
            .filter(|p| p.kind == PartKind::Text)
            .map(|p| &mut p.text)
            .collect(),
        Record::MultipleChoice(mc) => {
            let mut v = vec![&mut mc.question];
            v.extend(mc.choices.iter_mut());
            v
        }
        Record::Math(m) => vec![&mut m.question, &mut m.solution],
    }
}

fn calls(r: &Record) -> Vec<(String, String)> {
    match r {
        Record::Math(m) => annotations(&m.solution)
            .map(|segs| {
                segs.into_iter()
                    .filter_map(|s| match s {
                        njp_datasets::validate::Segment::Call { expr, result } => {
                            Some((expr.to_string(), result.to_string()))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Translates dataset `reference` and publishes the result.
pub fn translate(
    catalog: &Catalog,
    reference: &str,
    cfg: &TranslateConfig,
    progress: &dyn TranslateProgress,
) -> Result<TranslateReport> {
    let src = catalog.resolve(reference)?;
    let kind = src
        .kind
        .record_kind()
        .ok_or_else(|| Error::Other(format!("`{}` is a table, not records", src.id())))?;
    let name = cfg
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_ja", src.name));
    let mut stats = TranslateStats::default();
    let mut cache = Cache::open(
        &catalog.home().join("cache").join("translate"),
        &cfg.model,
        &mut stats.cache_bad_lines,
    )?;
    if stats.cache_bad_lines > 0 {
        tracing::info!(
            lines = stats.cache_bad_lines,
            "ignored unreadable translation cache lines"
        );
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    let http = reqwest::Client::builder()
        .user_agent(concat!("njp/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(cfg.timeout)
        .timeout(cfg.timeout)
        .build()
        .map_err(|e| Error::Other(format!("HTTP client: {e}")))?;
    let client = Arc::new(Client {
        http,
        url: completions_url(&cfg.endpoint),
        cfg: cfg.clone(),
        retries: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
    let mut staging = catalog.stage(&name)?;
    let mut sink = staging.sink(kind)?;
    let mut rejects = RejectSink::new(staging.rejects_path());
    let records: Vec<Record> = catalog
        .records(&src)?
        .take(cfg.limit.map_or(usize::MAX, |l| l as usize))
        .collect::<std::result::Result<_, _>>()?;
    stats.records = records.len() as u64;
    let total_units: u64 = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            texts_mut(&mut r).len() as u64
        })
        .sum();
    let done = Arc::new(AtomicU64::new(0));
    for (chunk_no, chunk) in records.chunks(256).enumerate() {
        let mut out: Vec<Record> = chunk.to_vec();
        let mut failed: Vec<Option<String>> = vec![None; chunk.len()];
        let mut units = Vec::new();
        for (i, r) in out.iter_mut().enumerate() {
            for (slot, t) in texts_mut(r).into_iter().enumerate() {
                stats.units += 1;
                match mask(t) {
                    Ok(m) => units.push(Unit {
                        record: i,
                        slot,
                        masked: m,
                    }),
                    Err(e) => {
                        failed[i].get_or_insert(e);
                    }
                }
            }
        }
        // Cache lookups first; only misses are sent.
        let mut answers: Vec<(usize, usize, std::result::Result<String, String>)> = Vec::new();
        let mut to_send = Vec::new();
        for u in units {
            if failed[u.record].is_some() {
                continue;
            }
            if !u.masked.has_words() {
                stats.untranslatable += 1;
                let restored = unmask(
                    &u.masked,
                    &u.masked.text,
                    &Gates {
                        min_japanese: 0.0,
                        ratio_min_chars: usize::MAX,
                        ..cfg.gates
                    },
                );
                answers.push((u.record, u.slot, restored));
                done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let key = cache_key(&cfg.model, &u.masked.text);
            if let Some(t) = cache.map.get(&key) {
                stats.cache_hits += 1;
                answers.push((u.record, u.slot, unmask(&u.masked, t, &cfg.gates)));
                done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            to_send.push((u, key));
        }
        #[allow(clippy::type_complexity)]
        // (unit, cache key, transport result of a checked translation)
        let sent: Vec<(Unit, String, Result<std::result::Result<String, String>>)> =
            rt.block_on(async {
                futures::stream::iter(to_send.into_iter().map(|(u, key)| {
                    let client = client.clone();
                    let done = done.clone();
                    async move {
                        let r = client.translate(&u.masked.text, progress).await;
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress.units(d, total_units);
                        (u, key, r)
                    }
                }))
                .buffered(cfg.concurrency.max(1))
                .collect()
                .await
            });
        for (u, key, r) in sent {
            match r? {
                Ok(t) => {
                    let checked = unmask(&u.masked, &t, &cfg.gates);
                    if checked.is_ok() {
                        cache.put(key, t)?;
                    }
                    answers.push((u.record, u.slot, checked));
                }
                Err(reason) => answers.push((u.record, u.slot, Err(reason))),
            }
        }
        answers.sort_by_key(|(r, s, _)| (*r, *s));
        for (ri, slot, res) in answers {
            match res {
                Ok(t) => {
                    if failed[ri].is_none() {
                        *texts_mut(&mut out[ri])[slot] = t;
                    }
                }
                Err(reason) => {
                    failed[ri].get_or_insert(reason);
                }
            }
        }
        for (i, mut r) in out.into_iter().enumerate() {
            let row = (chunk_no * 256 + i + 1) as u64;
            let original = &chunk[i];
            let mut reason = failed[i].take();
            if reason.is_none() {
                // Light cleanup of what the model returned; validation as for any record.
                let n = crate::normalize::Normalizer::new(Default::default());
                let mut ns = crate::normalize::NormStats::default();
                n.record(&mut r, &mut ns);
                if let Err(e) = r.validate() {
                    reason = Some(e.to_string());
                } else if calls(&r) != calls(original) {
                    reason = Some("calculator annotations changed".into());
                }
            }
            match reason {
                None => {
                    sink.push(&r)?;
                    stats.translated += 1;
                }
                Some(reason) => {
                    let class = reason.split(':').next().unwrap_or(&reason).to_string();
                    *stats.reject_reasons.entry(class).or_default() += 1;
                    rejects.push_at(
                        src.id(),
                        None,
                        row,
                        format!("record `{}`: {reason}", original.id()),
                        serde_json::to_string(original).ok(),
                    )?;
                }
            }
        }
    }
    stats.rejected = rejects.count();
    stats.requests = client.requests.load(Ordering::Relaxed);
    stats.retries = client.retries.load(Ordering::Relaxed);
    let first_rejects = rejects.first().to_vec();
    staging.finish_sink(sink)?;
    rejects.finish()?;
    let mut report = TranslateReport {
        name: name.clone(),
        stats: stats.clone(),
        first_rejects,
        published: None,
        max_reject_ratio: cfg.max_reject_ratio,
    };
    let ratio = if stats.records == 0 {
        0.0
    } else {
        stats.rejected as f64 / stats.records as f64
    };
    if stats.translated == 0 || ratio > cfg.max_reject_ratio {
        return Ok(report);
    }
    let mut draft = Draft::new(
        kind,
        src.license.clone(),
        Source::Derived {
            how: "translate".into(),
        },
    );
    draft.eval_only = src.eval_only;
    draft.commercial_use = src.commercial_use;
    draft.description = Some(format!(
        "{} translated to Japanese by {}",
        src.id(),
        cfg.model
    ));
    draft.parents = vec![src.as_parent()];
    draft.rejects = stats.rejected;
    draft.parameters = serde_json::json!({
        "command": "translate",
        "to": "ja",
        "model": cfg.model,
        "endpoint_host": endpoint_host(&cfg.endpoint),
        "prompt_version": PROMPT_VERSION,
        "concurrency": cfg.concurrency,
        "limit": cfg.limit,
        "max_reject_ratio": cfg.max_reject_ratio,
        "gates": {"min_japanese": cfg.gates.min_japanese, "min_ratio": cfg.gates.min_ratio, "max_ratio": cfg.gates.max_ratio},
    });
    draft.stats.insert(
        "translate".into(),
        serde_json::to_value(&stats).expect("serializes"),
    );
    report.published = Some(staging.publish(draft)?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_hosts() {
        assert_eq!(
            completions_url("http://h:1/v1/"),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            completions_url("http://h:1/v1/chat/completions"),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            endpoint_host("https://user:secret@api.example.com/v1"),
            "api.example.com"
        );
        assert_eq!(endpoint_host("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
    }
}
