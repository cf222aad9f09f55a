//! Hot paths of keying: blake3 file hashing (small and large files), the whole-manifest build
//! over a generated tree (cold, and warm through the stat cache), stat-cache lookups,
//! `.dockerignore` matching, Go's `path.Match` (`pathrules`), and the deterministic tar writer. Wall-clock comparisons with other tools live in
//! `scripts/bench-keys.sh`; these track regressions in our own code.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ctxbuild::context::{self, ContextOptions, Matcher};
use ctxbuild::key::{manifest, StatCache};
use std::hint::black_box;
use std::path::Path;

fn tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("pkg{}/sub{}", i % 40, i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("# module {i}\n").repeat(40 + i % 200);
        std::fs::write(dir.join(format!("m{i}.py")), body).unwrap();
        if i % 5 == 0 {
            let cache = dir.join("__pycache__");
            std::fs::create_dir_all(&cache).unwrap();
            std::fs::write(cache.join(format!("m{i}.cpython-311.pyc")), "x".repeat(900)).unwrap();
        }
    }
    // The mtimes must be old enough for the stat cache to keep them.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_file() {
            let f = std::fs::File::options().write(true).open(e.path()).unwrap();
            f.set_modified(old).unwrap();
        }
    }
}

fn hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("hash_file");
    for size in [4usize << 10, 1 << 20, 32 << 20] {
        let p = dir.path().join(format!("f{size}"));
        std::fs::write(&p, vec![7u8; size]).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| {
                manifest::hash_file(dir.path(), Path::new(&format!("f{size}")), size as u64)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn manifests(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 3000);
    let ctx = context::scan(&ContextOptions::new(dir.path())).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("manifest");
    g.sample_size(20);
    g.bench_function("cold_3000_files", |b| {
        b.iter(|| manifest::build(&ctx.root, &ctx.entries, None).unwrap())
    });
    let mut cache = StatCache::load(cache_dir.path(), &ctx.root);
    let (m, _) = manifest::build(&ctx.root, &ctx.entries, Some(&cache)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    cache.save(&ctx.entries, m.recorded(), now).unwrap();
    g.bench_function("warm_3000_files_stat_cache", |b| {
        b.iter(|| {
            let cache = StatCache::load(cache_dir.path(), &ctx.root);
            let (m, st) = manifest::build(&ctx.root, &ctx.entries, Some(&cache)).unwrap();
            assert_eq!(st.hashed, 0);
            black_box(m.digest())
        })
    });
    g.finish();
}

fn statcache_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 3000);
    let ctx = context::scan(&ContextOptions::new(dir.path())).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let mut cache = StatCache::load(cache_dir.path(), &ctx.root);
    let (m, _) = manifest::build(&ctx.root, &ctx.entries, Some(&cache)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    cache.save(&ctx.entries, m.recorded(), now).unwrap();
    let cache = StatCache::load(cache_dir.path(), &ctx.root);
    let files: Vec<_> = ctx.files().collect();
    let mut g = c.benchmark_group("statcache");
    g.throughput(Throughput::Elements(files.len() as u64));
    // In path order, as manifest::build asks: a merge walk.
    g.bench_function("lookups_in_order", |b| {
        b.iter(|| {
            let mut l = cache.lookups();
            files.iter().filter(|e| l.get(e).is_some()).count()
        })
    });
    g.bench_function("load_3000_records", |b| {
        b.iter(|| black_box(StatCache::load(cache_dir.path(), &ctx.root).len()))
    });
    g.finish();
}

fn path_match(c: &mut Criterion) {
    use ctxbuild::pathrules::{match_path, Glob};
    let names: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("mod_{}_{i:04}.cpython-311.pyc", i % 7).into_bytes())
        .collect();
    let mut g = c.benchmark_group("pathrules");
    g.throughput(Throughput::Elements(names.len() as u64));
    for pattern in ["*.pyc", "mod_[0-3]_*.cpython-3??.pyc", "*_*_*.*.*"] {
        let glob = Glob::new(pattern.as_bytes()).unwrap();
        g.bench_with_input(BenchmarkId::new("glob", pattern), &glob, |b, glob| {
            b.iter(|| names.iter().filter(|n| glob.matches(n)).count())
        });
        g.bench_with_input(BenchmarkId::new("match_path", pattern), pattern, |b, p| {
            b.iter(|| {
                names
                    .iter()
                    .filter(|n| match_path(p.as_bytes(), n).unwrap())
                    .count()
            })
        });
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let m = Matcher::parse(
        b"**/__pycache__\n**/*.pyc\n*.log\n.git\nnode_modules/\n!node_modules/keep\ndocs/**/*.md\n[a-c]?/tmp\n",
        ".dockerignore",
    )
    .unwrap();
    let paths: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("pkg{}/sub{}/mod{i}.py", i % 40, i % 7).into_bytes())
        .chain(
            (0..500)
                .map(|i| format!("pkg{}/__pycache__/m{i}.cpython-311.pyc", i % 40).into_bytes()),
        )
        .collect();
    let mut g = c.benchmark_group("dockerignore");
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("is_excluded_2500_paths", |b| {
        b.iter(|| paths.iter().filter(|p| m.is_excluded(p)).count())
    });
    g.finish();
}

fn tarball(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 1000);
    let ctx = context::scan(&ContextOptions::new(dir.path())).unwrap();
    let mut g = c.benchmark_group("tarball");
    g.sample_size(20);
    g.bench_function("write_1000_files_to_sink", |b| {
        b.iter(|| {
            ctxbuild::tarball::write_context(
                &ctx.root,
                &ctx.entries,
                std::io::sink(),
                &Default::default(),
            )
            .unwrap()
        })
    });
    // Headers alone (directories: no file is opened), the per-entry cost of the tar format.
    let dirs: Vec<_> = ctx
        .entries
        .iter()
        .filter(|e| e.kind == ctxbuild::context::EntryKind::Dir)
        .collect();
    g.throughput(Throughput::Elements(dirs.len() as u64));
    g.bench_function("headers_only_directories", |b| {
        b.iter(|| {
            ctxbuild::tarball::write_context(
                &ctx.root,
                dirs.iter().copied(),
                std::io::sink(),
                &Default::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    hashing,
    manifests,
    statcache_lookup,
    path_match,
    matching,
    tarball
);
criterion_main!(benches);
