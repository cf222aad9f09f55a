//! The Docker-faithful model of a build context.
//!
//! Given a context directory and a Dockerfile, [`scan`] returns the sorted entries Docker's
//! classic builder would see in `COPY . /dst/`, applying `.dockerignore` exactly as the Docker CLI
//! does. This module never removes, hashes or prints anything.
//!
//! What the classic builder does, and what [`Context`] records of it:
//! 1. The CLI reads `<ctx>/.dockerignore` and walks the context with those patterns, plus
//!    `!.dockerignore` and `!<Dockerfile>` appended when the patterns exclude them, so both are
//!    always sent. Excluded directories are entered only when an exception may match below
//!    them; such a directory is not sent itself, and the daemon recreates it (mode 0755) when
//!    it unpacks something below it ([`Context::implied_dirs`]).
//! 2. The daemon deletes the Dockerfile and `.dockerignore` again when the patterns exclude
//!    them, before any `COPY` ([`Context::hidden`]).
//!
//! [`Context::entries`] is what `COPY . /dst/` sees; [`Context::sent`] is what the tar carries.
//! With [`ContextOptions::buildkit`], a `<Dockerfile>.dockerignore` next to the Dockerfile wins
//! over `.dockerignore` and nothing is force-sent (BuildKit transfers the Dockerfile apart).

pub mod dockerignore;
pub mod entry;
pub mod sizes;
mod walk;

pub use dockerignore::{MatchInfo, Matcher, Pattern, PatternError, PatternErrorKind};
pub use entry::{Entry, EntryKind, SendList, Sendable, StatInfo};

use crate::diagnostics::ErrorClass;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The mode the daemon gives a directory it creates for an entry whose parent was not sent.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// What to scan.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// The context root.
    pub root: PathBuf,
    /// The Dockerfile, relative to the current directory as with `docker build -f`; `None`
    /// means `<root>/Dockerfile` (or `<root>/dockerfile` when only that exists).
    pub dockerfile: Option<PathBuf>,
    /// Honour BuildKit's `<Dockerfile>.dockerignore` next to the Dockerfile.
    pub buildkit: bool,
    /// Walker threads.
    pub threads: usize,
}

impl ContextOptions {
    /// Options for `root` with the default Dockerfile, the classic builder and default threads.
    pub fn new(root: impl Into<PathBuf>) -> ContextOptions {
        ContextOptions {
            root: root.into(),
            dockerfile: None,
            buildkit: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What kind of trouble a [`ScanIssue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// Cannot be stat'ed, listed or read. `docker build` fails on these ("error checking
    /// context"), so the run should end non-zero.
    Unreadable,
    /// A socket: the Docker CLI leaves it out of the tar, and so does ctxbuild. (Named pipes
    /// and devices are entries: see [`EntryKind::Fifo`].)
    Special,
    /// The Dockerfile is not in what Docker sends ("Cannot locate specified Dockerfile").
    DockerfileNotSent,
}

/// An entry that could not be scanned; the scan went on without it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanIssue {
    /// Relative to the context root (`.` for the root itself).
    pub path: PathBuf,
    pub kind: IssueKind,
    pub message: String,
}

impl fmt::Display for ScanIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The context as Docker sees it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The canonical context root.
    pub root: PathBuf,
    /// Every entry visible to `COPY . /dst/` (files, symlinks, directories, named pipes and
    /// device nodes), sorted by path bytes.
    /// Directories listed in [`Context::implied_dirs`] carry [`IMPLIED_DIR_MODE`].
    pub entries: Vec<Entry>,
    /// Entries Docker sends but deletes before `COPY` (an excluded Dockerfile or
    /// `.dockerignore`), sorted by path bytes.
    pub hidden: Vec<Entry>,
    /// Directories in [`Context::entries`] that Docker does not send: excluded, but holding
    /// re-included entries; the daemon creates them. Sorted by path bytes.
    pub implied_dirs: Vec<PathBuf>,
    /// The Dockerfile relative to the root (`/`-separated), when it is inside the context.
    pub dockerfile: Option<PathBuf>,
    /// The ignore file that was applied, relative to the root when inside it.
    pub ignore_file: Option<PathBuf>,
    /// The patterns that were applied (empty without an ignore file).
    pub matcher: Matcher,
    /// Entries that could not be scanned, sorted by path.
    pub issues: Vec<ScanIssue>,
}

impl Context {
    /// The entry at `path` (relative, `/`-separated) as `COPY` sees it.
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        find(&self.entries, path)
    }

    /// Everything but directories visible to `COPY . /dst/` (regular files, symlinks, pipes and
    /// devices), in path order. Only [`EntryKind::File`] entries may be opened and read.
    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.kind != EntryKind::Dir)
    }

    /// What the CLI puts in the context tar, in path order: the visible entries without the
    /// implied directories, plus the hidden ones.
    pub fn sent(&self) -> Vec<&Entry> {
        self.sent_of(&self.entries, &self.hidden)
    }

    /// [`Context::sent`] of another list of the same entries: `visible` stands for
    /// [`Context::entries`] (a keyed manifest of them, say) and `hidden` for
    /// [`Context::hidden`], in whatever records hold them.
    pub fn sent_of<'a, R: Sendable>(&self, visible: &'a [R], hidden: &'a [R]) -> Vec<&'a R> {
        let mut out: Vec<&R> = visible
            .iter()
            .filter(|e| {
                e.kind() != EntryKind::Dir
                    || self
                        .implied_dirs
                        .binary_search_by(|d| d.as_os_str().as_bytes().cmp(e.path_bytes()))
                        .is_err()
            })
            .chain(hidden.iter())
            .collect();
        out.sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        out
    }

    /// Whether `COPY` can see `path` (relative, `/`-separated; it need not exist): neither it
    /// nor a directory Docker does not enter above it is excluded by `.dockerignore`, and it is
    /// not the excluded Dockerfile or `.dockerignore` the daemon deletes.
    pub fn visible(&self, path: &[u8]) -> bool {
        !self.matcher.is_excluded(path)
    }

    /// `path` (as given on the command line) relative to the root when it lies inside the
    /// context (see [`inside`]).
    pub fn relative(&self, path: &Path) -> Option<PathBuf> {
        inside(&self.root, path)
    }

    /// Where a file written at `path` would join what `COPY .` sees: its path relative to the
    /// root when it lies inside the context and `.dockerignore` does not exclude it. `plan
    /// --save` and `explain --since` warn about such a plan file: it changes the context.
    pub fn exposes(&self, path: &Path) -> Option<PathBuf> {
        self.relative(path)
            .filter(|rel| self.visible(rel.as_os_str().as_bytes()))
    }

    /// True when some entry could not be read (Docker would refuse to build).
    pub fn has_unreadable(&self) -> bool {
        self.issues.iter().any(|i| i.kind == IssueKind::Unreadable)
    }
}

/// `path` relative to the canonical `root` when it lies inside it, compared through its
/// canonical parent directory (the file itself need not exist) so `./x`, `sub/../x` and
/// absolute spellings agree; `None` when it lies outside.
pub fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).ok()?;
    dir.join(path.file_name()?)
        .strip_prefix(root)
        .ok()
        .map(Path::to_path_buf)
}

/// The permission bits `COPY` gives the copy of an entry in the image.
///
/// The classic builder chowns every copied file to root after setting its mode, and Linux
/// then clears setuid, and setgid when group-execute is set, on regular files (verified against
/// the engine in `tests/context_fidelity.rs`). Directories and sticky bits keep theirs.
/// [`Entry::mode`] stays the mode in the context, which is what the build's cache sees.
pub fn copy_mode(e: &Entry) -> u32 {
    if e.kind != EntryKind::File {
        return e.mode;
    }
    let mut m = e.mode & !0o4000;
    if m & 0o010 != 0 {
        m &= !0o2000;
    }
    m
}

fn find<'e>(entries: &'e [Entry], path: &[u8]) -> Option<&'e Entry> {
    entries
        .binary_search_by(|e| e.path_bytes().cmp(path))
        .ok()
        .map(|i| &entries[i])
}

/// Why a context could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context `{}` does not exist", .0.display())]
    RootNotFound(PathBuf),
    #[error("build context `{}` is not a directory", .0.display())]
    RootNotDir(PathBuf),
    #[error("cannot read build context `{}`", .path.display())]
    RootUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Dockerfile `{}` does not exist", .0.display())]
    DockerfileNotFound(PathBuf),
    /// `-f` names a FIFO, a device or a directory: docker would block on it or fail.
    #[error("Dockerfile `{}` is {kind}, not a regular file", .path.display())]
    DockerfileNotRegular { path: PathBuf, kind: &'static str },
    #[error("cannot read `{}`", .path.display())]
    ReadIgnore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

impl crate::diagnostics::Diagnose for ContextError {
    fn hint(&self) -> Option<String> {
        match self {
            ContextError::RootNotFound(_) | ContextError::RootNotDir(_) => Some(
                "pass the directory you give `docker build` (the build context), e.g. `ctxbuild ls path/to/app`".into(),
            ),
            ContextError::RootUnreadable { .. } => {
                Some("check the directory's permissions".into())
            }
            ContextError::DockerfileNotRegular { .. } => {
                Some("pass a regular file with `-f` (ctxbuild never reads a pipe or device)".into())
            }
            ContextError::DockerfileNotFound(_) => Some(
                "`-f` is relative to the current directory, as with `docker build -f`".into(),
            ),
            ContextError::ReadIgnore { .. } => {
                Some("docker build cannot read it either; fix its permissions or remove it".into())
            }
            ContextError::Pattern(e) => e.hint(),
        }
    }

    fn class(&self) -> ErrorClass {
        ErrorClass::Failed
    }
}

/// The context root as Docker resolves it: absolute, symlinks evaluated, a directory.
fn resolve_root(root: &Path) -> Result<PathBuf, ContextError> {
    let canonical = std::fs::canonicalize(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ContextError::RootNotFound(root.to_path_buf()),
        std::io::ErrorKind::NotADirectory => ContextError::RootNotFound(root.to_path_buf()),
        _ => ContextError::RootUnreadable {
            path: root.to_path_buf(),
            source: e,
        },
    })?;
    if !canonical.is_dir() {
        return Err(ContextError::RootNotDir(root.to_path_buf()));
    }
    std::fs::read_dir(&canonical).map_err(|e| ContextError::RootUnreadable {
        path: root.to_path_buf(),
        source: e,
    })?;
    Ok(canonical)
}

/// The Dockerfile: (path as given or defaulted, canonical path), or `None` when the default
/// does not exist.
fn resolve_dockerfile(
    root: &Path,
    given: Option<&Path>,
) -> Result<Option<(PathBuf, PathBuf)>, ContextError> {
    let path = match given {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        None => {
            let upper = root.join("Dockerfile");
            let lower = root.join("dockerfile");
            if upper.symlink_metadata().is_err() && lower.symlink_metadata().is_ok() {
                lower
            } else {
                upper
            }
        }
    };
    match std::fs::canonicalize(&path) {
        // `stat` only: it neither opens nor blocks on a FIFO.
        Ok(c) if given.is_some() => match std::fs::metadata(&c) {
            Ok(m) if !m.is_file() => Err(ContextError::DockerfileNotRegular {
                path: given.map(Path::to_path_buf).unwrap_or(path),
                kind: crate::fsutil::kind_name(&m.file_type()),
            }),
            _ => Ok(Some((path, c))),
        },
        Ok(c) => Ok(Some((path, c))),
        Err(_) if given.is_none() => Ok(None),
        Err(_) => Err(ContextError::DockerfileNotFound(
            given.map(Path::to_path_buf).unwrap_or(path),
        )),
    }
}

/// Reads and parses an ignore file; `None` when it does not exist.
fn read_ignore(path: &Path, name: &str) -> Result<Option<Matcher>, ContextError> {
    match crate::fsutil::read_limited(path, crate::fsutil::TEXT_LIMIT) {
        Ok(text) => Ok(Some(Matcher::parse(&text, name)?)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(ContextError::ReadIgnore {
            path: PathBuf::from(name),
            source: e.into(),
        }),
    }
}

fn display_rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// How much each entry is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `lstat` every kept entry: mode, size and stat filled, unreadable files reported.
    Full,
    /// Names and types from the directory listing only (like `fd`): `mode`, `size` and `stat`
    /// are 0, unreadable files are not detected (unlistable directories still are). For
    /// callers that only need paths.
    NamesOnly,
}

/// Scans a context: walks it with Docker's rules and returns what `COPY . /dst/` sees, every
/// entry `lstat`ed ([`Detail::Full`]).
///
/// Fails only when the root, the given Dockerfile or the ignore file is unusable; entries that
/// cannot be read are recorded in [`Context::issues`] and the scan goes on.
pub fn scan(opts: &ContextOptions) -> Result<Context, ContextError> {
    scan_with(opts, Detail::Full)
}

/// [`scan`] with a choice of [`Detail`].
pub fn scan_with(opts: &ContextOptions, detail: Detail) -> Result<Context, ContextError> {
    let root = resolve_root(&opts.root)?;
    let dockerfile = resolve_dockerfile(&root, opts.dockerfile.as_deref())?;
    let rel_dockerfile: Option<PathBuf> = dockerfile
        .as_ref()
        .and_then(|(_, c)| c.strip_prefix(&root).ok())
        .filter(|r| !r.as_os_str().is_empty())
        .map(Path::to_path_buf);

    // Which ignore file applies.
    let mut ignore_file: Option<PathBuf> = None;
    let mut matcher: Option<Matcher> = None;
    if opts.buildkit {
        if let Some((given, _)) = &dockerfile {
            let mut name = given.clone().into_os_string();
            name.push(".dockerignore");
            let candidate = PathBuf::from(name);
            let shown = display_rel(&root, &candidate);
            if let Some(m) = read_ignore(&candidate, &shown)? {
                matcher = Some(m);
                ignore_file = Some(
                    candidate
                        .strip_prefix(&root)
                        .map(Path::to_path_buf)
                        .unwrap_or(candidate.clone()),
                );
            }
        }
    }
    if matcher.is_none() {
        if let Some(m) = read_ignore(&root.join(".dockerignore"), ".dockerignore")? {
            matcher = Some(m);
            ignore_file = Some(PathBuf::from(".dockerignore"));
        }
    }
    let matcher = matcher.unwrap_or_else(Matcher::empty);

    // The classic CLI force-sends the Dockerfile and .dockerignore (TrimBuildFilesFromExcludes),
    // deciding with the legacy matcher; the daemon then deletes what the same test excludes.
    let mut walk_matcher = matcher.clone();
    let mut to_hide: Vec<Vec<u8>> = Vec::new();
    if !opts.buildkit && !matcher.is_empty() {
        let mut candidates: Vec<Vec<u8>> = vec![b".dockerignore".to_vec()];
        if let Some(rel) = &rel_dockerfile {
            candidates.push(rel.as_os_str().as_bytes().to_vec());
        }
        for name in candidates {
            if walk_matcher.matches_legacy(&name) {
                let mut p = b"!".to_vec();
                p.extend_from_slice(&name);
                walk_matcher.add_pattern(&p)?;
            }
            if matcher.matches_legacy(&name) {
                to_hide.push(name);
            }
        }
    }

    let walked = walk::walk(&root, walk_matcher, opts.threads, detail);
    let mut entries = walked.entries;
    let mut issues = walked.issues;

    // The daemon's RemoveAll of the excluded Dockerfile / .dockerignore.
    let mut hidden: Vec<Entry> = Vec::new();
    if !to_hide.is_empty() {
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| {
            let p = e.path_bytes();
            to_hide
                .iter()
                .any(|h| p == h.as_slice() || (p.starts_with(h) && p.get(h.len()) == Some(&b'/')))
        });
        entries = kept;
        hidden = gone;
    }

    // Directories not sent but recreated because something below them was sent.
    let mut implied_dirs: Vec<PathBuf> = Vec::new();
    if !walked.entered_excluded.is_empty() {
        let mut candidates = walked.entered_excluded;
        candidates.sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        let below = |dir: &[u8]| -> bool {
            let has = |list: &[Entry]| {
                let start = list.partition_point(|e| e.path_bytes() <= dir);
                list[start..].iter().any(|e| {
                    let p = e.path_bytes();
                    p.starts_with(dir) && p.get(dir.len()) == Some(&b'/')
                })
            };
            has(&entries) || has(&hidden)
        };
        let mut add: Vec<Entry> = Vec::new();
        for mut d in candidates {
            if below(d.path_bytes()) {
                if !opts.buildkit {
                    d.mode = IMPLIED_DIR_MODE;
                }
                implied_dirs.push(d.path.clone());
                add.push(d);
            }
        }
        entries.extend(add);
        entries.sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
    }

    if let Some(rel) = &rel_dockerfile {
        let p = rel.as_os_str().as_bytes();
        if find(&entries, p).is_none() && find(&hidden, p).is_none() {
            issues.push(ScanIssue {
                path: rel.clone(),
                kind: IssueKind::DockerfileNotSent,
                message: "excluded from what Docker sends; docker build fails with \"Cannot locate specified Dockerfile\"".into(),
            });
        }
    }
    issues.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });

    Ok(Context {
        root,
        entries,
        hidden,
        implied_dirs,
        dockerfile: rel_dockerfile,
        ignore_file,
        matcher,
        issues,
    })
}

#[cfg(test)]
mod tests;
