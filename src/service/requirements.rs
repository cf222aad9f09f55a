//! Just enough of a pip requirements file to know which packages it names.
//!
//! Names are compared after PEP 503 normalisation (`Uvicorn_Worker` is `uvicorn-worker`).
//! Options (`-r`, `--hash`…), comments and URLs are skipped; nothing is resolved or installed.

/// The normalised names of the packages a requirements text lists, in order.
pub fn names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with('-')
                || line.contains("://")
            {
                return None;
            }
            let end = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .unwrap_or(line.len());
            let name = &line[..end];
            (!name.is_empty()).then(|| normalize(name))
        })
        .collect()
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
}
