//! Shared test harness: run the binary, build temporary trees, talk to the real Docker engine.
//!
//! Engine tests never skip: if no daemon answers they fail, with a hint to run `scripts/test.sh`.
//! Each test file uses only some helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// This test process's own cache root: never the user's `~/.cache/ctxbuild`.
fn process_cache_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("cache tempdir"))
        .path()
}

/// The directory a [`TestEnv`] runs in: its own temporary one, or one a test made.
enum Dir {
    Owned(tempfile::TempDir),
    At(PathBuf),
}

/// The one way tests run the `ctxbuild` binary: in a directory, with an isolated cache
/// directory (`CTXBUILD_CACHE_DIR`), `SOURCE_DATE_EPOCH=0`, colour off. A test that needs
/// another environment sets it on [`TestEnv::cmd`]'s `Command`, in plain sight.
pub struct TestEnv {
    dir: Dir,
    cache: PathBuf,
}

impl TestEnv {
    /// A fresh temporary directory; its cache is `.cache/` inside it.
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join(".cache");
        TestEnv {
            dir: Dir::Owned(dir),
            cache,
        }
    }

    /// Runs in `dir`, which the test made (and removes). Its cache lies outside it (so no
    /// listing sees it) and is the same for every `TestEnv::at` the same directory in this
    /// process, as a user's cache is from run to run.
    pub fn at(dir: &Path) -> TestEnv {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::path::absolute(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .hash(&mut h);
        TestEnv {
            dir: Dir::At(dir.to_path_buf()),
            cache: process_cache_dir().join(format!("{:016x}", h.finish())),
        }
    }

    /// Uses `cache` as the cache directory (a test that looks into it, or shares it).
    pub fn with_cache(mut self, cache: &Path) -> TestEnv {
        self.cache = cache.to_path_buf();
        self
    }

    /// The directory (the working directory of every run).
    pub fn path(&self) -> &Path {
        match &self.dir {
            Dir::Owned(d) => d.path(),
            Dir::At(p) => p,
        }
    }

    /// The cache directory every run gets.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Writes `files` (path, contents) under the directory.
    pub fn with(self, files: &[(&str, &str)]) -> TestEnv {
        write_tree(self.path(), files);
        self
    }

    /// `ctxbuild ARGS` ready to run in the directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ctxbuild"));
        c.current_dir(self.path())
            .env("CTXBUILD_CACHE_DIR", &self.cache)
            .env("SOURCE_DATE_EPOCH", "0")
            .env("NO_COLOR", "1")
            .env_remove("CTXBUILD_COLOR")
            .args(args);
        c
    }

    /// Runs `ctxbuild ARGS` in the directory.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ctxbuild")
    }
}

impl Default for TestEnv {
    fn default() -> TestEnv {
        TestEnv::new()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `files` (path, contents) under `root`, creating parent directories.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = root.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, c).expect("write");
    }
}

/// Runs `docker ARGS`, panicking with its stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let o = docker_output(args);
    assert!(
        o.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `docker ARGS` with the classic builder and returns the raw output.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(args)
        .output()
        .expect("run docker")
}

/// Fails the test unless a Docker engine answers. Engine tests never skip.
pub fn require_engine() {
    let o = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output();
    match o {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "no Docker engine answers: {}\nhint: run scripts/test.sh, which starts dockerd",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run docker: {e}\nhint: run scripts/test.sh"),
    }
}

/// The offline busybox base image made by `scripts/base-images.sh`.
pub fn busybox_image() -> String {
    std::env::var("CTXBUILD_TEST_BUSYBOX").unwrap_or_else(|_| "ctxbuild-test/busybox:1".into())
}

/// The offline Python base image made by `scripts/base-images.sh`.
pub fn python_image() -> String {
    std::env::var("CTXBUILD_TEST_PYTHON")
        .unwrap_or_else(|_| "ctxbuild-test/python:3-bookworm".into())
}

/// The loopback registry started by `scripts/registry.sh`.
pub fn registry() -> String {
    std::env::var("CTXBUILD_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// A unique, lowercase name for images and containers made by one test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The repository root (for examples/ and templates/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp dir with `ctxbuild.toml` declaring python service `demo` (context `app/`, holding
/// `main.py`), plus `files`.
pub fn demo_service(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.demo]\nkind = \"python-asgi\"\ncontext = \"app\"\napp = \"main:app\"\n",
            ),
            ("app/main.py", "print('hi')\n"),
        ],
    );
    write_tree(dir.path(), files);
    dir
}

/// Runs `ctxbuild ARGS` in `dir`, its cache (stat cache, saved plans) kept in `dir/.cache`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    TestEnv::at(dir).with_cache(&dir.join(".cache")).run(args)
}

/// A JSON file (a `--report`) as a value.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// (instruction, status) of every step of a `--report`.
pub fn step_statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["instruction"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
