//! Removal of Python bytecode pollution (and opt-in debris) from a tree, in parallel.
//!
//! [`prepare`] validates a root (and, with [`Scope::Context`], its `.dockerignore`) and opens
//! it; [`Prepared::run`] walks it and removes what the [`Rules`] name, returning a
//! [`CleanReport`]. [`clean`] does both for one root; a caller with several roots prepares them
//! all first, so a bad root fails the run before anything is removed. Nothing here prints: the
//! command renders the report, and `--json` is the same report serialised.
//!
//! Safety contract:
//! - The root is canonicalised once (a root given through a symlink is resolved, like `cd`)
//!   and opened once; the filesystem root `/` is refused. Everything below is reached from that
//!   handle: each directory is opened relative to its parent's handle without following a
//!   symlink (`openat(O_DIRECTORY|O_NOFOLLOW)`), each entry re-checked with `fstatat` (no
//!   follow) right before `unlinkat` on the same handle. A directory swapped for a symlink by
//!   another process during the run makes the open or the removal fail: it is reported, never
//!   followed (std's `remove_dir_all` after CVE-2022-21658 is the model; see `sys.rs`).
//! - Below the root nothing is followed: a symlink is an entry in its own right. A link named
//!   `x.pyc` is removed as a link (its target is never touched); a link named `__pycache__` is
//!   neither entered nor removed, and is reported kept.
//! - Nothing on another mount is entered or removed (like `rm --one-file-system`, and bind
//!   mounts of the same filesystem too where the kernel reports mount ids), unless
//!   [`CleanOptions::cross_filesystems`]; such directories are reported skipped. Where the
//!   kernel has `openat2`, the open itself refuses a mount point (`RESOLVE_NO_XDEV`); elsewhere
//!   each opened directory's `statx` is compared with the root's.
//! - A `__pycache__` directory, or a debris/`--erase` directory, is removed only once the rules
//!   have emptied it; the root itself is never removed.
//! - A failure to remove or read one path is recorded with its path and the run goes on; the
//!   caller maps [`CleanReport::failures`] to a non-zero exit.
//! - `.git`, `.hg` and `.svn` are never entered, whatever rule or glob names them. Virtualenvs
//!   are skipped unless `include_venv`, also when a debris name or an `--erase` glob (even
//!   `**`) matches them — except the environments inside `.tox`/`.nox`, which are that topic's
//!   debris. A directory is a virtualenv when it holds a `pyvenv.cfg` (PEP 405; venv,
//!   virtualenv, uv and poetry all write one). Names alone are not trusted — the standard
//!   library itself ships a `venv` package with a `__pycache__`.

pub mod rules;
mod sys;
mod walk;

pub use rules::{KeptReason, Rule, Rules, RulesError, TOPICS};
pub use walk::Seen;

use crate::context::EntryKind;
use crate::diagnostics::Diagnose;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether to remove, or only to say what would be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Remove,
    /// `--dry-run`: remove nothing, list what would go.
    DryRun,
    /// `--check`: remove nothing; the caller exits 1 when anything would go.
    Check,
}

impl Mode {
    pub fn removes(self) -> bool {
        self == Mode::Remove
    }
}

/// Which part of the tree to clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything below the root (minus `.git` and virtualenvs).
    Tree,
    /// Only what Docker would send as the build context (the root's `.dockerignore` applies).
    Context,
}

/// What to clean and how.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// The root as the user gave it.
    pub root: PathBuf,
    pub rules: Rules,
    pub mode: Mode,
    pub scope: Scope,
    /// Threads walking the tree.
    pub walk_threads: usize,
    /// Threads while removing (the walk and the removal share one pool, so this many when it
    /// is larger). Removal waits on the filesystem's journal and directory locks, not the CPU,
    /// so more threads than cores can pay off (see `scripts/bench-clean.sh`).
    pub remove_threads: usize,
    /// Also enter directories on other mounts below the root (`--cross-filesystems`).
    pub cross_filesystems: bool,
}

/// The default number of removal threads for `cpus` walk threads: measured, not guessed.
///
/// On the 2-core benchmark machine (ext4 mounted with `discard`, where every unlink waits for
/// a discard), the CPython corpus took ~1.9 s with 2 threads, ~1.7 s with 4 and ~1.1–1.4 s
/// with 8 to 64 (noisy); single-threaded tools take 2–50 s there. Eight per CPU sits in the
/// flat part of that curve; the threads mostly sleep in the kernel, so they cost little.
pub fn default_remove_threads(cpus: usize) -> usize {
    (cpus * 8).clamp(8, 64)
}

/// Receives progress from worker threads. The library never draws; the command decides how.
pub trait Progress: Sync {
    /// `entries` entries have been walked so far.
    fn walking(&self, _entries: u64) {}
    /// `done` of `total` removals have been attempted.
    fn removing(&self, _done: u64, _total: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// One path removed (or, without [`Mode::Remove`], that would be removed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// Relative to the root.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub kind: EntryKind,
    pub rule: Rule,
    /// Apparent size (`lstat`) of a file or symlink; 0 for directories.
    pub bytes: u64,
}

/// A path a rule names that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub reason: KeptReason,
}

/// A directory not entered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Holds a `pyvenv.cfg`; pass `--include-venv` to clean it.
    Virtualenv,
    /// On another mount than the root; pass `--cross-filesystems` to clean it.
    OtherFilesystem,
}

/// A path that could not be read or removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub error: String,
}

/// What one run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CleanReport {
    /// The canonical root.
    #[serde(serialize_with = "lossy")]
    pub root: PathBuf,
    pub mode: Mode,
    /// Files and symlinks removed.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
    /// Bytes of the files removed (apparent sizes).
    pub bytes: u64,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    /// Every path removed, sorted by path bytes (what would go, without [`Mode::Remove`]).
    pub removed: Vec<Removed>,
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
    pub failures: Vec<Failure>,
}

impl CleanReport {
    /// Whether the tree held nothing to remove.
    pub fn is_clean(&self) -> bool {
        self.removed.is_empty()
    }
}

fn lossy<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&p.display())
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Why a run could not start. Problems with single paths are [`Failure`]s, not errors.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("cannot clean {}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clean {}: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("refusing to clean the filesystem root ({})", path.display())]
    FilesystemRoot { path: PathBuf },
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("cannot list the build context of {}", root.display())]
    Context {
        root: PathBuf,
        #[source]
        source: crate::context::ContextError,
    },
}

impl Diagnose for CleanError {
    fn hint(&self) -> Option<String> {
        match self {
            CleanError::Root { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some("check the path: it must be an existing directory".into())
            }
            CleanError::NotADirectory { .. } => {
                Some("give the directory that holds the files instead".into())
            }
            CleanError::FilesystemRoot { .. } => {
                Some("name the project directory to clean instead".into())
            }
            CleanError::Rules(e) => e.hint(),
            _ => None,
        }
    }
}

/// Resolves a root as given by the user: canonical, a directory, not `/`.
pub fn resolve_root(given: &Path) -> Result<PathBuf, CleanError> {
    let canon = std::fs::canonicalize(given).map_err(|source| CleanError::Root {
        path: given.to_path_buf(),
        source,
    })?;
    let md = std::fs::metadata(&canon).map_err(|source| CleanError::Root {
        path: given.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(CleanError::NotADirectory {
            path: given.to_path_buf(),
        });
    }
    if canon.parent().is_none() {
        return Err(CleanError::FilesystemRoot {
            path: given.to_path_buf(),
        });
    }
    Ok(canon)
}

/// A root validated and opened, ready to clean.
#[derive(Debug)]
pub struct Prepared {
    root: PathBuf,
    dir: sys::Dir,
    stat: sys::DirStat,
    rules: Rules,
    mode: Mode,
    threads: usize,
    cross_filesystems: bool,
    /// With [`Scope::Context`]: the paths Docker would send (and their ancestors).
    only: Option<std::collections::HashSet<PathBuf>>,
    /// What the context scan could not read (it could not be cleaned either).
    failures: Vec<Failure>,
}

/// Validates and opens one root: canonical, a directory, not `/`, and with
/// [`Scope::Context`] a context that can be listed (its `.dockerignore` parses). Removes
/// nothing.
pub fn prepare(opts: &CleanOptions) -> Result<Prepared, CleanError> {
    let root = resolve_root(&opts.root)?;
    let open_err = |source| CleanError::Root {
        path: opts.root.clone(),
        source,
    };
    let dir = sys::Dir::open_root(&root).map_err(open_err)?;
    let stat = dir.stat().map_err(open_err)?;
    let (only, failures) = match opts.scope {
        Scope::Tree => (None, Vec::new()),
        Scope::Context => {
            let ctx = crate::context::scan(&crate::context::ContextOptions {
                root: root.clone(),
                dockerfile: None,
                buildkit: false,
                threads: opts.walk_threads.max(1),
            })
            .map_err(|source| CleanError::Context {
                root: opts.root.clone(),
                source,
            })?;
            let failures = ctx
                .issues
                .into_iter()
                .filter(|i| i.kind == crate::context::IssueKind::Unreadable)
                .map(|i| Failure {
                    path: i.path,
                    error: i.message,
                })
                .collect();
            (Some(walk::context_paths(&ctx.entries)), failures)
        }
    };
    let threads = if opts.mode.removes() {
        opts.walk_threads.max(opts.remove_threads)
    } else {
        opts.walk_threads
    };
    Ok(Prepared {
        root,
        dir,
        stat,
        rules: opts.rules.clone(),
        mode: opts.mode,
        threads: threads.max(1),
        cross_filesystems: opts.cross_filesystems,
        only,
        failures,
    })
}

impl Prepared {
    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cleans the root. `seen` is shared by the roots of one run, so that without
    /// [`Mode::Remove`] a path under two overlapping roots (`a` and `a/sub`, or the same root
    /// twice) is reported once, by the first.
    pub fn run(self, progress: &dyn Progress, seen: &Seen) -> CleanReport {
        let start = Instant::now();
        let walk = walk::Walk {
            rules: &self.rules,
            mode: self.mode,
            root: self.stat,
            cross_filesystems: self.cross_filesystems,
            only: self.only.as_ref(),
            seen,
            progress,
        };
        let out = walk.run(self.dir, self.threads);
        let walk::Out {
            mut removed,
            mut kept,
            mut skipped,
            mut failures,
        } = out;
        failures.extend(self.failures);
        let by_bytes = |a: &Path, b: &Path| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes());
        removed.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
        kept.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
        skipped.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
        failures.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
        let (mut files, mut dirs, mut bytes) = (0, 0, 0);
        for r in &removed {
            if r.kind == EntryKind::Dir {
                dirs += 1;
            } else {
                files += 1;
                bytes += r.bytes;
            }
        }
        CleanReport {
            root: self.root,
            mode: self.mode,
            files,
            dirs,
            bytes,
            elapsed: start.elapsed(),
            removed,
            kept,
            skipped,
            failures,
        }
    }
}

/// Cleans one root.
pub fn clean(opts: &CleanOptions, progress: &dyn Progress) -> Result<CleanReport, CleanError> {
    Ok(prepare(opts)?.run(progress, &Seen::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_root_is_refused() {
        let e = resolve_root(Path::new("/")).unwrap_err();
        assert!(matches!(e, CleanError::FilesystemRoot { .. }));
        assert!(e.hint().is_some());
        // Also when spelled another way.
        let e = resolve_root(Path::new("/tmp/..")).unwrap_err();
        assert!(matches!(e, CleanError::FilesystemRoot { .. }));
    }

    #[test]
    fn missing_and_non_directory_roots() {
        let t = tempfile::tempdir().unwrap();
        let e = resolve_root(&t.path().join("nope")).unwrap_err();
        assert!(matches!(e, CleanError::Root { .. }));
        assert!(e.hint().unwrap().contains("existing directory"));
        std::fs::write(t.path().join("f"), "").unwrap();
        let e = resolve_root(&t.path().join("f")).unwrap_err();
        assert!(matches!(e, CleanError::NotADirectory { .. }));
    }

    #[test]
    fn remove_threads_default_is_bounded() {
        assert_eq!(default_remove_threads(1), 8);
        assert_eq!(default_remove_threads(2), 16);
        assert_eq!(default_remove_threads(64), 64);
    }
}
