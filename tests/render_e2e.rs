//! On the real engine: the rendered backend Dockerfile builds from the offline Python base image,
//! the container serves `/health` 200 through gunicorn with the Uvicorn worker (seen both in the
//! response and in the process list), and with `PORT` set it listens there instead.
//!
//! pip installs the requirements from PyPI during the build. Everything made here is removed.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it;
// there a missing engine fails the run).
#![cfg(feature = "engine-tests")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Removes the containers and image of one test, even when it fails.
struct Cleanup {
    containers: Vec<String>,
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = common::docker_output(&["rm", "-f", "-v", c]);
        }
        if let Some(i) = &self.image {
            let _ = common::docker_output(&["rmi", "-f", i]);
        }
    }
}

/// Status, lower-cased headers, body.
type Response = (u16, Vec<(String, String)>, String);

/// One HTTP/1.0 GET on loopback.
fn get(port: u16, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {raw:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// Polls `/health` until it answers or `limit` passes.
fn wait_health(
    port: u16,
    container: &str,
    limit: Duration,
) -> (u16, Vec<(String, String)>, String) {
    let start = Instant::now();
    loop {
        match get(port, "/health") {
            Ok(r) => return r,
            Err(e) if start.elapsed() > limit => {
                let logs = common::docker_output(&["logs", container]);
                panic!(
                    "no answer on 127.0.0.1:{port} after {limit:?}: {e}\nlogs:\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The loopback host port Docker mapped to `container_port`.
fn mapped(container: &str, container_port: &str) -> u16 {
    let out = common::docker(&["port", container, container_port]);
    out.lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no loopback mapping for {container_port}: {out}"))
}

#[test]
fn rendered_backend_builds_and_serves_health_through_gunicorn_uvicorn_worker() {
    common::require_engine();
    let root = common::repo_root();
    let base = common::python_image();
    let mut cleanup = Cleanup {
        containers: Vec::new(),
        image: None,
    };

    // A copy of the example, so nothing the build or Python writes lands in the repo.
    let ctx = tempfile::tempdir().unwrap();
    for f in ["main.py", "requirements.txt", ".dockerignore"] {
        std::fs::copy(root.join("examples/backend").join(f), ctx.path().join(f)).unwrap();
    }
    let dockerfile = ctx.path().join("Dockerfile");
    let o = common::TestEnv::at(&root).run(&[
        "render",
        "backend",
        "--alpine",
        "--base-image",
        &base,
        "-o",
        dockerfile.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "render failed: {}", common::stderr(&o));
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains(&format!("\nFROM {base}\n")));
    assert!(
        !text.contains("apk"),
        "no system packages, so no apk in the alpine template:\n{text}"
    );

    let image = common::unique("ctxbuild-test-render-backend");
    cleanup.image = Some(image.clone());
    let build = common::docker_output(&["build", "-q", "-t", &image, ctx.path().to_str().unwrap()]);
    assert!(
        build.status.success(),
        "docker build failed:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    // Default port: 8080.
    let c1 = common::unique("ctxbuild-test-render-c");
    cleanup.containers.push(c1.clone());
    common::docker(&["run", "-d", "--name", &c1, "-p", "127.0.0.1::8080", &image]);
    let port = mapped(&c1, "8080/tcp");
    let (status, headers, body) = wait_health(port, &c1, Duration::from_secs(60));
    assert_eq!(status, 200, "{body}");
    let server = headers
        .iter()
        .find(|(k, _)| k == "server")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        server,
        Some("uvicorn"),
        "the Uvicorn worker answers: {headers:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["server"], "gunicorn", "{body}");
    assert_eq!(json["worker"], "uvicorn_worker.UvicornWorker", "{body}");

    // The process list: gunicorn is PID 1's program (the `exec` worked, no shell left) and
    // runs the Uvicorn worker class, master plus two workers.
    let top = common::docker(&["top", &c1]);
    let gunicorn_lines: Vec<&str> = top.lines().filter(|l| l.contains("gunicorn")).collect();
    assert!(
        gunicorn_lines.len() >= 3,
        "master + 2 workers expected:\n{top}"
    );
    assert!(
        gunicorn_lines
            .iter()
            .all(|l| l.contains("-k uvicorn_worker.UvicornWorker")),
        "{top}"
    );
    assert!(
        !top.contains("sh -c"),
        "the shell should have exec'd gunicorn:\n{top}"
    );

    // Non-root, and the HEALTHCHECK command works without curl.
    assert_eq!(common::docker(&["exec", &c1, "id", "-u"]).trim(), "10001");
    let test = common::docker(&[
        "inspect",
        "--format",
        "{{json .Config.Healthcheck.Test}}",
        &image,
    ]);
    let test: Vec<String> = serde_json::from_str(test.trim()).unwrap();
    assert_eq!(test[0], "CMD");
    let mut exec = vec!["exec".to_string(), c1.clone()];
    exec.extend(test[1..].iter().cloned());
    let args: Vec<&str> = exec.iter().map(String::as_str).collect();
    let hc = common::docker_output(&args);
    assert!(
        hc.status.success(),
        "healthcheck failed: {}",
        String::from_utf8_lossy(&hc.stderr)
    );

    // PORT=9090: it listens there, and no longer on 8080.
    let c2 = common::unique("ctxbuild-test-render-c");
    cleanup.containers.push(c2.clone());
    common::docker(&[
        "run",
        "-d",
        "--name",
        &c2,
        "-e",
        "PORT=9090",
        "-p",
        "127.0.0.1::9090",
        "-p",
        "127.0.0.1::8080",
        &image,
    ]);
    let p9090 = mapped(&c2, "9090/tcp");
    let (status, _, body) = wait_health(p9090, &c2, Duration::from_secs(60));
    assert_eq!(status, 200, "{body}");
    let p8080 = mapped(&c2, "8080/tcp");
    assert!(
        !matches!(get(p8080, "/health"), Ok((200, _, _))),
        "with PORT=9090 nothing should answer on 8080"
    );
    let top = common::docker(&["top", &c2]);
    assert!(top.contains("--bind 0.0.0.0:9090"), "{top}");
}
