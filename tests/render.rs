//! Templates and `ctxbuild render`: snapshots of every template variant, and the command's
//! behaviour on the repo's own ctxbuild.toml and on bad configurations.

mod common;

use ctxbuild::python::servers::{Server, PINS};
use ctxbuild::python::{DependencySource, InstallPlan, Pin};
use ctxbuild::service::render::{render_with, Variant};
use ctxbuild::service::Config;
use std::path::Path;

fn service(toml: &str) -> ctxbuild::service::Service {
    let c = Config::parse(Path::new("ctxbuild.toml"), toml).expect("valid config");
    c.services[0].clone()
}

const PY: &str = "[services.api]\nkind = \"python-asgi\"\napp = \"app.main:app\"\n";
const PY_PACKAGES: &str = "[services.api]\nkind = \"python-asgi\"\napp = \"app.main:app\"\nport = 8000\nworkers = 4\ntimeout = 120\nrequirements = \"requirements/prod.txt\"\nsystem_packages = [\"gcc\", \"musl-dev\", \"libffi-dev\"]\nruntime_packages = [\"libpq\"]\nhealth_path = \"/healthz\"\n";
const NODE: &str = "[services.web]\nkind = \"node\"\nbuild_output = \".next/standalone\"\n";

fn snap(toml: &str, variant: Variant, base: Option<&str>, plan: Option<&InstallPlan>) -> String {
    render_with(&service(toml), variant, base, plan)
        .expect("renders")
        .dockerfile
}

/// A plan adding `servers` (the rest the project installs itself).
fn plan(
    source: DependencySource,
    file: Option<&str>,
    servers: &[Server],
    install_project: bool,
) -> InstallPlan {
    InstallPlan {
        source,
        requirements_file: file.map(str::to_string),
        servers: PINS
            .iter()
            .filter(|(s, _)| servers.contains(s))
            .map(|(s, v)| Pin {
                package: s.package(),
                version: v,
            })
            .collect(),
        install_project,
    }
}

#[test]
fn python_alpine() {
    insta::assert_snapshot!(snap(PY, Variant::Alpine, None, None));
}

#[test]
fn python_alpine_with_packages() {
    let p = plan(
        DependencySource::Requirements,
        Some("requirements/prod.txt"),
        &[Server::Gunicorn],
        false,
    );
    insta::assert_snapshot!(snap(PY_PACKAGES, Variant::Alpine, None, Some(&p)));
}

#[test]
fn python_slim() {
    insta::assert_snapshot!(snap(PY, Variant::Slim, None, None));
}

#[test]
fn python_slim_with_packages_pyproject_package() {
    let p = plan(
        DependencySource::Pyproject,
        None,
        &[Server::Gunicorn, Server::UvicornWorker, Server::Uvicorn],
        true,
    );
    insta::assert_snapshot!(snap(PY_PACKAGES, Variant::Slim, None, Some(&p)));
}

#[test]
fn python_slim_uv_lock() {
    let p = plan(
        DependencySource::Uv,
        None,
        &[Server::Gunicorn, Server::UvicornWorker],
        false,
    );
    insta::assert_snapshot!(snap(PY, Variant::Slim, None, Some(&p)));
}

#[test]
fn python_alpine_base_image_override() {
    insta::assert_snapshot!(snap(
        PY,
        Variant::Alpine,
        Some("ctxbuild-test/python:3-bookworm"),
        None
    ));
}

#[test]
fn node_alpine() {
    insta::assert_snapshot!(snap(NODE, Variant::Alpine, None, None));
}

#[test]
fn node_slim() {
    insta::assert_snapshot!(snap(NODE, Variant::Slim, None, None));
}

#[test]
fn dockerignore() {
    insta::assert_snapshot!(ctxbuild::service::render::dockerignore(
        ctxbuild::service::Kind::PythonAsgi
    ));
}

#[test]
fn committed_example_dockerfiles_are_fresh_renders() {
    let root = common::repo_root();
    for svc in ["backend", "frontend"] {
        let o = common::TestEnv::at(&root).run(&["render", svc, "--alpine"]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let committed =
            std::fs::read_to_string(root.join("examples").join(svc).join("Dockerfile")).unwrap();
        assert_eq!(
            common::stdout(&o),
            committed,
            "examples/{svc}/Dockerfile is stale: re-render it"
        );
    }
}

#[test]
fn render_adds_only_the_servers_the_project_lacks() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", "[services.old]\nkind = \"python-asgi\"\napp = \"main:app\"\ncontext = \"old\"\n[services.new]\nkind = \"python-asgi\"\napp = \"main:app\"\ncontext = \"new\"\n"),
            ("old/requirements.txt", "fastapi\ngunicorn\nuvicorn\n"),
            ("new/requirements.txt", "fastapi\ngunicorn\nuvicorn\nuvicorn-worker\n"),
        ],
    );
    // gunicorn + uvicorn listed: only uvicorn-worker is added, and its worker class runs.
    let old = common::stdout(&common::TestEnv::at(dir.path()).run(&["render", "old"]));
    assert!(
        old.contains(
            "\nRUN python -m pip install --no-cache-dir --no-compile uvicorn-worker==0.4.0\n"
        ),
        "{old}"
    );
    assert!(old.contains("-k uvicorn_worker.UvicornWorker "), "{old}");
    // Every server listed: no server layer at all.
    let new = common::stdout(&common::TestEnv::at(dir.path()).run(&["render", "new", "--slim"]));
    assert!(!new.contains("=="), "{new}");
    assert!(new.contains("-k uvicorn_worker.UvicornWorker "), "{new}");
    assert!(new.contains("FROM python:3.12-slim\n"));
}

#[test]
fn render_writes_file_and_dockerignore_once() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\ncontext = \"api\"\n",
            ),
            ("api/requirements.txt", "fastapi\n"),
        ],
    );
    let o = common::TestEnv::at(dir.path()).run(&[
        "render",
        "api",
        "-o",
        "api/Dockerfile",
        "--write-dockerignore",
        "--base-image",
        "local/py:1",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(common::stdout(&o).is_empty());
    let df = std::fs::read_to_string(dir.path().join("api/Dockerfile")).unwrap();
    assert!(df.contains("\nFROM local/py:1\n"));
    // The header's re-render command keeps the override, so following it reproduces the file.
    assert!(
        df.lines()
            .next()
            .unwrap()
            .contains("`ctxbuild render api --alpine --base-image local/py:1`"),
        "{df}"
    );
    let again = common::TestEnv::at(dir.path()).run(&[
        "render",
        "api",
        "--alpine",
        "--base-image",
        "local/py:1",
    ]);
    assert_eq!(common::stdout(&again), df);
    // And `check` sees it as a fresh render, not a stale one.
    let o = common::TestEnv::at(dir.path()).run(&["check", "--json"]);
    assert!(
        !common::stdout(&o).contains("generated-stale"),
        "{}",
        common::stdout(&o)
    );
    let ignore = std::fs::read_to_string(dir.path().join("api/.dockerignore")).unwrap();
    assert!(ignore.contains("**/__pycache__\n"));
    // An existing .dockerignore is never overwritten.
    std::fs::write(dir.path().join("api/.dockerignore"), "mine\n").unwrap();
    let o = common::TestEnv::at(dir.path()).run(&["render", "api", "--write-dockerignore"]);
    assert!(o.status.success());
    assert!(
        common::stderr(&o).contains("exists"),
        "{}",
        common::stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("api/.dockerignore")).unwrap(),
        "mine\n"
    );
}

#[test]
fn unknown_key_is_reported_with_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[(
            "ctxbuild.toml",
            "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\nwokers = 2\n",
        )],
    );
    let o = common::TestEnv::at(dir.path()).run(&["render", "api"]);
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(
        err.contains("error: ctxbuild.toml:4:1: unknown key `wokers`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `workers`?"), "{err}");
}

#[test]
fn bad_value_is_reported_with_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[(
            "conf/services.toml",
            "[services.api]\nkind = \"python-asgi\"\napp = \"main\"\n",
        )],
    );
    let o = common::TestEnv::at(dir.path()).run(&["check", "-c", "conf/services.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(
        err.contains("error: conf/services.toml:3:7: `app = \"main\"` is not `module:attr`"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn unknown_service_and_missing_config() {
    let root = common::repo_root();
    let o = common::TestEnv::at(&root).run(&["render", "backnd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("hint: did you mean `backend`?"),
        "{}",
        common::stderr(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let o = common::TestEnv::at(dir.path()).run(&["render", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("cannot read ctxbuild.toml"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn check_trusts_the_servers_the_render_installs() {
    // Projects listing neither gunicorn nor uvicorn-worker, one with no requirements file at all:
    // the render installs both, so `check` must not report them missing.
    for app in ["req-no-gunicorn", "pyproject-src", "uv-locked", "no-health"] {
        let dir = common::repo_root().join("tests/apps").join(app);
        let o = common::TestEnv::at(&dir).run(&["check", "--json"]);
        let out = common::stdout(&o);
        assert!(!out.contains("asgi-server"), "{app}: {out}");
        assert!(!out.contains("requirements-missing"), "{app}: {out}");
    }
}

#[test]
fn bytecode_is_compiled_at_build_time_unless_opted_out() {
    let on = snap(PY, Variant::Slim, None, None);
    // Once for the dependencies (cached with them), once for the code after COPY.
    assert_eq!(
        on.matches("--invalidation-mode unchecked-hash").count(),
        2,
        "{on}"
    );
    assert!(on.contains("PYTHONDONTWRITEBYTECODE=1"));
    let off = snap(
        &format!("{PY}compile_bytecode = false\n"),
        Variant::Slim,
        None,
        None,
    );
    assert!(!off.contains("compileall"), "{off}");
    assert!(off.contains("PYTHONDONTWRITEBYTECODE=1"));
    let bad = Config::parse(
        Path::new("ctxbuild.toml"),
        &format!("{PY}compile_bytecode = \"no\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("ctxbuild.toml:4"), "{bad}");
}

/// The BuildKit flavour: every download of pip, uv and npm goes through a cache mount, nothing
/// else changes, and the header re-renders the same flavour.
#[test]
fn buildkit_flavour_caches_downloads_in_mounts() {
    use ctxbuild::service::render::{generated_for_buildkit, render_flavour};
    let bk = |toml: &str, variant, p: Option<&InstallPlan>| {
        render_flavour(&service(toml), variant, None, p, true)
            .expect("renders")
            .dockerfile
    };
    let pip = "RUN --mount=type=cache,target=/root/.cache/pip python -m pip install --no-compile";
    // requirements, the servers ctxbuild adds, system packages, and the project itself.
    let p = plan(DependencySource::Pyproject, None, &[Server::Gunicorn], true);
    for variant in [Variant::Alpine, Variant::Slim] {
        let classic = snap(PY_PACKAGES, variant, None, Some(&p));
        let d = bk(PY_PACKAGES, variant, Some(&p));
        assert!(!classic.contains("--mount"), "{classic}");
        assert!(!d.contains("--no-cache-dir --no-compile"), "{d}");
        assert_eq!(d.matches(pip).count(), 2, "servers and the project: {d}");
        assert!(
            d.contains("RUN --mount=type=cache,target=/root/.cache/pip apk add")
                || d.contains("RUN --mount=type=cache,target=/root/.cache/pip apt-get update"),
            "the dependency RUN with build packages: {d}"
        );
        assert!(generated_for_buildkit(&d) && !generated_for_buildkit(&classic));
        assert!(
            d.lines().next().unwrap().ends_with("--builder buildkit`."),
            "{d}"
        );
        // Only RUN lines and pip's cache flag differ (and the header).
        let strip = |t: &str| {
            t.lines()
                .skip(1)
                .filter(|l| !l.starts_with("RUN") && !l.starts_with("{"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&classic.replace("--no-cache-dir ", "")), strip(&d));
    }
    let uv = plan(DependencySource::Uv, None, &[Server::Gunicorn], true);
    let d = bk(PY, Variant::Slim, Some(&uv));
    assert!(
        d.contains("UV_CACHE_DIR=/root/.cache/uv") && !d.contains("UV_NO_CACHE"),
        "{d}"
    );
    assert_eq!(
        d.matches("RUN --mount=type=cache,target=/root/.cache/uv uv ")
            .count(),
        3,
        "servers, sync, project: {d}"
    );
    let n = bk(NODE, Variant::Alpine, None);
    assert!(
        n.contains("RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund"),
        "{n}"
    );
    assert!(!snap(NODE, Variant::Alpine, None, None).contains("--mount"));
}

/// `render --builder buildkit` writes the flavour; `check` then knows the file needs BuildKit:
/// fine under `auto`, an error under `builder = "classic"`, and the file counts as fresh.
#[test]
fn render_builder_buildkit_then_check() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\ndockerfile = \"Dockerfile\"\n",
            ),
            ("requirements.txt", "fastapi\ngunicorn\nuvicorn-worker\n"),
            ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            (".dockerignore", "**/__pycache__\n**/*.pyc\n"),
        ],
    );
    let env = common::TestEnv::at(dir.path());
    let o = env.run(&["render", "api", "--builder", "buildkit", "-o", "Dockerfile"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(text.contains("--mount=type=cache"));
    let rules = |args: &[&str]| {
        let o = env.run(&[&["check", "--json"], args].concat());
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let auto = rules(&[]);
    assert!(
        !auto
            .iter()
            .any(|r| r == "builder-syntax" || r == "generated-stale"),
        "{auto:?}"
    );
    let classic = rules(&["--builder", "classic"]);
    assert!(classic.iter().any(|r| r == "builder-syntax"), "{classic:?}");
}
