//! What the engine's embedded BuildKit (0.8 in dockerd 20.10) hashes where it differs from the
//! classic builder: the content checksum of a `COPY`/`ADD` source or of a `RUN
//! --mount=type=bind` source, the `--mount` specs, and which stages run at all.
//!
//! Verified on the engine (the README's "Classic vs BuildKit" table): BuildKit's checksum of a
//! source (`cache/contenthash`) covers each entry's path below the source, type, permission
//! and special bits, size, content, device number and a symlink's own target text; never
//! mtime, never owner (the CLI's session sends uid/gid 0), never a directory's mode. The
//! source itself is followed when it is a symlink; links below it are not (retargeting a
//! dangling link misses, editing a file a link points to outside the source hits).
//!
//! Boundary: pure functions over the [`Manifest`]; no I/O. The step keys are chained in
//! [`super::plan`].

use super::manifest::{feed_bytes, Hash, ManifestEntry, Records};
use super::sources::{resolve_in, Resolved, SelectError, Selection};
use crate::context::EntryKind;
use crate::pathrules;
use rayon::prelude::*;

/// Selects `COPY`/`ADD`/bind-mount sources and computes what BuildKit's content checksum
/// depends on. Errors as [`super::plan::select`].
pub fn select<M: Records + ?Sized>(m: &M, sources: &[String]) -> Result<Selection, SelectError> {
    let mut h = blake3::Hasher::new();
    h.update(b"buildkit-sources");
    let mut entries: Vec<usize> = Vec::new();
    for src in sources {
        let p = pathrules::trim_copy_source(src.as_bytes());
        if pathrules::has_wildcards(p) {
            let glob = pathrules::Glob::new(p).map_err(|_| SelectError::NoMatch(src.clone()))?;
            // Manifest order is path-byte order, as BuildKit's radix tree walks matches.
            let matched: Vec<usize> = (0..m.len())
                .filter(|&i| glob.matches(m.at(i).path_bytes()))
                .collect();
            if matched.is_empty() {
                return Err(SelectError::NoMatch(src.clone()));
            }
            for i in matched {
                let rel = m.at(i).path_bytes().to_vec();
                feed_bytes(&mut h, &rel);
                let sum = source_sum(m, &rel, &mut entries)
                    .map_err(|_| SelectError::NotFound(src.clone()))?;
                h.update(&sum);
            }
        } else {
            let cleaned = pathrules::clean(p);
            if pathrules::escapes_root(&cleaned) {
                return Err(SelectError::Outside(src.clone()));
            }
            let rel = if cleaned == b"." { Vec::new() } else { cleaned };
            feed_bytes(&mut h, b"path");
            let sum = source_sum(m, &rel, &mut entries)
                .map_err(|_| SelectError::NotFound(src.clone()))?;
            h.update(&sum);
        }
    }
    entries.sort_unstable();
    entries.dedup();
    Ok(Selection {
        hash: *h.finalize().as_bytes(),
        entries,
    })
}

/// The checksum of one source path (empty: the context root), following it when it is a
/// symlink. Pushes the manifest indices it covers onto `entries`.
fn source_sum<M: Records + ?Sized>(
    m: &M,
    rel: &[u8],
    entries: &mut Vec<usize>,
) -> Result<Hash, ()> {
    if let Ok(j) = m.find(rel) {
        entries.push(j);
    }
    let Resolved::Path(target) = resolve_in(m, rel) else {
        return Err(());
    };
    let root = if target.is_empty() {
        None
    } else {
        let i = m.find(&target).map_err(|_| ())?;
        entries.push(i);
        Some(m.at(i))
    };
    if let Some(e) = root.filter(|e| e.kind != EntryKind::Dir) {
        return Ok(record(e, b""));
    }
    // A directory: everything below it, by path relative to it; its own mode does not count.
    let (lo, hi) = if target.is_empty() {
        (0, m.len())
    } else {
        let mut start = target.clone();
        start.push(b'/');
        let mut end = target.clone();
        end.push(b'/' + 1);
        (m.lower_bound(&start), m.lower_bound(&end))
    };
    let cut = if target.is_empty() {
        0
    } else {
        target.len() + 1
    };
    entries.extend(lo..hi);
    let mut h = blake3::Hasher::new();
    h.update(b"dir");
    // In path order, a slice at a time: a million-entry source never holds a hash per entry.
    let mut sums: Vec<Hash> = Vec::new();
    for start in (lo..hi).step_by(SUMS_AT_ONCE) {
        (start..hi.min(start + SUMS_AT_ONCE))
            .into_par_iter()
            .with_min_len(1024)
            .map(|i| {
                let e = m.at(i);
                record(e, &e.path_bytes()[cut..])
            })
            .collect_into_vec(&mut sums);
        for s in &sums {
            h.update(s);
        }
    }
    Ok(*h.finalize().as_bytes())
}

/// Entries whose records are hashed in one parallel batch.
const SUMS_AT_ONCE: usize = 1 << 16;

/// What BuildKit's tar-header-style record of one entry holds: `rel` is its path below the
/// source (empty for the source itself, whose name BuildKit leaves out).
fn record(e: &ManifestEntry, rel: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    feed_bytes(&mut h, rel);
    h.update(&[e.kind as u8]);
    if e.kind != EntryKind::Dir {
        h.update(&e.mode.to_le_bytes());
    }
    match e.kind {
        EntryKind::File => {
            h.update(&e.size.to_le_bytes());
            h.update(e.hash.as_ref().unwrap_or(&[0u8; 32]));
        }
        EntryKind::Symlink => {
            use std::os::unix::ffi::OsStrExt;
            let t = e.link_target.as_ref().map(|t| t.as_os_str().as_bytes());
            feed_bytes(&mut h, t.unwrap_or(b""));
        }
        k if k.is_device() => {
            h.update(&e.rdev.to_le_bytes());
        }
        _ => {}
    }
    *h.finalize().as_bytes()
}

/// One `RUN --mount=…` spec (BuildKit's CSV form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`; `bind` when not given.
    pub kind: String,
    /// `from=`: a stage (name or index) or an image; `None` for the build context.
    pub from: Option<String>,
    /// `source=`/`src=` for bind mounts (`.` when not given).
    pub source: String,
}

impl Mount {
    /// Parses the value of one `--mount` flag. Unknown keys are kept out: the whole value
    /// enters the step key as written anyway.
    pub fn parse(value: &str) -> Mount {
        let mut m = Mount {
            kind: "bind".into(),
            from: None,
            source: ".".into(),
        };
        for field in value.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "type" => m.kind = v.to_ascii_lowercase(),
                "from" => m.from = Some(v.to_string()),
                "source" | "src" => m.source = v.to_string(),
                _ => {}
            }
        }
        m
    }

    /// Whether the mount reads the build context (a bind mount with no `from=`).
    pub fn reads_context(&self) -> bool {
        self.kind == "bind" && self.from.is_none()
    }
}

/// BuildKit's `EnvList.AddOrReplace`: the old entry goes, the new one is appended (the order
/// is part of the `RUN`'s key).
pub fn add_or_replace(env: &mut Vec<(String, String)>, k: String, v: String) {
    env.retain(|(e, _)| *e != k);
    env.push((k, v));
}

/// Which stages BuildKit runs to build stage `last`: those it reaches through `FROM <stage>`,
/// `COPY --from` and `RUN --mount=from=` (`deps[i]`: the stages stage `i` reads). BuildKit
/// never builds the others, so their steps cannot miss.
pub fn needed_stages(deps: &[Vec<usize>], last: usize) -> Vec<bool> {
    let mut needed = vec![false; deps.len()];
    let mut todo = vec![last];
    while let Some(s) = todo.pop() {
        if s >= needed.len() || needed[s] {
            continue;
        }
        needed[s] = true;
        todo.extend(deps[s].iter().copied());
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::testutil::{dir, file, link, manifest as man};
    use crate::key::Manifest;

    fn sum(m: &Manifest, srcs: &[&str]) -> Hash {
        let s: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
        select(m, &s).unwrap().hash
    }

    fn base() -> Vec<ManifestEntry> {
        vec![
            dir("app"),
            file("app/main.py", 0o644, "a"),
            dir("app/pkg"),
            file("app/pkg/mod.py", 0o644, "m"),
            link("app/out", "../other.txt"),
            link("app/dang", "nowhere"),
            file("other.txt", 0o644, "o"),
        ]
    }

    #[test]
    fn directory_modes_do_not_count_file_modes_do() {
        let k0 = sum(&man(base()), &["app/"]);
        let mut v = base();
        v[0].mode = 0o700;
        v[2].mode = 0o775;
        assert_eq!(
            sum(&man(v), &["app/"]),
            k0,
            "BuildKit ignores directory modes"
        );
        for mode in [0o755, 0o664, 0o640, 0o4644] {
            let mut v = base();
            v[1].mode = mode;
            assert_ne!(sum(&man(v), &["app/"]), k0, "file mode {mode:o}");
        }
        let mut v = base();
        v.push(dir("app/newdir"));
        assert_ne!(sum(&man(v), &["app/"]), k0, "an empty directory counts");
    }

    #[test]
    fn links_below_the_source_are_hashed_by_their_text() {
        let k0 = sum(&man(base()), &["app/"]);
        let mut v = base();
        v[5].link_target = Some("nowhere2".into());
        assert_ne!(sum(&man(v), &["app/"]), k0, "a dangling retarget misses");
        let mut v = base();
        v[6] = file("other.txt", 0o644, "changed");
        assert_eq!(
            sum(&man(v), &["app/"]),
            k0,
            "the target's content outside the source does not count"
        );
        // The source itself is followed.
        let mut v = base();
        v.push(link("lnk", "app"));
        let m = man(v);
        assert_eq!(sum(&m, &["lnk"]), sum(&m, &["app"]));
    }

    #[test]
    fn sources_and_errors() {
        let m = man(base());
        assert!(matches!(
            select(&m, &["nope".into()]),
            Err(SelectError::NotFound(_))
        ));
        assert!(matches!(
            select(&m, &["../x".into()]),
            Err(SelectError::Outside(_))
        ));
        assert!(matches!(
            select(&m, &["*.md".into()]),
            Err(SelectError::NoMatch(_))
        ));
        let s = select(&m, &["*.txt".into()]).unwrap();
        assert_eq!(s.entries.len(), 1);
        assert_ne!(
            sum(&m, &["app", "other.txt"]),
            sum(&m, &["other.txt", "app"])
        );
        // The whole context: every entry.
        assert_eq!(select(&m, &[".".into()]).unwrap().entries.len(), 7);
    }

    #[test]
    fn mounts_and_stages() {
        let m = Mount::parse("type=cache,target=/root/.cache");
        assert!(!m.reads_context());
        let m = Mount::parse("source=req.txt,target=/r");
        assert!(m.reads_context() && m.source == "req.txt");
        assert!(!Mount::parse("type=bind,from=build,target=/b").reads_context());
        // 0 ← 2 → 1 is not read by 3; 3 reads 2.
        let deps = vec![vec![], vec![], vec![0], vec![2]];
        assert_eq!(needed_stages(&deps, 3), vec![true, false, true, true]);
        let mut env = vec![("A".into(), "1".into()), ("B".into(), "2".into())];
        add_or_replace(&mut env, "A".into(), "3".into());
        assert_eq!(
            env,
            vec![("B".into(), "2".into()), ("A".into(), "3".into())]
        );
    }
}
