//! `check`'s machine-readable outputs, built from the same [`Report`] as the human one: JSON
//! (the report itself), SARIF 2.1.0 for code-scanning upload, and GitHub Actions workflow
//! commands (`::error file=…,line=…,title=RULE::message`). Each returns text or a JSON value;
//! only the binary prints.
//!
//! Paths: findings name files relative to the directory the command ran in (the
//! configuration's directory joined with the path). SARIF and GitHub want them relative to the
//! repository root, so the caller passes the current directory's path inside the repository
//! ([`repo_prefix`]). A finding about a Dockerfile that exists only in memory
//! (`<rendered python-asgi/alpine>`) is attached to `ctxbuild.toml`, where it comes from.

use super::{Finding, Report, Severity, RULES};
use std::path::{Component, Path, PathBuf};

/// Where paths of findings lead, for formats that need them relative to the repository root.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// The current directory relative to the repository root (`""` at the root).
    pub prefix: PathBuf,
    /// The configuration file as findings name it (for rendered Dockerfiles).
    pub config_file: String,
}

/// The current directory's path below the repository root holding it (the nearest ancestor
/// with a `.git`), or empty when there is none. Looks at the file system only.
pub fn repo_prefix(cwd: &Path) -> PathBuf {
    let Ok(abs) = std::path::absolute(cwd) else {
        return PathBuf::new();
    };
    for dir in abs.ancestors() {
        if dir.join(".git").exists() {
            return abs
                .strip_prefix(dir)
                .map(Path::to_path_buf)
                .unwrap_or_default();
        }
    }
    PathBuf::new()
}

/// A finding's file as a repository-relative URI path (`/`-separated, lexically cleaned).
fn repo_path(paths: &Paths, f: &Finding) -> String {
    let file = if f.file.starts_with('<') {
        paths.config_file.as_str()
    } else {
        f.file.as_str()
    };
    let joined = if Path::new(file).is_absolute() {
        PathBuf::from(file)
    } else {
        paths.prefix.join(file)
    };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir => parts.clear(),
            _ => {}
        }
    }
    let p = parts.join("/");
    if Path::new(file).is_absolute() {
        format!("/{p}")
    } else {
        p
    }
}

/// A finding's line, unless it is about a rendered Dockerfile's line (then the configuration
/// file holds no such line).
fn line_of(f: &Finding) -> Option<u32> {
    f.line.filter(|_| !f.file.starts_with('<'))
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// The message as one text: the problem, then the fix.
fn text(f: &Finding) -> String {
    let mut t = f.message.clone();
    if f.file.starts_with('<') {
        t = format!("{}: {t}", f.file);
    }
    format!("{t}\nfix: {}", f.fix)
}

/// The report as a SARIF 2.1.0 log: one run, `tool.driver.rules` from [`RULES`], one result
/// per finding.
pub fn sarif(report: &Report, paths: &Paths) -> serde_json::Value {
    use serde_json::json;
    let rules: Vec<serde_json::Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id.as_str(),
                "name": r.id.as_str(),
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.summary },
                "help": {
                    "text": format!("{}. `ctxbuild check --rules` lists every rule; the README's check section says how to fix each.", r.summary),
                },
                "defaultConfiguration": { "level": level(r.severity) },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut physical = json!({
                "artifactLocation": { "uri": repo_path(paths, f) },
            });
            if let Some(l) = line_of(f) {
                physical["region"] = json!({ "startLine": l.max(1) });
            }
            let mut result = json!({
                "ruleId": f.rule.as_str(),
                "ruleIndex": f.rule as usize,
                "level": level(f.severity),
                "message": { "text": text(f) },
                "locations": [{ "physicalLocation": physical }],
            });
            if let Some(s) = &f.service {
                result["properties"] = json!({ "service": s });
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ctxbuild",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// GitHub's escaping of a workflow command's message: `%`, `\r`, `\n`.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a workflow command's property value: the data escapes plus `:` and `,`.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One GitHub Actions annotation per finding (`::error`, `::warning`, `::notice`), each on its
/// own line.
pub fn github(report: &Report, paths: &Paths) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let cmd = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut props = vec![format!("file={}", escape_property(&repo_path(paths, f)))];
        if let Some(l) = line_of(f) {
            props.push(format!("line={l}"));
        }
        props.push(format!("title={}", escape_property(f.rule.as_str())));
        out.push_str(&format!(
            "::{cmd} {}::{}\n",
            props.join(","),
            escape_data(&text(f))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::RuleId;

    fn report() -> Report {
        let mut a = Finding::new(
            RuleId::PortFixed,
            "api/Dockerfile",
            Some(9),
            "50% of: a, b\r\nnext",
            "do x",
        );
        a.service = Some("api".into());
        let b = Finding::new(
            RuleId::AsgiServer,
            "<rendered python-asgi/alpine>",
            Some(3),
            "m",
            "f",
        );
        Report::new(vec![a, b], vec!["api".into()], &[])
    }

    #[test]
    fn github_escapes_data_and_properties() {
        let paths = Paths {
            prefix: PathBuf::from("svc,a:b"),
            config_file: "ctxbuild.toml".into(),
        };
        let out = github(&report(), &paths);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "::warning file=svc%2Ca%3Ab/api/Dockerfile,line=9,title=port-fixed::50%25 of: a, b%0D%0Anext%0Afix: do x"
        );
        // A rendered Dockerfile's finding lands on ctxbuild.toml, without its line.
        assert_eq!(
            lines[0],
            "::error file=svc%2Ca%3Ab/ctxbuild.toml,title=asgi-server::<rendered python-asgi/alpine>: m%0Afix: f"
        );
    }

    #[test]
    fn sarif_paths_are_repo_relative() {
        let paths = Paths {
            prefix: PathBuf::from("sub"),
            config_file: "ctxbuild.toml".into(),
        };
        let v = sarif(&report(), &paths);
        let r = &v["runs"][0]["results"][1];
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "sub/api/Dockerfile"
        );
        assert_eq!(
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            9
        );
        let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(
            rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "port-fixed"
        );
    }
}
