//! A stand-in for the Hugging Face hub: the two endpoints a dataset download uses.
//!
//! * `GET /api/datasets/{owner}/{name}/revision/{rev}` → `{id, sha, siblings: [{rfilename,
//!   blobId, size, lfs?: {sha256, size, pointerSize}}]}` (what the hub answers with `?blobs=true`)
//! * `GET /datasets/{owner}/{name}/resolve/{rev}/{path}` → the file, honouring `Range`, with the
//!   `x-repo-commit`, `etag` and (LFS files) `x-linked-etag` headers the hub sends.
//!
//! `{rev}` is a branch/ref name (percent-encoded, e.g. `refs%2Fconvert%2Fparquet`) or a commit
//! sha. Repositories come from a fixture directory laid out as
//! `<owner>/<name>/<ref, with / written as %2F>/<path in the repo>`; a file named
//! `X.parquet.jsonl` is served as `X.parquet`, converted from its JSON rows. A `.gated` file in
//! `<owner>/<name>/` makes the repository require `Authorization: Bearer <token>`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::{Delivery, Fault, FaultKind, Faults, Handler, Request, Response, percent_decode};

/// One file of a commit.
#[derive(Debug, Clone)]
pub struct HubFile {
    pub path: String,
    pub bytes: Arc<Vec<u8>>,
    /// Stored with git LFS (the hub then reports its sha256).
    pub lfs: bool,
}

impl HubFile {
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.bytes.as_slice()))
    }

    /// The git blob id: sha1 of `blob {len}\0{content}`.
    pub fn blob_id(&self) -> String {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        h.update(self.bytes.as_slice());
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Default)]
struct Repo {
    /// ref name → commit sha
    refs: HashMap<String, String>,
    /// commit sha → files by path
    commits: HashMap<String, BTreeMap<String, HubFile>>,
    gated: bool,
}

#[derive(Debug, Default)]
struct State {
    repos: HashMap<String, Repo>,
}

/// The hub stand-in. Clone it to keep a handle for adding faults or commits after starting the
/// server.
#[derive(Clone, Default)]
pub struct HubStandIn {
    state: Arc<Mutex<State>>,
    pub faults: Faults,
    /// The token gated repositories accept.
    pub token: Arc<Mutex<Option<String>>>,
}

impl HubStandIn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a commit with `files` to `repo` and points `refs` at it. Returns its sha.
    pub fn add_commit(&self, repo: &str, refs: &[&str], files: Vec<HubFile>) -> String {
        let mut h = sha1::Sha1::new();
        {
            use sha1::Digest as _;
            h.update(repo.as_bytes());
            for f in &files {
                h.update(f.path.as_bytes());
                h.update(f.blob_id().as_bytes());
            }
        }
        use sha1::Digest as _;
        let sha = hex::encode(h.finalize());
        let mut state = self.state.lock().unwrap();
        let r = state.repos.entry(repo.to_string()).or_default();
        r.commits.insert(
            sha.clone(),
            files.into_iter().map(|f| (f.path.clone(), f)).collect(),
        );
        for rf in refs {
            r.refs.insert((*rf).to_string(), sha.clone());
        }
        sha
    }

    /// Requires `Authorization: Bearer <token>` for `repo`.
    pub fn set_gated(&self, repo: &str, token: &str) {
        self.state
            .lock()
            .unwrap()
            .repos
            .entry(repo.to_string())
            .or_default()
            .gated = true;
        *self.token.lock().unwrap() = Some(token.to_string());
    }

    /// The commit a ref points at.
    pub fn commit_of(&self, repo: &str, rf: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .repos
            .get(repo)?
            .refs
            .get(rf)
            .cloned()
    }

    /// Loads every repository under a fixture directory (`<owner>/<name>/<ref>/…`).
    pub fn load_dir(&self, root: &Path) -> std::io::Result<()> {
        for owner in sorted_dirs(root)? {
            for name in sorted_dirs(&root.join(&owner))? {
                let repo_dir = root.join(&owner).join(&name);
                let repo = format!("{owner}/{name}");
                for rf in sorted_dirs(&repo_dir)? {
                    let mut files = Vec::new();
                    collect_files(&repo_dir.join(&rf), "", &mut files)?;
                    let files = files
                        .into_iter()
                        .map(|(path, bytes)| fixture_file(&path, bytes))
                        .collect::<std::io::Result<Vec<_>>>()?;
                    self.add_commit(&repo, &[&percent_decode(&rf)], files);
                }
                if repo_dir.join(".gated").is_file() {
                    let token = std::fs::read_to_string(repo_dir.join(".gated"))?;
                    self.set_gated(&repo, token.trim());
                }
            }
        }
        Ok(())
    }

    /// Every `(repo, ref)` served.
    pub fn refs(&self) -> Vec<(String, String)> {
        let state = self.state.lock().unwrap();
        let mut out: Vec<(String, String)> = state
            .repos
            .iter()
            .flat_map(|(repo, r)| r.refs.keys().map(move |rf| (repo.clone(), rf.clone())))
            .collect();
        out.sort();
        out
    }

    pub fn fault(&self, matches: &str, kind: FaultKind, times: usize) {
        self.faults.add(Fault::new(matches, kind, times));
    }

    fn lookup(
        &self,
        repo: &str,
        rev: &str,
    ) -> Result<(String, BTreeMap<String, HubFile>, bool), Response> {
        let state = self.state.lock().unwrap();
        let Some(r) = state.repos.get(repo) else {
            return Err(not_found(
                "RepoNotFound",
                &format!("Repository {repo} not found"),
            ));
        };
        let sha = r.refs.get(rev).cloned().unwrap_or_else(|| rev.to_string());
        match r.commits.get(&sha) {
            Some(files) => Ok((sha, files.clone(), r.gated)),
            None => Err(not_found(
                "RevisionNotFound",
                &format!("Invalid rev id: {rev}"),
            )),
        }
    }
}

fn not_found(code: &str, msg: &str) -> Response {
    Response::json(404, &serde_json::json!({ "error": msg })).header("x-error-code", code)
}

fn sorted_dirs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn collect_files(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if e.file_type()?.is_dir() {
            collect_files(&e.path(), &path, out)?;
        } else {
            out.push((path, std::fs::read(e.path())?));
        }
    }
    Ok(())
}

/// A fixture file as served: `X.parquet.jsonl` becomes the Parquet file `X.parquet`.
pub fn fixture_file(path: &str, bytes: Vec<u8>) -> std::io::Result<HubFile> {
    if let Some(stem) = path.strip_suffix(".parquet.jsonl") {
        let parquet =
            jsonl_to_parquet(&bytes).map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
        return Ok(HubFile {
            path: format!("{stem}.parquet"),
            bytes: Arc::new(parquet),
            lfs: true,
        });
    }
    let lfs = [".parquet", ".jsonl", ".gz", ".zip", ".tar"]
        .iter()
        .any(|ext| path.ends_with(ext));
    Ok(HubFile {
        path: path.to_string(),
        bytes: Arc::new(bytes),
        lfs,
    })
}

/// Converts JSON Lines to a Parquet file, inferring the Arrow schema (nested lists and structs
/// included) the way a JSON → Parquet conversion does.
pub fn jsonl_to_parquet(jsonl: &[u8]) -> Result<Vec<u8>, String> {
    use arrow::json::ReaderBuilder;
    use arrow::json::reader::infer_json_schema_from_seekable;
    let mut cursor = std::io::Cursor::new(jsonl);
    let (schema, _) =
        infer_json_schema_from_seekable(&mut cursor, None).map_err(|e| e.to_string())?;
    cursor.set_position(0);
    let schema = Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone())
        .build(cursor)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    {
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)
            .map_err(|e| e.to_string())?;
        for batch in reader {
            w.write(&batch.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        w.close().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

impl Handler for HubStandIn {
    fn handle(&self, req: &Request) -> Response {
        let subject = format!(
            "{} {} {}",
            req.method,
            percent_decode(&req.path),
            req.header("range").unwrap_or("")
        );
        let fault = self.faults.take(&subject);
        if let Some(FaultKind::Status(code, headers)) = &fault {
            let mut r = Response::json(
                *code,
                &serde_json::json!({"error": format!("injected {code}")}),
            );
            for (k, v) in headers {
                r = r.header(k, v.clone());
            }
            return r;
        }
        if fault == Some(FaultKind::InvalidJson) {
            return Response::new(200, "<html>not json").header("content-type", "text/html");
        }
        let mut resp = self.route(req);
        match fault {
            Some(FaultKind::CutAfter(n)) if resp.body.len() > 1 => {
                resp.delivery = Delivery::CutAfter(n);
            }
            Some(FaultKind::Corrupt { from }) if resp.body.len() > 1 => {
                // `from` is an offset in the file; a ranged response starts at its range start.
                let start = resp
                    .headers
                    .iter()
                    .find(|(k, _)| k == "content-range")
                    .and_then(|(_, v)| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                for (i, b) in resp.body.iter_mut().enumerate() {
                    if start + i >= from {
                        *b ^= 0xff;
                    }
                }
            }
            Some(FaultKind::Delay(d)) => resp.delivery = Delivery::Delay(d),
            _ => {}
        }
        resp
    }
}

impl HubStandIn {
    fn route(&self, req: &Request) -> Response {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        // /api/datasets/{owner}/{name}/revision/{rev}
        if segs.len() >= 6 && segs[0] == "api" && segs[1] == "datasets" && segs[4] == "revision" {
            let repo = format!("{}/{}", segs[2], segs[3]);
            let rev = percent_decode(&segs[5..].join("/"));
            let (sha, files, gated) = match self.lookup(&repo, &rev) {
                Ok(x) => x,
                Err(r) => return r,
            };
            if let Some(r) = self.check_auth(req, gated) {
                return r;
            }
            let siblings: Vec<serde_json::Value> = files
                .values()
                .map(|f| {
                    let mut s = serde_json::json!({
                        "rfilename": f.path,
                        "blobId": f.blob_id(),
                        "size": f.bytes.len(),
                    });
                    if f.lfs {
                        s["lfs"] = serde_json::json!({
                            "sha256": f.sha256(),
                            "size": f.bytes.len(),
                            "pointerSize": 134,
                        });
                    }
                    s
                })
                .collect();
            return Response::json(
                200,
                &serde_json::json!({
                    "_id": format!("{:024x}", repo.len()),
                    "id": repo,
                    "sha": sha,
                    "private": false,
                    "gated": gated,
                    "siblings": siblings,
                }),
            );
        }
        // /datasets/{owner}/{name}/resolve/{rev}/{path…}
        if segs.len() >= 6 && segs[0] == "datasets" && segs[3] == "resolve" {
            let repo = format!("{}/{}", segs[1], segs[2]);
            let rev = percent_decode(segs[4]);
            let path = percent_decode(&segs[5..].join("/"));
            let (sha, files, gated) = match self.lookup(&repo, &rev) {
                Ok(x) => x,
                Err(r) => return r,
            };
            if let Some(r) = self.check_auth(req, gated) {
                return r;
            }
            let Some(file) = files.get(&path) else {
                return not_found(
                    "EntryNotFound",
                    &format!("{path} does not exist on \"{rev}\""),
                );
            };
            let total = file.bytes.len();
            let etag = if file.lfs {
                file.sha256()
            } else {
                file.blob_id()
            };
            let mut resp = Response::new(200, Vec::new())
                .header("x-repo-commit", sha.clone())
                .header("etag", format!("\"{etag}\""))
                .header("accept-ranges", "bytes")
                .header("content-type", "application/octet-stream");
            if file.lfs {
                resp = resp
                    .header("x-linked-etag", format!("\"{}\"", file.sha256()))
                    .header("x-linked-size", total.to_string());
            }
            match req.header("range").and_then(parse_range) {
                Some((start, end)) => {
                    if start >= total {
                        return Response::new(416, "range not satisfiable")
                            .header("content-range", format!("bytes */{total}"));
                    }
                    let end = end.unwrap_or(total - 1).min(total - 1);
                    resp.status = 206;
                    resp.body = file.bytes[start..=end].to_vec();
                    resp.headers.push((
                        "content-range".into(),
                        format!("bytes {start}-{end}/{total}"),
                    ));
                }
                None => resp.body = file.bytes.as_ref().clone(),
            }
            return resp;
        }
        not_found("NotFound", &format!("no route for {}", req.path))
    }

    fn check_auth(&self, req: &Request, gated: bool) -> Option<Response> {
        if !gated {
            return None;
        }
        let want = self.token.lock().unwrap().clone().unwrap_or_default();
        let got = req.header("authorization").unwrap_or("");
        if got == format!("Bearer {want}") {
            None
        } else {
            Some(
                Response::json(
                    401,
                    &serde_json::json!({"error": "Access to this dataset is restricted. You must be authenticated."}),
                )
                .header("x-error-code", "GatedRepo"),
            )
        }
    }
}

fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let r = v.strip_prefix("bytes=")?;
    let (a, b) = r.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().ok()?)
    };
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_from_jsonl_keeps_nested_lists() {
        let bytes = jsonl_to_parquet(
            br#"{"id": 1, "conversations": [{"role": "user", "content": "a"}]}
{"id": 2, "conversations": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}
"#,
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!("njp-testkit-{}.parquet", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = reader.schema().clone();
        let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(rows, 2);
        assert!(matches!(
            schema.field_with_name("conversations").unwrap().data_type(),
            arrow::datatypes::DataType::List(_)
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0"), Some((0, Some(0))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("items=1-2"), None);
    }
}
