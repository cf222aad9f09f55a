//! COPY/ADD sources: each must exist in the build context and survive `.dockerignore`, or the
//! build fails (or silently copies less) long after the edit that caused it.
//!
//! Sources are expanded with the stage's ARG/ENV values as Docker does; sources that still hold
//! variables, URLs and `--from` copies are skipped. Wildcards are matched per path segment.

use super::dockerfile::Parsed;
use super::{Finding, ServiceCtx};
use crate::dockerfile::{shell, Keyword};
use std::path::Path;

pub fn check(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    let mut out = Vec::new();
    let escape = p.df.directives.escape;
    // Meta ARGs (before the first FROM) reach a stage only through `ARG NAME` inside it.
    let mut meta: Vec<(String, String)> = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut in_stage = false;
    for ins in &p.df.instructions {
        match ins.keyword {
            Keyword::From => {
                in_stage = true;
                vars.clear();
            }
            Keyword::Arg | Keyword::Env => {
                let Ok(kv) = ins.key_values(escape) else {
                    continue;
                };
                for (k, v) in kv {
                    let v = v.or_else(|| {
                        meta.iter()
                            .rev()
                            .find(|(m, _)| *m == k)
                            .map(|(_, v)| v.clone())
                    });
                    if let Some(v) = v {
                        if in_stage {
                            vars.push((k, v));
                        } else {
                            meta.push((k, v));
                        }
                    }
                }
            }
            Keyword::Copy | Keyword::Add if ins.flag("from").is_none() => {
                let words = ins.words();
                if words.len() < 2 {
                    continue;
                }
                for src in &words[..words.len() - 1] {
                    let Ok(expanded) = shell::expand(src, &vars, escape) else {
                        continue;
                    };
                    if expanded.contains('$')
                        || expanded.contains("://")
                        || expanded.starts_with("git@")
                    {
                        continue;
                    }
                    if let Some(f) = check_source(cx, p, ins.line, ins.keyword, &expanded) {
                        out.push(f);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn check_source(
    cx: &ServiceCtx,
    p: &Parsed,
    line: usize,
    kw: Keyword,
    src: &str,
) -> Option<Finding> {
    let rel = normalize(src);
    if rel.is_empty() {
        return None; // `.` is the whole context.
    }
    let loc = p.loc(cx, line, None);
    let matches = if has_glob(&rel) {
        glob(&cx.context_dir, &rel)
    } else {
        let path = cx.context_dir.join(&rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) => vec![(rel.clone(), m.is_dir())],
            Err(_) => Vec::new(),
        }
    };
    if matches.is_empty() {
        return Some(cx.finding(
            "copy-missing",
            loc,
            format!("{kw} source `{src}` does not exist in the build context {}", cx.display(".")),
            format!("create {}, fix the path (it is relative to the context, not the Dockerfile), or remove the line", cx.display(&rel)),
        ));
    }
    let visible: Vec<&(String, bool)> = matches
        .iter()
        .filter(|(m, d)| !excluded_or_parent(cx, m, *d))
        .collect();
    if visible.is_empty() {
        return Some(cx.finding(
            "copy-ignored",
            loc,
            format!("{kw} source `{src}` is excluded by {}, so the build cannot see it", cx.display(".dockerignore")),
            format!("remove the pattern that matches `{rel}` from .dockerignore (or add `!{rel}`), or stop copying it"),
        ));
    }
    None
}

/// Whether the path or one of its parent directories is excluded.
fn excluded_or_parent(cx: &ServiceCtx, rel: &str, is_dir: bool) -> bool {
    if (cx.excluded)(rel, is_dir) {
        return true;
    }
    let mut parent = Path::new(rel).parent();
    while let Some(p) = parent {
        let s = p.to_string_lossy();
        if s.is_empty() {
            break;
        }
        if (cx.excluded)(&s, true) {
            return true;
        }
        parent = p.parent();
    }
    false
}

/// `./a//b/` → `a/b`; a leading `/` is the context root, as Docker treats it.
fn normalize(src: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in src.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Context paths matching a pattern, segment by segment, as Go's `filepath.Match` does.
fn glob(root: &Path, pattern: &str) -> Vec<(String, bool)> {
    let mut current: Vec<(String, bool)> = vec![(String::new(), true)];
    for seg in pattern.split('/') {
        let mut next = Vec::new();
        for (base, is_dir) in &current {
            if !is_dir {
                continue;
            }
            let join = |n: &str| {
                if base.is_empty() {
                    n.to_string()
                } else {
                    format!("{base}/{n}")
                }
            };
            if has_glob(seg) {
                let Ok(rd) = std::fs::read_dir(root.join(base)) else {
                    continue;
                };
                let mut names: Vec<(String, bool)> = rd
                    .filter_map(Result::ok)
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.file_type().map(|t| t.is_dir()).unwrap_or(false),
                        )
                    })
                    .filter(|(n, _)| wildcard(seg, n))
                    .map(|(n, d)| (join(&n), d))
                    .collect();
                names.sort();
                next.extend(names);
            } else {
                let p = join(seg);
                if let Ok(m) = std::fs::symlink_metadata(root.join(&p)) {
                    next.push((p, m.is_dir()));
                }
            }
        }
        current = next;
    }
    current
}

/// `*`, `?` and `[...]` (with `^`/`!` negation and ranges) within one path segment.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(c) = n.first() else { return false };
                let mut class = &p[1..end];
                let negate = matches!(class.first(), Some('^') | Some('!'));
                if negate {
                    class = &class[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &n[1..])
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.txt", "requirements.txt"));
        assert!(!wildcard("*.txt", "a.py"));
        assert!(wildcard("req?.txt", "req1.txt"));
        assert!(wildcard("[a-c]x", "bx"));
        assert!(!wildcard("[!a-c]x", "bx"));
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("./a//b/"), "a/b");
        assert_eq!(normalize("/app/x"), "app/x");
        assert_eq!(normalize("."), "");
    }

    #[test]
    fn globs_in_a_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/pkg")).unwrap();
        std::fs::write(d.path().join("src/pkg/a.py"), "").unwrap();
        std::fs::write(d.path().join("req.txt"), "").unwrap();
        assert_eq!(
            glob(d.path(), "src/*/a.py"),
            [("src/pkg/a.py".to_string(), false)]
        );
        assert_eq!(glob(d.path(), "*.txt"), [("req.txt".to_string(), false)]);
        assert!(glob(d.path(), "*.toml").is_empty());
    }
}
