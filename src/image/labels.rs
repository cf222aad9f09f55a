//! The labels ctxbuild puts on every image (service, template, source digest, git revision)
//! and how they reach the engine: one `LABEL` line appended to an injected Dockerfile.
//!
//! The git revision is read from `.git` directly (HEAD, loose ref, packed-refs; worktrees
//! too): spawning `git` costs more than a whole fully cached build.

use std::path::Path;

/// Label keys ctxbuild sets on every image.
pub const SERVICE: &str = "dev.ctxbuild.service";
pub const TEMPLATE: &str = "dev.ctxbuild.template";
pub const SOURCE_DIGEST: &str = "dev.ctxbuild.source-digest";
pub const REVISION: &str = "org.opencontainers.image.revision";
/// The build's plan (keys and manifest), so a builder that only has the image can say why a
/// step rebuilt; see [`super::cachefrom::plan_label`].
pub const PLAN: &str = "dev.ctxbuild.plan";

/// The Dockerfile with one `LABEL "k"="v" …` line appended (JSON string quoting is valid
/// Dockerfile quoting).
pub fn with_label_line(text: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return text.to_string();
    }
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("LABEL");
    for (k, v) in labels {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""));
        out.push_str(&format!(" {}={}", q(k), q(v)));
    }
    out.push('\n');
    out
}

/// The commit checked out where the context lives, when it is in a git repository.
///
/// Read from `.git` directly (HEAD, loose ref, packed-refs; worktrees too): spawning `git`
/// costs more than a whole fully cached build. Falls back to `git rev-parse HEAD` when the
/// layout is unusual.
pub fn git_revision(dir: &Path) -> Option<String> {
    read_git_head(dir).or_else(|| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && is_sha(&rev)).then_some(rev)
    })
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_git_head(dir: &Path) -> Option<String> {
    let start = std::fs::canonicalize(dir).ok()?;
    let dot_git = start
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| g.exists())?;
    // A worktree or submodule: `.git` is a file naming the real git dir.
    let git_dir = if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let rel = text.trim().strip_prefix("gitdir:")?.trim().to_string();
        dot_git.parent()?.join(rel)
    } else {
        dot_git
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.clone(),
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_sha(head).then(|| head.to_string());
    };
    for base in [&git_dir, &common] {
        if let Ok(sha) = std::fs::read_to_string(base.join(reference)) {
            let sha = sha.trim();
            if is_sha(sha) {
                return Some(sha.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference && is_sha(sha)).then(|| sha.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_one_quoted_label_line() {
        let text = with_label_line(
            "FROM x\nCOPY . /app",
            &[
                (
                    "dev.ctxbuild.template".into(),
                    "python-asgi/alpine v1".into(),
                ),
                ("q".into(), "say \"hi\"".into()),
            ],
        );
        assert_eq!(
            text,
            "FROM x\nCOPY . /app\nLABEL \"dev.ctxbuild.template\"=\"python-asgi/alpine v1\" \"q\"=\"say \\\"hi\\\"\"\n"
        );
        assert_eq!(with_label_line("FROM x\n", &[]), "FROM x\n");
        // The parser ctxbuild keys with reads it as one more instruction.
        let df = crate::dockerfile::parse(&text, "Dockerfile").unwrap();
        assert_eq!(df.instructions.len(), 3);
    }

    #[test]
    fn git_revision_matches_git_itself() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let git = std::process::Command::new("git")
            .arg("-C")
            .arg(here)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        if git.status.success() {
            let want = String::from_utf8(git.stdout).unwrap().trim().to_string();
            assert_eq!(read_git_head(here).as_deref(), Some(want.as_str()));
        }
        assert_eq!(read_git_head(Path::new("/")), None);
    }
}
