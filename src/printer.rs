//! All terminal output: data on stdout, messages and progress on stderr.
//!
//! The only module allowed to print (the workspace denies `print_stdout` / `print_stderr`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How chatty the CLI is, resolved once from the global flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) quiet: bool,
    pub(crate) progress: bool,
}

impl Printer {
    pub(crate) fn new(quiet: bool, no_progress: bool) -> Self {
        let progress = !quiet && !no_progress && std::io::stderr().is_terminal();
        Printer { quiet, progress }
    }

    /// A line of data on stdout.
    pub(crate) fn out(&self, line: impl AsRef<str>) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_ref().as_bytes())?;
        out.write_all(b"\n")
    }

    /// Raw bytes on stdout.
    pub(crate) fn out_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// A summary or status line on stderr (suppressed by `--quiet`).
    pub(crate) fn info(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", line.as_ref());
        }
    }

    /// A warning on stderr (always shown).
    pub(crate) fn warn(&self, line: impl AsRef<str>) {
        eprintln!("warning: {}", line.as_ref());
    }

    /// A progress bar with a known length (hidden when not drawing progress).
    pub(crate) fn bar(&self, len: u64, msg: &str) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(len), self.target());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// A spinner counting items of unknown total.
    pub(crate) fn spinner(&self, msg: &str) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(None, self.target());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} {per_sec} [{elapsed}]")
                .expect("valid template"),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}

/// Prints an error chain once, `error: outer: inner: …`, plus a `hint:` line when one applies.
pub(crate) fn error(err: &anyhow::Error) {
    let chain: Vec<String> = err
        .chain()
        .filter(|e| !e.is::<Hint>())
        .map(ToString::to_string)
        .collect();
    eprintln!("error: {}", chain.join(": "));
    if let Some(hint) = err.chain().find_map(|e| e.downcast_ref::<Hint>()) {
        eprintln!("hint: {}", hint.0);
    }
}

/// An error that carries a hint for the user.
#[derive(Debug)]
pub(crate) struct Hint(pub(crate) String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hint {}

/// Writing to a closed pipe (`njp sql … | head`) is not an error.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
