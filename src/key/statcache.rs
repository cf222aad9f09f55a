//! The stat cache: like git's index, `(path, size, mtime, ctime, inode, device) → blake3` for one
//! context, so a re-key of an unchanged tree only walks and stats.
//!
//! One file per canonical context root under the cache directory the caller resolves (the
//! commands use `$CTXBUILD_CACHE_DIR`, else `dirs::cache_dir()/ctxbuild/stat`). A simple binary
//! format, cheap to load (one read, no allocation per field beyond the path):
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
    fn matches(&self, e: &Entry) -> bool {
        self.size == e.size
            && i128::from(self.mtime_ns) == e.stat.mtime_ns
            && i128::from(self.ctime_ns) == e.stat.ctime_ns
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

/// The stat cache of one context.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    root: Vec<u8>,
    /// Sorted by path: loaded records, then replaced/added in memory.
    records: Vec<Record>,
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
        let (records, state) = match std::fs::read(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), LoadState::Missing),
            Err(e) => (Vec::new(), LoadState::Rebuilt(format!("unreadable: {e}"))),
            Ok(bytes) => match decode(&bytes, &root_b) {
                Ok(r) => (r, LoadState::Valid),
                Err(why) => (Vec::new(), LoadState::Rebuilt(why.into())),
            },
        };
        StatCache {
            file,
            root: root_b,
            records,
            fresh: Vec::new(),
            state,
        }
    }

    /// The cached hash for `e`, if its stat data is unchanged.
    pub fn lookup(&self, e: &Entry) -> Option<[u8; 32]> {
        let p = e.path_bytes();
        self.records
            .binary_search_by(|r| r.path.as_slice().cmp(p))
            .ok()
            .map(|i| &self.records[i])
            .filter(|r| r.matches(e))
            .map(|r| r.hash)
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
    /// context) and dropping racy ones relative to `now_ns` (nanoseconds since the epoch).
    pub fn save(&mut self, entries: &[Entry], now_ns: i128) -> Result<(), SaveError> {
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.sort_by(|a, b| a.path.cmp(&b.path));
        let old = std::mem::take(&mut self.records);
        // Merge: a fresh record replaces an old one with the same path.
        let mut merged: Vec<Record> = Vec::with_capacity(old.len() + fresh.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < fresh.len() {
            let take_fresh = match (old.get(i), fresh.get(j)) {
                (Some(o), Some(f)) => match o.path.cmp(&f.path) {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        true
                    }
                    std::cmp::Ordering::Greater => true,
                },
                (Some(_), None) => false,
                _ => true,
            };
            if take_fresh {
                merged.push(fresh[j].clone());
                j += 1;
            } else {
                merged.push(old[i].clone());
                i += 1;
            }
        }
        // Keep only records that still describe a current entry exactly and are not racy.
        let mut k = 0;
        merged.retain(|r| {
            while k < entries.len() && entries[k].path_bytes() < r.path.as_slice() {
                k += 1;
            }
            let Some(e) = entries.get(k) else {
                return false;
            };
            e.path_bytes() == r.path.as_slice()
                && r.matches(e)
                && now_ns - i128::from(r.mtime_ns) > RACY_NS
        });
        // Nothing learnt and nothing dropped: the file on disk is already right.
        let unchanged =
            fresh.is_empty() && merged.len() == old.len() && self.state == LoadState::Valid;
        self.records = merged;
        if unchanged {
            return Ok(());
        }

        let bytes = encode(&self.root, &self.records);
        let err = |source| SaveError {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self
            .file
            .with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(err)?;
        std::fs::rename(&tmp, &self.file).map_err(err)?;
        Ok(())
    }

    /// Number of records usable for lookups.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The file this cache lives in.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

fn clamp(ns: i128) -> i64 {
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn encode(root: &[u8], records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + records.len() * 112);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(root.len() as u32).to_le_bytes());
    out.extend_from_slice(root);
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for r in records {
        out.extend_from_slice(&(r.path.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.path);
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.mtime_ns.to_le_bytes());
        out.extend_from_slice(&r.ctime_ns.to_le_bytes());
        out.extend_from_slice(&r.ino.to_le_bytes());
        out.extend_from_slice(&r.dev.to_le_bytes());
        out.extend_from_slice(&r.hash);
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

fn decode(bytes: &[u8], root: &[u8]) -> Result<Vec<Record>, &'static str> {
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
    let mut records = Vec::with_capacity(n.min(body.len() / 80));
    for _ in 0..n {
        let pl = c.u32()? as usize;
        let path = c.take(pl)?.to_vec();
        let rec = Record {
            path,
            size: c.u64()?,
            mtime_ns: c.u64()? as i64,
            ctime_ns: c.u64()? as i64,
            ino: c.u64()?,
            dev: c.u64()?,
            hash: c.take(32)?.try_into().map_err(|_| "truncated")?,
        };
        if records.last().is_some_and(|p: &Record| p.path >= rec.path) {
            return Err("records out of order");
        }
        records.push(rec);
    }
    if c.pos != body.len() {
        return Err("trailing bytes");
    }
    Ok(records)
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
}
