//! How `clean` reads: removed paths on stdout for `--dry-run`/`--check`, failures as warnings,
//! a summary on stderr, or the same reports as JSON. Paths are relative to the root; with
//! several roots, prefixed by the root as given.

use super::printer::Printer;
use super::theme::{bytes as human_bytes, plural};
use super::Verbosity;
use ctxbuild::clean::{self, CleanReport, Mode};
use ctxbuild::context::EntryKind;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// A path for people: relative to the root, prefixed by the root as given when there are several.
fn shown(given: &Path, rel: &Path, several: bool) -> PathBuf {
    if several && given != Path::new(".") {
        given.join(rel)
    } else {
        rel.to_path_buf()
    }
}

pub fn render(
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
        let more = if printer.ui.verbosity >= Verbosity::Verbose {
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

/// `--json`: the reports themselves, with the root as given and the totals.
#[derive(serde::Serialize)]
pub struct JsonOut<'a> {
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
    pub fn new(mode: Mode, reports: &'a [(PathBuf, CleanReport)]) -> JsonOut<'a> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
