//! What a service's build context sends: Python bytecode pollution and secrets (`.env`
//! files, PEM private keys, Google service-account keys).
//!
//! Reads the [`Context`] that `context::scan` produced (so `.dockerignore` is applied exactly
//! as everywhere else) and hands the files it sends to [`crate::secrets::scan`] (by name and by
//! content, bounded cost). Removing or excluding anything is `clean`'s and `image`'s job, not
//! this module's.

use super::{Finding, RuleId, ServiceCtx};
use crate::context::{Context, EntryKind};
use crate::pollution;

pub fn check(cx: &ServiceCtx, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut pyc_count = 0u64;
    let mut pyc_bytes = 0u64;
    let mut first_pyc: Option<String> = None;
    let mut files = Vec::new();
    for entry in &ctx.entries {
        // Git objects are compressed: nothing to find by text, and many files to read.
        if entry.path_bytes() == b".git" || entry.path_bytes().starts_with(b".git/") {
            continue;
        }
        let is_dir = entry.kind == EntryKind::Dir;
        let rel_s = entry.display().into_owned();
        if pollution::classify(entry.file_name(), is_dir).is_some() {
            if !is_dir {
                pyc_count += 1;
                pyc_bytes += entry.size;
                first_pyc.get_or_insert_with(|| rel_s.clone());
            }
            continue;
        }
        if entry.kind != EntryKind::File {
            continue;
        }
        files.push((entry.path.clone(), entry.size));
    }
    for found in crate::secrets::scan(&ctx.root, &files) {
        let rel_s = found.path.to_string_lossy();
        let (what, line) = (found.kind.describe(), found.line);
        out.push(cx.finding(
            RuleId::ContextSecret,
            (cx.display(&rel_s), line),
            format!("{what} is sent in the build context of `{}`", cx.service.name),
            format!("add `{rel_s}` to {} and rotate the secret if an image with it was ever pushed; pass secrets at run time", cx.display(".dockerignore")),
        ));
    }
    if pyc_count > 0 {
        out.push(cx.finding(
            RuleId::ContextBytecode,
            (cx.display(first_pyc.as_deref().unwrap_or(".")), None),
            format!(
                "{pyc_count} bytecode {}, {pyc_bytes} bytes, {} sent in the build context of `{}`; {} on every run and {} the layer cache",
                if pyc_count == 1 { "file" } else { "files" },
                if pyc_count == 1 { "is" } else { "are" },
                cx.service.name,
                if pyc_count == 1 { "it changes" } else { "they change" },
                if pyc_count == 1 { "breaks" } else { "break" },
            ),
            format!(
                "run `ctxbuild clean {}` and add {} to {} (`ctxbuild render {} --write-dockerignore` writes one)",
                cx.display("."),
                backticked(pollution::DOCKERIGNORE_RULES),
                cx.display(".dockerignore"),
                cx.service.name
            ),
        ));
    }
    out
}

/// `` `a`, `b` and `c` `` — each item in its own backticks, no space inside them.
fn backticked(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{}`", i.trim())).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}
