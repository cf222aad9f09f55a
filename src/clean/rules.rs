//! What `clean` removes and what it protects, decided by name and relative path only.
//!
//! Bytecode comes from [`crate::pollution::classify`]; the opt-in `--debris` topics live in one
//! table, [`TOPICS`]; `--erase` and `--keep` are user globs. This module never touches the
//! filesystem: the walkers ask it about each entry and do the I/O themselves.
//!
//! Glob syntax (`--erase`, `--keep`), chosen to read like a `.gitignore` line:
//! - relative to the root (a leading `./` is dropped);
//! - a glob without `/` matches the entry's name at any depth (`*.log`, `node_modules`);
//!   a glob with `/` matches the whole relative path (`build/*.o`, `docs/**/_build`), and a
//!   leading `/` anchors a name at the root (`/setup.log`);
//! - `*` and `?` never cross `/`, `**` does; `[a-z]`, `[!a-z]`, `{a,b}` and `\` escapes work
//!   (globset's syntax with `literal_separator`);
//! - a trailing `/` makes the glob match directories only (`out/`).

use crate::pollution::{classify, Bytecode};
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Which kind of entry a debris pattern applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Dir,
    File,
    /// Both (e.g. `*.egg-info`, which distutils wrote as a file and setuptools as a directory).
    Any,
}

/// How a debris pattern matches a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    Exact(&'static str),
    /// The name starts with this and has something after it.
    Prefix(&'static str),
    /// The name ends with this and has something before it.
    Suffix(&'static str),
}

impl NameMatch {
    fn matches(self, name: &[u8]) -> bool {
        match self {
            NameMatch::Exact(s) => name == s.as_bytes(),
            NameMatch::Prefix(s) => name.len() > s.len() && name.starts_with(s.as_bytes()),
            NameMatch::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_bytes()),
        }
    }
}

/// One name a debris topic removes.
#[derive(Debug, Clone, Copy)]
pub struct DebrisPattern {
    pub name: NameMatch,
    pub applies: Applies,
}

/// An opt-in `--debris` topic: tool output that is safe to delete and never belongs in a context.
#[derive(Debug)]
pub struct Topic {
    pub name: &'static str,
    pub about: &'static str,
    pub patterns: &'static [DebrisPattern],
    /// Its directories hold virtualenvs that are debris themselves (`.tox/py312`), so the
    /// virtualenv protection does not apply inside them. Every other rule stops at a venv.
    pub holds_venvs: bool,
}

const fn dir(name: &'static str) -> DebrisPattern {
    DebrisPattern {
        name: NameMatch::Exact(name),
        applies: Applies::Dir,
    }
}

const fn file(name: &'static str) -> DebrisPattern {
    DebrisPattern {
        name: NameMatch::Exact(name),
        applies: Applies::File,
    }
}

/// Every debris topic, in the order `--help` and hints list them. The one place they are defined.
pub const TOPICS: &[Topic] = &[
    Topic {
        name: "pytest",
        about: ".pytest_cache",
        patterns: &[dir(".pytest_cache")],
        holds_venvs: false,
    },
    Topic {
        name: "mypy",
        about: ".mypy_cache, .dmypy.json",
        patterns: &[dir(".mypy_cache"), file(".dmypy.json")],
        holds_venvs: false,
    },
    Topic {
        name: "ruff",
        about: ".ruff_cache",
        patterns: &[dir(".ruff_cache")],
        holds_venvs: false,
    },
    Topic {
        name: "coverage",
        about: ".coverage, .coverage.*, coverage.xml",
        patterns: &[
            file(".coverage"),
            DebrisPattern {
                name: NameMatch::Prefix(".coverage."),
                applies: Applies::File,
            },
            file("coverage.xml"),
        ],
        holds_venvs: false,
    },
    Topic {
        name: "tox",
        about: ".tox, .nox",
        patterns: &[dir(".tox"), dir(".nox")],
        holds_venvs: true,
    },
    Topic {
        name: "egg-info",
        about: "*.egg-info",
        patterns: &[DebrisPattern {
            name: NameMatch::Suffix(".egg-info"),
            applies: Applies::Any,
        }],
        holds_venvs: false,
    },
    Topic {
        name: "jupyter",
        about: ".ipynb_checkpoints",
        patterns: &[dir(".ipynb_checkpoints")],
        holds_venvs: false,
    },
    Topic {
        name: "htmlcov",
        about: "htmlcov",
        patterns: &[dir("htmlcov")],
        holds_venvs: false,
    },
];

/// The valid `--debris` values, for hints: every topic name, then `all`.
pub fn topic_names() -> String {
    let mut names: Vec<&str> = TOPICS.iter().map(|t| t.name).collect();
    names.push("all");
    names.join(", ")
}

/// Why an entry is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Bytecode(Bytecode),
    Debris(&'static str),
    Erase(Arc<str>),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Bytecode(Bytecode::Pyc) => f.write_str("pyc"),
            Rule::Bytecode(Bytecode::Pyo) => f.write_str("pyo"),
            Rule::Bytecode(Bytecode::PycacheDir) => f.write_str("pycache"),
            Rule::Debris(t) => write!(f, "debris:{t}"),
            Rule::Erase(g) => write!(f, "erase:{g}"),
        }
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A rule set could not be built from the user's options.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("unknown debris topic `{0}`")]
    UnknownTopic(String),
    #[error("invalid glob `{glob}` for --{option}")]
    BadGlob {
        option: &'static str,
        glob: String,
        #[source]
        source: globset::Error,
    },
}

impl crate::diagnostics::Diagnose for RulesError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            RulesError::UnknownTopic(_) => format!("valid topics: {}", topic_names()),
            RulesError::BadGlob { .. } => "globs are relative to the root: `*` and `?` stay within \
one path component, `**` crosses them, `[a-z]` and `{a,b}` work, a trailing `/` means directories only"
                .to_string(),
        })
    }
}

/// A compiled list of user globs (`--erase` or `--keep`).
#[derive(Debug, Clone)]
pub struct Globs {
    /// Globs without `/`: matched against the entry's name.
    names: GlobSet,
    name_meta: Vec<(Arc<str>, bool)>,
    /// Globs with `/`: matched against the relative path.
    paths: GlobSet,
    path_meta: Vec<(Arc<str>, bool)>,
}

impl Globs {
    /// Compiles the globs given to `--OPTION`.
    pub fn new(option: &'static str, globs: &[String]) -> Result<Globs, RulesError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let (mut name_meta, mut path_meta) = (Vec::new(), Vec::new());
        for original in globs {
            let mut g = original.trim();
            while let Some(rest) = g.strip_prefix("./") {
                g = rest;
            }
            // A leading `/` anchors the glob at the root, as in `.gitignore`.
            let anchored = g.starts_with('/');
            let g = g.trim_start_matches('/');
            let dir_only = g.ends_with('/');
            let g = g.trim_end_matches('/');
            if g.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| RulesError::BadGlob {
                    option,
                    glob: original.clone(),
                    source,
                })?;
            let meta = (Arc::<str>::from(original.as_str()), dir_only);
            if anchored || g.contains('/') {
                paths.add(glob);
                path_meta.push(meta);
            } else {
                names.add(glob);
                name_meta.push(meta);
            }
        }
        let build = |b: GlobSetBuilder, glob: &str| {
            b.build().map_err(|source| RulesError::BadGlob {
                option,
                glob: glob.to_string(),
                source,
            })
        };
        Ok(Globs {
            names: build(names, "")?,
            name_meta,
            paths: build(paths, "")?,
            path_meta,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.name_meta.is_empty() && self.path_meta.is_empty()
    }

    /// The original text of the first glob matching this entry, if any.
    pub fn matching(&self, rel: &Path, name: &OsStr, is_dir: bool) -> Option<Arc<str>> {
        if !self.name_meta.is_empty() {
            let c = Candidate::new(name);
            if let Some(g) = first(&self.names, &self.name_meta, &c, is_dir) {
                return Some(g);
            }
        }
        if !self.path_meta.is_empty() {
            let c = Candidate::new(rel);
            if let Some(g) = first(&self.paths, &self.path_meta, &c, is_dir) {
                return Some(g);
            }
        }
        None
    }
}

fn first(
    set: &GlobSet,
    meta: &[(Arc<str>, bool)],
    c: &Candidate<'_>,
    is_dir: bool,
) -> Option<Arc<str>> {
    if !set.is_match_candidate(c) {
        return None;
    }
    set.matches_candidate(c)
        .into_iter()
        .map(|i| &meta[i])
        .find(|(_, dir_only)| is_dir || !dir_only)
        .map(|(g, _)| g.clone())
}

/// The kind of entry being judged. Symlinks are entries in their own right: never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl From<std::fs::FileType> for Kind {
    /// From `lstat`'s view: a symlink is a symlink whatever it points to.
    fn from(ft: std::fs::FileType) -> Kind {
        if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        }
    }
}

/// Why an entry that a rule names is left in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeptReason {
    /// Protected by `--keep`.
    Keep,
    /// Inside a `__pycache__` but not named by any rule; it keeps its directory.
    NotPollution,
    /// A directory the rules name, still holding something they do not.
    NotEmpty,
    /// A symlink with a directory rule's name (`__pycache__`): not followed, not removed.
    Symlink,
}

/// What to do with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do; descend if it is a directory.
    Pass,
    /// Do not enter this directory (`.git`, `.hg`, `.svn`), whatever any rule says.
    Prune,
    /// Leave it in place and report it; a directory is not entered.
    Kept(KeptReason),
    /// Remove this file or symlink (never a symlink's target).
    Remove(Rule),
    /// A `__pycache__` directory: its children are judged one by one; it goes if they all go.
    Pycache,
    /// A debris or `--erase` directory: everything below goes (except `--keep`), then it.
    Subtree(Rule),
}

/// Version-control metadata directories: never entered, never cleaned.
const VCS_DIRS: &[&[u8]] = &[b".git", b".hg", b".svn"];

fn is_vcs(name: &OsStr, kind: Kind) -> bool {
    kind == Kind::Dir && VCS_DIRS.contains(&name.as_bytes())
}

/// The complete set of rules for one run.
#[derive(Debug, Clone)]
pub struct Rules {
    debris: Vec<&'static Topic>,
    erase: Globs,
    keep: Globs,
    include_venv: bool,
}

impl Rules {
    /// Builds the rules from `--debris`, `--erase`, `--keep` and `--include-venv`.
    pub fn new(
        debris: &[String],
        erase: &[String],
        keep: &[String],
        include_venv: bool,
    ) -> Result<Rules, RulesError> {
        let mut topics: Vec<&'static Topic> = Vec::new();
        for t in debris.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if t == "all" {
                topics = TOPICS.iter().collect();
                continue;
            }
            let topic = TOPICS
                .iter()
                .find(|x| x.name == t)
                .ok_or_else(|| RulesError::UnknownTopic(t.to_string()))?;
            if !topics.iter().any(|x| x.name == topic.name) {
                topics.push(topic);
            }
        }
        Ok(Rules {
            debris: topics,
            erase: Globs::new("erase", erase)?,
            keep: Globs::new("keep", keep)?,
            include_venv,
        })
    }

    /// Bytecode only: the default `ctxbuild clean`.
    pub fn bytecode() -> Rules {
        Rules {
            debris: Vec::new(),
            erase: Globs::empty(),
            keep: Globs::empty(),
            include_venv: false,
        }
    }

    /// The debris topics in force.
    pub fn topics(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.debris.iter().map(|t| t.name)
    }

    fn debris_topic(&self, name: &[u8], kind: Kind) -> Option<&'static str> {
        self.debris.iter().find_map(|t| {
            t.patterns
                .iter()
                .any(|p| {
                    let applies = match p.applies {
                        Applies::Any => true,
                        Applies::Dir => kind == Kind::Dir,
                        Applies::File => kind != Kind::Dir,
                    };
                    applies && p.name.matches(name)
                })
                .then_some(t.name)
        })
    }

    /// Whether `--keep` protects this entry.
    pub fn kept(&self, rel: &Path, name: &OsStr, kind: Kind) -> bool {
        !self.keep.is_empty() && self.keep.matching(rel, name, kind == Kind::Dir).is_some()
    }

    /// Judges an entry met by the walk (not the root), outside any removal subtree.
    ///
    /// `rel` is relative to the root, `name` its last component, `in_pycache` whether its parent
    /// is a `__pycache__` directory being cleaned. Whether a directory is a virtualenv is not
    /// decided here: the walker asks [`Rules::guards_venv`] once it holds the directory open,
    /// so the `pyvenv.cfg` probe is made on the very directory it will enter.
    pub fn judge(&self, rel: &Path, name: &OsStr, kind: Kind, in_pycache: bool) -> Verdict {
        if is_vcs(name, kind) {
            return Verdict::Prune;
        }
        let named = self.named(rel, name, kind);
        if self.kept(rel, name, kind) {
            // A protected directory is not entered: nothing below it can be removed.
            return if named.is_some() || kind == Kind::Dir || in_pycache {
                Verdict::Kept(KeptReason::Keep)
            } else {
                Verdict::Pass
            };
        }
        match (named, kind) {
            (Some(v), _) => v,
            (None, Kind::Symlink) if self.names_a_dir(rel, name) => {
                Verdict::Kept(KeptReason::Symlink)
            }
            (None, _) if in_pycache => Verdict::Kept(KeptReason::NotPollution),
            (None, _) => Verdict::Pass,
        }
    }

    /// Whether a directory entered under `rule` (`None`: no rule, a plain directory) must be
    /// left alone when it holds a `pyvenv.cfg`. True for every rule — an `--erase '**'` or a
    /// debris name included — unless `--include-venv`, or the debris topic's directories hold
    /// virtualenvs by nature (`tox`). `__pycache__` directories are never asked: their
    /// children are judged one by one, so a `pyvenv.cfg` inside keeps them anyway.
    pub fn guards_venv(&self, rule: Option<&Rule>) -> bool {
        if self.include_venv {
            return false;
        }
        match rule {
            Some(Rule::Debris(t)) => !TOPICS.iter().any(|x| x.name == *t && x.holds_venvs),
            _ => true,
        }
    }

    /// The removal verdict the rules give this entry by itself, if any.
    fn named(&self, rel: &Path, name: &OsStr, kind: Kind) -> Option<Verdict> {
        let is_dir = kind == Kind::Dir;
        if let Some(bc) = classify(name, is_dir) {
            return Some(if is_dir {
                Verdict::Pycache
            } else {
                Verdict::Remove(Rule::Bytecode(bc))
            });
        }
        let rule = if let Some(t) = self.debris_topic(name.as_bytes(), kind) {
            Rule::Debris(t)
        } else if let Some(g) = self.erase_match(rel, name, is_dir) {
            Rule::Erase(g)
        } else {
            return None;
        };
        Some(if is_dir {
            Verdict::Subtree(rule)
        } else {
            Verdict::Remove(rule)
        })
    }

    fn erase_match(&self, rel: &Path, name: &OsStr, is_dir: bool) -> Option<Arc<str>> {
        if self.erase.is_empty() {
            None
        } else {
            self.erase.matching(rel, name, is_dir)
        }
    }

    /// Whether a directory with this name would be cleaned: for symlinks that look like one.
    fn names_a_dir(&self, rel: &Path, name: &OsStr) -> bool {
        self.named(rel, name, Kind::Dir).is_some()
    }

    /// Judges an entry inside a removal subtree: it goes unless `--keep` protects it.
    /// Version-control metadata stays even inside a removal subtree.
    pub fn judge_in_subtree(&self, rel: &Path, name: &OsStr, kind: Kind, rule: &Rule) -> Verdict {
        if is_vcs(name, kind) {
            Verdict::Prune
        } else if self.kept(rel, name, kind) {
            Verdict::Kept(KeptReason::Keep)
        } else if kind == Kind::Dir {
            Verdict::Subtree(rule.clone())
        } else {
            Verdict::Remove(rule.clone())
        }
    }
}

impl Globs {
    fn empty() -> Globs {
        Globs {
            names: GlobSet::empty(),
            name_meta: Vec::new(),
            paths: GlobSet::empty(),
            path_meta: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(debris: &[&str], erase: &[&str], keep: &[&str]) -> Rules {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Rules::new(&s(debris), &s(erase), &s(keep), false).unwrap()
    }

    fn judge(r: &Rules, rel: &str, kind: Kind) -> Verdict {
        let p = Path::new(rel);
        let name = p.file_name().unwrap();
        r.judge(p, name, kind, false)
    }

    #[test]
    fn bytecode_by_default() {
        let r = Rules::bytecode();
        assert_eq!(
            judge(&r, "a/b.pyc", Kind::File),
            Verdict::Remove(Rule::Bytecode(Bytecode::Pyc))
        );
        assert_eq!(
            judge(&r, "a/b.cpython-311.opt-2.pyc", Kind::File),
            Verdict::Remove(Rule::Bytecode(Bytecode::Pyc))
        );
        assert_eq!(
            judge(&r, "b.pyo", Kind::File),
            Verdict::Remove(Rule::Bytecode(Bytecode::Pyo))
        );
        assert_eq!(judge(&r, "a/__pycache__", Kind::Dir), Verdict::Pycache);
        assert_eq!(judge(&r, "a/b.py", Kind::File), Verdict::Pass);
        // Debris is opt-in.
        assert_eq!(judge(&r, ".pytest_cache", Kind::Dir), Verdict::Pass);
    }

    #[test]
    fn symlinks_are_entries_not_directories() {
        let r = Rules::bytecode();
        // A link named like bytecode is removed as a link.
        assert_eq!(
            judge(&r, "x.pyc", Kind::Symlink),
            Verdict::Remove(Rule::Bytecode(Bytecode::Pyc))
        );
        // A link named __pycache__ is never entered nor removed, and it is reported.
        assert_eq!(
            judge(&r, "pkg/__pycache__", Kind::Symlink),
            Verdict::Kept(KeptReason::Symlink)
        );
    }

    #[test]
    fn vcs_is_pruned_even_inside_a_removal_subtree() {
        let r = rules(&["tox"], &["**"], &[]);
        assert_eq!(judge(&r, ".git", Kind::Dir), Verdict::Prune);
        assert_eq!(judge(&r, "a/.hg", Kind::Dir), Verdict::Prune);
        let p = Path::new("build/.svn");
        let rule = Rule::Erase("**".into());
        assert_eq!(
            r.judge_in_subtree(p, OsStr::new(".svn"), Kind::Dir, &rule),
            Verdict::Prune
        );
        // A file named like one is not metadata.
        assert!(matches!(judge(&r, ".git", Kind::File), Verdict::Remove(_)));
    }

    #[test]
    fn venvs_are_guarded_against_every_rule_but_tox() {
        let r = rules(&["all"], &["**"], &[]);
        assert!(r.guards_venv(None));
        assert!(r.guards_venv(Some(&Rule::Erase("**".into()))));
        assert!(r.guards_venv(Some(&Rule::Debris("pytest"))));
        // `.tox/py312` is a virtualenv and the very thing `--debris tox` removes.
        assert!(!r.guards_venv(Some(&Rule::Debris("tox"))));
        let inc = Rules::new(&[], &["**".into()], &[], true).unwrap();
        assert!(!inc.guards_venv(None));
        assert!(!inc.guards_venv(Some(&Rule::Erase("**".into()))));
    }

    #[test]
    fn debris_topics() {
        let r = rules(&["pytest", "coverage", "egg-info"], &[], &[]);
        assert_eq!(
            judge(&r, "x/.pytest_cache", Kind::Dir),
            Verdict::Subtree(Rule::Debris("pytest"))
        );
        assert_eq!(
            judge(&r, ".coverage", Kind::File),
            Verdict::Remove(Rule::Debris("coverage"))
        );
        assert_eq!(
            judge(&r, ".coverage.host.123", Kind::File),
            Verdict::Remove(Rule::Debris("coverage"))
        );
        assert_eq!(judge(&r, ".coveragerc", Kind::File), Verdict::Pass);
        // A directory named like a file pattern is not debris.
        assert_eq!(judge(&r, ".coverage", Kind::Dir), Verdict::Pass);
        assert_eq!(
            judge(&r, "src/pkg.egg-info", Kind::Dir),
            Verdict::Subtree(Rule::Debris("egg-info"))
        );
        assert_eq!(
            judge(&r, "pkg-1.0.egg-info", Kind::File),
            Verdict::Remove(Rule::Debris("egg-info"))
        );
        assert_eq!(judge(&r, ".egg-info", Kind::Dir), Verdict::Pass);
        assert_eq!(judge(&r, ".mypy_cache", Kind::Dir), Verdict::Pass);
    }

    #[test]
    fn all_and_unknown_topics() {
        let all = rules(&["all"], &[], &[]);
        assert_eq!(all.topics().count(), TOPICS.len());
        let e = Rules::new(&["pytest".into(), "nope".into()], &[], &[], false).unwrap_err();
        assert!(matches!(e, RulesError::UnknownTopic(ref t) if t == "nope"));
        let hint = crate::diagnostics::Diagnose::hint(&e).unwrap();
        for t in TOPICS {
            assert!(hint.contains(t.name), "{hint}");
        }
        assert!(hint.contains("all"));
    }

    #[test]
    fn erase_globs() {
        let r = rules(&[], &["*.log", "build/", "docs/**/_build", "/top.txt"], &[]);
        assert_eq!(
            judge(&r, "a/b/x.log", Kind::File),
            Verdict::Remove(Rule::Erase("*.log".into()))
        );
        assert_eq!(
            judge(&r, "a/build", Kind::Dir),
            Verdict::Subtree(Rule::Erase("build/".into()))
        );
        // Trailing slash: directories only.
        assert_eq!(judge(&r, "a/build", Kind::File), Verdict::Pass);
        assert_eq!(
            judge(&r, "docs/x/y/_build", Kind::Dir),
            Verdict::Subtree(Rule::Erase("docs/**/_build".into()))
        );
        assert_eq!(judge(&r, "other/_build", Kind::Dir), Verdict::Pass);
        assert_eq!(
            judge(&r, "top.txt", Kind::File),
            Verdict::Remove(Rule::Erase("/top.txt".into()))
        );
        // A glob with a slash is anchored at the root.
        assert_eq!(judge(&r, "sub/top.txt", Kind::File), Verdict::Pass);
    }

    #[test]
    fn star_does_not_cross_slash() {
        let r = rules(&[], &["a/*.txt"], &[]);
        assert_eq!(judge(&r, "a/b/c.txt", Kind::File), Verdict::Pass);
        assert!(matches!(
            judge(&r, "a/c.txt", Kind::File),
            Verdict::Remove(_)
        ));
    }

    #[test]
    fn keep_protects() {
        let r = rules(&[], &[], &["vendor", "pkg/keep.pyc"]);
        assert_eq!(
            judge(&r, "pkg/keep.pyc", Kind::File),
            Verdict::Kept(KeptReason::Keep)
        );
        assert!(matches!(
            judge(&r, "pkg/other.pyc", Kind::File),
            Verdict::Remove(_)
        ));
        assert_eq!(
            judge(&r, "x/vendor", Kind::Dir),
            Verdict::Kept(KeptReason::Keep)
        );
        // A protected file no rule names is simply passed over, not reported.
        let r = rules(&[], &[], &["*.txt"]);
        assert_eq!(judge(&r, "a.txt", Kind::File), Verdict::Pass);
    }

    #[test]
    fn unnamed_entries_in_pycache_keep_it() {
        let r = Rules::bytecode();
        let p = Path::new("pkg/__pycache__/notes.txt");
        assert_eq!(
            r.judge(p, OsStr::new("notes.txt"), Kind::File, true),
            Verdict::Kept(KeptReason::NotPollution)
        );
    }

    #[test]
    fn subtree_members_go_unless_kept() {
        let r = rules(&["tox"], &[], &["**/keep.me"]);
        let rule = Rule::Debris("tox");
        let p = Path::new(".tox/py/keep.me");
        assert_eq!(
            r.judge_in_subtree(p, OsStr::new("keep.me"), Kind::File, &rule),
            Verdict::Kept(KeptReason::Keep)
        );
        let p = Path::new(".tox/py/lib");
        assert_eq!(
            r.judge_in_subtree(p, OsStr::new("lib"), Kind::Dir, &rule),
            Verdict::Subtree(rule.clone())
        );
    }

    #[test]
    fn bad_glob_is_a_usage_error() {
        let e = Rules::new(&[], &["a[".into()], &[], false).unwrap_err();
        assert!(matches!(
            e,
            RulesError::BadGlob {
                option: "erase",
                ..
            }
        ));
    }

    #[test]
    fn rules_render_for_reports() {
        assert_eq!(Rule::Bytecode(Bytecode::PycacheDir).to_string(), "pycache");
        assert_eq!(Rule::Debris("mypy").to_string(), "debris:mypy");
        assert_eq!(Rule::Erase("*.log".into()).to_string(), "erase:*.log");
    }
}
