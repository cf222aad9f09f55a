//! Writing results: only a reader that went away (a broken pipe) is graceful. Any other write
//! error on stdout — `/dev/full` here — fails the run with its cause, including one that only
//! shows when the buffered output is flushed at the end.

mod common;

use common::TestEnv;
use std::process::{Output, Stdio};

fn to_dev_full(env: &TestEnv, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    env.cmd(args)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .expect("run ctxbuild")
}

fn assert_fails_with_cause(o: &Output, what: &str) {
    let err = common::stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains("No space left on device"), "{what}: {err}");
}

fn small_context() -> TestEnv {
    TestEnv::new().with(&[
        ("ctx/app.py", "print(1)\n"),
        ("ctx/Dockerfile", "FROM scratch\n"),
    ])
}

#[test]
fn ls_to_a_full_disk_fails() {
    // A few lines: they sit in the buffer until the final flush, whose error must count.
    let env = small_context();
    assert_fails_with_cause(&to_dev_full(&env, &["ls", "ctx"]), "ls");
    assert!(common::stderr(&to_dev_full(&env, &["ls", "ctx"])).contains("cannot write to stdout"));
}

#[test]
fn context_tar_to_a_full_disk_fails() {
    let env = small_context();
    // Bigger than any buffer: the failure comes from the tar writer itself.
    common::write_tree(
        &env.path().join("ctx"),
        &[("big.bin", &"x".repeat(200_000))],
    );
    assert_fails_with_cause(
        &to_dev_full(&env, &["context", "ctx", "-o", "-"]),
        "context",
    );
}

#[test]
fn check_json_to_a_full_disk_fails() {
    let env = TestEnv::new().with(&[
        (
            "ctxbuild.toml",
            "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n",
        ),
        ("api/main.py", "app = None\n"),
        (
            "api/requirements.txt",
            "fastapi\ngunicorn\nuvicorn-worker\n",
        ),
    ]);
    let o = to_dev_full(&env, &["check", "--json"]);
    assert_ne!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert_ne!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert_fails_with_cause(&o, "check --json");
}
