//! `ctxbuild image` and the Dockerfile it builds, on the real engine: a `dockerfile` key that
//! leaves the context is injected like a render and the image runs; `-j 1` hashes on one
//! thread; the check gate stops BuildKit-only syntax before the engine builds anything.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it).
#![cfg(feature = "engine-tests")]

mod common;

use common::{docker, docker_output, stderr, TestEnv};

fn service(extra: &str, files: &[(&str, &str)]) -> TestEnv {
    let env = TestEnv::new().with(&[(
        "ctxbuild.toml",
        &format!(
            "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n{extra}"
        ),
    )]);
    common::write_tree(env.path(), files);
    env
}

#[test]
fn a_dockerfile_outside_the_context_builds_and_runs_and_j1_hashes_on_one_thread() {
    common::require_engine();
    let marker = common::unique("outside");
    let env = service(
        "dockerfile = \"../docker/api.Dockerfile\"\n",
        &[
            ("api/main.py", &format!("print('{marker}')\n")),
            (
                "docker/api.Dockerfile",
                &format!(
                    "FROM {}\nCOPY main.py /app/main.py\nCMD [\"cat\", \"/app/main.py\"]\n",
                    common::busybox_image()
                ),
            ),
        ],
    );
    let tag = format!("{marker}:t");
    let o = env.run(&[
        "-v",
        "-j",
        "1",
        "image",
        "api",
        "--no-check",
        "-t",
        &tag,
        "--report",
        "report.json",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("api: building docker/api.Dockerfile (`dockerfile` in ctxbuild.toml)"),
        "{err}"
    );
    assert!(err.contains("on 1 hashing thread\n"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["dockerfile"]["path"], "docker/api.Dockerfile");
    let out = docker(&["run", "--rm", &tag]);
    assert!(out.contains(&marker), "{out}");
    // The injected Dockerfile is hidden from COPY: not in the image.
    let ls = docker(&["run", "--rm", &tag, "ls", "-a", "/app"]);
    assert!(!ls.contains("Dockerfile"), "{ls}");

    let o = env.run(&["-v", "-j", "2", "image", "api", "--no-check", "-t", &tag]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("on 2 hashing threads\n"), "{err}");
    let _ = docker_output(&["rmi", "-f", &tag]);
}

#[test]
fn the_gate_stops_buildkit_only_syntax_before_anything_is_built() {
    common::require_engine();
    let env = service(
        "dockerfile = \"Dockerfile\"\n",
        &[
            (
                "api/main.py",
                "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    return {}\n",
            ),
            ("api/requirements.txt", "fastapi\n"),
        ],
    );
    let o = env.run(&["render", "api"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout)
        .unwrap()
        .replace("\nCOPY . .\n", "\nCOPY --link . .\n");
    common::write_tree(env.path(), &[("api/Dockerfile", &text)]);
    let tag = format!("{}:t", common::unique("gate"));
    let o = env.run(&[
        "-v",
        "--progress",
        "plain",
        "image",
        "api",
        "-t",
        &tag,
        "--builder",
        "classic",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error[builder-syntax] COPY --link"), "{err}");
    // Nothing reached the engine: no connection (its -v line), no upload, no image.
    assert!(!err.contains("(API "), "{err}");
    assert!(!err.contains("sent"), "{err}");
    let inspect = docker_output(&["image", "inspect", &tag]);
    assert!(!inspect.status.success(), "the image exists");

    // Under `auto` the file goes to BuildKit, and this engine's (Docker 20.10) BuildKit does
    // not know `--link` either: refused after asking the engine its version, before any upload.
    let o = env.run(&["-v", "--progress", "plain", "image", "api", "-t", &tag]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("builder: buildkit (auto: line"), "{err}");
    assert!(
        err.contains("COPY --link is unknown to the BuildKit of this engine (API 1.41"),
        "{err}"
    );
    assert!(err.contains("Unknown flag: link"), "{err}");
    assert!(!err.contains("sent"), "{err}");
    let inspect = docker_output(&["image", "inspect", &tag]);
    assert!(!inspect.status.success(), "the image exists");
}
