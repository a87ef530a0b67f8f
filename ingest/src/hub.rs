//! Hugging Face hub dataset downloads over the hub's HTTP API.
//!
//! * `GET {endpoint}/api/datasets/{repo}/revision/{rev}?blobs=true` resolves a branch, tag,
//!   `refs/convert/parquet` or commit to its commit sha and lists the files with their sizes,
//!   git blob ids and (LFS files) sha256.
//! * `GET {endpoint}/datasets/{repo}/resolve/{commit}/{path}` downloads a file **at the resolved
//!   commit**, so a branch that moves during a run cannot mix two versions.
//!
//! Files are cached under the cache directory by content hash (`blobs/<sha256>` or
//! `blobs/git-<sha1>`); a download goes to `<blob>.part`, is resumed with `Range` after an
//! interrupted transfer, verified (sha256 for LFS files, the git blob sha1 otherwise) and only
//! then renamed into place. A checksum mismatch deletes the partial file and downloads once more
//! from scratch; a second mismatch is an error. 429 (honouring `Retry-After`), 5xx, timeouts and
//! broken connections are retried with exponential backoff. `HF_ENDPOINT` selects the server and
//! `HF_TOKEN` is sent as a bearer token; the token is never logged or stored.
//!
//! The `hf-hub` crate was the first choice, but its 0.4 API neither verifies LFS sha256 nor
//! resumes `.part` files across runs nor exposes the resolved commit of a download, so this
//! module talks to the same endpoints with `reqwest` directly.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_err};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach the hub.
#[derive(Clone)]
pub struct HubConfig {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_TOKEN`; never logged (the `Debug` impl hides it).
    pub token: Option<String>,
    /// Cache root (blobs are kept under `<cache>/datasets/<owner>/<name>/`).
    pub cache_dir: PathBuf,
    /// Retries after the first attempt, per request.
    pub retries: u32,
    /// Connect and read timeout (no bytes for this long = a timeout).
    pub timeout: Duration,
    /// First backoff delay; doubled after every retry.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("cache_dir", &self.cache_dir)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HubConfig {
    /// `HF_ENDPOINT` and `HF_TOKEN` from the environment, the given cache directory, defaults.
    pub fn from_env(cache_dir: PathBuf) -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|s| !s.trim().is_empty());
        HubConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            cache_dir,
            retries: 5,
            timeout: Duration::from_secs(60),
            backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A file of a resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    pub path: String,
    pub size: u64,
    /// LFS files: the sha256 of the content.
    pub sha256: Option<String>,
    /// The git blob id (sha1 of `blob {len}\0{content}`).
    pub blob_id: Option<String>,
}

/// A revision resolved to its commit.
#[derive(Debug, Clone)]
pub struct Revision {
    pub repo: String,
    /// What was asked for.
    pub requested: String,
    /// The commit sha it resolved to.
    pub sha: String,
    pub files: Vec<RepoFile>,
}

impl Revision {
    /// Files matching `patterns`, in path order. With `each`, every pattern must match a file;
    /// otherwise the patterns are alternatives and only the union must be non-empty.
    pub fn select(&self, patterns: &[String], each: bool) -> Result<Vec<RepoFile>> {
        let mut out: Vec<RepoFile> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let hits: Vec<&RepoFile> = self
                .files
                .iter()
                .filter(|f| glob_match(p, &f.path))
                .collect();
            let last = i + 1 == patterns.len();
            if hits.is_empty() && (each || (last && out.is_empty())) {
                let p = if each {
                    p.clone()
                } else {
                    patterns.join("` or `")
                };
                let mut listing: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
                listing.truncate(30);
                return Err(Error::Hub {
                    repo: self.repo.clone(),
                    revision: self.requested.clone(),
                    reason: format!(
                        "no file matches `{p}` at commit {} (files: {})",
                        self.sha,
                        if listing.is_empty() {
                            "none".to_string()
                        } else {
                            listing.join(", ")
                        }
                    ),
                });
            }
            for h in hits {
                if !out.iter().any(|f| f.path == h.path) {
                    out.push(h.clone());
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Glob over `/`-separated paths: `*` and `?` stay within a segment, `**` spans segments.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn seg_match(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg_match(&p[1..], s) || (!s.is_empty() && seg_match(p, &s[1..])),
            (Some(b'?'), Some(_)) => seg_match(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => seg_match(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segs_match(p: &[&str], s: &[&str]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(&"**") => (0..=s.len()).any(|k| segs_match(&p[1..], &s[k..])),
            Some(first) => {
                !s.is_empty()
                    && seg_match(first.as_bytes(), s[0].as_bytes())
                    && segs_match(&p[1..], &s[1..])
            }
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    segs_match(&p, &s)
}

/// Progress of downloads (the CLI draws bars).
pub trait DownloadProgress: Send + Sync {
    /// A download of `file` starts (or resumes at `done`).
    fn start(&self, _file: &str, _done: u64, _total: u64) {}
    fn advance(&self, _file: &str, _bytes: u64) {}
    fn finish(&self, _file: &str, _cached: bool) {}
    /// A request failed and is retried.
    fn retry(&self, _what: &str, _attempt: u32, _reason: &str) {}
}

impl DownloadProgress for () {}

/// What happened while downloading one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Served from the cache.
    pub cached: bool,
    /// Requests retried (errors, interruptions).
    pub retries: u32,
    /// Transfers resumed with `Range`.
    pub resumed: u32,
    /// Checksum mismatches (each followed by a fresh download).
    pub checksum_failures: u32,
}

/// A downloaded, verified file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub file: RepoFile,
    pub local: PathBuf,
    /// sha256 of the content (computed here for non-LFS files).
    pub sha256: String,
    pub stats: DownloadStats,
}

#[derive(Deserialize)]
struct RevisionInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    sha256: String,
    size: u64,
}

/// A hub client.
pub struct Hub {
    cfg: HubConfig,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

enum Attempt<T> {
    Done(T),
    /// Retry after this long (`None`: use the backoff).
    Retry(String, Option<Duration>),
}

/// Percent-encodes a revision for a URL path segment (`refs/convert/parquet` →
/// `refs%2Fconvert%2Fparquet`).
pub fn encode_revision(rev: &str) -> String {
    encode(rev, false)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "transfer interrupted".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Result<Hub> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &cfg.token {
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    Error::Other(
                        "HF_TOKEN contains characters not allowed in an HTTP header".into(),
                    )
                })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("njp/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(cfg.timeout)
            .read_timeout(cfg.timeout)
            .build()
            .map_err(|e| Error::Other(format!("HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
        Ok(Hub { cfg, client, rt })
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    fn hub_err(&self, repo: &str, rev: &str, reason: impl Into<String>) -> Error {
        Error::Hub {
            repo: repo.to_string(),
            revision: rev.to_string(),
            reason: reason.into(),
        }
    }

    /// An error for a non-retryable status, naming what the hub said.
    fn status_err(&self, repo: &str, rev: &str, what: &str, status: u16, body: &str) -> Error {
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let hint = match status {
            401 | 403 if self.cfg.token.is_none() => {
                " (gated or private dataset: set HF_TOKEN to a token whose account accepted the dataset's terms)"
            }
            401 | 403 => {
                " (HF_TOKEN was sent but refused: check that it is valid and its account accepted the dataset's terms)"
            }
            404 => " (check the repository id, the revision and the file path)",
            _ => "",
        };
        self.hub_err(repo, rev, format!("{what}: HTTP {status}: {detail}{hint}"))
    }

    fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        match hint {
            Some(d) => d.min(self.cfg.max_retry_after),
            None => self.cfg.backoff.saturating_mul(1 << attempt.min(6)),
        }
    }

    /// Resolves `revision` of dataset `repo` to a commit and lists its files.
    pub fn resolve(
        &self,
        repo: &str,
        revision: &str,
        progress: &dyn DownloadProgress,
    ) -> Result<Revision> {
        let url = format!(
            "{}/api/datasets/{}/revision/{}?blobs=true",
            self.cfg.endpoint,
            encode(repo, true),
            encode_revision(revision)
        );
        let mut attempt = 0;
        loop {
            let res = self.rt.block_on(async {
                let resp = match self.client.get(&url).send().await {
                    Ok(r) => r,
                    Err(e) => return Ok(Attempt::Retry(describe(&e), None)),
                };
                let status = resp.status().as_u16();
                let after = retry_after(&resp);
                let body = match resp.text().await {
                    Ok(b) => b,
                    Err(e) => return Ok(Attempt::Retry(describe(&e), None)),
                };
                if status == 429 || status >= 500 {
                    return Ok(Attempt::Retry(format!("HTTP {status}"), after));
                }
                if status != 200 {
                    return Err(self.status_err(
                        repo,
                        revision,
                        "resolving the revision",
                        status,
                        &body,
                    ));
                }
                match serde_json::from_str::<RevisionInfo>(&body) {
                    Ok(info) => Ok(Attempt::Done(info)),
                    Err(e) => Ok(Attempt::Retry(
                        format!("the revision listing is not valid JSON ({e})"),
                        None,
                    )),
                }
            })?;
            match res {
                Attempt::Done(info) => {
                    if info.sha.len() != 40 || !info.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(self.hub_err(
                            repo,
                            revision,
                            format!("the hub answered commit `{}`, not a 40-digit sha", info.sha),
                        ));
                    }
                    let files = info
                        .siblings
                        .into_iter()
                        .map(|s| RepoFile {
                            path: s.rfilename,
                            size: s.lfs.as_ref().map(|l| l.size).or(s.size).unwrap_or(0),
                            sha256: s.lfs.map(|l| l.sha256.to_ascii_lowercase()),
                            blob_id: s.blob_id,
                        })
                        .collect();
                    tracing::info!(repo, revision, sha = %info.sha, "resolved");
                    return Ok(Revision {
                        repo: repo.to_string(),
                        requested: revision.to_string(),
                        sha: info.sha,
                        files,
                    });
                }
                Attempt::Retry(reason, hint) => {
                    if attempt >= self.cfg.retries {
                        return Err(self.hub_err(
                            repo,
                            revision,
                            format!(
                                "resolving the revision failed after {} attempts: {reason}",
                                attempt + 1
                            ),
                        ));
                    }
                    attempt += 1;
                    tracing::info!(repo, revision, attempt, %reason, "retrying revision lookup");
                    progress.retry(&format!("{repo}@{revision}"), attempt, &reason);
                    std::thread::sleep(self.backoff(attempt - 1, hint));
                }
            }
        }
    }

    fn blob_path(&self, repo: &str, f: &RepoFile) -> PathBuf {
        let key = match (&f.sha256, &f.blob_id) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) => format!("git-{b}"),
            (None, None) => format!("path-{}", hex::encode(Sha256::digest(f.path.as_bytes()))),
        };
        self.cfg
            .cache_dir
            .join("datasets")
            .join(repo)
            .join("blobs")
            .join(key)
    }

    /// Downloads (or finds in the cache) one file of a resolved revision, verified.
    pub fn download(
        &self,
        rev: &Revision,
        f: &RepoFile,
        progress: &dyn DownloadProgress,
    ) -> Result<Downloaded> {
        let repo = &rev.repo;
        let blob = self.blob_path(repo, f);
        let mut stats = DownloadStats::default();
        if blob.is_file() {
            let (ok, sha) = verify(&blob, f)?;
            if ok {
                stats.cached = true;
                progress.finish(&f.path, true);
                tracing::info!(file = %f.path, "cached");
                return Ok(Downloaded {
                    file: f.clone(),
                    local: blob,
                    sha256: sha,
                    stats,
                });
            }
            tracing::warn!(file = %f.path, "cached blob fails its checksum; downloading again");
            std::fs::remove_file(&blob).map_err(io_err(&blob))?;
        }
        let dir = blob.parent().expect("blob has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let part = blob.with_extension("part");
        let url = format!(
            "{}/datasets/{}/resolve/{}/{}",
            self.cfg.endpoint,
            encode(repo, true),
            encode_revision(&rev.sha),
            encode(&f.path, true)
        );
        let mut attempt = 0u32;
        loop {
            let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            if have > 0 && f.size > 0 && have >= f.size {
                // Complete (or too long): verify below.
            } else {
                if have > 0 {
                    stats.resumed += 1;
                }
                progress.start(&f.path, have, f.size);
                match self
                    .rt
                    .block_on(self.fetch_into(&url, &part, have, rev, f, progress))?
                {
                    Attempt::Done(()) => {}
                    Attempt::Retry(reason, hint) => {
                        if attempt >= self.cfg.retries {
                            return Err(self.hub_err(
                                repo,
                                &rev.requested,
                                format!(
                                    "downloading `{}` failed after {} attempts: {reason}",
                                    f.path,
                                    attempt + 1
                                ),
                            ));
                        }
                        attempt += 1;
                        stats.retries += 1;
                        tracing::info!(file = %f.path, attempt, %reason, "retrying download");
                        progress.retry(&f.path, attempt, &reason);
                        std::thread::sleep(self.backoff(attempt - 1, hint));
                        continue;
                    }
                }
            }
            let (ok, sha) = verify(&part, f)?;
            if ok {
                let file = std::fs::File::open(&part).map_err(io_err(&part))?;
                file.sync_all().map_err(io_err(&part))?;
                std::fs::rename(&part, &blob).map_err(io_err(&blob))?;
                progress.finish(&f.path, false);
                return Ok(Downloaded {
                    file: f.clone(),
                    local: blob,
                    sha256: sha,
                    stats,
                });
            }
            stats.checksum_failures += 1;
            std::fs::remove_file(&part).map_err(io_err(&part))?;
            let (algorithm, expected) = match (&f.sha256, &f.blob_id) {
                (Some(s), _) => ("sha256", s.clone()),
                (None, Some(b)) => ("git-sha1", b.clone()),
                (None, None) => ("size", f.size.to_string()),
            };
            let actual = match algorithm {
                "sha256" => sha.clone(),
                _ => "(differs)".to_string(),
            };
            if stats.checksum_failures >= 2 {
                return Err(Error::Checksum {
                    repo: repo.clone(),
                    revision: rev.sha.clone(),
                    file: f.path.clone(),
                    algorithm,
                    expected,
                    actual,
                    attempts: stats.checksum_failures,
                });
            }
            tracing::info!(file = %f.path, %expected, %actual, "checksum mismatch; downloading again from scratch");
            progress.retry(&f.path, stats.checksum_failures, "checksum mismatch");
        }
    }

    async fn fetch_into(
        &self,
        url: &str,
        part: &Path,
        have: u64,
        rev: &Revision,
        f: &RepoFile,
        progress: &dyn DownloadProgress,
    ) -> Result<Attempt<()>> {
        let mut req = self.client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(describe(&e), None)),
        };
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            return Ok(Attempt::Retry(format!("HTTP {status}"), retry_after(&resp)));
        }
        if status == 416 {
            // The partial file is not a prefix of the current content: start over.
            std::fs::remove_file(part).map_err(io_err(part))?;
            return Ok(Attempt::Retry(
                "HTTP 416 for the resumed range; restarting".into(),
                Some(Duration::ZERO),
            ));
        }
        if status != 200 && status != 206 {
            let body = resp.text().await.unwrap_or_default();
            return Err(self.status_err(
                &rev.repo,
                &rev.requested,
                &format!("downloading `{}`", f.path),
                status,
                &body,
            ));
        }
        if let Some(commit) = resp
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok())
            && !commit.eq_ignore_ascii_case(&rev.sha)
        {
            return Err(self.hub_err(
                &rev.repo,
                &rev.requested,
                format!(
                    "downloading `{}`: the hub served commit {commit}, expected {}",
                    f.path, rev.sha
                ),
            ));
        }
        let append = status == 206 && have > 0;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(io_err(part))?;
        let expected = resp.content_length();
        let mut got = 0u64;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    out.write_all(&bytes).map_err(io_err(part))?;
                    got += bytes.len() as u64;
                    progress.advance(&f.path, bytes.len() as u64);
                }
                Ok(None) => break,
                Err(e) => {
                    out.flush().map_err(io_err(part))?;
                    return Ok(Attempt::Retry(
                        format!(
                            "{} after {} bytes; resuming",
                            describe(&e),
                            have * u64::from(append) + got
                        ),
                        None,
                    ));
                }
            }
        }
        out.flush().map_err(io_err(part))?;
        if let Some(n) = expected
            && got < n
        {
            return Ok(Attempt::Retry(
                format!("transfer cut after {got} of {n} bytes; resuming"),
                None,
            ));
        }
        Ok(Attempt::Done(()))
    }
}

/// Checks a file against the listing: sha256 for LFS files, the git blob sha1 otherwise (and the
/// size either way). Returns whether it matches and its sha256.
fn verify(path: &Path, f: &RepoFile) -> Result<(bool, String)> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut sha256 = Sha256::new();
    let mut sha1 = {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        h
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        if f.sha256.is_none() {
            use sha1::Digest as _;
            sha1.update(&buf[..n]);
        }
    }
    let sha = hex::encode(sha256.finalize());
    let size_ok = f.size == 0 || f.size == len;
    let ok = match (&f.sha256, &f.blob_id) {
        (Some(want), _) => size_ok && want.eq_ignore_ascii_case(&sha),
        (None, Some(blob)) => {
            use sha1::Digest as _;
            size_ok && blob.eq_ignore_ascii_case(&hex::encode(sha1.finalize()))
        }
        (None, None) => size_ok,
    };
    Ok((ok, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.jsonl", "a.jsonl"));
        assert!(!glob_match("*.jsonl", "d/a.jsonl"));
        assert!(glob_match(
            "data/train-*.parquet",
            "data/train-00000-of-00002.parquet"
        ));
        assert!(glob_match("**/*.parquet", "a/b/c.parquet"));
        assert!(glob_match("**/*.parquet", "c.parquet"));
        assert!(glob_match(
            "default/train/*.parquet",
            "default/train/0000.parquet"
        ));
        assert!(!glob_match(
            "default/train/*.parquet",
            "default/test/0000.parquet"
        ));
        assert!(glob_match("JMMLU/?*.csv", "JMMLU/anatomy.csv"));
    }

    #[test]
    fn revisions_are_encoded() {
        assert_eq!(
            encode_revision("refs/convert/parquet"),
            "refs%2Fconvert%2Fparquet"
        );
        assert_eq!(encode_revision("main"), "main");
        assert_eq!(encode("a b/c.json", true), "a%20b/c.json");
    }
}
