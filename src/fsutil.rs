//! Reading and writing the files ctxbuild itself consumes and produces, safely.
//!
//! Every input file (a Dockerfile, `ctxbuild.toml`, a saved plan, a requirements file…) is read
//! through [`read_limited`]: it refuses anything that is not a regular file (a FIFO would hang,
//! `/dev/zero` would never end) without blocking on it, and stops at a size limit instead of
//! growing without bound. Every file ctxbuild writes for itself (saved plans, the stat cache, a
//! tar given to `-o`) goes through [`write_atomic`]: a fresh temporary file in the same
//! directory, created exclusively and without following symlinks, synced, then renamed over the
//! destination — a planted symlink cannot redirect the write and a full disk leaves the previous
//! file whole. A file the user names (`-o`, `--save`, `--report`) goes through
//! [`write_output_with`], which writes a descriptor path (`/dev/stdout`, `/dev/fd/3`), a FIFO or
//! a device in place instead: renaming over it would replace the device node itself.
//!
//! This module knows nothing of Docker; it is a leaf every stage may use.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// 16 MiB: far above any real Dockerfile, `.dockerignore`, config or requirements file.
pub const TEXT_LIMIT: u64 = 16 << 20;

/// Why an input file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: larger than the {} MiB limit for this input", path.display(), limit >> 20)]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
}

impl ReadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::NotUtf8 { path } => path,
        }
    }

    /// True when the file does not exist (callers often treat that as "absent", not an error).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// For callers whose error types carry an `io::Error` next to the path: the OS error itself when
/// there was one (so `NotFound` checks keep working), else the reason without the path.
impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io { source, .. } => source,
            ReadError::NotRegular { kind, .. } => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("is {kind}, not a regular file"),
            ),
            ReadError::TooLarge { limit, .. } => io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("larger than the {} MiB limit for this input", limit >> 20),
            ),
            ReadError::NotUtf8 { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8")
            }
        }
    }
}

/// Names a non-regular file type for messages.
pub fn kind_name(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Opens `path` for reading (following symlinks, as a user expects of `-f link`) only if it is a
/// regular file. `O_NONBLOCK` keeps `open` from hanging on a FIFO; the type is then checked on
/// the opened descriptor, so a swap between check and use cannot slip a FIFO in.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let ft = file.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_name(&ft),
        });
    }
    Ok(file)
}

/// Opens `path` for reading without following a symlink at its last component and without
/// blocking, only if it is a regular file: for files a walk found, which may have been swapped
/// for a FIFO, a device or a link since (the open must neither hang nor read elsewhere).
pub fn open_found_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file (it changed during the run)",
                kind_name(&ft)
            ),
        ));
    }
    Ok(file)
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let mut buf = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(buf)
}

/// Reads a regular UTF-8 text file of at most [`TEXT_LIMIT`] bytes.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_limited(path, TEXT_LIMIT)?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Writes `path` atomically through a temporary file in the same directory.
///
/// The temporary file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` (a symlink planted at its name
/// makes the write fail instead of following it), filled by `fill`, synced, and renamed over
/// `path`; on any error it is removed and `path` is untouched. `rename` replaces a symlink at
/// `path` itself rather than writing through it.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    write_atomic_mode(path, 0o644, fill)
}

/// [`write_atomic_with`] for a file only its user may read (mode 0600): saved plans hold
/// `--build-arg` values, and a cache directory may be readable by others.
pub fn write_private_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    write_atomic_mode(path, 0o600, fill)
}

fn write_atomic_mode(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp_path = |attempt: u32| {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{}.tmp", std::process::id(), unique(attempt)));
        dir.join(tmp_name)
    };
    // Unnamed while it is filled (`O_TMPFILE`): a run killed or interrupted meanwhile leaves
    // nothing behind (a half tar of gigabytes, inside the context, would also change the next
    // build's keys). Complete, it is linked to a fresh temporary name and renamed over `path`.
    if let Some(mut file) = open_unnamed(dir, mode) {
        fill(&mut file)
            .and_then(|()| file.flush())
            .and_then(|()| file.sync_all())?;
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        let from = std::ffi::CString::new(proc_path)?;
        let mut attempt = 0u32;
        loop {
            let tmp = tmp_path(attempt);
            let to = std::ffi::CString::new(tmp.as_os_str().as_encoded_bytes())?;
            // SAFETY: two NUL-terminated paths; linkat reads them and returns.
            let linked = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if linked != 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 {
                    attempt += 1;
                    continue;
                }
                // Cannot be linked here (a filesystem or sandbox that refuses it): copied into
                // a named temporary file instead, as if unnamed files were not supported.
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(0))?;
                let mut unnamed = io::BufReader::new(file);
                return write_named(dir, path, mode, tmp_path, |f| {
                    io::copy(&mut unnamed, f).map(drop)
                });
            }
            if let Err(e) = std::fs::rename(&tmp, path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            break;
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        return Ok(());
    }
    write_named(dir, path, mode, tmp_path, fill)
}

/// The atomic write through a named temporary file `tmp_path(attempt)` in `dir`.
fn write_named(
    dir: &Path,
    path: &Path,
    mode: u32,
    tmp_path: impl Fn(u32) -> PathBuf,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = tmp_path(attempt);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = fill(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; failure to sync a directory is not worth failing for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An unnamed file in `dir` (`O_TMPFILE`), when the filesystem has them and `/proc/self/fd`
/// can give it a name later; `None` otherwise (a named temporary file is used instead).
fn open_unnamed(dir: &Path, mode: u32) -> Option<File> {
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    OpenOptions::new()
        .read(true) // read back if it cannot be linked (see `write_atomic_mode`)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

/// How much of one of ctxbuild's cache directories to keep (see [`prune_cache_dir`]).
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// The newest files kept, at most.
    pub files: usize,
    /// Their total size, at most (the newest file is kept whatever its size).
    pub bytes: u64,
}

/// A temporary file of an interrupted write older than this is removed by the next prune.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Most entries one prune looks at: a cache directory that holds more was not made by ctxbuild
/// alone, and is left as it is past that.
const PRUNE_SCAN: usize = 100_000;

/// Removes the oldest files named `*SUFFIX` in `dir` (one of ctxbuild's own cache directories:
/// saved plans, stat caches, no-op records) beyond `keep`, newest first by modification time,
/// always keeping `spare` (the file just written); and temporary files (`.*.tmp`) older than an
/// hour, which only an interrupted write leaves. Each key (a tag, a context) has its own file
/// there, so without this a CI runner tagging every build with its commit grows the cache by a
/// plan the size of the context per build, forever.
///
/// Only regular files are removed, each relative to a handle on `dir` opened without following
/// symlinks and checked with `fstatat` at removal time: a symlink is never followed or removed,
/// and `dir` swapped for a link is refused. Returns how many files were removed.
pub fn prune_cache_dir(
    dir: &Path,
    suffix: &str,
    keep: Keep,
    spare: Option<&std::ffi::OsStr>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    let fd = handle.as_raw_fd();
    // The names are read through the handle's own /proc entry where there is one, so they are
    // the names of the directory that will be pruned.
    let listed =
        std::fs::read_dir(format!("/proc/self/fd/{fd}")).or_else(|_| std::fs::read_dir(dir))?;
    let now = std::time::SystemTime::now();
    let (mut found, mut stale) = (Vec::new(), Vec::new());
    for (seen, entry) in listed.enumerate() {
        if seen >= PRUNE_SCAN {
            return Ok(0);
        }
        let name = entry?.file_name();
        let bytes = name.as_bytes();
        // ctxbuild's own names only (a hash, then the suffix; a temporary file is
        // `.NAME.PID.N.tmp`): a cache directory pointed at a user's own files loses nothing.
        let temp = bytes.len() > 1
            && bytes[0] == b'.'
            && bytes.ends_with(b".tmp")
            && own_name(&bytes[1..], suffix, true);
        if !temp && !own_name(bytes, suffix, false) {
            continue;
        }
        let Some(st) = stat_at(fd, &name) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                st.st_mtime.max(0) as u64,
                st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
            );
        let id = (st.st_dev, st.st_ino);
        if temp {
            if now.duration_since(mtime).is_ok_and(|age| age > STALE_TEMP) {
                stale.push((name, id));
            }
        } else if Some(name.as_os_str()) != spare {
            found.push((mtime, st.st_size.max(0) as u64, name, id));
        }
    }
    let mut bytes = spare
        .and_then(|s| stat_at(fd, s))
        .map_or(0, |st| st.st_size.max(0) as u64);
    let mut files = usize::from(spare.is_some());
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut doomed = stale;
    for (_, size, name, id) in found {
        files += 1;
        bytes = bytes.saturating_add(size);
        if files > keep.files || (files > 1 && bytes > keep.bytes) {
            doomed.push((name, id));
        }
    }
    let mut removed = 0;
    for (name, id) in doomed {
        // Still the very file listed (not swapped for a directory or a link, nor replaced by a
        // fresh version another run just renamed over it).
        if stat_at(fd, &name).is_some_and(|st| {
            st.st_mode & libc::S_IFMT == libc::S_IFREG && (st.st_dev, st.st_ino) == id
        }) {
            let c = std::ffi::CString::new(name.as_bytes())?;
            // SAFETY: a NUL-terminated name relative to an open directory handle.
            if unsafe { libc::unlinkat(fd, c.as_ptr(), 0) } == 0 {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Whether `name` is one ctxbuild gives a cache file: 32 lowercase hex digits and `suffix`
/// (then, with `prefix_only`, anything: a temporary file's `.PID.N.tmp` tail).
fn own_name(name: &[u8], suffix: &str, prefix_only: bool) -> bool {
    let Some(rest) = name.get(32..) else {
        return false;
    };
    name[..32]
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && if prefix_only {
            rest.starts_with(suffix.as_bytes())
        } else {
            rest == suffix.as_bytes()
        }
}

/// Sets the modification time of `path` (not through a symlink) to now: a cache file used
/// but not rewritten stays among the newest that [`prune_cache_dir`] keeps.
pub fn touch(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: a NUL-terminated path; a null `times` means now.
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                std::ptr::null(),
                libc::AT_SYMLINK_NOFOLLOW,
            );
        }
    }
}

/// Sets the times of `p` (not through a symlink) to `secs_ago` seconds ago: tests of what
/// the age of a cache file decides.
#[cfg(test)]
pub(crate) fn set_mtime(p: &Path, secs_ago: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = libc::timespec {
        tv_sec: now - secs_ago,
        tv_nsec: 0,
    };
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "{}", io::Error::last_os_error());
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`.
fn stat_at(dirfd: libc::c_int, name: &std::ffi::OsStr) -> Option<libc::stat> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(name.as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a NUL-terminated name and a buffer of the right size, filled on success.
    let r = unsafe {
        libc::fstatat(
            dirfd,
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: fstatat returned 0, so it filled `st`.
    (r == 0).then(|| unsafe { st.assume_init() })
}

/// Writes a file the user named (`-o`, `--save`, `--report`): atomically like
/// [`write_atomic_with`], except for destinations that are not files to replace.
///
/// - A descriptor path — `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N` — writes
///   to that open descriptor of this process (duplicated: its offset and `O_APPEND` are kept,
///   nothing is truncated), as a shell's `>` would. Recognised by its spelling only, so a
///   symlink someone planted at the destination is never followed.
/// - A FIFO or a character or block device at the destination itself (not through a symlink) is
///   opened and written in place: `-o /dev/null` discards, `-o fifo` feeds its reader. A FIFO
///   without a reader is an error, not a wait that Ctrl-C could not end.
/// - Anything else, a symlink included, is replaced through the rename.
///
/// Renaming over `/dev/null` replaced the device node: run as root, `context -o /dev/null`
/// made it a regular file. Files ctxbuild names itself (caches, saved state) use
/// [`write_atomic_with`], which never writes in place.
pub fn write_output_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let in_place = match descriptor_path(path) {
        Some(fd) => Some(dup_given(path, fd)?),
        None => open_special(path)?,
    };
    let Some(mut file) = in_place else {
        // A file replaced keeps its permission bits (a 0600 report stays 0600); a new one
        // gets 0644 less the umask.
        let keep = std::fs::symlink_metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.permissions().mode() & 0o7777);
        return write_atomic_mode(path, keep.unwrap_or(0o644), |f| {
            if let Some(mode) = keep {
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            fill(f)
        });
    };
    fill(&mut file).and_then(|()| file.flush())?;
    // A block device's write errors show on sync; a FIFO or a character device has none.
    match file.sync_all() {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to a file the user named (see [`write_output_with`]).
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_output_with(path, |f| f.write_all(bytes))
}

/// Whether `path` spells this process's standard output (`/dev/stdout`, `/dev/fd/1`, …).
pub fn names_stdout(path: &Path) -> bool {
    descriptor_path(path) == Some(1)
}

/// The descriptor a path of this process's own descriptors names, by its spelling.
fn descriptor_path(path: &Path) -> Option<libc::c_int> {
    // Spelled `//dev/./stdout` or reached through `..` or /dev/fd's own link, it is the same
    // descriptor: compare the path with its directory resolved (/dev is not the user's to plant).
    let resolved = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .and_then(|d| std::fs::canonicalize(d).ok())
        .zip(path.file_name())
        .map(|(d, name)| d.join(name));
    let s = resolved.unwrap_or_else(|| path.to_path_buf());
    let s = s.to_str()?;
    let n = match s {
        "-" | "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => s
            .strip_prefix("/dev/fd/")
            .or_else(|| s.strip_prefix("/proc/self/fd/"))
            .or_else(|| {
                s.strip_prefix("/proc/")?
                    .strip_prefix(&std::process::id().to_string())?
                    .strip_prefix("/fd/")
            })?,
    };
    n.parse().ok()
}

/// A duplicate of descriptor `fd`, if it is one this process was given: inherited descriptors
/// lack close-on-exec, while every descriptor ctxbuild opens itself (files, sockets, the
/// engine's connection) has it, and writing a tar into one of those would corrupt it.
fn dup_given(path: &Path, fd: libc::c_int) -> io::Result<File> {
    // SAFETY: F_GETFD reads the descriptor's flags; it touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{}: descriptor {fd} is not open ({e})", path.display()),
        ));
    }
    if fd > 2 && flags & libc::FD_CLOEXEC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: descriptor {fd} was not given to ctxbuild (it is one ctxbuild opened \
                 itself)\nhint: name a file, or give the descriptor from the shell (`3>out.tar \
                 … -o /dev/fd/3`)",
                path.display()
            ),
        ));
    }
    dup_fd(fd)
}

fn dup_fd(fd: libc::c_int) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor (or fails); the File owns only that one.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(new) })
}

/// A FIFO or device at `path` itself, opened for writing; `None` for anything to replace.
fn open_special(path: &Path) -> io::Result<Option<File>> {
    let t = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if t.is_symlink() {
        // A link to a device or a FIFO is neither followed (it may be planted) nor replaced
        // (a udev link like /dev/disk/by-label/… would become a file in /dev); a link to a
        // directory is not replaced by a file either.
        return match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link to a directory: give a file name",
            )),
            Ok(m) if !m.is_file() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "is a symbolic link to a device, FIFO or socket: give {} itself",
                    std::fs::canonicalize(path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| "its target".into())
                ),
            )),
            _ => Ok(None),
        };
    }
    if t.is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a socket: give a file, a FIFO or a device",
        ));
    }
    if !(t.is_fifo() || t.is_char_device() || t.is_block_device()) {
        return Ok(None);
    }
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if t.is_fifo() && e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "is a FIFO with no reader: start its reader first",
            ))
        }
        Err(e) => return Err(e),
    };
    // Swapped for a regular file since the check: replaced by the rename after all.
    if file.metadata()?.file_type().is_file() {
        return Ok(None);
    }
    // Writes block as usual from here (a full FIFO waits for its reader).
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: plain fcntl flag calls on a descriptor this File owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(file))
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

fn unique(attempt: u32) -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ ((attempt as u64) << 32)
}

/// Reads `SOURCE_DATE_EPOCH`: unset or empty is `None`; anything but a non-negative integer is
/// an error naming the value (reproducible-builds.org: "it MUST be an integer").
pub fn source_date_epoch(value: Option<&str>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970 (unset it or give an integer)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifo_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = read_limited(&p, 10).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular { kind: "a FIFO", .. }),
            "{e}"
        );
    }

    #[test]
    fn refuses_devices_and_dirs() {
        let e = read_limited(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let e = read_limited(Path::new("/"), 10).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }) || matches!(e, ReadError::Io { .. }));
    }

    #[test]
    fn stops_at_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, vec![b'x'; 11]).unwrap();
        assert!(matches!(
            read_limited(&p, 10),
            Err(ReadError::TooLarge { .. })
        ));
        assert_eq!(read_limited(&p, 11).unwrap().len(), 11);
    }

    #[test]
    fn atomic_write_replaces_and_does_not_follow_links() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        let target = d.path().join("plan.json");
        // A symlink at the destination is replaced, not written through.
        std::os::unix::fs::symlink(&outside, &target).unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    /// Writes `bytes` (less than a pipe holds) to `dest` with `fifo`'s read end already open
    /// (non-blocking, so neither side waits for the other); returns what reached the FIFO. A
    /// write that replaced the FIFO instead of feeding it leaves nothing to read, never a hang.
    fn write_to_fifo(fifo: &Path, dest: &Path, bytes: &[u8]) -> Vec<u8> {
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .unwrap();
        write_output(dest, bytes).unwrap();
        let mut got = Vec::new();
        match reader.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        got
    }

    fn file_type(p: &Path) -> std::fs::FileType {
        std::fs::symlink_metadata(p).unwrap().file_type()
    }

    #[test]
    fn a_fifo_or_device_destination_is_written_in_place_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("out.tar");
        mkfifo(&fifo);
        assert_eq!(write_to_fifo(&fifo, &fifo, b"tar bytes"), b"tar bytes");
        assert!(file_type(&fifo).is_fifo());
        // No reader: an error at once, not a wait.
        let e = write_output(&fifo, b"x").unwrap_err();
        assert!(e.to_string().contains("no reader"), "{e}");
        // A null device of our own (as root): it stays a device. `rename` over it made
        // `/dev/null` a regular file.
        let null = d.path().join("null");
        let c = std::ffi::CString::new(null.as_os_str().as_encoded_bytes()).unwrap();
        if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0 {
            write_output(&null, b"discarded").unwrap();
            assert!(file_type(&null).is_char_device());
        } else {
            eprintln!("mknod not permitted: the device case is covered by the FIFO only");
        }
        // Nothing else was created beside them.
        let expected = 1 + usize::from(null.exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), expected);
        // Files ctxbuild names itself are never written in place.
        write_atomic(&fifo, b"state").unwrap();
        assert!(file_type(&fifo).is_file());
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        // To a regular file, even spelled through /proc (as `/dev/stdout` is): the link is
        // replaced, the target untouched.
        let via_proc = PathBuf::from("/proc/self/root").join(victim.strip_prefix("/").unwrap());
        let link = d.path().join("to-victim");
        std::os::unix::fs::symlink(&via_proc, &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(file_type(&link).is_file());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // To a FIFO or a directory: an error, and both the link and its target stay (a udev
        // link in /dev replaced by a file would never reach its device).
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        for (name, target, says) in [
            ("to-fifo", &fifo, "device, FIFO or socket"),
            ("to-dir", &d.path().to_path_buf(), "directory"),
        ] {
            let link = d.path().join(name);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let e = write_output(&link, b"new").unwrap_err();
            assert!(e.to_string().contains(says), "{name}: {e}");
            assert!(file_type(&link).is_symlink(), "{name}");
        }
        assert!(file_type(&fifo).is_fifo());
    }

    #[test]
    fn a_descriptor_path_writes_to_that_descriptor_at_its_offset() {
        // `/dev/stdout` redirected to a file is this process's descriptor 1: a temporary file
        // cannot be made in /proc/self/fd, and what the shell opened (`>>` included) is the
        // destination, written from its current offset, never truncated.
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("redirected");
        let mut f = File::create(&target).unwrap();
        f.write_all(b"head ").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // Opened here, it has close-on-exec, like every descriptor ctxbuild opens itself: not
        // one the command was given, so it is refused and left as it was.
        for spelling in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
            let e = write_output(Path::new(&spelling), b"tail ").unwrap_err();
            assert!(e.to_string().contains("was not given to ctxbuild"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "head ");
        // As a shell hands it over (`3>>file`): no close-on-exec.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        for spelling in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
            write_output(Path::new(&spelling), b"tail ").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "head tail tail ");
        let e = write_output(Path::new("/dev/fd/987654"), b"x").unwrap_err();
        assert!(e.to_string().contains("is not open"), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        for spelling in [
            "/dev/stdout",
            "//dev/./stdout",
            "/dev/../dev/stdout",
            "-",
            "/dev/fd/1",
        ] {
            assert!(names_stdout(Path::new(spelling)), "{spelling}");
        }
        assert!(!names_stdout(Path::new("/dev/stdout2")));
        assert!(!names_stdout(Path::new("stdout")));
    }

    use super::set_mtime;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prune_keeps_the_newest_and_the_spare_and_touches_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("plans");
        std::fs::create_dir(&cache).unwrap();
        // ctxbuild names its files by a hash: p(0) the newest … p(7) the oldest; `spare` (just
        // written) is older than all of them.
        let p = |i: u32| format!("{:032x}.json", i);
        let spare = format!("{:032x}.json", 0xabc);
        for i in 0..8 {
            let path = cache.join(p(i));
            std::fs::write(&path, vec![b'x'; 100]).unwrap();
            set_mtime(&path, 100 + i64::from(i) * 10);
        }
        std::fs::write(cache.join(&spare), b"s").unwrap();
        set_mtime(&cache.join(&spare), 10_000);
        // Not ours to remove: names ctxbuild does not give (a user's own `.json`, however old),
        // a directory, a link (to a file outside, older than everything), a fresh temporary
        // file. A stale one goes.
        let outside = d.path().join("victim.json");
        std::fs::write(&outside, b"v").unwrap();
        set_mtime(&outside, 20_000);
        let link = format!("{:032x}.json", 0xdead);
        std::os::unix::fs::symlink(&outside, cache.join(&link)).unwrap();
        let dir = format!("{:032x}.json", 0xd1);
        std::fs::create_dir(cache.join(&dir)).unwrap();
        for mine in [
            "notes.json",
            "plan.json",
            "ABCDEF0123456789ABCDEF0123456789.json",
        ] {
            std::fs::write(cache.join(mine), b"n").unwrap();
            set_mtime(&cache.join(mine), 30_000);
        }
        let fresh = format!(".{}.1.2.tmp", p(1));
        let stale = format!(".{}.1.3.tmp", p(2));
        std::fs::write(cache.join(&fresh), b"t").unwrap();
        std::fs::write(cache.join(&stale), b"t").unwrap();
        set_mtime(&cache.join(&stale), 7200);
        std::fs::write(cache.join(".notes.json.1.2.tmp"), b"t").unwrap();
        set_mtime(&cache.join(".notes.json.1.2.tmp"), 7200);

        let keep = Keep {
            files: 4,
            bytes: u64::MAX,
        };
        let spare_name = std::ffi::OsStr::new(&spare);
        let removed = prune_cache_dir(&cache, ".json", keep, Some(spare_name)).unwrap();
        assert_eq!(removed, 6, "{:?}", names(&cache));
        let mut want = vec![
            fresh.clone(),
            ".notes.json.1.2.tmp".into(),
            dir.clone(),
            link.clone(),
            p(0),
            p(1),
            p(2),
            spare.clone(),
            "ABCDEF0123456789ABCDEF0123456789.json".into(),
            "notes.json".into(),
            "plan.json".into(),
        ];
        want.sort();
        assert_eq!(names(&cache), want);
        assert_eq!(std::fs::read(&outside).unwrap(), b"v");

        // The byte budget: 250 bytes hold the spare (1 byte) and two 100-byte plans.
        let keep = Keep {
            files: 100,
            bytes: 250,
        };
        prune_cache_dir(&cache, ".json", keep, Some(spare_name)).unwrap();
        assert!(cache.join(p(1)).exists() && !cache.join(p(2)).exists());
        // The newest is kept whatever its size; used (touched), an old file is the newest.
        touch(&cache.join(&spare));
        let keep = Keep { files: 1, bytes: 1 };
        prune_cache_dir(&cache, ".json", keep, None).unwrap();
        assert!(cache.join(&spare).exists() && !cache.join(p(0)).exists());

        // A cache directory swapped for a link is refused, and nothing behind it is removed.
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join(p(1)), b"o").unwrap();
        std::fs::write(real.join(p(2)), b"o").unwrap();
        let linked = d.path().join("linked");
        std::os::unix::fs::symlink(&real, &linked).unwrap();
        let keep = Keep {
            files: 1,
            bytes: u64::MAX,
        };
        assert!(prune_cache_dir(&linked, ".json", keep, None).is_err());
        assert_eq!(names(&real).len(), 2);
    }

    #[test]
    fn modes_private_files_and_replaced_outputs() {
        let d = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plan = d.path().join("plan.json");
        write_private_with(&plan, |f| f.write_all(b"{}")).unwrap();
        assert_eq!(mode(&plan), 0o600);
        let report = d.path().join("report.json");
        std::fs::write(&report, "old").unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o660)).unwrap();
        write_output(&report, b"new").unwrap();
        assert_eq!(mode(&report), 0o660);
        assert_eq!(std::fs::read(&report).unwrap(), b"new");
    }

    #[test]
    fn nothing_is_named_until_the_file_is_complete() {
        // A run killed while it writes (Ctrl-C on a big `context -o`) leaves no temporary file.
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("ctx.tar");
        std::fs::write(&target, "old").unwrap();
        let names = || {
            let mut v: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = names();
        write_output_with(&target, |f| {
            assert_eq!(names(), before, "a name appeared while the file was filled");
            f.write_all(b"new")
        })
        .unwrap();
        assert_eq!(names(), before);
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn failed_fill_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("f");
        std::fs::write(&target, "old").unwrap();
        let r = write_atomic_with(&target, |_| Err(io::Error::other("disk full")));
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn full_disk_is_an_error() {
        // /dev/full as the directory is impossible; write through a fill that hits ENOSPC.
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("f");
        let r = write_atomic_with(&target, |_| Err(io::Error::from_raw_os_error(libc::ENOSPC)));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert!(!target.exists());
    }

    #[test]
    fn source_date_epoch_is_validated() {
        assert_eq!(source_date_epoch(None), Ok(None));
        assert_eq!(source_date_epoch(Some("")), Ok(None));
        assert_eq!(
            source_date_epoch(Some("1700000000")),
            Ok(Some(1_700_000_000))
        );
        assert!(source_date_epoch(Some("garbage")).is_err());
        assert!(source_date_epoch(Some("-5")).is_err());
    }
}
