//! Reading upstream files as a stream of JSON rows with their locations.
//!
//! Formats: JSON Lines, JSON (an array of objects streamed element by element, or one object),
//! CSV, TSV and Parquet, each optionally gzip-compressed (detected by magic bytes). Text must be
//! UTF-8 unless an encoding is given (`shift_jis`, `euc-jp`, `utf-16le`…, via encoding_rs);
//! invalid bytes are an error that names the file, the byte offset and the line.
//!
//! Errors come in two strengths: a [`ReadError`] stops the file (unreadable, not UTF-8, a
//! truncated JSON array, a corrupt Parquet footer), while a row that cannot be parsed (a
//! malformed JSON line, a CSV row with the wrong number of fields) is yielded as a [`Row`] with
//! an `Err` value so the importer can record it as a reject and carry on.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use encoding_rs::{DecoderResult, Encoding};
use serde_json::{Map, Value};

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Tsv,
    Parquet,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!(
                "unknown format `{other}` (expected auto, jsonl, json, csv, tsv or parquet)"
            )),
        }
    }
}

/// Where a row came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based line where the row starts (text formats).
    pub line: Option<u64>,
    /// 1-based row number within the file.
    pub row: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}: row {}", self.file.display(), self.row),
        }
    }
}

/// One input row: a JSON object (CSV rows become objects of strings), or why it is unreadable.
#[derive(Debug)]
pub struct Row {
    pub location: Location,
    pub value: Result<Value, String>,
    /// The raw text of the row when it could not be parsed (for the rejects table).
    pub raw: Option<String>,
}

/// A problem that stops reading a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: is a directory; pass the files inside it")]
    Directory { path: PathBuf },
    #[error("{path}: file is empty")]
    Empty { path: PathBuf },
    #[error(
        "{path}: invalid {encoding} at byte {offset} (line {line}); if the file is in another encoding pass --encoding (e.g. shift_jis, euc-jp)"
    )]
    Encoding {
        path: PathBuf,
        encoding: String,
        offset: u64,
        line: u64,
    },
    #[error("{path}: line {line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: not a Parquet file or corrupt: {reason}")]
    Parquet { path: PathBuf, reason: String },
    #[error(
        "{path}: cannot tell the format from the name; pass --format jsonl|json|csv|tsv|parquet"
    )]
    UnknownFormat { path: PathBuf },
    #[error("unknown encoding `{0}` (e.g. utf-8, shift_jis, euc-jp, iso-2022-jp, utf-16le)")]
    UnknownEncoding(String),
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// `None` = detect from the extension (after a `.gz`).
    pub format: Option<Format>,
    /// `None` = UTF-8 (a leading BOM is skipped).
    pub encoding: Option<&'static Encoding>,
    /// CSV/TSV without a header row: columns are named `0`, `1`, ….
    pub no_header: bool,
}

/// Looks an encoding up by its WHATWG label (`shift_jis`, `sjis`, `cp932`, `euc-jp`…).
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding, ReadError> {
    let label = match label.to_ascii_lowercase().as_str() {
        "cp932" | "windows-31j" | "ms932" => "shift_jis".to_string(),
        "eucjp" => "euc-jp".to_string(),
        other => other.to_string(),
    };
    Encoding::for_label(label.as_bytes()).ok_or(ReadError::UnknownEncoding(label))
}

/// The format a path's name implies, if any.
pub fn detect_format(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let ext = name.rsplit_once('.')?.1;
    match ext {
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "json" => Some(Format::Json),
        "csv" => Some(Format::Csv),
        "tsv" | "tab" => Some(Format::Tsv),
        "parquet" | "pq" => Some(Format::Parquet),
        _ => None,
    }
}

/// Counts bytes read from the underlying file (for progress).
pub struct Counting<R> {
    inner: R,
    pub count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a file as a stream of rows. `progress` is incremented with the bytes read.
pub fn open_rows(
    path: &Path,
    opts: &ReadOptions,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn Iterator<Item = Result<Row, ReadError>> + Send>, ReadError> {
    Ok(match open(path, opts, progress)? {
        Opened::Lines(lines) => Box::new(lines),
        Opened::Rows(rows) => rows,
    })
}

/// A row as read, before its JSON is parsed ([`open_raw_rows`]).
#[derive(Debug)]
pub struct RawRow {
    /// 1-based line where the row starts (text formats).
    pub line: Option<u64>,
    /// 1-based row number within the file.
    pub row: u64,
    pub body: RawBody,
}

/// The content of a [`RawRow`].
#[derive(Debug)]
pub enum RawBody {
    /// A JSON Lines row, not parsed yet: parse it with [`parse_json_line`].
    Text(String),
    /// A row of another format, already parsed (as in [`Row`]).
    Parsed {
        value: Result<Value, String>,
        raw: Option<String>,
    },
}

impl RawBody {
    /// The row's value (or why it is unreadable) and its raw text when unreadable, exactly as
    /// [`open_rows`] yields them.
    pub fn parse(self) -> (Result<Value, String>, Option<String>) {
        match self {
            RawBody::Text(text) => match parse_json_line(&text) {
                Ok(v) => (Ok(v), None),
                Err(e) => (Err(e), Some(text)),
            },
            RawBody::Parsed { value, raw } => (value, raw),
        }
    }
}

/// Parses one JSON Lines row; the error is the reject reason [`open_rows`] gives.
pub fn parse_json_line(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| format!("invalid JSON: {e}"))
}

/// Like [`open_rows`], but JSON Lines rows come as unparsed text ([`RawBody::Text`]), so that
/// the (costly) parsing can run in parallel or be replaced by a typed parse of a known shape.
/// Locations, row numbering, skipped blank lines and file-level errors are those of
/// [`open_rows`].
pub fn open_raw_rows(
    path: &Path,
    opts: &ReadOptions,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn Iterator<Item = Result<RawRow, ReadError>> + Send>, ReadError> {
    Ok(match open(path, opts, progress)? {
        Opened::Lines(mut lines) => Box::new(std::iter::from_fn(move || {
            Some(lines.next_text()?.map(|(line, row, text)| RawRow {
                line: Some(line),
                row,
                body: RawBody::Text(text.to_string()),
            }))
        })),
        Opened::Rows(rows) => Box::new(rows.map(|r| {
            r.map(|r| RawRow {
                line: r.location.line,
                row: r.location.row,
                body: RawBody::Parsed {
                    value: r.value,
                    raw: r.raw,
                },
            })
        })),
    })
}

enum Opened {
    Lines(Box<JsonLines<BufReader<Utf8Stream>>>),
    Rows(Box<dyn Iterator<Item = Result<Row, ReadError>> + Send>),
}

fn open(
    path: &Path,
    opts: &ReadOptions,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Opened, ReadError> {
    if !path.exists() {
        return Err(ReadError::Missing {
            path: path.to_path_buf(),
        });
    }
    if path.is_dir() {
        return Err(ReadError::Directory {
            path: path.to_path_buf(),
        });
    }
    let format = opts
        .format
        .or_else(|| detect_format(path))
        .ok_or(ReadError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Err(ReadError::Empty {
            path: path.to_path_buf(),
        });
    }
    if format == Format::Parquet {
        return parquet_rows(path, file, progress).map(Opened::Rows);
    }
    let mut buffered = BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: file,
            count: progress,
        },
    );
    let gz = buffered.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let raw: Box<dyn Read + Send> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let text = Utf8Stream::new(raw, opts.encoding, path.to_path_buf());
    let reader = BufReader::with_capacity(1 << 16, text);
    let path = path.to_path_buf();
    Ok(match format {
        Format::Jsonl => Opened::Lines(Box::new(JsonLines::new(reader, path))),
        Format::Json => Opened::Rows(Box::new(JsonDocument::new(reader, path)?)),
        Format::Csv | Format::Tsv => Opened::Rows(Box::new(csv_rows(
            reader,
            path,
            format == Format::Tsv,
            opts.no_header,
        ))),
        Format::Parquet => unreachable!("handled above"),
    })
}

// ---------------------------------------------------------------------------------------------
// Text decoding

/// Decodes (or validates) a byte stream to UTF-8, failing with the byte offset and line of the
/// first invalid sequence. A leading UTF-8 BOM is skipped.
struct Utf8Stream {
    inner: Box<dyn Read + Send>,
    decoder: Option<encoding_rs::Decoder>,
    encoding: &'static Encoding,
    path: PathBuf,
    in_buf: Vec<u8>,
    in_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes of input consumed and newlines seen so far (for error positions).
    offset: u64,
    lines: u64,
    eof: bool,
    started: bool,
}

impl Utf8Stream {
    fn new(
        inner: Box<dyn Read + Send>,
        encoding: Option<&'static Encoding>,
        path: PathBuf,
    ) -> Self {
        let decoder = encoding
            .filter(|e| *e != encoding_rs::UTF_8)
            .map(|e| e.new_decoder_without_bom_handling());
        Utf8Stream {
            inner,
            decoder,
            encoding: encoding.unwrap_or(encoding_rs::UTF_8),
            path,
            in_buf: vec![0; 1 << 16],
            in_len: 0,
            out: Vec::with_capacity(1 << 17),
            out_pos: 0,
            offset: 0,
            lines: 1,
            eof: false,
            started: false,
        }
    }

    fn error(&self, bad_at: u64, upto: &[u8]) -> std::io::Error {
        let line = self.lines + upto.iter().filter(|&&b| b == b'\n').count() as u64;
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            ReadError::Encoding {
                path: self.path.clone(),
                encoding: self.encoding.name().to_string(),
                offset: bad_at,
                line,
            },
        )
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() && !(self.eof && self.in_len == 0) {
            if !self.eof && self.in_len < self.in_buf.len() {
                let n = self.inner.read(&mut self.in_buf[self.in_len..])?;
                if n == 0 {
                    self.eof = true;
                }
                self.in_len += n;
            }
            let mut start = 0;
            if !self.started && (self.in_len >= 3 || self.eof) {
                self.started = true;
                if self.decoder.is_none()
                    && self.in_buf[..self.in_len].starts_with(&[0xEF, 0xBB, 0xBF])
                {
                    start = 3;
                    self.offset += 3;
                }
            } else if !self.started {
                continue;
            }
            let input = &self.in_buf[start..self.in_len];
            let consumed = match &mut self.decoder {
                None => {
                    let (valid, invalid) = utf8_prefix(input);
                    if valid < input.len() && (invalid || self.eof) {
                        return Err(self.error(self.offset + valid as u64, &input[..valid]));
                    }
                    // All of it, or all but a sequence cut by the end of the read (kept for
                    // the next one).
                    self.out.extend_from_slice(&input[..valid]);
                    valid
                }
                Some(decoder) => {
                    let mut out = String::with_capacity(input.len() * 3 + 16);
                    let (result, read) =
                        decoder.decode_to_string_without_replacement(input, &mut out, self.eof);
                    if let DecoderResult::Malformed(bad, extra) = result {
                        let bad_at = self.offset + read as u64 - u64::from(bad) - u64::from(extra);
                        let lines = out.bytes().filter(|&b| b == b'\n').count();
                        let line = self.lines + lines as u64;
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            ReadError::Encoding {
                                path: self.path.clone(),
                                encoding: self.encoding.name().to_string(),
                                offset: bad_at,
                                line,
                            },
                        ));
                    }
                    self.out.extend_from_slice(out.as_bytes());
                    read
                }
            };
            self.lines += memchr::memchr_iter(b'\n', &self.out).count() as u64;
            self.offset += consumed as u64;
            let total = start + consumed;
            self.in_buf.copy_within(total..self.in_len, 0);
            self.in_len -= total;
            if self.eof && consumed == 0 && self.in_len > 0 && self.decoder.is_none() {
                return Err(self.error(self.offset, &[]));
            }
        }
        Ok(())
    }
}

impl Read for Utf8Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.out_pos >= self.out.len() {
            self.refill()?;
            if self.out.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Turns an I/O error from the decoding layer back into a precise [`ReadError`].
fn read_error(path: &Path, e: std::io::Error) -> ReadError {
    if e.get_ref().is_some_and(|inner| inner.is::<ReadError>()) {
        let inner = e.into_inner().expect("checked");
        return *inner.downcast::<ReadError>().expect("checked");
    }
    ReadError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

struct JsonLines<R> {
    reader: R,
    path: PathBuf,
    line: u64,
    row: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> JsonLines<R> {
    fn new(reader: R, path: PathBuf) -> Self {
        JsonLines {
            reader,
            path,
            line: 0,
            row: 0,
            buf: Vec::new(),
            done: false,
        }
    }
}

impl JsonLines<BufReader<Utf8Stream>> {
    /// The next non-blank line: its line number, row number and text (without the newline).
    fn next_text(&mut self) -> Option<Result<(u64, u64, &str), ReadError>> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(read_error(&self.path, e)));
                }
            }
            self.line += 1;
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            // Blank (only whitespace) lines are skipped. A JSON row starts with an ASCII byte
            // that is not whitespace, which settles it without decoding the line.
            let blank = match self.buf[..end]
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
            {
                None => true,
                Some(b) if b.is_ascii() => false,
                Some(_) => std::str::from_utf8(&self.buf[..end])
                    .expect("validated by Utf8Stream")
                    .trim()
                    .is_empty(),
            };
            if blank {
                continue;
            }
            self.row += 1;
            return Some(Ok((self.line, self.row, utf8_line(&self.buf[..end]))));
        }
        None
    }
}

/// How many leading bytes of `input` are valid UTF-8, and whether what follows them is invalid
/// (`true`) rather than a sequence cut short by the end of `input` (`false`).
///
/// All but the last character go through SIMD validation (`simdutf8`: AVX2 or SSE 4.2, chosen
/// at run time; several times std's speed on Japanese text, ≈ 5 % of `njp ingest`'s CPU time
/// before), the last one — possibly cut by the end of a read — through std's. Only when the SIMD
/// pass fails does std's go over everything, to say where the error is.
fn utf8_prefix(input: &[u8]) -> (usize, bool) {
    let tail = input.len().saturating_sub(4);
    let last = (tail..input.len())
        .rev()
        .find(|&i| input[i] & 0xC0 != 0x80)
        .unwrap_or(tail);
    let checked = match simdutf8::basic::from_utf8(&input[..last]) {
        Ok(_) => std::str::from_utf8(&input[last..]).map_err(|e| (last, e)),
        Err(_) => std::str::from_utf8(input).map_err(|e| (0, e)),
    };
    match checked {
        Ok(_) => (input.len(), false),
        Err((base, e)) => (base + e.valid_up_to(), e.error_len().is_some()),
    }
}

/// A line read from a [`Utf8Stream`], as text, without validating it a second time.
#[allow(unsafe_code)]
fn utf8_line(bytes: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: `Utf8Stream` only ever yields valid UTF-8 (checked by `from_utf8` or produced by
    // the decoder), cut at character boundaries (an incomplete sequence at the end of a read is
    // kept for the next one, and is an error at the end of the file); a read error ends the
    // file before its bytes are used. A line is such bytes up to a `\n` (never part of a
    // multi-byte sequence), less trailing `\n`/`\r`, so it is valid UTF-8 too. This skips a
    // second validation pass over every JSON Lines file (≈ 4 % of `njp ingest`'s CPU time).
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

impl Iterator for JsonLines<BufReader<Utf8Stream>> {
    type Item = Result<Row, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.path.clone();
        let (line, row, text) = match self.next_text()? {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let location = Location {
            file: path,
            line: Some(line),
            row,
        };
        let value = parse_json_line(text);
        let raw = value.is_err().then(|| text.to_string());
        Some(Ok(Row {
            location,
            value,
            raw,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON documents: an array streamed element by element, or a single value

struct JsonDocument<R: Read> {
    bytes: std::iter::Peekable<std::io::Bytes<R>>,
    path: PathBuf,
    line: u64,
    row: u64,
    mode: JsonMode,
}

#[derive(PartialEq)]
enum JsonMode {
    Array,
    Single,
    Done,
}

impl<R: BufRead> JsonDocument<R> {
    fn new(reader: R, path: PathBuf) -> Result<Self, ReadError> {
        let mut doc = JsonDocument {
            bytes: reader.bytes().peekable(),
            path,
            line: 1,
            row: 0,
            mode: JsonMode::Single,
        };
        match doc.skip_ws()? {
            Some(b'[') => {
                doc.bytes.next();
                doc.mode = JsonMode::Array;
            }
            Some(_) => doc.mode = JsonMode::Single,
            None => return Err(ReadError::Empty { path: doc.path }),
        }
        Ok(doc)
    }

    fn peek(&mut self) -> Result<Option<u8>, ReadError> {
        match self.bytes.peek() {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(*b)),
            Some(Err(_)) => match self.bytes.next() {
                Some(Err(e)) => Err(read_error(&self.path, e)),
                _ => unreachable!("peeked an error"),
            },
        }
    }

    fn bump(&mut self) -> Result<Option<u8>, ReadError> {
        match self.bytes.next() {
            None => Ok(None),
            Some(Ok(b)) => {
                if b == b'\n' {
                    self.line += 1;
                }
                Ok(Some(b))
            }
            Some(Err(e)) => Err(read_error(&self.path, e)),
        }
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, ReadError> {
        while let Some(b) = self.peek()? {
            if b.is_ascii_whitespace() {
                self.bump()?;
            } else {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    fn syntax(&self, line: u64, reason: impl Into<String>) -> ReadError {
        ReadError::Syntax {
            path: self.path.clone(),
            line,
            reason: reason.into(),
        }
    }

    /// Reads the bytes of one JSON value (object, array, string or scalar) without parsing it,
    /// tracking nesting with a counter so that depth costs no stack.
    fn value_bytes(&mut self) -> Result<Vec<u8>, ReadError> {
        let start_line = self.line;
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let Some(b) = self.peek()? else {
                if depth > 0 || in_string {
                    return Err(self.syntax(
                        start_line,
                        "unexpected end of file inside a JSON value (truncated file?)",
                    ));
                }
                return Ok(out);
            };
            if in_string {
                self.bump()?;
                out.push(b);
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return Ok(out); // end of a scalar inside the enclosing array
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.bump()?;
                        out.push(b);
                        return Ok(out);
                    }
                }
                b',' if depth == 0 => return Ok(out),
                c if c.is_ascii_whitespace() && depth == 0 => return Ok(out),
                _ => {}
            }
            self.bump()?;
            out.push(b);
        }
    }
}

impl<R: BufRead> Iterator for JsonDocument<R> {
    type Item = Result<Row, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = (|| -> Result<Option<Row>, ReadError> {
            match self.mode {
                JsonMode::Done => Ok(None),
                JsonMode::Single => {
                    self.skip_ws()?;
                    let line = self.line;
                    let bytes = self.value_bytes()?;
                    if let Some(b) = self.skip_ws()? {
                        return Err(self.syntax(
                            self.line,
                            format!("trailing characters after the JSON value (`{}`)", b as char),
                        ));
                    }
                    self.mode = JsonMode::Done;
                    self.row += 1;
                    Ok(Some(element(&self.path, line, self.row, &bytes)))
                }
                JsonMode::Array => {
                    match self.skip_ws()? {
                        None => return Err(self.syntax(self.line, "unexpected end of file: the JSON array is not closed (truncated file?)")),
                        Some(b']') => {
                            self.bump()?;
                            self.mode = JsonMode::Done;
                            if let Some(b) = self.skip_ws()? {
                                return Err(self.syntax(self.line, format!("trailing characters after the JSON array (`{}`)", b as char)));
                            }
                            return Ok(None);
                        }
                        Some(b',') if self.row > 0 => {
                            self.bump()?;
                            self.skip_ws()?;
                        }
                        Some(_) if self.row > 0 => {
                            return Err(self.syntax(self.line, "expected `,` or `]` between array elements"));
                        }
                        Some(_) => {}
                    }
                    let line = self.line;
                    let bytes = self.value_bytes()?;
                    if bytes.is_empty() {
                        return Err(self.syntax(line, "expected a value in the JSON array"));
                    }
                    self.row += 1;
                    Ok(Some(element(&self.path, line, self.row, &bytes)))
                }
            }
        })();
        match result {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => None,
            Err(e) => {
                self.mode = JsonMode::Done;
                Some(Err(e))
            }
        }
    }
}

fn element(path: &Path, line: u64, row: u64, bytes: &[u8]) -> Row {
    let value = serde_json::from_slice::<Value>(bytes).map_err(|e| format!("invalid JSON: {e}"));
    let raw = value
        .is_err()
        .then(|| String::from_utf8_lossy(bytes).into_owned());
    Row {
        location: Location {
            file: path.to_path_buf(),
            line: Some(line),
            row,
        },
        value,
        raw,
    }
}

// ---------------------------------------------------------------------------------------------
// CSV / TSV

fn csv_rows<R: Read + Send + 'static>(
    reader: R,
    path: PathBuf,
    tsv: bool,
    no_header: bool,
) -> impl Iterator<Item = Result<Row, ReadError>> + Send {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv)
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut header: Option<Vec<String>> = None;
    let mut row = 0u64;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let mut record = csv::StringRecord::new();
            match rdr.read_record(&mut record) {
                Ok(false) => {
                    done = true;
                    return None;
                }
                Ok(true) => {}
                Err(e) => {
                    done = true;
                    let line = e.position().map_or(0, |p| p.line());
                    return Some(Err(match e.into_kind() {
                        csv::ErrorKind::Io(io) => read_error(&path, io),
                        other => ReadError::Syntax {
                            path: path.clone(),
                            line,
                            reason: format!("{other:?}"),
                        },
                    }));
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            if header.is_none() {
                if no_header {
                    header = Some((0..record.len()).map(|i| i.to_string()).collect());
                } else {
                    let names: Vec<String> = record.iter().map(|s| s.trim().to_string()).collect();
                    if let Some(dup) = names
                        .iter()
                        .enumerate()
                        .find(|(i, n)| names[..*i].contains(n))
                    {
                        done = true;
                        return Some(Err(ReadError::Syntax {
                            path: path.clone(),
                            line,
                            reason: format!("duplicate column name `{}` in the header", dup.1),
                        }));
                    }
                    header = Some(names);
                    continue;
                }
            }
            let names = header.as_ref().expect("set above");
            row += 1;
            let location = Location {
                file: path.clone(),
                line: Some(line),
                row,
            };
            if record.len() != names.len() {
                let raw = record
                    .iter()
                    .collect::<Vec<_>>()
                    .join(if tsv { "\t" } else { "," });
                return Some(Ok(Row {
                    location,
                    value: Err(format!(
                        "{} fields, expected {} (unbalanced quotes or a stray delimiter?)",
                        record.len(),
                        names.len()
                    )),
                    raw: Some(raw),
                }));
            }
            let obj: Map<String, Value> = names
                .iter()
                .zip(record.iter())
                .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                .collect();
            return Some(Ok(Row {
                location,
                value: Ok(Value::Object(obj)),
                raw: None,
            }));
        }
        None
    })
}

// ---------------------------------------------------------------------------------------------
// Parquet

fn parquet_rows(
    path: &Path,
    file: File,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn Iterator<Item = Result<Row, ReadError>> + Send>, ReadError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: &dyn fmt::Display| ReadError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    let total = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = builder.with_batch_size(1024).build().map_err(|e| bad(&e))?;
    let path = path.to_path_buf();
    let mut row = 0u64;
    let mut pending: std::vec::IntoIter<Value> = Vec::new().into_iter();
    let mut reader = Some(reader);
    Ok(Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(v) = pending.next() {
                row += 1;
                progress.store(size * row / total, std::sync::atomic::Ordering::Relaxed);
                return Some(Ok(Row {
                    location: Location {
                        file: path.clone(),
                        line: None,
                        row,
                    },
                    value: Ok(v),
                    raw: None,
                }));
            }
            let batch = match reader.as_mut()?.next()? {
                Ok(b) => b,
                Err(e) => {
                    reader = None;
                    return Some(Err(ReadError::Parquet {
                        path: path.clone(),
                        reason: e.to_string(),
                    }));
                }
            };
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                if let Err(e) = w.write(&batch).and_then(|()| w.finish()) {
                    reader = None;
                    return Some(Err(ReadError::Parquet {
                        path: path.clone(),
                        reason: e.to_string(),
                    }));
                }
            }
            let values: Result<Vec<Value>, _> = buf
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(serde_json::from_slice)
                .collect();
            match values {
                Ok(v) => pending = v.into_iter(),
                Err(e) => {
                    reader = None;
                    return Some(Err(ReadError::Parquet {
                        path: path.clone(),
                        reason: e.to_string(),
                    }));
                }
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn rows(content: &[u8], name: &str, opts: &ReadOptions) -> Result<Vec<Row>, ReadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        open_rows(&path, opts, Arc::default())?.collect()
    }

    #[test]
    fn jsonl_with_bad_lines_and_bom() {
        let r = rows(
            b"\xEF\xBB\xBF{\"a\":1}\n\n{bad\n{\"a\":2} x\n",
            "x.jsonl",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].value.is_ok());
        assert_eq!(r[1].location.line, Some(3));
        assert!(r[1].value.is_err());
        assert!(
            r[2].value.as_ref().unwrap_err().contains("trailing"),
            "{:?}",
            r[2].value
        );
    }

    #[test]
    fn raw_rows_match_parsed_rows() {
        let content = "\u{feff}{\"a\":1}\n\n \t\r\n\u{3000}\n{bad\n\u{3000}{\"a\":\"\u{3042}\"}\r\n{\"a\":2} x";
        let dir = tempfile::tempdir().unwrap();
        for name in ["x.jsonl", "x.csv"] {
            let path = dir.path().join(name);
            let content = if name.ends_with(".csv") {
                "q,a\n\"x,y\",1\n\"unclosed,2\n"
            } else {
                content
            };
            std::fs::write(&path, content).unwrap();
            let opts = ReadOptions::default();
            let rows: Vec<Row> = open_rows(&path, &opts, Arc::default())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let raw: Vec<RawRow> = open_raw_rows(&path, &opts, Arc::default())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(rows.len(), raw.len(), "{name}");
            for (r, w) in rows.into_iter().zip(raw) {
                assert_eq!((r.location.line, r.location.row), (w.line, w.row), "{name}");
                assert_eq!((r.value, r.raw), w.body.parse(), "{name}");
            }
        }
    }

    #[test]
    fn utf8_prefix_agrees_with_std_at_every_cut_and_error() {
        // Long enough for the SIMD path (64-byte blocks), with 2-, 3- and 4-byte characters.
        let text = "吾輩は猫である。名前はまだ無い。ASCII text, café, 𠮷野家 🍣 ".repeat(5);
        let bytes = text.as_bytes();
        let expect = |b: &[u8]| match std::str::from_utf8(b) {
            Ok(_) => (b.len(), false),
            Err(e) => (e.valid_up_to(), e.error_len().is_some()),
        };
        for cut in 0..=bytes.len() {
            let input = &bytes[..cut];
            assert_eq!(utf8_prefix(input), expect(input), "cut at {cut}");
        }
        for at in (0..bytes.len()).step_by(7) {
            for bad in [0x80u8, 0xC0, 0xE3, 0xF5, 0xFF] {
                let mut input = bytes.to_vec();
                input[at] = bad;
                for cut in [at + 1, (at + 3).min(input.len()), input.len()] {
                    let b = &input[..cut];
                    assert_eq!(
                        utf8_prefix(b),
                        expect(b),
                        "byte {bad:#x} at {at}, cut at {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn jsonl_lines_across_reads_and_multibyte_boundaries() {
        // The decoding layer reads 64 KiB at a time.
        const READ: usize = 1 << 16;
        // More than four reads of input; lines of every length (some longer than one read)
        // put line ends and three-byte characters at every position of the read boundaries.
        let mut content = vec![0xEF, 0xBB, 0xBF];
        let mut want = Vec::new();
        let mut line = 1u64;
        let mut i = 0usize;
        while content.len() < 4 * READ + 1000 {
            let len = if i.is_multiple_of(97) {
                READ + 7
            } else {
                (i * 7919) % 400
            };
            let text: String = "あ".repeat(len / 3) + &"x".repeat(len % 3);
            content.extend_from_slice(format!("{{\"t\":\"{text}\"}}").as_bytes());
            content.extend_from_slice(if i.is_multiple_of(5) { b"\r\n" } else { b"\n" });
            want.push((line, text));
            line += 1;
            if i.is_multiple_of(11) {
                content.extend_from_slice("  \u{3000}\n".as_bytes());
                line += 1;
            }
            i += 1;
        }
        let got = rows(&content, "x.jsonl", &ReadOptions::default()).unwrap();
        assert_eq!(got.len(), want.len());
        for (k, (r, (line, text))) in got.iter().zip(&want).enumerate() {
            assert_eq!(r.location.line, Some(*line), "row {k}");
            assert_eq!(r.location.row, k as u64 + 1);
            assert_eq!(r.value.as_ref().unwrap()["t"], *text, "row {k}");
        }
        // An invalid byte deep in the file: its offset and line.
        let at = (3 * READ..).find(|&k| content[k].is_ascii()).unwrap();
        let nl = content[..at].iter().filter(|&&b| b == b'\n').count() as u64;
        let mut bad = content.clone();
        bad.insert(at, 0xFF);
        let msg = rows(&bad, "x.jsonl", &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("byte {at}")) && msg.contains(&format!("line {}", nl + 1)),
            "{msg}"
        );
    }

    #[test]
    fn invalid_utf8_names_byte_offset() {
        let err = rows(
            b"{\"a\":\"ok\"}\n{\"a\":\"\x82\xa0\"}\n",
            "x.jsonl",
            &ReadOptions::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("byte 17") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn shift_jis_with_encoding() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("{\"text\":\"吾輩は猫である\"}\n");
        let opts = ReadOptions {
            encoding: Some(encoding_for_label("cp932").unwrap()),
            ..Default::default()
        };
        let r = rows(&bytes, "x.jsonl", &opts).unwrap();
        assert_eq!(r[0].value.as_ref().unwrap()["text"], "吾輩は猫である");
    }

    #[test]
    fn json_array_streams_and_reports_truncation() {
        let r = rows(
            b"[\n {\"a\": [1, {\"b\": \"]\"}]},\n {\"a\": 2}\n]\n",
            "x.json",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].location.line, Some(3));
        let err = rows(b"[{\"a\":1}, {\"a\":", "x.json", &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = rows(b"[{\"a\":1}] junk", "x.json", &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn csv_field_count_mismatch_is_a_row_error() {
        let r = rows(
            b"q,a\n\"x,y\",1\n\"unclosed,2\n",
            "x.csv",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r[0].value.as_ref().unwrap()["q"], "x,y");
        assert!(r[1].value.is_err());
        assert_eq!(r[1].location.line, Some(3));
    }

    #[test]
    fn gzip_is_detected() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":1}\n").unwrap();
        let r = rows(
            &enc.finish().unwrap(),
            "x.jsonl.gz",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r.len(), 1);
    }
}
