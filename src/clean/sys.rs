//! The system calls `clean` is made of, all relative to an open directory handle and none of
//! them following a symlink. The only `unsafe` code of `clean` lives here.
//!
//! The model is std's `remove_dir_all` after CVE-2022-21658: a directory is entered with
//! `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`, so a name swapped for a symlink fails with
//! `ELOOP`/`ENOTDIR` instead of leading elsewhere; entries are examined with
//! `fstatat(AT_SYMLINK_NOFOLLOW)` and removed with `unlinkat` on the same handle. Names come
//! from `readdir`, never contain `/` and are never `.`/`..`, so no call can leave the directory
//! it is made in. This module decides nothing: it reports what the kernel says.

use super::rules::Kind;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A directory's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Id {
    pub dev: u64,
    pub ino: u64,
}

/// An open directory, entered without following a symlink.
#[derive(Debug)]
pub(super) struct Dir(OwnedFd);

/// What `statx` says about an open directory.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirStat {
    pub id: Id,
    /// The mount it belongs to (Linux ≥ 5.8); tells a bind mount of the same filesystem apart,
    /// which `st_dev` cannot.
    pub mount: Option<u64>,
}

impl DirStat {
    /// Whether `other` lies in the same mount as `self` (`rm --one-file-system`, plus bind
    /// mounts when the kernel reports mount ids).
    pub fn same_mount(&self, other: &DirStat) -> bool {
        self.id.dev == other.id.dev
            && match (self.mount, other.mount) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// What `fstatat(AT_SYMLINK_NOFOLLOW)` says about one entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    pub kind: Kind,
    pub id: Id,
    /// Apparent size (a symlink: its target's length).
    pub size: u64,
}

const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// `struct open_how` of `openat2(2)`.
#[cfg(target_os = "linux")]
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
#[cfg(target_os = "linux")]
const RESOLVE_NO_XDEV: u64 = 0x01;
#[cfg(target_os = "linux")]
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
#[cfg(target_os = "linux")]
const RESOLVE_BENEATH: u64 = 0x08;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn kind_of(mode: u32) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::File,
    }
}

/// A name for the `*at` calls.
pub(super) fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Whether an error from [`Dir::open_child`] means the entry is no longer a directory.
pub(super) fn not_a_dir(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}

/// Whether an error from [`Dir::open_child_same_mount`] means the entry is a mount point.
pub(super) fn other_mount(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EXDEV)
}

/// Whether `rmdir` failed because something is still inside.
pub(super) fn not_empty(e: &io::Error) -> bool {
    // POSIX allows EEXIST as well as ENOTEMPTY.
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST))
}

pub(super) fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl Dir {
    /// Opens the directory at `path` (the canonical root), refusing a symlink as its last
    /// component. Where the kernel has `openat2`, no component may be a symlink at all
    /// (`RESOLVE_NO_SYMLINKS`): the canonical path cannot be swapped under us after
    /// canonicalisation.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let c = c_name(path.as_os_str())?;
        #[cfg(target_os = "linux")]
        {
            let how = OpenHow {
                flags: DIR_FLAGS as u64,
                mode: 0,
                resolve: RESOLVE_NO_SYMLINKS,
            };
            // SAFETY: `c` is a valid C string and `how` a valid `struct open_how` of the size
            // given; the returned descriptor, if any, is owned by nobody else.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh descriptor from the kernel.
                return Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }));
            }
            let e = io::Error::last_os_error();
            // Older kernels (ENOSYS) and seccomp filters (EPERM) fall back to `open`.
            if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                return Err(e);
            }
        }
        // SAFETY: valid C string; the descriptor is ours.
        let fd = check(unsafe { libc::open(c.as_ptr(), DIR_FLAGS) })?;
        Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the subdirectory `name`. Fails with `ELOOP` or `ENOTDIR` (see [`not_a_dir`]) when
    /// the name is no longer a directory — never follows a symlink put in its place.
    pub fn open_child(&self, name: &CStr) -> io::Result<Dir> {
        // SAFETY: valid descriptor and C string; the new descriptor is ours.
        let fd = check(unsafe { libc::openat(self.0.as_raw_fd(), name.as_ptr(), DIR_FLAGS) })?;
        Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the subdirectory `name` only when it lies on the same mount as this directory:
    /// `openat2` with `RESOLVE_NO_XDEV` fails with `EXDEV` (see [`other_mount`]) on a mount
    /// point, bind mounts of the same filesystem included, so the walk needs no `statx` per
    /// directory to stay on its filesystem. `Ok(None)` when the kernel has no `openat2` (before
    /// 5.6, or filtered by seccomp): the caller opens with [`Dir::open_child`] and compares
    /// [`Dir::stat`]s instead. Never follows a symlink, like [`Dir::open_child`].
    pub fn open_child_same_mount(&self, name: &CStr) -> io::Result<Option<Dir>> {
        #[cfg(target_os = "linux")]
        {
            use std::sync::atomic::{AtomicBool, Ordering};
            static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
            if UNSUPPORTED.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let how = OpenHow {
                flags: DIR_FLAGS as u64,
                mode: 0,
                resolve: RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
            };
            // SAFETY: valid descriptor, C string and `struct open_how` of the size given; the
            // returned descriptor, if any, is owned by nobody else.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.0.as_raw_fd(),
                    name.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh descriptor from the kernel.
                return Ok(Some(Dir(unsafe {
                    OwnedFd::from_raw_fd(fd as libc::c_int)
                })));
            }
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                return Err(e);
            }
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        Ok(None)
    }

    /// Identity and mount of this directory.
    pub fn stat(&self) -> io::Result<DirStat> {
        // SAFETY: an all-zero `statx` is a valid value of this plain C struct.
        let mut sx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, empty C string with AT_EMPTY_PATH, valid out-pointer.
        check(unsafe {
            libc::statx(
                self.0.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID,
                &mut sx,
            )
        })?;
        Ok(DirStat {
            id: Id {
                dev: libc::makedev(sx.stx_dev_major, sx.stx_dev_minor),
                ino: sx.stx_ino,
            },
            mount: (sx.stx_mask & libc::STATX_MNT_ID != 0).then_some(sx.stx_mnt_id),
        })
    }

    /// `fstatat(self, name, AT_SYMLINK_NOFOLLOW)`.
    pub fn stat_at(&self, name: &CStr) -> io::Result<Stat> {
        // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, C string and out-pointer.
        check(unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(Stat {
            kind: kind_of(st.st_mode),
            id: Id {
                dev: st.st_dev,
                ino: st.st_ino,
            },
            size: st.st_size.max(0) as u64,
        })
    }

    /// Removes the file or symlink `name` (never a symlink's target). A directory put in its
    /// place makes this fail with `EISDIR`: nothing is removed.
    pub fn unlink(&self, name: &CStr) -> io::Result<()> {
        // SAFETY: valid descriptor and C string.
        check(unsafe { libc::unlinkat(self.0.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty directory `name`. A symlink put in its place makes this fail with
    /// `ENOTDIR`: neither the link nor its target is removed.
    pub fn rmdir(&self, name: &CStr) -> io::Result<()> {
        // SAFETY: valid descriptor and C string.
        check(unsafe { libc::unlinkat(self.0.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    /// The entries of this directory (without `.` and `..`), read with `getdents64` straight
    /// from this handle: no duplicate descriptor and no `fdopendir` bookkeeping (which cost a
    /// `fcntl` ×3 and a `close` per directory). Listing moves the handle's offset, which none of
    /// the `*at` calls depend on; a directory is listed once.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            dir: self,
            buf: vec![0; DENTS_BUF],
            pos: 0,
            len: 0,
            done: false,
        }
    }
}

/// Bytes asked of `getdents64` at a time (glibc's `readdir` uses 32 KiB as well).
const DENTS_BUF: usize = 32 * 1024;

/// A directory listing; yields each name with its type when the file system reports it.
pub(super) struct Entries<'a> {
    dir: &'a Dir,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    done: bool,
}

impl Iterator for Entries<'_> {
    type Item = io::Result<(CString, Option<Kind>)>;

    fn next(&mut self) -> Option<Self::Item> {
        // `struct linux_dirent64`: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
        const NAME: usize = 19;
        loop {
            if self.pos >= self.len {
                if self.done {
                    return None;
                }
                // SAFETY: a valid descriptor and a writable buffer of the length given.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_getdents64,
                        self.dir.0.as_raw_fd(),
                        self.buf.as_mut_ptr(),
                        self.buf.len(),
                    )
                };
                if n < 0 {
                    self.done = true;
                    return Some(Err(io::Error::last_os_error()));
                }
                if n == 0 {
                    self.done = true;
                    return None;
                }
                (self.pos, self.len) = (0, n as usize);
            }
            let rec = &self.buf[self.pos..self.len];
            let reclen = rec
                .get(16..18)
                .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]) as usize);
            if reclen <= NAME || reclen > rec.len() {
                // The kernel never writes this; stop rather than read out of the record.
                self.done = true;
                return Some(Err(io::Error::from(io::ErrorKind::InvalidData)));
            }
            self.pos += reclen;
            let dtype = rec[18];
            let Ok(name) = CStr::from_bytes_until_nul(&rec[NAME..reclen]) else {
                continue;
            };
            let b = name.to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            let kind = match dtype {
                libc::DT_DIR => Some(Kind::Dir),
                libc::DT_LNK => Some(Kind::Symlink),
                libc::DT_UNKNOWN => None,
                _ => Some(Kind::File),
            };
            return Some(Ok((name.to_owned(), kind)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_is_never_entered_nor_removed_as_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(outside.join("inner")).unwrap();
        std::fs::create_dir(t.path().join("root")).unwrap();
        symlink(&outside, t.path().join("root/link")).unwrap();
        let root = Dir::open_root(&t.path().join("root")).unwrap();
        let e = root.open_child(c"link").unwrap_err();
        assert!(not_a_dir(&e), "{e}");
        let e = root.rmdir(c"link").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(root.stat_at(c"link").unwrap().kind, Kind::Symlink);
        // Unlinking removes the link, not what it points to.
        root.unlink(c"link").unwrap();
        assert!(outside.join("inner").is_dir());
        // The root itself given through a symlink is refused here (it is canonicalised first).
        symlink(t.path().join("root"), t.path().join("via")).unwrap();
        assert!(not_a_dir(
            &Dir::open_root(&t.path().join("via")).unwrap_err()
        ));
    }

    #[test]
    fn entries_name_types_and_skip_dots() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        symlink("f", t.path().join("l")).unwrap();
        let dir = Dir::open_root(t.path()).unwrap();
        let mut seen: Vec<(String, Kind)> = dir
            .entries()
            .map(|e| {
                let (n, k) = e.unwrap();
                let k = k.unwrap_or_else(|| dir.stat_at(&n).unwrap().kind);
                (n.to_string_lossy().into_owned(), k)
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen,
            [
                ("d".to_string(), Kind::Dir),
                ("f".to_string(), Kind::File),
                ("l".to_string(), Kind::Symlink)
            ]
        );
        assert_eq!(dir.stat_at(c"f").unwrap().size, 1);
        let d = dir.open_child(c"d").unwrap();
        assert!(dir.stat().unwrap().same_mount(&d.stat().unwrap()));
    }

    #[test]
    fn another_device_or_mount_is_another_filesystem() {
        let at = |dev, mount| DirStat {
            id: Id { dev, ino: 2 },
            mount,
        };
        assert!(at(1, Some(7)).same_mount(&at(1, Some(7))));
        // A bind mount of the same filesystem: same st_dev, another mount id.
        assert!(!at(1, Some(7)).same_mount(&at(1, Some(8))));
        assert!(!at(1, Some(7)).same_mount(&at(2, Some(7))));
        // Without mount ids (kernel < 5.8) the device decides, like `rm --one-file-system`.
        assert!(at(1, None).same_mount(&at(1, Some(8))));
        assert!(!at(1, None).same_mount(&at(2, None)));
    }
}
