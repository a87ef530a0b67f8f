//! Test servers for nanochat-jp, listening on `127.0.0.1` only.
//!
//! * [`Server`]: a small HTTP/1.1 server (std `TcpListener`, one thread per connection) that hands
//!   every request to a [`Handler`] and can misbehave on purpose: wrong status codes, bodies cut
//!   off mid-transfer, corrupted bytes, stalls longer than a client's timeout.
//! * [`hub::HubStandIn`]: the Hugging Face hub paths `ingest` uses (`/api/datasets/{repo}/revision/{rev}`
//!   and `/datasets/{repo}/resolve/{rev}/{path}` with `Range` support), serving repositories from
//!   a fixture directory.
//! * [`chat::ChatStandIn`]: an OpenAI-compatible `/v1/chat/completions` endpoint with a
//!   deterministic fake English → Japanese "translator".
//!
//! Faults are [`Fault`] rules: a request matching a rule gets the rule's misbehaviour instead of
//! the normal answer, a given number of times. Every request is logged ([`Server::log`]) so tests
//! can assert on retries, resumed ranges, cache hits and headers.

pub mod chat;
pub mod hub;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The raw (still percent-encoded) path, without the query string.
    pub path: String,
    pub query: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// How a response is delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The whole body.
    Normal,
    /// Announce the full `Content-Length` but close the connection after this many body bytes.
    CutAfter(usize),
    /// Wait this long before answering (a client with a shorter timeout gives up).
    Delay(Duration),
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delivery: Delivery,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            delivery: Delivery::Normal,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response::new(status, value.to_string()).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What a [`Fault`] does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this status (and headers, e.g. `Retry-After`) and a short body.
    Status(u16, Vec<(String, String)>),
    /// Serve the normal response but cut the body after this many bytes.
    CutAfter(usize),
    /// Serve the normal response with every byte from this offset on flipped.
    Corrupt { from: usize },
    /// Stall this long before serving the normal response.
    Delay(Duration),
    /// A 200 whose body is not JSON.
    InvalidJson,
    /// Handler-specific misbehaviour (e.g. the chat stand-in dropping a placeholder).
    Custom(String),
}

/// A fault rule: requests whose path (or, for the chat stand-in, prompt) contains `matches` get
/// `kind` instead of the normal answer, `times` times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub matches: String,
    pub kind: FaultKind,
    pub times: usize,
}

impl Fault {
    pub fn new(matches: impl Into<String>, kind: FaultKind, times: usize) -> Self {
        Fault {
            matches: matches.into(),
            kind,
            times,
        }
    }
}

/// A list of fault rules shared between a test and a handler.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<Fault>>>);

impl Faults {
    pub fn add(&self, fault: Fault) {
        self.0.lock().unwrap().push(fault);
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The first rule that matches `subject` and still has uses left (one use is consumed).
    pub fn take(&self, subject: &str) -> Option<FaultKind> {
        let mut rules = self.0.lock().unwrap();
        let rule = rules
            .iter_mut()
            .find(|f| f.times > 0 && subject.contains(&f.matches))?;
        rule.times -= 1;
        Some(rule.kind.clone())
    }

    /// Uses left over all rules (0 once every fault has fired).
    pub fn remaining(&self) -> usize {
        self.0.lock().unwrap().iter().map(|f| f.times).sum()
    }
}

/// Answers requests.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;
}

/// A served request, for assertions.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
    /// Body bytes actually written.
    pub sent: usize,
    /// The request body (chat requests).
    pub body: Vec<u8>,
}

/// A running server; stops when dropped.
pub struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<LogEntry>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1` on a free port and serves `handler` until dropped.
    pub fn start(handler: impl Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let accept = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let log = log.clone();
                    std::thread::spawn(move || serve_connection(stream, handler.as_ref(), &log));
                }
            })
        };
        Server {
            addr,
            stop,
            log,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request served so far.
    pub fn log(&self) -> Vec<LogEntry> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve_connection(stream: TcpStream, handler: &dyn Handler, log: &Mutex<Vec<LogEntry>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    // Keep-alive: serve requests until the client closes or a response closes the connection.
    loop {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let resp = handler.handle(&req);
        let (sent, keep) = write_response(&mut writer, &req, &resp);
        log.lock().unwrap().push(LogEntry {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            range: req.header("range").map(str::to_string),
            authorization: req.header("authorization").map(str::to_string),
            status: resp.status,
            sent,
            body: req.body.clone(),
        });
        if !keep {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes the response; returns the body bytes written and whether the connection stays open.
fn write_response(w: &mut TcpStream, req: &Request, resp: &Response) -> (usize, bool) {
    if let Delivery::Delay(d) = resp.delivery {
        std::thread::sleep(d);
    }
    let cut = match resp.delivery {
        Delivery::CutAfter(n) => Some(n.min(resp.body.len())),
        _ => None,
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    let keep = cut.is_none()
        && !req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    if !keep {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if w.write_all(head.as_bytes()).is_err() {
        return (0, false);
    }
    if req.method == "HEAD" {
        return (0, keep);
    }
    let body = match cut {
        Some(n) => &resp.body[..n],
        None => &resp.body[..],
    };
    if w.write_all(body).is_err() {
        return (0, false);
    }
    let _ = w.flush();
    (body.len(), keep)
}

/// Percent-decodes a URL path segment (`refs%2Fconvert%2Fparquet` → `refs/convert/parquet`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(
            percent_decode("refs%2Fconvert%2Fparquet"),
            "refs/convert/parquet"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%E3%81%82"), "あ");
    }

    #[test]
    fn faults_are_consumed() {
        let f = Faults::default();
        f.add(Fault::new("x", FaultKind::InvalidJson, 2));
        assert_eq!(f.take("axb"), Some(FaultKind::InvalidJson));
        assert_eq!(f.take("y"), None);
        assert_eq!(f.take("x"), Some(FaultKind::InvalidJson));
        assert_eq!(f.take("x"), None);
        assert_eq!(f.remaining(), 0);
    }
}
