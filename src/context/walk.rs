//! The parallel walk of a context directory with Docker's tar-walk exclusion rules.
//!
//! `ignore::WalkParallel` with every gitignore/hidden filter off and symlinks never followed.
//! Exclusion is decided by name in `filter_entry` before any metadata is read, so excluded
//! files cost nothing and excluded directories are never opened unless an exception could
//! re-include something below them (Docker's `must_descend` rule). Docker evaluates children
//! with their parent directory's match results; those results are kept in a shared map, only
//! for directories where some pattern matched (none at all for a `.dockerignore` without
//! exceptions).
//!
//! Workers lstat the kept entries and send them in batches to the one receiving thread; they
//! never print. Unreadable entries become [`ScanIssue`]s and the walk goes on. This module
//! decides nothing about the Dockerfile; `scan` in `mod.rs` does.

use super::dockerignore::{MatchInfo, Matcher};
use super::entry::{Entry, EntryKind, StatInfo};
use super::{IssueKind, ScanIssue};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Entries sent per channel message: large enough to make the channel cost vanish.
const BATCH: usize = 2048;

/// What the walk found, unsorted.
#[derive(Debug, Default)]
pub(crate) struct WalkOutput {
    /// Every entry Docker's tar walk would add (the root itself excluded).
    pub entries: Vec<Entry>,
    /// Directories that are excluded but entered because an exception may match below them;
    /// Docker does not send them, but they appear (with default metadata) when something
    /// below them is sent.
    pub entered_excluded: Vec<Entry>,
    pub issues: Vec<ScanIssue>,
}

/// Match results of a directory, for its children.
struct DirState {
    info: MatchInfo,
    /// Excluded itself, entered only for exceptions.
    excluded: bool,
}

struct Shared {
    matcher: Matcher,
    /// Byte length of the root path plus its separator: strip it to get the relative path.
    prefix_len: usize,
    dirs: RwLock<HashMap<Box<[u8]>, DirState>>,
    any_dirs: AtomicBool,
}

thread_local! {
    static SCRATCH: RefCell<MatchInfo> = RefCell::new(MatchInfo::default());
}

impl Shared {
    fn rel<'p>(&self, path: &'p Path) -> &'p [u8] {
        let b = path.as_os_str().as_bytes();
        b.get(self.prefix_len..).unwrap_or_default()
    }

    /// Whether the walk keeps this child (called before its metadata is read).
    fn keep(&self, path: &Path, is_dir: bool) -> bool {
        let rel = self.rel(path);
        let (skip, matched_any) = self.evaluate(rel);
        if skip && !(is_dir && self.matcher.must_descend(rel)) {
            return false;
        }
        if is_dir && matched_any {
            let info = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
            self.any_dirs.store(true, Ordering::Release);
            let mut map = self.dirs.write().unwrap_or_else(|e| e.into_inner());
            map.insert(
                rel.into(),
                DirState {
                    info,
                    excluded: skip,
                },
            );
        }
        true
    }

    /// Docker's decision for `rel` given its parent's results, left in this thread's scratch
    /// [`MatchInfo`]. Returns (excluded, some pattern matched).
    fn evaluate(&self, rel: &[u8]) -> (bool, bool) {
        let zero = MatchInfo::default();
        let parent = rel.iter().rposition(|&b| b == b'/').map(|i| &rel[..i]);
        // The read guard must be gone before `keep` may take the write lock.
        let guard = match parent {
            Some(_) if self.any_dirs.load(Ordering::Acquire) => {
                Some(self.dirs.read().unwrap_or_else(|e| e.into_inner()))
            }
            _ => None,
        };
        let parent_info = match (parent, &guard) {
            (None, _) => None,
            (Some(p), Some(map)) => Some(map.get(p).map_or(&zero, |s| &s.info)),
            (Some(_), None) => Some(&zero),
        };
        SCRATCH.with(|cell| {
            let mut info = cell.borrow_mut();
            let skip = self
                .matcher
                .matches_with_parent(rel, parent_info, &mut info);
            (skip, !info.is_zero())
        })
    }

    fn is_excluded_dir(&self, rel: &[u8]) -> bool {
        if !self.any_dirs.load(Ordering::Acquire) {
            return false;
        }
        let map = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        map.get(rel).is_some_and(|s| s.excluded)
    }
}

/// A batch of results from one worker.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    entered_excluded: Vec<Entry>,
    issues: Vec<ScanIssue>,
}

impl Batch {
    fn len(&self) -> usize {
        self.entries.len() + self.entered_excluded.len() + self.issues.len()
    }
}

struct Visitor {
    shared: Arc<Shared>,
    detail: super::Detail,
    tx: crossbeam_channel::Sender<Batch>,
    batch: Batch,
}

impl Visitor {
    fn flush(&mut self) {
        if self.batch.len() > 0 {
            // The receiver outlives every worker; a failed send cannot happen.
            let _ = self.tx.send(std::mem::take(&mut self.batch));
        }
    }

    fn issue(&mut self, path: &Path, kind: IssueKind, message: String) {
        let rel = self.shared.rel(path);
        let path = if rel.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(OsString::from_vec(rel.to_vec()))
        };
        self.batch.issues.push(ScanIssue {
            path,
            kind,
            message,
        });
    }

    fn entry(&mut self, dent: ignore::DirEntry) {
        if dent.depth() == 0 {
            return;
        }
        let is_dir = dent.file_type().is_some_and(|t| t.is_dir());
        let names_only = self.detail == super::Detail::NamesOnly;
        // Without metadata the type comes from the directory listing (d_type), as in fd.
        let listed_type = dent.file_type();
        let abs = dent.into_path();
        let excluded = is_dir && self.shared.is_excluded_dir(self.shared.rel(&abs));
        let meta = if names_only {
            None
        } else {
            match std::fs::symlink_metadata(&abs) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.issue(&abs, IssueKind::Unreadable, format!("cannot stat: {e}"));
                    return;
                }
            }
        };
        let Some(ft) = meta.as_ref().map(|m| m.file_type()).or(listed_type) else {
            self.issue(&abs, IssueKind::Unreadable, "unknown file type".into());
            return;
        };
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            let what = if ft.is_fifo() {
                "a named pipe"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device file"
            };
            self.issue(
                &abs,
                IssueKind::Special,
                format!("{what}: ctxbuild leaves it out (Docker sends pipes and devices, skips sockets)"),
            );
            return;
        };
        let link_target = if kind == EntryKind::Symlink {
            match std::fs::read_link(&abs) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.issue(
                        &abs,
                        IssueKind::Unreadable,
                        format!("cannot read link: {e}"),
                    );
                    return;
                }
            }
        } else {
            None
        };
        // Docker's CLI opens every file it will send and fails the build when it cannot.
        // Only files not readable by everyone are worth the extra open.
        let mode = meta.as_ref().map_or(0, |m| m.mode());
        if kind == EntryKind::File && !names_only && mode & 0o444 != 0o444 {
            if let Err(e) = std::fs::File::open(&abs) {
                self.issue(
                    &abs,
                    IssueKind::Unreadable,
                    format!("cannot read: {e} (docker build fails: no permission to read)"),
                );
            }
        }
        let mut bytes = abs.into_os_string().into_vec();
        bytes.drain(..self.shared.prefix_len.min(bytes.len()));
        let entry = Entry {
            path: PathBuf::from(OsString::from_vec(bytes)),
            kind,
            mode: mode & 0o7777,
            size: meta.as_ref().map_or(0, |m| m.len()),
            link_target,
            stat: meta.as_ref().map_or_else(StatInfo::default, |m| StatInfo {
                dev: m.dev(),
                ino: m.ino(),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
            }),
        };
        if excluded {
            self.batch.entered_excluded.push(entry);
        } else {
            self.batch.entries.push(entry);
        }
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }
}

impl ignore::ParallelVisitor for Visitor {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> ignore::WalkState {
        match entry {
            Ok(dent) => self.entry(dent),
            Err(err) => {
                let path = error_path(&err).map(Path::to_path_buf);
                let message = match err.io_error() {
                    Some(io) => format!("cannot read: {io}"),
                    None => err.to_string(),
                };
                let path = path.unwrap_or_default();
                self.issue(&path, IssueKind::Unreadable, message);
            }
        }
        ignore::WalkState::Continue
    }
}

impl Drop for Visitor {
    fn drop(&mut self) {
        self.flush();
    }
}

struct Builder {
    shared: Arc<Shared>,
    detail: super::Detail,
    tx: crossbeam_channel::Sender<Batch>,
}

impl<'s> ignore::ParallelVisitorBuilder<'s> for Builder {
    fn build(&mut self) -> Box<dyn ignore::ParallelVisitor + 's> {
        Box::new(Visitor {
            shared: Arc::clone(&self.shared),
            detail: self.detail,
            tx: self.tx.clone(),
            batch: Batch::default(),
        })
    }
}

fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

/// Walks `root` (canonical, an existing directory) keeping what `matcher` lets Docker send.
pub(crate) fn walk(
    root: &Path,
    matcher: Matcher,
    threads: usize,
    detail: super::Detail,
) -> WalkOutput {
    let prefix_len =
        root.as_os_str().len() + usize::from(!root.as_os_str().as_bytes().ends_with(b"/"));
    let shared = Arc::new(Shared {
        matcher,
        prefix_len,
        dirs: RwLock::new(HashMap::new()),
        any_dirs: AtomicBool::new(false),
    });
    let mut wb = ignore::WalkBuilder::new(root);
    wb.standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .threads(threads.max(1));
    if !shared.matcher.is_empty() {
        let filter = Arc::clone(&shared);
        wb.filter_entry(move |dent| {
            let is_dir = dent.file_type().is_some_and(|t| t.is_dir());
            filter.keep(dent.path(), is_dir)
        });
    }
    let walker = wb.build_parallel();
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(64);
    let mut out = WalkOutput::default();
    std::thread::scope(|s| {
        let builder_shared = Arc::clone(&shared);
        s.spawn(move || {
            let mut builder = Builder {
                shared: builder_shared,
                detail,
                tx,
            };
            walker.visit(&mut builder);
        });
        for batch in rx {
            out.entries.extend(batch.entries);
            out.entered_excluded.extend(batch.entered_excluded);
            out.issues.extend(batch.issues);
        }
    });
    out
}
