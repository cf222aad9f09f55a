//! Bytecode `image` keeps out of what it sends, whatever `.dockerignore` says: every file and
//! `__pycache__` directory [`crate::pollution::classify`] calls pollution, except what a COPY/ADD names on
//! purpose (and the directories on the way to it).
//!
//! Boundary: filters a scanned context's entries and reports what it left out, as data.

use crate::context::{Entry, EntryKind};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What [`exclude_pollution`] left out, and what it kept because the Dockerfile names it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeptOut {
    pub entries: u64,
    pub bytes: u64,
    /// Bytecode entries a COPY/ADD source names on purpose: sent, not counted above.
    pub named: Vec<String>,
}

/// The context paths COPY/ADD read (not `--from` copies, URLs or sources still holding
/// variables), normalized: `./a//b/` → `a/b`.
pub fn copy_sources(df: &crate::dockerfile::Dockerfile) -> Vec<String> {
    use crate::dockerfile::Keyword;
    let mut out = Vec::new();
    for ins in &df.instructions {
        if !matches!(ins.keyword, Keyword::Copy | Keyword::Add) || ins.flag("from").is_some() {
            continue;
        }
        let words = ins.words();
        let Some((_, sources)) = words.split_last() else {
            continue;
        };
        for src in sources {
            if src.contains('$') || src.contains("://") || src.starts_with("git@") {
                continue;
            }
            let norm: Vec<&str> = src
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            if !norm.is_empty() {
                out.push(norm.join("/"));
            }
        }
    }
    out
}

/// Whether the COPY/ADD `source` names the bytecode entry `path` on purpose: the source is
/// the entry itself, or the source lies in (or is) a `__pycache__` directory and the entry is
/// under it, or the source is a glob whose last component ends in `.pyc`/`.pyo` and matches it.
/// A broad `COPY . /app` names nothing.
fn names_explicitly(source: &str, path: &str) -> bool {
    if source == path {
        return true;
    }
    let has_glob = crate::pathrules::has_wildcards(source.as_bytes());
    let glob = || crate::pathrules::Glob::new(source.as_bytes()).ok();
    let in_pycache = source.split('/').any(|c| c == "__pycache__");
    if in_pycache {
        // The entry or one of its directories is what the source names.
        let matcher = if has_glob { glob() } else { None };
        let mut p = Some(Path::new(path));
        while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
            let hit = match &matcher {
                Some(m) => m.matches(a.as_os_str().as_bytes()),
                None => a.as_os_str().as_bytes() == source.as_bytes(),
            };
            if hit {
                return true;
            }
            p = a.parent();
        }
        return false;
    }
    let last = source.rsplit('/').next().unwrap_or(source);
    if has_glob && (last.ends_with(".pyc") || last.ends_with(".pyo")) {
        return glob().is_some_and(|m| m.matches(path.as_bytes()));
    }
    false
}

/// Drops bytecode files and everything inside `__pycache__` directories from `entries`
/// (sorted by path), even when `.dockerignore` lets them in, except what a COPY/ADD source
/// names explicitly (see [`names_explicitly`]) and the directories holding it.
pub fn exclude_pollution(entries: &mut Vec<Entry>, sources: &[String]) -> KeptOut {
    let mut out = KeptOut::default();
    let polluted = |e: &Entry| {
        let n = e.path.iter().count();
        e.path.iter().enumerate().any(|(i, comp)| {
            let is_dir = i + 1 < n || e.kind == EntryKind::Dir;
            crate::pollution::classify(comp, is_dir).is_some()
        })
    };
    let named: Vec<PathBuf> = entries
        .iter()
        .filter(|e| polluted(e))
        .filter(|e| {
            let p = e.path.to_string_lossy();
            sources.iter().any(|s| names_explicitly(s, &p))
        })
        .map(|e| e.path.clone())
        .collect();
    out.named = named.iter().map(|p| p.display().to_string()).collect();
    entries.retain(|e| {
        if !polluted(e) {
            return true;
        }
        // A named entry, or a bytecode directory on the way to one, travels.
        if named.iter().any(|n| n.starts_with(&e.path)) {
            return true;
        }
        out.entries += 1;
        if e.kind == EntryKind::File {
            out.bytes += e.size;
        }
        false
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::StatInfo;

    fn entry(path: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            size,
            link_target: None,
            rdev: 0,
            stat: StatInfo::default(),
        }
    }

    #[test]
    fn pollution_is_left_out_with_its_bytes() {
        let mut v = vec![
            entry("app", EntryKind::Dir, 0),
            entry("app/__pycache__", EntryKind::Dir, 0),
            entry("app/__pycache__/main.cpython-312.pyc", EntryKind::File, 300),
            entry("app/__pycache__/notes.txt", EntryKind::File, 5),
            entry("app/main.py", EntryKind::File, 40),
            entry("old.pyo", EntryKind::File, 7),
            entry("__pycache__", EntryKind::File, 1),
        ];
        let out = exclude_pollution(&mut v, &[]);
        let kept: Vec<String> = v.iter().map(|e| e.display().into_owned()).collect();
        assert_eq!(kept, vec!["app", "app/main.py", "__pycache__"]);
        assert_eq!(
            out,
            KeptOut {
                entries: 4,
                bytes: 312,
                named: vec![],
            }
        );
    }

    #[test]
    fn bytecode_the_dockerfile_copies_by_name_is_kept() {
        let all = || {
            vec![
                entry("app", EntryKind::Dir, 0),
                entry("app/__pycache__", EntryKind::Dir, 0),
                entry("app/__pycache__/m.cpython-312.pyc", EntryKind::File, 300),
                entry("app/main.py", EntryKind::File, 40),
                entry("vendor", EntryKind::Dir, 0),
                entry("vendor/lib.pyc", EntryKind::File, 10),
                entry("vendor/other.pyc", EntryKind::File, 20),
                entry("vendor/x.pyo", EntryKind::File, 5),
            ]
        };
        let kept_of = |dockerfile: &str| {
            let df = crate::dockerfile::parse(dockerfile, "Dockerfile").unwrap();
            let mut v = all();
            let out = exclude_pollution(&mut v, &copy_sources(&df));
            let kept: Vec<String> = v.iter().map(|e| e.display().into_owned()).collect();
            (kept, out)
        };
        // The exact path: only that file.
        let (kept, out) = kept_of("FROM x\nCOPY ./vendor/lib.pyc /x/\nCOPY . /app\n");
        assert!(kept.contains(&"vendor/lib.pyc".to_string()), "{kept:?}");
        assert!(!kept.contains(&"vendor/other.pyc".to_string()));
        assert_eq!(out.named, vec!["vendor/lib.pyc"]);
        assert_eq!((out.entries, out.bytes), (4, 325));
        // A glob ending in .pyc: every match, not the .pyo.
        let (kept, out) = kept_of("FROM x\nCOPY vendor/*.pyc /x/\n");
        assert!(kept.contains(&"vendor/other.pyc".to_string()));
        assert!(!kept.contains(&"vendor/x.pyo".to_string()));
        assert_eq!(out.named.len(), 2);
        // A __pycache__ source: everything under it, the directory included.
        let (kept, out) = kept_of("FROM x\nCOPY app/__pycache__ /x/\n");
        assert!(kept.contains(&"app/__pycache__".to_string()));
        assert!(kept.contains(&"app/__pycache__/m.cpython-312.pyc".to_string()));
        assert_eq!(out.entries, 3);
        // The file inside __pycache__ by name keeps its directory too.
        let (kept, _) = kept_of("FROM x\nCOPY app/__pycache__/m.cpython-312.pyc /x/\n");
        assert!(kept.contains(&"app/__pycache__".to_string()), "{kept:?}");
        // Broad copies, other stages' files and globs not ending in .pyc name nothing.
        for df in [
            "FROM x\nCOPY . /app\n",
            "FROM x\nCOPY vendor /v\n",
            "FROM x\nCOPY vendor/* /v\n",
            "FROM x AS b\nFROM x\nCOPY --from=b vendor/lib.pyc /x/\n",
        ] {
            let (_, out) = kept_of(df);
            assert!(out.named.is_empty(), "{df}: {:?}", out.named);
            assert_eq!(out.entries, 5, "{df}");
        }
    }
}
