//! `ctxbuild clean` end to end: generated trees for every rule and safety promise, and a copy
//! of this machine's real CPython library, hashed before and after.
//!
//! Temporary trees live under Cargo's target tmp dir (the repository's filesystem), where
//! `chattr +i` works for the unremovable-file case.

mod common;

use common::{stderr, stdout, write_tree, TestEnv};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("clean-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Every path below `root` (relative, sorted), directories with a trailing `/`, symlinks with
/// ` -> target`.
fn listing(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type();
            if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                format!("{rel} -> {}", t.display())
            } else if ft.is_dir() {
                format!("{rel}/")
            } else {
                rel
            }
        })
        .collect();
    out.sort();
    out
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bad json ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The paths a `--json` run reports under `removed` (or `kept`), for the first root.
fn paths(v: &serde_json::Value, key: &str) -> Vec<String> {
    v["roots"][0][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap().to_string())
        .collect()
}

const TREE: &[(&str, &str)] = &[
    ("app/main.py", "print('hi')\n"),
    ("app/__pycache__/main.cpython-311.pyc", "bytecode"),
    ("app/__pycache__/main.cpython-311.opt-1.pyc", "bytecode"),
    ("app/__pycache__/main.cpython-311.opt-2.pyc", "bytecode"),
    ("app/legacy.pyo", "old"),
    // Sourceless: still pollution.
    ("app/orphan.pyc", "no source"),
    ("app/sub/__pycache__/x.cpython-312.pyc", "bytecode"),
    ("app/sub/x.py", ""),
    // Something the rules do not name keeps its __pycache__.
    ("lib/__pycache__/NOTES.txt", "mine"),
    ("lib/__pycache__/y.cpython-311.pyc", "bytecode"),
    ("lib/y.py", ""),
    // Names that only look like pollution.
    ("docs/.pyc", "a dotfile"),
    ("docs/mod.PYC", "upper case"),
    ("docs/pyc.txt", ""),
    // Debris.
    (".pytest_cache/v/cache/nodeids", "[]"),
    (".pytest_cache/README.md", ""),
    (".mypy_cache/3.11/app.data.json", "{}"),
    (".dmypy.json", "{}"),
    (".coverage", "sqlite"),
    (".coverage.host.1234.5678", "sqlite"),
    ("coverage.xml", "<xml/>"),
    ("htmlcov/index.html", ""),
    ("src/pkg.egg-info/PKG-INFO", ""),
    (".ipynb_checkpoints/nb-checkpoint.ipynb", "{}"),
    (".ruff_cache/0.1/x", ""),
    ("build/out.log", "log"),
    ("logs/run.log", "log"),
];

fn tree() -> tempfile::TempDir {
    let t = tmp();
    write_tree(t.path(), TREE);
    // A directory named like bytecode and a file named like a cache are not pollution.
    std::fs::create_dir_all(t.path().join("docs/dir.pyc")).unwrap();
    std::fs::write(t.path().join("docs/__pycache__"), "a file").unwrap();
    t
}

#[test]
fn removes_bytecode_and_keeps_everything_else() {
    let t = tree();
    let o = TestEnv::at(t.path()).run(&["clean"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = listing(t.path());
    for gone in [
        "app/__pycache__/",
        "app/legacy.pyo",
        "app/orphan.pyc",
        "app/sub/__pycache__/",
        "lib/__pycache__/y.cpython-311.pyc",
    ] {
        assert!(
            !after.contains(&gone.to_string()),
            "{gone} left: {after:#?}"
        );
    }
    for stays in [
        "app/main.py",
        "app/sub/x.py",
        "lib/__pycache__/",
        "lib/__pycache__/NOTES.txt",
        "docs/.pyc",
        "docs/mod.PYC",
        "docs/dir.pyc/",
        "docs/__pycache__",
        // Debris is opt-in.
        ".pytest_cache/README.md",
        ".coverage",
        "htmlcov/index.html",
    ] {
        assert!(
            after.contains(&stays.to_string()),
            "{stays} gone: {after:#?}"
        );
    }
    let err = stderr(&o);
    assert!(
        err.contains("removed 7 files and 2 directories"),
        "summary: {err}"
    );
    assert!(err.contains("kept 2 paths"), "summary: {err}");
}

#[test]
fn dry_run_lists_exactly_what_a_real_run_removes() {
    let t = tree();
    let before = listing(t.path());
    let o = TestEnv::at(t.path()).run(&["clean", "--dry-run", "--debris", "pytest,coverage"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(t.path()), before, "dry run changed the tree");
    let listed: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "output is sorted");
    assert!(listed.contains(&"app/__pycache__".to_string()));
    assert!(stdout(&o).contains("app/__pycache__/\n"), "dirs end in /");

    let o = TestEnv::at(t.path()).run(&["clean", "--json", "--debris", "pytest,coverage"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(paths(&json(&o), "removed"), listed);
}

#[test]
fn check_exits_1_on_pollution_and_0_on_a_clean_tree() {
    let t = tree();
    let before = listing(t.path());
    let o = TestEnv::at(t.path()).run(&["clean", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("app/orphan.pyc"));
    assert!(stderr(&o).contains("hint: run `ctxbuild clean`"));
    assert_eq!(listing(t.path()), before, "--check changed the tree");

    assert!(TestEnv::at(t.path()).run(&["clean", "-q"]).status.success());
    let o = TestEnv::at(t.path()).run(&["clean", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("no pollution found"));
}

#[test]
fn json_reports_counts_bytes_and_rules() {
    let t = tree();
    let o = TestEnv::at(t.path()).run(&["clean", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["mode"], "remove");
    assert_eq!(v["files"], 7);
    assert_eq!(v["dirs"], 2);
    let bytes: usize =
        ["bytecode"; 5].iter().map(|s| s.len()).sum::<usize>() + "old".len() + "no source".len();
    assert_eq!(v["bytes"], bytes);
    assert_eq!(v["failures"], 0);
    let removed = v["roots"][0]["removed"].as_array().unwrap();
    let rule_of = |p: &str| {
        removed
            .iter()
            .find(|x| x["path"] == p)
            .map(|x| x["rule"].as_str().unwrap().to_string())
    };
    assert_eq!(rule_of("app/legacy.pyo").as_deref(), Some("pyo"));
    assert_eq!(rule_of("app/__pycache__").as_deref(), Some("pycache"));
    let kept = v["roots"][0]["kept"].as_array().unwrap();
    assert!(kept
        .iter()
        .any(|k| k["path"] == "lib/__pycache__/NOTES.txt" && k["reason"] == "not-pollution"));
    assert!(kept
        .iter()
        .any(|k| k["path"] == "lib/__pycache__" && k["reason"] == "not-empty"));
    // JSON goes to stdout only; the human summary is not mixed in.
    assert!(!stdout(&o).contains("removed 7"));
}

#[test]
fn debris_topics_are_opt_in_and_exact() {
    let t = tree();
    let o = TestEnv::at(t.path()).run(&["clean", "--debris", "pytest,coverage,egg-info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = listing(t.path());
    for gone in [
        ".pytest_cache/",
        ".coverage",
        ".coverage.host.1234.5678",
        "coverage.xml",
        "src/pkg.egg-info/",
    ] {
        assert!(!after.contains(&gone.to_string()), "{gone} left");
    }
    // Topics not asked for stay.
    for stays in [
        ".mypy_cache/3.11/app.data.json",
        ".dmypy.json",
        "htmlcov/index.html",
        ".ruff_cache/0.1/x",
        ".ipynb_checkpoints/nb-checkpoint.ipynb",
        "src/",
    ] {
        assert!(after.contains(&stays.to_string()), "{stays} gone");
    }

    let o = TestEnv::at(t.path()).run(&["clean", "--debris", "all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = listing(t.path());
    for gone in [
        ".mypy_cache/",
        ".dmypy.json",
        "htmlcov/",
        ".ruff_cache/",
        ".ipynb_checkpoints/",
    ] {
        assert!(!after.contains(&gone.to_string()), "{gone} left");
    }
}

#[test]
fn unknown_debris_topic_is_a_usage_error_listing_the_valid_ones() {
    let t = tree();
    let before = listing(t.path());
    let o = TestEnv::at(t.path()).run(&["clean", "--debris", "pytest,nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown debris topic `nosuch`"), "{err}");
    assert!(
        err.contains("hint: valid topics: pytest, mypy, ruff, coverage, tox, egg-info, jupyter, htmlcov, all"),
        "{err}"
    );
    assert_eq!(listing(t.path()), before);
}

#[test]
fn erase_globs_and_keep_protections() {
    let t = tree();
    write_tree(
        t.path(),
        &[
            ("vendor/__pycache__/v.cpython-311.pyc", "b"),
            ("vendor/v.py", ""),
            ("build/keep.me", "precious"),
        ],
    );
    let o = TestEnv::at(t.path()).run(&[
        "clean",
        "--json",
        "--erase",
        "*.log",
        "--erase",
        "build/",
        "--keep",
        "vendor",
        "--keep",
        "build/keep.me",
        "--keep",
        "app/orphan.pyc",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = listing(t.path());
    assert!(!after.contains(&"logs/run.log".to_string()));
    assert!(
        after.contains(&"logs/".to_string()),
        "only what matched goes"
    );
    assert!(!after.contains(&"build/out.log".to_string()));
    // build/ was erased except what --keep protects, so build/ itself stays.
    assert!(after.contains(&"build/keep.me".to_string()));
    assert!(after.contains(&"vendor/__pycache__/v.cpython-311.pyc".to_string()));
    assert!(after.contains(&"app/orphan.pyc".to_string()));
    assert!(!after.contains(&"app/legacy.pyo".to_string()));
    let kept = paths(&json(&o), "kept");
    for k in ["vendor", "build/keep.me", "build", "app/orphan.pyc"] {
        assert!(
            kept.contains(&k.to_string()),
            "{k} not reported kept: {kept:?}"
        );
    }
}

#[test]
fn bad_glob_is_a_usage_error() {
    let t = tree();
    let o = TestEnv::at(t.path()).run(&["clean", "--erase", "a[b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid glob `a[b` for --erase"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint:"));
}

#[test]
fn symlink_named_pycache_pointing_outside_is_neither_entered_nor_removed() {
    let outside = tmp();
    write_tree(outside.path(), &[("victim.pyc", "not yours"), ("x.py", "")]);
    let t = tmp();
    write_tree(
        t.path(),
        &[("pkg/a.py", ""), ("pkg/real/__pycache__/a.pyc", "b")],
    );
    symlink(outside.path(), t.path().join("pkg/__pycache__")).unwrap();
    // And a link to a directory with any other name: also not followed.
    symlink(outside.path(), t.path().join("pkg/elsewhere")).unwrap();
    let o = TestEnv::at(t.path()).run(&["clean", "--json", "--debris", "all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim.pyc")).unwrap(),
        "not yours"
    );
    let md = std::fs::symlink_metadata(t.path().join("pkg/__pycache__")).unwrap();
    assert!(md.file_type().is_symlink(), "the link itself stays");
    assert!(!t.path().join("pkg/real/__pycache__").exists());
    let v = json(&o);
    let kept = v["roots"][0]["kept"].as_array().unwrap();
    assert!(
        kept.iter()
            .any(|k| k["path"] == "pkg/__pycache__" && k["reason"] == "symlink"),
        "{kept:?}"
    );
    assert_eq!(v["files"], 1);
}

#[test]
fn symlink_named_pyc_is_removed_as_a_link_never_its_target() {
    let outside = tmp();
    write_tree(outside.path(), &[("target.pyc", "theirs")]);
    let t = tmp();
    write_tree(t.path(), &[("a.py", "")]);
    symlink(outside.path().join("target.pyc"), t.path().join("a.pyc")).unwrap();
    // A dangling link named like bytecode goes too.
    symlink("/nonexistent/x", t.path().join("dangling.pyc")).unwrap();
    let o = TestEnv::at(t.path()).run(&["clean"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(t.path()), ["a.py"]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("target.pyc")).unwrap(),
        "theirs"
    );
}

#[test]
fn a_root_given_through_a_symlink_is_resolved_once() {
    let real = tree();
    let holder = tmp();
    let link = holder.path().join("link");
    symlink(real.path(), &link).unwrap();
    let o = TestEnv::at(holder.path()).run(&["clean", "--dry-run", "link"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Paths are relative to the root, not to the link or the real directory.
    assert!(
        stdout(&o).lines().any(|l| l == "app/orphan.pyc"),
        "{}",
        stdout(&o)
    );
    let o = TestEnv::at(holder.path()).run(&["clean", "link"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!real.path().join("app/orphan.pyc").exists());
    assert!(real.path().join("app/main.py").exists());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn virtualenvs_are_skipped_unless_asked_and_recognised_by_pyvenv_cfg() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            (".venv/pyvenv.cfg", "home = /usr/bin\n"),
            (
                ".venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc",
                "b",
            ),
            ("env2/pyvenv.cfg", ""),
            ("env2/lib/__pycache__/m.pyc", "b"),
            // The standard library's own `venv` package is not a virtualenv.
            ("venv/__init__.py", ""),
            ("venv/__pycache__/__init__.cpython-311.pyc", "b"),
        ],
    );
    let o = TestEnv::at(t.path()).run(&["clean", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t
        .path()
        .join(".venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc")
        .exists());
    assert!(t.path().join("env2/lib/__pycache__/m.pyc").exists());
    assert!(!t.path().join("venv/__pycache__").exists());
    let v = json(&o);
    let skipped: Vec<&str> = v["roots"][0]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, [".venv", "env2"]);

    let o = TestEnv::at(t.path()).run(&["clean", "--include-venv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!t
        .path()
        .join(".venv/lib/python3.11/site-packages/__pycache__")
        .exists());
    assert!(!t.path().join("env2/lib/__pycache__").exists());
    assert!(t.path().join(".venv/pyvenv.cfg").exists());
}

#[test]
fn git_metadata_is_never_entered_but_tox_debris_goes_whole() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            (".git/objects/__pycache__/x.pyc", "not ours"),
            (".tox/py311/pyvenv.cfg", ""),
            (".tox/py311/lib/__pycache__/m.pyc", "b"),
            (".tox/py311/lib/m.py", ""),
        ],
    );
    let o = TestEnv::at(t.path()).run(&["clean", "--debris", "tox"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.path().join(".git/objects/__pycache__/x.pyc").exists());
    assert!(!t.path().join(".tox").exists(), "debris venvs go with .tox");
}

#[test]
fn non_utf8_names_are_removed_and_listed_byte_exact() {
    let t = tmp();
    let dir = t.path().join("pkg/__pycache__");
    std::fs::create_dir_all(&dir).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.cpython-311.pyc");
    std::fs::write(dir.join(name), "b").unwrap();
    let o = TestEnv::at(t.path()).run(&["clean", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.windows(name.len()).any(|w| w == name.as_bytes()));
    let o = TestEnv::at(t.path()).run(&["clean", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["files"], 1);
    assert!(!dir.exists());
}

#[test]
fn the_filesystem_root_is_refused_before_any_walk() {
    let t = tmp();
    let o = TestEnv::at(t.path()).run(&["clean", "--check", "/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refusing to clean the filesystem root"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint:"));
}

#[test]
fn every_root_is_checked_before_anything_is_removed() {
    let a = tree();
    let o = TestEnv::at(a.path()).run(&["clean", ".", "does-not-exist"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does-not-exist"), "{}", stderr(&o));
    assert!(a.path().join("app/orphan.pyc").exists(), "nothing removed");
}

#[test]
fn several_roots_prefix_their_paths() {
    let t = tmp();
    write_tree(t.path(), &[("a/x.pyc", ""), ("b/y.pyc", "")]);
    let o = TestEnv::at(t.path()).run(&["clean", "--dry-run", "a", "b"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "a/x.pyc\nb/y.pyc\n");
    let o = TestEnv::at(t.path()).run(&["clean", "--json", "a", "b"]);
    let v = json(&o);
    assert_eq!(v["files"], 2);
    assert_eq!(v["roots"][1]["dir"], "b");
}

/// Makes a directory whose entries even root cannot unlink, and undoes it on drop.
struct Unremovable {
    dir: PathBuf,
    how: &'static str,
}

impl Unremovable {
    fn new(dir: &Path) -> Option<Unremovable> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if !root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).ok()?;
            return Some(Unremovable {
                dir: dir.to_path_buf(),
                how: "chmod",
            });
        }
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Unremovable {
            dir: dir.to_path_buf(),
            how: "chattr",
        })
    }
}

impl Drop for Unremovable {
    fn drop(&mut self) {
        if self.how == "chattr" {
            let _ = Command::new("chattr").arg("-i").arg(&self.dir).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn an_unremovable_file_is_reported_and_the_run_goes_on() {
    let t = tree();
    let stuck = t.path().join("app/sub/__pycache__");
    let Some(_guard) = Unremovable::new(&stuck) else {
        panic!(
            "cannot make {} unremovable: chattr +i failed (the test needs a filesystem \
             supporting the immutable attribute, e.g. ext4, when run as root)",
            stuck.display()
        );
    };
    let o = TestEnv::at(t.path()).run(&["clean", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["failures"], 1);
    let f = &v["roots"][0]["failures"][0];
    assert_eq!(f["path"], "app/sub/__pycache__/x.cpython-312.pyc");
    assert!(
        f["error"].as_str().unwrap().contains("not permitted")
            || f["error"].as_str().unwrap().contains("denied"),
        "{f}"
    );
    // Everything else went.
    assert!(!t.path().join("app/__pycache__").exists());
    assert!(!t.path().join("app/orphan.pyc").exists());
    assert!(stuck.join("x.cpython-312.pyc").exists());
    // The directory holding the failure is not counted as removed, nor as a second failure.
    assert_eq!(v["dirs"], 1);
    let kept = paths(&v, "kept");
    assert!(
        kept.contains(&"app/sub/__pycache__".to_string()),
        "{kept:?}"
    );

    // The human output names the path too.
    let o = TestEnv::at(t.path()).run(&["clean"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("cannot remove app/sub/__pycache__/x.cpython-312.pyc"),
        "{err}"
    );
}

/// A copy of this machine's CPython library: the standard library, plus site-packages
/// (sysconfig's purelib) package by package in name order until about 3,000 of their .pyc are
/// in. Set CTXBUILD_FULL_CORPUS=1 to copy all of site-packages (here ~15k .pyc, 716 MB).
fn cpython_copy(into: &Path) -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('stdlib')); print(sysconfig.get_path('purelib'))",
        ])
        .output()
        .expect("python3 must be installed for this test");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(PathBuf::from);
    let (stdlib, purelib) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(
        stdlib.join("os.py").exists(),
        "no stdlib at {}",
        stdlib.display()
    );
    let full = std::env::var_os("CTXBUILD_FULL_CORPUS").is_some();
    let cp = |from: &Path, to: &Path| {
        let s = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(s.success(), "cp -a {}", from.display());
    };
    let count_pyc = |p: &Path| {
        walkdir::WalkDir::new(p)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| is_pollution(e.path()))
            .count()
    };
    let dst = into.join("lib");
    std::fs::create_dir_all(dst.join("site-packages")).unwrap();
    for e in std::fs::read_dir(&stdlib).unwrap() {
        let e = e.unwrap();
        if e.path() != purelib && e.file_name() != "site-packages" {
            cp(&e.path(), &dst.join(e.file_name()));
        }
    }
    let Ok(rd) = std::fs::read_dir(&purelib) else {
        return dst;
    };
    let mut pkgs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    pkgs.sort();
    let mut budget = 3000usize;
    for p in pkgs {
        if !full && budget == 0 {
            break;
        }
        budget = budget.saturating_sub(count_pyc(&p));
        cp(&p, &dst.join("site-packages").join(p.file_name().unwrap()));
    }
    dst
}

fn is_pollution(p: &Path) -> bool {
    let name = p.file_name().unwrap().as_bytes();
    name.ends_with(b".pyc") || name.ends_with(b".pyo")
}

/// blake3 of every file that is not bytecode; every directory that is not a __pycache__.
fn fingerprint(root: &Path) -> (BTreeMap<PathBuf, String>, Vec<PathBuf>, usize, usize) {
    let (mut files, mut dirs, mut pyc, mut caches) = (BTreeMap::new(), Vec::new(), 0, 0);
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        if e.file_type().is_dir() {
            if e.file_name() == "__pycache__" {
                caches += 1;
            } else {
                dirs.push(rel);
            }
        } else if is_pollution(e.path()) {
            pyc += 1;
        } else if e.file_type().is_symlink() {
            let t = std::fs::read_link(e.path()).unwrap();
            files.insert(rel, format!("-> {}", t.display()));
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            files.insert(rel, blake3::hash(&bytes).to_hex().to_string());
        }
    }
    (files, dirs, pyc, caches)
}

#[test]
fn real_cpython_tree_is_left_byte_identical_without_bytecode() {
    let t = tmp();
    let lib = cpython_copy(t.path());
    let mut before = fingerprint(&lib);
    if before.2 < 1000 {
        // An installation shipped without bytecode: compile the copy so there is some.
        let _ = Command::new("python3")
            .args(["-m", "compileall", "-q", "-j", "0"])
            .arg(&lib)
            .output();
        before = fingerprint(&lib);
    }
    let (files_before, dirs_before, pyc, caches) = before;
    eprintln!(
        "CPython copy: {} files, {pyc} .pyc in {caches} __pycache__",
        files_before.len()
    );
    assert!(pyc >= 1000, "only {pyc} .pyc in the copy");
    assert!(caches >= 100, "only {caches} __pycache__");

    let o = TestEnv::at(t.path()).run(&["clean", "--json", "lib"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["files"], pyc);
    assert_eq!(v["dirs"], caches);
    assert_eq!(v["failures"], 0);

    let (files_after, dirs_after, pyc_after, caches_after) = fingerprint(&lib);
    assert_eq!(pyc_after, 0, "bytecode left");
    assert_eq!(caches_after, 0, "__pycache__ left");
    assert_eq!(dirs_after, dirs_before, "directories changed");
    assert_eq!(files_after.len(), files_before.len(), "files added or lost");
    assert!(files_after == files_before, "some file changed");

    let o = TestEnv::at(t.path()).run(&["clean", "--check", "lib"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn context_only_cleans_just_what_docker_would_send() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            (
                ".dockerignore",
                "# docker's rules\nignored\n!ignored/sent.pyc\n**/skip.pyc\n",
            ),
            ("a/__pycache__/m.cpython-311.pyc", "b"),
            ("a/m.py", ""),
            ("b/skip.pyc", "b"),
            ("b/other.pyc", "b"),
            ("ignored/__pycache__/x.pyc", "b"),
            ("ignored/sent.pyc", "b"),
            (".venv/pyvenv.cfg", ""),
            (".venv/lib/__pycache__/v.pyc", "b"),
        ],
    );
    let o = TestEnv::at(t.path()).run(&["clean", "--context-only", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "a/__pycache__/\na/__pycache__/m.cpython-311.pyc\nb/other.pyc\nignored/sent.pyc\n"
    );
    let o = TestEnv::at(t.path()).run(&["clean", "--context-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = listing(t.path());
    for stays in [
        "b/skip.pyc",
        "ignored/__pycache__/x.pyc",
        ".venv/lib/__pycache__/v.pyc",
        "a/m.py",
    ] {
        assert!(
            after.contains(&stays.to_string()),
            "{stays} gone: {after:#?}"
        );
    }
    for gone in ["a/__pycache__/", "b/other.pyc", "ignored/sent.pyc"] {
        assert!(!after.contains(&gone.to_string()), "{gone} left");
    }
}

#[test]
fn context_only_reports_an_invalid_dockerignore() {
    let t = tmp();
    write_tree(t.path(), &[(".dockerignore", "!\n"), ("x.pyc", "")]);
    let o = TestEnv::at(t.path()).run(&["clean", "--context-only"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(t.path().join("x.pyc").exists());
    assert!(stderr(&o).contains(".dockerignore"), "{}", stderr(&o));
}

#[test]
fn no_glob_or_debris_name_removes_through_a_virtualenv_or_vcs_metadata() {
    let t = tmp();
    let files: &[(&str, &str)] = &[
        (".venv/pyvenv.cfg", ""),
        (".venv/lib/site.py", "venv file"),
        (".git/HEAD", "ref: main"),
        ("build/.git/config", "nested repo"),
        ("build/env/pyvenv.cfg", ""),
        ("build/env/bin/python", "venv file"),
        ("build/out.o", "x"),
        // A virtualenv that happens to carry a debris name.
        ("htmlcov/pyvenv.cfg", ""),
        ("htmlcov/index.html", "venv file"),
        ("app/main.py", "x"),
    ];
    write_tree(t.path(), files);
    let o = run_in(
        t.path(),
        &["clean", "--json", "--erase", "**", "--debris", "all"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for stays in [
        ".venv/pyvenv.cfg",
        ".venv/lib/site.py",
        ".git/HEAD",
        "build/.git/config",
        "build/env/bin/python",
        "htmlcov/index.html",
    ] {
        assert!(t.path().join(stays).exists(), "{stays} removed");
    }
    for gone in ["build/out.o", "app/main.py", "app"] {
        assert!(!t.path().join(gone).exists(), "{gone} left");
    }
    let v = json(&o);
    let skipped: Vec<&str> = v["roots"][0]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, [".venv", "build/env", "htmlcov"]);
    // `build` holds what stays: it is kept, not removed.
    assert!(paths(&v, "kept").contains(&"build".to_string()));

    // Asked for explicitly, a virtualenv goes; VCS metadata never does.
    let o = run_in(t.path(), &["clean", "--erase", "**", "--include-venv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!t.path().join(".venv").exists());
    assert!(!t.path().join("build/env").exists());
    assert!(t.path().join(".git/HEAD").exists());
    assert!(t.path().join("build/.git/config").exists());
}

#[test]
fn context_only_validates_every_root_and_its_dockerignore_before_removing_anything() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            ("good/x.pyc", "b"),
            ("good/__pycache__/m.pyc", "b"),
            ("bad/.dockerignore", "!\n"),
            ("bad/y.pyc", "b"),
        ],
    );
    let o = run_in(t.path(), &["clean", "--context-only", "good", "bad"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(".dockerignore"), "{}", stderr(&o));
    assert!(t.path().join("good/x.pyc").exists(), "good was cleaned");
    assert!(t.path().join("good/__pycache__/m.pyc").exists());
    assert!(t.path().join("bad/y.pyc").exists());
}

#[test]
fn overlapping_roots_are_counted_once() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            ("a/x.pyc", "12"),
            ("a/sub/y.pyc", "345"),
            ("a/sub/__pycache__/z.pyc", "6789"),
        ],
    );
    for args in [
        &["a", "a/sub"][..],
        &["a/sub", "a"][..],
        &["a", "a"][..],
        &["a", "./a/sub/.."][..],
    ] {
        let mut argv = vec!["clean", "--dry-run", "--json"];
        argv.extend(args);
        let v = json(&run_in(t.path(), &argv));
        assert_eq!(
            (v["files"].as_u64(), v["dirs"].as_u64()),
            (Some(3), Some(1)),
            "{args:?}"
        );
        assert_eq!(v["bytes"], 9, "{args:?}");
        let mut argv = vec!["clean", "-n"];
        argv.extend(args);
        let o = run_in(t.path(), &argv);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{args:?}: {lines:?}");
    }
    let o = run_in(t.path(), &["clean", "--json", "a/sub", "a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        (v["files"].as_u64(), v["bytes"].as_u64()),
        (Some(3), Some(9))
    );
    assert!(!t.path().join("a/x.pyc").exists());
}

/// A bind mount made for one test, undone on drop (also when the test fails).
struct BindMount(PathBuf);

impl BindMount {
    fn new(source: &Path, target: &Path) -> BindMount {
        let o = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "mount --bind failed ({}): this test needs root (or CAP_SYS_ADMIN)",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        BindMount(target.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_bind_mount_inside_the_root_is_not_crossed_unless_asked() {
    let t = tmp();
    write_tree(
        t.path(),
        &[
            ("elsewhere/__pycache__/m.cpython-311.pyc", "theirs"),
            ("elsewhere/x.pyc", "theirs"),
            ("root/own.pyc", "ours"),
            ("root/mnt/.keep", ""),
        ],
    );
    let root = t.path().join("root");
    let _mount = BindMount::new(&t.path().join("elsewhere"), &root.join("mnt"));
    // The same filesystem bound elsewhere: st_dev alone cannot tell, the mount id does.
    let o = run_in(&root, &["clean", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.path().join("elsewhere/x.pyc").exists());
    assert!(t
        .path()
        .join("elsewhere/__pycache__/m.cpython-311.pyc")
        .exists());
    assert!(!root.join("own.pyc").exists());
    let v = json(&o);
    assert_eq!(v["roots"][0]["skipped"][0]["path"], "mnt");
    assert_eq!(v["roots"][0]["skipped"][0]["reason"], "other-filesystem");
    let o = run_in(&root, &["clean", "-n"]);
    assert_eq!(stdout(&o), "");
    let o = run_in(&root, &["clean"]);
    assert!(stderr(&o).contains("--cross-filesystems"), "{}", stderr(&o));

    let o = run_in(&root, &["clean", "--cross-filesystems"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!t.path().join("elsewhere/x.pyc").exists());
    assert!(!t.path().join("elsewhere/__pycache__").exists());
}

// ---------------------------------------------------------------------------------------------
// Adversarial: directories swapped for symlinks while `clean` runs.

/// Names under every swapped directory, mirrored by the canary tree outside the root: each is
/// something some rule in the stress runs would remove (bytecode, `--debris all`, `--erase`).
const BAIT: &[(&str, &str)] = &[
    ("__pycache__/m.cpython-311.pyc", "canary"),
    ("__pycache__/m.cpython-311.opt-1.pyc", "canary"),
    ("x.pyc", "canary"),
    ("y.pyo", "canary"),
    (".coverage", "canary"),
    ("coverage.xml", "canary"),
    ("run.log", "canary"),
    (".pytest_cache/v/cache/nodeids", "canary"),
    ("build/out.o", "canary"),
    ("pkg/__pycache__/n.cpython-311.pyc", "canary"),
    ("pkg/mod.egg-info/PKG-INFO", "canary"),
];

/// Every path below `dir` with its type, size and a hash of its content (links: their target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        let what = if md.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if md.is_dir() {
            "dir".to_string()
        } else {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(e.path()).unwrap().hash(&mut h);
            format!("file {} {:x}", md.len(), h.finish())
        };
        out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf(), what);
    }
    out
}

/// Swaps `root/dN` (and `root/dN/pkg`, `root/dN/__pycache__`) for symlinks to the canary tree
/// and back, in a loop, until dropped. `pause` holds the tree in its real shape.
struct Attacker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    gate: std::sync::Arc<std::sync::Mutex<()>>,
    swaps: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const SWAPPED: usize = 12;

impl Attacker {
    fn start(root: &Path, outside: &Path) -> Attacker {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Mutex::new(()));
        let swaps = Arc::new(AtomicU64::new(0));
        let (root, outside) = (root.to_path_buf(), outside.to_path_buf());
        let thread = {
            let (stop, paused, gate, swaps) =
                (stop.clone(), paused.clone(), gate.clone(), swaps.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if paused.load(Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        continue;
                    }
                    let _g = gate.lock().unwrap();
                    n += 1;
                    let i = n % SWAPPED;
                    // Three levels: the top directory, a package, a __pycache__.
                    let (real, target) = match n % 3 {
                        0 => (root.join(format!("d{i}")), outside.clone()),
                        1 => (root.join(format!("d{i}/pkg")), outside.join("pkg")),
                        _ => (
                            root.join(format!("d{i}/__pycache__")),
                            outside.join("__pycache__"),
                        ),
                    };
                    let aside = real.with_file_name(format!(".aside{n}"));
                    if std::fs::rename(&real, &aside).is_err() {
                        continue;
                    }
                    if symlink(&target, &real).is_ok() {
                        swaps.fetch_add(1, Ordering::Relaxed);
                        // Leave the link in place for a moment, sometimes longer.
                        for _ in 0..(n % 7) * 50 {
                            std::hint::spin_loop();
                        }
                        if n % 5 == 0 {
                            std::thread::yield_now();
                        }
                        let _ = std::fs::remove_file(&real);
                    }
                    std::fs::rename(&aside, &real).unwrap();
                }
            })
        };
        Attacker {
            stop,
            paused,
            gate,
            swaps,
            thread: Some(thread),
        }
    }

    /// Runs `f` with every directory back in place and the attacker waiting.
    fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering;
        self.paused.store(true, Ordering::Relaxed);
        let r = {
            let _g = self.gate.lock().unwrap();
            f()
        };
        self.paused.store(false, Ordering::Relaxed);
        r
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `clean_once` in a loop for `budget` while the attacker swaps directories for links to
/// the canary tree; after every run the canary tree must be exactly as it was.
fn swap_stress(name: &str, budget: std::time::Duration, clean_once: &dyn Fn(&Path)) {
    // On tmpfs when there is one: re-creating the bait costs ~100 ms a run on this disk, and
    // more runs mean more races.
    let t = match tempfile::Builder::new()
        .prefix("clean-swap-")
        .tempdir_in("/dev/shm")
    {
        Ok(t) => t,
        Err(_) => tmp(),
    };
    let (root, outside) = (t.path().join("root"), t.path().join("outside"));
    write_tree(&outside, BAIT);
    let before = snapshot(&outside);
    let populate = || {
        for i in 0..SWAPPED {
            let d = root.join(format!("d{i}"));
            write_tree(&d, BAIT);
            std::fs::write(d.join("keep.py"), "").unwrap();
        }
    };
    populate();
    let attacker = Attacker::start(&root, &outside);
    let start = std::time::Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < budget {
        clean_once(&root);
        runs += 1;
        let after = attacker.paused(|| {
            let after = snapshot(&outside);
            populate();
            after
        });
        if after != before {
            let gone: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
            let changed: Vec<_> = before
                .iter()
                .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
                .collect();
            let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            panic!(
                "{name}: run {runs} changed the tree OUTSIDE the root: gone {gone:?}, changed \
                 {changed:?}, added {added:?}"
            );
        }
    }
    let swaps = attacker.swaps.load(std::sync::atomic::Ordering::Relaxed);
    drop(attacker);
    eprintln!("{name}: {runs} runs, {swaps} swaps, outside tree untouched");
    assert!(runs >= 5, "{name}: only {runs} runs in {budget:?}");
    assert!(
        swaps >= 100,
        "{name}: only {swaps} swaps: the attack did not run"
    );
}

const STRESS_ARGS: &[&str] = &[
    "clean", "-q", "--debris", "all", "--erase", "*.log", "--erase", "build/",
];

#[test]
fn swapping_directories_for_symlinks_never_reaches_outside_the_root_binary() {
    swap_stress("binary", std::time::Duration::from_secs(5), &|root| {
        let mut args = STRESS_ARGS.to_vec();
        let r = root.to_str().unwrap();
        args.push(r);
        let o = run_in(root.parent().unwrap(), &args);
        // A run may report entries that changed under it (exit 2), never crash.
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    });
}

fn lib_options(root: &Path, scope: ctxbuild::clean::Scope) -> ctxbuild::clean::CleanOptions {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    ctxbuild::clean::CleanOptions {
        root: root.to_path_buf(),
        rules: ctxbuild::clean::Rules::new(&s(&["all"]), &s(&["*.log", "build/"]), &[], false)
            .unwrap(),
        mode: ctxbuild::clean::Mode::Remove,
        scope,
        walk_threads: 2,
        remove_threads: 8,
        cross_filesystems: false,
    }
}

#[test]
fn swapping_directories_for_symlinks_never_reaches_outside_the_root_library() {
    use ctxbuild::clean::{clean, NoProgress, Scope};
    swap_stress("library", std::time::Duration::from_secs(4), &|root| {
        let _ = clean(&lib_options(root, Scope::Tree), &NoProgress).unwrap();
    });
    swap_stress(
        "library --context-only",
        std::time::Duration::from_secs(3),
        &|root| {
            // The context scan itself may trip over a swap in progress: that is an error, not harm.
            let _ = clean(&lib_options(root, Scope::Context), &NoProgress);
        },
    );
}

/// `ctxbuild ARGS` run in `dir` through the one harness.
fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    TestEnv::at(dir).run(args)
}
