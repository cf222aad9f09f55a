//! Memory per entry of keying, measured with a counting allocator (allocated bytes, not time):
//! the stat cache is streamed, never held — loading it, looking every entry up in it and saving
//! it cost a fixed amount whatever the number of entries — and the per-entry structs keep their
//! size. Guards against gross regressions of the 1M-file figures in the README ("Scale").
//!
//! One test function: the allocator's counters are process-wide.

use ctxbuild::context::{self, ContextOptions, Entry};
use ctxbuild::key::{manifest, ManifestEntry, StatCache};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        NOW.fetch_sub(l.size(), Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak bytes allocated by `f` above what was allocated before it, and its result.
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = NOW.load(Relaxed);
    PEAK.store(before, Relaxed);
    let out = f();
    (PEAK.load(Relaxed) - before, out)
}

const FILES: usize = 10_000;
/// What streaming costs whatever the size: a few 64 KiB buffers.
const FIXED: usize = 512 << 10;

#[test]
fn the_stat_cache_costs_fixed_memory_and_entries_keep_their_size() {
    // A sorted list of many entries with a path each; a larger struct is a regression the
    // 1M-file tree pays 1M times (README "Scale").
    assert!(std::mem::size_of::<Entry>() <= 104);
    assert!(std::mem::size_of::<ManifestEntry>() <= 112);

    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let d = dir
            .path()
            .join(format!("site-packages/pkg{:03}/sub", i % 97));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("module_{i:05}.py")), format!("# {i}\n")).unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    for e in walkdir::WalkDir::new(dir.path()).into_iter().flatten() {
        if e.file_type().is_file() {
            let f = std::fs::File::options().write(true).open(e.path()).unwrap();
            f.set_modified(old).unwrap();
        }
    }
    let ctx = context::scan(&ContextOptions::new(dir.path())).unwrap();
    assert!(ctx.entries.len() > FILES);
    let cache_dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;

    // Cold: nothing cached; saving streams the new file.
    let mut cache = StatCache::load(cache_dir.path(), &ctx.root);
    // Once first: each hashing thread keeps a read buffer for the rest of the process.
    drop(manifest::build(&ctx.root, &ctx.entries, None).unwrap());
    let (bare, (m, _)) = peak_of(|| manifest::build(&ctx.root, &ctx.entries, None).unwrap());
    drop(m);
    let (_, (m, stats)) =
        peak_of(|| manifest::build(&ctx.root, &ctx.entries, Some(&cache)).unwrap());
    assert_eq!(stats.hashed, FILES);
    let (save, ()) = peak_of(|| cache.save(&ctx.entries, m.recorded(), now).unwrap());
    let file_len = std::fs::metadata(cache.path()).unwrap().len() as usize;
    assert!(
        file_len > FIXED,
        "the test needs a cache file above the bound: {file_len}"
    );
    assert!(
        save < FIXED,
        "saving {FILES} records allocated {save} bytes"
    );
    drop(m);

    // Warm: loading and looking every entry up allocate no more than the fixed buffers.
    let (load, cache) = peak_of(|| StatCache::load(cache_dir.path(), &ctx.root));
    assert_eq!(cache.len(), FILES);
    assert!(
        load < FIXED,
        "loading {FILES} records allocated {load} bytes"
    );
    let (warm, (m, stats)) =
        peak_of(|| manifest::build(&ctx.root, &ctx.entries, Some(&cache)).unwrap());
    assert_eq!((stats.cached, stats.hashed), (FILES, 0));
    assert!(
        warm < bare + FIXED,
        "a warm build allocated {warm} bytes, one without a cache {bare}"
    );
    // The manifest itself: its records and their paths, nothing more.
    let per_entry = bare / ctx.entries.len();
    assert!(per_entry < 112 + 96, "{per_entry} bytes per manifest entry");
    // Nothing changed: the unchanged file is compared as it would be written, not rebuilt.
    let mut cache = cache;
    let (same, ()) = peak_of(|| cache.save(&ctx.entries, m.recorded(), now).unwrap());
    assert!(
        same < FIXED,
        "checking an unchanged cache allocated {same} bytes"
    );

    // A rebuild's reason reads the saved plan's manifest against this build's: an unchanged
    // record costs a 4-byte reference, not a second manifest (which `load` builds).
    use ctxbuild::key::store::{PlanKey, PlanStore};
    let store = PlanStore::new(cache_dir.path());
    let key = PlanKey {
        context: dir.path().to_path_buf(),
        dockerfile: "Dockerfile".into(),
        service: "s".into(),
        tag: "t".into(),
    };
    let df = ctxbuild::dockerfile::parse("FROM scratch\nCOPY . /x\n", "Dockerfile").unwrap();
    let plan = ctxbuild::key::plan(&df, &m, &Default::default()).unwrap();
    store.save(&key, &plan, &m).unwrap();
    let (whole, full) = peak_of(|| store.load(&key).unwrap());
    assert_eq!(full.manifest.as_ref(), Some(&m));
    drop(full);
    let (overlaid, (_, old)) = peak_of(|| store.load_against(&key, &m).unwrap());
    assert_eq!(old.held(), 0);
    assert!(
        whole > bare / 2,
        "the whole saved manifest is a second manifest: {whole} B"
    );
    let bound = FIXED + 8 * ctx.entries.len();
    assert!(
        overlaid < bound,
        "reading the saved manifest against the current one allocated {overlaid} B (whole: {whole} B)"
    );
    eprintln!(
        "{} entries: manifest {per_entry} B/entry; stat cache file {file_len} B; \
         load {load} B, save {save} B, unchanged check {same} B, warm build +{} B; \
         saved plan read whole {whole} B, against this manifest {overlaid} B",
        ctx.entries.len(),
        warm.saturating_sub(bare)
    );
}
