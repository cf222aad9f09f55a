//! Tests of `init` against the corpus of `tests/apps/` and the repo's `examples/`: the right
//! app, context, dependency source and Dockerfile, and a generated file the config loader
//! accepts with the same values.

use super::*;
use crate::service::Config;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
}

/// Detects `dir`, renders, parses the result as `dir/ctxbuild.toml` and checks that every
/// detected service came through with its app, context and Dockerfile.
fn detect_and_load(dir: &Path) -> (Detection, Config, String) {
    let d = detect(dir);
    let text = render_config(&d);
    let config = Config::parse(&dir.join("ctxbuild.toml"), &text)
        .unwrap_or_else(|e| panic!("generated config does not load: {e}\n{text}"));
    for s in &d.services {
        let c = config.service(&s.name).unwrap();
        assert_eq!(c.app.as_deref(), Some(s.app.as_str()), "{text}");
        assert_eq!(c.context, s.context, "{text}");
        let key = s
            .dockerfile
            .as_ref()
            .filter(|f| !f.generated)
            .map(|f| f.path.clone());
        assert_eq!(c.dockerfile, key, "{text}");
        // The app resolves the way gunicorn will import it.
        crate::python::app::resolve(&dir.join(&s.context), &s.app)
            .unwrap_or_else(|e| panic!("{}: {e}", s.app));
    }
    for f in &d.frontends {
        let c = config.service(&f.name).unwrap();
        assert_eq!(c.kind, crate::service::Kind::Node);
        assert_eq!(c.build_output, f.build_output);
        assert_eq!(c.entrypoint, f.entrypoint);
    }
    assert_eq!(
        config.services.len(),
        d.services.len() + d.frontends.len(),
        "{text}"
    );
    (d, config, text)
}

fn only_service(d: &Detection) -> &PythonService {
    assert_eq!(d.services.len(), 1, "{d:#?}");
    &d.services[0]
}

#[test]
fn requirements_without_gunicorn() {
    let (d, _, text) = detect_and_load(&corpus("req-no-gunicorn"));
    let s = only_service(&d);
    assert_eq!(s.app, "main:app");
    assert_eq!(s.context, Path::new("."));
    assert_eq!(s.name, "req-no-gunicorn");
    assert_eq!(s.dependencies.source, DependencySource::Requirements);
    assert!(s.dockerfile.is_none());
    assert_eq!(s.health_route.as_ref().unwrap().file, Path::new("main.py"));
    assert!(d.questions.is_empty() && !d.monorepo);
    assert!(!text.contains("QUESTION"), "{text}");
    assert!(d.config_exists);
}

#[test]
fn app_inside_a_package() {
    let (d, _, _) = detect_and_load(&corpus("fastapi-standard"));
    assert_eq!(only_service(&d).app, "app.main:app");
}

#[test]
fn pyproject_src_layout() {
    let (d, _, _) = detect_and_load(&corpus("pyproject-src"));
    let s = only_service(&d);
    assert_eq!(s.app, "shop.api:app");
    assert_eq!(s.dependencies.source, DependencySource::Pyproject);
    assert_eq!(s.dependencies.files, vec![PathBuf::from("pyproject.toml")]);
}

#[test]
fn uv_locked() {
    let (d, _, text) = detect_and_load(&corpus("uv-locked"));
    let s = only_service(&d);
    assert_eq!(s.dependencies.source, DependencySource::Uv);
    assert!(text.contains("# dependencies = \"uv\""), "{text}");
}

#[test]
fn launcher_is_followed_to_the_package_app() {
    let (d, _, text) = detect_and_load(&corpus("launcher"));
    let s = only_service(&d);
    assert_eq!(s.app, "service.api:app");
    assert_eq!(s.candidates[0].launched_by, vec![PathBuf::from("main.py")]);
    assert!(text.contains("started by uvicorn.run in main.py"), "{text}");
}

#[test]
fn no_health_route() {
    let (d, _, text) = detect_and_load(&corpus("no-health"));
    let s = only_service(&d);
    assert_eq!(s.app, "server:app");
    assert_eq!(s.candidates[0].class, "Starlette");
    assert!(s.health_route.is_none());
    assert!(text.contains("\n# health_path = \"/health\"\n"), "{text}");
}

#[test]
fn gunicorn_conf_and_hand_written_dockerfile() {
    let (d, config, text) = detect_and_load(&corpus("gunicorn-conf"));
    let s = only_service(&d);
    let g = s.gunicorn_conf.as_ref().unwrap();
    assert_eq!(
        g.worker_class.as_deref(),
        Some("uvicorn_worker.UvicornWorker")
    );
    assert_eq!(g.bind, vec!["0.0.0.0:8000".to_string()]);
    assert_eq!(
        config.services[0].dockerfile.as_deref(),
        Some(Path::new("Dockerfile"))
    );
    assert!(
        text.contains("gunicorn.conf.py is read by gunicorn"),
        "{text}"
    );
}

#[test]
fn lowercase_dockerfile_is_written_as_the_key() {
    let (d, config, text) = detect_and_load(&corpus("lowercase-dockerfile"));
    let df = only_service(&d).dockerfile.as_ref().unwrap();
    assert_eq!(df.path, Path::new("dockerfile"));
    assert!(!df.generated);
    assert!(text.contains("\ndockerfile = \"dockerfile\"\n"), "{text}");
    assert_eq!(
        config.services[0].dockerfile.as_deref(),
        Some(Path::new("dockerfile"))
    );
}

#[test]
fn monorepo_service_in_a_subdirectory_and_a_frontend() {
    let (d, config, _) = detect_and_load(&corpus("monorepo"));
    let s = only_service(&d);
    assert_eq!(s.name, "api");
    assert_eq!(s.context, Path::new("services/api"));
    assert_eq!(s.app, "api.app:app");
    assert_eq!(s.candidates[0].class, "factory");
    assert!(d.monorepo);
    assert_eq!(d.frontends.len(), 1);
    let f = &d.frontends[0];
    assert_eq!(
        (f.name.as_str(), f.context.as_path()),
        ("web", Path::new("web"))
    );
    assert!(f.lockfile);
    assert_eq!(
        config.context_dir(config.service("api").unwrap()),
        corpus("monorepo").join("services/api")
    );
}

#[test]
fn the_repos_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (d, config, text) = detect_and_load(&root);
    let names: Vec<&str> = d.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["auth", "backend"]);
    assert_eq!(d.services[0].app, "auth.app:app");
    // auth's Dockerfile is hand-written: the key; backend's is a committed render: no key.
    assert_eq!(
        config.service("auth").unwrap().dockerfile.as_deref(),
        Some(Path::new("Dockerfile"))
    );
    assert!(d.services[1].dockerfile.as_ref().unwrap().generated);
    assert_eq!(config.service("backend").unwrap().dockerfile, None);
    let f = &d.frontends[0];
    assert_eq!(
        (
            f.build_output.as_str(),
            f.entrypoint.as_str(),
            f.guessed_from.as_str()
        ),
        ("dist", "server.js", "scripts.start")
    );
    assert!(f.lockfile);
    assert_eq!(d.compose, vec![PathBuf::from("compose.yaml")]);
    assert!(text.contains("\ncompose = [\"compose.yaml\"]\n"), "{text}");
}

#[test]
fn two_apps_are_a_question_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "fastapi\n").unwrap();
    std::fs::write(
        dir.path().join("main.py"),
        "from fastapi import FastAPI\napp = FastAPI()\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("admin.py"),
        "from fastapi import FastAPI\n\nadmin = FastAPI()\n",
    )
    .unwrap();
    let (d, _, text) = detect_and_load(dir.path());
    let s = only_service(&d);
    assert_eq!(d.questions.len(), 1);
    let q = &d.questions[0];
    assert_eq!(
        (q.service.as_str(), q.key.as_str()),
        (s.name.as_str(), "app")
    );
    assert_eq!(q.choices, ["admin:admin", "main:app"]);
    assert_eq!(q.chosen, s.app);
    assert!(
        text.contains("# QUESTION: 2 ASGI apps found here"),
        "{text}"
    );
    assert!(text.contains("#   app = \"main:app\""), "{text}");
}

#[test]
fn nested_contexts_own_their_apps_and_venvs_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let app = "from fastapi import FastAPI\napp = FastAPI()\n";
    for p in ["", "worker/", ".venv/lib/", "env/"] {
        std::fs::create_dir_all(dir.path().join(p)).unwrap();
        std::fs::write(dir.path().join(format!("{p}requirements.txt")), "fastapi\n").unwrap();
        std::fs::write(dir.path().join(format!("{p}main.py")), app).unwrap();
    }
    // A virtualenv under any name.
    std::fs::write(dir.path().join("env/pyvenv.cfg"), "home = /usr\n").unwrap();
    let (d, _, _) = detect_and_load(dir.path());
    let contexts: Vec<&Path> = d.services.iter().map(|s| s.context.as_path()).collect();
    assert_eq!(contexts, [Path::new("."), Path::new("worker")]);
    // The root's app is its own `main:app`, not `worker.main:app`.
    assert_eq!(d.services[0].candidates.len(), 1);
    assert_eq!(d.services[1].name, "worker");
}

#[test]
fn the_walk_is_bounded_in_depth() {
    let dir = tempfile::tempdir().unwrap();
    let deep: PathBuf = (0..MAX_DEPTH + 2).map(|i| format!("d{i}")).collect();
    std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
    std::fs::write(dir.path().join(&deep).join("requirements.txt"), "fastapi\n").unwrap();
    std::fs::write(
        dir.path().join(&deep).join("main.py"),
        "from fastapi import FastAPI\napp = FastAPI()\n",
    )
    .unwrap();
    let d = detect(dir.path());
    assert!(d.services.is_empty(), "{d:#?}");
    assert!(
        d.notes.iter().any(|n| n.contains("stopped looking")),
        "{d:#?}"
    );
}

#[test]
fn dependency_files_without_an_app_are_a_note() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(
        dir.path().join("lib/pyproject.toml"),
        "[project]\nname = \"lib\"\n",
    )
    .unwrap();
    let d = detect(dir.path());
    assert!(d.services.is_empty());
    assert_eq!(
        d.notes,
        ["lib: dependency files but no module-level FastAPI()/Starlette() app"]
    );
}

#[test]
fn write_never_replaces_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "# one\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# one\n");
    let e = write_config(dir.path(), "# two\n").unwrap_err();
    assert!(matches!(e, WriteError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# one\n");
    // Not through a dangling symlink either.
    let other = tempfile::tempdir().unwrap();
    let target = other.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, other.path().join("ctxbuild.toml")).unwrap();
    assert!(matches!(
        write_config(other.path(), "x"),
        Err(WriteError::Exists { .. })
    ));
    assert!(!target.exists());
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn toml_strings_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("we\"ird\\dir");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("requirements.txt"), "fastapi\n").unwrap();
    std::fs::write(
        sub.join("main.py"),
        "from fastapi import FastAPI\napp = FastAPI()\n",
    )
    .unwrap();
    let (d, _, _) = detect_and_load(dir.path());
    assert_eq!(d.services[0].name, "we-ird-dir");
}

#[test]
fn frontend_guesses_and_a_missing_lockfile() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(
        web.join("package.json"),
        r#"{"scripts": {"build": "next build"}}"#,
    )
    .unwrap();
    // No build script: not a frontend.
    std::fs::create_dir_all(dir.path().join("tool")).unwrap();
    std::fs::write(
        dir.path().join("tool/package.json"),
        r#"{"scripts": {"test": "x"}}"#,
    )
    .unwrap();
    let (d, _, text) = detect_and_load(dir.path());
    assert_eq!(d.frontends.len(), 1);
    let f = &d.frontends[0];
    assert_eq!(
        (f.build_output.as_str(), f.guessed_from.as_str()),
        (".next/standalone", "next build")
    );
    assert!(!f.lockfile);
    assert!(text.contains("# NOTE: no package-lock.json here"), "{text}");
    // A broken manifest is a note naming the file and line.
    std::fs::write(web.join("package.json"), "{\n  \"scripts\": \n").unwrap();
    let d = detect(dir.path());
    assert!(d.frontends.is_empty());
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("web/package.json:3: not JSON")),
        "{:?}",
        d.notes
    );
}
