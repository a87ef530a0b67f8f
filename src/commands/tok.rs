//! `njp tok`: train, encode, decode, render, compare.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use njp_tokenizer::{
    ChunkCounter, Phase, Progress, Tokenizer, TrainConfig, TruncationPolicy,
    parse_conversation_json,
};

use super::{Ctx, ExitStatus};
use crate::printer::{Hint, Printer};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokCommand {
    /// Train a byte-level BPE tokenizer on text files, JSONL or a catalog dataset.
    Train(TrainArgs),
    /// Encode text from stdin; print a JSON array of ids.
    Encode(EncodeArgs),
    /// Decode a JSON array of ids from stdin; print the text.
    Decode(DecodeArgs),
    /// Render a conversation (JSON on stdin) with the chat template; print ids and mask.
    Render(RenderArgs),
    /// Compare tokenizers on text files: bytes per token and characters per token.
    Compare(CompareArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenizerArg {
    /// Tokenizer directory (`njp tok train` output, or nanochat's with `tokenizer.pkl`, read
    /// without Python) or a `tokenizer.pkl` file [default: $NJP_TOKENIZER, else `tokenizer` in
    /// njp.toml].
    #[arg(long, env = "NJP_TOKENIZER", value_name = "DIR")]
    tokenizer: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Input files: `.jsonl`/`.json`/`.ndjson` (one object per line with a string `text`), anything
    /// else plain UTF-8 text with one document per line.
    #[arg(long, num_args = 1.., value_name = "PATH", required_unless_present = "dataset")]
    input: Vec<PathBuf>,
    /// A Document dataset from the catalog.
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    dataset: Option<String>,
    /// Vocabulary size including nanochat's 9 special tokens.
    #[arg(long, default_value_t = 65_536)]
    vocab_size: u32,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Split pattern: `ja` (kanji+okurigana, default), `ja-script`, `gpt4` (nanochat's),
    /// `ja-phrase` (letter runs + trailing Japanese punctuation), `ja-span` (letters up to
    /// whitespace or digits), `ja-char` (kanji words, other characters alone) or
    /// `regex:<fancy-regex>`. With `--stage2-pattern`: the first stage's pattern. Best
    /// compression measured: `--pattern ja-char --stage2-pattern ja-span --transition-vocab 1024`.
    #[arg(long, default_value = "ja")]
    pattern: String,
    /// Second training stage over coarser chunks (SuperBPE-style), e.g. `ja-span` or
    /// `ja-phrase`: a pattern as `--pattern`. The tokenizer then splits with this pattern. Needs
    /// `--transition-vocab`. `ja-span` chunks are paragraph-sized: cap big corpora with
    /// `--max-chars`.
    #[arg(long, value_name = "PATTERN", requires = "transition_vocab")]
    stage2_pattern: Option<String>,
    /// Vocabulary size (including the specials) at which the second stage starts.
    #[arg(long, value_name = "N", requires = "stage2_pattern")]
    transition_vocab: Option<u32>,
    /// Stop reading once this many characters have been used (after the document cap).
    #[arg(long)]
    max_chars: Option<u64>,
    /// Use at most this many characters of each document (nanochat: 10,000); 0 = no cap.
    #[arg(long, default_value_t = 10_000)]
    doc_cap: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EncodeArgs {
    #[command(flatten)]
    tok: TokenizerArg,
    /// Encode each line separately (without its newline) and print one JSON array per line.
    #[arg(long)]
    lines: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    #[command(flatten)]
    tok: TokenizerArg,
    /// Each input line is a JSON array; print one decoded text per line.
    #[arg(long)]
    lines: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    tok: TokenizerArg,
    /// Row length limit in tokens.
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    /// What to do with longer conversations: error, drop, truncate (whole trailing turns).
    #[arg(long, default_value = "error")]
    policy: TruncationPolicy,
    /// Show the tokens coloured instead of JSON: green = supervised, red = masked.
    #[arg(long)]
    show: bool,
    /// Render a prompt for completion (drops a final assistant message, appends
    /// `<|assistant_start|>`).
    #[arg(long)]
    completion: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// Tokenizer directories (njp's or nanochat's `tokenizer.pkl`) or `tokenizer.pkl` files.
    #[arg(long, num_args = 1.., required = true, value_name = "DIR")]
    tokenizer: Vec<PathBuf>,
    /// UTF-8 text files.
    #[arg(long, num_args = 1.., required = true, value_name = "FILE")]
    text: Vec<PathBuf>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, cmd: TokCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        TokCommand::Train(a) => train(ctx, a),
        TokCommand::Encode(a) => encode(ctx, a),
        TokCommand::Decode(a) => decode(ctx, a),
        TokCommand::Render(a) => render(ctx, a),
        TokCommand::Compare(a) => compare(ctx, a),
    }
}

fn load_tokenizer(ctx: &Ctx, arg: &TokenizerArg) -> anyhow::Result<Tokenizer> {
    let dir = arg
        .tokenizer
        .clone()
        .or_else(|| ctx.settings.tokenizer.clone())
        .ok_or_else(|| {
            anyhow::Error::new(Hint(
                "pass --tokenizer DIR, set NJP_TOKENIZER, or set `tokenizer` in njp.toml".into(),
            ))
            .context("no tokenizer given")
        })?;
    Tokenizer::load(&dir).with_context(|| format!("loading tokenizer {}", dir.display()))
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading stdin (it must be UTF-8)")?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// train

/// Draws one bar per training phase.
struct Bars {
    printer: Printer,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn set(&self, pb: ProgressBar) {
        if let Some(old) = self.bar.lock().expect("bar lock").replace(pb) {
            old.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: Phase, total: Option<u64>) {
        match (phase, total) {
            (Phase::Count, _) => {}
            (Phase::Merge, Some(n)) => self.set(self.printer.bar(n, phase.label())),
            _ => self.set(self.printer.spinner(phase.label())),
        }
    }
    fn update(&self, _phase: Phase, done: u64) {
        if let Some(b) = self.bar.lock().expect("bar lock").as_ref() {
            b.set_position(done);
        }
    }
    fn finish(&self, phase: Phase, seconds: f64) {
        if let Some(b) = self.bar.lock().expect("bar lock").take() {
            b.finish_and_clear();
        }
        tracing::info!(phase = phase.label(), seconds, "phase done");
    }
}

/// Streams documents from the input files into the counter, batch by batch.
struct Feeder<'a> {
    counter: &'a mut ChunkCounter,
    batch: Vec<String>,
    batch_bytes: usize,
    chars: u64,
    max_chars: Option<u64>,
    cap: Option<usize>,
}

impl Feeder<'_> {
    /// Adds one document; returns false once `max_chars` is reached.
    fn push(&mut self, doc: String) -> anyhow::Result<bool> {
        if self.max_chars.is_some_and(|m| self.chars >= m) {
            return Ok(false);
        }
        let n = doc.chars().count();
        self.chars += self.cap.map_or(n, |c| n.min(c)) as u64;
        self.batch_bytes += doc.len();
        self.batch.push(doc);
        if self.batch.len() >= njp_tokenizer::train::BATCH_DOCS
            || self.batch_bytes >= njp_tokenizer::train::BATCH_BYTES
        {
            self.flush()?;
        }
        Ok(true)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        self.counter.add_documents(&self.batch)?;
        self.batch.clear();
        self.batch_bytes = 0;
        Ok(())
    }
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json" | "ndjson")
    )
}

/// Reads one input file into the feeder. Returns false when `max_chars` stopped reading.
fn feed_file(path: &Path, feeder: &mut Feeder<'_>, bar: &ProgressBar) -> anyhow::Result<bool> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let jsonl = is_jsonl(path);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(true);
        }
        line_no += 1;
        bar.inc(n as u64);
        let line = std::str::from_utf8(&buf)
            .map_err(|e| anyhow::anyhow!("{}:{line_no}: not UTF-8 ({e})", path.display()))?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = if line_no == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let doc = if jsonl {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{line_no}: invalid JSON: {e}", path.display()))?;
            match v.get("text") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => bail!(
                    "{}:{line_no}: expected an object with a string field `text`",
                    path.display()
                ),
            }
        } else {
            line.to_string()
        };
        if !feeder.push(doc)? {
            return Ok(false);
        }
    }
}

fn train(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<ExitStatus> {
    let p = &ctx.printer;
    let mut config = TrainConfig::one_stage(a.vocab_size, a.pattern.parse()?);
    if let (Some(p2), Some(t)) = (&a.stage2_pattern, a.transition_vocab) {
        config.stage2 = Some(njp_tokenizer::Stage2 {
            pattern: p2.parse()?,
            transition_vocab: t,
        });
    }
    let pattern = config.pattern.clone();
    config.stage1_merges()?;
    let cap = (a.doc_cap > 0).then_some(a.doc_cap);
    let t0 = Instant::now();
    let mut counter = ChunkCounter::new(config.count_pattern(), cap)?;
    let total_bytes: u64 = a
        .input
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .map(|m| m.len())
                .with_context(|| format!("reading {}", f.display()))
        })
        .sum::<anyhow::Result<u64>>()?;
    let bar = p.bar(total_bytes, "count");
    let mut feeder = Feeder {
        counter: &mut counter,
        batch: Vec::new(),
        batch_bytes: 0,
        chars: 0,
        max_chars: a.max_chars,
        cap,
    };
    for f in &a.input {
        if !feed_file(f, &mut feeder, &bar)? {
            break;
        }
    }
    if let Some(name) = &a.dataset {
        let catalog = njp_catalog::Catalog::open(&ctx.settings.home)?;
        let m = catalog.resolve(name)?;
        if m.kind.record_kind() != Some(njp_datasets::Kind::Document) {
            bail!(
                "--dataset {}: a {} dataset; tokenizer training reads document datasets",
                m.id(),
                m.kind
            );
        }
        bar.set_length(m.rows);
        for (i, record) in catalog.records(&m)?.enumerate() {
            let njp_datasets::Record::Document(doc) = record? else {
                unreachable!("document dataset")
            };
            bar.set_position(i as u64 + 1);
            if !feeder.push(doc.text)? {
                break;
            }
        }
    }
    feeder.flush()?;
    bar.finish_and_clear();
    let counted = counter.stats();
    if counted.documents == 0 {
        bail!("no documents in the input");
    }
    let bars = Bars {
        printer: *p,
        bar: Mutex::new(None),
    };
    let (tok, mut stats) = counter.train(&config, &bars)?;
    let total = t0.elapsed().as_secs_f64();
    stats.count_seconds = counted.count_seconds;
    tok.save_with_stats(&a.out, &stats)
        .with_context(|| format!("saving to {}", a.out.display()))?;
    p.info(format!(
        "trained {} tokens ({} merges, pattern {}) on {} documents / {} chars in {:.1} s \
         (count {:.1} s, index {:.1} s, merge {:.1} s, {} threads); {} unique chunks",
        tok.vocab_size(),
        stats.merges,
        match &config.stage2 {
            Some(s2) => format!(
                "{} after {} up to {} tokens",
                s2.pattern, pattern, s2.transition_vocab
            ),
            None => pattern.to_string(),
        },
        stats.documents,
        stats.chars,
        total,
        stats.count_seconds,
        stats.index_seconds,
        stats.merge_seconds,
        stats.threads,
        stats.unique_chunks,
    ));
    if stats.capped_documents > 0 {
        p.warn(format!(
            "{} documents were longer than --doc-cap {} characters; {} characters were not used",
            stats.capped_documents, a.doc_cap, stats.capped_chars
        ));
    }
    p.info(format!("saved to {}", a.out.display()));
    if tok.vocab_size() != a.vocab_size as usize {
        p.warn(format!(
            "the data ran out of pairs to merge: vocabulary is {} instead of {}; use more text",
            tok.vocab_size(),
            a.vocab_size
        ));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------------
// encode / decode

fn encode(ctx: &Ctx, a: EncodeArgs) -> anyhow::Result<ExitStatus> {
    let tok = load_tokenizer(ctx, &a.tok)?;
    let text = read_stdin()?;
    if a.lines {
        let lines: Vec<&str> = text.lines().collect();
        for ids in tok.encode_batch(&lines) {
            ctx.printer.out(serde_json::to_string(&ids)?)?;
        }
    } else {
        ctx.printer
            .out(serde_json::to_string(&tok.encode(&text))?)?;
    }
    Ok(ExitStatus::Success)
}

fn parse_ids(s: &str, what: &str) -> anyhow::Result<Vec<u32>> {
    serde_json::from_str(s).with_context(|| format!("{what}: expected a JSON array of token ids"))
}

fn decode(ctx: &Ctx, a: DecodeArgs) -> anyhow::Result<ExitStatus> {
    let tok = load_tokenizer(ctx, &a.tok)?;
    let text = read_stdin()?;
    if a.lines {
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let ids = parse_ids(l, &format!("stdin line {}", i + 1))?;
            ctx.printer.out(
                tok.decode(&ids)
                    .with_context(|| format!("stdin line {}", i + 1))?,
            )?;
        }
    } else {
        let ids = parse_ids(&text, "stdin")?;
        ctx.printer.out_raw(tok.decode(&ids)?.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------------
// render

fn render(ctx: &Ctx, a: RenderArgs) -> anyhow::Result<ExitStatus> {
    let tok = load_tokenizer(ctx, &a.tok)?;
    let text = read_stdin()?;
    // One JSON document, or JSON lines.
    let docs: Vec<(usize, &str)> = if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
        vec![(1, text.as_str())]
    } else {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect()
    };
    let mut renderer = njp_tokenizer::ChatRenderer::new(&tok, a.max_tokens, a.policy);
    let color = std::io::stdout().is_terminal();
    for (line, doc) in docs {
        let conv =
            parse_conversation_json(doc).map_err(|e| anyhow::anyhow!("stdin line {line}: {e}"))?;
        if a.completion {
            let ids = tok
                .render_for_completion(&conv, a.max_tokens)
                .map_err(|e| anyhow::anyhow!("stdin line {line}: {e}"))?;
            if a.show {
                let mask = vec![0u8; ids.len()];
                ctx.printer.out(show(&tok, &ids, &mask, color))?;
            } else {
                ctx.printer
                    .out(serde_json::to_string(&serde_json::json!({ "ids": ids }))?)?;
            }
            continue;
        }
        match renderer.render(&conv) {
            Ok(Some(r)) => {
                if a.show {
                    ctx.printer.out(show(&tok, &r.ids, &r.mask, color))?;
                } else {
                    ctx.printer.out(serde_json::to_string(&r)?)?;
                }
            }
            Ok(None) => {}
            // RenderError's messages already say which policy accepts the row.
            Err(e) => return Err(anyhow::Error::new(e).context(format!("stdin line {line}"))),
        }
    }
    if !a.completion {
        ctx.printer.info(renderer.report().to_string());
    }
    Ok(ExitStatus::Success)
}

/// nanochat's `visualize_tokenization`: each token's text, green when supervised, red when not;
/// without colour, masked tokens are wrapped in `[…]`.
fn show(tok: &Tokenizer, ids: &[u32], mask: &[u8], color: bool) -> String {
    let mut out = String::new();
    let mut dec = tok.stream_decoder();
    for (&id, &m) in ids.iter().zip(mask) {
        let piece = if tok.is_special(id) {
            tok.decode(&[id]).unwrap_or_default()
        } else {
            let s = dec.push(id).unwrap_or_default();
            if s.is_empty() {
                continue;
            }
            s
        };
        match (color, m) {
            (true, 1) => out.push_str(&format!("\x1b[32m{piece}\x1b[0m|")),
            (true, _) => out.push_str(&format!("\x1b[31m{piece}\x1b[0m|")),
            (false, 1) => out.push_str(&format!("{piece}|")),
            (false, _) => out.push_str(&format!("[{piece}]|")),
        }
    }
    out.push_str(&dec.finish());
    out
}

// ---------------------------------------------------------------------------------------------
// compare

fn compare(ctx: &Ctx, a: CompareArgs) -> anyhow::Result<ExitStatus> {
    let toks: Vec<(PathBuf, Tokenizer)> = a
        .tokenizer
        .iter()
        .map(|d| {
            Ok((
                d.clone(),
                Tokenizer::load(d).with_context(|| format!("loading tokenizer {}", d.display()))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let texts: Vec<(PathBuf, String)> = a
        .text
        .iter()
        .map(|f| {
            Ok((
                f.clone(),
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    if !a.json {
        ctx.printer.out(format!(
            "{:<28} {:<24} {:>7} {:>12} {:>10} {:>7} {:>7}",
            "tokenizer", "text", "vocab", "bytes", "tokens", "B/tok", "ch/tok"
        ))?;
    }
    for (tdir, tok) in &toks {
        for (tf, text) in &texts {
            let lines: Vec<&str> = text.lines().collect();
            let tokens: usize = tok.encode_batch(&lines).iter().map(Vec::len).sum();
            let bytes: usize = lines.iter().map(|l| l.len()).sum();
            let chars: usize = lines.iter().map(|l| l.chars().count()).sum();
            let bpt = bytes as f64 / tokens.max(1) as f64;
            let cpt = chars as f64 / tokens.max(1) as f64;
            if a.json {
                ctx.printer.out(serde_json::to_string(&serde_json::json!({
                    "tokenizer": tdir, "text": tf, "vocab_size": tok.vocab_size(), "bytes": bytes,
                    "chars": chars, "tokens": tokens, "bytes_per_token": bpt, "chars_per_token": cpt,
                }))?)?;
            } else {
                ctx.printer.out(format!(
                    "{:<28} {:<24} {:>7} {:>12} {:>10} {:>7.3} {:>7.3}",
                    short(tdir),
                    short(tf),
                    tok.vocab_size(),
                    bytes,
                    tokens,
                    bpt,
                    cpt
                ))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn short(p: &Path) -> String {
    let s = p.display().to_string();
    let n = s.chars().count();
    if n <= 28 {
        s
    } else {
        format!("…{}", s.chars().skip(n - 27).collect::<String>())
    }
}
