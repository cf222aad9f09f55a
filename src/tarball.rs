//! The deterministic context tar: what would be sent to the engine, byte-identical across runs
//! and machines for the same tree.
//!
//! Entries sorted by path bytes; uid/gid 0 and empty owner names; mtime fixed (the caller passes
//! `SOURCE_DATE_EPOCH` or 0); no atime/ctime; the file's permission and special bits kept;
//! symlinks stored as symlinks, directories included (an empty directory is part of the
//! context). Streams: one file at a time through a fixed buffer, never the whole context in
//! memory, into any [`Write`] (a file, stdout, a pipe feeding the engine), optionally through
//! gzip.
//!
//! Boundary: writes what it is given. Which entries Docker sees is decided by `context`; the
//! caller adds the Dockerfile and `.dockerignore` (always sent, even when excluded) through
//! [`TarOptions::always`] and injected content (a rendered Dockerfile) through
//! [`TarOptions::extra`].

use crate::context::{EntryKind, Sendable};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Content injected into the tar (replaces an entry with the same path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Relative, `/`-separated.
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// How to write the tar.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// mtime of every entry (seconds since the epoch): `SOURCE_DATE_EPOCH` or 0.
    pub mtime: u64,
    /// Relative paths read from disk even when not among the entries (the Dockerfile and
    /// `.dockerignore`, which Docker always sends). Missing ones are skipped.
    pub always: Vec<PathBuf>,
    /// Injected files.
    pub extra: Vec<ExtraFile>,
    /// Relative paths to leave out (e.g. the on-disk Dockerfile when a rendered one replaces it).
    pub exclude: Vec<PathBuf>,
    /// gzip level 0–9; `None` for a plain tar.
    pub gzip: Option<u32>,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TarStats {
    pub entries: usize,
    /// File content bytes read.
    pub content_bytes: u64,
    /// Bytes written to the output (after compression).
    pub output_bytes: u64,
}

/// Why the tar could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} changed size while it was being archived", path.display())]
    Changed { path: PathBuf },
    #[error("cannot write the tar: {0}")]
    Write(#[source] io::Error),
}

impl crate::diagnostics::Diagnose for TarError {
    fn hint(&self) -> Option<String> {
        match self {
            TarError::Changed { .. } => {
                Some("something is writing into the context; run again when it is done".into())
            }
            _ => None,
        }
    }
}

impl TarError {
    /// Whether the reader went away (`ctxbuild context -o - | head`): not an error for a CLI.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, TarError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// One thing to write. Boxed on the rare disk variant: the list holds one item per entry of
/// the context, and a `Metadata` inline would make each of a million items ~190 bytes, not 16.
enum Item<'a, S> {
    Entry(&'a S),
    Disk(Box<(PathBuf, std::fs::Metadata)>),
    Extra(&'a ExtraFile),
}

impl<S: Sendable> Item<'_, S> {
    fn path(&self) -> &Path {
        match self {
            Item::Entry(e) => e.rel_path(),
            Item::Disk(d) => &d.0,
            Item::Extra(x) => &x.path,
        }
    }
    fn rank(&self) -> u8 {
        match self {
            Item::Extra(_) => 0,
            Item::Entry(_) => 1,
            Item::Disk(..) => 2,
        }
    }
}

/// Counts bytes on their way out.
struct Counter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `size` bytes or reports that the file changed.
struct Exact<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.short = true;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Output buffer: large enough that the per-write cost vanishes next to the copy itself.
const BUF: usize = 1 << 20;

/// Writes the context tar of `entries` (relative to `root`, sorted or not) into `out`.
///
/// `entries` is anything that yields references to [`Sendable`] records: a slice of the
/// context's entries, a list of references to some of them, or the records of a keyed
/// manifest (no copy of the entries is ever needed).
pub fn write_context<'a, W: Write, S: Sendable + 'a>(
    root: &Path,
    entries: impl IntoIterator<Item = &'a S>,
    out: W,
    opts: &'a TarOptions,
) -> Result<TarStats, TarError> {
    let entries = entries.into_iter();
    let mut items: Vec<Item<S>> = Vec::with_capacity(entries.size_hint().0 + opts.extra.len() + 2);
    items.extend(opts.extra.iter().map(Item::Extra));
    items.extend(entries.map(Item::Entry));
    for p in &opts.always {
        if let Ok(md) = std::fs::symlink_metadata(root.join(p)) {
            items.push(Item::Disk(Box::new((p.clone(), md))));
        }
    }
    items.retain(|i| !opts.exclude.iter().any(|x| x == i.path()));
    items.sort_by(|a, b| {
        a.path()
            .as_os_str()
            .as_bytes()
            .cmp(b.path().as_os_str().as_bytes())
            .then(a.rank().cmp(&b.rank()))
    });
    items.dedup_by(|later, first| later.path() == first.path());

    let counter = Counter { inner: out, n: 0 };
    let mut stats = TarStats::default();
    match opts.gzip {
        None => {
            let buffered = io::BufWriter::with_capacity(BUF, counter);
            let buffered = write_items(root, &items, buffered, opts.mtime, &mut stats)?;
            let counter = buffered
                .into_inner()
                .map_err(|e| TarError::Write(e.into_error()))?;
            stats.output_bytes = counter.n;
        }
        Some(level) => {
            let gz = flate2::GzBuilder::new().mtime(0).write(
                io::BufWriter::with_capacity(BUF, counter),
                flate2::Compression::new(level.min(9)),
            );
            let gz = write_items(root, &items, gz, opts.mtime, &mut stats)?;
            let buffered = gz.finish().map_err(TarError::Write)?;
            let counter = buffered
                .into_inner()
                .map_err(|e| TarError::Write(e.into_error()))?;
            stats.output_bytes = counter.n;
        }
    }
    Ok(stats)
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    // Empty owner names: new_gnu leaves them zeroed; say so explicitly for readers of this code.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

fn write_items<W: Write, S: Sendable>(
    root: &Path,
    items: &[Item<S>],
    out: W,
    mtime: u64,
    stats: &mut TarStats,
) -> Result<W, TarError> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    for item in items {
        let rel = item.path();
        let read_err = |source| TarError::Read {
            path: rel.to_path_buf(),
            source,
        };
        let (kind, mode, size, link, rdev) = match item {
            Item::Extra(x) => {
                let mut h = header(tar::EntryType::Regular, x.mode, x.data.len() as u64, mtime);
                b.append_data(&mut h, rel, x.data.as_slice())
                    .map_err(TarError::Write)?;
                stats.entries += 1;
                stats.content_bytes += x.data.len() as u64;
                continue;
            }
            Item::Entry(e) => (
                e.kind(),
                e.mode(),
                e.size(),
                e.link_target().map(Path::to_path_buf),
                e.rdev(),
            ),
            Item::Disk(d) => {
                let md = &d.1;
                let ft = md.file_type();
                // The Dockerfile and `.dockerignore`: a pipe swapped in here is refused by the
                // open below rather than sent as a pipe.
                let kind = if ft.is_dir() {
                    EntryKind::Dir
                } else if ft.is_symlink() {
                    EntryKind::Symlink
                } else {
                    EntryKind::File
                };
                let link = if ft.is_symlink() {
                    Some(std::fs::read_link(root.join(rel)).map_err(read_err)?)
                } else {
                    None
                };
                (kind, md.permissions().mode() & 0o7777, md.len(), link, 0)
            }
        };
        match kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, mode, 0, mtime);
                let mut p = rel.as_os_str().as_bytes().to_vec();
                p.push(b'/');
                let p = PathBuf::from(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&p),
                ));
                b.append_data(&mut h, &p, io::empty())
                    .map_err(TarError::Write)?;
            }
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                // As the Docker CLI's archive package writes them: type 6/3/4, no content,
                // devmajor/devminor for devices (zero for a pipe). Never opened.
                let ty = match kind {
                    EntryKind::Fifo => tar::EntryType::Fifo,
                    EntryKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                };
                let mut h = header(ty, mode, 0, mtime);
                let (major, minor) = crate::context::entry::dev_numbers(rdev);
                h.set_device_major(major).map_err(TarError::Write)?;
                h.set_device_minor(minor).map_err(TarError::Write)?;
                b.append_data(&mut h, rel, io::empty())
                    .map_err(TarError::Write)?;
            }
            EntryKind::Symlink => {
                let mut h = header(tar::EntryType::Symlink, mode, 0, mtime);
                let target = link.unwrap_or_default();
                b.append_link(&mut h, rel, &target)
                    .map_err(TarError::Write)?;
            }
            EntryKind::File => {
                let f = crate::fsutil::open_found_file(&root.join(rel)).map_err(read_err)?;
                let mut h = header(tar::EntryType::Regular, mode, size, mtime);
                let mut r = Exact {
                    inner: f,
                    left: size,
                    short: false,
                };
                match b.append_data(&mut h, rel, &mut r) {
                    Ok(()) => {}
                    Err(_) if r.short => {
                        return Err(TarError::Changed {
                            path: rel.to_path_buf(),
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return Err(TarError::Write(e))
                    }
                    Err(e) => {
                        // Reading and writing share one io::copy; tell them apart by asking
                        // the file again.
                        return Err(match std::fs::File::open(root.join(rel)) {
                            Err(re) => read_err(re),
                            Ok(_) => TarError::Write(e),
                        });
                    }
                }
                stats.content_bytes += size;
            }
        }
        stats.entries += 1;
    }
    b.into_inner().map_err(TarError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Entry, StatInfo};

    fn e(path: &str, kind: EntryKind, mode: u32, size: u64, link: Option<&str>) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            size,
            link_target: link.map(PathBuf::from),
            rdev: 0,
            stat: StatInfo::default(),
        }
    }

    fn tree() -> (tempfile::TempDir, Vec<Entry>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/empty")).unwrap();
        std::fs::write(d.path().join("a/x.py"), "print(1)\n").unwrap();
        std::fs::write(d.path().join("a.txt"), "t").unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM x\n").unwrap();
        let v = vec![
            e("a", EntryKind::Dir, 0o755, 0, None),
            e("a/empty", EntryKind::Dir, 0o700, 0, None),
            e("a/x.py", EntryKind::File, 0o755, 9, None),
            e("a/lnk", EntryKind::Symlink, 0o777, 4, Some("x.py")),
            e("a.txt", EntryKind::File, 0o644, 1, None),
        ];
        (d, v)
    }

    fn list(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, String)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|en| {
                let mut en = en.unwrap();
                let h = en.header().clone();
                let mut s = String::new();
                en.read_to_string(&mut s).unwrap();
                (
                    en.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    s,
                )
            })
            .collect()
    }

    #[test]
    fn sorted_normalised_and_complete() {
        let (d, v) = tree();
        let mut out = Vec::new();
        let opts = TarOptions {
            mtime: 7,
            always: vec!["Dockerfile".into(), ".dockerignore".into()],
            ..Default::default()
        };
        let st = write_context(d.path(), &v, &mut out, &opts).unwrap();
        assert_eq!(st.entries, 6);
        assert_eq!(st.output_bytes, out.len() as u64);
        let l = list(&out);
        let names: Vec<&str> = l.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            vec!["Dockerfile", "a/", "a.txt", "a/empty/", "a/lnk", "a/x.py"]
        );
        assert!(l.iter().all(|x| x.3 == 7));
        assert_eq!(l[3].2, 0o700);
        assert_eq!(l[5].2, 0o755);
        assert_eq!(l[4].1, tar::EntryType::Symlink);
        assert_eq!(l[5].4, "print(1)\n");
        let mut ar = tar::Archive::new(out.as_slice());
        for en in ar.entries().unwrap() {
            let en = en.unwrap();
            let h = en.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.username().unwrap(), Some(""));
        }
    }

    #[test]
    fn extra_replaces_and_exclude_drops() {
        let (d, v) = tree();
        let mut out = Vec::new();
        let opts = TarOptions {
            always: vec!["Dockerfile".into()],
            extra: vec![ExtraFile {
                path: "Dockerfile".into(),
                data: b"FROM rendered\n".to_vec(),
                mode: 0o644,
            }],
            exclude: vec!["a.txt".into()],
            ..Default::default()
        };
        write_context(d.path(), &v, &mut out, &opts).unwrap();
        let l = list(&out);
        assert_eq!(l[0].0, "Dockerfile");
        assert_eq!(l[0].4, "FROM rendered\n");
        assert!(!l.iter().any(|x| x.0 == "a.txt"));
    }

    #[test]
    fn gzip_is_deterministic_and_decodes() {
        let (d, v) = tree();
        let opts = TarOptions {
            gzip: Some(6),
            ..Default::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_context(d.path(), &v, &mut a, &opts).unwrap();
        write_context(d.path(), &v, &mut b, &opts).unwrap();
        assert_eq!(a, b);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(a.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(list(&plain).len(), 5);
    }

    #[test]
    fn a_file_that_shrank_is_reported() {
        let (d, mut v) = tree();
        v[2].size = 100;
        let err = write_context(d.path(), &v, Vec::new(), &TarOptions::default()).unwrap_err();
        assert!(matches!(err, TarError::Changed { .. }), "{err}");
        assert!(err.to_string().contains("a/x.py"));
    }

    #[test]
    fn long_names_and_links_survive() {
        let d = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.txt", "d".repeat(120), "f".repeat(120));
        std::fs::create_dir_all(d.path().join("d".repeat(120))).unwrap();
        std::fs::write(d.path().join(&long), "x").unwrap();
        let target = "t".repeat(150);
        let v = vec![
            e(&"d".repeat(120), EntryKind::Dir, 0o755, 0, None),
            e(&long, EntryKind::File, 0o644, 1, None),
            e("l", EntryKind::Symlink, 0o777, 150, Some(&target)),
        ];
        let mut out = Vec::new();
        write_context(d.path(), &v, &mut out, &TarOptions::default()).unwrap();
        let mut ar = tar::Archive::new(out.as_slice());
        let mut seen = Vec::new();
        for en in ar.entries().unwrap() {
            let en = en.unwrap();
            seen.push((
                en.path().unwrap().to_string_lossy().into_owned(),
                en.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            ));
        }
        assert_eq!(seen[1].0, long);
        assert_eq!(seen[2].1.as_deref(), Some(target.as_str()));
    }

    #[test]
    fn a_fifo_swapped_in_for_the_dockerfile_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Dockerfile");
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // As if the walk had seen a regular file there.
        let entries = vec![e("Dockerfile", EntryKind::File, 0o644, 13, None)];
        let (tx, rx) = std::sync::mpsc::channel();
        let root = d.path().to_path_buf();
        std::thread::spawn(move || {
            let r = write_context(&root, &entries, io::sink(), &TarOptions::default());
            let _ = tx.send(r.map(|_| ()).map_err(|e| format!("{e}: {:?}", e)));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the tar writer hung on a FIFO");
        let err = r.unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn pipes_and_devices_are_headers_with_their_numbers_and_never_opened() {
        // No such paths on disk: the writer must not open or stat them.
        let d = tempfile::tempdir().unwrap();
        let mut null = e("dev/null", EntryKind::CharDevice, 0o666, 0, None);
        null.rdev = libc::makedev(1, 3);
        let mut loop0 = e("dev/loop0", EntryKind::BlockDevice, 0o660, 0, None);
        loop0.rdev = libc::makedev(7, 0);
        // A minor number above 255 takes glibc's split encoding.
        let mut big = e("dev/big", EntryKind::CharDevice, 0o600, 0, None);
        big.rdev = libc::makedev(259, 70000);
        let pipe = e("pipe", EntryKind::Fifo, 0o640, 0, None);
        let mut out = Vec::new();
        let stats = write_context(
            d.path(),
            &[null, loop0, big, pipe],
            &mut out,
            &TarOptions::default(),
        )
        .unwrap();
        assert_eq!(stats.entries, 4);
        assert_eq!(stats.content_bytes, 0);
        let mut ar = tar::Archive::new(out.as_slice());
        type Row = (String, tar::EntryType, u32, u64, Option<u32>, Option<u32>);
        let got: Vec<Row> = ar
            .entries()
            .unwrap()
            .map(|en| {
                let en = en.unwrap();
                let h = en.header();
                (
                    en.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.size().unwrap(),
                    h.device_major().unwrap(),
                    h.device_minor().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "dev/big".into(),
                    tar::EntryType::Char,
                    0o600,
                    0,
                    Some(259),
                    Some(70000)
                ),
                (
                    "dev/loop0".into(),
                    tar::EntryType::Block,
                    0o660,
                    0,
                    Some(7),
                    Some(0)
                ),
                (
                    "dev/null".into(),
                    tar::EntryType::Char,
                    0o666,
                    0,
                    Some(1),
                    Some(3)
                ),
                (
                    "pipe".into(),
                    tar::EntryType::Fifo,
                    0o640,
                    0,
                    Some(0),
                    Some(0)
                ),
            ]
        );
    }
}
