//! Property tests of the cache keys, through the binary (`plan --json`): the keys of a tree are
//! a function of what Docker hashes — paths, types, modes, sizes, contents — and of nothing else:
//! not mtime, atime, owner, nor the order the files were created in. The counter-property (a
//! one-byte content change moves the `COPY` keys) keeps the first from passing vacuously.

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
