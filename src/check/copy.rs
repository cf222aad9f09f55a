//! COPY/ADD sources: each must exist in the build context and survive `.dockerignore`, or the
//! build fails (or silently copies less) long after the edit that caused it.
//!
//! Sources are expanded with the stage's ARG/ENV values as Docker does; sources that still hold
//! variables, URLs and `--from` copies are skipped. A source is read with the classic builder's
//! rules ([`crate::pathrules`]): a wildcard source is matched as written against the scanned
//! context, any other is cleaned by its join with the context root (`./a/../b` is `b`).
//! Whether a source the context lacks exists on disk at all decides between "missing" and
//! "ignored".

use super::dockerfile::Parsed;
use super::{Finding, RuleId, ServiceCtx};
use crate::dockerfile::{shell, Keyword};
use crate::pathrules::{self, Glob};
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
    let trimmed = pathrules::trim_copy_source(src.as_bytes());
    let loc = p.loc(cx, line, None);
    let missing = |rel: &str| {
        cx.finding(
            RuleId::CopyMissing,
            loc.clone(),
            format!("{kw} source `{src}` does not exist in the build context {}", cx.display(".")),
            format!("create {}, fix the path (it is relative to the context, not the Dockerfile), or remove the line", cx.display(rel)),
        )
    };
    let ignored = |rel: &str| {
        cx.finding(
            RuleId::CopyIgnored,
            loc.clone(),
            format!("{kw} source `{src}` is excluded by {}, so the build cannot see it", cx.display(".dockerignore")),
            format!("remove the pattern that matches `{rel}` from .dockerignore (or add `!{rel}`), or stop copying it"),
        )
    };
    if pathrules::has_wildcards(trimmed) {
        let shown = String::from_utf8_lossy(trimmed).into_owned();
        // Docker matches a malformed pattern against nothing.
        let Ok(glob) = Glob::new(trimmed) else {
            return Some(missing(&shown));
        };
        let sent = match cx.context {
            Some(ctx) => ctx.entries.iter().any(|e| glob.matches(e.path_bytes())),
            None => !glob_on_disk(&cx.context_dir, trimmed).is_empty(),
        };
        if sent {
            return None;
        }
        return Some(if glob_on_disk(&cx.context_dir, trimmed).is_empty() {
            missing(&shown)
        } else {
            ignored(&shown)
        });
    }
    let cleaned = pathrules::clean(trimmed);
    if cleaned == b"." {
        return None; // The whole context.
    }
    let rel = String::from_utf8_lossy(&cleaned).into_owned();
    if pathrules::escapes_root(&cleaned) {
        return Some(cx.finding(
            RuleId::CopyMissing,
            loc.clone(),
            format!("{kw} source `{src}` is outside the build context {}", cx.display(".")),
            "COPY reads only the build context: move the file into it, or build from a directory that holds both",
        ));
    }
    if std::fs::symlink_metadata(cx.context_dir.join(&rel)).is_err() {
        return Some(missing(&rel));
    }
    match cx.context {
        Some(ctx) if !ctx.visible(&cleaned) => Some(ignored(&rel)),
        _ => None,
    }
}

/// Paths on disk matching a wildcard source, segment by segment (for telling an ignored source
/// from a missing one; what Docker sends is matched on the scanned context instead).
fn glob_on_disk(root: &Path, pattern: &[u8]) -> Vec<(String, bool)> {
    let mut current: Vec<(String, bool)> = vec![(String::new(), true)];
    for seg in pattern.split(|&b| b == b'/') {
        let mut next = Vec::new();
        let glob = Glob::new(seg).ok();
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
            if pathrules::has_wildcards(seg) {
                let (Some(glob), Ok(rd)) = (glob, std::fs::read_dir(root.join(base))) else {
                    continue;
                };
                let mut names: Vec<(String, bool)> = rd
                    .filter_map(Result::ok)
                    .filter(|e| {
                        use std::os::unix::ffi::OsStrExt;
                        glob.matches(e.file_name().as_bytes())
                    })
                    .map(|e| {
                        let d = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                        (join(&e.file_name().to_string_lossy()), d)
                    })
                    .collect();
                names.sort();
                next.extend(names);
            } else {
                let p = join(&String::from_utf8_lossy(seg));
                if let Ok(m) = std::fs::symlink_metadata(root.join(&p)) {
                    next.push((p, m.is_dir()));
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_in_a_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/pkg")).unwrap();
        std::fs::write(d.path().join("src/pkg/a.py"), "").unwrap();
        std::fs::write(d.path().join("req.txt"), "").unwrap();
        assert_eq!(
            glob_on_disk(d.path(), b"src/*/a.py"),
            [("src/pkg/a.py".to_string(), false)]
        );
        assert_eq!(
            glob_on_disk(d.path(), b"*.txt"),
            [("req.txt".to_string(), false)]
        );
        assert!(glob_on_disk(d.path(), b"*.toml").is_empty());
    }
}
