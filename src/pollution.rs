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

/// `part` as a share of `total` for messages: one decimal, but never `0.0%` for a share that
/// is not zero (`<0.1%`), and never `100.0%` for one that is not everything (`>99.9%`).
pub fn share_text(part: u64, total: u64) -> String {
    if part == 0 || total == 0 {
        return "0%".into();
    }
    if part >= total {
        return "100%".into();
    }
    let share = part as f64 * 100.0 / total as f64;
    if share < 0.05 {
        "<0.1%".into()
    } else if share >= 99.95 {
        ">99.9%".into()
    } else {
        format!("{share:.1}%")
    }
}

/// The `.dockerignore` lines that keep bytecode out of any context.
pub const DOCKERIGNORE_RULES: &[&str] = &["**/__pycache__", "**/*.pyc", "**/*.pyo"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_round_to_zero_or_everything() {
        assert_eq!(share_text(1, 1_000_000), "<0.1%");
        assert_eq!(share_text(0, 10), "0%");
        assert_eq!(share_text(1, 4), "25.0%");
        assert_eq!(share_text(999_999, 1_000_000), ">99.9%");
        assert_eq!(share_text(5, 5), "100%");
    }

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
