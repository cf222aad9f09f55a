//! Removing what the walk found: files by a pool of threads, then directories deepest first.
//!
//! Each thread takes runs of neighbouring paths (the list is sorted, so a run mostly shares one
//! directory and threads rarely contend for the same directory lock). A failure is recorded
//! with its path and blocks the directories above it; the run goes on. Without
//! [`Mode::Remove`] the same bookkeeping predicts what would go, so `--dry-run` and a real run
//! agree. This module never walks and never prints.

use super::rules::KeptReason;
use super::walk::{DirTarget, Found};
use super::{CleanReport, Failure, Kept, Mode, Progress, Removed};
use crate::context::EntryKind;
use std::collections::HashSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Paths one thread takes at a time.
const RUN: usize = 32;

fn by_bytes(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes())
}

/// Runs `op` on every item with `threads` threads; returns the errors by item index.
fn parallel<T: Sync>(
    threads: usize,
    items: &[T],
    op: impl Fn(&T) -> io::Result<()> + Sync,
    done: &AtomicU64,
    total: u64,
    progress: &dyn Progress,
) -> Vec<(usize, io::Error)> {
    let threads = threads.min(items.len().div_ceil(RUN)).max(1);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut errors = Vec::new();
        loop {
            let start = next.fetch_add(RUN, Ordering::Relaxed);
            if start >= items.len() {
                break;
            }
            let end = (start + RUN).min(items.len());
            for (i, item) in items[start..end].iter().enumerate() {
                if let Err(e) = op(item) {
                    errors.push((start + i, e));
                }
            }
            let d = done.fetch_add((end - start) as u64, Ordering::Relaxed);
            progress.removing(d + (end - start) as u64, total);
        }
        errors
    };
    if threads == 1 {
        return work();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        let mut errors: Vec<(usize, io::Error)> = Vec::new();
        for h in handles {
            // A panicking worker would be a bug in `op`; its paths are then simply not reported.
            if let Ok(mut e) = h.join() {
                errors.append(&mut e);
            }
        }
        errors.sort_by_key(|(i, _)| *i);
        errors
    })
}

fn is_not_empty(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::DirectoryNotEmpty
        // Some filesystems say EEXIST for a non-empty directory (POSIX allows both).
        || e.raw_os_error() == Some(17)
}

/// Removes (or, without [`Mode::Remove`], predicts the removal of) what the walk found.
pub(super) fn execute(
    root: &Path,
    found: Found,
    mode: Mode,
    threads: usize,
    progress: &dyn Progress,
) -> CleanReport {
    let Found {
        mut files,
        mut dirs,
        mut kept,
        mut skipped,
        mut failures,
        blocked,
    } = found;
    let mut blocked: HashSet<PathBuf> = blocked.into_iter().collect();
    files.sort_unstable_by(|a, b| by_bytes(&a.rel, &b.rel));
    let total = (files.len() + dirs.len()) as u64;
    let done = AtomicU64::new(0);

    let mut file_errors = if mode.removes() {
        parallel(
            threads,
            &files,
            |t| std::fs::remove_file(root.join(&t.rel)),
            &done,
            total,
            progress,
        )
    } else {
        Vec::new()
    }
    .into_iter()
    .peekable();
    let mut removed: Vec<Removed> = Vec::with_capacity(files.len() + dirs.len());
    for (i, t) in files.into_iter().enumerate() {
        match file_errors.next_if(|(j, _)| *j == i) {
            None => removed.push(Removed {
                path: t.rel,
                kind: t.kind,
                rule: t.rule,
                bytes: t.bytes,
            }),
            // Gone already (another process): nothing to do, nothing freed by us.
            Some((_, e)) if e.kind() == io::ErrorKind::NotFound => {}
            Some((_, e)) => {
                if let Some(p) = t.rel.parent() {
                    blocked.insert(p.to_path_buf());
                }
                failures.push(Failure {
                    path: t.rel,
                    error: e.to_string(),
                });
            }
        }
    }

    // Deepest first, so a directory is only tried once everything below it has had its turn.
    dirs.sort_unstable_by(|a, b| b.depth.cmp(&a.depth).then_with(|| by_bytes(&a.rel, &b.rel)));
    let mut level_start = 0;
    while level_start < dirs.len() {
        let depth = dirs[level_start].depth;
        let level_end = dirs[level_start..]
            .iter()
            .position(|d| d.depth != depth)
            .map_or(dirs.len(), |n| level_start + n);
        let (free, held): (Vec<&DirTarget>, Vec<&DirTarget>) = dirs[level_start..level_end]
            .iter()
            .partition(|d| !blocked.contains(&d.rel));
        let mut next_blocked: Vec<PathBuf> = Vec::new();
        for d in held {
            kept.push(Kept {
                path: d.rel.clone(),
                reason: KeptReason::NotEmpty,
            });
            next_blocked.extend(d.rel.parent().map(Path::to_path_buf));
        }
        let errors = if mode.removes() {
            parallel(
                threads,
                &free,
                |d| std::fs::remove_dir(root.join(&d.rel)),
                &done,
                total,
                progress,
            )
        } else {
            Vec::new()
        };
        let mut errors = errors.into_iter().peekable();
        for (i, d) in free.into_iter().enumerate() {
            match errors.next_if(|(j, _)| *j == i) {
                None => removed.push(Removed {
                    path: d.rel.clone(),
                    kind: EntryKind::Dir,
                    rule: d.rule.clone(),
                    bytes: 0,
                }),
                Some((_, e)) if e.kind() == io::ErrorKind::NotFound => {}
                Some((_, e)) => {
                    next_blocked.extend(d.rel.parent().map(Path::to_path_buf));
                    if is_not_empty(&e) {
                        // Something we did not see (or were told to keep) is still inside.
                        kept.push(Kept {
                            path: d.rel.clone(),
                            reason: KeptReason::NotEmpty,
                        });
                    } else {
                        failures.push(Failure {
                            path: d.rel.clone(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        blocked.extend(next_blocked);
        level_start = level_end;
    }

    removed.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
    kept.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
    skipped.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
    failures.sort_unstable_by(|a, b| by_bytes(&a.path, &b.path));
    let (mut files_n, mut dirs_n, mut bytes) = (0, 0, 0);
    for r in &removed {
        if r.kind == EntryKind::Dir {
            dirs_n += 1;
        } else {
            files_n += 1;
            bytes += r.bytes;
        }
    }
    CleanReport {
        root: root.to_path_buf(),
        mode,
        files: files_n,
        dirs: dirs_n,
        bytes,
        elapsed: Duration::ZERO,
        removed,
        kept,
        skipped,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::super::NoProgress;
    use super::*;

    #[test]
    fn parallel_reports_every_error_by_index() {
        let items: Vec<usize> = (0..1000).collect();
        let done = AtomicU64::new(0);
        let errors = parallel(
            4,
            &items,
            |&i| {
                if i % 7 == 0 {
                    Err(io::Error::other(format!("no {i}")))
                } else {
                    Ok(())
                }
            },
            &done,
            1000,
            &NoProgress,
        );
        let idx: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        let want: Vec<usize> = (0..1000).filter(|i| i % 7 == 0).collect();
        assert_eq!(idx, want);
        assert_eq!(done.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn parallel_on_nothing() {
        let done = AtomicU64::new(0);
        let items: Vec<u8> = Vec::new();
        assert!(parallel(8, &items, |_| Ok(()), &done, 0, &NoProgress).is_empty());
    }
}
