//! Shared test harness: run the binary, build temporary trees, talk to the real Docker engine.
//!
//! Engine tests never skip: if no daemon answers they fail, with a hint to run `scripts/test.sh`.
//! Each test file uses only some helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cache directory every run of this test process shares unless a [`TestEnv`] gives its
/// own: never the user's `~/.cache/ctxbuild`.
fn process_cache_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("cache tempdir"))
        .path()
}

/// The built `ctxbuild` binary, isolated: its cache directory is this test process's own,
/// `SOURCE_DATE_EPOCH` is unset (tar mtimes 0), colour is off.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ctxbuild"));
    c.env("CTXBUILD_CACHE_DIR", process_cache_dir())
        .env_remove("SOURCE_DATE_EPOCH")
        .env("NO_COLOR", "1")
        .env_remove("CTXBUILD_COLOR");
    c
}

/// A temporary directory to run `ctxbuild` in, with its own cache directory and a fixed
/// `SOURCE_DATE_EPOCH` — the one harness new tests use.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The directory (the working directory of every run).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `files` (path, contents) under the directory.
    pub fn with(self, files: &[(&str, &str)]) -> TestEnv {
        write_tree(self.path(), files);
        self
    }

    /// `ctxbuild ARGS` ready to run in the directory, its cache in `.cache/` there.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.current_dir(self.path())
            .env("CTXBUILD_CACHE_DIR", self.path().join(".cache"))
            .env("SOURCE_DATE_EPOCH", "0")
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

/// Runs `ctxbuild ARGS` in `dir` with colour and progress off.
pub fn ctxbuild(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ctxbuild")
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
