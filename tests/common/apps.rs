//! Running the images of the realistic apps of `tests/apps/` and proving they start right: the
//! app's route answers over HTTP on `$PORT`, `docker top` shows gunicorn running the Uvicorn
//! worker, the HEALTHCHECK turns `healthy`, the log holds no error. Shared by `apps_e2e.rs`
//! (rendered template, docker build) and `init_e2e.rs` (`init` → `check` → `image`).
//! Include with `#[path = "common/apps.rs"] mod apps;` next to `mod common;`.
#![allow(dead_code)]

use super::common::{docker, docker_output};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// An image and its container, both removed on drop (also when the test fails);
/// `rmi --no-prune` keeps shared parent layers as build cache.
pub struct Running {
    pub image: String,
    pub container: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.container]);
        let _ = docker_output(&["rmi", "--no-prune", &self.image]);
    }
}

impl Running {
    /// Owns `image` (already built) and starts `container` from it with `PORT=8080`, the port
    /// published on loopback and a 1-second health interval.
    pub fn start(image: &str, container: &str) -> Running {
        let running = Running {
            image: image.to_string(),
            container: container.to_string(),
        };
        docker(&[
            "run",
            "-d",
            "--name",
            container,
            "-e",
            "PORT=8080",
            "-p",
            "127.0.0.1::8080",
            "--health-interval",
            "1s",
            "--health-start-period",
            "1s",
            image,
        ]);
        running
    }
}

/// Copies a corpus app (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
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

/// `GET path` on the container's published 8080, retried until it answers or 60 s pass.
pub fn http_get(container: &str, path: &str) -> String {
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

pub fn logs(container: &str) -> String {
    let o = docker_output(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn wait_healthy(container: &str) {
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

/// The checks every app must pass: `/` answers `{"app":"<app>"}`, gunicorn (a master and two
/// workers) runs the Uvicorn worker, the container turns healthy, the log is clean.
pub fn assert_serves(container: &str, app: &str) {
    let response = http_get(container, "/");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(&format!("{{\"app\":\"{app}\"}}")),
        "{response}"
    );
    let top = docker(&["top", container]);
    assert!(top.contains("gunicorn"), "{top}");
    assert!(top.contains("-k uvicorn_worker.UvicornWorker"), "{top}");
    assert!(top.matches("gunicorn").count() >= 3, "{top}");
    wait_healthy(container);
    let log = logs(container);
    assert!(log.contains("Booting worker"), "{log}");
    for bad in ["error", "permission", "traceback", "warning"] {
        assert!(
            !log.to_lowercase().contains(bad),
            "{app}: `{bad}` in the log:\n{log}"
        );
    }
}
