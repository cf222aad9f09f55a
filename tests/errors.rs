//! Snapshots of what a person sees when things go wrong, for the main failure families: a bad
//! `ctxbuild.toml`, a bad `.dockerignore`, an unreachable engine, a bad `-t`, a failing `RUN`.
//! Each snapshot holds the exit code and stderr (temporary paths and ids replaced).

mod common;

use common::TestEnv;

const SERVICE: &str =
    "[services.bb]\nkind = \"python-asgi\"\ncontext = \"bb\"\napp = \"main:app\"\ndockerfile = \"Dockerfile\"\n";

/// Exit code and stderr, with the parts that change from run to run replaced.
fn shown(env: &TestEnv, args: &[&str]) -> String {
    let o = env.run(args);
    let mut err = common::stderr(&o).replace(&env.path().display().to_string(), "[DIR]");
    // Container and image ids, and timings, differ per run.
    let re = regex::Regex::new(r"\b[0-9a-f]{12,64}\b|\d+\.\d+s").unwrap();
    err = re.replace_all(&err, "[..]").into_owned();
    format!("exit {}\n{err}", o.status.code().unwrap_or(-1))
}

#[test]
fn bad_config() {
    let env = TestEnv::new().with(&[(
        "ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\nworkers = \"two\"\n",
    )]);
    insta::assert_snapshot!(shown(&env, &["check"]));
}

#[test]
fn bad_dockerignore() {
    let env = TestEnv::new().with(&[("ctx/.dockerignore", "*.pyc\n!\n"), ("ctx/a.py", "")]);
    insta::assert_snapshot!(shown(&env, &["ls", "ctx"]));
}

#[test]
fn unreachable_engine() {
    let env = TestEnv::new().with(&[
        ("ctxbuild.toml", SERVICE),
        ("bb/Dockerfile", "FROM scratch\n"),
    ]);
    insta::assert_snapshot!(shown(
        &env,
        &[
            "image",
            "bb",
            "--no-check",
            "-H",
            "unix:///nonexistent/ctxbuild-test.sock"
        ]
    ));
}

#[test]
fn bad_tag() {
    let env = TestEnv::new().with(&[
        ("ctxbuild.toml", SERVICE),
        ("bb/Dockerfile", "FROM scratch\n"),
    ]);
    insta::assert_snapshot!(shown(&env, &["image", "bb", "-t", "Bad Tag"]));
}

#[test]
#[cfg_attr(
    not(feature = "engine-tests"),
    ignore = "engine test: run with --features engine-tests (scripts/test.sh does)"
)]
fn failing_run() {
    common::require_engine();
    let df = format!(
        "FROM {}\nRUN echo about to fail && exit 7\n",
        common::busybox_image()
    );
    let env = TestEnv::new().with(&[("ctxbuild.toml", SERVICE), ("bb/Dockerfile", &df)]);
    let tag = format!("{}:t", common::unique("snapfail"));
    let text = shown(
        &env,
        &[
            "--progress",
            "none",
            "image",
            "bb",
            "--no-check",
            "-t",
            &tag,
        ],
    )
    .replace(&common::busybox_image(), "[BUSYBOX]");
    insta::assert_snapshot!(text);
}
