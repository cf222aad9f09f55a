//! What counts as Python bytecode pollution in a build context.
//!
//! One definition shared by `clean` (which removes it), `ls --sizes` (which weighs it), `check`
//! (which reports it) and `image` (which never sends it). Decided by name alone, so walkers can
//! classify before asking for metadata. `keep_out` beside it is `image`'s filter over a scanned
//! context.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Why a path is bytecode pollution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bytecode {
    /// `*.pyc`, including `*.opt-N.pyc` and tagged names like `mod.cpython-312.pyc`.
    Pyc,
    /// `*.pyo` (Python 2 / pre-3.5 optimised bytecode).
    Pyo,
    /// A `__pycache__` directory.
    PycacheDir,
}

/// Classifies a file or directory by its final name component.
///
/// Files: `*.pyc` / `*.pyo` (case-sensitive, as CPython writes them). Directories: exactly
/// `__pycache__`. A file named `__pycache__` or a directory named `x.pyc` is not pollution.
pub fn classify(name: &OsStr, is_dir: bool) -> Option<Bytecode> {
    let b = name.as_bytes();
    if is_dir {
        return (b == b"__pycache__").then_some(Bytecode::PycacheDir);
    }
    // A bare ".pyc" is a dotfile, not bytecode.
    if b.len() > 4 && b.ends_with(b".pyc") {
        Some(Bytecode::Pyc)
    } else if b.len() > 4 && b.ends_with(b".pyo") {
        Some(Bytecode::Pyo)
    } else {
        None
    }
}

/// The `.dockerignore` lines that keep bytecode out of any context.
pub const DOCKERIGNORE_RULES: &[&str] = &["**/__pycache__", "**/*.pyc", "**/*.pyo"];

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Option<Bytecode> {
        classify(OsStr::new(name), false)
    }

    #[test]
    fn files() {
        assert_eq!(f("mod.pyc"), Some(Bytecode::Pyc));
        assert_eq!(f("mod.cpython-312.opt-2.pyc"), Some(Bytecode::Pyc));
        assert_eq!(f("old.pyo"), Some(Bytecode::Pyo));
        assert_eq!(f(".pyc"), None);
        assert_eq!(f("mod.py"), None);
        assert_eq!(f("mod.PYC"), None);
        assert_eq!(f("__pycache__"), None);
    }

    #[test]
    fn dirs() {
        assert_eq!(
            classify(OsStr::new("__pycache__"), true),
            Some(Bytecode::PycacheDir)
        );
        assert_eq!(classify(OsStr::new("x.pyc"), true), None);
        assert_eq!(classify(OsStr::new("__pycache___"), true), None);
    }
}
