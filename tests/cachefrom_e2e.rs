//! `ctxbuild image --cache-from` on the real engine, as on a cold Cloud Build worker: build and
//! push, remove the image and its layers locally, rebuild with `--cache-from` from the loopback
//! registry and a fresh ctxbuild cache — every step is served from the cache image (and says
//! so); after a one-file edit the report names the file from the plan the image carries; a
//! cache image that cannot be pulled is a warning, not a failure.
#![cfg(feature = "engine-tests")]

mod common;
#[path = "common/engine.rs"]
mod engine_helpers;

use engine_helpers::rmi;
use std::path::Path;

/// Runs `ctxbuild ARGS` in `dir` with the ctxbuild cache (plans, stat cache) in `cache`.
fn ctxb(dir: &Path, cache: &str, args: &[&str]) -> std::process::Output {
    common::TestEnv::at(dir)
        .with_cache(&dir.join(cache))
        .cmd(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// (instruction, status, cache origin) of every step.
fn steps(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["instruction"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["cache"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_cold_builder_takes_every_step_from_the_cache_image_and_explains_its_first_miss() {
    common::require_engine();
    let marker = common::unique("cachefrom");
    let repo = format!("{}/ctxbuild-e2e/{marker}", common::registry());
    let tag = format!("{repo}:latest");
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.demo]\nkind = \"python-asgi\"\ncontext = \"app\"\napp = \"main:app\"\n",
            ),
            ("app/main.py", &format!("# {marker}\n")),
            ("app/lib.py", "X = 1\n"),
            (
                "cf.Dockerfile",
                &format!(
                    "FROM {}\nRUN echo {marker} > /built\nCOPY lib.py /app/lib.py\nCOPY main.py /app/main.py\nCMD [\"cat\", \"/app/main.py\"]\n",
                    common::busybox_image()
                ),
            ),
        ],
    );
    let build = |cache: &str, extra: &[&str]| {
        let mut args = vec![
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "cf.Dockerfile",
            "--no-check",
            "-t",
            &tag,
            "--report",
            "r.json",
        ];
        args.extend_from_slice(extra);
        let o = ctxb(dir.path(), cache, &args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        (o, common::read_json(&dir.path().join("r.json")))
    };

    // A warm builder builds and pushes.
    let (_, first) = build("cache-a", &["--push"]);
    let pushed_id = first["image_id"].as_str().unwrap().to_string();
    let _cleanup = Rmi(vec![tag.clone(), pushed_id.clone()]);
    // The cold builder: the image and its layers are gone (`docker rmi` prunes the untagged
    // step images), the ctxbuild cache is empty.
    rmi(&[&tag]);
    let gone = common::docker_output(&["image", "inspect", &pushed_id]);
    assert!(!gone.status.success(), "the image is still on the engine");

    let (o, cold) = build("cache-b", &["--cache-from", &tag]);
    let rows = steps(&cold);
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (instruction, status, origin) in &rows[1..] {
        assert_eq!(status, "CACHED", "{instruction}: {rows:?}");
        assert_eq!(origin, "cache-from", "{instruction}: {rows:?}");
    }
    assert_eq!(cold["image_id"].as_str().unwrap(), pushed_id);
    assert_eq!(cold["cache_from"][0]["reference"].as_str().unwrap(), tag);
    let out = common::stdout(&o);
    assert!(out.contains("CACHE-FROM"), "{out}");
    assert!(out.contains("5 from --cache-from"), "{out}");
    assert!(common::stderr(&o).contains(&format!("pulling cache image {tag}")));

    // One edited file on another fresh builder: the reason names it, from the image's label.
    common::write_tree(
        dir.path(),
        &[("app/main.py", &format!("# {marker} edited\n"))],
    );
    let (o, edited) = build("cache-c", &["--cache-from", &tag]);
    let rows = steps(&edited);
    assert_eq!(rows[2].1, "CACHED", "{rows:?}");
    assert_eq!(rows[3].1, "BUILT", "{rows:?}");
    let reason = &edited["rebuild_reason"];
    assert_eq!(reason["step"], 4, "{reason}");
    assert_eq!(reason["changes"][0], "main.py content changed", "{reason}");
    assert!(common::stdout(&o).contains("main.py content changed"));

    // A cache image that does not exist is a warning; the build goes on.
    let absent = format!("{repo}-absent:1");
    // With --json, stdout is nothing but the result (buildx metadata keys + the report).
    // --force: nothing changed since the last build, which would otherwise be a no-op build
    // that never looks at the cache image.
    let (o, report) = build("cache-c", &["--cache-from", &absent, "--json", "--force"]);
    let err = common::stderr(&o);
    assert!(
        err.contains(&format!(
            "cache image {absent} unavailable, building without it"
        )),
        "{err}"
    );
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(result["schema"], "ctxbuild.image/v1");
    assert_eq!(result["containerimage.config.digest"], report["image_id"]);
    assert_eq!(result["image.name"].as_str().unwrap(), tag);
    assert_eq!(result["report"], report);
}

/// Removes the test's images however the test ends.
struct Rmi(Vec<String>);

impl Drop for Rmi {
    fn drop(&mut self) {
        let refs: Vec<&str> = self.0.iter().map(String::as_str).collect();
        rmi(&refs);
    }
}
