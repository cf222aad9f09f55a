//! The stat cache: like git's index, `(path, size, mtime, ctime, inode, device) → blake3` for one
//! context, so a re-key of an unchanged tree only walks and stats.
//!
//! One file per canonical context root under the cache directory the caller resolves (the
//! commands use `$CTXBUILD_CACHE_DIR`, else `dirs::cache_dir()/ctxbuild/stat`). The file is never
//! held in memory: [`StatCache::load`] streams it once to verify it, lookups stream it again as
//! a merge with the (sorted) entries, and [`StatCache::save`] streams the new file to disk. What
//! stays in memory is a fixed read buffer and one path, whatever the size of the context.
//!
//! Format, version 2 (paths prefix-compressed like git's index v4):
//!
//! ```text
//! "CTXBSTAT" | version u32 | root_len u32 | root
//! records × ( keep varint | suffix_len varint | suffix | size u64 | mtime_ns i64 | ctime_ns i64
//!             | ino u64 | dev u64 | blake3 [32] )
//! count u64 | blake3 of everything above [32]
//! ```
//!
//! A record's path is the first `keep` bytes of the previous record's path followed by
//! `suffix`; paths are strictly increasing. A file with the wrong magic, version (version 1 kept
//! whole paths), root, structure, count or checksum is ignored and rebuilt, never trusted.
//! Files whose mtime is within [`RACY_NS`] of the run's start are not recorded (git's "racily
//! clean" problem: a write in the same timestamp tick as the recorded mtime would go unnoticed).
//! ctime is compared but not required to be old: any write moves mtime and ctime together, and
//! an old recorded mtime already tells a later write apart.

use crate::context::{Entry, EntryKind};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A blake3 digest: what the cache remembers per file (the manifest's hash type).
pub type Hash = [u8; 32];

const MAGIC: &[u8; 8] = b"CTXBSTAT";
const VERSION: u32 = 2;
/// Entries whose mtime is this close to the start of the run are left out of the cache.
pub const RACY_NS: i128 = 2_000_000_000;

/// A cache file larger than this is not read (it is rebuilt): ~10 million records, far above
/// any real context, and a bound on what a corrupted or planted file can make us read.
const CACHE_LIMIT: u64 = 1 << 30;
/// Longest path a record may carry; longer ones are not cached (always hashed), so the one
/// path buffer of a reader stays bounded whatever a file claims.
const MAX_PATH: usize = 16 << 10;
/// Longest context root the header may name.
const MAX_ROOT: usize = 32 << 10;
/// Bytes after the path of a record: size, mtime, ctime, inode, device, hash.
const TAIL: usize = 5 * 8 + 32;
/// Bytes after the last record: count, checksum.
const TRAILER: usize = 8 + 32;
/// The read buffer of a stream: holds the largest record (two varints, a suffix, the tail).
const READ_BUF: usize = 64 << 10;
const _: () = assert!(READ_BUF >= 20 + MAX_PATH + TAIL && READ_BUF >= MAX_ROOT);

/// A record's stat data and hash (its path is the stream's current path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    hash: Hash,
}

impl Stat {
    fn of(e: &Entry, hash: Hash) -> Stat {
        Stat {
            size: e.size,
            mtime_ns: e.stat.mtime_ns,
            ctime_ns: e.stat.ctime_ns,
            ino: e.stat.ino,
            dev: e.stat.dev,
            hash,
        }
    }

    fn matches(&self, e: &Entry) -> bool {
        self.size == e.size
            && self.mtime_ns == e.stat.mtime_ns
            && self.ctime_ns == e.stat.ctime_ns
            && self.ino == e.stat.ino
            && self.dev == e.stat.dev
    }
}

/// How the cache file was found when loading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum LoadState {
    /// No cache file yet.
    Missing,
    /// Loaded and verified.
    Valid,
    /// Present but unusable (stale version, other root, corrupt); it will be rewritten.
    Rebuilt(String),
}

/// The stat cache of one context: the verified cache file, kept open (a concurrent save renames
/// a new file over the name; this handle keeps reading the file that was verified).
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    root: Vec<u8>,
    /// The verified file, `None` when there is none (missing or rebuilt).
    data: Option<File>,
    /// Offset of the first record in `data`.
    body: u64,
    /// Number of records in `data`.
    count: u64,
    pub state: LoadState,
}

/// Why the stat cache could not be saved (never fatal for a plan; the command warns).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the stat cache {}: {source}", path.display())]
pub struct SaveError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl crate::diagnostics::Diagnose for SaveError {
    fn hint(&self) -> Option<String> {
        Some("set CTXBUILD_CACHE_DIR to a writable directory, or pass --no-stat-cache".into())
    }
}

impl StatCache {
    /// The cache file for context `root` (canonical) under `dir`.
    pub fn file_for(dir: &Path, root: &Path) -> PathBuf {
        let h = blake3::hash(root.as_os_str().as_bytes()).to_hex();
        dir.join(format!("{}.stat", &h.as_str()[..32]))
    }

    /// Loads (streams and verifies) the cache for `root` from `dir`; anything unusable yields
    /// an empty cache whose [`LoadState`] says why.
    pub fn load(dir: &Path, root: &Path) -> StatCache {
        let file = Self::file_for(dir, root);
        let mut c = StatCache {
            root: root.as_os_str().as_bytes().to_vec(),
            file,
            data: None,
            body: 0,
            count: 0,
            state: LoadState::Missing,
        };
        c.open();
        if matches!(c.state, LoadState::Valid) {
            // Used: kept among the newest when the directory is pruned (see `write`).
            crate::fsutil::touch(&c.file);
        }
        c
    }

    /// (Re)opens and verifies `self.file`.
    fn open(&mut self) {
        (self.data, self.body, self.count) = (None, 0, 0);
        self.state = match crate::fsutil::open_regular(&self.file) {
            Err(e) if e.is_not_found() => LoadState::Missing,
            Err(e) => LoadState::Rebuilt(format!("unreadable: {}", io::Error::from(e))),
            Ok(f) => match verify(&f, &self.root) {
                Ok((body, count)) => {
                    (self.data, self.body, self.count) = (Some(f), body, count);
                    LoadState::Valid
                }
                Err(why) => LoadState::Rebuilt(why.into()),
            },
        };
    }

    /// The cached hash for `e`, if its stat data is unchanged. One scan of the file per call:
    /// for a single check; many entries go through [`StatCache::lookups`].
    pub fn lookup(&self, e: &Entry) -> Option<Hash> {
        self.lookups().get(e)
    }

    /// A reader for lookups of entries in path order (a merge with the file's sorted records,
    /// not a search per entry).
    pub fn lookups(&self) -> Lookups<'_> {
        Lookups {
            cache: self,
            stream: None,
            pending: None,
            read: 0,
            last: Vec::new(),
        }
    }

    /// Writes the cache for the context `entries` (sorted by path) and `recorded`, the
    /// manifest's (path, hash) of each entry in the same order: one record per regular file
    /// with a hash whose mtime is not racy relative to `now_ns` (nanoseconds since the epoch).
    /// Streams to a temporary file renamed over the old one; an unchanged cache is left as it
    /// is. A record whose path is not its entry's (a manifest out of step) is skipped.
    pub fn save<'a, R>(
        &mut self,
        entries: &[Entry],
        recorded: R,
        now_ns: i128,
    ) -> Result<(), SaveError>
    where
        R: IntoIterator<Item = (&'a [u8], Option<Hash>)> + Clone,
    {
        let feed = |s: &mut Sink| {
            for (e, (path, hash)) in entries.iter().zip(recorded.clone()) {
                if path == e.path_bytes() {
                    s.add(e, e.path_bytes(), hash)?;
                }
            }
            Ok(())
        };
        if !self.changes(now_ns, feed) {
            return Ok(());
        }
        self.write(now_ns, feed)
    }

    /// Whether the records `feed` gives (see [`Sink::add`]) make another file than the loaded
    /// one (compared as they are produced; stops at the first difference).
    pub fn changes(&self, now_ns: i128, feed: impl FnOnce(&mut Sink) -> io::Result<()>) -> bool {
        let Some(f) = self
            .data
            .as_ref()
            .filter(|_| self.state == LoadState::Valid)
        else {
            return true;
        };
        let mut same = SameAs {
            old: Stream::new(f, 0, None),
        };
        !(emit(&self.root, now_ns, &mut same, feed).is_ok() && same.old.at_eof().unwrap_or(false))
    }

    /// Writes the records `feed` gives (see [`Sink::add`]) as the new cache file: streamed to a
    /// temporary file renamed over the old one, then loaded.
    pub fn write(
        &mut self,
        now_ns: i128,
        feed: impl FnOnce(&mut Sink) -> io::Result<()>,
    ) -> Result<(), SaveError> {
        let err = |source| SaveError {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let root = &self.root;
        crate::fsutil::write_private_with(&self.file, |f| {
            let mut w = io::BufWriter::with_capacity(READ_BUF, f);
            emit(root, now_ns, &mut w, feed)?;
            w.flush()
        })
        .map_err(err)?;
        // One file per context root (a test suite or a CI runner makes fresh ones each run):
        // the 64 most recently written, 1 GiB in all. A failure to prune fails nothing.
        if let Some(dir) = self.file.parent() {
            let keep = crate::fsutil::Keep {
                files: 64,
                bytes: 1 << 30,
            };
            let _ = crate::fsutil::prune_cache_dir(dir, ".stat", keep, self.file.file_name());
        }
        self.open();
        Ok(())
    }

    /// Number of records usable for lookups.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The file this cache lives in.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// Lookups of entries in path order, as a merge with the cache's sorted records.
#[derive(Debug)]
pub struct Lookups<'c> {
    cache: &'c StatCache,
    /// Opened at the first lookup.
    stream: Option<Stream<'c>>,
    /// The record read but not yet passed (its path is the stream's).
    pending: Option<Stat>,
    /// Records read so far.
    read: u64,
    /// The previous query, to notice one out of order.
    last: Vec<u8>,
}

impl Lookups<'_> {
    /// The cached hash for `e`, if its stat data is unchanged. Entries should come in path
    /// order; one out of order restarts the merge from the first record (slow, never wrong).
    pub fn get(&mut self, e: &Entry) -> Option<Hash> {
        let p = e.path_bytes();
        let f = self.cache.data.as_ref()?;
        if self.stream.is_none() || p <= self.last.as_slice() {
            self.stream = Some(Stream::new(f, self.cache.body, None));
            (self.pending, self.read) = (None, 0);
        }
        self.last.clear();
        self.last.extend_from_slice(p);
        let s = self.stream.as_mut()?;
        loop {
            let r = match self.pending {
                Some(r) => r,
                None if self.read < self.cache.count => {
                    self.read += 1;
                    // The file was verified: an error means it changed in place since; what
                    // is left of it is not trusted.
                    let Ok(r) = s.record() else {
                        self.read = self.cache.count;
                        return None;
                    };
                    self.pending = Some(r);
                    r
                }
                None => return None,
            };
            match s.path.as_slice().cmp(p) {
                std::cmp::Ordering::Less => self.pending = None,
                std::cmp::Ordering::Equal => {
                    self.pending = None;
                    return r.matches(e).then_some(r.hash);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
    }
}

/// Receives the records of a new cache file, in path order.
pub struct Sink<'w> {
    w: Hashing<'w>,
    now_ns: i128,
    /// The last path written.
    prev: Vec<u8>,
    count: u64,
    rec: Vec<u8>,
}

impl Sink<'_> {
    /// Records `hash` for entry `e` at `path` (`e`'s own path, passed apart so that a caller
    /// may have moved it out of `e`) when it is worth a record: a regular file with a hash, a
    /// path after the previous one and not too long, an mtime not racy. Anything else is
    /// skipped (that file is hashed again next time), never recorded wrongly.
    pub fn add(&mut self, e: &Entry, path: &[u8], hash: Option<Hash>) -> io::Result<()> {
        let Some(hash) = hash else { return Ok(()) };
        if e.kind != EntryKind::File
            || path.len() > MAX_PATH
            || (self.count > 0 && path <= self.prev.as_slice())
            || self.now_ns - i128::from(e.stat.mtime_ns) <= RACY_NS
        {
            return Ok(());
        }
        let keep = self
            .prev
            .iter()
            .zip(path)
            .take_while(|(a, b)| a == b)
            .count();
        let rec = &mut self.rec;
        rec.clear();
        varint(rec, keep as u64);
        varint(rec, (path.len() - keep) as u64);
        rec.extend_from_slice(&path[keep..]);
        let s = Stat::of(e, hash);
        rec.extend_from_slice(&s.size.to_le_bytes());
        rec.extend_from_slice(&s.mtime_ns.to_le_bytes());
        rec.extend_from_slice(&s.ctime_ns.to_le_bytes());
        rec.extend_from_slice(&s.ino.to_le_bytes());
        rec.extend_from_slice(&s.dev.to_le_bytes());
        rec.extend_from_slice(&s.hash);
        self.w.write_all(rec)?;
        self.prev.truncate(keep);
        self.prev.extend_from_slice(&path[keep..]);
        self.count += 1;
        Ok(())
    }
}

/// Writes a cache file holding the records `feed` gives to `out`.
fn emit(
    root: &[u8],
    now_ns: i128,
    out: &mut dyn Write,
    feed: impl FnOnce(&mut Sink) -> io::Result<()>,
) -> io::Result<()> {
    let mut w = Hashing {
        inner: out,
        h: blake3::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(root.len() as u32).to_le_bytes())?;
    w.write_all(root)?;
    let mut sink = Sink {
        w,
        now_ns,
        prev: Vec::new(),
        count: 0,
        rec: Vec::with_capacity(256),
    };
    feed(&mut sink)?;
    let mut w = sink.w;
    w.write_all(&sink.count.to_le_bytes())?;
    let sum = w.h.finalize();
    w.inner.write_all(sum.as_bytes())
}

/// A writer that hashes what passes through it.
struct Hashing<'w> {
    inner: &'w mut dyn Write,
    h: blake3::Hasher,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.h.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that compares what it is given with a file's bytes and fails at the first
/// difference.
struct SameAs<'f> {
    old: Stream<'f>,
}

impl Write for SameAs<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let differs = || io::Error::other("differs");
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(READ_BUF);
            let old = self.old.take(n).map_err(|_| differs())?;
            if old != &buf[done..done + n] {
                return Err(differs());
            }
            done += n;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A buffered forward reader of a cache file by offset (`pread`: several streams may read one
/// open file), optionally hashing the bytes before `hash_until`.
#[derive(Debug)]
struct Stream<'f> {
    file: &'f File,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// File offset of `buf[end]`.
    next: u64,
    hash: Option<(blake3::Hasher, u64)>,
    /// The current record's path.
    path: Vec<u8>,
}

impl<'f> Stream<'f> {
    fn new(file: &'f File, at: u64, hash_until: Option<u64>) -> Stream<'f> {
        Stream {
            file,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            next: at,
            hash: hash_until.map(|u| (blake3::Hasher::new(), u)),
            path: Vec::new(),
        }
    }

    /// File offset of the next unread byte.
    fn offset(&self) -> u64 {
        self.next - (self.end - self.pos) as u64
    }

    /// Makes at least `n` (≤ the buffer) bytes available; false at the end of the file.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        (self.end, self.pos) = (self.end - self.pos, 0);
        while self.end < n {
            let got = match self.file.read_at(&mut self.buf[self.end..], self.next) {
                Ok(0) => return Ok(false),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some((h, until)) = &mut self.hash {
                let hashed = got.min(until.saturating_sub(self.next) as usize);
                h.update(&self.buf[self.end..self.end + hashed]);
            }
            self.end += got;
            self.next += got as u64;
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if n > self.buf.len() || !self.fill(n).map_err(|_| "unreadable")? {
            return Err("truncated");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err("bad number")
    }

    /// Reads the next record: its path into `self.path`, the rest returned.
    fn record(&mut self) -> Result<Stat, &'static str> {
        let keep = self.varint()? as usize;
        let len = self.varint()? as usize;
        if keep > self.path.len() || len > MAX_PATH - keep.min(MAX_PATH) {
            return Err("bad path length");
        }
        self.path.truncate(keep);
        self.take(len)?;
        self.path
            .extend_from_slice(&self.buf[self.pos - len..self.pos]);
        let t = self.take(TAIL)?;
        let le = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().unwrap_or_default());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&t[40..72]);
        Ok(Stat {
            size: le(0),
            mtime_ns: le(8) as i64,
            ctime_ns: le(16) as i64,
            ino: le(24),
            dev: le(32),
            hash,
        })
    }

    /// True when nothing follows.
    fn at_eof(&mut self) -> io::Result<bool> {
        Ok(!self.fill(1)?)
    }
}

/// Streams a cache file once: checks its header, structure, record order, count and checksum.
/// Returns where the records start and how many there are.
fn verify(f: &File, root: &[u8]) -> Result<(u64, u64), &'static str> {
    let len = f.metadata().map_err(|_| "unreadable")?.len();
    if len > CACHE_LIMIT {
        return Err("too large");
    }
    if len < (MAGIC.len() + 8 + TRAILER) as u64 {
        return Err("truncated");
    }
    let sum_at = len - 32;
    let mut s = Stream::new(f, 0, Some(sum_at));
    let structure = (|| {
        if s.take(8)? != MAGIC {
            return Err("not a stat cache");
        }
        if s.u32()? != VERSION {
            return Err("other version");
        }
        let rl = s.u32()? as usize;
        if rl > MAX_ROOT || s.take(rl)? != root {
            return Err("other context root");
        }
        let body = s.offset();
        let mut count = 0u64;
        let mut prev = Vec::new();
        while s.offset() < sum_at - 8 {
            s.record()?;
            if count > 0 && s.path <= prev {
                return Err("records out of order");
            }
            prev.clear();
            prev.extend_from_slice(&s.path);
            count += 1;
        }
        if s.offset() != sum_at - 8 || s.u64()? != count {
            return Err("bad record count");
        }
        Ok((body, count))
    })();
    // Read to the checksum whatever the structure said: a damaged file reports as such.
    while s.offset() < sum_at {
        let n = ((sum_at - s.offset()) as usize).min(READ_BUF);
        if s.take(n).is_err() {
            break;
        }
    }
    let (h, _) = s.hash.take().expect("hashing stream");
    if s.offset() != sum_at || s.take(32).ok() != Some(h.finalize().as_bytes().as_slice()) {
        return Err("checksum mismatch");
    }
    if !s.at_eof().unwrap_or(false) {
        return Err("trailing bytes");
    }
    structure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::StatInfo;

    fn e(path: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            size,
            link_target: None,
            rdev: 0,
            stat: StatInfo {
                dev: 1,
                ino: 2,
                mtime_ns: mtime,
                ctime_ns: mtime,
            },
        }
    }

    /// The (path, hash) records `manifest::build` would give `entries`, with the given hashes.
    fn records(entries: &[Entry], hashes: &[Option<u8>]) -> Vec<(Vec<u8>, Option<Hash>)> {
        entries
            .iter()
            .zip(hashes)
            .map(|(x, h)| (x.path_bytes().to_vec(), h.map(|h| [h; 32])))
            .collect()
    }

    /// `records` as `StatCache::save` takes them.
    fn view(r: &[(Vec<u8>, Option<Hash>)]) -> impl Iterator<Item = (&[u8], Option<Hash>)> + Clone {
        r.iter().map(|(p, h)| (p.as_slice(), *h))
    }

    /// Saves `entries` with hashes `[h; 32]`.
    fn save(c: &mut StatCache, entries: &[Entry], hashes: &[u8]) {
        let hashes: Vec<Option<u8>> = hashes.iter().map(|&h| Some(h)).collect();
        c.save(entries, view(&records(entries, &hashes)), NOW)
            .unwrap();
    }

    /// The format as documented at the top of this file, written independently of `emit`.
    fn encode(version: u32, root: &[u8], records: &[(&str, Stat)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"CTXBSTAT");
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(root.len() as u32).to_le_bytes());
        out.extend_from_slice(root);
        let mut prev: &[u8] = b"";
        for (p, s) in records {
            let p = p.as_bytes();
            let keep = prev.iter().zip(p).take_while(|(a, b)| a == b).count();
            assert!(keep < 128 && p.len() - keep < 128, "one-byte varints only");
            out.push(keep as u8);
            out.push((p.len() - keep) as u8);
            out.extend_from_slice(&p[keep..]);
            for n in [s.size, s.mtime_ns as u64, s.ctime_ns as u64, s.ino, s.dev] {
                out.extend_from_slice(&n.to_le_bytes());
            }
            out.extend_from_slice(&s.hash);
            prev = p;
        }
        out.extend_from_slice(&(records.len() as u64).to_le_bytes());
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn stat(x: &Entry, h: u8) -> Stat {
        Stat::of(x, [h; 32])
    }

    const NOW: i128 = 1_000_000_000_000_000_000;
    const NOW64: i64 = NOW as i64;

    #[test]
    fn round_trip_and_stat_validation() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let mut c = StatCache::load(dir.path(), root);
        assert_eq!(c.state, LoadState::Missing);
        let a = e("a", 3, 100);
        let b = e("b", 4, NOW64 - 1); // racy: not saved
        save(&mut c, &[a.clone(), b.clone()], &[1, 2]);

        let c = StatCache::load(dir.path(), root);
        assert_eq!(c.state, LoadState::Valid);
        assert_eq!(c.lookup(&a), Some([1; 32]));
        assert_eq!(c.lookup(&b), None, "racily clean entries are not trusted");
        assert_eq!(c.lookup(&e("a", 3, 101)), None, "mtime change invalidates");
        assert_eq!(c.lookup(&e("a", 4, 100)), None, "size change invalidates");
        let mut moved = a.clone();
        moved.stat.ino = 3;
        assert_eq!(c.lookup(&moved), None, "inode change invalidates");
    }

    #[test]
    fn only_hashed_regular_files_of_the_manifest_are_saved() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let mut d = e("d", 0, 100);
        d.kind = EntryKind::Dir;
        let (a, b) = (e("a", 1, 100), e("b", 1, 100));
        let entries = [a.clone(), b.clone(), d.clone()];
        let mut c = StatCache::load(dir.path(), root);
        c.save(
            &entries,
            view(&records(&entries, &[Some(1), None, Some(3)])),
            NOW,
        )
        .unwrap();
        assert_eq!(
            (c.len(), c.lookup(&a), c.lookup(&b)),
            (1, Some([1; 32]), None)
        );
        // A manifest out of step with the entries (another path at an index) records nothing
        // for that index rather than a wrong hash.
        let other = [e("x", 1, 100), b.clone()];
        let mut c = StatCache::load(dir.path(), root);
        c.save(
            &[a.clone(), b.clone()],
            view(&records(&other, &[Some(7), Some(2)])),
            NOW,
        )
        .unwrap();
        assert_eq!(
            (c.len(), c.lookup(&a), c.lookup(&b)),
            (1, None, Some([2; 32]))
        );
    }

    #[test]
    fn other_root_and_corruption_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let a = e("a", 3, 100);
        let mut c = StatCache::load(dir.path(), Path::new("/ctx"));
        save(&mut c, std::slice::from_ref(&a), &[1]);
        let file = c.path().to_path_buf();

        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let c = StatCache::load(dir.path(), Path::new("/ctx"));
        assert_eq!(c.state, LoadState::Rebuilt("checksum mismatch".into()));
        assert_eq!(c.lookup(&a), None);

        std::fs::write(&file, b"short").unwrap();
        let c = StatCache::load(dir.path(), Path::new("/ctx"));
        assert!(matches!(c.state, LoadState::Rebuilt(_)));

        // A valid file for another root at the same location is refused.
        let good = encode(VERSION, b"/elsewhere", &[]);
        std::fs::write(&file, good).unwrap();
        let c = StatCache::load(dir.path(), Path::new("/ctx"));
        assert_eq!(c.state, LoadState::Rebuilt("other context root".into()));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_cold_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let all: Vec<Entry> = ["a", "ab/c", "ab/d", "b"]
            .iter()
            .map(|p| e(p, 1, 100))
            .collect();
        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &all, &[1, 2, 3, 4]);
        let file = c.path().to_path_buf();
        let good = std::fs::read(&file).unwrap();
        let check = |bytes: &[u8], what: &str| {
            std::fs::write(&file, bytes).unwrap();
            let c = StatCache::load(dir.path(), root);
            assert!(
                matches!(c.state, LoadState::Rebuilt(_)),
                "{what}: {:?}",
                c.state
            );
            assert_eq!((c.len(), c.lookup(&all[1])), (0, None), "{what}");
        };
        for n in 0..good.len() {
            check(&good[..n], &format!("cut at {n}"));
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x41;
            check(&bad, &format!("byte {i} flipped"));
        }
        let mut longer = good.clone();
        longer.push(0);
        check(&longer, "a byte appended");
    }

    #[test]
    fn a_version_1_file_is_treated_as_cold_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let a = e("a", 3, 100);
        // Version 1 as it was written: whole paths with a u32 length, the count in the header.
        let mut v1 = Vec::new();
        v1.extend_from_slice(b"CTXBSTAT");
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&4u32.to_le_bytes());
        v1.extend_from_slice(b"/ctx");
        v1.extend_from_slice(&1u64.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(b"a");
        for n in [3u64, 100, 100, 2, 1] {
            v1.extend_from_slice(&n.to_le_bytes());
        }
        v1.extend_from_slice(&[1; 32]);
        let sum = blake3::hash(&v1);
        v1.extend_from_slice(sum.as_bytes());
        let file = StatCache::file_for(dir.path(), root);
        std::fs::write(&file, &v1).unwrap();
        let mut c = StatCache::load(dir.path(), root);
        assert_eq!(c.state, LoadState::Rebuilt("other version".into()));
        assert_eq!(c.lookup(&a), None);
        save(&mut c, std::slice::from_ref(&a), &[1]);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encode(2, b"/ctx", &[("a", stat(&a, 1))])
        );
        assert_eq!(StatCache::load(dir.path(), root).lookup(&a), Some([1; 32]));
    }

    #[test]
    fn paths_are_stored_as_what_differs_from_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let prefix = "site-packages/package_with_a_long_name/subpackage/";
        let all: Vec<Entry> = (0..1000)
            .map(|i| e(&format!("{prefix}module_{i:04}.py"), 1, 100))
            .collect();
        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &all, &[9; 1000]);
        let len = std::fs::metadata(c.path()).unwrap().len() as usize;
        let whole: usize = all.iter().map(|x| x.path_bytes().len()).sum();
        // Each record: two one-byte numbers, the few changed bytes, the stat data and hash.
        assert!(len < 1000 * (2 + 8 + TAIL) + 100 + prefix.len(), "{len}");
        assert!(len + whole / 2 < 1000 * TAIL + whole, "{len} vs {whole}");
        let mut l = c.lookups();
        assert!(all.iter().all(|x| l.get(x) == Some([9; 32])));
    }

    #[test]
    fn a_context_per_run_does_not_grow_the_cache_forever() {
        let dir = tempfile::tempdir().unwrap();
        let a = e("a", 1, 100);
        for i in 0..70 {
            let root = PathBuf::from(format!("/tmp/run-{i}/ctx"));
            let mut c = StatCache::load(dir.path(), &root);
            save(&mut c, std::slice::from_ref(&a), &[1]);
            assert_eq!(StatCache::load(dir.path(), &root).lookup(&a), Some([1; 32]));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 64);
    }

    #[test]
    fn save_keeps_only_current_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let (a, b) = (e("a", 1, 100), e("b", 1, 100));
        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &[a.clone(), b.clone()], &[1, 2]);
        let mut c = StatCache::load(dir.path(), root);
        assert_eq!(c.len(), 2);
        save(&mut c, std::slice::from_ref(&b), &[2]);
        let c = StatCache::load(dir.path(), root);
        assert_eq!(
            (c.len(), c.lookup(&b), c.lookup(&a)),
            (1, Some([2; 32]), None)
        );
    }

    #[test]
    fn ordered_lookups_agree_with_searches_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let all: Vec<Entry> = ["a", "a.txt", "a/b", "a/c", "b", "c/d"]
            .iter()
            .enumerate()
            .map(|(i, p)| e(p, i as u64, 100))
            .collect();
        let mut c = StatCache::load(dir.path(), root);
        let hashes: Vec<Option<u8>> = (0..6u8).map(|i| (i != 2).then_some(i)).collect();
        c.save(&all, view(&records(&all, &hashes)), NOW).unwrap();
        let c = StatCache::load(dir.path(), root);
        assert_eq!(c.len(), 5);
        let want: Vec<Option<[u8; 32]>> = all.iter().map(|x| c.lookup(x)).collect();
        assert_eq!(want[2], None, "never hashed");
        assert_eq!(want[3], Some([3; 32]));
        // In order from any starting point, and out of order.
        for start in 0..all.len() {
            let mut l = c.lookups();
            for (x, w) in all[start..].iter().zip(&want[start..]) {
                assert_eq!(l.get(x), *w, "{}", x.display());
            }
        }
        let mut l = c.lookups();
        for k in [4, 1, 5, 0, 3, 3, 2] {
            assert_eq!(l.get(&all[k]), want[k], "{}", all[k].display());
        }
        let mut l = c.lookups();
        assert_eq!(l.get(&e("a/c", 3, 101)), None, "stat change invalidates");
        assert_eq!(l.get(&e("zz", 1, 100)), None);
    }

    #[test]
    fn an_unchanged_cache_is_not_rewritten_and_a_changed_one_is() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let (a, b) = (e("a", 1, 100), e("b", 1, 100));
        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &[a.clone(), b.clone()], &[1, 2]);
        let file = c.path().to_path_buf();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encode(2, b"/ctx", &[("a", stat(&a, 1)), ("b", stat(&b, 2))])
        );
        let ino = std::fs::metadata(&file).unwrap().ino();

        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &[a.clone(), b.clone()], &[1, 2]);
        assert_eq!(
            std::fs::metadata(&file).unwrap().ino(),
            ino,
            "not rewritten"
        );

        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, &[a.clone(), b.clone()], &[1, 3]);
        assert_ne!(
            std::fs::metadata(&file).unwrap().ino(),
            ino,
            "a hash changed"
        );
        let ino = std::fs::metadata(&file).unwrap().ino();

        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, std::slice::from_ref(&b), &[3]);
        assert_ne!(std::fs::metadata(&file).unwrap().ino(), ino, "a path left");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encode(2, b"/ctx", &[("b", stat(&b, 3))])
        );
        assert_eq!(
            (c.len(), c.lookup(&b), c.lookup(&a)),
            (1, Some([3; 32]), None)
        );
    }

    #[test]
    fn save_does_not_write_through_a_symlink_planted_at_the_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let root = Path::new("/ctx");
        let file = StatCache::file_for(dir.path(), root);
        // The name the first version wrote to before renaming.
        let old_tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_tmp).unwrap();
        let a = e("a", 3, 100);
        let mut c = StatCache::load(dir.path(), root);
        save(&mut c, std::slice::from_ref(&a), &[1]);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(StatCache::load(dir.path(), root).lookup(&a), Some([1; 32]));
    }

    #[test]
    fn a_fifo_in_place_of_the_cache_is_rebuilt_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let file = StatCache::file_for(dir.path(), root);
        let c = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let c = StatCache::load(dir.path(), root);
        assert!(
            matches!(&c.state, LoadState::Rebuilt(why) if why.contains("FIFO")),
            "{:?}",
            c.state
        );
    }

    /// A full disk leaves the previous cache whole. Needs a tiny tmpfs, so root; skipped (with a
    /// note) otherwise — `fsutil`'s own tests cover the error path without a mount.
    #[test]
    fn full_disk_keeps_the_previous_cache() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::ffi::CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let (src, fs, opts) = (c"tmpfs", c"tmpfs", c"size=64k");
        if unsafe {
            libc::mount(
                src.as_ptr(),
                c.as_ptr(),
                fs.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        } != 0
        {
            eprintln!("skipped: cannot mount a tmpfs (not root)");
            return;
        }
        struct Unmount<'a>(&'a std::ffi::CStr);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _guard = Unmount(&c);
        let root = Path::new("/ctx");
        let a = e("a", 3, 100);
        let mut cache = StatCache::load(dir.path(), root);
        save(&mut cache, std::slice::from_ref(&a), &[1]);
        let before = std::fs::read(cache.path()).unwrap();

        // ~160 KiB of records cannot fit in 64 KiB.
        let many: Vec<Entry> = (0..2000).map(|i| e(&format!("f{i:05}"), i, 100)).collect();
        let mut cache = StatCache::load(dir.path(), root);
        let hashes = vec![Some(7); many.len()];
        let err = cache
            .save(&many, view(&records(&many, &hashes)), NOW)
            .unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert_eq!(std::fs::read(cache.path()).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
