//! The only place that writes to the terminal.
//!
//! Results go to stdout; diagnostics, summaries and progress to stderr. A closed stdout (`| head`)
//! is not an error: [`Printer::out`] reports it as [`Closed`] so the command can stop quietly.

use crate::config::{GlobalConfig, Verbosity};
use std::io::{self, Write};

/// stdout was closed by the reader (broken pipe); stop producing output, exit successfully.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
pub struct Closed;

/// Writes results and messages according to the resolved configuration.
pub struct Printer {
    out: io::BufWriter<io::Stdout>,
    pub config: GlobalConfig,
}

impl Printer {
    pub fn new(config: GlobalConfig) -> Printer {
        Printer {
            out: io::BufWriter::new(io::stdout()),
            config,
        }
    }

    /// Writes one line of results to stdout.
    pub fn line(&mut self, s: &str) -> Result<(), Closed> {
        self.bytes(s.as_bytes())?;
        self.bytes(b"\n")
    }

    /// Writes raw bytes of results to stdout (paths may not be UTF-8).
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Closed> {
        self.out.write_all(b).map_err(|_| Closed)
    }

    /// Writes a value as pretty JSON plus a newline to stdout.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), Closed> {
        let text = serde_json::to_string_pretty(value).map_err(|_| Closed)?;
        self.line(&text)
    }

    /// Flushes stdout; call before exiting.
    pub fn flush(&mut self) -> Result<(), Closed> {
        self.out.flush().map_err(|_| Closed)
    }

    /// A human message on stderr, unless `--quiet`.
    pub fn info(&self, s: &str) {
        if self.config.verbosity >= Verbosity::Normal {
            eprintln!("{s}");
        }
    }

    /// A detail on stderr, only with `-v`.
    pub fn verbose(&self, s: &str) {
        if self.config.verbosity >= Verbosity::Verbose {
            eprintln!("{s}");
        }
    }

    /// A warning on stderr (always shown, even with `--quiet`).
    pub fn warn(&self, s: &str) {
        if self.config.color {
            let label = console::Style::new().yellow().bold().force_styling(true);
            eprintln!("{} {s}", label.apply_to("warning:"));
        } else {
            eprintln!("warning: {s}");
        }
    }

    /// Colours text for stderr when colour is on.
    pub fn paint(&self, s: &str, style: console::Style) -> String {
        if self.config.color {
            style.force_styling(true).apply_to(s).to_string()
        } else {
            s.to_string()
        }
    }
}
