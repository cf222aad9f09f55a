//! The content manifest of a context: one record per entry with what Docker's cache can see —
//! path, type, mode, size, symlink target, device number and a blake3 content hash — and a root
//! digest.
//!
//! Never mtime, atime, inode, owner or walk order: the same tree after a fresh checkout or a
//! `touch` gives the same manifest. Files are hashed in parallel (rayon); large files are
//! streamed in chunks, never read whole. A [`StatCache`] lets a re-key of an unchanged tree skip
//! hashing entirely.

use super::statcache::{SaveError, Sink, StatCache};
use super::KeyError;
use crate::context::{Entry, EntryKind, SendList, Sendable, StatInfo};
use rayon::prelude::*;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use super::statcache::Hash;

/// One entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    /// Relative, `/`-separated (lossy for non-UTF-8 names in JSON).
    #[serde(with = "path_serde")]
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_path_serde"
    )]
    pub link_target: Option<PathBuf>,
    /// `st_rdev` of a character or block device, 0 otherwise. The classic builder hashes the
    /// tar header's devmajor/devminor: `mknod c 1 3` → `c 1 5` under the same name is a miss.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// blake3 of the content, for regular files only.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_hash_serde"
    )]
    pub hash: Option<Hash>,
}

impl ManifestEntry {
    /// The record of `e` with no hash: what an entry that is sent but not keyed (a hidden
    /// Dockerfile or `.dockerignore`) looks like beside the keyed records.
    pub fn unkeyed(e: &Entry) -> ManifestEntry {
        record(e, e.path.clone(), e.link_target.clone(), None)
    }

    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }

    /// Feeds everything a key may depend on into `h`, length-prefixed so that no two different
    /// records feed the same bytes.
    pub fn feed(&self, h: &mut blake3::Hasher) {
        let mut buf = Vec::with_capacity(128);
        self.encode_into(&mut buf);
        h.update(&buf);
    }

    /// Appends the bytes [`ManifestEntry::feed`] hashes to `out`. Hashing many records is far
    /// cheaper as a few large `update`s of these bytes than as many small ones (same digest).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let path = self.path_bytes();
        out.extend_from_slice(&(path.len() as u64).to_le_bytes());
        out.extend_from_slice(path);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        let target: &[u8] = match &self.link_target {
            Some(t) => t.as_os_str().as_bytes(),
            None => b"\0none",
        };
        out.extend_from_slice(&(target.len() as u64).to_le_bytes());
        out.extend_from_slice(target);
        out.extend_from_slice(self.hash.as_ref().unwrap_or(&[0u8; 32]));
        // Only devices append their number, so every other record (and every digest of a
        // context without devices) keeps the bytes it had before devices were modelled.
        if self.kind.is_device() {
            out.extend_from_slice(&self.rdev.to_le_bytes());
        }
    }
}

/// A record is sent as the entry it was made from: the build's transfer can read the keyed
/// manifest instead of keeping the scanned entries beside it. No stat is kept (the sender asks
/// the filesystem when it needs one).
impl Sendable for ManifestEntry {
    fn path_bytes(&self) -> &[u8] {
        ManifestEntry::path_bytes(self)
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
        None
    }
}

impl SendList for Manifest {
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn get(&self, i: usize) -> Option<&dyn Sendable> {
        self.entries.get(i).map(|e| e as &dyn Sendable)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(crate) fn feed_bytes(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The manifest of a whole context, entries sorted by path bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

/// What building a manifest cost (for `-v` and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ManifestStats {
    pub files: usize,
    /// Files whose hash came from the stat cache.
    pub cached: usize,
    /// Files read and hashed.
    pub hashed: usize,
    pub hashed_bytes: u64,
}

impl Manifest {
    /// Each entry's (path, hash), in order: what [`StatCache::save`] records.
    pub fn recorded(&self) -> impl Iterator<Item = (&[u8], Option<Hash>)> + Clone {
        self.entries.iter().map(|m| (m.path_bytes(), m.hash))
    }

    /// The root digest of the whole context (hex).
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"ctxbuild-manifest-v1");
        // Records are fed in large slices so blake3 can hash whole chunks at once.
        let mut buf = Vec::with_capacity(DIGEST_BUF + 4096);
        for e in &self.entries {
            e.encode_into(&mut buf);
            if buf.len() >= DIGEST_BUF {
                h.update(&buf);
                buf.clear();
            }
        }
        h.update(&buf);
        h.finalize().to_hex().to_string()
    }
}

/// A manifest's records in path order, by index: a [`Manifest`], or a saved one read through
/// the current one ([`Overlay`]). What selecting `COPY` sources and explaining a miss read.
pub trait Records: Sync {
    fn len(&self) -> usize;
    /// The record at `i` (`i < len()`).
    fn at(&self, i: usize) -> &ManifestEntry;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Binary search by path bytes, as `slice::binary_search`.
    fn find(&self, path: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.at(mid).path_bytes().cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// The record at `path`.
    fn lookup(&self, path: &[u8]) -> Option<&ManifestEntry> {
        self.find(path).ok().map(|i| self.at(i))
    }

    /// The index of the first record whose path is not below `bound` in byte order.
    fn lower_bound(&self, bound: &[u8]) -> usize {
        match self.find(bound) {
            Ok(i) | Err(i) => i,
        }
    }
}

impl Records for Manifest {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn at(&self, i: usize) -> &ManifestEntry {
        &self.entries[i]
    }

    fn find(&self, path: &[u8]) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.path_bytes().cmp(path))
    }
}

/// A saved manifest (the previous build's) read against the current one: each record equal to
/// the current manifest's record at the same path is a 4-byte reference to it; only the records
/// that differ are held. A rebuild of an unchanged million-file context so compares two
/// manifests for the price of one plus 4 MB, and every [`Records`] reader sees exactly the
/// saved manifest.
#[derive(Debug)]
pub struct Overlay<'a> {
    current: &'a Manifest,
    own: Vec<ManifestEntry>,
    /// Per saved record: an index into `current`, or (`OWN` set) into `own`.
    order: Vec<u32>,
}

const OWN: u32 = 1 << 31;

/// Why a saved manifest cannot be read as an [`Overlay`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    #[error("saved manifest records are not in strictly increasing path order at {0}")]
    OutOfOrder(String),
    #[error("saved manifest has more than 2^31 records")]
    TooLarge,
}

impl<'a> Overlay<'a> {
    /// An empty overlay of `current`; [`Overlay::push`] adds the saved records in order.
    pub fn new(current: &'a Manifest) -> Overlay<'a> {
        Overlay {
            current,
            own: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Adds the saved manifest's next record (strictly after the last one in path order).
    pub fn push(&mut self, e: ManifestEntry) -> Result<(), OverlayError> {
        if self
            .order
            .last()
            .is_some_and(|_| self.at(self.order.len() - 1).path_bytes() >= e.path_bytes())
        {
            return Err(OverlayError::OutOfOrder(
                e.path.to_string_lossy().into_owned(),
            ));
        }
        if self.order.len() >= OWN as usize || self.current.entries.len() >= OWN as usize {
            return Err(OverlayError::TooLarge);
        }
        let slot = match self.current.find(e.path_bytes()) {
            Ok(i) if self.current.entries[i] == e => i as u32,
            _ => {
                self.own.push(e);
                (self.own.len() - 1) as u32 | OWN
            }
        };
        self.order.push(slot);
        Ok(())
    }

    /// How many saved records differ from (or are missing in) the current manifest.
    pub fn held(&self) -> usize {
        self.own.len()
    }
}

impl Records for Overlay<'_> {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn at(&self, i: usize) -> &ManifestEntry {
        let slot = self.order[i];
        if slot & OWN != 0 {
            &self.own[(slot & !OWN) as usize]
        } else {
            &self.current.entries[slot as usize]
        }
    }
}

/// Bytes of records buffered per `update` when digesting a manifest.
const DIGEST_BUF: usize = 64 << 10;

/// Files at least this big are hashed with blake3's multi-threaded `update_rayon`, so one huge
/// file at the end of a run does not leave the other cores idle.
const LARGE: u64 = 8 << 20;
/// Read chunk for streaming (bounded memory per thread).
const CHUNK: usize = 1 << 20;

/// Builds the manifest of `ctx_entries` (the context's visible entries, relative to `root`),
/// reusing the hashes `cache` vouches for; [`StatCache::save`] then records the new ones.
///
/// Unreadable files fail the manifest: their content is part of what Docker would receive, so
/// no honest key exists without them.
pub fn build(
    root: &Path,
    ctx_entries: &[Entry],
    cache: Option<&StatCache>,
) -> Result<(Manifest, ManifestStats), KeyError> {
    let mut entries: Vec<ManifestEntry> = ctx_entries
        .par_iter()
        .with_min_len(1024)
        .map(|e| record(e, e.path.clone(), e.link_target.clone(), None))
        .collect();
    let stats = lookup_pass(ctx_entries, entries.iter_mut().map(|m| &mut m.hash), cache);
    hash_pass(
        root,
        ctx_entries,
        entries.par_iter_mut().map(|m| &mut m.hash),
    )?;
    Ok((Manifest { entries }, stats))
}

/// What [`build_owned`] gives: the manifest, the stats and, with a cache, how saving it went.
pub type OwnedKeying = (Manifest, ManifestStats, Option<Result<(), SaveError>>);

/// [`build`] for a context not needed afterwards (`plan`), in less memory: the entries are
/// consumed, their paths moved into the manifest rather than copied, and `cache` is saved on
/// the way (see [`StatCache::save`]; `now_ns` is the run's start). At no time are a path's
/// entry and its manifest record both held: the entries are released from the end of their
/// list as the records are made, so the peak is the entries plus a hash each.
pub fn build_owned(
    root: &Path,
    mut ctx_entries: Vec<Entry>,
    cache: Option<&mut StatCache>,
    now_ns: i128,
) -> Result<OwnedKeying, KeyError> {
    build_taking(root, &mut ctx_entries, cache, now_ns)
}

/// [`build_owned`] of the entries in `ctx_entries`, which it empties once every file is
/// hashed: on an error they are left as they were, for a caller that goes on without keys.
pub fn build_taking(
    root: &Path,
    ctx_entries: &mut Vec<Entry>,
    cache: Option<&mut StatCache>,
    now_ns: i128,
) -> Result<OwnedKeying, KeyError> {
    let mut hashes: Vec<Option<Hash>> = vec![None; ctx_entries.len()];
    let stats = lookup_pass(ctx_entries, hashes.iter_mut(), cache.as_deref());
    hash_pass(root, ctx_entries, hashes.par_iter_mut())?;
    let mut ctx_entries = std::mem::take(ctx_entries);

    // Made from the last entry backwards, so that each step can release an entry's space.
    ctx_entries.reverse();
    hashes.reverse();
    let mut out = Vec::with_capacity(ctx_entries.len());
    let saved = cache.map(|c| {
        let unchanged = !c.changes(now_ns, |s| {
            for (e, h) in ctx_entries.iter().zip(&hashes).rev() {
                s.add(e, e.path_bytes(), *h)?;
            }
            Ok(())
        });
        if unchanged {
            return Ok(());
        }
        c.write(now_ns, |s| {
            move_records(&mut ctx_entries, &mut hashes, &mut out, Some(s))
        })
    });
    // All of them, or what a failed save left.
    let _ = move_records(&mut ctx_entries, &mut hashes, &mut out, None);
    Ok((Manifest { entries: out }, stats, saved))
}

/// Moves the entries (and hashes), taken from the end of their (reversed) lists, into manifest
/// records, handing each to `sink` first; gives the lists' space back as they shrink. A sink
/// error stops the moving (the caller finishes without a sink).
fn move_records(
    entries: &mut Vec<Entry>,
    hashes: &mut Vec<Option<Hash>>,
    out: &mut Vec<ManifestEntry>,
    mut sink: Option<&mut Sink>,
) -> std::io::Result<()> {
    /// Entries moved between two releases of the lists' unused space.
    const STEP: usize = 1 << 16;
    while let (Some(mut e), Some(h)) = (entries.pop(), hashes.pop()) {
        if let Some(s) = sink.as_deref_mut() {
            if let Err(err) = s.add(&e, e.path_bytes(), h) {
                entries.push(e);
                hashes.push(h);
                return Err(err);
            }
        }
        let path = std::mem::take(&mut e.path);
        let link = e.link_target.take();
        out.push(record(&e, path, link, h));
        if entries.len() % STEP == 0 {
            entries.shrink_to_fit();
            hashes.shrink_to_fit();
        }
    }
    Ok(())
}

/// The manifest record of `e`, with its path and link target given.
fn record(
    e: &Entry,
    path: PathBuf,
    link_target: Option<PathBuf>,
    hash: Option<Hash>,
) -> ManifestEntry {
    ManifestEntry {
        path,
        kind: e.kind,
        mode: e.mode,
        size: if e.kind == EntryKind::Dir { 0 } else { e.size },
        link_target,
        rdev: e.rdev,
        hash,
    }
}

/// Fills the hash slot of each file `cache` still vouches for (one merge of the sorted entries
/// with the cache file, streamed, on this thread) and counts what is left to hash.
fn lookup_pass<'a>(
    ctx_entries: &[Entry],
    slots: impl Iterator<Item = &'a mut Option<Hash>>,
    cache: Option<&StatCache>,
) -> ManifestStats {
    let mut stats = ManifestStats::default();
    let mut lookups = cache.filter(|c| !c.is_empty()).map(StatCache::lookups);
    for (e, slot) in ctx_entries.iter().zip(slots) {
        if e.kind != EntryKind::File {
            continue;
        }
        *slot = lookups.as_mut().and_then(|l| l.get(e));
        stats.files += 1;
        if slot.is_some() {
            stats.cached += 1;
        } else {
            stats.hashed += 1;
            stats.hashed_bytes += e.size;
        }
    }
    stats
}

/// Hashes, in parallel, every file whose slot is empty; the hashes land in place. The first
/// failing entry in path order is the one reported, as a serial run would report it.
fn hash_pass<'a>(
    root: &Path,
    ctx_entries: &[Entry],
    slots: impl IndexedParallelIterator<Item = &'a mut Option<Hash>>,
) -> Result<(), KeyError> {
    let failed = std::sync::Mutex::new(None::<(usize, KeyError)>);
    slots
        .zip(ctx_entries.par_iter())
        .enumerate()
        .with_min_len(16)
        .filter(|(_, (slot, e))| e.kind == EntryKind::File && slot.is_none())
        .for_each(|(i, (slot, e))| match hash_file(root, &e.path, e.size) {
            Ok(h) => *slot = Some(h),
            Err(err) => {
                let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                if f.as_ref().is_none_or(|(j, _)| i < *j) {
                    *f = Some((i, err));
                }
            }
        });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, err)) => Err(err),
        None => Ok(()),
    }
}

/// Hashes one file, streaming it in chunks.
pub fn hash_file(root: &Path, rel: &Path, size_hint: u64) -> Result<Hash, KeyError> {
    let full = root.join(rel);
    let err = |source| KeyError::Read {
        path: rel.to_path_buf(),
        source,
    };
    let mut f = crate::fsutil::open_found_file(&full).map_err(err)?;
    let mut h = blake3::Hasher::new();
    // One reusable chunk buffer per worker thread: bounded memory, no allocation per file.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| -> Result<(), KeyError> {
        let mut buf = b.borrow_mut();
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        // Reading stops at the size the walk saw: the tar sends exactly that many bytes, and a
        // small file then costs one `read`, not a second one to meet the end of the file.
        let mut left = size_hint;
        loop {
            if left == 0 && size_hint > 0 {
                return Ok(());
            }
            let want = if size_hint == 0 {
                buf.len()
            } else {
                buf.len().min(left.min(usize::MAX as u64) as usize)
            };
            let n = match f.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(e)),
            };
            if n == 0 {
                return Ok(());
            }
            left = left.saturating_sub(n as u64);
            if size_hint >= LARGE {
                h.update_rayon(&buf[..n]);
            } else {
                h.update(&buf[..n]);
            }
        }
    })?;
    Ok(*h.finalize().as_bytes())
}

mod path_serde {
    use std::path::{Path, PathBuf};
    pub fn serialize<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(PathBuf::from(s))
    }
}

mod opt_path_serde {
    use std::path::PathBuf;
    pub fn serialize<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&p.to_string_lossy()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        let s: Option<String> = serde::Deserialize::deserialize(d)?;
        Ok(s.map(PathBuf::from))
    }
}

mod opt_hash_serde {
    pub fn serialize<S: serde::Serializer>(h: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_some(&blake3::Hash::from(*h).to_hex().as_str()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let s: Option<String> = serde::Deserialize::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => blake3::Hash::from_hex(s.as_bytes())
                .map(|h| Some(*h.as_bytes()))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::StatInfo;

    pub(crate) fn entry(path: &str, kind: EntryKind, mode: u32, size: u64) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode,
            size,
            link_target: None,
            rdev: 0,
            stat: StatInfo::default(),
        }
    }

    #[test]
    fn digest_ignores_stat_but_not_content_mode_or_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "hello").unwrap();
        let mut e = entry("a", EntryKind::File, 0o644, 5);
        let root = dir.path();
        let (m1, s1) = build(root, std::slice::from_ref(&e), None).unwrap();
        assert_eq!(s1.hashed, 1);
        assert_eq!(m1.entries[0].hash, Some(*blake3::hash(b"hello").as_bytes()));
        e.stat.mtime_ns = 42;
        e.stat.ino = 7;
        assert_eq!(
            build(root, std::slice::from_ref(&e), None)
                .unwrap()
                .0
                .digest(),
            m1.digest()
        );
        e.mode = 0o755;
        assert_ne!(
            build(root, std::slice::from_ref(&e), None)
                .unwrap()
                .0
                .digest(),
            m1.digest()
        );
        std::fs::write(dir.path().join("a"), "hellp").unwrap();
        e.mode = 0o644;
        assert_ne!(
            build(root, std::slice::from_ref(&e), None)
                .unwrap()
                .0
                .digest(),
            m1.digest()
        );
    }

    #[test]
    fn large_files_stream_to_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(LARGE as usize + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(dir.path().join("big"), &data).unwrap();
        let h = hash_file(dir.path(), Path::new("big"), data.len() as u64).unwrap();
        assert_eq!(h, *blake3::hash(&data).as_bytes());
        let mid = &data[..CHUNK * 2 + 3];
        std::fs::write(dir.path().join("mid"), mid).unwrap();
        let h = hash_file(dir.path(), Path::new("mid"), mid.len() as u64).unwrap();
        assert_eq!(h, *blake3::hash(mid).as_bytes());
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![entry("gone.txt", EntryKind::File, 0o644, 1)];
        let e = build(dir.path(), &entries, None).unwrap_err();
        assert!(e.to_string().contains("gone.txt"), "{e}");
    }

    #[test]
    fn of_several_unreadable_files_the_first_in_path_order_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries: Vec<Entry> = (0..200)
            .map(|i| entry(&format!("f{i:03}"), EntryKind::File, 0o644, 1))
            .collect();
        for e in &entries[..150] {
            std::fs::write(dir.path().join(&e.path), "x").unwrap();
        }
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        for _ in 0..5 {
            let e = build(dir.path(), &entries, None).unwrap_err();
            assert!(e.to_string().contains("f150"), "{e}");
        }
    }

    #[test]
    fn a_file_is_hashed_up_to_the_size_the_walk_saw() {
        // What the tar sends: exactly the walked size (a file that grew since is cut there).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("grew"), "hello, world").unwrap();
        let h = hash_file(dir.path(), Path::new("grew"), 5).unwrap();
        assert_eq!(h, *blake3::hash(b"hello").as_bytes());
        let big: Vec<u8> = (0..CHUNK * 2 + 77).map(|i| (i % 13) as u8).collect();
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let h = hash_file(dir.path(), Path::new("big"), CHUNK as u64 + 5).unwrap();
        assert_eq!(h, *blake3::hash(&big[..CHUNK + 5]).as_bytes());
        // Size 0 (an empty file when walked) reads to the end.
        let h = hash_file(dir.path(), Path::new("grew"), 0).unwrap();
        assert_eq!(h, *blake3::hash(b"hello, world").as_bytes());
    }

    #[test]
    fn build_owned_gives_what_build_and_save_give() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for i in 0..300 {
            let p = format!("d{}/f{i:03}", i % 7);
            std::fs::create_dir_all(dir.path().join(format!("d{}", i % 7))).unwrap();
            std::fs::write(dir.path().join(&p), format!("{i}")).unwrap();
            let mut e = entry(&p, EntryKind::File, 0o644, format!("{i}").len() as u64);
            e.stat.mtime_ns = 100 + i;
            entries.push(e);
        }
        for d in 0..7 {
            entries.push(entry(&format!("d{d}"), EntryKind::Dir, 0o755, 0));
        }
        let mut link = entry("l", EntryKind::Symlink, 0o777, 2);
        link.link_target = Some("d0".into());
        entries.push(link);
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        let root = dir.path();
        let now = 1_000_000_000_000_000_000;
        let (want, _) = build(root, &entries, None).unwrap();
        let mut side = StatCache::load(&cache_dir.path().join("a"), root);
        side.save(&entries, want.recorded(), now).unwrap();
        let want_file = std::fs::read(side.path()).unwrap();

        let mut cache = StatCache::load(&cache_dir.path().join("b"), root);
        let (cold, stats, saved) =
            build_owned(root, entries.clone(), Some(&mut cache), now).unwrap();
        assert!(matches!(saved, Some(Ok(()))));
        assert_eq!(cold.digest(), want.digest());
        assert!(cold == want);
        assert_eq!((stats.files, stats.hashed, stats.cached), (300, 300, 0));
        assert_eq!(std::fs::read(cache.path()).unwrap(), want_file);

        // Warm, through the file just written; it is left as it is.
        let ino = |c: &StatCache| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(c.path()).unwrap())
        };
        let before = ino(&cache);
        let mut cache = StatCache::load(&cache_dir.path().join("b"), root);
        let (warm, stats, saved) =
            build_owned(root, entries.clone(), Some(&mut cache), now).unwrap();
        assert!(matches!(saved, Some(Ok(()))));
        assert!(warm == want);
        assert_eq!((stats.hashed, stats.cached), (0, 300));
        assert_eq!(ino(&cache), before, "an unchanged cache is not rewritten");

        // One file changed: its new hash is saved.
        std::fs::write(root.join("d1/f001"), "x").unwrap();
        let mut changed = entries.clone();
        let k = changed
            .iter()
            .position(|e| e.path_bytes() == b"d1/f001")
            .unwrap();
        changed[k].stat.mtime_ns = 7;
        let (m, stats, _) = build_owned(root, changed.clone(), Some(&mut cache), now).unwrap();
        assert_eq!((stats.hashed, stats.cached), (1, 299));
        assert_eq!(
            m.lookup(b"d1/f001").unwrap().hash,
            Some(*blake3::hash(b"x").as_bytes())
        );
        let cache = StatCache::load(&cache_dir.path().join("b"), root);
        assert_eq!(
            cache.lookup(&changed[k]),
            Some(*blake3::hash(b"x").as_bytes())
        );
        assert_eq!(cache.len(), 300);
    }

    #[test]
    fn json_round_trip() {
        let m = Manifest {
            entries: vec![ManifestEntry {
                path: "a/b".into(),
                kind: EntryKind::Symlink,
                mode: 0o777,
                size: 3,
                link_target: Some("../c".into()),
                rdev: 0,
                hash: Some([7; 32]),
            }],
        };
        let s = serde_json::to_string(&m).unwrap();
        let back: Manifest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn devices_are_keyed_by_number_pipes_by_type_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let digest = |e: &Entry| {
            build(dir.path(), std::slice::from_ref(e), None)
                .unwrap()
                .0
                .digest()
        };
        // Never opened: nothing exists at these paths.
        let mut dev = entry("null", EntryKind::CharDevice, 0o666, 0);
        dev.rdev = libc::makedev(1, 3);
        let d13 = digest(&dev);
        dev.stat.mtime_ns = 99;
        assert_eq!(digest(&dev), d13, "mtime is not part of the key");
        dev.rdev = libc::makedev(1, 5);
        assert_ne!(digest(&dev), d13, "another device number is a miss");
        dev.kind = EntryKind::BlockDevice;
        dev.rdev = libc::makedev(1, 3);
        assert_ne!(digest(&dev), d13, "block vs char is a miss");
        let pipe = entry("null", EntryKind::Fifo, 0o666, 0);
        let file = entry("null", EntryKind::File, 0o666, 0);
        std::fs::write(dir.path().join("null"), "").unwrap();
        assert_ne!(digest(&pipe), digest(&file));
        let mut pipe2 = pipe.clone();
        pipe2.mode = 0o600;
        assert_ne!(digest(&pipe), digest(&pipe2));
        // Records of other kinds keep the bytes they had before devices were modelled.
        let mut buf = Vec::new();
        let (m, _) = build(dir.path(), std::slice::from_ref(&file), None).unwrap();
        m.entries[0].encode_into(&mut buf);
        assert_eq!(buf.len(), 8 + 4 + 1 + 4 + 8 + 8 + 5 + 32);
    }
}
