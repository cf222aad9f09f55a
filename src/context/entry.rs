//! One entry of a build context: what Docker would see for a path in `COPY . /dst/`.
//!
//! This is the shared currency of the pipeline: the walk produces entries, keys hash them, the
//! tarball writes them. Only what Docker's cache and tar care about is modelled; `stat` fields
//! exist for the stat cache and are never part of a key.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What kind of filesystem object an entry is. Symlinks are never followed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// Volatile metadata used only to decide whether a cached hash is still valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatInfo {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

/// One path in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context root, `/`-separated, no leading `./`, never empty.
    /// Stored as raw bytes of the OS path (names need not be UTF-8).
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Bytes for files, 0 for directories, target length for symlinks (as `lstat` says).
    pub size: u64,
    /// Where a symlink points, verbatim (not resolved).
    pub link_target: Option<PathBuf>,
    pub stat: StatInfo,
}

impl Entry {
    /// The path as bytes: the sort key Docker's tar order and our keys use.
    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }

    /// The path for messages (lossy for non-UTF-8 names).
    pub fn display(&self) -> std::borrow::Cow<'_, str> {
        self.path.to_string_lossy()
    }

    /// The final path component.
    pub fn file_name(&self) -> &OsStr {
        self.path.file_name().unwrap_or(self.path.as_os_str())
    }
}
