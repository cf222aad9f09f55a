//! The cleaning walk: a parallel pass over the tree that judges each entry and removes what the
//! rules name, every step relative to an open directory handle (see [`super::sys`]).
//!
//! What is removed is exactly what was examined: a directory is opened once, without following
//! a symlink, from its parent's handle; its entries are listed, judged by name, re-checked with
//! `fstatat` (no follow) right before `unlinkat` on that same handle, and the directory itself
//! goes with `unlinkat(AT_REMOVEDIR)` on its parent's handle once everything inside went. A
//! name swapped for a symlink or another type in between makes the call fail; it is reported
//! and left alone. No path string is ever resolved below the root.
//!
//! Shape: a pool of threads share a stack of tasks (open-and-list a directory, or remove one
//! batch of files of a big directory). Listing and removal overlap: while one thread waits on
//! an unlink, others walk on. Each directory counts its unfinished tasks; the thread that
//! finishes the last one settles the directory (removes it if it is a target and nothing in it
//! stays), then its parent — a loop up the ancestors, no recursion. Findings collect in
//! per-thread [`Out`]s merged at the end. Nothing here prints.
//!
//! Open descriptors stay bounded: a queued directory holds no descriptor (only its parent's,
//! shared), and a directory's own is closed when it is settled.

use super::rules::{KeptReason, Kind, Rule, Rules, Verdict};
use super::sys::{self, Dir, DirStat, Id};
use super::{Failure, Kept, Mode, Progress, Removed, SkipReason, Skipped};
use crate::context::EntryKind;
use crate::pollution::Bytecode;
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Files of one directory removed by one task: a bigger directory is shared between threads.
const BATCH: usize = 64;

/// Entries whose (device, inode) were already reported removed by an earlier root of the same
/// run, so `--dry-run a a/sub` counts each path once.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashSet<Id>>);

impl Seen {
    /// True the first time `id` is claimed.
    fn claim(&self, id: Id) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id)
    }
}

/// Everything one walk needs, shared by its threads.
pub(super) struct Walk<'a> {
    pub rules: &'a Rules,
    pub mode: Mode,
    /// The root's mount: nothing on another one is entered unless `cross_filesystems`.
    pub root: DirStat,
    pub cross_filesystems: bool,
    /// With `--context-only`: the relative paths Docker would send, and their ancestors.
    pub only: Option<&'a HashSet<PathBuf>>,
    pub seen: &'a Seen,
    pub progress: &'a dyn Progress,
}

/// What one thread found and did.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub removed: Vec<Removed>,
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
    pub failures: Vec<Failure>,
}

impl Out {
    fn merge(&mut self, o: Out) {
        self.removed.extend(o.removed);
        self.kept.extend(o.kept);
        self.skipped.extend(o.skipped);
        self.failures.extend(o.failures);
    }

    fn fail(&mut self, rel: &Path, error: impl ToString) {
        let shown = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        self.failures.push(Failure {
            path: shown.to_path_buf(),
            error: error.to_string(),
        });
    }

    fn keep(&mut self, rel: PathBuf, reason: KeptReason) {
        self.kept.push(Kept { path: rel, reason });
    }

    fn skip(&mut self, rel: PathBuf, reason: SkipReason) {
        self.skipped.push(Skipped { path: rel, reason });
    }
}

/// An open directory being cleaned.
struct Node {
    dir: Dir,
    rel: PathBuf,
    /// Its name in `parent`.
    name: CString,
    parent: Option<Arc<Node>>,
    /// Asked only by a dry run or a check, which claim it in [`Seen`] (overlapping roots).
    id: Option<Id>,
    /// Set when the directory itself goes once emptied (a `__pycache__`, debris, `--erase`).
    target: Option<Rule>,
    /// A `__pycache__` being cleaned: its children are judged one by one.
    pycache: bool,
    /// Inside a debris or `--erase` directory: everything goes but `--keep` and VCS metadata.
    subtree: Option<Rule>,
    /// A virtualenv here (a `pyvenv.cfg` among its entries) is left whole: checked on the
    /// listing itself, which names every entry anyway, instead of one more `fstatat`.
    guard_venv: bool,
    /// Listing and child tasks not finished yet (the listing counts as one).
    pending: AtomicUsize,
    /// Something inside stays, so a target directory cannot go.
    blocked: AtomicBool,
}

impl Node {
    fn block(&self) {
        self.blocked.store(true, Ordering::Relaxed);
    }
}

/// What the parent's rules made of a directory, before it is opened.
#[derive(Debug, Clone)]
enum Role {
    /// No rule names it; `kept_in_pycache`: an unnamed directory inside a `__pycache__`.
    Plain {
        kept_in_pycache: bool,
    },
    Pycache,
    Subtree(Rule),
}

struct FileJob {
    name: CString,
    rel: PathBuf,
    rule: Rule,
}

enum Task {
    /// List an open directory (the root).
    List(Arc<Node>),
    /// Open the directory `name` of `parent` and list it.
    Enter {
        parent: Arc<Node>,
        name: CString,
        rel: PathBuf,
        role: Role,
    },
    /// Remove these files of `node`.
    Files {
        node: Arc<Node>,
        files: Vec<FileJob>,
    },
}

/// The shared stack of tasks.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    tasks: Vec<Task>,
    /// Threads running a task: an empty stack with none busy means the walk is over.
    busy: usize,
    /// Threads waiting for a task. A push wakes one only when there is one: std's
    /// `notify_one` makes a `futex` call even with no waiter (once per queued directory).
    idle: usize,
}

impl Queue {
    fn push(&self, t: Task) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.tasks.push(t);
        let wake = s.idle > 0;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
    }

    /// The next task, or `None` once every thread is idle and nothing is left.
    fn pop(&self, finished_one: bool) -> Option<Task> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if finished_one {
            s.busy -= 1;
        }
        loop {
            if let Some(t) = s.tasks.pop() {
                s.busy += 1;
                return Some(t);
            }
            if s.busy == 0 {
                if s.idle > 0 {
                    self.ready.notify_all();
                }
                return None;
            }
            s.idle += 1;
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.idle -= 1;
        }
    }
}

/// Counts for the progress display, flushed every 512 entries per thread.
struct Counter<'a> {
    shared: &'a AtomicU64,
    local: u64,
}

impl Walk<'_> {
    /// Cleans below `root` (an open, already validated directory) with `threads` threads.
    pub fn run(&self, root: Dir, threads: usize) -> Out {
        let node = Arc::new(Node {
            dir: root,
            rel: PathBuf::new(),
            name: CString::default(),
            parent: None,
            id: Some(self.root.id),
            target: None,
            pycache: false,
            subtree: None,
            guard_venv: false,
            pending: AtomicUsize::new(1),
            blocked: AtomicBool::new(false),
        });
        let queue = Queue {
            state: Mutex::new(QueueState {
                tasks: vec![Task::List(node)],
                busy: 0,
                idle: 0,
            }),
            ready: Condvar::new(),
        };
        let walked = AtomicU64::new(0);
        let results = Mutex::new(Out::default());
        let work = || {
            let mut out = Out::default();
            let mut count = Counter {
                shared: &walked,
                local: 0,
            };
            let mut finished = false;
            while let Some(task) = queue.pop(finished) {
                self.task(task, &queue, &mut out, &mut count);
                finished = true;
            }
            results.lock().unwrap_or_else(|e| e.into_inner()).merge(out);
        };
        std::thread::scope(|s| {
            for _ in 1..threads.max(1) {
                s.spawn(work);
            }
            work();
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn task(&self, task: Task, queue: &Queue, out: &mut Out, count: &mut Counter<'_>) {
        match task {
            Task::List(node) => self.list(node, queue, out, count),
            Task::Enter {
                parent,
                name,
                rel,
                role,
            } => {
                // The child, once settled, finishes its parent's task (see `finish`).
                match self.enter(&parent, name, rel, role, out) {
                    Some(node) => self.list(node, queue, out, count),
                    None => self.finish(parent, out),
                }
            }
            Task::Files { node, files } => {
                self.remove_files(&node, files, out);
                self.finish(node, out);
            }
        }
    }

    /// Opens a directory its parent listed; `None` when it is not to be entered (the reason is
    /// recorded and the parent marked as keeping something).
    fn enter(
        &self,
        parent: &Arc<Node>,
        name: CString,
        rel: PathBuf,
        role: Role,
        out: &mut Out,
    ) -> Option<Arc<Node>> {
        // Staying on the root's mount: where the kernel has `openat2`, the open itself refuses
        // a mount point, and a removing run needs no `statx` per directory.
        let opened = if self.cross_filesystems {
            parent.dir.open_child(&name).map(|d| (d, true))
        } else {
            match parent.dir.open_child_same_mount(&name) {
                Ok(Some(d)) => Ok((d, true)),
                Ok(None) => parent.dir.open_child(&name).map(|d| (d, false)),
                Err(e) => Err(e),
            }
        };
        let (dir, mount_checked) = match opened {
            Ok(d) => d,
            Err(e) if sys::is_gone(&e) => return None,
            Err(e) => {
                parent.block();
                if sys::other_mount(&e) {
                    out.skip(rel, SkipReason::OtherFilesystem);
                } else if sys::not_a_dir(&e) {
                    out.fail(
                        &rel,
                        "changed during the run (no longer a directory); left alone",
                    );
                } else {
                    out.fail(&rel, e);
                }
                return None;
            }
        };
        // A dry run needs the identity (overlapping roots count a directory once).
        let id = if mount_checked && self.mode.removes() {
            None
        } else {
            let st = match dir.stat() {
                Ok(st) => st,
                Err(e) => {
                    parent.block();
                    out.fail(&rel, e);
                    return None;
                }
            };
            if !self.cross_filesystems && !self.root.same_mount(&st) {
                parent.block();
                out.skip(rel, SkipReason::OtherFilesystem);
                return None;
            }
            Some(st.id)
        };
        let rule = match &role {
            Role::Plain { .. } => None,
            Role::Pycache => Some(Rule::Bytecode(Bytecode::PycacheDir)),
            Role::Subtree(r) => Some(r.clone()),
        };
        let guard_venv = !matches!(role, Role::Pycache) && self.rules.guards_venv(rule.as_ref());
        if let Role::Plain {
            kept_in_pycache: true,
        } = role
        {
            out.keep(rel.clone(), KeptReason::NotPollution);
        }
        Some(Arc::new(Node {
            dir,
            rel,
            name,
            parent: Some(parent.clone()),
            id,
            pycache: matches!(role, Role::Pycache),
            subtree: match role {
                Role::Subtree(ref r) => Some(r.clone()),
                _ => None,
            },
            target: rule,
            guard_venv,
            pending: AtomicUsize::new(1),
            blocked: AtomicBool::new(false),
        }))
    }

    /// Lists a directory, queues its subdirectories, removes the files the rules name.
    fn list(&self, node: Arc<Node>, queue: &Queue, out: &mut Out, count: &mut Counter<'_>) {
        // The whole listing first: a `pyvenv.cfg` anywhere in it means nothing here is touched.
        let mut entries: Vec<std::io::Result<(CString, Option<Kind>)>> = Vec::new();
        for entry in node.dir.entries() {
            let failed = entry.is_err();
            entries.push(entry);
            if failed {
                break;
            }
        }
        let venv = node.guard_venv
            && entries
                .iter()
                .any(|e| matches!(e, Ok((name, _)) if name.as_bytes() == b"pyvenv.cfg"));
        if let (true, Some(parent)) = (venv, node.parent.clone()) {
            // As if never entered: the parent keeps it, and the directory is not settled.
            parent.block();
            out.skip(node.rel.clone(), SkipReason::Virtualenv);
            drop(node);
            self.finish(parent, out);
            return;
        }
        let mut files: Vec<FileJob> = Vec::new();
        for entry in entries {
            count.local += 1;
            if count.local == 512 {
                let n = count.shared.fetch_add(512, Ordering::Relaxed) + 512;
                self.progress.walking(n);
                count.local = 0;
            }
            let (name, kind) = match entry {
                Ok(e) => e,
                Err(e) => {
                    node.block();
                    out.fail(&node.rel, e);
                    break;
                }
            };
            let os = OsStr::from_bytes(name.to_bytes());
            let rel = node.rel.join(os);
            if self.only.is_some_and(|only| !only.contains(&rel)) {
                // Not in the build context: not ours to judge, and it stays.
                node.block();
                continue;
            }
            let kind = match kind {
                Some(k) => k,
                None => match node.dir.stat_at(&name) {
                    Ok(st) => st.kind,
                    Err(e) if sys::is_gone(&e) => continue,
                    Err(e) => {
                        node.block();
                        out.fail(&rel, e);
                        continue;
                    }
                },
            };
            let verdict = match &node.subtree {
                Some(rule) => self.rules.judge_in_subtree(&rel, os, kind, rule),
                None => self.rules.judge(&rel, os, kind, node.pycache),
            };
            let role = match verdict {
                Verdict::Pass if kind == Kind::Dir => Role::Plain {
                    kept_in_pycache: false,
                },
                Verdict::Pass => continue,
                Verdict::Prune => {
                    node.block();
                    continue;
                }
                Verdict::Kept(KeptReason::NotPollution) if kind == Kind::Dir => {
                    // Entered like any directory: bytecode inside still goes.
                    node.block();
                    Role::Plain {
                        kept_in_pycache: true,
                    }
                }
                Verdict::Kept(reason) => {
                    node.block();
                    out.keep(rel, reason);
                    continue;
                }
                Verdict::Remove(rule) => {
                    files.push(FileJob { name, rel, rule });
                    continue;
                }
                Verdict::Pycache => Role::Pycache,
                Verdict::Subtree(rule) => Role::Subtree(rule),
            };
            node.pending.fetch_add(1, Ordering::Relaxed);
            queue.push(Task::Enter {
                parent: node.clone(),
                name,
                rel,
                role,
            });
        }
        // A big directory's files are shared out; this thread takes the first batch.
        while files.len() > BATCH {
            let rest = files.split_off(files.len() - BATCH);
            node.pending.fetch_add(1, Ordering::Relaxed);
            queue.push(Task::Files {
                node: node.clone(),
                files: rest,
            });
        }
        self.remove_files(&node, files, out);
        self.finish(node, out);
    }

    /// Removes (or, without [`Mode::Remove`], predicts the removal of) files of one directory,
    /// each re-checked with `fstatat` on the directory's handle right before.
    fn remove_files(&self, node: &Node, files: Vec<FileJob>, out: &mut Out) {
        for f in files {
            let st = match node.dir.stat_at(&f.name) {
                Ok(st) => st,
                Err(e) if sys::is_gone(&e) => continue,
                Err(e) => {
                    node.block();
                    out.fail(&f.rel, e);
                    continue;
                }
            };
            if st.kind == Kind::Dir {
                node.block();
                out.fail(
                    &f.rel,
                    "changed during the run (now a directory); left alone",
                );
                continue;
            }
            if !self.cross_filesystems && st.id.dev != self.root.id.dev {
                node.block();
                out.skip(f.rel, SkipReason::OtherFilesystem);
                continue;
            }
            let report = if self.mode.removes() {
                match node.dir.unlink(&f.name) {
                    Ok(()) => true,
                    Err(e) if sys::is_gone(&e) => false,
                    Err(e) => {
                        node.block();
                        out.fail(&f.rel, e);
                        false
                    }
                }
            } else {
                self.seen.claim(st.id)
            };
            if report {
                out.removed.push(Removed {
                    path: f.rel,
                    kind: entry_kind(st.kind),
                    rule: f.rule,
                    bytes: st.size,
                });
            }
        }
    }

    /// One task of `node` is done; when it was the last, settle `node`, then its parent, and
    /// so on up.
    fn finish(&self, node: Arc<Node>, out: &mut Out) {
        let mut node = node;
        loop {
            if node.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            let Some(parent) = node.parent.clone() else {
                return;
            };
            if let Some(rule) = &node.target {
                self.settle(&node, &parent, rule, out);
            }
            node = parent;
        }
    }

    /// Removes a finished target directory from its parent, or records why it stays.
    fn settle(&self, node: &Node, parent: &Node, rule: &Rule, out: &mut Out) {
        if node.blocked.load(Ordering::Relaxed) {
            parent.block();
            out.keep(node.rel.clone(), KeptReason::NotEmpty);
            return;
        }
        let report = if self.mode.removes() {
            match parent.dir.rmdir(&node.name) {
                Ok(()) => true,
                Err(e) if sys::is_gone(&e) => false,
                Err(e) => {
                    parent.block();
                    if sys::not_empty(&e) {
                        // Something we did not see (created meanwhile) is inside.
                        out.keep(node.rel.clone(), KeptReason::NotEmpty);
                    } else if sys::not_a_dir(&e) {
                        out.fail(
                            &node.rel,
                            "changed during the run (no longer a directory); left alone",
                        );
                    } else {
                        out.fail(&node.rel, e);
                    }
                    false
                }
            }
        } else {
            node.id.is_none_or(|id| self.seen.claim(id))
        };
        if report {
            out.removed.push(Removed {
                path: node.rel.clone(),
                kind: EntryKind::Dir,
                rule: rule.clone(),
                bytes: 0,
            });
        }
    }
}

fn entry_kind(kind: Kind) -> EntryKind {
    match kind {
        Kind::File => EntryKind::File,
        Kind::Dir => EntryKind::Dir,
        Kind::Symlink => EntryKind::Symlink,
    }
}

/// The relative paths `--context-only` may touch: every entry Docker would send, and the
/// directories leading to them (walked through, not judged unless sent themselves).
pub(super) fn context_paths(entries: &[crate::context::Entry]) -> HashSet<PathBuf> {
    let mut set = HashSet::with_capacity(entries.len() * 2);
    for e in entries {
        for a in e.path.ancestors() {
            if a.as_os_str().is_empty() || !set.insert(a.to_path_buf()) {
                break;
            }
        }
    }
    set
}
