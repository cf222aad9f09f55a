//! Unit tests of `scan` on temporary trees (the real-engine comparison is in
//! `tests/context_fidelity.rs`).

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = dir.path().join(p);
        if p.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
            continue;
        }
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, c).unwrap();
    }
    dir
}

fn scan_dir(dir: &Path) -> Context {
    scan(&ContextOptions::new(dir)).unwrap()
}

fn paths(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.display().into_owned()).collect()
}

#[test]
fn lists_files_dirs_symlinks_sorted_by_bytes() {
    let d = tree(&[
        ("Dockerfile", "FROM scratch\n"),
        ("a.txt", "x"),
        ("a/b.txt", "yy"),
        ("empty/", ""),
        ("Z", ""),
    ]);
    symlink("a/b.txt", d.path().join("link")).unwrap();
    symlink("nowhere", d.path().join("dangling")).unwrap();
    symlink("a", d.path().join("dirlink")).unwrap();
    let c = scan_dir(d.path());
    assert_eq!(
        paths(&c.entries),
        [
            "Dockerfile",
            "Z",
            "a",
            "a.txt",
            "a/b.txt",
            "dangling",
            "dirlink",
            "empty",
            "link"
        ]
    );
    let b = c.get(b"a/b.txt").unwrap();
    assert_eq!((b.kind, b.size), (EntryKind::File, 2));
    let l = c.get(b"link").unwrap();
    assert_eq!(l.kind, EntryKind::Symlink);
    assert_eq!(l.link_target.as_deref(), Some(Path::new("a/b.txt")));
    assert_eq!(c.get(b"dirlink").unwrap().kind, EntryKind::Symlink);
    assert_eq!(c.get(b"empty").unwrap().kind, EntryKind::Dir);
    assert_eq!(c.dockerfile.as_deref(), Some(Path::new("Dockerfile")));
    assert!(c.issues.is_empty(), "{:?}", c.issues);
    assert_eq!(c.files().count(), 7);
    assert_eq!(c.sent().len(), c.entries.len());
}

#[test]
fn modes_are_recorded() {
    let d = tree(&[("run.sh", "#!/bin/sh\n")]);
    fs::set_permissions(d.path().join("run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    let c = scan_dir(d.path());
    assert_eq!(c.get(b"run.sh").unwrap().mode, 0o4755);
}

#[test]
fn excluded_dockerfile_and_dockerignore_are_sent_but_hidden() {
    let d = tree(&[
        ("Dockerfile", "FROM scratch\n"),
        (".dockerignore", "Dockerfile\n.dockerignore\n*.md\n"),
        ("a.md", ""),
        ("app.py", ""),
    ]);
    let c = scan_dir(d.path());
    assert_eq!(paths(&c.entries), ["app.py"]);
    assert_eq!(paths(&c.hidden), [".dockerignore", "Dockerfile"]);
    let sent: Vec<String> = c.sent().iter().map(|e| e.display().into_owned()).collect();
    assert_eq!(sent, [".dockerignore", "Dockerfile", "app.py"]);
    assert_eq!(c.ignore_file.as_deref(), Some(Path::new(".dockerignore")));
}

#[test]
fn dockerfile_in_excluded_dir_leaves_an_implied_empty_dir() {
    let d = tree(&[
        ("docker/Dockerfile", "FROM scratch\n"),
        ("docker/other", ""),
        (".dockerignore", "docker\n"),
        ("app.py", ""),
    ]);
    let mut o = ContextOptions::new(d.path());
    o.dockerfile = Some(d.path().join("docker/Dockerfile"));
    let c = scan(&o).unwrap();
    assert_eq!(paths(&c.entries), [".dockerignore", "app.py", "docker"]);
    assert_eq!(paths(&c.hidden), ["docker/Dockerfile"]);
    assert_eq!(c.implied_dirs, [PathBuf::from("docker")]);
    assert_eq!(c.get(b"docker").unwrap().mode, IMPLIED_DIR_MODE);
    // The tar holds the Dockerfile but not its directory.
    let sent: Vec<String> = c.sent().iter().map(|e| e.display().into_owned()).collect();
    assert_eq!(sent, [".dockerignore", "app.py", "docker/Dockerfile"]);
}

#[test]
fn exception_below_excluded_dir_is_reincluded_with_implied_parent() {
    let d = tree(&[
        ("Dockerfile", ""),
        (".dockerignore", "docs\n!docs/keep/a.md\n"),
        ("docs/keep/a.md", ""),
        ("docs/keep/b.md", ""),
        ("docs/other.md", ""),
    ]);
    fs::set_permissions(d.path().join("docs"), fs::Permissions::from_mode(0o700)).unwrap();
    let c = scan_dir(d.path());
    assert_eq!(
        paths(&c.entries),
        [
            ".dockerignore",
            "Dockerfile",
            "docs",
            "docs/keep",
            "docs/keep/a.md"
        ]
    );
    assert_eq!(
        c.implied_dirs,
        [PathBuf::from("docs"), PathBuf::from("docs/keep")]
    );
    assert_eq!(c.get(b"docs").unwrap().mode, 0o755);
}

#[test]
fn excluded_dir_without_survivors_disappears() {
    let d = tree(&[
        (".dockerignore", "docs\n!docs/nothing-here\n"),
        ("docs/a.md", ""),
    ]);
    let c = scan_dir(d.path());
    assert_eq!(paths(&c.entries), [".dockerignore"]);
    assert!(c.implied_dirs.is_empty());
}

#[test]
fn walk_agrees_with_the_stateless_matcher() {
    let files = [
        "a/__pycache__/m.cpython-312.pyc",
        "a/m.py",
        "a/b/__pycache__/n.pyc",
        "a/b/keep.pyc",
        "__pycache__/top.pyc",
        "docs/x.md",
        "docs/keep.md",
        "docs/sub/y.md",
        "README.md",
        "node_modules/p/index.js",
        "web/node_modules/q.js",
        "v1/data",
        "v2/data",
    ];
    let ignores = [
        "*/__pycache__\n",
        "**/__pycache__\n**/*.pyc\n!a/b/keep.pyc\n",
        "*.md\n!docs\ndocs/sub\n",
        "*\n!a\n!docs/keep.md\n",
        "**\n!**/m.py\n",
        "node_modules\nv[0-9]\n!v2/data\n",
        "*/f\n!d\n",
        "docs\n!docs/*.md\n",
    ];
    for ig in ignores {
        let mut spec: Vec<(&str, &str)> = files.iter().map(|f| (*f, "")).collect();
        spec.push((".dockerignore", ig));
        let d = tree(&spec);
        let c = scan_dir(d.path());
        let m = Matcher::parse(ig.as_bytes(), ".dockerignore").unwrap();
        // Every file the stateless matcher keeps is listed, and nothing else.
        let mut expect: Vec<String> = files
            .iter()
            .chain([".dockerignore"].iter())
            .filter(|f| !m.is_excluded(f.as_bytes()) || **f == ".dockerignore")
            .map(|f| f.to_string())
            .collect();
        expect.sort();
        let got: Vec<String> = c
            .files()
            .chain(c.hidden.iter())
            .map(|e| e.display().into_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(got, expect, "ignore file:\n{ig}");
    }
}

#[test]
fn missing_root_is_a_clear_error() {
    let e = scan(&ContextOptions::new("/no/such/ctx")).unwrap_err();
    assert!(matches!(e, ContextError::RootNotFound(_)));
    assert_eq!(e.to_string(), "build context `/no/such/ctx` does not exist");
    use crate::diagnostics::Diagnose;
    assert!(e.hint().unwrap().contains("build context"));
    let d = tree(&[("f", "")]);
    let e = scan(&ContextOptions::new(d.path().join("f"))).unwrap_err();
    assert!(matches!(e, ContextError::RootNotDir(_)));
}

#[test]
fn missing_explicit_dockerfile_is_an_error_missing_default_is_not() {
    let d = tree(&[("app.py", "")]);
    let c = scan_dir(d.path());
    assert!(c.dockerfile.is_none());
    let mut o = ContextOptions::new(d.path());
    o.dockerfile = Some(d.path().join("nope/Dockerfile"));
    assert!(matches!(
        scan(&o).unwrap_err(),
        ContextError::DockerfileNotFound(_)
    ));
}

#[test]
fn lowercase_dockerfile_is_the_fallback() {
    let d = tree(&[("dockerfile", ""), (".dockerignore", "dockerfile\n")]);
    let c = scan_dir(d.path());
    assert_eq!(c.dockerfile.as_deref(), Some(Path::new("dockerfile")));
    assert_eq!(paths(&c.hidden), ["dockerfile"]);
}

#[test]
fn bad_pattern_fails_the_scan_with_its_line() {
    let d = tree(&[(".dockerignore", "ok\n# c\n[oops\n")]);
    let e = scan(&ContextOptions::new(d.path())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(".dockerignore:3: syntax error in pattern"),
        "{e}"
    );
}

#[test]
fn buildkit_prefers_dockerfile_dockerignore() {
    let d = tree(&[
        ("build/app.Dockerfile", ""),
        ("build/app.Dockerfile.dockerignore", "*.md\nbuild\n"),
        (".dockerignore", "*.py\n"),
        ("a.md", ""),
        ("a.py", ""),
    ]);
    let mut o = ContextOptions::new(d.path());
    o.dockerfile = Some(d.path().join("build/app.Dockerfile"));
    o.buildkit = true;
    let c = scan(&o).unwrap();
    assert_eq!(paths(&c.entries), [".dockerignore", "a.py"]);
    assert!(c.hidden.is_empty());
    assert_eq!(
        c.ignore_file.as_deref(),
        Some(Path::new("build/app.Dockerfile.dockerignore"))
    );
    assert_eq!(c.issues.len(), 1);
    assert_eq!(c.issues[0].kind, IssueKind::DockerfileNotSent);
    // The classic builder ignores that file.
    o.buildkit = false;
    let c = scan(&o).unwrap();
    assert_eq!(
        paths(&c.entries),
        [
            ".dockerignore",
            "a.md",
            "build",
            "build/app.Dockerfile",
            "build/app.Dockerfile.dockerignore"
        ]
    );
}

#[test]
fn special_files_are_reported_not_listed() {
    let d = tree(&[("a", "")]);
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("s.sock")).unwrap();
    let c = scan_dir(d.path());
    assert_eq!(paths(&c.entries), ["a"]);
    assert_eq!(c.issues.len(), 1);
    assert_eq!(c.issues[0].kind, IssueKind::Special);
    assert_eq!(c.issues[0].path, PathBuf::from("s.sock"));
    assert!(!c.has_unreadable());
}

#[test]
fn symlinked_root_is_resolved_and_links_inside_are_not_followed() {
    let d = tree(&[("real/a", ""), ("outside/secret", "")]);
    symlink(d.path().join("real"), d.path().join("ctx")).unwrap();
    symlink(d.path().join("outside"), d.path().join("real/out")).unwrap();
    let c = scan_dir(&d.path().join("ctx"));
    assert_eq!(c.root, fs::canonicalize(d.path().join("real")).unwrap());
    assert_eq!(paths(&c.entries), ["a", "out"]);
}

#[test]
fn names_only_lists_the_same_paths_without_metadata() {
    let d = tree(&[
        (".dockerignore", "docs\n!docs/keep\n*.log\n"),
        ("docs/keep", "k"),
        ("docs/drop", ""),
        ("a.log", ""),
        ("src/main.py", "print()"),
    ]);
    symlink("src", d.path().join("ln")).unwrap();
    let full = scan_dir(d.path());
    let light = scan_with(&ContextOptions::new(d.path()), Detail::NamesOnly).unwrap();
    assert_eq!(paths(&full.entries), paths(&light.entries));
    let kinds = |c: &Context| c.entries.iter().map(|e| e.kind).collect::<Vec<_>>();
    assert_eq!(kinds(&full), kinds(&light));
    assert_eq!(light.get(b"src/main.py").unwrap().size, 0);
    assert_eq!(
        light.get(b"ln").unwrap().link_target.as_deref(),
        Some(Path::new("src"))
    );
    assert_eq!(full.get(b"src/main.py").unwrap().size, 7);
}

#[test]
fn copy_mode_clears_setuid_like_the_engine() {
    let e = |kind, mode| Entry {
        path: PathBuf::from("x"),
        kind,
        mode,
        size: 0,
        link_target: None,
        rdev: 0,
        stat: StatInfo::default(),
    };
    assert_eq!(copy_mode(&e(EntryKind::File, 0o4755)), 0o755);
    assert_eq!(copy_mode(&e(EntryKind::File, 0o6755)), 0o755);
    assert_eq!(copy_mode(&e(EntryKind::File, 0o2644)), 0o2644);
    assert_eq!(copy_mode(&e(EntryKind::File, 0o1755)), 0o1755);
    assert_eq!(copy_mode(&e(EntryKind::Dir, 0o6755)), 0o6755);
}
