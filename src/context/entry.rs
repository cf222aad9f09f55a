//! One entry of a build context: what Docker would see for a path in `COPY . /dst/`.
//!
//! This is the shared currency of the pipeline: the walk produces entries, keys hash them, the
//! tarball writes them. Only what Docker's cache and tar care about is modelled; `stat` fields
//! exist for the stat cache and are never part of a key.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What kind of filesystem object an entry is. Symlinks are never followed.
///
/// Named pipes and device nodes are part of the context like files: the Docker CLI sends them
/// (as tar type `6`, `3`, `4` with no content), `COPY` recreates them in the image and the
/// classic builder's cache sees their type, mode and (for devices) device number — verified on
/// the engine in `tests/context_fidelity.rs` and `tests/cache_prediction.rs`. Sockets are not:
/// the CLI skips them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A named pipe (never opened: reading one would block).
    Fifo,
    CharDevice,
    BlockDevice,
}

impl EntryKind {
    /// True for the kinds that carry a device number ([`Entry::rdev`]).
    pub fn is_device(self) -> bool {
        matches!(self, EntryKind::CharDevice | EntryKind::BlockDevice)
    }

    /// True for pipes and devices: sent and copied, but never opened or read.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice
        )
    }
}

/// Volatile metadata used only to decide whether a cached hash is still valid.
///
/// Times are nanoseconds since the epoch in an `i64` (years 1678–2262, saturating beyond): an
/// `i128` would make every [`Entry`] 24 bytes larger (16-byte alignment), which a million-file
/// context pays a million times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatInfo {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl StatInfo {
    /// `secs` and `nsec` as `stat` gives them, in nanoseconds (saturating).
    pub fn ns(secs: i64, nsec: i64) -> i64 {
        secs.saturating_mul(1_000_000_000).saturating_add(nsec)
    }
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
    /// The device number (`st_rdev`) of a character or block device, 0 for every other kind.
    /// Part of what the cache sees: the same name and mode with another device is a miss.
    pub rdev: u64,
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

    /// The device's major and minor numbers, as the tar header's devmajor/devminor carry them.
    pub fn dev_numbers(&self) -> (u32, u32) {
        dev_numbers(self.rdev)
    }

    /// The final path component.
    pub fn file_name(&self) -> &OsStr {
        self.path.file_name().unwrap_or(self.path.as_os_str())
    }
}

/// Splits `st_rdev` into (major, minor) the way glibc's `major()`/`minor()` do.
pub fn dev_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}
