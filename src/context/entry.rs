//! One entry of a build context: what Docker would see for a path in `COPY . /dst/`.
//!
//! This is the shared currency of the pipeline: the walk produces entries, keys hash them, the
//! tarball writes them. Only what Docker's cache and tar care about is modelled; `stat` fields
//! exist for the stat cache and are never part of a key.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// What sending an entry to the engine needs of it: the fields of its tar header (classic
/// builder) or of its fsutil stat (BuildKit). A scanned [`Entry`] has them, and so does a keyed
/// manifest record: a build sends whichever list it holds and never needs both (at a million
/// files, each list is about 190 MiB).
pub trait Sendable: Send + Sync + std::fmt::Debug {
    /// Relative to the context root, `/`-separated (see [`Entry::path`]).
    fn path_bytes(&self) -> &[u8];
    fn kind(&self) -> EntryKind;
    /// Permission and special bits (`st_mode & 0o7777`).
    fn mode(&self) -> u32;
    /// Bytes for files (what is read and sent, no more).
    fn size(&self) -> u64;
    fn link_target(&self) -> Option<&Path>;
    /// See [`Entry::rdev`].
    fn rdev(&self) -> u64;
    /// The stat the scan saw, when it was kept. Without it a sender that needs the
    /// modification time or the inode (BuildKit's file sync) asks the filesystem as it sends.
    fn stat(&self) -> Option<StatInfo>;

    /// The path as a [`Path`].
    fn rel_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.path_bytes()))
    }
}

impl Sendable for Entry {
    fn path_bytes(&self) -> &[u8] {
        Entry::path_bytes(self)
    }
    fn kind(&self) -> EntryKind {
        self.kind
    }
    fn mode(&self) -> u32 {
        self.mode
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn link_target(&self) -> Option<&Path> {
        self.link_target.as_deref()
    }
    fn rdev(&self) -> u64 {
        self.rdev
    }
    fn stat(&self) -> Option<StatInfo> {
        Some(self.stat)
    }
}

/// A list of entries to send, by index, whatever holds them: BuildKit's file sync serves the
/// daemon's requests from one for as long as the session lives.
pub trait SendList: Send + Sync + std::fmt::Debug {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> Option<&dyn Sendable>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Sendable> SendList for Vec<T> {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn get(&self, i: usize) -> Option<&dyn Sendable> {
        <[T]>::get(self, i).map(|e| e as &dyn Sendable)
    }
}

impl<L: SendList + ?Sized> SendList for std::sync::Arc<L> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, i: usize) -> Option<&dyn Sendable> {
        (**self).get(i)
    }
}

/// Splits `st_rdev` into (major, minor) the way glibc's `major()`/`minor()` do.
pub fn dev_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}
