//! Which Dockerfile each command uses, said by every command and never contradicting
//! `ctxbuild.toml`; `--base-image` refused where it would be ignored; the `image` gate stopping
//! builder-only syntax before the engine is even asked; `-f` and `--since` that are not regular
//! files failing at once; `SOURCE_DATE_EPOCH=garbage` an error for `context` and `image`.
//! No engine needed: every `image` run here points at a socket that does not exist, so reaching
//! the engine would be exit 3.

mod common;

use common::{stderr, TestEnv};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const NO_ENGINE: &str = "unix:///nonexistent/ctxbuild-wire9.sock";

/// A FastAPI service `api` whose context holds a Dockerfile; `extra` is appended to its table.
fn project(extra: &str) -> TestEnv {
    TestEnv::new().with(&[
        (
            "ctxbuild.toml",
            &format!(
                "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n{extra}"
            ),
        ),
        (
            "api/main.py",
            "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    return {}\n",
        ),
        ("api/requirements.txt", "fastapi\n"),
        ("api/Dockerfile", "FROM python:3.12-alpine\nCOPY . /app\n"),
    ])
}

/// Runs with a deadline: a read that blocks on a FIFO fails the test instead of hanging it.
fn run_within(env: &TestEnv, args: &[&str], secs: u64) -> Output {
    let mut child = env
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctxbuild {} did not finish within {secs}s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn context_commands_say_which_dockerfile_and_flag_a_different_choice_in_ctxbuild_toml() {
    // No `dockerfile` key: ctxbuild.toml builds the render; `docker build api` reads the file.
    let env = project("");
    for args in [
        vec!["ls", "api"],
        vec!["plan", "api"],
        vec!["context", "api", "-o", "ctx.tar"],
    ] {
        let o = env.run(&args);
        let err = stderr(&o);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("using api/Dockerfile (docker's default in api)"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(
                "warning: ctxbuild.toml makes service `api` build <rendered python-asgi/alpine>"
            ),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("`ctxbuild image api` builds it"),
            "{args:?}: {err}"
        );
    }
    // explain says it too.
    assert!(env
        .run(&["plan", "api", "--save", "p.json"])
        .status
        .success());
    let err = stderr(&env.run(&["explain", "api", "--since", "p.json"]));
    assert!(
        err.contains("using api/Dockerfile (docker's default"),
        "{err}"
    );

    // The key names the same file: nothing to warn about; a different -f is named.
    let env = project("dockerfile = \"Dockerfile\"\n");
    let err = stderr(&env.run(&["ls", "api"]));
    assert!(err.contains("using api/Dockerfile"), "{err}");
    assert!(!err.contains("warning:"), "{err}");
    common::write_tree(env.path(), &[("other.Dockerfile", "FROM scratch\n")]);
    let err = stderr(&env.run(&["plan", "api", "-f", "other.Dockerfile"]));
    assert!(err.contains("using other.Dockerfile (-f)"), "{err}");
    assert!(
        err.contains("pass `-f api/Dockerfile` to read that one here"),
        "{err}"
    );
}

#[test]
fn plan_json_names_the_dockerfile() {
    let env = project("");
    let o = env.run(&["plan", "api", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["dockerfile"], "Dockerfile");
}

#[test]
fn base_image_is_refused_for_a_dockerfile_of_the_users() {
    let env = project("dockerfile = \"Dockerfile\"\n");
    let o = env.run(&["image", "api", "--base-image", "my/base:1", "-H", NO_ENGINE]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: --base-image applies only to the rendered template, and this build uses api/Dockerfile"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    // With a FROM that reads a build argument, the hint names it.
    common::write_tree(
        env.path(),
        &[(
            "api/Dockerfile",
            "ARG BASE=python:3.12-alpine\nFROM ${BASE}\nCOPY . /app\n",
        )],
    );
    let err = stderr(&env.run(&["image", "api", "--base-image", "my/base:1", "-H", NO_ENGINE]));
    assert!(
        err.contains("pass `--build-arg BASE=my/base:1` instead"),
        "{err}"
    );
    // A render takes it: the run goes on to the engine (exit 3 here, not 2).
    let env = project("");
    let o = env.run(&["image", "api", "--base-image", "my/base:1", "-H", NO_ENGINE]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn the_gate_stops_buildkit_syntax_before_the_engine_is_asked() {
    let env = project("dockerfile = \"Dockerfile\"\n");
    // The rendered template is clean; `COPY --link` is the only problem.
    let o = env.run(&["render", "api"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("\nCOPY . .\n"), "{text}");
    let text = text.replace("\nCOPY . .\n", "\nCOPY --link . .\n");
    common::write_tree(env.path(), &[("api/Dockerfile", &text)]);
    // Under `auto` the file is built with BuildKit: the gate lets it through to the engine.
    let o = env.run(&["image", "api", "-H", NO_ENGINE]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = env.run(&[
        "-v",
        "image",
        "api",
        "--builder",
        "classic",
        "-H",
        NO_ENGINE,
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("api: building api/Dockerfile (`dockerfile` in ctxbuild.toml)"),
        "{err}"
    );
    assert!(
        err.contains("found 1 error in service `api`; not building"),
        "{err}"
    );
    assert!(err.contains("error[builder-syntax] COPY --link"), "{err}");
    assert!(!err.contains("cannot reach the Docker engine"), "{err}");
    // --no-check lets it through to the engine (which does not answer here).
    let o = env.run(&[
        "image",
        "api",
        "--builder",
        "classic",
        "--no-check",
        "-H",
        NO_ENGINE,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn a_dockerfile_or_saved_plan_that_is_not_a_regular_file_fails_at_once() {
    let env = project("dockerfile = \"Dockerfile\"\n");
    let fifo = env.path().join("fifo.df");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for args in [
        vec!["ls", "api", "-f", "fifo.df"],
        vec!["plan", "api", "-f", "fifo.df"],
        vec!["context", "api", "-f", "fifo.df", "-o", "ctx.tar"],
        vec!["image", "api", "-f", "fifo.df", "-H", NO_ENGINE],
        vec!["explain", "api", "--since", "fifo.df"],
        vec!["explain", "api", "--since", "/dev/zero"],
    ] {
        let o = run_within(&env, &args, 20);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("is a FIFO, not a regular file")
                || err.contains("is a character device, not a regular file"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_garbage_source_date_epoch_is_an_error_for_context_and_image() {
    let env = project("dockerfile = \"Dockerfile\"\n");
    for args in [
        vec!["context", "api", "-o", "ctx.tar"],
        vec!["image", "api", "-H", NO_ENGINE],
    ] {
        let o = env
            .cmd(&args)
            .env("SOURCE_DATE_EPOCH", "garbage")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("SOURCE_DATE_EPOCH=\"garbage\" is not a number"),
            "{args:?}: {err}"
        );
    }
    assert!(!env.path().join("ctx.tar").exists());
}

#[test]
fn a_committed_render_in_the_context_is_not_flagged_as_another_dockerfile() {
    let env = project("");
    // What `ctxbuild render api -o api/Dockerfile` writes: the template's own build.
    let o = env.run(&["render", "api", "-o", "api/Dockerfile"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["ls", "api"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("not what this command reads"),
        "{}",
        stderr(&o)
    );
    // A hand-written one still is.
    std::fs::write(env.path().join("api/Dockerfile"), "FROM scratch\n").unwrap();
    let o = env.run(&["ls", "api"]);
    assert!(
        stderr(&o).contains("not what this command reads"),
        "{}",
        stderr(&o)
    );
}
