//! What a service's build context would send: Python bytecode pollution and secrets
//! (`.env` files, PEM private keys, Google service-account keys).
//!
//! Walks the context without following symlinks, skipping what `.dockerignore` excludes, and
//! hands the files it sends to [`crate::secrets::scan`] (name and content, bounded cost). Removing
//! or excluding anything is `clean`'s and `image`'s job, not this module's.

use super::{Finding, ServiceCtx};
use crate::context::dockerignore::{Matcher, PatternError};
use crate::pollution;
use std::path::Path;

/// Relative `/`-separated path and is-directory → left out of the context.
pub type Excluded = Box<dyn Fn(&str, bool) -> bool>;

/// A `.dockerignore` predicate for the context at `dir`: relative `/`-separated path and whether
/// it is a directory → left out of what Docker sends. A directory counts as left out only when
/// Docker would not even enter it (no `!exception` below it), so callers may skip its subtree.
///
/// Matching is `context::dockerignore`'s, with the Docker CLI's semantics. A missing
/// `.dockerignore` excludes nothing; one with a bad pattern makes `docker build` fail, so it is
/// returned as the error and the caller reports it.
pub fn dockerignore_matcher(dir: &Path) -> Result<Excluded, PatternError> {
    let m = match std::fs::read(dir.join(".dockerignore")) {
        Ok(bytes) => Matcher::parse(&bytes, ".dockerignore")?,
        Err(_) => Matcher::empty(),
    };
    Ok(Box::new(move |path: &str, is_dir: bool| {
        let p = path.as_bytes();
        m.is_excluded(p) && !(is_dir && m.must_descend(p))
    }))
}

/// Why a file is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    DotEnv,
    PrivateKey { line: u32 },
    ServiceAccount { line: u32 },
}

/// `.env`, `.env.production`… but not the templates people commit on purpose.
pub fn is_dotenv(name: &str) -> bool {
    if name == ".env" {
        return true;
    }
    match name.strip_prefix(".env.") {
        Some(suffix) => !matches!(
            suffix,
            "example" | "sample" | "template" | "dist" | "defaults"
        ),
        None => false,
    }
}

/// Finds key material in a file's text.
pub fn secret_in(text: &str) -> Option<Secret> {
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u32 + 1;
        if line.contains("-----BEGIN ") && line.contains("PRIVATE KEY-----") {
            return Some(Secret::PrivateKey { line: line_no });
        }
        if let Some(rest) = line.split("\"type\"").nth(1) {
            let rest = rest.trim_start();
            if let Some(v) = rest.strip_prefix(':') {
                if v.trim_start().starts_with("\"service_account\"") {
                    return Some(Secret::ServiceAccount { line: line_no });
                }
            }
        }
    }
    None
}

pub fn check(cx: &ServiceCtx) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut pyc_count = 0u64;
    let mut pyc_bytes = 0u64;
    let mut first_pyc: Option<String> = None;
    let root = &cx.context_dir;
    let mut files = Vec::new();
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        let is_dir = entry.file_type().is_dir();
        if (cx.excluded)(&rel_s, is_dir) {
            if is_dir {
                walk.skip_current_dir();
            }
            continue;
        }
        // Git objects are compressed: nothing to find by text, and many files to read.
        if is_dir && entry.file_name() == ".git" {
            walk.skip_current_dir();
            continue;
        }
        if pollution::classify(entry.file_name(), is_dir).is_some() {
            if !is_dir {
                pyc_count += 1;
                pyc_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                first_pyc.get_or_insert_with(|| rel_s.clone());
            }
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        files.push(rel.to_path_buf());
    }
    for found in crate::secrets::scan(root, &files) {
        let rel_s = found.path.to_string_lossy();
        let (what, line) = (found.kind.describe(), found.line);
        out.push(cx.finding(
            "context-secret",
            (cx.display(&rel_s), line),
            format!("{what} is sent in the build context of `{}`", cx.service.name),
            format!("add `{rel_s}` to {} and rotate the secret if an image with it was ever pushed; pass secrets at run time", cx.display(".dockerignore")),
        ));
    }
    if pyc_count > 0 {
        out.push(cx.finding(
            "context-bytecode",
            (cx.display(first_pyc.as_deref().unwrap_or(".")), None),
            format!(
                "{pyc_count} bytecode file(s), {pyc_bytes} bytes, are sent in the build context of `{}`; they change on every run and break the layer cache",
                cx.service.name
            ),
            format!("run `ctxbuild clean {}` and add {} to .dockerignore (`ctxbuild render {} --write-dockerignore` writes one)", cx.display("."), pollution::DOCKERIGNORE_RULES.join(" "), cx.service.name),
        ));
    }
    out
}

/// Whether a file's name suggests key material worth reading: keys and service-account files
/// have these shapes, and reading only them keeps the walk cheap on large contexts.
pub fn may_hold_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e);
    matches!(ext, Some("json" | "pem" | "key" | "p8" | "der" | "priv"))
        || lower.starts_with("id_rsa")
        || lower.starts_with("id_ecdsa")
        || lower.starts_with("id_ed25519")
        || lower.starts_with("id_dsa")
        || ext.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shaped_names() {
        assert!(may_hold_key("sa.json"));
        assert!(may_hold_key("server.PEM"));
        assert!(may_hold_key("id_ed25519"));
        assert!(may_hold_key("credentials"));
        assert!(!may_hold_key("main.py"));
        assert!(!may_hold_key("index.html"));
    }

    #[test]
    fn dotenv_names() {
        assert!(is_dotenv(".env"));
        assert!(is_dotenv(".env.production"));
        assert!(!is_dotenv(".env.example"));
        assert!(!is_dotenv("env"));
        assert!(!is_dotenv(".envrc"));
    }

    #[test]
    fn key_material() {
        assert_eq!(
            secret_in("x\n-----BEGIN RSA PRIVATE KEY-----\nMII\n"),
            Some(Secret::PrivateKey { line: 2 })
        );
        assert_eq!(
            secret_in("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            Some(Secret::PrivateKey { line: 1 })
        );
        assert_eq!(
            secret_in("{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\"\n}\n"),
            Some(Secret::ServiceAccount { line: 2 })
        );
        assert_eq!(secret_in("-----BEGIN CERTIFICATE-----\n"), None);
        assert_eq!(secret_in("{\"type\": \"authorized_user\"}"), None);
    }
}
