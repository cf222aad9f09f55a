//! The rendered Python template on the real engine, against the realistic apps of `tests/apps/`:
//! each image must build AND start — the app's route answers over HTTP on `$PORT`, `docker top`
//! shows gunicorn running the Uvicorn worker, the log holds no error (no permission error from
//! gunicorn's control socket), and the HEALTHCHECK turns `healthy` even for an app without a
//! `/health` route.
//!
//! Every app renders on the same offline base image, so the layers before the project's own
//! (the pinned server layer in particular) are built once and reused. Each test removes its
//! container and its tag; `rmi --no-prune` keeps the shared parent layers as build cache.

#[path = "common/apps.rs"]
mod apps;
mod common;

use apps::{assert_serves, copy_tree, http_get, Running};
use common::{docker, docker_output, python_image, require_engine, stderr, unique, TestEnv};

/// Renders service `name` of `tests/apps/NAME`, builds it with the classic builder, runs it
/// with `PORT=8080` and a 1-second health interval.
fn build_and_run(name: &str) -> (Running, tempfile::TempDir) {
    require_engine();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &common::repo_root().join("tests/apps").join(name),
        dir.path(),
    );
    let base = python_image();
    let o = TestEnv::at(dir.path()).run(&[
        "render",
        name,
        "--slim",
        "--base-image",
        &base,
        "-o",
        "Dockerfile",
    ]);
    assert!(o.status.success(), "render failed: {}", stderr(&o));
    let image = format!("ctxbuild-apps-e2e/{}", unique(name));
    let b = docker_output(&["build", "-q", "-t", &image, &dir.path().to_string_lossy()]);
    if !b.status.success() {
        let _ = docker_output(&["rmi", "--no-prune", &image]);
        panic!(
            "build of {name} failed:\n{}\n{}",
            String::from_utf8_lossy(&b.stdout),
            String::from_utf8_lossy(&b.stderr)
        );
    }
    let running = Running::start(&image, &unique(&format!("ctxbuild-apps-e2e-{name}")));
    (running, dir)
}

/// The checks every app must pass; returns the container for app-specific ones.
fn assert_starts_right(name: &str) -> (Running, tempfile::TempDir) {
    let (running, dir) = build_and_run(name);
    assert_serves(&running.container, name);
    (running, dir)
}

fn python_in(container: &str, code: &str) -> String {
    docker(&["exec", container, "python", "-c", code])
        .trim()
        .to_string()
}

#[test]
fn requirements_without_gunicorn_and_the_projects_uvicorn_pin_wins() {
    let (r, dir) = assert_starts_right("req-no-gunicorn");
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(
        "pip install --no-cache-dir --no-compile gunicorn==27.0.1 uvicorn-worker==0.4.0\n"
    ));
    assert_eq!(
        python_in(
            &r.container,
            "import uvicorn, gunicorn; print(uvicorn.__version__, gunicorn.__version__)"
        ),
        "0.38.0 27.0.1"
    );
    // The route the project has answers too; the default probe is what passed.
    assert!(http_get(&r.container, "/health").contains("\"ok\""));
}

#[test]
fn fastapi_standard_only() {
    let (r, _dir) = assert_starts_right("fastapi-standard");
    assert_eq!(
        python_in(&r.container, "import os; print(os.environ['HOME'])"),
        "/home/app"
    );
}

#[test]
fn pyproject_only_package_with_src_layout() {
    let (r, _dir) = assert_starts_right("pyproject-src");
    // Installed as a package: importable from anywhere, not only from /app.
    assert_eq!(
        python_in(&r.container, "import os; os.chdir('/'); import shop.api; print(shop.api.__file__.startswith('/usr'))"),
        "True"
    );
}

#[test]
fn uv_locked_installs_the_locked_versions() {
    let (r, dir) = assert_starts_right("uv-locked");
    let lock = std::fs::read_to_string(dir.path().join("uv.lock")).unwrap();
    let fastapi = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"fastapi\""))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map(|l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        })
        .expect("fastapi in uv.lock");
    assert_eq!(
        python_in(
            &r.container,
            "import sys, fastapi; print(sys.prefix, fastapi.__version__)"
        ),
        format!("/opt/venv {fastapi}")
    );
}

#[test]
fn no_health_route_still_turns_healthy() {
    let (r, _dir) = assert_starts_right("no-health");
    assert!(http_get(&r.container, "/health").starts_with("HTTP/1.1 404"));
}
