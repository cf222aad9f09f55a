//! The Python files of a context worth reading for app detection and source searches.
//!
//! Bounded on purpose: virtualenvs, `node_modules`, VCS and cache directories, tests and
//! installed packages are skipped; at most [`MAX_FILES`] files, each read only when smaller than
//! [`MAX_FILE`] (through [`crate::fsutil::read_limited`], which refuses FIFOs and devices), and
//! the walk stops at [`MAX_DEPTH`]. Symlinks are not followed. The order is sorted by path, so
//! results are deterministic.

use crate::fsutil;
use std::path::{Path, PathBuf};

pub const MAX_FILES: usize = 5000;
pub const MAX_FILE: u64 = 1 << 20;
pub const MAX_DEPTH: usize = 12;

const SKIP_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
    "dist-packages",
    "build",
    "dist",
    "tests",
    "test",
    "migrations",
    "alembic",
    "docs",
];

/// A readable Python source file: its path relative to the context and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub rel: PathBuf,
    pub text: String,
}

fn skip_dir(path: &Path, name: &str) -> bool {
    SKIP_DIRS.contains(&name)
        || name.ends_with(".egg-info")
        || (name.starts_with('.') && name.len() > 1)
        // Any virtualenv, whatever its name.
        || path.join("pyvenv.cfg").exists()
}

/// The `.py` files under `context` (see the module doc for the bounds), sorted by path.
pub fn python_files(context: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(context)
        .follow_links(false)
        .max_depth(MAX_DEPTH)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !skip_dir(e.path(), &e.file_name().to_string_lossy())
        });
    for entry in walk.flatten() {
        if out.len() >= MAX_FILES {
            break;
        }
        if !entry.file_type().is_file() || entry.path().extension() != Some("py".as_ref()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name.starts_with("test_") || name.ends_with("_test.py") || name == "conftest.py" {
            continue;
        }
        let Ok(bytes) = fsutil::read_limited(entry.path(), MAX_FILE) else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(context)
            .unwrap_or(entry.path())
            .to_path_buf();
        out.push(SourceFile { rel, text });
    }
    out
}
