//! Removing what the walk found, with a pool of deleting threads.
//!
//! Work is cut into per-directory jobs: the files of one directory, then — when that directory
//! is itself a target with no target directory below it (a `__pycache__`, nearly always) — the
//! directory, on the same thread, right away. Jobs for different directories never contend for
//! a directory lock, and no thread waits for a barrier between files and directories. The few
//! directories left (nested targets, such as inside a debris subtree) go afterwards, deepest
//! first, level by level.
//!
//! Why threads beyond the CPU count help: unlinking waits on the filesystem (journal, block
//! frees, and on disks mounted with `discard` a synchronous discard per file), not the CPU, so
//! many requests in flight finish sooner. `scripts/bench-clean.sh` measures it.
//!
//! A failure is recorded with its path and blocks the directories above it; the run goes on.
//! Without [`Mode::Remove`] the same bookkeeping predicts what would go, so `--dry-run` and a
//! real run agree. This module never walks and never prints.

use super::rules::KeptReason;
use super::walk::{DirTarget, Found, Target};
use super::{CleanReport, Failure, Kept, Mode, Progress, Removed};
use crate::context::EntryKind;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The most files one job takes: a bigger directory is split, its removal left for later.
const JOB: usize = 64;

fn by_bytes(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes())
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

/// Runs `op` on every item with up to `threads` threads, each taking the next item when done.
/// Returns what the calls pushed, in no particular order.
fn pool<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    op: impl Fn(&T, &mut Vec<R>) + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len()).max(1);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            op(item, &mut out);
        }
        out
    };
    if threads == 1 {
        return work();
    }
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = work();
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(&mut mine);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn is_not_empty(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::DirectoryNotEmpty
        // Some filesystems say EEXIST for a non-empty directory (POSIX allows both).
        || e.raw_os_error() == Some(17)
}

/// Some files of one directory, and possibly that directory to remove after them.
struct Job {
    files: std::ops::Range<usize>,
    dir: Option<usize>,
}

/// What happened to one path in a job.
enum Outcome {
    FileFailed(usize, io::Error),
    FileGone(usize),
    DirRemoved(usize),
    /// Not tried (a file inside failed) or not empty: kept.
    DirHeld(usize),
    DirGone(usize),
    DirFailed(usize, io::Error),
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
    // Group files by directory.
    files.sort_unstable_by(|a, b| {
        by_bytes(parent(&a.rel), parent(&b.rel)).then_with(|| by_bytes(&a.rel, &b.rel))
    });
    dirs.sort_unstable_by(|a, b| b.depth.cmp(&a.depth).then_with(|| by_bytes(&a.rel, &b.rel)));

    let mut removed: Vec<Removed> = Vec::with_capacity(files.len() + dirs.len());
    let mut file_failed: Vec<Option<io::Error>> = Vec::new();
    let mut file_gone: Vec<bool> = Vec::new();
    // Directories settled by the jobs; the rest go level by level below.
    let mut settled: Vec<bool> = vec![false; dirs.len()];
    let mut held_by_jobs: Vec<usize> = Vec::new();

    if mode.removes() {
        let jobs = plan_jobs(&files, &dirs, &blocked);
        let total = (files.len() + dirs.len()) as u64;
        let done = AtomicU64::new(0);
        let tick = |n: u64| {
            let d = done.fetch_add(n, Ordering::Relaxed) + n;
            progress.removing(d, total);
        };
        let outcomes = pool(threads, &jobs, |job, out: &mut Vec<Outcome>| {
            let mut clean = true;
            for i in job.files.clone() {
                match std::fs::remove_file(root.join(&files[i].rel)) {
                    Ok(()) => {}
                    // Gone already (another process): nothing to do, nothing freed by us.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => out.push(Outcome::FileGone(i)),
                    Err(e) => {
                        clean = false;
                        out.push(Outcome::FileFailed(i, e));
                    }
                }
            }
            tick(job.files.len() as u64);
            if let Some(d) = job.dir {
                out.push(if !clean {
                    Outcome::DirHeld(d)
                } else {
                    match std::fs::remove_dir(root.join(&dirs[d].rel)) {
                        Ok(()) => Outcome::DirRemoved(d),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::DirGone(d),
                        Err(e) if is_not_empty(&e) => Outcome::DirHeld(d),
                        Err(e) => Outcome::DirFailed(d, e),
                    }
                });
                tick(1);
            }
        });
        file_failed.resize_with(files.len(), || None);
        file_gone.resize(files.len(), false);
        for o in outcomes {
            match o {
                Outcome::FileFailed(i, e) => file_failed[i] = Some(e),
                Outcome::FileGone(i) => file_gone[i] = true,
                Outcome::DirRemoved(d) => {
                    settled[d] = true;
                    removed.push(dir_removed(&dirs[d]));
                }
                Outcome::DirGone(d) => settled[d] = true,
                Outcome::DirHeld(d) => {
                    settled[d] = true;
                    held_by_jobs.push(d);
                }
                Outcome::DirFailed(d, e) => {
                    settled[d] = true;
                    blocked.insert(parent(&dirs[d].rel).to_path_buf());
                    failures.push(Failure {
                        path: dirs[d].rel.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    for d in held_by_jobs {
        kept.push(Kept {
            path: dirs[d].rel.clone(),
            reason: KeptReason::NotEmpty,
        });
        blocked.insert(parent(&dirs[d].rel).to_path_buf());
    }
    for (i, t) in files.into_iter().enumerate() {
        if let Some(e) = file_failed.get_mut(i).and_then(Option::take) {
            blocked.insert(parent(&t.rel).to_path_buf());
            failures.push(Failure {
                path: t.rel,
                error: e.to_string(),
            });
        } else if !file_gone.get(i).copied().unwrap_or(false) {
            removed.push(Removed {
                path: t.rel,
                kind: t.kind,
                rule: t.rule,
                bytes: t.bytes,
            });
        }
    }

    // What the jobs did not settle: deepest first, so a directory is only tried once everything
    // below it has had its turn.
    let rest: Vec<&DirTarget> = dirs
        .iter()
        .zip(&settled)
        .filter(|(_, s)| !**s)
        .map(|(d, _)| d)
        .collect();
    let mut start = 0;
    while start < rest.len() {
        let depth = rest[start].depth;
        let end = rest[start..]
            .iter()
            .position(|d| d.depth != depth)
            .map_or(rest.len(), |n| start + n);
        let (free, held): (Vec<&DirTarget>, Vec<&DirTarget>) = rest[start..end]
            .iter()
            .partition(|d| !blocked.contains(&d.rel));
        let mut next_blocked: Vec<PathBuf> = Vec::new();
        for d in held {
            kept.push(Kept {
                path: d.rel.clone(),
                reason: KeptReason::NotEmpty,
            });
            next_blocked.push(parent(&d.rel).to_path_buf());
        }
        let errors: HashMap<usize, io::Error> = if mode.removes() {
            let idx: Vec<usize> = (0..free.len()).collect();
            pool(threads, &idx, |&i, out| {
                if let Err(e) = std::fs::remove_dir(root.join(&free[i].rel)) {
                    out.push((i, e));
                }
            })
            .into_iter()
            .collect()
        } else {
            HashMap::new()
        };
        for (i, d) in free.into_iter().enumerate() {
            match errors.get(&i) {
                None => removed.push(dir_removed(d)),
                Some(e) if e.kind() == io::ErrorKind::NotFound => {}
                Some(e) => {
                    next_blocked.push(parent(&d.rel).to_path_buf());
                    if is_not_empty(e) {
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
        start = end;
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

fn dir_removed(d: &DirTarget) -> Removed {
    Removed {
        path: d.rel.clone(),
        kind: EntryKind::Dir,
        rule: d.rule.clone(),
        bytes: 0,
    }
}

/// Cuts the files (grouped by directory) into jobs, attaching each leaf target directory —
/// one with no target directory below it and nothing known to stay in it — to its files' job.
fn plan_jobs(files: &[Target], dirs: &[DirTarget], blocked: &HashSet<PathBuf>) -> Vec<Job> {
    let index: HashMap<&Path, usize> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.rel.as_path(), i))
        .collect();
    let mut non_leaf: HashSet<usize> = HashSet::new();
    for d in dirs {
        for a in d.rel.ancestors().skip(1) {
            if let Some(&i) = index.get(a) {
                non_leaf.insert(i);
            }
        }
    }
    let leaf = |p: &Path| {
        index
            .get(p)
            .copied()
            .filter(|i| !non_leaf.contains(i) && !blocked.contains(p))
    };
    let mut jobs = Vec::new();
    let mut with_files: HashSet<&Path> = HashSet::new();
    let mut start = 0;
    while start < files.len() {
        let dir = parent(&files[start].rel);
        let end = files[start..]
            .iter()
            .position(|t| parent(&t.rel) != dir)
            .map_or(files.len(), |n| start + n);
        with_files.insert(dir);
        match leaf(dir) {
            Some(d) if end - start <= JOB => {
                jobs.push(Job {
                    files: start..end,
                    dir: Some(d),
                });
            }
            _ => {
                let mut s = start;
                while s < end {
                    let e = (s + JOB).min(end);
                    jobs.push(Job {
                        files: s..e,
                        dir: None,
                    });
                    s = e;
                }
            }
        }
        start = end;
    }
    // Leaf targets with no files to remove first (already empty, or only subdirectories that
    // are not targets — those make the removal fail and keep the directory).
    for (i, d) in dirs.iter().enumerate() {
        if !with_files.contains(d.rel.as_path()) && leaf(&d.rel) == Some(i) {
            jobs.push(Job {
                files: 0..0,
                dir: Some(i),
            });
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::rules::Rule;
    use crate::clean::NoProgress;
    use crate::pollution::Bytecode;

    #[test]
    fn pool_runs_every_item_once() {
        let items: Vec<usize> = (0..1000).collect();
        let mut out = pool(8, &items, |&i, out| {
            if i % 7 == 0 {
                out.push(i);
            }
        });
        out.sort();
        let want: Vec<usize> = (0..1000).filter(|i| i % 7 == 0).collect();
        assert_eq!(out, want);
        let none: Vec<u8> = Vec::new();
        assert!(pool(8, &none, |_, out: &mut Vec<u8>| out.push(1)).is_empty());
    }

    fn target(p: &str) -> Target {
        Target {
            rel: PathBuf::from(p),
            kind: EntryKind::File,
            rule: Rule::Bytecode(Bytecode::Pyc),
            bytes: 1,
        }
    }

    fn dir(p: &str) -> DirTarget {
        DirTarget {
            rel: PathBuf::from(p),
            depth: Path::new(p).components().count(),
            rule: Rule::Bytecode(Bytecode::PycacheDir),
        }
    }

    #[test]
    fn leaf_directories_go_with_their_files() {
        let files = vec![
            target("a/__pycache__/x.pyc"),
            target("a/__pycache__/y.pyc"),
            target("a/z.pyc"),
            target("t/__pycache__/__pycache__/n.pyc"),
        ];
        let dirs = vec![
            dir("a/__pycache__"),
            dir("e/__pycache__"),
            dir("t/__pycache__"),
            dir("t/__pycache__/__pycache__"),
        ];
        let jobs = plan_jobs(&files, &dirs, &HashSet::new());
        let shape: Vec<(usize, Option<&str>)> = jobs
            .iter()
            .map(|j| (j.files.len(), j.dir.map(|d| dirs[d].rel.to_str().unwrap())))
            .collect();
        assert_eq!(
            shape,
            [
                (2, Some("a/__pycache__")),
                (1, None),
                (1, Some("t/__pycache__/__pycache__")),
                (0, Some("e/__pycache__")),
            ]
        );
        // A blocked directory is never attached: it is reported kept later.
        let blocked: HashSet<PathBuf> = [PathBuf::from("a/__pycache__")].into();
        let jobs = plan_jobs(&files, &dirs, &blocked);
        assert!(jobs[0].dir.is_none());
    }

    #[test]
    fn removes_and_reports_on_a_real_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for p in [
            "a/__pycache__",
            "t/__pycache__/__pycache__",
            "k/__pycache__",
        ] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        for p in [
            "a/__pycache__/x.pyc",
            "t/__pycache__/__pycache__/n.pyc",
            "k/__pycache__/x.pyc",
            "k/__pycache__/notes",
        ] {
            std::fs::write(root.join(p), "b").unwrap();
        }
        let found = Found {
            files: vec![
                target("a/__pycache__/x.pyc"),
                target("t/__pycache__/__pycache__/n.pyc"),
                target("k/__pycache__/x.pyc"),
            ],
            dirs: vec![
                dir("a/__pycache__"),
                dir("t/__pycache__"),
                dir("t/__pycache__/__pycache__"),
                dir("k/__pycache__"),
            ],
            blocked: vec![PathBuf::from("k/__pycache__")],
            ..Found::default()
        };
        let r = execute(root, found, Mode::Remove, 4, &NoProgress);
        let removed: Vec<&str> = r.removed.iter().map(|x| x.path.to_str().unwrap()).collect();
        assert_eq!(
            removed,
            [
                "a/__pycache__",
                "a/__pycache__/x.pyc",
                "k/__pycache__/x.pyc",
                "t/__pycache__",
                "t/__pycache__/__pycache__",
                "t/__pycache__/__pycache__/n.pyc",
            ]
        );
        assert_eq!((r.files, r.dirs, r.bytes), (3, 3, 3));
        assert_eq!(r.kept.len(), 1);
        assert_eq!(r.kept[0].path, Path::new("k/__pycache__"));
        assert!(root.join("k/__pycache__/notes").exists());
        assert!(!root.join("t").join("__pycache__").exists());
    }
}
