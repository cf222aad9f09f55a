//! Whether the app's source mentions a health path, so a configured `health_path` that no route
//! serves can be reported before the container turns `unhealthy`.
//!
//! A route path appears in the source as a string literal (`@app.get("/health")`, or
//! `"/health"` passed to `add_api_route`); routers with a prefix split it (`prefix="/api"` +
//! `"/health"`), so the last segment quoted (`"/health"`) also counts. This is a search, not an
//! analysis: it can only say "mentioned somewhere" or "not mentioned in any file read".

use super::files::python_files;
use std::path::{Path, PathBuf};

/// Where a path is mentioned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mention {
    pub file: PathBuf,
    pub line: usize,
}

/// The first place (by path, then line) where the Python source of `context` quotes
/// `health_path`, or its last segment with a leading `/`.
pub fn find_mention(context: &Path, health_path: &str) -> Option<Mention> {
    let path = health_path.split(['?', '#']).next().unwrap_or(health_path);
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        // `/` is every app's root; nothing to look for.
        return None;
    }
    let last = format!("/{}", path.rsplit('/').next().unwrap_or(path));
    let mut needles = Vec::new();
    for p in [path, last.as_str()] {
        for q in ['"', '\''] {
            needles.push(format!("{q}{p}{q}"));
            needles.push(format!("{q}{p}/{q}"));
        }
    }
    for f in python_files(context) {
        for (i, line) in f.text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n.as_str())) {
                return Some(Mention {
                    file: f.rel,
                    line: i + 1,
                });
            }
        }
    }
    None
}
