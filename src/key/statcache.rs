//! The stat cache: like git's index, `(path, size, mtime, ctime, inode, device) → blake3` for one
//! context, so a re-key of an unchanged tree only walks and stats.
//!
//! One file per canonical context root under the cache directory the caller resolves (the
//! commands use `$CTXBUILD_CACHE_DIR`, else `dirs::cache_dir()/ctxbuild/stat`). A simple binary
//! format, cheap to load (one read, one index of record offsets, fields read in place):
//!
//! ```text
//! "CTXBSTAT" | version u32 | root_len u32 | root | count u64
//! count × ( path_len u32 | path | size u64 | mtime_ns i64 | ctime_ns i64 | ino u64 | dev u64 | blake3 [32] )
//! blake3 of everything above [32]
//! ```
//!
//! A file with the wrong magic, version, root, length or checksum is ignored and rebuilt, never
//! trusted. Files whose mtime is within [`RACY_NS`] of the run's start are not recorded (git's
//! "racily clean" problem: a write in the same timestamp tick as the recorded mtime would go
//! unnoticed). ctime is compared but not required to be old: any write moves mtime and ctime
//! together, and an old recorded mtime already tells a later write apart.

use crate::context::Entry;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CTXBSTAT";
const VERSION: u32 = 1;
/// Entries whose mtime is this close to the start of the run are left out of the cache.
pub const RACY_NS: i128 = 2_000_000_000;

/// A cache file larger than this is not read (it is rebuilt): ~6 million records, far above any
/// real context, and a bound on what a corrupted or planted file can make us allocate.
const CACHE_LIMIT: u64 = 1 << 30;
/// Bytes after the path of a record: size, mtime, ctime, inode, device, hash.
const TAIL: usize = 5 * 8 + 32;

/// A record learnt during this run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    path: Vec<u8>,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    hash: [u8; 32],
}

impl Record {
    fn view(&self) -> View<'_> {
        View {
            path: &self.path,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            dev: self.dev,
            hash: self.hash,
        }
    }
}

/// A record read in place from the cache file's bytes, or borrowed from a [`Record`].
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    path: &'a [u8],
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    hash: [u8; 32],
}

impl View<'_> {
    fn matches(&self, e: &Entry) -> bool {
        self.size == e.size
            && i128::from(self.mtime_ns) == e.stat.mtime_ns
            && i128::from(self.ctime_ns) == e.stat.ctime_ns
            && self.ino == e.stat.ino
            && self.dev == e.stat.dev
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.path.len() as u32).to_le_bytes());
        out.extend_from_slice(self.path);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.hash);
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

/// The stat cache of one context.
///
/// The file is kept as read, one buffer, with the offset of each record: loading allocates
/// nothing per record, and lookups read the fields in place.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    root: Vec<u8>,
    /// The bytes of the loaded (or last saved) cache file.
    buf: Vec<u8>,
    /// Where each record starts in `buf`, in path order.
    index: Vec<usize>,
    /// Records inserted during this run (merged on save).
    fresh: Vec<Record>,
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

    /// Loads the cache for `root` from `dir`; anything unusable yields an empty cache whose
    /// [`LoadState`] says why.
    pub fn load(dir: &Path, root: &Path) -> StatCache {
        let file = Self::file_for(dir, root);
        let root_b = root.as_os_str().as_bytes().to_vec();
        let (buf, index, state) =
            match crate::fsutil::read_limited(&file, CACHE_LIMIT).map_err(std::io::Error::from) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (Vec::new(), Vec::new(), LoadState::Missing)
                }
                Err(e) => (
                    Vec::new(),
                    Vec::new(),
                    LoadState::Rebuilt(format!("unreadable: {e}")),
                ),
                Ok(bytes) => match decode(&bytes, &root_b) {
                    Ok(index) => (bytes, index, LoadState::Valid),
                    Err(why) => (Vec::new(), Vec::new(), LoadState::Rebuilt(why.into())),
                },
            };
        StatCache {
            file,
            root: root_b,
            buf,
            index,
            fresh: Vec::new(),
            state,
        }
    }

    /// The path of record `i` (validated by `decode` or written by `save`).
    fn path_at(&self, i: usize) -> &[u8] {
        let at = self.index[i];
        let len = le32(&self.buf, at) as usize;
        self.buf.get(at + 4..at + 4 + len).unwrap_or_default()
    }

    /// Record `i`, read in place.
    fn view(&self, i: usize) -> View<'_> {
        let at = self.index[i];
        let path = self.path_at(i);
        let t = at + 4 + path.len();
        let mut hash = [0u8; 32];
        if let Some(h) = self.buf.get(t + 40..t + 72) {
            hash.copy_from_slice(h);
        }
        View {
            path,
            size: le64(&self.buf, t),
            mtime_ns: le64(&self.buf, t + 8) as i64,
            ctime_ns: le64(&self.buf, t + 16) as i64,
            ino: le64(&self.buf, t + 24),
            dev: le64(&self.buf, t + 32),
            hash,
        }
    }

    /// The cached hash for `e`, if its stat data is unchanged.
    pub fn lookup(&self, e: &Entry) -> Option<[u8; 32]> {
        let p = e.path_bytes();
        let i = self
            .index
            .binary_search_by(|&at| {
                let len = le32(&self.buf, at) as usize;
                self.buf
                    .get(at + 4..at + 4 + len)
                    .unwrap_or_default()
                    .cmp(p)
            })
            .ok()?;
        let r = self.view(i);
        r.matches(e).then_some(r.hash)
    }

    /// A reader for lookups of entries in path order (a merge, not a search per entry).
    pub fn lookups(&self) -> Lookups<'_> {
        Lookups {
            cache: self,
            next: None,
        }
    }

    /// Records a freshly computed hash.
    pub fn insert(&mut self, e: &Entry, hash: [u8; 32]) {
        self.fresh.push(Record {
            path: e.path_bytes().to_vec(),
            size: e.size,
            mtime_ns: clamp(e.stat.mtime_ns),
            ctime_ns: clamp(e.stat.ctime_ns),
            ino: e.stat.ino,
            dev: e.stat.dev,
            hash,
        });
    }

    /// Writes the cache atomically, keeping only paths still present in `entries` (the current
    /// context, sorted by path) and dropping racy ones relative to `now_ns` (nanoseconds since
    /// the epoch).
    pub fn save(&mut self, entries: &[Entry], now_ns: i128) -> Result<(), SaveError> {
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.sort_by(|a, b| a.path.cmp(&b.path));
        // Keep only records that still describe a current entry exactly and are not racy.
        let mut keep = still_valid(entries, now_ns);
        // Nothing learnt and nothing dropped: the file on disk is already right.
        if fresh.is_empty()
            && self.state == LoadState::Valid
            && (0..self.index.len()).all(|i| keep(&self.view(i)))
        {
            return Ok(());
        }

        // Merge: a fresh record replaces an old one with the same path.
        let mut keep = still_valid(entries, now_ns);
        let mut out = Vec::with_capacity(self.buf.len().max(64) + fresh.len() * 160);
        let mut index = Vec::with_capacity(self.index.len() + fresh.len());
        let count_at = header(&mut out, &self.root);
        let (mut i, mut j) = (0, 0);
        while i < self.index.len() || j < fresh.len() {
            let old = (i < self.index.len()).then(|| self.view(i));
            let new = fresh.get(j).map(Record::view);
            let r = match (old, new) {
                (Some(o), Some(f)) => match o.path.cmp(f.path) {
                    std::cmp::Ordering::Less => {
                        i += 1;
                        o
                    }
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        f
                    }
                    std::cmp::Ordering::Greater => {
                        j += 1;
                        f
                    }
                },
                (Some(o), None) => {
                    i += 1;
                    o
                }
                (None, Some(f)) => {
                    j += 1;
                    f
                }
                (None, None) => break,
            };
            if keep(&r) {
                index.push(out.len());
                r.encode(&mut out);
            }
        }
        out[count_at..count_at + 8].copy_from_slice(&(index.len() as u64).to_le_bytes());
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        self.buf = out;
        self.index = index;

        let err = |source| SaveError {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        crate::fsutil::write_atomic(&self.file, &self.buf).map_err(err)
    }

    /// Number of records usable for lookups.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The file this cache lives in.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// Lookups of entries in path order, as a merge with the cache's sorted records.
#[derive(Debug, Clone)]
pub struct Lookups<'c> {
    cache: &'c StatCache,
    /// The first record not yet passed; `None` before the first lookup.
    next: Option<usize>,
}

impl Lookups<'_> {
    /// The cached hash for `e`, if its stat data is unchanged. Entries should come in path
    /// order; the first one, or one out of order, costs a binary search, never a wrong answer.
    pub fn get(&mut self, e: &Entry) -> Option<[u8; 32]> {
        let c = self.cache;
        let p = e.path_bytes();
        let n = c.index.len();
        let mut next = match self.next {
            Some(i) if i == 0 || c.path_at(i - 1) < p => i,
            _ => c.index.partition_point(|&at| {
                let len = le32(&c.buf, at) as usize;
                c.buf.get(at + 4..at + 4 + len).unwrap_or_default() < p
            }),
        };
        while next < n && c.path_at(next) < p {
            next += 1;
        }
        let mut found = None;
        if next < n && c.path_at(next) == p {
            let r = c.view(next);
            next += 1;
            found = r.matches(e).then_some(r.hash);
        }
        self.next = Some(next);
        found
    }
}

/// A test, for records in path order, that a record still describes a current entry (`entries`
/// sorted by path) exactly and is not racy.
fn still_valid(entries: &[Entry], now_ns: i128) -> impl FnMut(&View<'_>) -> bool + '_ {
    let mut k = 0;
    move |r: &View<'_>| {
        while k < entries.len() && entries[k].path_bytes() < r.path {
            k += 1;
        }
        entries.get(k).is_some_and(|e| {
            e.path_bytes() == r.path && r.matches(e) && now_ns - i128::from(r.mtime_ns) > RACY_NS
        })
    }
}

fn clamp(ns: i128) -> i64 {
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Writes the header with a zero count; returns where the count goes.
fn header(out: &mut Vec<u8>, root: &[u8]) -> usize {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(root.len() as u32).to_le_bytes());
    out.extend_from_slice(root);
    let at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    at
}

#[cfg(test)]
fn encode(root: &[u8], records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    let at = header(&mut out, root);
    out[at..at + 8].copy_from_slice(&(records.len() as u64).to_le_bytes());
    for r in records {
        r.view().encode(&mut out);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("truncated")?;
        let s = self.b.get(self.pos..end).ok_or("truncated")?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "truncated")?,
        ))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "truncated")?,
        ))
    }
}

/// Verifies a cache file and returns where each record starts.
fn decode(bytes: &[u8], root: &[u8]) -> Result<Vec<usize>, &'static str> {
    if bytes.len() < MAGIC.len() + 32 {
        return Err("truncated");
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err("checksum mismatch");
    }
    let mut c = Cursor { b: body, pos: 0 };
    if c.take(8)? != MAGIC {
        return Err("not a stat cache");
    }
    if c.u32()? != VERSION {
        return Err("other version");
    }
    let rl = c.u32()? as usize;
    if c.take(rl)? != root {
        return Err("other context root");
    }
    let n = c.u64()? as usize;
    let mut index = Vec::with_capacity(n.min(body.len() / (4 + TAIL)));
    let mut last: &[u8] = &[];
    for k in 0..n {
        let at = c.pos;
        let pl = c.u32()? as usize;
        let path = c.take(pl)?;
        c.take(TAIL)?;
        if k > 0 && last >= path {
            return Err("records out of order");
        }
        last = path;
        index.push(at);
    }
    if c.pos != body.len() {
        return Err("trailing bytes");
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{EntryKind, StatInfo};

    fn e(path: &str, size: u64, mtime: i128) -> Entry {
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

    const NOW: i128 = 1_000_000_000_000_000_000;

    #[test]
    fn round_trip_and_stat_validation() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let mut c = StatCache::load(dir.path(), root);
        assert_eq!(c.state, LoadState::Missing);
        let a = e("a", 3, 100);
        let b = e("b", 4, NOW - 1); // racy: not saved
        c.insert(&a, [1; 32]);
        c.insert(&b, [2; 32]);
        c.save(&[a.clone(), b.clone()], NOW).unwrap();

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
    fn other_root_and_corruption_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let a = e("a", 3, 100);
        let mut c = StatCache::load(dir.path(), Path::new("/ctx"));
        c.insert(&a, [1; 32]);
        c.save(std::slice::from_ref(&a), NOW).unwrap();
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
        let good = encode(b"/elsewhere", &[]);
        std::fs::write(&file, good).unwrap();
        let c = StatCache::load(dir.path(), Path::new("/ctx"));
        assert_eq!(c.state, LoadState::Rebuilt("other context root".into()));
    }

    #[test]
    fn save_drops_deleted_paths_and_keeps_old_valid_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let (a, b) = (e("a", 1, 100), e("b", 1, 100));
        let mut c = StatCache::load(dir.path(), root);
        c.insert(&a, [1; 32]);
        c.insert(&b, [2; 32]);
        c.save(&[a.clone(), b.clone()], NOW).unwrap();
        let mut c = StatCache::load(dir.path(), root);
        assert_eq!(c.len(), 2);
        c.save(std::slice::from_ref(&b), NOW).unwrap();
        let c = StatCache::load(dir.path(), root);
        assert_eq!((c.len(), c.lookup(&b)), (1, Some([2; 32])));
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
        for (i, x) in all.iter().enumerate() {
            if i != 2 {
                c.insert(x, [i as u8; 32]);
            }
        }
        c.save(&all, NOW).unwrap();
        let c = StatCache::load(dir.path(), root);
        assert_eq!(c.len(), 5);
        let want: Vec<Option<[u8; 32]>> = all.iter().map(|x| c.lookup(x)).collect();
        assert_eq!(want[2], None, "never inserted");
        assert_eq!(want[3], Some([3; 32]));
        // In order from any starting point (as each rayon worker starts), and out of order.
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
        let rec = |x: &Entry, h: u8| Record {
            path: x.path_bytes().to_vec(),
            size: x.size,
            mtime_ns: 100,
            ctime_ns: 100,
            ino: 2,
            dev: 1,
            hash: [h; 32],
        };
        let mut c = StatCache::load(dir.path(), root);
        c.insert(&b, [2; 32]);
        c.insert(&a, [1; 32]);
        c.save(&[a.clone(), b.clone()], NOW).unwrap();
        let file = c.path().to_path_buf();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encode(b"/ctx", &[rec(&a, 1), rec(&b, 2)])
        );
        let ino = std::fs::metadata(&file).unwrap().ino();

        let mut c = StatCache::load(dir.path(), root);
        c.save(&[a.clone(), b.clone()], NOW).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().ino(),
            ino,
            "not rewritten"
        );

        let mut c = StatCache::load(dir.path(), root);
        c.save(std::slice::from_ref(&b), NOW).unwrap();
        assert_ne!(std::fs::metadata(&file).unwrap().ino(), ino, "rewritten");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encode(b"/ctx", &[rec(&b, 2)])
        );
        assert_eq!(
            (c.len(), c.lookup(&b), c.lookup(&a)),
            (1, Some([2; 32]), None)
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
        c.insert(&a, [1; 32]);
        c.save(std::slice::from_ref(&a), NOW).unwrap();
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
        cache.insert(&a, [1; 32]);
        cache.save(std::slice::from_ref(&a), NOW).unwrap();
        let before = std::fs::read(cache.path()).unwrap();

        // ~200 KiB of records cannot fit in 64 KiB.
        let many: Vec<Entry> = (0..2000).map(|i| e(&format!("f{i:05}"), i, 100)).collect();
        let mut cache = StatCache::load(dir.path(), root);
        for x in &many {
            cache.insert(x, [7; 32]);
        }
        let err = cache.save(&many, NOW).unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert_eq!(std::fs::read(cache.path()).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
