//! Issue 9's path for a newcomer, on the real engine: copy a corpus app, `ctxbuild init`,
//! `ctxbuild check` (exit 0), `ctxbuild image NAME --slim` on the offline base image, run it with
//! `PORT` set — the route answers, gunicorn runs the Uvicorn worker, the container turns
//! healthy and logs no error. Nothing is configured by hand: the file `init` wrote is the one
//! that builds. Each test removes its container and its tag.

#[path = "common/apps.rs"]
mod apps;
mod common;

use apps::{assert_serves, copy_tree, Running};
use common::{python_image, require_engine, stderr, stdout, unique, TestEnv};

/// Runs the whole path for `tests/apps/NAME`; `service` is the name `init` must choose.
fn init_check_image_run(name: &str, service: &str) -> Running {
    require_engine();
    // Under its own name, as a user's checkout is: the root's name is the service's.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&common::repo_root().join("tests/apps").join(name), &dir);
    let _ = std::fs::remove_file(dir.join("ctxbuild.toml"));

    let o = TestEnv::at(&dir).run(&["init", "--json"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
    let detection: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(detection["services"][0]["name"], service, "{detection:#}");

    let c = TestEnv::at(&dir).run(&["check"]);
    assert_eq!(
        c.status.code(),
        Some(0),
        "check:\n{}{}",
        stdout(&c),
        stderr(&c)
    );

    let image = format!("ctxbuild-init-e2e/{}:test", unique(name));
    let base = python_image();
    let b = TestEnv::at(&dir).run(&[
        "image",
        service,
        "--slim",
        "--base-image",
        &base,
        "-t",
        &image,
    ]);
    if !b.status.success() {
        let _ = common::docker_output(&["rmi", "--no-prune", &image]);
        panic!("image {service}:\n{}{}", stdout(&b), stderr(&b));
    }
    Running::start(&image, &unique(&format!("ctxbuild-init-e2e-{name}")))
}

#[test]
fn requirements_without_gunicorn() {
    let r = init_check_image_run("req-no-gunicorn", "req-no-gunicorn");
    assert_serves(&r.container, "req-no-gunicorn");
}

#[test]
fn launcher_main_py_serves_the_package_app() {
    let r = init_check_image_run("launcher", "launcher");
    assert_serves(&r.container, "launcher");
    let top = common::docker(&["top", &r.container]);
    assert!(top.contains("service.api:app"), "{top}");
}

#[test]
fn monorepo_service_context_is_the_subdirectory() {
    let r = init_check_image_run("monorepo", "api");
    assert_serves(&r.container, "monorepo");
    // Only services/api was sent: the frontend is not in the image.
    let ls = common::docker(&["exec", &r.container, "ls", "/app"]);
    assert!(
        ls.contains("api") && !ls.contains("web") && !ls.contains("services"),
        "{ls}"
    );
}

#[test]
fn fastapi_standard_extra_only() {
    let r = init_check_image_run("fastapi-standard", "fastapi-standard");
    assert_serves(&r.container, "fastapi-standard");
}

#[test]
fn pyproject_only_package() {
    let r = init_check_image_run("pyproject-src", "pyproject-src");
    assert_serves(&r.container, "pyproject-src");
}

#[test]
fn uv_locked_project() {
    let r = init_check_image_run("uv-locked", "uv-locked");
    assert_serves(&r.container, "uv-locked");
}

#[test]
fn no_health_route_is_still_healthy() {
    let r = init_check_image_run("no-health", "no-health");
    assert_serves(&r.container, "no-health");
}

/// The two corpus shapes whose own Dockerfile would not start on Cloud Run: `init` keeps their
/// Dockerfile (it writes the `dockerfile` key) and `check` stops them before any build, naming
/// the real cause where it is set — not a false worker error.
fn init_then_check(name: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&common::repo_root().join("tests/apps").join(name), &dir);
    let _ = std::fs::remove_file(dir.join("ctxbuild.toml"));
    let o = TestEnv::at(&dir).run(&["init"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
    let toml = std::fs::read_to_string(dir.join("ctxbuild.toml")).unwrap();
    assert!(toml.contains("\ndockerfile = "), "{toml}");
    let c = TestEnv::at(&dir).run(&["check"]);
    assert_eq!(c.status.code(), Some(1), "{}{}", stdout(&c), stderr(&c));
    stdout(&c)
}

#[test]
fn gunicorn_conf_bind_is_reported_where_it_is_set() {
    let out = init_then_check("gunicorn-conf");
    assert!(out.contains("gunicorn.conf.py:5"), "{out}");
    assert!(
        !out.contains("asgi-server"),
        "the worker is set in the conf: {out}"
    );
}

#[test]
fn lowercase_dockerfile_running_bare_uvicorn_on_a_fixed_port_is_stopped() {
    let out = init_then_check("lowercase-dockerfile");
    assert!(out.contains("dockerfile:"), "{out}");
    assert!(out.contains("8080") || out.contains("PORT"), "{out}");
}
