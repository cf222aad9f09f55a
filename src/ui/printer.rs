//! The only writer of stdout, and of stderr messages outside progress.
//!
//! Results go to stdout; diagnostics, summaries and progress to stderr. Only a reader that went
//! away (`| head`, a broken pipe) is graceful: [`WriteError::Closed`] lets the command stop
//! quietly. Any other write error (a full disk, `/dev/full`) is [`WriteError::Failed`], an
//! error with its cause and a non-zero exit — including one that only shows at the final flush.

use super::{theme, UiConfig, Verbosity};
use std::io::{self, Write};

/// Why stdout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The reader closed the pipe: stop producing output, exit successfully.
    #[error("stdout closed")]
    Closed,
    /// Anything else: the output is incomplete.
    #[error("cannot write to stdout")]
    Failed(#[source] io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> WriteError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            WriteError::Closed
        } else {
            WriteError::Failed(e)
        }
    }
}

/// Writes results and messages according to the resolved configuration.
pub struct Printer {
    out: io::BufWriter<io::Stdout>,
    pub ui: UiConfig,
}

impl Printer {
    pub fn new(ui: UiConfig) -> Printer {
        Printer {
            out: io::BufWriter::new(io::stdout()),
            ui,
        }
    }

    /// Writes one line of results to stdout.
    pub fn line(&mut self, s: &str) -> Result<(), WriteError> {
        self.bytes(s.as_bytes())?;
        self.bytes(b"\n")
    }

    /// Writes raw bytes of results to stdout (paths may not be UTF-8).
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), WriteError> {
        Ok(self.out.write_all(b)?)
    }

    /// Writes a value as pretty JSON plus a newline to stdout.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), WriteError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| WriteError::Failed(io::Error::other(e)))?;
        self.line(&text)
    }

    /// Flushes stdout; `main` calls it before exiting and checks the result.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        Ok(self.out.flush()?)
    }

    /// A human message on stderr, unless `--quiet`.
    pub fn info(&self, s: &str) {
        if self.ui.verbosity >= Verbosity::Normal {
            eprintln!("{s}");
        }
    }

    /// A detail on stderr, only with `-v`.
    pub fn verbose(&self, s: &str) {
        if self.ui.verbosity >= Verbosity::Verbose {
            eprintln!("{s}");
        }
    }

    /// A warning on stderr (always shown, even with `--quiet`).
    pub fn warn(&self, s: &str) {
        eprintln!(
            "{} {s}",
            self.paint("warning:", console::Style::new().yellow().bold())
        );
    }

    /// Colours text for stderr when colour is on.
    pub fn paint(&self, s: &str, style: console::Style) -> String {
        theme::paint(self.ui.color, s, style)
    }
}

/// stdout as an [`io::Write`] for streaming writers (the context tar): errors keep their kind,
/// so a closed pipe stays `BrokenPipe` and a full disk stays what it is.
pub struct Stdout<'a>(pub &'a mut Printer);

impl Write for Stdout<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.out.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}
