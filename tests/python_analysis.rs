//! The Python analysis library (`ctxbuild::python`) against the realistic app corpus under
//! `tests/apps/`: dependency sources, the servers each project installs, app resolution with its
//! suggestions, app detection, gunicorn configuration and health-path mentions.

use ctxbuild::python::app::{self, AppError, Binding};
use ctxbuild::python::deps::{analyse, DependencySource, DepsSettings};
use ctxbuild::python::gunicorn::{self, Origin, Value};
use ctxbuild::python::servers::{Provided, Server, Servers};
use ctxbuild::python::{health, InstallPlan};
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
}

fn deps(name: &str) -> ctxbuild::python::Dependencies {
    analyse(&corpus(name), &DepsSettings::default()).expect("analyse")
}

fn missing(name: &str) -> Vec<String> {
    InstallPlan::of(&deps(name))
        .servers
        .iter()
        .map(|p| p.requirement())
        .collect()
}

#[test]
fn requirements_without_gunicorn_keeps_the_projects_uvicorn_pin() {
    let d = deps("req-no-gunicorn");
    assert_eq!(d.source, DependencySource::Requirements);
    assert_eq!(d.requirements_file, Some(PathBuf::from("requirements.txt")));
    let s = Servers::of(&d);
    assert_eq!(
        s.uvicorn,
        Some(Provided::Direct {
            specifier: "==0.38.0".into(),
            line: 3
        })
    );
    assert_eq!(
        missing("req-no-gunicorn"),
        ["gunicorn==27.0.1", "uvicorn-worker==0.4.0"]
    );
}

#[test]
fn fastapi_standard_pulls_uvicorn_but_not_gunicorn() {
    let s = Servers::of(&deps("fastapi-standard"));
    assert!(
        matches!(s.uvicorn, Some(Provided::Extra { ref requirement, .. }) if requirement == "fastapi[standard]")
    );
    assert_eq!(s.gunicorn, None);
    assert_eq!(
        missing("fastapi-standard"),
        ["gunicorn==27.0.1", "uvicorn-worker==0.4.0"]
    );
}

#[test]
fn pyproject_only_is_a_package_and_needs_every_server() {
    let d = deps("pyproject-src");
    assert_eq!(d.source, DependencySource::Pyproject);
    let p = d.pyproject.as_ref().unwrap();
    assert!(p.is_package);
    assert_eq!(p.name.as_deref(), Some("shop"));
    let names: Vec<&str> = d.direct.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["fastapi", "pydantic"]);
    assert!(d.installs_project());
    assert_eq!(
        missing("pyproject-src"),
        [
            "gunicorn==27.0.1",
            "uvicorn-worker==0.4.0",
            "uvicorn==0.54.0"
        ]
    );
}

#[test]
fn uv_lock_wins_and_the_lock_is_the_truth() {
    let d = deps("uv-locked");
    assert_eq!(d.source, DependencySource::Uv);
    assert!(d.found.uv_lock && d.found.pyproject && !d.found.requirements);
    assert!(d.locked.iter().any(|l| l.name == "fastapi"));
    // No [build-system]: uv does not install the project itself.
    assert!(!d.installs_project());
    let s = Servers::of(&d);
    assert!(matches!(
        s.uvicorn,
        Some(Provided::Locked { version: Some(_) })
    ));
    assert_eq!(
        missing("uv-locked"),
        ["gunicorn==27.0.1", "uvicorn-worker==0.4.0"]
    );
}

#[test]
fn configuration_overrides_the_detected_source() {
    let forced = DepsSettings {
        source: Some(DependencySource::Pyproject),
        ..Default::default()
    };
    let d = analyse(&corpus("uv-locked"), &forced).unwrap();
    assert_eq!(d.source, DependencySource::Pyproject);
    assert!(d.configured);
    let none = DepsSettings {
        source: Some(DependencySource::Requirements),
        ..Default::default()
    };
    let err = analyse(&corpus("uv-locked"), &none).unwrap_err();
    assert!(err.to_string().contains("requirements.txt"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let bare = analyse(empty.path(), &DepsSettings::default()).unwrap();
    assert_eq!(bare.source, DependencySource::None);
}

#[test]
fn a_project_pinning_every_server_gets_none_added() {
    let d = deps("gunicorn-conf");
    assert!(matches!(
        Servers::of(&d).gunicorn,
        Some(Provided::Direct { ref specifier, .. }) if specifier == "==23.0.0"
    ));
    // uvicorn comes with uvicorn-worker: only a pinned uvicorn is added, as the other packages.
    assert_eq!(missing("gunicorn-conf"), ["uvicorn==0.54.0"]);
    let s = Servers::of(&d);
    assert!(s.get(Server::UvicornWorker).is_some());
}

#[test]
fn resolves_module_files_packages_and_src_layouts() {
    let r = app::resolve(&corpus("req-no-gunicorn"), "main:app").unwrap();
    assert_eq!((r.file.as_path(), r.line), (Path::new("main.py"), 3));
    assert_eq!(
        r.binding,
        Binding::Instance {
            class: "FastAPI".into()
        }
    );
    // Annotated, multi-line assignment inside a package.
    let r = app::resolve(&corpus("fastapi-standard"), "app.main:app").unwrap();
    assert_eq!(r.file, Path::new("app/main.py"));
    assert_eq!(r.line, 4);
    // src/ layout: importable once the package is installed.
    let r = app::resolve(&corpus("pyproject-src"), "shop.api:app").unwrap();
    assert_eq!(r.file, Path::new("src/shop/api.py"));
    // A factory call bound at module level.
    let r = app::resolve(&corpus("monorepo/services/api"), "api.app:app").unwrap();
    assert!(matches!(r.binding, Binding::Assigned { ref value } if value == "create_app()"));
    let r = app::resolve(&corpus("monorepo/services/api"), "api.app:create_app()").unwrap();
    assert_eq!(r.binding, Binding::Function);
    assert!(r.app.factory);
}

#[test]
fn bad_apps_come_with_the_right_suggestion() {
    let e = app::resolve(&corpus("req-no-gunicorn"), "main.py:app").unwrap_err();
    assert!(matches!(e, AppError::FilePath { .. }), "{e:?}");
    assert_eq!(e.suggestion(), Some("main:app"));

    // The natural guess for a launcher project.
    let e = app::resolve(&corpus("launcher"), "main:app").unwrap_err();
    assert!(matches!(e, AppError::Launcher { .. }), "{e:?}");
    assert_eq!(e.suggestion(), Some("service.api:app"));
    assert!(e.to_string().contains("main.py is a launcher"), "{e}");

    // A module that is not there: the one with that name elsewhere.
    let e = app::resolve(&corpus("fastapi-standard"), "main:app").unwrap_err();
    assert!(matches!(e, AppError::ModuleNotFound { .. }), "{e:?}");
    assert_eq!(e.suggestion(), Some("app.main:app"));
    assert!(e.to_string().contains("main.py or main/__init__.py"), "{e}");

    // A wrong attribute: the module's own app instance.
    let e = app::resolve(&corpus("no-health"), "server:application").unwrap_err();
    assert!(matches!(e, AppError::AttrNotFound { .. }), "{e:?}");
    assert_eq!(e.suggestion(), Some("server:app"));

    let e = app::resolve(&corpus("no-health"), "server").unwrap_err();
    assert!(matches!(e, AppError::Syntax { .. }), "{e:?}");
}

#[test]
fn detection_finds_instances_factories_and_follows_launchers() {
    let found = |name: &str| -> Vec<String> {
        app::detect(&corpus(name))
            .iter()
            .map(|c| format!("{} {} {}", c.app, c.class, c.launched_by.len()))
            .collect()
    };
    assert_eq!(found("launcher"), ["service.api:app FastAPI 1"]);
    assert_eq!(found("fastapi-standard"), ["app.main:app FastAPI 0"]);
    assert_eq!(found("pyproject-src"), ["shop.api:app FastAPI 0"]);
    assert_eq!(found("no-health"), ["server:app Starlette 0"]);
    assert_eq!(found("monorepo/services/api"), ["api.app:app factory 0"]);
    // From the monorepo root the same app is found under its longer import path.
    assert_eq!(found("monorepo"), ["services.api.api.app:app factory 0"]);
}

#[test]
fn detection_reports_every_candidate_and_skips_venvs_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("a.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ("b/api.py", "import fastapi\napi = fastapi.FastAPI()\n"),
        ("tests/test_app.py", "app = FastAPI()\n"),
        (".venv/lib/x.py", "app = FastAPI()\n"),
        ("env/pyvenv.cfg", "home = /usr\n"),
        ("env/lib/y.py", "app = FastAPI()\n"),
        ("c.py", "def f():\n    app = FastAPI()\n    return app\n"),
        ("my-dir/z.py", "app = FastAPI()\n"),
    ];
    for (p, c) in files {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    let apps: Vec<String> = app::detect(dir.path())
        .iter()
        .map(|c| c.app.to_string())
        .collect();
    assert_eq!(apps, ["a:app", "b.api:api"]);
}

#[test]
fn gunicorn_conf_and_cmd_args_merge_in_gunicorns_order() {
    let ctx = corpus("gunicorn-conf");
    let file = gunicorn::config_file(&ctx, Path::new(""), None)
        .unwrap()
        .expect("gunicorn.conf.py");
    assert_eq!(
        file.worker_class.as_ref().unwrap().value,
        Value::Str("uvicorn_worker.UvicornWorker".into())
    );
    assert_eq!(
        file.worker_class.as_ref().unwrap().origin,
        Origin::File {
            path: "gunicorn.conf.py".into(),
            line: 4
        }
    );
    assert_eq!(file.bind_follows_port(), Some(false));
    assert!(
        matches!(file.workers.as_ref().unwrap().value, Value::Expr(ref e) if e.contains("cpu_count"))
    );
    assert_eq!(file.timeout.as_ref().unwrap().value, Value::Int(120));

    let s = gunicorn::effective(
        Some(file),
        Some("--timeout 90 --access-logfile -"),
        &["--bind".to_string(), "0.0.0.0:${PORT}".to_string()],
    );
    assert_eq!(s.timeout.as_ref().unwrap().value, Value::Int(90));
    assert_eq!(s.timeout.as_ref().unwrap().origin, Origin::EnvArgs);
    assert_eq!(s.bind_follows_port(), Some(true));
    assert_eq!(s.bind[0].origin, Origin::CommandLine);
    // The worker class still comes from the file.
    assert!(matches!(
        s.worker_class.unwrap().origin,
        Origin::File { .. }
    ));

    assert!(
        gunicorn::config_file(&corpus("launcher"), Path::new(""), None)
            .unwrap()
            .is_none()
    );
    let err = gunicorn::config_file(&ctx, Path::new(""), Some("conf/missing.py")).unwrap_err();
    assert!(err.is_not_found());
}

#[test]
fn gunicorn_args_forms() {
    let args = gunicorn::split_env_args(
        "-k 'uvicorn.workers.UvicornWorker' -w4 --bind=0.0.0.0:8080 -c \"my conf.py\"",
    );
    assert_eq!(args[1], "uvicorn.workers.UvicornWorker");
    let s = gunicorn::parse_args(&args, Origin::EnvArgs);
    assert_eq!(
        s.worker_class.unwrap().value,
        Value::Str("uvicorn.workers.UvicornWorker".into())
    );
    assert_eq!(s.workers.unwrap().value, Value::Int(4));
    assert_eq!(s.bind[0].value, Value::Str("0.0.0.0:8080".into()));
    assert_eq!(s.config.as_deref(), Some("my conf.py"));
    let list = gunicorn::parse_config(
        "bind = ['0.0.0.0:8000', \"[::]:8000\"]\n",
        Path::new("g.py"),
    );
    assert_eq!(list.bind.len(), 2);
    assert_eq!(list.bind_follows_port(), Some(false));
    let env = gunicorn::parse_config(
        "import os\nbind = f\"0.0.0.0:{os.environ.get('PORT', '8080')}\"\nif True:\n    workers = 3\n",
        Path::new("g.py"),
    );
    assert_eq!(env.bind_follows_port(), Some(true));
    assert!(env.workers.is_none(), "only top-level assignments are read");
}

#[test]
fn health_path_mentions() {
    let m = health::find_mention(&corpus("req-no-gunicorn"), "/health").unwrap();
    assert_eq!((m.file.as_path(), m.line), (Path::new("main.py"), 11));
    assert_eq!(health::find_mention(&corpus("no-health"), "/health"), None);
    assert_eq!(health::find_mention(&corpus("launcher"), "/healthz"), None);
    // A router prefix splits the path: the last segment quoted still counts.
    assert!(health::find_mention(&corpus("req-no-gunicorn"), "/api/health").is_some());
}
