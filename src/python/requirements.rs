//! Just enough of a pip requirements file (and of PEP 508 requirement strings, which
//! `pyproject.toml` uses too) to know which packages it names, with which extras and version
//! specifier.
//!
//! Names are compared after PEP 503 normalisation (`Uvicorn_Worker` is `uvicorn-worker`).
//! Options (`-r`, `--hash`…), comments and bare URLs are skipped; nothing is resolved or installed.

/// One requirement: `name[extra,…] specifier ; marker`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    /// PEP 503-normalised name.
    pub name: String,
    /// Normalised extras (`fastapi[standard]` → `["standard"]`).
    pub extras: Vec<String>,
    /// The version specifier as written without spaces (`==0.115.0`, `>=0.2,<1`), or a direct
    /// reference (`@ https://…`); empty when the requirement takes any version.
    pub specifier: String,
    /// The environment marker after `;`, if any.
    pub marker: Option<String>,
    /// 1-based line in the file it came from (0 for a string not read from a file).
    pub line: usize,
}

impl Requirement {
    /// Whether the requirement fixes one version (`==X` or `===X`, no wildcard).
    pub fn is_pinned(&self) -> bool {
        (self.specifier.starts_with("==") && !self.specifier.contains(['*', ',']))
            || self.specifier.starts_with("===")
    }
}

/// Every requirement of a requirements text, in order (continuation lines joined).
pub fn parse(text: &str) -> Vec<Requirement> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut first = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            first = i + 1;
        }
        if let Some(head) = raw.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        if let Some(r) = parse_line(&line, first) {
            out.push(r);
        }
    }
    if let Some(r) = parse_line(&pending, first) {
        out.push(r);
    }
    out
}

/// One requirement string (a requirements line or a PEP 508 string from `pyproject.toml`).
pub fn parse_line(line: &str, line_no: usize) -> Option<Requirement> {
    let line = match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let name = &line[..end];
    if name.is_empty() || line[end..].starts_with("://") || line[end..].starts_with(':') {
        return None;
    }
    let (body, marker) = match line[end..].split_once(';') {
        Some((b, m)) => (b, Some(m.trim().to_string()).filter(|m| !m.is_empty())),
        None => (&line[end..], None),
    };
    let mut rest = body.trim_start();
    let mut extras = Vec::new();
    if let Some(inner) = rest.strip_prefix('[') {
        let close = inner.find(']')?;
        extras = inner[..close]
            .split(',')
            .map(|e| normalize(e.trim()))
            .filter(|e| !e.is_empty())
            .collect();
        rest = &inner[close + 1..];
    }
    let mut specifier: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    if specifier.starts_with('(') && specifier.ends_with(')') {
        specifier = specifier[1..specifier.len() - 1].to_string();
    }
    if specifier.starts_with('@') {
        specifier = format!("@ {}", rest.trim().trim_start_matches('@').trim());
    }
    Some(Requirement {
        name: normalize(name),
        extras,
        specifier,
        marker,
        line: line_no,
    })
}

/// The normalised names of the packages a requirements text lists, in order.
pub fn names(text: &str) -> Vec<String> {
    parse(text).into_iter().map(|r| r.name).collect()
}

/// Whether the requirements list `package`.
pub fn mentions(text: &str, package: &str) -> bool {
    let want = normalize(package);
    names(text).contains(&want)
}

/// PEP 503: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_names() {
        let text = "# deps\nfastapi==0.115.0\nUvicorn_Worker>=0.2  # worker\ngunicorn ; python_version>'3'\n-r base.txt\nuvicorn[standard]\n--hash=sha256:abc\n";
        assert_eq!(
            names(text),
            ["fastapi", "uvicorn-worker", "gunicorn", "uvicorn"]
        );
        assert!(mentions(text, "uvicorn-worker"));
        assert!(!mentions("uvicorn\n", "uvicorn-worker"));
    }

    #[test]
    fn parses_extras_specifiers_markers() {
        let text = "fastapi[standard]==0.115.0\nuvicorn [ Standard , http2 ] >= 0.30 , <1 ; python_version >= '3.9'\ngunicorn\\\n  ==23.0.0\nhttps://example.com/x.whl\nmypkg @ https://example.com/mypkg.whl\nstarlette (>=0.40)\n";
        let r = parse(text);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[0].name, "fastapi");
        assert_eq!(r[0].extras, ["standard"]);
        assert_eq!(r[0].specifier, "==0.115.0");
        assert!(r[0].is_pinned());
        assert_eq!(r[1].extras, ["standard", "http2"]);
        assert_eq!(r[1].specifier, ">=0.30,<1");
        assert_eq!(r[1].marker.as_deref(), Some("python_version >= '3.9'"));
        assert!(!r[1].is_pinned());
        assert_eq!(
            (r[2].name.as_str(), r[2].specifier.as_str(), r[2].line),
            ("gunicorn", "==23.0.0", 3)
        );
        assert_eq!(r[3].specifier, "@ https://example.com/mypkg.whl");
        assert_eq!(r[4].specifier, ">=0.40");
    }
}
