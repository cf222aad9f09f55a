//! Where the bytes of a context are: the heaviest directories and what bytecode pollution adds.
//!
//! Pure arithmetic over a scanned [`Context`]; the weights count regular files only (a symlink
//! adds an entry, not content). Pollution is decided by [`crate::pollution::classify`]: a
//! `*.pyc`/`*.pyo` file, or any file below a `__pycache__` directory.

use super::{Context, EntryKind};
use crate::pollution::classify;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A count of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub files: u64,
    pub bytes: u64,
}

/// One directory's recursive weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirWeight {
    /// Relative to the context root.
    pub path: PathBuf,
    #[serde(flatten)]
    pub tally: Tally,
}

/// What bytecode pollution adds to the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollutionWeight {
    #[serde(flatten)]
    pub tally: Tally,
    /// `__pycache__` directories visible to `COPY`.
    pub pycache_dirs: u64,
}

/// The size report of `ctxbuild ls --sizes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizeReport {
    /// Every regular file visible to `COPY . /dst/`.
    pub total: Tally,
    /// Symlinks visible to `COPY` (no content of their own).
    pub symlinks: u64,
    /// Directories by recursive weight, heaviest first (ties by path).
    pub heaviest: Vec<DirWeight>,
    pub pollution: PollutionWeight,
}

/// Weighs a context, keeping the `top` heaviest directories.
pub fn sizes(ctx: &Context, top: usize) -> SizeReport {
    let mut total = Tally::default();
    let mut symlinks = 0;
    let mut pollution = PollutionWeight::default();
    let mut dirs: HashMap<&[u8], Tally> = HashMap::new();
    for e in &ctx.entries {
        let path = e.path_bytes();
        match e.kind {
            EntryKind::Symlink => symlinks += 1,
            // No content to weigh.
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {}
            EntryKind::Dir => {
                if classify(e.file_name(), true).is_some() {
                    pollution.pycache_dirs += 1;
                }
            }
            EntryKind::File => {
                total.files += 1;
                total.bytes += e.size;
                let mut polluted = classify(e.file_name(), false).is_some();
                for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
                    let dir = &path[..i];
                    let t = dirs.entry(dir).or_default();
                    t.files += 1;
                    t.bytes += e.size;
                    if !polluted {
                        let name = dir.rsplit(|&b| b == b'/').next().unwrap_or(dir);
                        polluted = classify(OsStr::from_bytes(name), true).is_some();
                    }
                }
                if polluted {
                    pollution.tally.files += 1;
                    pollution.tally.bytes += e.size;
                }
            }
        }
    }
    let mut heaviest: Vec<DirWeight> = dirs
        .into_iter()
        .map(|(p, tally)| DirWeight {
            path: PathBuf::from(OsStr::from_bytes(p)),
            tally,
        })
        .collect();
    heaviest.sort_by(|a, b| {
        b.tally.bytes.cmp(&a.tally.bytes).then_with(|| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        })
    });
    heaviest.truncate(top);
    SizeReport {
        total,
        symlinks,
        heaviest,
        pollution,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{scan, ContextOptions};

    #[test]
    fn weighs_directories_and_pollution() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, n: usize| {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, vec![b'x'; n]).unwrap();
        };
        w("app/main.py", 100);
        w("app/__pycache__/main.cpython-312.pyc", 300);
        w("app/__pycache__/stray.txt", 7);
        w("lib/big.bin", 1000);
        w("old.pyo", 5);
        std::os::unix::fs::symlink("app", d.path().join("link")).unwrap();
        let ctx = scan(&ContextOptions::new(d.path())).unwrap();
        let r = sizes(&ctx, 2);
        assert_eq!(
            r.total,
            Tally {
                files: 5,
                bytes: 1412
            }
        );
        assert_eq!(r.symlinks, 1);
        assert_eq!(r.heaviest.len(), 2);
        assert_eq!(r.heaviest[0].path, PathBuf::from("lib"));
        assert_eq!(
            r.heaviest[0].tally,
            Tally {
                files: 1,
                bytes: 1000
            }
        );
        assert_eq!(r.heaviest[1].path, PathBuf::from("app"));
        assert_eq!(
            r.heaviest[1].tally,
            Tally {
                files: 3,
                bytes: 407
            }
        );
        assert_eq!(
            r.pollution.tally,
            Tally {
                files: 3,
                bytes: 312
            }
        );
        assert_eq!(r.pollution.pycache_dirs, 1);
    }
}
