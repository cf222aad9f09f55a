//! Finding what to remove: a parallel walk of the tree, or a pass over the context's entries.
//!
//! Workers classify each entry by name (the directory entry's type comes from `readdir`, no
//! `stat`), ask for metadata only for what will be removed (its size) and for directories no
//! rule names (the `pyvenv.cfg` probe), and keep their findings in a per-thread [`Found`] that
//! is merged once at the end — no locks or channels on the hot path. Nothing is removed here.

use super::rules::{KeptReason, Kind, Rule, Rules, Verdict};
use super::{Failure, Kept, Progress, SkipReason, Skipped};
use crate::context::{Entry, EntryKind};
use ignore::{ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A file or symlink to remove.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub rel: PathBuf,
    pub kind: EntryKind,
    pub rule: Rule,
    pub bytes: u64,
}

/// A directory to remove once emptied.
#[derive(Debug, Clone)]
pub(super) struct DirTarget {
    pub rel: PathBuf,
    /// Components below the root: deeper directories go first.
    pub depth: usize,
    pub rule: Rule,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub files: Vec<Target>,
    pub dirs: Vec<DirTarget>,
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
    pub failures: Vec<Failure>,
    /// Directories that must stay because something below them stays (relative paths).
    pub blocked: Vec<PathBuf>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.kept.extend(other.kept);
        self.skipped.extend(other.skipped);
        self.failures.extend(other.failures);
        self.blocked.extend(other.blocked);
    }

    fn keep(&mut self, rel: &Path, reason: KeptReason) {
        self.kept.push(Kept {
            path: rel.to_path_buf(),
            reason,
        });
        if let Some(parent) = rel.parent() {
            self.blocked.push(parent.to_path_buf());
        }
    }

    fn fail(&mut self, rel: &Path, error: impl ToString) {
        // The root itself is shown as `.`.
        let shown = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        self.failures.push(Failure {
            path: shown.to_path_buf(),
            error: error.to_string(),
        });
        if let Some(parent) = rel.parent() {
            self.blocked.push(parent.to_path_buf());
        }
    }

    /// Records a file to remove, asking `lstat` for its size.
    fn target(&mut self, root: &Path, rel: &Path, kind: EntryKind, rule: Rule) {
        let bytes = std::fs::symlink_metadata(root.join(rel)).map_or(0, |m| m.len());
        self.files.push(Target {
            rel: rel.to_path_buf(),
            kind,
            rule,
            bytes,
        });
    }

    fn dir(&mut self, rel: &Path, rule: Rule) {
        self.dirs.push(DirTarget {
            rel: rel.to_path_buf(),
            depth: rel.components().count(),
            rule,
        });
    }
}

fn is_venv(abs: &Path) -> bool {
    std::fs::symlink_metadata(abs.join("pyvenv.cfg")).is_ok()
}

fn is_pycache(p: Option<&Path>) -> bool {
    p.and_then(Path::file_name) == Some(OsStr::new("__pycache__"))
}

fn entry_kind(kind: Kind) -> EntryKind {
    match kind {
        Kind::File => EntryKind::File,
        Kind::Dir => EntryKind::Dir,
        Kind::Symlink => EntryKind::Symlink,
    }
}

/// Walks `root` (canonical) in parallel with `ignore`, every filter of its own off, never
/// following a symlink.
pub(super) fn walk_tree(
    root: &Path,
    rules: &Rules,
    threads: usize,
    progress: &dyn Progress,
) -> Found {
    let walker = WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .build_parallel();
    let shared = Shared {
        root,
        rules,
        progress,
        walked: AtomicU64::new(0),
        out: Mutex::new(Found::default()),
    };
    walker.visit(&mut Builder { shared: &shared });
    shared.out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// State every worker reads; each worker's findings are merged into `out` when it ends.
struct Shared<'a> {
    root: &'a Path,
    rules: &'a Rules,
    progress: &'a dyn Progress,
    walked: AtomicU64,
    out: Mutex<Found>,
}

struct Builder<'s> {
    shared: &'s Shared<'s>,
}

impl<'s> ParallelVisitorBuilder<'s> for Builder<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            shared: self.shared,
            found: Found::default(),
            pending: 0,
        })
    }
}

struct Visitor<'s> {
    shared: &'s Shared<'s>,
    found: Found,
    pending: u64,
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        let found = std::mem::take(&mut self.found);
        let mut out = self.shared.out.lock().unwrap_or_else(|e| e.into_inner());
        out.merge(found);
    }
}

impl ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> WalkState {
        self.pending += 1;
        if self.pending == 512 {
            let total = self.shared.walked.fetch_add(512, Ordering::Relaxed) + 512;
            self.shared.progress.walking(total);
            self.pending = 0;
        }
        let root = self.shared.root;
        let dent = match entry {
            Ok(d) => d,
            Err(e) => {
                let rel = error_path(&e)
                    .map(|p| p.strip_prefix(root).unwrap_or(p).to_path_buf())
                    .unwrap_or_default();
                self.found.fail(&rel, io_message(&e));
                return WalkState::Continue;
            }
        };
        if dent.depth() == 0 {
            return WalkState::Continue;
        }
        let Some(ft) = dent.file_type() else {
            return WalkState::Continue;
        };
        let kind = Kind::from(ft);
        let path = dent.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let name = dent.file_name();
        let in_pycache = dent.depth() >= 2 && is_pycache(rel.parent());
        let verdict = self
            .shared
            .rules
            .judge(rel, name, kind, in_pycache, || is_venv(path));
        apply(&mut self.found, root, rel, kind, verdict, self.shared.rules)
    }
}

/// Records a verdict and tells the walk whether to descend.
fn apply(
    found: &mut Found,
    root: &Path,
    rel: &Path,
    kind: Kind,
    verdict: Verdict,
    rules: &Rules,
) -> WalkState {
    match verdict {
        Verdict::Pass => WalkState::Continue,
        Verdict::Prune => WalkState::Skip,
        Verdict::PruneVenv => {
            found.skipped.push(Skipped {
                path: rel.to_path_buf(),
                reason: SkipReason::Virtualenv,
            });
            WalkState::Skip
        }
        Verdict::Kept(reason) => {
            found.keep(rel, reason);
            if reason == KeptReason::Keep {
                WalkState::Skip
            } else {
                WalkState::Continue
            }
        }
        Verdict::Remove(rule) => {
            found.target(root, rel, entry_kind(kind), rule);
            WalkState::Continue
        }
        Verdict::Pycache => {
            found.dir(rel, Rule::Bytecode(crate::pollution::Bytecode::PycacheDir));
            WalkState::Continue
        }
        Verdict::Subtree(rule) => {
            found.dir(rel, rule.clone());
            subtree(found, root, rel, &rule, rules);
            WalkState::Skip
        }
    }
}

/// Everything below a debris or `--erase` directory goes, except what `--keep` protects.
/// Walked sequentially by the worker that met it; other workers carry on with the tree.
fn subtree(found: &mut Found, root: &Path, top: &Path, rule: &Rule, rules: &Rules) {
    let mut it = walkdir::WalkDir::new(root.join(top))
        .follow_links(false)
        .min_depth(1)
        .into_iter();
    while let Some(next) = it.next() {
        let e = match next {
            Ok(e) => e,
            Err(err) => {
                let rel = err
                    .path()
                    .map(|p| p.strip_prefix(root).unwrap_or(p).to_path_buf())
                    .unwrap_or_else(|| top.to_path_buf());
                let msg = err
                    .io_error()
                    .map_or_else(|| err.to_string(), |io| io.to_string());
                found.fail(&rel, msg);
                continue;
            }
        };
        let ft = e.file_type();
        let kind = Kind::from(ft);
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        match rules.judge_in_subtree(rel, e.file_name(), kind, rule) {
            Verdict::Kept(reason) => {
                found.keep(rel, reason);
                if kind == Kind::Dir {
                    it.skip_current_dir();
                }
            }
            Verdict::Subtree(r) => found.dir(rel, r),
            Verdict::Remove(r) => found.target(root, rel, entry_kind(kind), r),
            _ => {}
        }
    }
}

fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.first().and_then(error_path),
        _ => None,
    }
}

/// The underlying message, without `ignore`'s own path prefix (the report carries the path).
fn io_message(e: &ignore::Error) -> String {
    e.io_error()
        .map_or_else(|| e.to_string(), |io| io.to_string())
}

/// Classifies the entries Docker would send (sorted by path bytes, so a directory comes before
/// everything below it).
pub(super) fn from_entries(root: &Path, entries: &[Entry], rules: &Rules) -> Found {
    let mut found = Found::default();
    // Directories whose contents are not ours to judge (pruned, kept) or all go (subtrees).
    let mut pruned: HashSet<&Path> = HashSet::new();
    let mut subtrees: HashMap<&Path, Rule> = HashMap::new();
    let mut pycaches: HashSet<&Path> = HashSet::new();
    for e in entries {
        let rel = e.path.as_path();
        let kind = match e.kind {
            // Pipes and devices are files to `clean`, as lstat's view in `Kind::from` has it.
            EntryKind::File | EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                Kind::File
            }
            EntryKind::Dir => Kind::Dir,
            EntryKind::Symlink => Kind::Symlink,
        };
        let mut inside: Option<&Rule> = None;
        let mut skip = false;
        for a in rel.ancestors().skip(1) {
            if pruned.contains(a) {
                skip = true;
                break;
            }
            if let Some(r) = subtrees.get(a) {
                inside = Some(r);
            }
        }
        if skip {
            continue;
        }
        let name = e.file_name();
        let verdict = match inside {
            Some(rule) => rules.judge_in_subtree(rel, name, kind, rule),
            None => {
                let in_pycache = rel.parent().is_some_and(|p| pycaches.contains(p));
                rules.judge(rel, name, kind, in_pycache, || is_venv(&root.join(rel)))
            }
        };
        match verdict {
            Verdict::Prune | Verdict::PruneVenv | Verdict::Kept(KeptReason::Keep) => {
                pruned.insert(rel);
            }
            Verdict::Pycache => {
                pycaches.insert(rel);
            }
            Verdict::Subtree(ref r) if inside.is_none() => {
                subtrees.insert(rel, r.clone());
            }
            _ => {}
        }
        match verdict {
            // Sizes come from the scan: no second `stat`.
            Verdict::Remove(rule) => found.files.push(Target {
                rel: rel.to_path_buf(),
                kind: e.kind,
                rule,
                bytes: e.size,
            }),
            Verdict::Subtree(rule) => found.dir(rel, rule),
            v => {
                apply(&mut found, root, rel, kind, v, rules);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::StatInfo;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            size: 3,
            link_target: None,
            rdev: 0,
            stat: StatInfo::default(),
        }
    }

    #[test]
    fn entries_are_classified_like_the_walk() {
        let t = tempfile::tempdir().unwrap();
        let rules = Rules::new(&["pytest".into()], &[], &["keep".into()], false).unwrap();
        let entries = vec![
            entry(".pytest_cache", EntryKind::Dir),
            entry(".pytest_cache/v", EntryKind::File),
            entry("a", EntryKind::Dir),
            entry("a/__pycache__", EntryKind::Dir),
            entry("a/__pycache__/m.pyc", EntryKind::File),
            entry("a/__pycache__/notes", EntryKind::File),
            entry("a/m.py", EntryKind::File),
            entry("keep", EntryKind::Dir),
            entry("keep/x.pyc", EntryKind::File),
        ];
        let f = from_entries(t.path(), &entries, &rules);
        let files: Vec<_> = f.files.iter().map(|t| t.rel.to_str().unwrap()).collect();
        assert_eq!(files, [".pytest_cache/v", "a/__pycache__/m.pyc"]);
        let dirs: Vec<_> = f.dirs.iter().map(|t| t.rel.to_str().unwrap()).collect();
        assert_eq!(dirs, [".pytest_cache", "a/__pycache__"]);
        let kept: Vec<_> = f
            .kept
            .iter()
            .map(|k| (k.path.to_str().unwrap(), k.reason))
            .collect();
        assert_eq!(
            kept,
            [
                ("a/__pycache__/notes", KeptReason::NotPollution),
                ("keep", KeptReason::Keep)
            ]
        );
        assert!(f.blocked.contains(&PathBuf::from("a/__pycache__")));
    }
}
