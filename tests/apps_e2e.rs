//! The rendered Python template on the real engine, against the realistic apps of `tests/apps/`:
//! each image must build AND start — the app's route answers over HTTP on `$PORT`, `docker top`
//! shows gunicorn running the Uvicorn worker, the log holds no error (no permission error from
//! gunicorn's control socket), and the HEALTHCHECK turns `healthy` even for an app without a
//! `/health` route.
//!
//! Every app renders on the same offline base image, so the layers before the project's own
//! (the pinned server layer in particular) are built once and reused. Each test removes its
//! container and its tag; `rmi --no-prune` keeps the shared parent layers as build cache.

mod common;

use common::{ctxbuild, docker, docker_output, python_image, require_engine, stderr, unique};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A built image and its running container, removed on drop (also when the test fails).
struct Running {
    image: String,
    container: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.container]);
        let _ = docker_output(&["rmi", "--no-prune", &self.image]);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk corpus");
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

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
    let o = ctxbuild(
        dir.path(),
        &[
            "render",
            name,
            "--slim",
            "--base-image",
            &base,
            "-o",
            "Dockerfile",
        ],
    );
    assert!(o.status.success(), "render failed: {}", stderr(&o));
    let image = format!("ctxbuild-apps-e2e/{}", unique(name));
    let running = Running {
        image: image.clone(),
        container: unique(&format!("ctxbuild-apps-e2e-{name}")),
    };
    let b = docker_output(&["build", "-q", "-t", &image, &dir.path().to_string_lossy()]);
    assert!(
        b.status.success(),
        "build of {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&b.stderr)
    );
    docker(&[
        "run",
        "-d",
        "--name",
        &running.container,
        "-e",
        "PORT=8080",
        "-p",
        "127.0.0.1::8080",
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
        &image,
    ]);
    (running, dir)
}

/// `GET path` on the container's published 8080, retried until it answers or 60 s pass.
fn http_get(container: &str, path: &str) -> String {
    let port = docker(&["port", container, "8080/tcp"]);
    let addr = port
        .lines()
        .next()
        .expect("published port")
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(&addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(r) if r.starts_with("HTTP/") => return r,
            _ if Instant::now() > deadline => panic!(
                "{container} never answered on {addr}: {attempt:?}\nlogs:\n{}",
                logs(container)
            ),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn logs(container: &str) -> String {
    let o = docker_output(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_healthy(container: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", container]);
        match status.trim() {
            "healthy" => return,
            "unhealthy" => panic!("{container} turned unhealthy\nlogs:\n{}", logs(container)),
            s if Instant::now() > deadline => {
                panic!(
                    "{container} still {s} after 90 s\nlogs:\n{}",
                    logs(container)
                )
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The checks every app must pass; returns the container for app-specific ones.
fn assert_starts_right(name: &str) -> (Running, tempfile::TempDir) {
    let (running, dir) = build_and_run(name);
    let c = running.container.clone();
    let response = http_get(&c, "/");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(&format!("{{\"app\":\"{name}\"}}")),
        "{response}"
    );
    let top = docker(&["top", &c]);
    assert!(top.contains("gunicorn"), "{top}");
    assert!(top.contains("-k uvicorn_worker.UvicornWorker"), "{top}");
    // A master and two workers.
    assert!(top.matches("gunicorn").count() >= 3, "{top}");
    wait_healthy(&c);
    let log = logs(&c);
    assert!(log.contains("Booting worker"), "{log}");
    for bad in ["error", "permission", "traceback", "warning"] {
        assert!(
            !log.to_lowercase().contains(bad),
            "{name}: `{bad}` in the log:\n{log}"
        );
    }
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
    assert!(
        dockerfile.contains("pip install --no-cache-dir gunicorn==27.0.1 uvicorn-worker==0.4.0\n")
    );
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
