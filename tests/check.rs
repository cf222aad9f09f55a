//! `ctxbuild check`, one test per rule: a failing input where the rule fires at the right
//! file:line, and a passing input (usually a near miss) where it does not. Every case starts
//! from a clean service that passes with no findings at all, and changes one thing.

mod common;

use ctxbuild::check::RULES;

const CONFIG: &str = r#"[services.api]
kind = "python-asgi"
context = "api"
app = "main:app"

[services.api.deploy]
cpu = 1
memory = "1Gi"
request_timeout = 300
"#;

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

/// The findings (rule, location, severity) and exit code of `check --json` on the clean
/// service with `changes` applied (a file written with "" is deleted).
fn check(changes: &[(&str, &str)]) -> (Vec<(String, String, String)>, i32) {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", CONFIG),
            ("api/requirements.txt", REQUIREMENTS),
            (
                "api/main.py",
                "from fastapi import FastAPI\napp = FastAPI()\n",
            ),
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
    let o = common::ctxbuild(dir.path(), &["check", "--json"]);
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
    let o = common::ctxbuild(dir.path(), &["render", "api", "--slim"]);
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
    let config = CONFIG.replace(
        "app = \"main:app\"",
        "app = \"main:app\"\ndockerfile = \"Dockerfile\"",
    );
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
        "app = \"main:app\"",
        "app = \"main:app\"\ndockerfile = \"docker/Dockerfile.prod\"",
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
fn requirements_missing() {
    // Without a Dockerfile of its own the service is checked as rendered, which needs requirements.
    case(
        "requirements-missing",
        "ctxbuild.toml:1",
        &[("api/Dockerfile", ""), ("api/requirements.txt", "")],
        &[("api/Dockerfile", "")],
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
    let o = common::ctxbuild(dir.path(), &["check"]);
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
            ("api/Dockerfile", &bad),
        ],
    );
    let o = common::ctxbuild(dir.path(), &["check"]);
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
    let two = format!("{CONFIG}\n[services.web]\nkind = \"node\"\ncontext = \"web\"\n");
    common::write_tree(
        dir.path(),
        &[
            ("ctxbuild.toml", &two),
            ("api/requirements.txt", REQUIREMENTS),
            ("api/Dockerfile", DOCKERFILE),
            ("web/Dockerfile", "FROM node\nCMD [\"node\", \"s.js\"]\n"),
        ],
    );
    let o = common::ctxbuild(dir.path(), &["check", "api"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stdout(&o));
    let o = common::ctxbuild(dir.path(), &["check"]);
    assert!(
        common::stdout(&o).contains("web/Dockerfile:1: warning[base-image-tag]"),
        "{}",
        common::stdout(&o)
    );
    // Repeated names are checked once, in the order first given.
    let o = common::ctxbuild(dir.path(), &["check", "--json", "web", "api", "web", "api"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["services"], serde_json::json!(["web", "api"]));
    let o = common::ctxbuild(dir.path(), &["check", "api", "api"]);
    assert!(
        common::stderr(&o).contains("checked 1 service "),
        "{}",
        common::stderr(&o)
    );
    let o = common::ctxbuild(dir.path(), &["check", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_repository_examples_pass() {
    let o = common::ctxbuild(&common::repo_root(), &["check", "--json"]);
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
            !src.contains(&format!("case(\"{id}\""))
                && !src.contains(&format!("case(\n        \"{id}\""))
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
