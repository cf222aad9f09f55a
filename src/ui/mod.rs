//! Everything that talks to a person: the printer (stdout results, stderr messages), progress
//! renderers (the library's event sink), colours, error rendering and exit statuses.
//!
//! Presentation settings ([`UiConfig`]) are resolved once in `main` from the flags and the
//! environment (`NO_COLOR`, terminals) and never reach the library.

pub mod clean;
pub mod diagnostics;
pub mod exit;
pub mod printer;
pub mod progress;
pub mod report;
pub mod smoke;
pub mod theme;

use std::io::IsTerminal;

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

/// When to use colour, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// How to show progress, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressWhen {
    Auto,
    Tty,
    Plain,
    None,
}

/// Presentation, decided once.
#[derive(Debug, Clone, Copy)]
pub struct UiConfig {
    /// Colour on stderr (diagnostics, summaries).
    pub color: bool,
    pub progress: ProgressMode,
    pub verbosity: Verbosity,
}

impl UiConfig {
    /// Resolves the user's choices against the environment (`NO_COLOR`, terminals).
    pub fn resolve(color: ColorWhen, progress: ProgressWhen, quiet: bool, verbose: u8) -> UiConfig {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => stderr_tty && !no_color,
        };
        let verbosity = if quiet {
            Verbosity::Quiet
        } else if verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let progress = match (progress, verbosity) {
            (_, Verbosity::Quiet) | (ProgressWhen::None, _) => ProgressMode::Off,
            (ProgressWhen::Plain, _) => ProgressMode::Plain,
            (ProgressWhen::Tty, _) if stderr_tty => ProgressMode::Bars,
            (ProgressWhen::Tty, _) => ProgressMode::Off,
            (ProgressWhen::Auto, _) if stderr_tty => ProgressMode::Bars,
            (ProgressWhen::Auto, _) => ProgressMode::Plain,
        };
        UiConfig {
            color,
            progress,
            verbosity,
        }
    }
}
