//! Real-engine fidelity: what `scan` predicts for `COPY . /ctx/` against what the classic builder
//! actually copies.
//!
//! Each case is a small context (files, directories, symlinks, pipes, devices, modes, a
//! `.dockerignore`) built with `DOCKER_BUILDKIT=0 docker build` from `FROM scratch` +
//! `COPY . /ctx/`; the image is instantiated with `docker create` (never run), exported, and the
//! paths under `ctx/` read from the tar. Paths, types, symlink targets, permission bits and
//! device numbers must all agree. Every mismatch names its case; images and containers are
//! removed afterwards.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it;
// there a missing engine fails the run).
#![cfg(feature = "engine-tests")]

mod common;

use ctxbuild::context::{copy_mode, scan, ContextOptions, EntryKind};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const DOCKERFILE: &[u8] = b"FROM scratch\nCOPY . /ctx/\n";

enum Node {
    File(&'static [u8]),
    FileMode(&'static [u8], u32),
    Dir,
    DirMode(u32),
    Link(&'static str),
    /// A named pipe with this mode.
    Pipe(u32),
    /// A character device (mode, major, minor); needs CAP_MKNOD, as the engine tests run.
    CharDev(u32, u32, u32),
}
use Node::*;

struct Case {
    name: &'static str,
    ignore: Option<&'static [u8]>,
    tree: Vec<(&'static [u8], Node)>,
    /// Where the Dockerfile goes, relative to the context (`None`: `Dockerfile`). A path
    /// starting with `../` puts it outside the context.
    dockerfile: Option<&'static str>,
}

fn case(name: &'static str, ignore: &'static str, tree: Vec<(&'static str, Node)>) -> Case {
    Case {
        name,
        ignore: Some(ignore.as_bytes()),
        tree: tree.into_iter().map(|(p, n)| (p.as_bytes(), n)).collect(),
        dockerfile: None,
    }
}

fn f(p: &'static str) -> (&'static str, Node) {
    (p, File(b"x"))
}

/// The files most cases share: something at every depth.
fn std_tree() -> Vec<(&'static str, Node)> {
    vec![
        f("top.txt"),
        f("README.md"),
        f("CHANGES.md"),
        f("a/one.txt"),
        f("a/b/two.txt"),
        f("a/b/c/three.log"),
        f("docs/guide.md"),
        f("docs/keep/a.md"),
        f("docs/keep/b.md"),
        ("docs/empty", Dir),
    ]
}

fn pyc_tree() -> Vec<(&'static str, Node)> {
    vec![
        f("__pycache__/top.cpython-312.pyc"),
        f("app/__pycache__/m.cpython-312.pyc"),
        f("app/m.py"),
        f("app/sub/__pycache__/n.cpython-312.pyc"),
        f("app/sub/n.py"),
        f("app/sub/old.pyo"),
        f("loose.pyc"),
    ]
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case(
            "no-ignore-file-types-and-modes",
            "",
            vec![
                ("script.sh", FileMode(b"#!/bin/sh\n", 0o755)),
                ("private.key", FileMode(b"k", 0o600)),
                ("setuid", FileMode(b"s", 0o4755)),
                ("setuid-setgid", FileMode(b"s", 0o6755)),
                ("setgid-no-group-exec", FileMode(b"s", 0o2644)),
                ("sticky-file", FileMode(b"s", 0o1755)),
                ("setgid-dir", DirMode(0o2755)),
                ("setuid-dir", DirMode(0o4750)),
                ("group.txt", FileMode(b"g", 0o640)),
                ("locked", DirMode(0o700)),
                ("locked/inner.txt", File(b"i")),
                ("sticky", DirMode(0o1777)),
                ("empty", Dir),
                ("nested/empty/deeper", Dir),
                ("link-file", Link("script.sh")),
                ("link-dir", Link("locked")),
                ("link-dangling", Link("does/not/exist")),
                ("link-absolute", Link("/etc/passwd")),
                ("link-up", Link("../../outside")),
            ],
        ),
        case(
            "comments-only-in-column-one",
            "#top.txt\n #README.md\n\t#a\n# comment\n",
            vec![
                f("top.txt"),
                f("#README.md"),
                f("README.md"),
                f("#a"),
                f("a"),
            ],
        ),
        case(
            "bom-crlf-whitespace",
            "\u{FEFF}top.txt\r\n  a/one.txt  \r\n\t\r\n\u{A0}CHANGES.md\u{A0}\n",
            std_tree(),
        ),
        case(
            "clean-leading-slash-dot-trailing-slash",
            "/top.txt\n./README.md\ndocs/\na//b/./c/../c\n",
            std_tree(),
        ),
        case(
            "exceptions-last-match-wins",
            "*.md\n!README.md\n",
            std_tree(),
        ),
        case(
            "exception-before-pattern-loses",
            "!README.md\n*.md\n",
            std_tree(),
        ),
        case("star-does-not-cross-slash", "*.txt\n*/*.md\n", std_tree()),
        case("star-slash-star", "*/*\n", std_tree()),
        case(
            "question-mark",
            "?/one.txt\n???.txt\n",
            vec![
                f("a/one.txt"),
                f("ab/one.txt"),
                f("abc.txt"),
                f("abcd.txt"),
                f("é.txt"),
                f("éé.txt"),
            ],
        ),
        case("double-star", "**/*.log\na/**/two.txt\n", std_tree()),
        case(
            "double-star-suffix-and-prefix-shortcuts",
            "**one.txt\ndoc**\n",
            vec![
                f("a/one.txt"),
                f("a/xone.txt"),
                f("one.txt"),
                f("docs/x"),
                f("doc"),
                f("documents/y"),
                f("do"),
            ],
        ),
        case("single-level-pycache", "*/__pycache__\n", pyc_tree()),
        case("any-level-pycache", "**/__pycache__\n", pyc_tree()),
        case(
            "pollution-rules",
            "**/__pycache__\n**/*.pyc\n**/*.pyo\n",
            pyc_tree(),
        ),
        case(
            "pollution-with-exception",
            "**/__pycache__\n**/*.pyc\n!app/__pycache__/m.cpython-312.pyc\n",
            pyc_tree(),
        ),
        case(
            "character-classes",
            "[ab].txt\n[!c]x\n[^d]y\n[[:digit:]]*\n[?]\n",
            vec![
                f("a.txt"),
                f("b.txt"),
                f("c.txt"),
                f("!x"),
                f("cx"),
                f("ex"),
                f("dy"),
                f("ey"),
                f("7up"),
                f("up7"),
                f("[]"),
                f("q"),
            ],
        ),
        case(
            "escapes",
            "\\*\nq\\?\n\\[x\\]\nv\\d\n\\#hash\n\\!bang\n",
            vec![
                f("*"),
                f("a"),
                f("q?"),
                f("qq"),
                f("[x]"),
                f("x"),
                f("v1"),
                f("vd"),
                f("#hash"),
                f("!bang"),
            ],
        ),
        case(
            "regexp-metacharacters-are-literal",
            "a.b\na+b*\n(p)*\n{c}*\n$d*\n",
            vec![
                f("a.b"),
                f("axb"),
                f("a+bc"),
                f("aab"),
                f("(p)q"),
                f("p"),
                f("{c}1"),
                f("c"),
                f("$dd"),
                f("d"),
            ],
        ),
        case(
            "parent-directory-excludes-children",
            "a/b\ndocs\n",
            std_tree(),
        ),
        case(
            "exception-below-excluded-directory",
            "docs\n!docs/keep/a.md\n",
            {
                let mut t = std_tree();
                t.push(("docs", DirMode(0o700)));
                t.push(("docs/keep", DirMode(0o750)));
                t
            },
        ),
        case(
            "wildcard-exception-cannot-rescue",
            "docs\n!*/keep\n!**/a.md\n",
            std_tree(),
        ),
        case(
            "wildcard-exception-where-dir-kept",
            "*.md\n!*/guide.md\n",
            std_tree(),
        ),
        case(
            "parent-results-not-ancestor-search",
            "*/f\n!d\n",
            vec![f("d/f"), f("d/g"), f("e/f")],
        ),
        case(
            "exclude-all-but-one-directory",
            "*\n!a\na/b/c\n",
            std_tree(),
        ),
        case("exclude-everything", "**\n", std_tree()),
        case(
            "exclude-everything-keep-one-deep-file",
            "**\n!docs/keep/b.md\n",
            std_tree(),
        ),
        case(
            "excluded-dockerfile-and-dockerignore",
            "Dockerfile\n.dockerignore\n*.md\n",
            std_tree(),
        ),
        case(
            "excluded-by-star-dockerfile-kept-by-exception",
            "*\n!Dockerfile\n!a\n",
            std_tree(),
        ),
        case(
            "odd-names",
            "-rf\n\\[x\\].txt\nwith space/*.txt\n",
            vec![
                f("-rf"),
                f("-v"),
                f("[x].txt"),
                f("x.txt"),
                f("with space/a.txt"),
                f("with space/a.md"),
                f("ünïcödé ☃.txt"),
                f("tab\tname"),
                f("back\\slash"),
                f("a*b"),
                f("semi;colon"),
                f("'quote\""),
                f(".hidden"),
                f("..dots"),
            ],
        ),
        case(
            "symlinks-matched-by-name-never-followed",
            "real/*\nlink-to-real/*\ngone\n",
            vec![
                f("real/inside.txt"),
                ("link-to-real", Link("real")),
                ("gone", Link("real/inside.txt")),
                ("kept", Link("real/inside.txt")),
            ],
        ),
        case(
            "empty-directories",
            "skip-me\n",
            vec![
                ("skip-me", Dir),
                ("keep-me", Dir),
                ("deep/er/est", Dir),
                f("x"),
            ],
        ),
        case("exception-only-file", "!a\n", std_tree()),
        case("dir-star-then-exception", "a/*\n!a/one.txt\n", std_tree()),
        case("reinclude-excluded-directory", "docs\n!docs\n", std_tree()),
        case(
            "exception-with-space-and-leading-slash",
            "*.md\n! /README.md\n",
            std_tree(),
        ),
        case(
            "class-ranges",
            "[a-c]*.txt\n[0-9][0-9]\n",
            vec![
                f("apple.txt"),
                f("cat.txt"),
                f("dog.txt"),
                f("42"),
                f("4"),
                f("420"),
            ],
        ),
        case("exact-deep-path", "a/b/c/three.log\n", std_tree()),
        // Docker sends pipes and devices and COPY recreates them with their mode and number.
        case(
            "pipes-and-devices-are-copied",
            "skipped-pipe\n",
            vec![
                f("a.txt"),
                ("pipe", Pipe(0o640)),
                ("skipped-pipe", Pipe(0o644)),
                ("sub/null", CharDev(0o666, 1, 3)),
                ("tty", CharDev(0o620, 4, 1)),
            ],
        ),
    ];
    let mut sub = case(
        "dockerfile-in-excluded-directory",
        "docker\n",
        vec![f("docker/notes.txt"), f("app.py")],
    );
    sub.dockerfile = Some("docker/Dockerfile");
    v.push(sub);
    let mut outside = case("dockerfile-outside-context", "*.md\n", std_tree());
    outside.dockerfile = Some("../df/Dockerfile");
    v.push(outside);
    let mut none = case("no-dockerignore", "", std_tree());
    none.ignore = None;
    v.push(none);
    v.push(Case {
        name: "non-utf8-name",
        ignore: Some(b"*.skip\n"),
        tree: vec![(b"caf\xe9.txt", File(b"x")), (b"b\xff.skip", File(b"y"))],
        dockerfile: None,
    });
    v
}

/// (type, mode, link target, device major/minor) of one path.
type Seen = BTreeMap<Vec<u8>, (EntryKind, u32, Option<Vec<u8>>, Option<(u32, u32)>)>;

fn build_tree(dir: &Path, c: &Case) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut modes: Vec<(PathBuf, u32)> = Vec::new();
    for (p, node) in &c.tree {
        let path = ctx.join(OsStr::from_bytes(p));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        match node {
            File(data) => std::fs::write(&path, data).unwrap(),
            FileMode(data, mode) => {
                std::fs::write(&path, data).unwrap();
                modes.push((path, *mode));
            }
            Dir => std::fs::create_dir_all(&path).unwrap(),
            DirMode(mode) => {
                std::fs::create_dir_all(&path).unwrap();
                modes.push((path, *mode));
            }
            Link(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            Pipe(mode) => mknod(&path, libc::S_IFIFO | mode, 0),
            CharDev(mode, major, minor) => {
                mknod(&path, libc::S_IFCHR | mode, libc::makedev(*major, *minor))
            }
        }
    }
    // Directory modes last, so creating their children was not affected.
    for (path, mode) in modes {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    if let Some(ig) = c.ignore {
        std::fs::write(ctx.join(".dockerignore"), ig).unwrap();
    }
    let df = ctx.join(c.dockerfile.unwrap_or("Dockerfile"));
    std::fs::create_dir_all(df.parent().unwrap()).unwrap();
    std::fs::write(&df, DOCKERFILE).unwrap();
    df
}

fn mknod(path: &Path, mode: u32, dev: libc::dev_t) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // mknod applies the umask: set the exact mode afterwards.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    let rc = unsafe { libc::chmod(c.as_ptr(), mode & 0o7777) };
    assert_eq!(rc, 0);
}

fn predict(ctx: &Path, df: &Path) -> Seen {
    let mut o = ContextOptions::new(ctx);
    o.dockerfile = Some(df.to_path_buf());
    let c = scan(&o).expect("scan");
    assert!(c.issues.is_empty(), "{:?}", c.issues);
    c.entries
        .iter()
        .map(|e| {
            (
                e.path_bytes().to_vec(),
                (
                    e.kind,
                    if e.kind == EntryKind::Symlink {
                        0
                    } else {
                        copy_mode(e)
                    },
                    e.link_target
                        .as_ref()
                        .map(|t| t.as_os_str().as_bytes().to_vec()),
                    e.kind.is_device().then(|| e.dev_numbers()),
                ),
            )
        })
        .collect()
}

/// Builds the context on the real engine and lists what landed under `/ctx/`.
fn observe(name: &str, ctx: &Path, df: &Path) -> Result<Seen, String> {
    let tag = common::unique(&format!("ctxbuild-fidelity-{name}"));
    // --no-cache: cases with identical contexts would otherwise share one image, and the
    // `rmi -f` of one case could delete the layer another case is about to reuse.
    let build = common::docker_output(&[
        "build",
        "--no-cache",
        "-q",
        "-t",
        &tag,
        "-f",
        df.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    if !build.status.success() {
        return Err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&build.stderr)
        ));
    }
    let created = common::docker_output(&["create", &tag, "/nonexistent"]);
    let result = if created.status.success() {
        let cid = String::from_utf8_lossy(&created.stdout).trim().to_string();
        let export = common::docker_output(&["export", &cid]);
        let _ = common::docker_output(&["rm", "-f", &cid]);
        if export.status.success() {
            Ok(read_ctx(&export.stdout))
        } else {
            Err(format!(
                "docker export failed: {}",
                String::from_utf8_lossy(&export.stderr)
            ))
        }
    } else {
        Err(format!(
            "docker create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        ))
    };
    let _ = common::docker_output(&["rmi", "-f", &tag]);
    result
}

fn read_ctx(tar_bytes: &[u8]) -> Seen {
    let mut seen = Seen::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().expect("tar") {
        let entry = entry.expect("tar entry");
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = raw.strip_prefix(b"ctx/") else {
            continue;
        };
        let rel = rel.strip_suffix(b"/").unwrap_or(rel).to_vec();
        if rel.is_empty() {
            continue;
        }
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::Char => EntryKind::CharDevice,
            tar::EntryType::Block => EntryKind::BlockDevice,
            _ => EntryKind::File,
        };
        let dev = kind.is_device().then(|| {
            (
                h.device_major().ok().flatten().unwrap_or(u32::MAX),
                h.device_minor().ok().flatten().unwrap_or(u32::MAX),
            )
        });
        let mode = if kind == EntryKind::Symlink {
            0
        } else {
            h.mode().unwrap_or(0) & 0o7777
        };
        let target = if kind == EntryKind::Symlink {
            entry.link_name_bytes().map(|t| t.into_owned())
        } else {
            None
        };
        seen.insert(rel, (kind, mode, target, dev));
    }
    seen
}

fn show(p: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(p))
}

fn compare(name: &str, predicted: &Seen, docker: &Seen) -> Vec<String> {
    let mut out = Vec::new();
    for (p, v) in predicted {
        match docker.get(p) {
            None => out.push(format!(
                "{name}: predicted {} but Docker did not copy it",
                show(p)
            )),
            Some(d) if d != v => out.push(format!(
                "{name}: {} differs: predicted {:?}, Docker {:?}",
                show(p),
                v,
                d
            )),
            _ => {}
        }
    }
    for p in docker.keys() {
        if !predicted.contains_key(p) {
            out.push(format!(
                "{name}: Docker copied {} which was not predicted",
                show(p)
            ));
        }
    }
    out
}

#[test]
fn scan_predicts_what_the_classic_builder_copies() {
    common::require_engine();
    let cases = cases();
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let checked = AtomicUsize::new(0);
    // A few builds at once: the engine, not this process, does the work.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                let dir = tempfile::tempdir().unwrap();
                let df = build_tree(dir.path(), c);
                let ctx = dir.path().join("ctx");
                let predicted = predict(&ctx, &df);
                // The engine is shared with other test runs: a failed build (not a mismatch)
                // is retried once before it counts.
                let observed = observe(c.name, &ctx, &df).or_else(|first| {
                    eprintln!("{}: retrying after: {first}", c.name);
                    observe(c.name, &ctx, &df)
                });
                let problems = match observed {
                    Ok(docker) => compare(c.name, &predicted, &docker),
                    Err(e) => vec![format!("{}: {e}", c.name)],
                };
                checked.fetch_add(predicted.len(), Ordering::Relaxed);
                failures.lock().unwrap().extend(problems);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} mismatches between scan and the real engine:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The suite must have compared something real.
    assert!(checked.load(Ordering::Relaxed) > 200);
}

#[test]
fn invalid_patterns_are_rejected_by_docker_too() {
    common::require_engine();
    for (ignore, docker_says) in [
        ("ok\n!\n", "illegal exclusion pattern"),
        ("[abc\n", "syntax error in pattern"),
        ("a\\\n", "syntax error in pattern"),
        ("a[]b\n", "syntax error in pattern"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(dir.path().join(".dockerignore"), ignore).unwrap();
        let ours = scan(&ContextOptions::new(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(ours.contains(docker_says), "{ignore:?}: {ours}");
        let tag = common::unique("ctxbuild-fidelity-bad");
        let o = common::docker_output(&["build", "-q", "-t", &tag, dir.path().to_str().unwrap()]);
        let _ = common::docker_output(&["rmi", "-f", &tag]);
        assert!(!o.status.success(), "{ignore:?}: Docker accepted it");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(docker_says), "{ignore:?}: Docker said {err}");
    }
}
