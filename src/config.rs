//! Global settings resolved once from the command line and the environment.
//!
//! No other module reads environment variables about presentation or asks whether a stream is a
//! terminal: they receive a [`GlobalConfig`]. This keeps the library testable and `--json` honest.

use std::io::IsTerminal;
use std::path::PathBuf;

/// When to use colour, as given by `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How to show progress, as given by `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressChoice {
    /// Live bars on a terminal, plain lines elsewhere.
    Auto,
    /// Live bars (only drawn on a terminal).
    Tty,
    /// One plain line per event, for CI and Cloud Build logs.
    Plain,
    /// No progress output at all.
    None,
}

/// How chatty to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// How progress is actually shown, after looking at the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bars,
    Plain,
    Off,
}

/// Settings every command receives, decided once.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// Colour on stderr (diagnostics, summaries).
    pub color: bool,
    pub progress: ProgressMode,
    pub verbosity: Verbosity,
    /// Worker threads for walking, hashing and removing; never 0.
    pub threads: usize,
}

impl GlobalConfig {
    /// Resolves the user's choices against the environment (`NO_COLOR`, `CI`, terminals).
    pub fn resolve(
        color: ColorChoice,
        progress: ProgressChoice,
        quiet: bool,
        verbose: u8,
        threads: Option<usize>,
    ) -> GlobalConfig {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_tty && !no_color,
        };
        let verbosity = if quiet {
            Verbosity::Quiet
        } else if verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let progress = match (progress, verbosity) {
            (_, Verbosity::Quiet) | (ProgressChoice::None, _) => ProgressMode::Off,
            (ProgressChoice::Plain, _) => ProgressMode::Plain,
            (ProgressChoice::Tty, _) if stderr_tty => ProgressMode::Bars,
            (ProgressChoice::Tty, _) => ProgressMode::Off,
            (ProgressChoice::Auto, _) if stderr_tty => ProgressMode::Bars,
            (ProgressChoice::Auto, _) => ProgressMode::Plain,
        };
        let threads = threads
            .filter(|&t| t > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        GlobalConfig {
            color,
            progress,
            verbosity,
            threads,
        }
    }

    /// A configuration for tests and library callers: no colour, no progress, default threads.
    pub fn plain() -> GlobalConfig {
        GlobalConfig {
            color: false,
            progress: ProgressMode::Off,
            verbosity: Verbosity::Normal,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// ctxbuild's cache directory (stat caches, saved build plans): `$CTXBUILD_CACHE_DIR` when set
/// and not empty, else the user cache directory's `ctxbuild/`; `None` when neither exists.
pub fn cache_root() -> Option<PathBuf> {
    std::env::var_os("CTXBUILD_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("ctxbuild")))
}

/// The mtime of every entry of the context tar: `SOURCE_DATE_EPOCH` when set, else 0. A value
/// that is not a number of seconds is an error (a silent 0 would hide the typo and change the
/// image digest the user is trying to pin).
pub fn tar_mtime() -> Result<u64, String> {
    let value = std::env::var_os("SOURCE_DATE_EPOCH").map(|v| v.to_string_lossy().into_owned());
    Ok(crate::fsutil::source_date_epoch(value.as_deref())?.unwrap_or(0))
}
