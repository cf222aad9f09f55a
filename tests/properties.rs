//! Property tests of the cache keys, through the binary (`plan --json`): the keys of a tree are
//! a function of what Docker hashes — paths, types, modes, sizes, contents — and of nothing else:
//! not mtime, atime, owner, nor the order the files were created in. The counter-property (a
//! one-byte content change moves the `COPY` keys) keeps the first from passing vacuously.
//! And, in memory: a saved manifest read as an overlay of the current one explains every change
//! as the whole saved manifest does.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

const DOCKERFILE: &str = "FROM scratch\nCOPY . /x/\nCOPY a* /y/\nCOPY d0 /z/\n";

#[derive(Debug, Clone)]
struct Spec {
    content: Vec<u8>,
    exec: bool,
}

/// Small trees: names from a tiny alphabet so directories and globs (`a*`) collide often.
fn tree() -> impl Strategy<Value = BTreeMap<String, Spec>> {
    let name = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "ab", "d0", "d1", "x.py"]),
        1..4,
    )
    .prop_map(|parts| parts.join("/"));
    let spec = (prop::collection::vec(any::<u8>(), 0..64), any::<bool>())
        .prop_map(|(content, exec)| Spec { content, exec });
    prop::collection::btree_map(name, spec, 1..12).prop_map(|m| {
        // A path cannot be both a file and a directory: keep the first of each conflict.
        // `COPY a*` and `COPY d0` need sources: two fixed files go in first.
        let mut out: BTreeMap<String, Spec> = BTreeMap::new();
        let fixed = Spec {
            content: b"fixed".to_vec(),
            exec: false,
        };
        let seed = [
            ("a.keep".to_string(), fixed.clone()),
            ("d0/.keep".to_string(), fixed),
        ];
        for (k, v) in seed.into_iter().chain(m) {
            let clash = out
                .keys()
                .any(|p| k.starts_with(&format!("{p}/")) || p.starts_with(&format!("{k}/")));
            if !clash {
                out.insert(k, v);
            }
        }
        out
    })
}

fn write(root: &Path, files: &[(&String, &Spec)], stamp: SystemTime, owner: u32) {
    std::fs::write(root.join("Dockerfile"), DOCKERFILE).unwrap();
    for (rel, spec) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &spec.content).unwrap();
        let mode = if spec.exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let f = File::options().write(true).open(&p).unwrap();
        f.set_times(FileTimes::new().set_accessed(stamp).set_modified(stamp))
            .unwrap();
        // Owner changes need root; elsewhere the property still covers times and order.
        let _ = std::os::unix::fs::chown(&p, Some(owner), Some(owner));
    }
}

fn keys(root: &Path, cache: &Path) -> (String, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_ctxbuild"))
        .args(["plan", "--json"])
        .arg(root)
        .env("CTXBUILD_CACHE_DIR", cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    (v["context_digest"].as_str().unwrap().to_string(), steps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn keys_ignore_times_owner_and_creation_order(t in tree(), secs in 0u64..2_000_000_000, owner in 1u32..60_000) {
        let base = tempfile::tempdir().unwrap();
        let (a, b, cache) = (base.path().join("a"), base.path().join("b"), base.path().join("cache"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let files: Vec<_> = t.iter().collect();
        write(&a, &files, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000), 0);
        let reversed: Vec<_> = files.iter().rev().cloned().collect();
        write(&b, &reversed, SystemTime::UNIX_EPOCH + Duration::from_secs(secs), owner);
        prop_assert_eq!(keys(&a, &cache), keys(&b, &cache));
    }

    #[test]
    fn a_content_change_moves_the_copy_key(t in tree(), pick in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let base = tempfile::tempdir().unwrap();
        let (a, cache) = (base.path().join("a"), base.path().join("cache"));
        std::fs::create_dir_all(&a).unwrap();
        let files: Vec<_> = t.iter().collect();
        write(&a, &files, SystemTime::UNIX_EPOCH, 0);
        let before = keys(&a, &cache);
        let (rel, spec) = files[pick.index(files.len())];
        let mut changed = spec.content.clone();
        match changed.first_mut() {
            Some(b0) if *b0 != byte => *b0 = byte,
            Some(b0) => *b0 = byte.wrapping_add(1),
            None => changed.push(byte),
        }
        std::fs::write(a.join(rel), &changed).unwrap();
        let after = keys(&a, &cache);
        prop_assert_ne!(&before.0, &after.0, "context digest must move");
        // Step 2 is `COPY . /x/`: every file is under it.
        prop_assert_ne!(&before.1[1], &after.1[1], "COPY . key must move");
    }
}

/// Go's `path.Match` for patterns of literals, `*` and `?` only, written the obvious
/// backtracking way: the reference the linear-time matcher must agree with.
fn reference_match(p: &[u8], n: &[u8]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((b'*', rest)) => {
            // `*` takes any run of non-`/` bytes, the empty one included.
            let run = n.iter().take_while(|&&c| c != b'/').count();
            (0..=run).any(|i| reference_match(rest, &n[i..]))
        }
        Some((b'?', rest)) => {
            n.first().is_some_and(|&c| c != b'/') && reference_match(rest, &n[1..])
        }
        Some((c, rest)) => n.first() == Some(c) && reference_match(rest, &n[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_path_matcher_agrees_with_a_backtracking_reference(
        pattern in prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'/', b'*', b'?']), 0..9),
        name in prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'/']), 0..11),
    ) {
        let ours = ctxbuild::pathrules::match_path(&pattern, &name).expect("valid pattern");
        prop_assert_eq!(
            ours,
            reference_match(&pattern, &name),
            "pattern {:?} name {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&name)
        );
    }
}

/// Path → (content, executable, symlink target).
type Files = BTreeMap<String, (Vec<u8>, bool, Option<String>)>;

/// A manifest of `files`, with every parent directory.
fn manifest_of(files: &Files) -> ctxbuild::key::Manifest {
    use ctxbuild::context::EntryKind;
    use ctxbuild::key::ManifestEntry;
    let mut out: BTreeMap<String, ManifestEntry> = BTreeMap::new();
    for (path, (content, exec, link)) in files {
        let mut dir = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            out.entry(dir.clone()).or_insert_with(|| ManifestEntry {
                path: dir.clone().into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: 0,
                link_target: None,
                rdev: 0,
                hash: None,
            });
        }
        let (kind, hash, link_target) = match link {
            Some(t) => (EntryKind::Symlink, None, Some(t.into())),
            None => (
                EntryKind::File,
                Some(*blake3::hash(content).as_bytes()),
                None,
            ),
        };
        out.insert(
            path.clone(),
            ManifestEntry {
                path: path.into(),
                kind,
                mode: if *exec { 0o755 } else { 0o644 },
                size: content.len() as u64,
                link_target,
                rdev: 0,
                hash,
            },
        );
    }
    // Path-byte order, as the manifest keeps it.
    let mut entries: Vec<ManifestEntry> = out.into_values().collect();
    entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
    ctxbuild::key::Manifest { entries }
}

/// A tree and a changed copy of it: contents, modes and link targets edited, files removed and
/// added, a file turned into a symlink.
fn tree_and_change() -> impl Strategy<Value = (Files, Files)> {
    let links = prop::option::weighted(
        0.15,
        prop::sample::select(vec!["a", "d0", "d1/a", "../x", "/d1", "lnk"]),
    );
    let entry = (
        prop::collection::vec(any::<u8>(), 0..8),
        any::<bool>(),
        links,
    )
        .prop_map(|(c, x, l)| (c, x, l.map(str::to_string)));
    let both = (
        tree(),
        prop::collection::vec((0u8..8, entry.clone()), 0..16),
        tree(),
    );
    both.prop_map(|(t, edits, extra)| {
        let old: Files = t
            .into_iter()
            .map(|(k, s)| (k, (s.content, s.exec, None)))
            .collect();
        let mut new = old.clone();
        let keys: Vec<String> = old.keys().cloned().collect();
        for (i, (op, e)) in edits.into_iter().enumerate() {
            let k = &keys[i % keys.len()];
            match op {
                // Most of a tree does not change between two builds.
                0..=3 => {}
                4 => {
                    new.insert(k.clone(), e);
                }
                5 => {
                    if let Some(v) = new.get_mut(k) {
                        v.1 ^= true;
                    }
                }
                6 if k != "a.keep" && k != "d0/.keep" => {
                    new.remove(k);
                }
                _ => {
                    if let Some(v) = new.get_mut(k) {
                        v.0.push(op);
                    }
                }
            }
        }
        for (k, s) in extra {
            let clash = new
                .keys()
                .any(|p| k.starts_with(&format!("{p}/")) || p.starts_with(&format!("{k}/")));
            if !clash {
                new.entry(k).or_insert((s.content, s.exec, None));
            }
        }
        (old, new)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// The rebuild reason reads the saved manifest as an overlay of the current one (only the
    /// changed records held): it must explain every change exactly as the whole saved manifest
    /// does, for both builders, and be the same records.
    #[test]
    fn the_overlay_explains_as_the_whole_saved_manifest((old, new) in tree_and_change()) {
        use ctxbuild::builder::Builder;
        use ctxbuild::key::manifest::Records;
        use ctxbuild::key::store::{PlanKey, PlanStore};
        let (old_m, new_m) = (manifest_of(&old), manifest_of(&new));
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        for builder in [Builder::Classic, Builder::BuildKit] {
            let text = "FROM scratch\nCOPY . /x/\nCOPY a* /y/\nCOPY d0 /z/\nCOPY a* d* /w/\n";
            let df = ctxbuild::dockerfile::parse(text, "Dockerfile").unwrap();
            let opts = ctxbuild::key::PlanOptions { builder, ..Default::default() };
            let (Ok(old_p), Ok(new_p)) = (ctxbuild::key::plan(&df, &old_m, &opts), ctxbuild::key::plan(&df, &new_m, &opts)) else {
                // A source the change removed: Docker fails the build, nothing to explain.
                continue;
            };
            let key = PlanKey { context: "/ctx".into(), dockerfile: "Dockerfile".into(), service: "s".into(), tag: format!("{builder:?}") };
            store.save(&key, &old_p, &old_m).unwrap();
            let (back, overlay) = store.load_against(&key, &new_m).unwrap();
            prop_assert_eq!(overlay.len(), old_m.entries.len());
            for (i, e) in old_m.entries.iter().enumerate() {
                prop_assert_eq!(overlay.at(i), e);
            }
            let whole = ctxbuild::key::explain(&old_p, &old_m, &new_p, &new_m);
            let through = ctxbuild::key::explain(&back, &overlay, &new_p, &new_m);
            prop_assert_eq!(whole, through);
        }
    }
}
