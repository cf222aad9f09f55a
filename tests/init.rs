//! `ctxbuild init` as a user runs it: it writes a ctxbuild.toml that `ctxbuild check` loads,
//! refuses to touch an existing one (byte for byte), prints only JSON with `--json`, and only
//! the file with `--print`.

#[path = "common/apps.rs"]
mod apps;
mod common;

use common::{stderr, stdout, TestEnv};
use std::path::Path;

/// A copy of `tests/apps/NAME` without its hand-written ctxbuild.toml.
fn corpus_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    apps::copy_tree(
        &common::repo_root().join("tests/apps").join(name),
        dir.path(),
    );
    let _ = std::fs::remove_file(dir.path().join("ctxbuild.toml"));
    dir
}

#[test]
fn init_writes_a_config_that_check_loads() {
    let dir = corpus_copy("launcher");
    let o = TestEnv::at(dir.path()).run(&["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("  app           service.api:app  (service/api.py:5, FastAPI)"),
        "{out}"
    );
    assert!(
        out.contains("  dependencies  requirements  (requirements.txt)"),
        "{out}"
    );
    assert!(out.contains("wrote ./ctxbuild.toml"), "{out}");
    assert!(
        out.contains("next: ctxbuild check && ctxbuild image "),
        "{out}"
    );
    let text = std::fs::read_to_string(dir.path().join("ctxbuild.toml")).unwrap();
    assert!(text.contains("\napp = \"service.api:app\"\n"), "{text}");
    let c = TestEnv::at(dir.path()).run(&["check"]);
    assert_eq!(c.status.code(), Some(0), "{}{}", stdout(&c), stderr(&c));
    assert!(stderr(&c).contains("checked 1 service"), "{}", stderr(&c));
}

#[test]
fn a_second_init_leaves_the_file_byte_identical() {
    let dir = corpus_copy("req-no-gunicorn");
    assert!(TestEnv::at(dir.path()).run(&["init"]).status.success());
    let path = dir.path().join("ctxbuild.toml");
    let mut edited = std::fs::read(&path).unwrap();
    edited.extend_from_slice(b"# edited by hand\n");
    std::fs::write(&path, &edited).unwrap();
    let o = TestEnv::at(dir.path()).run(&["init"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("ctxbuild.toml already exists; init never overwrites it"),
        "{err}"
    );
    assert!(
        err.contains("hint: edit it by hand, or run `ctxbuild init --print`"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), edited);
    // --print still shows what init would write, and writes nothing.
    let p = TestEnv::at(dir.path()).run(&["init", "--print"]);
    assert!(p.status.success());
    assert!(stdout(&p).starts_with("# ctxbuild.toml, written by `ctxbuild init`"));
    assert_eq!(std::fs::read(&path).unwrap(), edited);
}

#[test]
fn json_is_the_detection_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    apps::copy_tree(&common::repo_root().join("tests/apps/monorepo"), dir.path());
    std::fs::remove_file(dir.path().join("ctxbuild.toml")).unwrap();
    let o = TestEnv::at(dir.path()).run(&["init", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON only");
    assert_eq!(v["services"][0]["context"], "services/api");
    assert_eq!(v["services"][0]["app"], "api.app:app");
    assert_eq!(v["services"][0]["dependencies"]["source"], "requirements");
    assert_eq!(v["frontends"][0]["context"], "web");
    assert_eq!(v["monorepo"], true);
    assert!(dir.path().join("ctxbuild.toml").is_file());
}

#[test]
fn print_writes_nothing_and_questions_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("requirements.txt", "fastapi\n"),
            ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            (
                "admin.py",
                "from fastapi import FastAPI\nadmin = FastAPI()\n",
            ),
        ],
    );
    let p = TestEnv::at(dir.path()).run(&["init", "--print"]);
    assert!(p.status.success());
    assert!(
        stdout(&p).contains("# QUESTION: 2 ASGI apps"),
        "{}",
        stdout(&p)
    );
    assert!(!dir.path().join("ctxbuild.toml").exists());
    let o = TestEnv::at(dir.path()).run(&["init"]);
    let out = stdout(&o);
    assert!(
        out.contains("question: 2 ASGI apps in .: which one does service"),
        "{out}"
    );
    assert!(
        out.contains("  wrote app = \"admin:admin\"; the others: main:app"),
        "{out}"
    );
}

#[test]
fn lowercase_dockerfile_becomes_the_dockerfile_key() {
    let dir = corpus_copy("lowercase-dockerfile");
    let o = TestEnv::at(dir.path()).run(&["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "  dockerfile    dockerfile (the context's own; written as the `dockerfile` key)"
        ),
        "{}",
        stdout(&o)
    );
    let text = std::fs::read_to_string(dir.path().join("ctxbuild.toml")).unwrap();
    assert!(text.contains("\ndockerfile = \"dockerfile\"\n"), "{text}");
    // `check` now lints that file (its uvicorn CMD is a finding), not the template.
    let c = TestEnv::at(dir.path()).run(&["check"]);
    assert!(
        stdout(&c).contains("dockerfile:6: error[asgi-server]"),
        "{}",
        stdout(&c)
    );
}

#[test]
fn a_dir_that_is_not_a_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestEnv::at(dir.path()).run(&["init", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nope is not a directory"),
        "{}",
        stderr(&o)
    );
    assert!(!Path::new(&dir.path().join("nope/ctxbuild.toml")).exists());
}

/// A FastAPI service that is a member of a uv workspace (`uv init --package` under
/// `[tool.uv.workspace]`, as in uv's own guide): its lock and the sibling package it imports
/// lie above its directory. The template would build `services/api` alone and `pip install`
/// its dependencies from PyPI — `shared` with them, which PyPI does not have (or has as
/// somebody else's package). `init` says so, and `check` refuses before anything builds.
#[test]
fn a_uv_workspace_member_is_named_and_refused_before_it_builds() {
    let dir = corpus_copy("uv-workspace");
    let o = TestEnv::at(dir.path()).run(&["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("service api (python-asgi, context services/api)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o)
            .contains("services/api: `api` is a member of the uv workspace of ./pyproject.toml"),
        "{}",
        stderr(&o)
    );
    let config = std::fs::read_to_string(dir.path().join("ctxbuild.toml")).unwrap();
    assert!(
        config.contains("# NOTE: this context is `api`, a member of the uv workspace"),
        "{config}"
    );
    let context_line = config
        .lines()
        .position(|l| l.starts_with("context = "))
        .unwrap()
        + 1;

    let check = |dir: &Path| {
        let c = TestEnv::at(dir).run(&["check", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&c.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&c), stderr(&c)));
        let found: Vec<serde_json::Value> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "uv-workspace-member")
            .cloned()
            .collect();
        (c.status.code(), found)
    };
    let (code, found) = check(dir.path());
    assert_eq!(code, Some(1));
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["line"], context_line, "{f}");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("depends on the workspace package `shared`"),
        "{message}"
    );
    assert!(message.contains("./pyproject.toml:7"), "{message}");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("uv sync --frozen --no-dev --package api"),
        "{f}"
    );
    // render and image refuse too, with the same words (image before any engine is needed).
    for args in [&["render", "api"][..], &["image", "api"][..]] {
        let o = TestEnv::at(dir.path()).run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("a member of the uv workspace at ./pyproject.toml:7"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // Choosing a source does not help while it depends on a workspace package.
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        config.replace(
            "# dependencies = \"pyproject\"",
            "dependencies = \"pyproject\"",
        ),
    )
    .unwrap();
    assert_eq!(check(dir.path()).1.len(), 1);

    // Without the workspace dependency the member builds like any project (from its own
    // pyproject.toml): not refused, and init says nothing of the workspace.
    let api = dir.path().join("services/api/pyproject.toml");
    let api_text = std::fs::read_to_string(&api).unwrap();
    std::fs::write(&api, api_text.replace(", \"shared\"]", "]")).unwrap();
    let lock = dir.path().join("uv.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(
        &lock,
        text.replacen(
            "    { name = \"fastapi\" },\n    { name = \"shared\" },\n",
            "    { name = \"fastapi\" },\n",
            1,
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("ctxbuild.toml"), &config).unwrap();
    assert_eq!(check(dir.path()).1.len(), 0);
    assert!(TestEnv::at(dir.path())
        .run(&["render", "api"])
        .status
        .success());
    std::fs::remove_file(dir.path().join("ctxbuild.toml")).unwrap();
    let o = TestEnv::at(dir.path()).run(&["init"]);
    assert!(!stderr(&o).contains("uv workspace"), "{}", stderr(&o));
    let again = std::fs::read_to_string(dir.path().join("ctxbuild.toml")).unwrap();
    assert!(!again.contains("uv workspace"), "{again}");
    // Back to the member with its sibling dependency.
    std::fs::write(&api, &api_text).unwrap();
    std::fs::write(&lock, text).unwrap();

    // The service's own Dockerfile (whatever it does) is not the template: not this rule's.
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        config.replace(
            "# dockerfile = \"Dockerfile\"",
            "dockerfile = \"Dockerfile\"",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("services/api/Dockerfile"),
        "FROM python:3.12-slim\nCOPY . .\nRUN pip install .\nCMD [\"gunicorn\", \"api.main:app\"]\n",
    )
    .unwrap();
    assert_eq!(check(dir.path()).1.len(), 0);
}
