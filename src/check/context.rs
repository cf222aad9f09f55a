//! What a service's build context sends: Python bytecode pollution and secrets (`.env`
//! files, PEM private keys, Google service-account keys).
//!
//! Reads the [`Context`] that `context::scan` produced (so `.dockerignore` is applied exactly
//! as everywhere else), and opens only files whose names can hold keys (`*.json`, `*.pem`,
//! `*.key`, `*.p8`, `id_rsa*`…, names without an extension), reading their first 64 KiB, so the
//! check stays cheap on big contexts. Removing or excluding anything is `clean`'s and `image`'s
//! job, not this module's.

use super::{Finding, RuleId, ServiceCtx};
use crate::context::{Context, EntryKind};
use crate::pollution;
use std::io::Read;
use std::path::Path;

/// Files larger than this are not searched for key material.
const SCAN_LIMIT: u64 = 64 * 1024;

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

pub fn check(cx: &ServiceCtx, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut pyc_count = 0u64;
    let mut pyc_bytes = 0u64;
    let mut first_pyc: Option<String> = None;
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
        let name = entry.file_name().to_string_lossy();
        let secret = if is_dotenv(&name) {
            Some(Secret::DotEnv)
        } else if may_hold_key(&name) {
            scan(&ctx.root.join(&entry.path))
        } else {
            None
        };
        let Some(secret) = secret else { continue };
        let (what, line) = match secret {
            Secret::DotEnv => ("an environment file (.env)", None),
            Secret::PrivateKey { line } => ("a private key", Some(line)),
            Secret::ServiceAccount { line } => ("a Google service-account key", Some(line)),
        };
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

fn scan(path: &Path) -> Option<Secret> {
    // Regular files only: a FIFO swapped in since the scan must not hang the check.
    let file = crate::fsutil::open_regular(path).ok()?;
    let mut buf = Vec::new();
    file.take(SCAN_LIMIT).read_to_end(&mut buf).ok()?;
    secret_in(&String::from_utf8_lossy(&buf))
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
