//! `--json` on `render` and `context`: stdout holds exactly one JSON document with its schema
//! tag and the same data the human output comes from; nothing else reaches stdout.

mod common;

use std::process::Command;

fn ctxbuild(dir: &std::path::Path) -> Command {
    common::TestEnv::at(dir).cmd(&[])
}

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("ctxbuild.toml"),
        "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\n",
    )
    .unwrap();
    std::fs::write(d.path().join("main.py"), "app = None\n").unwrap();
    std::fs::write(d.path().join("requirements.txt"), "fastapi\n").unwrap();
    d
}

#[test]
fn render_json_is_the_rendering_and_only_that() {
    let d = project();
    let plain = ctxbuild(d.path()).args(["render", "api"]).output().unwrap();
    assert!(plain.status.success());
    let out = ctxbuild(d.path())
        .args(["render", "api", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON");
    assert_eq!(v["schema"], "ctxbuild.render/v1");
    assert_eq!(v["service"], "api");
    assert_eq!(v["template"], "python-asgi/alpine");
    // The same Dockerfile the plain command prints.
    assert_eq!(
        v["dockerfile"].as_str().unwrap().as_bytes(),
        plain.stdout.as_slice()
    );
    // With -o the file is written and the JSON names it; stdout is still only the JSON.
    let out = ctxbuild(d.path())
        .args(["render", "api", "--json", "-o", "Dockerfile.out"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output"], "Dockerfile.out");
    assert_eq!(
        std::fs::read(d.path().join("Dockerfile.out")).unwrap(),
        plain.stdout
    );
}

#[test]
fn context_json_describes_the_tar_written() {
    let d = project();
    std::fs::write(d.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    let tar = d.path().join("..").join(format!(
        "ctx-{}.tar",
        d.path().file_name().unwrap().to_string_lossy()
    ));
    let out = ctxbuild(d.path())
        .args(["context", ".", "--json", "-o"])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "ctxbuild.context/v1");
    let written = std::fs::metadata(&tar).unwrap().len();
    assert_eq!(v["output_bytes"].as_u64(), Some(written));
    // Dockerfile, main.py, requirements.txt, ctxbuild.toml (.cache is created by the run itself
    // only when keys are cached; the tar holds what the scan saw).
    assert!(v["entries"].as_u64().unwrap() >= 4, "{v}");
    std::fs::remove_file(&tar).unwrap();
    // stdout cannot carry both the tar and the JSON.
    let out = ctxbuild(d.path())
        .args(["context", ".", "--json", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
