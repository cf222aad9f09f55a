//! `ctxbuild clean [DIR…]`: turns the arguments into [`CleanOptions`], runs
//! [`ctxbuild::clean::clean`] on each root and renders the reports: paths on stdout for
//! `--dry-run`/`--check`, a summary on stderr, or the same reports as JSON.
//!
//! Paths are shown relative to the root; with several roots, prefixed by the root as given.

use crate::cli::CleanArgs;
use ctxbuild::clean::{
    self, default_remove_threads, CleanOptions, CleanReport, Mode, Progress, Rules, Scope,
};
use ctxbuild::config::{ProgressMode, Verbosity};
use ctxbuild::context::sizes::human_bytes;
use ctxbuild::context::EntryKind;
use ctxbuild::diagnostics::diagnose;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

pub fn run(args: &CleanArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let rules =
        Rules::new(&args.debris, &args.erase, &args.keep, args.include_venv).map_err(diagnose)?;
    let mode = if args.check {
        Mode::Check
    } else if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Remove
    };
    let dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.dirs.clone()
    };
    let walk_threads = printer.config.threads;
    let remove_threads = args
        .remove_threads
        .map(usize::from)
        .unwrap_or_else(|| default_remove_threads(walk_threads));
    // Every root (and with --context-only its .dockerignore) must be valid before anything is
    // removed from any of them.
    let mut prepared = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        let opts = CleanOptions {
            root: dir.clone(),
            rules: rules.clone(),
            mode,
            scope: if args.context_only {
                Scope::Context
            } else {
                Scope::Tree
            },
            walk_threads,
            remove_threads,
            cross_filesystems: args.cross_filesystems,
        };
        prepared.push((dir.clone(), clean::prepare(&opts).map_err(diagnose)?));
    }

    let bars = (printer.config.progress == ProgressMode::Bars && !args.json).then(Bars::new);
    let seen = clean::Seen::default();
    let mut reports: Vec<(PathBuf, CleanReport)> = Vec::new();
    for (dir, root) in prepared {
        let progress: &dyn Progress = match &bars {
            Some(b) => b,
            None => &clean::NoProgress,
        };
        reports.push((dir, root.run(progress, &seen)));
    }
    if let Some(b) = bars {
        b.bar.finish_and_clear();
    }

    let failed = reports.iter().any(|(_, r)| !r.failures.is_empty());
    let found = reports.iter().any(|(_, r)| !r.is_clean());
    if args.json {
        printer.json(&JsonOut::new(mode, &reports))?;
    } else {
        render(printer, mode, &reports)?;
    }
    Ok(if failed {
        ExitStatus::Error
    } else if mode == Mode::Check && found {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

/// A path for people: relative to the root, prefixed by the root as given when there are several.
fn shown(given: &Path, rel: &Path, several: bool) -> PathBuf {
    if several && given != Path::new(".") {
        given.join(rel)
    } else {
        rel.to_path_buf()
    }
}

fn render(
    printer: &mut Printer,
    mode: Mode,
    reports: &[(PathBuf, CleanReport)],
) -> anyhow::Result<()> {
    let several = reports.len() > 1;
    if !mode.removes() {
        for (given, r) in reports {
            for x in &r.removed {
                let mut line = shown(given, &x.path, several).into_os_string().into_vec();
                if x.kind == EntryKind::Dir {
                    line.push(b'/');
                }
                line.push(b'\n');
                printer.bytes(&line)?;
            }
        }
    }
    for (given, r) in reports {
        for f in &r.failures {
            let p = shown(given, &f.path, several);
            let verb = if mode.removes() { "remove" } else { "read" };
            // Always shown, even with --quiet: every failure is named with its path.
            printer.warn(&format!("cannot {verb} {}: {}", p.display(), f.error));
        }
        for k in &r.kept {
            let why = match k.reason {
                clean::KeptReason::Keep => "protected by --keep",
                clean::KeptReason::NotPollution => "not bytecode",
                clean::KeptReason::NotEmpty => "not empty",
                clean::KeptReason::Symlink => "symlink, not followed",
            };
            printer.verbose(&format!(
                "kept {} ({why})",
                shown(given, &k.path, several).display()
            ));
        }
        for s in &r.skipped {
            let why = match s.reason {
                clean::SkipReason::Virtualenv => "virtualenv; --include-venv cleans it",
                clean::SkipReason::OtherFilesystem => {
                    "another filesystem; --cross-filesystems cleans it"
                }
            };
            printer.verbose(&format!(
                "skipped {} ({why})",
                shown(given, &s.path, several).display()
            ));
        }
    }
    let sum = |f: fn(&CleanReport) -> u64| reports.iter().map(|(_, r)| f(r)).sum::<u64>();
    let (files, dirs, bytes) = (sum(|r| r.files), sum(|r| r.dirs), sum(|r| r.bytes));
    let kept = sum(|r| r.kept.len() as u64);
    let skipped_as = |reason| {
        reports
            .iter()
            .flat_map(|(_, r)| &r.skipped)
            .filter(|s| s.reason == reason)
            .count() as u64
    };
    let skipped = skipped_as(clean::SkipReason::Virtualenv);
    let mounts = skipped_as(clean::SkipReason::OtherFilesystem);
    let failures = sum(|r| r.failures.len() as u64);
    let secs: f64 = reports.iter().map(|(_, r)| r.elapsed.as_secs_f64()).sum();
    let what = format!(
        "{} and {} ({})",
        plural(files, "file"),
        plural(dirs, "directory"),
        human_bytes(bytes)
    );
    let head = match mode {
        Mode::Remove => format!("removed {what} in {secs:.2}s"),
        Mode::DryRun => format!("would remove {what}"),
        Mode::Check if files + dirs == 0 => "no pollution found".to_string(),
        Mode::Check => format!("found {what} of pollution"),
    };
    printer.info(&head);
    if kept > 0 {
        let more = if printer.config.verbosity >= Verbosity::Verbose {
            ""
        } else {
            " (-v lists them)"
        };
        printer.info(&format!("kept {}{more}", plural(kept, "path")));
    }
    if skipped > 0 {
        printer.info(&format!(
            "skipped {} (--include-venv cleans them)",
            plural(skipped, "virtualenv")
        ));
    }
    if mounts > 0 {
        printer.info(&format!(
            "skipped {} on other filesystems (--cross-filesystems cleans them)",
            plural(mounts, "path")
        ));
    }
    if failures > 0 {
        printer.warn(&format!(
            "{} could not be cleaned (listed above)",
            plural(failures, "path")
        ));
    }
    if mode == Mode::Check && files + dirs > 0 {
        printer.info("hint: run `ctxbuild clean` to remove it");
    }
    Ok(())
}

fn plural(n: u64, word: &str) -> String {
    match (n, word) {
        (1, _) => format!("1 {word}"),
        (_, "directory") => format!("{n} directories"),
        _ => format!("{n} {word}s"),
    }
}

/// `--json`: the reports themselves, with the root as given and the totals.
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    mode: Mode,
    files: u64,
    dirs: u64,
    bytes: u64,
    failures: usize,
    roots: Vec<JsonRoot<'a>>,
}

#[derive(serde::Serialize)]
struct JsonRoot<'a> {
    dir: String,
    #[serde(flatten)]
    report: &'a CleanReport,
}

impl<'a> JsonOut<'a> {
    fn new(mode: Mode, reports: &'a [(PathBuf, CleanReport)]) -> JsonOut<'a> {
        JsonOut {
            mode,
            files: reports.iter().map(|(_, r)| r.files).sum(),
            dirs: reports.iter().map(|(_, r)| r.dirs).sum(),
            bytes: reports.iter().map(|(_, r)| r.bytes).sum(),
            failures: reports.iter().map(|(_, r)| r.failures.len()).sum(),
            roots: reports
                .iter()
                .map(|(d, r)| JsonRoot {
                    dir: d.display().to_string(),
                    report: r,
                })
                .collect(),
        }
    }
}

/// The live display: a spinner while walking, a bar while removing. Only made when the
/// resolved configuration says bars (a terminal on stderr, not `--quiet`).
struct Bars {
    bar: indicatif::ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message("scanning");
        Bars { bar }
    }
}

impl Progress for Bars {
    fn walking(&self, entries: u64) {
        self.bar.set_message(format!("scanned {entries} entries"));
        self.bar.tick();
    }

    fn removing(&self, done: u64, total: u64) {
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
            self.bar.set_message("removing");
        }
        self.bar.set_position(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_plurals() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(plural(1, "directory"), "1 directory");
        assert_eq!(plural(2, "directory"), "2 directories");
        assert_eq!(plural(0, "file"), "0 files");
    }

    #[test]
    fn paths_are_relative_to_the_root() {
        let rel = Path::new("a/__pycache__");
        assert_eq!(shown(Path::new("api"), rel, false), rel);
        assert_eq!(
            shown(Path::new("api"), rel, true),
            Path::new("api/a/__pycache__")
        );
        assert_eq!(shown(Path::new("."), rel, true), rel);
    }
}
