//! The parallel walk of a context directory with Docker's tar-walk exclusion rules.
//!
//! One job per directory on a small rayon pool (symlinks never followed). A job lists its
//! directory once, decides every child by name before reading any metadata (so excluded files
//! cost nothing and excluded directories are never opened unless an exception could re-include
//! something below them: Docker's `must_descend` rule), then `lstat`s the kept children
//! relative to the open directory (`statx(dirfd, name)` through `DirEntry::metadata`), which
//! spares the kernel a full path lookup per entry. Docker evaluates children with their parent
//! directory's match results; a job hands its results straight to its subdirectory jobs.
//!
//! Each job appends its results, as data, to the shared output once it has listed its
//! directory (one short lock per directory: a channel to a receiving thread cost a wake-up and
//! a context switch per message on two cores); jobs never print. Unreadable entries become [`ScanIssue`]s and the walk goes on. As with Docker's
//! walk, a directory that cannot be listed is reported and left out itself. This module decides
//! nothing about the Dockerfile; `scan` in `mod.rs` does.

use super::dockerignore::{MatchInfo, Matcher};
use super::entry::{Entry, EntryKind, StatInfo};
use super::{IssueKind, ScanIssue};
use rayon::slice::ParallelSliceMut;
use std::ffi::{OsStr, OsString};
use std::fs::{FileType, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the walk found: `entries` sorted by path bytes, the rest unsorted.
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

/// The results of one directory job.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    entered_excluded: Vec<Entry>,
    issues: Vec<ScanIssue>,
}

/// What every job shares.
struct Walk<'a> {
    matcher: &'a Matcher,
    /// Byte length of the root path plus its separator: strip it to get the relative path.
    prefix_len: usize,
    detail: super::Detail,
    out: Mutex<WalkOutput>,
}

/// A directory to list.
struct DirJob {
    /// Absolute path.
    abs: Vec<u8>,
    /// Its own entry (not yet sent: a directory that cannot be listed is left out, as Docker's
    /// walk leaves it out), or the issue met when stat'ing it; `None` for the root.
    own: Option<Result<Entry, (IssueKind, String)>>,
    /// Excluded itself, entered only for exceptions.
    excluded: bool,
    /// Match results its children inherit: `None` under the root (Docker then tests every
    /// ancestor), all-zero when no pattern matched the directory.
    info: Option<MatchInfo>,
}

impl Walk<'_> {
    fn rel<'p>(&self, abs: &'p [u8]) -> &'p [u8] {
        abs.get(self.prefix_len..).unwrap_or_default()
    }

    fn issue(&self, batch: &mut Batch, abs: &[u8], kind: IssueKind, message: String) {
        let rel = self.rel(abs);
        let path = if rel.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(OsStr::from_bytes(rel))
        };
        batch.issues.push(ScanIssue {
            path,
            kind,
            message,
        });
    }

    /// Lists one directory, keeps and stats its children, queues its subdirectories.
    fn run<'s>(&'s self, scope: &rayon::Scope<'s>, job: DirJob) {
        let mut batch = Batch::default();
        let listing = std::fs::read_dir(OsStr::from_bytes(&job.abs));
        match (listing, job.own) {
            (Err(e), _) => {
                self.issue(
                    &mut batch,
                    &job.abs,
                    IssueKind::Unreadable,
                    format!("cannot read: {e}"),
                );
                self.send(batch);
            }
            (Ok(listing), own) => {
                match own {
                    Some(Ok(entry)) if job.excluded => batch.entered_excluded.push(entry),
                    Some(Ok(entry)) => batch.entries.push(entry),
                    Some(Err((kind, message))) => {
                        self.issue(&mut batch, &job.abs, kind, message);
                    }
                    None => {}
                }
                self.list(scope, &job.abs, job.info.as_ref(), listing, &mut batch);
                self.send(batch);
            }
        }
    }

    fn send(&self, batch: Batch) {
        if batch.entries.is_empty() && batch.entered_excluded.is_empty() && batch.issues.is_empty()
        {
            return;
        }
        // A job that panicked while holding the lock left whole batches behind: keep going.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.entries.extend(batch.entries);
        out.entered_excluded.extend(batch.entered_excluded);
        out.issues.extend(batch.issues);
    }

    fn list<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        dir: &[u8],
        parent: Option<&MatchInfo>,
        listing: std::fs::ReadDir,
        batch: &mut Batch,
    ) {
        // One buffer for the children's absolute paths: `dir/` then each name in turn.
        let mut abs = Vec::with_capacity(dir.len() + 64);
        abs.extend_from_slice(dir);
        if !abs.ends_with(b"/") {
            abs.push(b'/');
        }
        let base = abs.len();
        let mut info = MatchInfo::default();
        for dent in listing {
            let dent = match dent {
                Ok(d) => d,
                Err(e) => {
                    self.issue(
                        batch,
                        dir,
                        IssueKind::Unreadable,
                        format!("cannot read: {e}"),
                    );
                    continue;
                }
            };
            abs.truncate(base);
            abs.extend_from_slice(dent.file_name().as_bytes());
            // The type from the directory listing (d_type), as in fd.
            let listed = match dent.file_type() {
                Ok(t) => t,
                Err(e) => {
                    self.issue(
                        batch,
                        &abs,
                        IssueKind::Unreadable,
                        format!("cannot read: {e}"),
                    );
                    continue;
                }
            };
            let is_dir = listed.is_dir();
            let rel = &abs[self.prefix_len.min(abs.len())..];
            // Docker's decision, by name only.
            let (skip, matched_any) = if self.matcher.is_empty() {
                (false, false)
            } else {
                let skip = self.matcher.matches_with_parent(rel, parent, &mut info);
                (skip, !info.is_zero())
            };
            if skip && !(is_dir && self.matcher.must_descend(rel)) {
                continue;
            }
            let meta = match self.detail {
                super::Detail::NamesOnly => None,
                super::Detail::Full => match dent.metadata() {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let message = format!("cannot stat: {e}");
                        if is_dir {
                            // Docker's walk lists it first: only then is the stat reported.
                            self.spawn(
                                scope,
                                &abs,
                                Err((IssueKind::Unreadable, message)),
                                skip,
                                matched_any,
                                &info,
                            );
                        } else {
                            self.issue(batch, &abs, IssueKind::Unreadable, message);
                        }
                        continue;
                    }
                },
            };
            let entry = match self.entry(&abs, listed, meta.as_ref()) {
                Ok(e) => e,
                Err((kind, message)) => {
                    if is_dir {
                        self.spawn(scope, &abs, Err((kind, message)), skip, matched_any, &info);
                    } else {
                        self.issue(batch, &abs, kind, message);
                    }
                    continue;
                }
            };
            if is_dir {
                self.spawn(scope, &abs, Ok(entry), skip, matched_any, &info);
            } else {
                // Only directories can be excluded yet kept (entered for exceptions).
                batch.entries.push(entry);
            }
        }
    }

    /// Queues a subdirectory job.
    #[allow(clippy::too_many_arguments)]
    fn spawn<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        abs: &[u8],
        own: Result<Entry, (IssueKind, String)>,
        skip: bool,
        matched_any: bool,
        info: &MatchInfo,
    ) {
        let job = DirJob {
            abs: abs.to_vec(),
            own: Some(own),
            excluded: skip && matched_any,
            info: Some(if matched_any {
                info.clone()
            } else {
                MatchInfo::default()
            }),
        };
        scope.spawn(move |s| self.run(s, job));
    }

    /// The entry for `abs`, from its listed type and (with [`super::Detail::Full`]) its lstat.
    fn entry(
        &self,
        abs: &[u8],
        listed: FileType,
        meta: Option<&Metadata>,
    ) -> Result<Entry, (IssueKind, String)> {
        let ft = meta.map_or(listed, Metadata::file_type);
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else {
            return Err((
                IssueKind::Special,
                "a socket: ctxbuild leaves it out, as the Docker CLI does".into(),
            ));
        };
        let path = Path::new(OsStr::from_bytes(abs));
        let link_target = if kind == EntryKind::Symlink {
            match std::fs::read_link(path) {
                Ok(t) => Some(t),
                Err(e) => return Err((IssueKind::Unreadable, format!("cannot read link: {e}"))),
            }
        } else {
            None
        };
        // Docker's CLI opens every file it will send and fails the build when it cannot.
        // Only files not readable by everyone are worth the extra open.
        let mode = meta.map_or(0, |m| m.mode());
        if kind == EntryKind::File && meta.is_some() && mode & 0o444 != 0o444 {
            if let Err(e) = std::fs::File::open(path) {
                return Err((
                    IssueKind::Unreadable,
                    format!("cannot read: {e} (docker build fails: no permission to read)"),
                ));
            }
        }
        Ok(Entry {
            path: PathBuf::from(OsString::from_vec(self.rel(abs).to_vec())),
            kind,
            mode: mode & 0o7777,
            size: meta.map_or(0, |m| m.len()),
            link_target,
            rdev: match meta {
                Some(m) if kind.is_device() => m.rdev(),
                _ => 0,
            },
            stat: meta.map_or_else(StatInfo::default, |m| StatInfo {
                dev: m.dev(),
                ino: m.ino(),
                mtime_ns: StatInfo::ns(m.mtime(), m.mtime_nsec()),
                ctime_ns: StatInfo::ns(m.ctime(), m.ctime_nsec()),
            }),
        })
    }
}

/// Walks `root` (canonical, an existing directory) keeping what `matcher` lets Docker send.
pub(crate) fn walk(
    root: &Path,
    matcher: Matcher,
    threads: usize,
    detail: super::Detail,
) -> WalkOutput {
    let root_b = root.as_os_str().as_bytes();
    let prefix_len = root_b.len() + usize::from(!root_b.ends_with(b"/"));
    let walk = Walk {
        matcher: &matcher,
        prefix_len,
        detail,
        out: Mutex::new(WalkOutput::default()),
    };
    let root_job = DirJob {
        abs: root_b.to_vec(),
        own: None,
        excluded: false,
        info: None,
    };
    let run = || {
        rayon::scope(|scope| walk.run(scope, root_job));
        let mut out = walk.out.into_inner().unwrap_or_else(|e| e.into_inner());
        // Sorting is the one serial-looking step left; the same threads share it.
        out.entries
            .par_sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        out
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("ctxbuild-walk-{i}"))
        .build()
    {
        Ok(pool) => pool.install(run),
        // No threads to be had: the global pool still walks.
        Err(_) => run(),
    }
}
