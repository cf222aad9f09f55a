//! `ctxbuild check`, one test per rule: a failing input where the rule fires at the right
//! file:line, and a passing input (usually a near miss) where it does not. Every case starts
//! from a clean service that passes with no findings at all, and changes one thing.

mod common;

use ctxbuild::check::RULES;

const CONFIG: &str = r#"[services.api]
kind = "python-asgi"
context = "api"
app = "main:app"
dockerfile = "Dockerfile"
[services.api.deploy]
cpu = 1
memory = "1Gi"
request_timeout = 300
"#;

const MAIN_PY: &str = "from fastapi import FastAPI\napp = FastAPI()\n";

const REQUIREMENTS: &str = "fastapi\ngunicorn\nuvicorn\nuvicorn-worker\n";

/// The proven pattern, line by line (line numbers matter to the tests).
const DOCKERFILE: &str = r#"FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER 10001:10001
EXPOSE 8080
CMD ["sh", "-c", "exec gunicorn main:app -w 2 -k uvicorn_worker.UvicornWorker --bind 0.0.0.0:${PORT:-8080} --timeout 300"]
"#;

const GOOD_CMD: &str = r#"CMD ["sh", "-c", "exec gunicorn main:app -w 2 -k uvicorn_worker.UvicornWorker --bind 0.0.0.0:${PORT:-8080} --timeout 300"]"#;

/// The clean service without a `dockerfile` key: it builds (and is checked as) the rendered
/// template.
fn rendered_config() -> String {
    CONFIG.replace("dockerfile = \"Dockerfile\"\n", "")
}

/// The findings (rule, location, severity) and exit code of `check --json` on the clean
/// service with `changes` applied (a file written with "" is deleted).
fn check(changes: &[(&str, &str)]) -> (Vec<(String, String, String)>, i32) {
    let dir = service_dir(changes);
    check_in(dir.path())
}

/// The clean service with `changes` applied, in a temporary directory.
fn service_dir(changes: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", CONFIG),
            ("api/requirements.txt", REQUIREMENTS),
            ("api/main.py", MAIN_PY),
            ("api/Dockerfile", DOCKERFILE),
            ("api/.dockerignore", "**/__pycache__\n**/*.pyc\n.env\n"),
        ],
    );
    for (path, text) in changes {
        if text.is_empty() {
            std::fs::remove_file(dir.path().join(path)).unwrap();
        } else {
            common::write_tree(dir.path(), &[(path, text)]);
        }
    }
    dir
}

/// The whole `check --json` report of the clean service with `changes` applied.
fn report(changes: &[(&str, &str)]) -> serde_json::Value {
    let dir = service_dir(changes);
    let o = common::TestEnv::at(dir.path()).run(&["check", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The message of the first finding of `rule` in `report`.
fn message<'a>(report: &'a serde_json::Value, rule: &str) -> &'a str {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} in {report:#}"))["message"]
        .as_str()
        .unwrap()
}

fn check_in(dir: &std::path::Path) -> (Vec<(String, String, String)>, i32) {
    let o = common::TestEnv::at(dir).run(&["check", "--json"]);
    let code = o.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "check failed: {}",
        common::stderr(&o)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let loc = match f["line"].as_u64() {
                Some(l) => format!("{}:{l}", f["file"].as_str().unwrap()),
                None => f["file"].as_str().unwrap().to_string(),
            };
            assert!(
                !f["fix"].as_str().unwrap().is_empty(),
                "every finding has a fix: {f}"
            );
            (
                f["rule"].as_str().unwrap().to_string(),
                loc,
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (findings, code)
}

fn dockerfile_with_cmd(cmd: &str) -> String {
    DOCKERFILE.replace(GOOD_CMD, cmd)
}

/// Asserts `rule` fires at `loc` for `bad` (and the exit code matches its severity) and does not
/// fire for `good`.
fn case(rule: &'static str, loc: &str, bad: &[(&str, &str)], good: &[(&str, &str)]) {
    let (findings, code) = check(bad);
    let hit = findings.iter().find(|(r, l, _)| r == rule && l == loc);
    let Some((_, _, severity)) = hit else {
        panic!("{rule} did not fire at {loc}; findings: {findings:?}");
    };
    if severity == "error" {
        assert_eq!(code, 1, "errors exit 1");
    }
    let (findings, _) = check(good);
    assert!(
        !findings.iter().any(|(r, ..)| r == rule),
        "{rule} fired on the passing input: {findings:?}"
    );
}

#[test]
fn clean_service_has_no_findings() {
    let (findings, code) = check(&[]);
    assert_eq!(findings, Vec::<(String, String, String)>::new());
    assert_eq!(code, 0);
}

#[test]
fn asgi_server() {
    let uvicorn = dockerfile_with_cmd(
        r#"CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8080"]"#,
    );
    case(
        "asgi-server",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &uvicorn)],
        &[],
    );
    // gunicorn with its default sync worker cannot serve ASGI.
    let sync = dockerfile_with_cmd(
        r#"CMD ["sh", "-c", "exec gunicorn main:app --bind 0.0.0.0:${PORT:-8080}"]"#,
    );
    case(
        "asgi-server",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &sync)],
        &[],
    );
    // The worker package must be installed: passing once requirements list it.
    case(
        "asgi-server",
        "api/Dockerfile:9",
        &[("api/requirements.txt", "fastapi\ngunicorn\nuvicorn\n")],
        &[(
            "api/requirements.txt",
            "fastapi\ngunicorn\nuvicorn\nUvicorn_Worker>=0.2\n",
        )],
    );
    // No command at all: the base image's python prompt would run.
    let none = DOCKERFILE.replace(&format!("{GOOD_CMD}\n"), "");
    case(
        "asgi-server",
        "api/Dockerfile:8",
        &[("api/Dockerfile", &none)],
        &[],
    );
}

#[test]
fn uvicorn_worker_deprecated() {
    let old = dockerfile_with_cmd(&GOOD_CMD.replace(
        "uvicorn_worker.UvicornWorker",
        "uvicorn.workers.UvicornWorker",
    ));
    case(
        "uvicorn-worker-deprecated",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &old)],
        &[],
    );
    let (findings, code) = check(&[("api/Dockerfile", &old)]);
    assert_eq!(code, 0, "a warning alone does not fail check: {findings:?}");
}

#[test]
fn exec_form_variable() {
    let bad = dockerfile_with_cmd(
        r#"CMD ["gunicorn", "main:app", "-k", "uvicorn_worker.UvicornWorker", "--bind", "0.0.0.0:$PORT"]"#,
    );
    let shell_form = dockerfile_with_cmd(
        "CMD exec gunicorn main:app -k uvicorn_worker.UvicornWorker --bind 0.0.0.0:${PORT:-8080}",
    );
    case(
        "exec-form-variable",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &bad)],
        &[("api/Dockerfile", &shell_form)],
    );
}

#[test]
fn port_mismatch() {
    // The auth outage: ${PORT:-8001} while the deploy sends 8080.
    let cmd = dockerfile_with_cmd(&GOOD_CMD.replace("PORT:-8080", "PORT:-8001"));
    case(
        "port-mismatch",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &cmd)],
        &[],
    );
    let expose = DOCKERFILE.replace("EXPOSE 8080", "EXPOSE 8001");
    case(
        "port-mismatch",
        "api/Dockerfile:8",
        &[("api/Dockerfile", &expose)],
        &[],
    );
    // EXPOSE is expanded with the stage's ARG/ENV defaults, as the builder does.
    let via_arg = DOCKERFILE.replace("EXPOSE 8080", "ARG PORT=8001\nEXPOSE ${PORT}/tcp");
    case(
        "port-mismatch",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &via_arg)],
        &[(
            "api/Dockerfile",
            &DOCKERFILE.replace("EXPOSE 8080", "ARG PORT=8080\nEXPOSE ${PORT}/tcp"),
        )],
    );
    // `${PORT:=N}` assigns the default too.
    let assign = dockerfile_with_cmd(&GOOD_CMD.replace("PORT:-8080", "PORT:=8001"));
    case(
        "port-mismatch",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &assign)],
        &[(
            "api/Dockerfile",
            &dockerfile_with_cmd(&GOOD_CMD.replace("PORT:-8080", "PORT:=8080")),
        )],
    );
    // The same Dockerfile passes when the deploy really uses 8001.
    let both = expose.replace("PORT:-8080", "PORT:-8001");
    let config_8001 = CONFIG.replace(
        "request_timeout = 300",
        "request_timeout = 300\nport = 8001",
    );
    case(
        "port-mismatch",
        "api/Dockerfile:8",
        &[("api/Dockerfile", &both)],
        &[("api/Dockerfile", &both), ("ctxbuild.toml", &config_8001)],
    );
}

#[test]
fn port_fixed() {
    let fixed = dockerfile_with_cmd(&GOOD_CMD.replace("${PORT:-8080}", "8080"));
    case(
        "port-fixed",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &fixed)],
        &[],
    );
}

#[test]
fn gunicorn_timeout() {
    let short = CONFIG.replace("request_timeout = 300", "request_timeout = 60");
    let matching = dockerfile_with_cmd(&GOOD_CMD.replace("--timeout 300", "--timeout 60"));
    case(
        "gunicorn-timeout",
        "api/Dockerfile:9",
        &[("ctxbuild.toml", &short)],
        &[("ctxbuild.toml", &short), ("api/Dockerfile", &matching)],
    );
}

#[test]
fn copy_missing() {
    let bad = DOCKERFILE.replace("COPY requirements.txt .", "COPY requirements/prod.txt .");
    case(
        "copy-missing",
        "api/Dockerfile:4",
        &[("api/Dockerfile", &bad)],
        &[
            ("api/Dockerfile", &bad),
            ("api/requirements/prod.txt", "fastapi\n"),
        ],
    );
    // Wildcards count as missing only when nothing matches.
    let glob = DOCKERFILE.replace("COPY requirements.txt .", "COPY requirements*.lock .");
    case(
        "copy-missing",
        "api/Dockerfile:4",
        &[("api/Dockerfile", &glob)],
        &[
            ("api/Dockerfile", &glob),
            ("api/requirements-dev.lock", "x\n"),
        ],
    );
}

#[test]
fn copy_ignored() {
    case(
        "copy-ignored",
        "api/Dockerfile:4",
        &[("api/.dockerignore", "*.txt\n")],
        &[("api/.dockerignore", "*.txt\n!requirements.txt\n")],
    );
}

#[test]
fn dockerignore_invalid() {
    case(
        "dockerignore-invalid",
        "api/.dockerignore:2",
        &[("api/.dockerignore", "ok\n[unclosed\n")],
        &[("api/.dockerignore", "ok\n\\[closed\n")],
    );
}

#[test]
fn dockerfile_invalid() {
    let bad = DOCKERFILE.replace("WORKDIR /app", "WORKDIRR /app");
    case(
        "dockerfile-invalid",
        "api/Dockerfile:3",
        &[("api/Dockerfile", &bad)],
        &[],
    );
}

/// What the classic builder's parser refuses is `dockerfile-invalid` too (issue 12 §2; each
/// message checked on the engine with DOCKER_BUILDKIT=0).
#[test]
fn dockerfile_invalid_at_engine_limits() {
    let long = format!("RUN echo {}", "a".repeat(70_000));
    for (from, to, loc) in [
        (
            "USER 10001:10001",
            "ONBUILD ONBUILD RUN true",
            "api/Dockerfile:7",
        ),
        (
            "USER 10001:10001",
            "HEALTHCHECK --interval=-1s CMD true",
            "api/Dockerfile:7",
        ),
        ("USER 10001:10001", long.as_str(), "api/Dockerfile:7"),
        ("FROM python:3.12-slim", "FROM ${UNSET}", "api/Dockerfile:1"),
    ] {
        let bad = DOCKERFILE.replace(from, to);
        case("dockerfile-invalid", loc, &[("api/Dockerfile", &bad)], &[]);
    }
}

/// `docker build` fails on a `.dockerignore` it cannot read; `check` used to treat it as
/// empty.
#[test]
fn dockerignore_unreadable() {
    case(
        "dockerignore-invalid",
        "api/.dockerignore",
        &[("api/.dockerignore", ""), ("api/.dockerignore/x", "y")],
        &[],
    );
}

/// A source is cleaned as Docker joins it with the root: `../x` leaves the context (Docker:
/// "forbidden path outside the build context"), `./nope/../x` is `x`.
#[test]
fn copy_sources_are_cleaned_as_docker_does() {
    let outside = DOCKERFILE.replace("COPY requirements.txt .", "COPY ../requirements.txt .");
    let inside = DOCKERFILE.replace(
        "COPY requirements.txt .",
        "COPY ./nope/../requirements.txt .",
    );
    case(
        "copy-missing",
        "api/Dockerfile:4",
        &[("api/Dockerfile", &outside)],
        &[("api/Dockerfile", &inside)],
    );
}

/// Issue 12 §2: a backtracking glob ran for minutes on `*a*a…b`, and deep `*` runs overflowed
/// the stack.
#[test]
fn hostile_copy_globs_finish_at_once() {
    let start = std::time::Instant::now();
    let stars = DOCKERFILE.replace(
        "COPY requirements.txt .",
        &format!("COPY {}.txt .", "*".repeat(60_000)),
    );
    let (findings, _) = check(&[("api/Dockerfile", &stars)]);
    assert!(findings.is_empty(), "{findings:?}");
    let hostile = DOCKERFILE.replace(
        "COPY requirements.txt .",
        &format!("COPY {}b .", "*a".repeat(20_000)),
    );
    let (findings, _) = check(&[("api/Dockerfile", &hostile)]);
    assert_eq!(
        findings,
        [(
            "copy-missing".to_string(),
            "api/Dockerfile:4".to_string(),
            "error".to_string()
        )]
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn base_image_tag() {
    let untagged = DOCKERFILE.replace("FROM python:3.12-slim", "FROM python");
    case(
        "base-image-tag",
        "api/Dockerfile:1",
        &[("api/Dockerfile", &untagged)],
        &[],
    );
    let latest = DOCKERFILE.replace("FROM python:3.12-slim", "ARG PY=latest\nFROM python:${PY}");
    let pinned = DOCKERFILE.replace(
        "FROM python:3.12-slim",
        "ARG PY=3.12-slim\nFROM python:${PY}",
    );
    case(
        "base-image-tag",
        "api/Dockerfile:2",
        &[("api/Dockerfile", &latest)],
        &[("api/Dockerfile", &pinned)],
    );
}

#[test]
fn generated_stale() {
    // A fresh render passes; the same render edited by hand is stale at the edited line.
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", CONFIG),
            ("api/requirements.txt", REQUIREMENTS),
        ],
    );
    let o = common::TestEnv::at(dir.path()).run(&["render", "api", "--slim"]);
    assert!(o.status.success());
    let fresh = common::stdout(&o);
    let edited = fresh.replace("-w 2", "-w 8");
    let line = edited.lines().position(|l| l.contains("-w 8")).unwrap() + 1;
    case(
        "generated-stale",
        &format!("api/Dockerfile:{line}"),
        &[("api/Dockerfile", &edited)],
        &[("api/Dockerfile", &fresh)],
    );
}

#[test]
fn context_missing() {
    // A wrong `context` is reported at its own key, not as a missing Dockerfile under it.
    let config = CONFIG.to_string();
    let wrong = config.replace("context = \"api\"", "context = \"nosvc\"");
    case(
        "context-missing",
        "ctxbuild.toml:3",
        &[("ctxbuild.toml", &wrong)],
        &[("ctxbuild.toml", &config)],
    );
    let (findings, _) = check(&[("ctxbuild.toml", &wrong)]);
    assert!(
        !findings.iter().any(|(r, ..)| r == "dockerfile-missing"),
        "{findings:?}"
    );
}

#[test]
fn dockerfile_missing() {
    let config = CONFIG.replace(
        "dockerfile = \"Dockerfile\"",
        "dockerfile = \"docker/Dockerfile.prod\"",
    );
    case(
        "dockerfile-missing",
        "ctxbuild.toml:5",
        &[("ctxbuild.toml", &config)],
        &[
            ("ctxbuild.toml", &config),
            ("api/docker/Dockerfile.prod", DOCKERFILE),
        ],
    );
}

#[test]
fn uv_workspace_member() {
    // `api` is a member of a uv workspace rooted at the configuration's directory, importing
    // its sibling `lib`: the template, building `api` alone, could not install `lib`.
    let rendered = rendered_config();
    let root = "[project]\nname = \"mono\"\nversion = \"0\"\n\n[tool.uv.workspace]\nmembers = [\"api\", \"lib\"]\n";
    let lock = "version = 1\n\n[[package]]\nname = \"api\"\nversion = \"0\"\nsource = { editable = \"api\" }\ndependencies = [{ name = \"fastapi\" }, { name = \"lib\" }]\n\n[[package]]\nname = \"lib\"\nversion = \"0\"\nsource = { editable = \"lib\" }\n";
    let member =
        "[project]\nname = \"api\"\nversion = \"0\"\ndependencies = [\"fastapi\", \"lib\"]\n";
    let workspace = [
        ("ctxbuild.toml", rendered.as_str()),
        ("api/Dockerfile", ""),
        ("pyproject.toml", root),
        ("uv.lock", lock),
        ("api/pyproject.toml", member),
    ];
    // Passing: `api` holds its own lock, so it is a project of its own, not a member.
    let mut own_lock = workspace.to_vec();
    own_lock.push(("api/uv.lock", "version = 1\n"));
    case(
        "uv-workspace-member",
        "ctxbuild.toml:3",
        &workspace,
        &own_lock,
    );
}

#[test]
fn requirements_missing() {
    // Without a Dockerfile of its own the service is checked as rendered, which needs requirements.
    let rendered = rendered_config();
    case(
        "requirements-missing",
        "ctxbuild.toml:1",
        &[
            ("ctxbuild.toml", &rendered),
            ("api/Dockerfile", ""),
            ("api/requirements.txt", ""),
        ],
        &[("ctxbuild.toml", &rendered), ("api/Dockerfile", "")],
    );
    // A hand-written Dockerfile with the uvicorn_worker worker: the package cannot be verified
    // without the file, which is as much an error as a file that lacks it.
    case(
        "requirements-missing",
        "ctxbuild.toml:1",
        &[("api/requirements.txt", "")],
        &[],
    );
    let (findings, _) = check(&[("api/requirements.txt", "fastapi\ngunicorn\n")]);
    assert!(
        findings.iter().any(|(r, ..)| r == "asgi-server"),
        "{findings:?}"
    );
}

const COMPOSE_CONFIG_LINE: &str = "compose = [\"compose.yaml\"]\n";

#[test]
fn compose_unreadable() {
    let config = format!("{COMPOSE_CONFIG_LINE}{CONFIG}");
    case(
        "compose-unreadable",
        "compose.yaml:3",
        &[
            ("ctxbuild.toml", &config),
            ("compose.yaml", "services:\n  api:\n    build: [\n"),
        ],
        &[
            ("ctxbuild.toml", &config),
            ("compose.yaml", "services:\n  api:\n    build: ./api\n"),
        ],
    );
}

#[test]
fn compose_context_missing() {
    let config = format!("{COMPOSE_CONFIG_LINE}{CONFIG}");
    case(
        "compose-context-missing",
        "compose.yaml:4",
        &[
            ("ctxbuild.toml", &config),
            (
                "compose.yaml",
                "services:\n  api:\n    build:\n      context: ./apii\n",
            ),
        ],
        &[
            ("ctxbuild.toml", &config),
            (
                "compose.yaml",
                "services:\n  api:\n    build:\n      context: ./api\n",
            ),
        ],
    );
}

#[test]
fn compose_dockerfile_missing() {
    let config = format!("{COMPOSE_CONFIG_LINE}{CONFIG}");
    case(
        "compose-dockerfile-missing",
        "compose.yaml:5",
        &[("ctxbuild.toml", &config), ("compose.yaml", "services:\n  api:\n    build:\n      context: ./api\n      dockerfile: Dockerfile.prod\n")],
        &[("ctxbuild.toml", &config), ("compose.yaml", "services:\n  api:\n    build:\n      context: ./api\n      dockerfile: Dockerfile\n")],
    );
}

#[test]
fn compose_paths_are_shown_normalised() {
    let config = format!("{COMPOSE_CONFIG_LINE}{CONFIG}");
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", &config),
            ("api/requirements.txt", REQUIREMENTS),
            ("api/Dockerfile", DOCKERFILE),
            ("api/.dockerignore", "**/__pycache__\n"),
            (
                "compose.yaml",
                "services:\n  api:\n    build:\n      context: api\n      dockerfile: ../outside/Dockerfile\n",
            ),
        ],
    );
    let o = common::TestEnv::at(dir.path()).run(&["check"]);
    let out = common::stdout(&o);
    assert!(
        out.contains("compose.yaml:5: error[compose-dockerfile-missing] service `api` builds with outside/Dockerfile,"),
        "{out}"
    );
    assert!(!out.contains(".."), "{out}");
}

fn deploy(settings: &str) -> String {
    CONFIG.replace(
        "cpu = 1\nmemory = \"1Gi\"\nrequest_timeout = 300\n",
        settings,
    )
}

#[test]
fn cloudrun_cpu() {
    case(
        "cloudrun-cpu",
        "ctxbuild.toml:7",
        &[("ctxbuild.toml", &deploy("cpu = 3\nmemory = \"4Gi\"\n"))],
        &[("ctxbuild.toml", &deploy("cpu = 4\nmemory = \"4Gi\"\n"))],
    );
}

#[test]
fn cloudrun_memory() {
    case(
        "cloudrun-memory",
        "ctxbuild.toml:8",
        &[("ctxbuild.toml", &deploy("cpu = 8\nmemory = \"40Gi\"\n"))],
        &[("ctxbuild.toml", &deploy("cpu = 8\nmemory = \"32Gi\"\n"))],
    );
}

#[test]
fn cloudrun_cpu_memory() {
    // More than 4 GiB needs 2 CPUs…
    case(
        "cloudrun-cpu-memory",
        "ctxbuild.toml:8",
        &[("ctxbuild.toml", &deploy("cpu = 1\nmemory = \"6Gi\"\n"))],
        &[("ctxbuild.toml", &deploy("cpu = 2\nmemory = \"6Gi\"\n"))],
    );
    // …and 4 CPUs need 2 GiB.
    case(
        "cloudrun-cpu-memory",
        "ctxbuild.toml:7",
        &[("ctxbuild.toml", &deploy("cpu = 4\nmemory = \"1Gi\"\n"))],
        &[("ctxbuild.toml", &deploy("cpu = 4\nmemory = \"2Gi\"\n"))],
    );
}

#[test]
fn cloudrun_concurrency() {
    case(
        "cloudrun-concurrency",
        "ctxbuild.toml:7",
        &[("ctxbuild.toml", &deploy("cpu = 0.5\nmemory = \"1Gi\"\n"))],
        &[(
            "ctxbuild.toml",
            &deploy("cpu = 0.5\nmemory = \"1Gi\"\nconcurrency = 1\n"),
        )],
    );
}

#[test]
fn cloudrun_request_timeout() {
    let long = dockerfile_with_cmd(&GOOD_CMD.replace("--timeout 300", "--timeout 3600"));
    case(
        "cloudrun-request-timeout",
        "ctxbuild.toml:9",
        &[(
            "ctxbuild.toml",
            &deploy("cpu = 1\nmemory = \"1Gi\"\nrequest_timeout = 7200\n"),
        )],
        &[
            (
                "ctxbuild.toml",
                &deploy("cpu = 1\nmemory = \"1Gi\"\nrequest_timeout = 3600\n"),
            ),
            ("api/Dockerfile", &long),
        ],
    );
}

#[test]
fn cloudrun_small_profile() {
    let small = deploy("cpu = 1\nmemory = \"512Mi\"\n");
    case(
        "cloudrun-small-profile",
        "ctxbuild.toml:8",
        &[("ctxbuild.toml", &small)],
        &[],
    );
    // The threshold is configurable.
    let lowered = format!("{small}\n[check]\nsmall_profile_memory = \"256Mi\"\n");
    case(
        "cloudrun-small-profile",
        "ctxbuild.toml:8",
        &[("ctxbuild.toml", &small)],
        &[("ctxbuild.toml", &lowered)],
    );
}

#[test]
fn context_bytecode() {
    case(
        "context-bytecode",
        "api/lib/__pycache__/m.cpython-312.pyc",
        &[
            ("api/lib/__pycache__/m.cpython-312.pyc", "\u{1}bytecode"),
            ("api/.dockerignore", ".env\n"),
        ],
        &[("api/lib/__pycache__/m.cpython-312.pyc", "\u{1}bytecode")],
    );
}

#[test]
fn context_secret() {
    case(
        "context-secret",
        "api/.env",
        &[
            ("api/.env", "TOKEN=1\n"),
            ("api/.dockerignore", "**/__pycache__\n"),
        ],
        &[("api/.env", "TOKEN=1\n")],
    );
    case(
        "context-secret",
        "api/certs/server.pem:3",
        &[(
            "api/certs/server.pem",
            "x\ny\n-----BEGIN EC PRIVATE KEY-----\nMHc\n",
        )],
        &[("api/certs/server.pem", "-----BEGIN CERTIFICATE-----\nMII\n")],
    );
    case(
        "context-secret",
        "api/sa.json:2",
        &[(
            "api/sa.json",
            "{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\"\n}\n",
        )],
        &[
            ("api/sa.json", "{\n  \"type\": \"service_account\"\n}\n"),
            ("api/.dockerignore", "sa.json\n"),
        ],
    );
}

#[test]
fn ignored_rules_are_not_reported() {
    let untagged = DOCKERFILE.replace("FROM python:3.12-slim", "FROM python");
    let config = format!("{CONFIG}\n[check]\nignore = [\"base-image-tag\"]\n");
    let (findings, code) = check(&[("api/Dockerfile", &untagged), ("ctxbuild.toml", &config)]);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(code, 0);
}

#[test]
fn human_output_names_rule_location_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = DOCKERFILE.replace("EXPOSE 8080", "EXPOSE 8001");
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", CONFIG),
            ("api/requirements.txt", REQUIREMENTS),
            ("api/main.py", MAIN_PY),
            ("api/Dockerfile", &bad),
        ],
    );
    let o = common::TestEnv::at(dir.path()).run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = common::stdout(&o);
    assert!(out.starts_with("api/Dockerfile:8: error[port-mismatch] EXPOSE defaults to port 8001, but the deploy sends traffic to 8080\n  fix: "), "{out}");
    assert!(
        common::stderr(&o).contains("1 error"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn only_named_services_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let two = format!(
        "{CONFIG}\n[services.web]\nkind = \"node\"\ncontext = \"web\"\ndockerfile = \"Dockerfile\"\n"
    );
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", &two),
            ("api/requirements.txt", REQUIREMENTS),
            ("api/main.py", MAIN_PY),
            ("api/Dockerfile", DOCKERFILE),
            ("web/Dockerfile", "FROM node\nCMD [\"node\", \"s.js\"]\n"),
        ],
    );
    let o = common::TestEnv::at(dir.path()).run(&["check", "api"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stdout(&o));
    let o = common::TestEnv::at(dir.path()).run(&["check"]);
    assert!(
        common::stdout(&o).contains("web/Dockerfile:1: warning[base-image-tag]"),
        "{}",
        common::stdout(&o)
    );
    // Repeated names are checked once, in the order first given.
    let o = common::TestEnv::at(dir.path()).run(&["check", "--json", "web", "api", "web", "api"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["services"], serde_json::json!(["web", "api"]));
    let o = common::TestEnv::at(dir.path()).run(&["check", "api", "api"]);
    assert!(
        common::stderr(&o).contains("checked 1 service "),
        "{}",
        common::stderr(&o)
    );
    let o = common::TestEnv::at(dir.path()).run(&["check", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_repository_examples_pass() {
    let o = common::TestEnv::at(&common::repo_root()).run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        report["services"],
        serde_json::json!(["auth", "backend", "frontend"])
    );
}

#[test]
fn every_rule_has_a_case() {
    // Checked on this file's source, so the result does not depend on test order or filters.
    let src = include_str!("check.rs");
    let untested: Vec<&str> = RULES
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| {
            let flat: String = src.split_whitespace().collect();
            !flat.contains(&format!("case(\"{id}\""))
        })
        .collect();
    assert!(
        untested.is_empty(),
        "rules without a failing/passing case: {untested:?}"
    );
}

#[test]
fn readme_documents_every_rule() {
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    let section = readme.split("## check").nth(1).expect("a check section");
    for r in RULES {
        let row = format!("| `{}` | {} |", r.id, r.severity.as_str());
        assert!(section.contains(&row), "README's check table lacks {row}");
    }
}

#[test]
fn context_secret_by_content_under_innocent_names() {
    case(
        "context-secret",
        "api/notes/private.txt:2",
        &[(
            "api/notes/private.txt",
            "keep safe\n-----BEGIN PRIVATE KEY-----\nMIIE\n",
        )],
        &[("api/notes/private.txt", "keep safe\n")],
    );
    case(
        "context-secret",
        "api/data.bin.txt:3",
        &[(
            "api/data.bin.txt",
            "{\n\"project_id\": \"p\",\n\"type\": \"service_account\"\n}\n",
        )],
        &[("api/data.bin.txt", "{\"type\": \"user\"}\n")],
    );
    case(
        "context-secret",
        "api/prod.env",
        &[("api/prod.env", "DB=x\n")],
        &[("api/prod.env.example", "DB=x\n")],
    );
}

// ---- Issue 9: the Dockerfile a service builds, and the Python project behind it ----

#[test]
fn dockerfile_unused() {
    // ctxbuild.toml decides: without a `dockerfile` key the render is built (and checked), and
    // the context's own Dockerfile is a warning that says how to use it.
    let rendered = rendered_config();
    case(
        "dockerfile-unused",
        "api/Dockerfile",
        &[("ctxbuild.toml", &rendered)],
        &[],
    );
    // The lowercase name the docker CLI accepts is found too.
    case(
        "dockerfile-unused",
        "api/dockerfile",
        &[
            ("ctxbuild.toml", &rendered),
            ("api/Dockerfile", ""),
            ("api/dockerfile", DOCKERFILE),
        ],
        &[
            (
                "ctxbuild.toml",
                &CONFIG.replace("\"Dockerfile\"", "\"dockerfile\""),
            ),
            ("api/Dockerfile", ""),
            ("api/dockerfile", DOCKERFILE),
        ],
    );
    let r = report(&[("ctxbuild.toml", &rendered)]);
    let f = &r["findings"][0];
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("`dockerfile = \"Dockerfile\"`"),
        "{f}"
    );
    // check and image agree: a broken but unused Dockerfile is not what gets built.
    let broken = DOCKERFILE.replace("WORKDIR /app", "WORKDIRR /app");
    let (findings, code) = check(&[("ctxbuild.toml", &rendered), ("api/Dockerfile", &broken)]);
    assert!(
        !findings.iter().any(|(r, ..)| r == "dockerfile-invalid"),
        "{findings:?}"
    );
    assert_eq!(code, 0);
    assert_eq!(
        r["dockerfiles"][0]["dockerfile"], "<rendered python-asgi/alpine>",
        "{r:#}"
    );
    assert_eq!(
        report(&[])["dockerfiles"][0]["dockerfile"],
        "api/Dockerfile"
    );
}

#[test]
fn dockerfile_outside_the_context_is_configurable() {
    let outside = CONFIG.replace(
        "dockerfile = \"Dockerfile\"",
        "dockerfile = \"../docker/api.Dockerfile\"",
    );
    let r = report(&[
        ("ctxbuild.toml", &outside),
        ("api/Dockerfile", ""),
        ("docker/api.Dockerfile", DOCKERFILE),
    ]);
    assert_eq!(r["findings"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["dockerfiles"][0]["dockerfile"], "docker/api.Dockerfile");
    // Its lines are reported in that file.
    let bad = DOCKERFILE.replace("EXPOSE 8080", "EXPOSE 8001");
    case(
        "port-mismatch",
        "docker/api.Dockerfile:8",
        &[("ctxbuild.toml", &outside), ("docker/api.Dockerfile", &bad)],
        &[
            ("ctxbuild.toml", &outside),
            ("docker/api.Dockerfile", DOCKERFILE),
        ],
    );
    // Above the directory of ctxbuild.toml: a configuration error naming the key.
    let dir = service_dir(&[(
        "ctxbuild.toml",
        &CONFIG.replace("\"Dockerfile\"", "\"../../api.Dockerfile\""),
    )]);
    let o = common::TestEnv::at(dir.path()).run(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(err.contains("ctxbuild.toml:5"), "{err}");
    assert!(err.contains("relative to the service's `context`"), "{err}");
}

#[test]
fn server_not_installed() {
    // A hand-written CMD running gunicorn that nothing installs dies with exit 127 at boot.
    let old_worker = dockerfile_with_cmd(&GOOD_CMD.replace(
        "uvicorn_worker.UvicornWorker",
        "uvicorn.workers.UvicornWorker",
    ));
    case(
        "server-not-installed",
        "api/Dockerfile:9",
        &[
            ("api/Dockerfile", &old_worker),
            ("api/requirements.txt", "fastapi\nuvicorn\n"),
        ],
        &[
            ("api/Dockerfile", &old_worker),
            (
                "api/requirements.txt",
                "fastapi\nuvicorn\ngunicorn==23.0.0\n",
            ),
        ],
    );
    // uvicorn run directly: `fastapi[standard]` pulls it in.
    let uvicorn = dockerfile_with_cmd(
        r#"CMD ["sh", "-c", "exec uvicorn main:app --host 0.0.0.0 --port ${PORT:-8080}"]"#,
    );
    case(
        "server-not-installed",
        "api/Dockerfile:9",
        &[
            ("api/Dockerfile", &uvicorn),
            ("api/requirements.txt", "fastapi\n"),
        ],
        &[
            ("api/Dockerfile", &uvicorn),
            ("api/requirements.txt", "fastapi[standard]>=0.110\n"),
        ],
    );
    // The Dockerfile may install it itself.
    let own = old_worker.replace(
        "RUN pip install --no-cache-dir -r requirements.txt",
        "RUN pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0",
    );
    let (findings, _) = check(&[
        ("api/Dockerfile", &own),
        ("api/requirements.txt", "fastapi\nuvicorn\n"),
    ]);
    assert!(
        !findings.iter().any(|(r, ..)| r == "server-not-installed"),
        "{findings:?}"
    );
    let r = report(&[
        ("api/Dockerfile", &old_worker),
        ("api/requirements.txt", "fastapi\nuvicorn\n"),
    ]);
    assert!(
        message(&r, "server-not-installed").contains("`exec: gunicorn: not found`"),
        "{r:#}"
    );
}

#[test]
fn template_installs() {
    // The rendered template adds the server the project does not list, and says so.
    let rendered = rendered_config();
    case(
        "template-installs",
        "ctxbuild.toml:1",
        &[
            ("ctxbuild.toml", &rendered),
            ("api/Dockerfile", ""),
            ("api/requirements.txt", "fastapi\n"),
        ],
        &[("ctxbuild.toml", &rendered), ("api/Dockerfile", "")],
    );
    let r = report(&[
        ("ctxbuild.toml", &rendered),
        ("api/Dockerfile", ""),
        ("api/requirements.txt", "fastapi\nuvicorn\n"),
    ]);
    let m = message(&r, "template-installs");
    assert!(
        m.starts_with("the image installs gunicorn==27.0.1 uvicorn-worker==0.4.0 (not in api/requirements.txt)"),
        "{m}"
    );
    // A note: exit 0, counted apart from warnings.
    assert_eq!(
        (r["errors"].as_u64(), r["notes"].as_u64()),
        (Some(0), Some(1))
    );
}

#[test]
fn app_unresolved() {
    let app = |a: &str| CONFIG.replace("app = \"main:app\"", &format!("app = \"{a}\""));
    let hint = |changes: &[(&str, &str)]| -> String {
        let r = report(changes);
        let f = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "app-unresolved")
            .unwrap_or_else(|| panic!("{r:#}"))
            .clone();
        f["fix"].as_str().unwrap().to_string()
    };
    // A module that does not exist.
    case(
        "app-unresolved",
        "ctxbuild.toml:4",
        &[("ctxbuild.toml", &app("server:app"))],
        &[
            ("ctxbuild.toml", &app("server:app")),
            ("api/server.py", MAIN_PY),
        ],
    );
    // A missing attribute.
    case(
        "app-unresolved",
        "ctxbuild.toml:4",
        &[("ctxbuild.toml", &app("main:application"))],
        &[("ctxbuild.toml", &app("main:app"))],
    );
    // A file path instead of an import path.
    assert!(
        hint(&[("ctxbuild.toml", &app("main.py:app"))]).contains("`app = \"main:app\"`"),
        "main.py:app"
    );
    // `main.py` is only a launcher: the suggestion is what it starts.
    let launcher = "import uvicorn\n\nif __name__ == \"__main__\":\n    uvicorn.run(\"pkg.api:app\", host=\"0.0.0.0\")\n";
    let files = [
        ("api/main.py", launcher),
        ("api/pkg/__init__.py", "\n"),
        ("api/pkg/api.py", MAIN_PY),
    ];
    assert!(
        hint(&files).contains("`app = \"pkg.api:app\"`"),
        "{}",
        hint(&files)
    );
    let mut fixed = files.to_vec();
    let cfg = app("pkg.api:app");
    fixed.push(("ctxbuild.toml", &cfg));
    let (findings, _) = check(&fixed);
    assert!(
        !findings.iter().any(|(r, ..)| r == "app-unresolved"),
        "{findings:?}"
    );
}

#[test]
fn builder_syntax() {
    // Each line is rejected by the classic builder (dockerd 20.10, DOCKER_BUILDKIT=0).
    let flagged = [
        (
            "RUN pip install --no-cache-dir -r requirements.txt",
            "RUN --mount=type=cache,target=/root/.cache pip install -r requirements.txt",
            "the --mount option requires BuildKit",
        ),
        (
            "RUN pip install --no-cache-dir -r requirements.txt",
            "RUN --network=none pip install --no-cache-dir -r requirements.txt",
            "Unknown flag: network",
        ),
        (
            "RUN pip install --no-cache-dir -r requirements.txt",
            "RUN --security=insecure pip install --no-cache-dir -r requirements.txt",
            "Unknown flag: security",
        ),
        ("COPY . .", "COPY --link . .", "Unknown flag: link"),
        ("COPY . .", "COPY --chmod=644 . .", "the --chmod option requires BuildKit"),
        ("COPY . .", "ADD --chmod=644 . .", "the --chmod option requires BuildKit"),
        ("COPY . .", "COPY --parents . .", "Unknown flag: parents"),
        ("COPY . .", "COPY --exclude=*.md . .", "Unknown flag: exclude"),
        (
            "COPY . .",
            "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 . .",
            "Unknown flag: checksum",
        ),
    ];
    // The service asks for the classic builder (under the default `auto`, such a file is
    // built with BuildKit; see below).
    let classic = CONFIG.replace(
        "dockerfile = \"Dockerfile\"\n",
        "dockerfile = \"Dockerfile\"\nbuilder = \"classic\"\n",
    );
    for (from, to, says) in flagged {
        let bad = DOCKERFILE.replace(from, to);
        let line = bad.lines().position(|l| l == to).unwrap() + 1;
        let files = [
            ("api/Dockerfile", bad.as_str()),
            ("ctxbuild.toml", &classic),
        ];
        case(
            "builder-syntax",
            &format!("api/Dockerfile:{line}"),
            &files,
            &[("ctxbuild.toml", &classic)],
        );
        let m = message(&report(&files), "builder-syntax").to_string();
        assert!(m.contains("classic builder") && m.contains(says), "{m}");
    }
    // What the classic builder accepts passes.
    let (findings, _) = check(&[(
        "api/Dockerfile",
        &DOCKERFILE.replace("COPY . .", "COPY --chown=10001:10001 . ."),
    )]);
    assert!(findings.is_empty(), "{findings:?}");
    // The builder is a parameter of the rule: BuildKit accepts the same file.
    let bad = DOCKERFILE.replace("COPY . .", "COPY --link . .");
    let dir = service_dir(&[("api/Dockerfile", &bad)]);
    let config = ctxbuild::service::Config::load(&dir.path().join("ctxbuild.toml")).unwrap();
    let run = |builder| {
        ctxbuild::check::run_with(&config, &[], &ctxbuild::check::Options { builder })
            .unwrap()
            .findings
            .iter()
            .filter(|f| f.rule == "builder-syntax")
            .count()
    };
    use ctxbuild::builder::BuilderChoice;
    assert_eq!(run(Some(BuilderChoice::Classic)), 1);
    assert_eq!(run(Some(BuilderChoice::BuildKit)), 0);
    // `auto` (the default) builds a file that needs BuildKit with BuildKit: no error.
    assert_eq!(run(Some(BuilderChoice::Auto)), 0);
    assert_eq!(run(None), 0);
    // `builder = "classic"` in ctxbuild.toml is honoured, and `--builder` overrides it.
    let dir = service_dir(&[("api/Dockerfile", &bad), ("ctxbuild.toml", &classic)]);
    let config = ctxbuild::service::Config::load(&dir.path().join("ctxbuild.toml")).unwrap();
    let run = |builder| {
        ctxbuild::check::run_with(&config, &[], &ctxbuild::check::Options { builder })
            .unwrap()
            .findings
            .iter()
            .filter(|f| f.rule == "builder-syntax")
            .count()
    };
    assert_eq!(run(None), 1);
    assert_eq!(run(Some(BuilderChoice::BuildKit)), 0);
    let o = common::TestEnv::at(dir.path()).run(&["check", "--json", "--builder", "buildkit"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let o = common::TestEnv::at(dir.path()).run(&["check", "--builder", "kit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("classic, buildkit, auto"));
}

const GUNICORN_ONLY: &str = r#"CMD ["sh", "-c", "exec gunicorn main:app"]"#;

#[test]
fn gunicorn_conf_is_honoured() {
    // The worker class set in gunicorn.conf.py (in the WORKDIR, from `COPY . .`) counts: no
    // false asgi-server error; the fixed bind there is the real problem, reported at its line.
    let plain = dockerfile_with_cmd(GUNICORN_ONLY);
    let conf =
        "import os\nworker_class = \"uvicorn_worker.UvicornWorker\"\nbind = \"0.0.0.0:8000\"\n";
    let (findings, _) = check(&[("api/Dockerfile", &plain), ("api/gunicorn.conf.py", conf)]);
    assert!(
        !findings.iter().any(|(r, ..)| r == "asgi-server"),
        "{findings:?}"
    );
    let good_conf = "import os\nworker_class = \"uvicorn_worker.UvicornWorker\"\nbind = \"0.0.0.0:\" + os.environ.get(\"PORT\", \"8080\")\n";
    case(
        "port-mismatch",
        "api/gunicorn.conf.py:3",
        &[("api/Dockerfile", &plain), ("api/gunicorn.conf.py", conf)],
        &[
            ("api/Dockerfile", &plain),
            ("api/gunicorn.conf.py", good_conf),
        ],
    );
    case(
        "port-fixed",
        "api/gunicorn.conf.py:3",
        &[
            ("api/Dockerfile", &plain),
            ("api/gunicorn.conf.py", &conf.replace("8000", "8080")),
        ],
        &[
            ("api/Dockerfile", &plain),
            ("api/gunicorn.conf.py", good_conf),
        ],
    );
    // Without the file, gunicorn's sync worker runs.
    case(
        "asgi-server",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &plain)],
        &[
            ("api/Dockerfile", &plain),
            ("api/gunicorn.conf.py", good_conf),
        ],
    );
    // `-c` names another file; GUNICORN_CMD_ARGS in ENV sets the worker too.
    let with_c = dockerfile_with_cmd(
        r#"CMD ["sh", "-c", "exec gunicorn -c /app/conf/gunicorn.py main:app"]"#,
    );
    let (findings, _) = check(&[
        ("api/Dockerfile", &with_c),
        ("api/conf/gunicorn.py", good_conf),
    ]);
    assert!(findings.is_empty(), "{findings:?}");
    let env = plain.replace(
        "EXPOSE 8080",
        "EXPOSE 8080\nENV GUNICORN_CMD_ARGS=\"-k uvicorn_worker.UvicornWorker --bind 0.0.0.0:9000\"",
    );
    case(
        "port-mismatch",
        "api/Dockerfile:9",
        &[("api/Dockerfile", &env)],
        // Without a bind gunicorn follows $PORT itself.
        &[("api/Dockerfile", &env.replace(" --bind 0.0.0.0:9000", ""))],
    );
    let (findings, _) = check(&[("api/Dockerfile", &env)]);
    assert!(
        !findings.iter().any(|(r, ..)| r == "asgi-server"),
        "{findings:?}"
    );
}

#[test]
fn no_cmd_says_what_ctxbuild_knows() {
    let none = DOCKERFILE.replace(&format!("{GOOD_CMD}\n"), "");
    let r = report(&[("api/Dockerfile", &none)]);
    let m = message(&r, "asgi-server");
    assert!(
        m.contains("the base image's CMD runs") && m.contains("cannot see it offline"),
        "{m}"
    );
    assert!(!m.contains("Python prompt"), "{m}");
}

#[test]
fn health_path_unmentioned() {
    let rendered =
        rendered_config().replace("dockerfile", "health_path = \"/healthz\"\ndockerfile");
    let rendered = if rendered.contains("health_path") {
        rendered
    } else {
        rendered_config().replace(
            "[services.api.deploy]",
            "health_path = \"/healthz\"\n[services.api.deploy]",
        )
    };
    case(
        "health-path-unmentioned",
        "ctxbuild.toml:5",
        &[("ctxbuild.toml", &rendered), ("api/Dockerfile", "")],
        &[
            ("ctxbuild.toml", &rendered),
            ("api/Dockerfile", ""),
            (
                "api/main.py",
                "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/healthz\")\ndef hz():\n    return {}\n",
            ),
        ],
    );
}

#[test]
fn bytecode_missing() {
    // The rendered template told not to compile.
    let off = rendered_config().replace(
        "[services.api.deploy]",
        "compile_bytecode = false\n[services.api.deploy]",
    );
    case(
        "bytecode-missing",
        "ctxbuild.toml:5",
        &[("ctxbuild.toml", &off), ("api/Dockerfile", "")],
        &[
            ("ctxbuild.toml", &rendered_config()),
            ("api/Dockerfile", ""),
        ],
    );
    // A hand-written install that writes no bytecode, with and without a compile step after it.
    let no_compile = DOCKERFILE.replace(
        "pip install --no-cache-dir",
        "pip install --no-cache-dir --no-compile",
    );
    case(
        "bytecode-missing",
        "api/Dockerfile:5",
        &[("api/Dockerfile", &no_compile)],
        &[(
            "api/Dockerfile",
            &no_compile.replace(
                "COPY . .\n",
                "COPY . .\nRUN python -m compileall -q --invalidation-mode unchecked-hash /usr/local/lib /app\n",
            ),
        )],
    );
    let uv = DOCKERFILE.replace(
        "RUN pip install --no-cache-dir -r requirements.txt",
        "RUN pip install uv && uv pip install --system -r requirements.txt",
    );
    case(
        "bytecode-missing",
        "api/Dockerfile:5",
        &[("api/Dockerfile", &uv)],
        &[(
            "api/Dockerfile",
            &uv.replace("uv pip install", "uv pip install --compile-bytecode"),
        )],
    );
}

#[test]
fn messages_are_tidy() {
    // No stray space inside backticks in the bytecode fix, no "the incident" anywhere.
    let r = report(&[
        ("api/lib/__pycache__/m.cpython-312.pyc", "\u{1}bc"),
        ("api/.dockerignore", ".env\n"),
    ]);
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "context-bytecode")
        .unwrap();
    let fix = f["fix"].as_str().unwrap();
    for (i, span) in fix.split('`').enumerate() {
        if i % 2 == 1 {
            assert_eq!(span, span.trim(), "space inside backticks: {fix}");
        }
    }
    assert!(fix.contains("`**/__pycache__`"), "{fix}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("1 bytecode file,"),
        "{f}"
    );
    for r in RULES {
        assert!(!r.summary.contains("incident"), "{}", r.summary);
    }
    let small = CONFIG.replace("memory = \"1Gi\"", "memory = \"512Mi\"");
    let r = report(&[("ctxbuild.toml", &small)]);
    assert!(!message(&r, "cloudrun-small-profile").contains("incident"));
}

// ---- Issue 12 §7: --format sarif | github ----

#[test]
fn format_sarif_is_valid_sarif_2_1_0() {
    let bad = DOCKERFILE.replace("EXPOSE 8080", "EXPOSE 8001");
    let dir = service_dir(&[("api/Dockerfile", &bad)]);
    let o = common::TestEnv::at(dir.path()).run(&["check", "--format", "sarif"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The required fields of SARIF 2.1.0 (sarifLog, run, tool, toolComponent,
    // reportingDescriptor, result, message, physicalLocation, artifactLocation, region).
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "ctxbuild");
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    for (rule, known) in rules.iter().zip(RULES) {
        assert_eq!(rule["id"], known.id.as_str());
        assert!(!rule["shortDescription"]["text"]
            .as_str()
            .unwrap()
            .is_empty());
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{v:#}");
    let r = &results[0];
    assert_eq!(r["ruleId"], "port-mismatch");
    assert_eq!(
        rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "port-mismatch"
    );
    assert!(["error", "warning", "note", "none"].contains(&r["level"].as_str().unwrap()));
    assert_eq!(r["level"], "error");
    assert!(r["message"]["text"].as_str().unwrap().contains("8001"));
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "api/Dockerfile");
    assert_eq!(loc["region"]["startLine"], 8);
    // uri is relative to the repository root, also when run from a subdirectory.
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let sub = tempfile::tempdir_in(dir.path()).unwrap();
    std::fs::rename(dir.path().join("api"), sub.path().join("api")).unwrap();
    std::fs::rename(
        dir.path().join("ctxbuild.toml"),
        sub.path().join("ctxbuild.toml"),
    )
    .unwrap();
    let o = common::TestEnv::at(sub.path()).run(&["check", "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let name = sub.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        format!("{name}/api/Dockerfile")
    );
}

#[test]
fn format_github_annotations() {
    let bad = DOCKERFILE.replace("EXPOSE 8080", "EXPOSE 8001");
    let dir = service_dir(&[("api/Dockerfile", &bad)]);
    let o = common::TestEnv::at(dir.path()).run(&["check", "--format", "github"]);
    assert_eq!(o.status.code(), Some(1));
    let out = common::stdout(&o);
    assert!(
        out.starts_with("::error file=api/Dockerfile,line=8,title=port-mismatch::EXPOSE defaults to port 8001, but the deploy sends traffic to 8080%0Afix: "),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    // --json stays an alias of --format json.
    let a = common::TestEnv::at(dir.path()).run(&["check", "--json"]);
    let b = common::TestEnv::at(dir.path()).run(&["check", "--format", "json"]);
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());
}

#[test]
fn github_actions_example_runs_the_integrations() {
    let wf =
        std::fs::read_to_string(common::repo_root().join("examples/github-actions.yml")).unwrap();
    for needle in [
        "ctxbuild clean --check",
        "ctxbuild check --format sarif > ctxbuild.sarif",
        "github/codeql-action/upload-sarif",
        "sarif_file: ctxbuild.sarif",
        "ctxbuild check --format github",
        "security-events: write",
    ] {
        assert!(
            wf.contains(needle),
            "examples/github-actions.yml lacks {needle}"
        );
    }
}
