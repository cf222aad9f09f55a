//! `ctxbuild smoke` end to end on the real engine: the example backend passes; apps that bind
//! late, allocate past the limit, bind the wrong port or loopback only, or die at import are
//! each reported as such with exit 1; `--sweep` finds the smallest profile a memory-hungry app
//! fits; no smoke container is left behind, also after SIGINT mid-run.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it;
// there a missing engine fails the run).
#![cfg(feature = "engine-tests")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The label every smoke container carries (its value is the service).
const LABEL: &str = "io.ctxbuild.smoke";

/// A tiny HTTP server in plain Python whose misbehaviour is chosen by `key=value` arguments:
/// `need=VAR` exits unless `VAR` is set, `exit=1` dies at "import", `alloc_mb=N` touches N MiB first, `sleep=S` waits before binding,
/// `gap=S` binds then waits before answering, `host=`/`port=` choose the address (default
/// 0.0.0.0:$PORT). Every path but `/nope` answers 200.
const SERVER: &str = r#"
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
args = dict(a.split("=", 1) for a in sys.argv[1:])
print("starting", args, flush=True)
if "need" in args and args["need"] not in os.environ:
    print("missing environment variable", args["need"], file=sys.stderr, flush=True)
    sys.exit(4)
if "exit" in args:
    print("Traceback (most recent call last):", file=sys.stderr)
    print("ModuleNotFoundError: No module named 'missing_dependency'", file=sys.stderr, flush=True)
    sys.exit(3)
hog = b"x" * (int(args.get("alloc_mb", "0")) * 1024 * 1024)
time.sleep(float(args.get("sleep", "0")))
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404 if self.path == "/nope" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
server = ThreadingHTTPServer((args.get("host", "0.0.0.0"), int(args.get("port") or os.environ["PORT"])), Handler)
time.sleep(float(args.get("gap", "0")))
server.serve_forever()
"#;

/// Builds an image running [`SERVER`] with `args`, tagged uniquely; removed on drop.
struct App {
    tag: String,
}

impl App {
    fn build(args: &[&str]) -> App {
        common::require_engine();
        let tag = format!("{}:1", common::unique("ctxbuild-smoke-e2e/app"));
        let dir = tempfile::tempdir().unwrap();
        let cmd: Vec<String> = ["python3", "-u", "/server.py"]
            .iter()
            .map(|s| format!("\"{s}\""))
            .chain(args.iter().map(|a| format!("\"{a}\"")))
            .collect();
        common::write_tree(
            dir.path(),
            &[
                ("server.py", SERVER),
                (
                    "Dockerfile",
                    &format!(
                        "FROM {}\nCOPY server.py /server.py\nCMD [{}]\n",
                        common::python_image(),
                        cmd.join(", ")
                    ),
                ),
            ],
        );
        common::docker(&["build", "-q", "-t", &tag, dir.path().to_str().unwrap()]);
        App { tag }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = common::docker_output(&["rmi", "-f", &self.tag]);
    }
}

/// A project whose one service `name` deploys with `cpu`/`memory` and health_path `/`.
fn project(name: &str, cpu: &str, memory: &str) -> tempfile::TempDir {
    project_with_health(name, cpu, memory, "/")
}

fn project_with_health(name: &str, cpu: &str, memory: &str, health: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                &format!(
                    "[services.{name}]\nkind = \"python-asgi\"\ncontext = \"app\"\napp = \"main:app\"\nhealth_path = \"{health}\"\n\n[services.{name}.deploy]\ncpu = {cpu}\nmemory = \"{memory}\"\nconcurrency = 1\n"
                ),
            ),
            ("app/main.py", "app = None\n"),
        ],
    );
    dir
}

fn smoke(dir: &Path, args: &[&str]) -> std::process::Output {
    common::TestEnv::at(dir)
        .cmd(&["smoke", "--progress", "none"])
        .args(args)
        .output()
        .unwrap()
}

/// Smoke containers of `service` still on the engine (running or not).
fn leftovers(service: &str) -> Vec<String> {
    common::docker(&["ps", "-aq", "--filter", &format!("label={LABEL}={service}")])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `smoke SERVICE --image APP ARGS --json` and returns the exit code, the parsed JSON and
/// stderr; asserts no container is left behind.
fn run_json(
    name: &str,
    cpu: &str,
    memory: &str,
    app: &App,
    args: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let dir = project(name, cpu, memory);
    assert!(leftovers(name).is_empty());
    let mut all = vec![name, "--image", &app.tag, "--json"];
    all.extend_from_slice(args);
    let o = smoke(dir.path(), &all);
    let out = common::stdout(&o);
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{}", common::stderr(&o)));
    assert_eq!(
        leftovers(name),
        Vec::<String>::new(),
        "container left behind"
    );
    (o.status.code(), json)
}

fn kinds(run: &serde_json::Value) -> Vec<String> {
    run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

fn message(run: &serde_json::Value, kind: &str) -> String {
    run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .map(|f| f["message"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {kind} finding in {run}"))
}

#[test]
fn a_healthy_app_passes_with_timings_and_memory() {
    let app = App::build(&[]);
    let (code, json) = run_json("healthy", "1", "512Mi", &app, &[]);
    assert_eq!(code, Some(0), "{json}");
    let run = &json["runs"][0];
    assert_eq!(run["passed"], true, "{run}");
    assert_eq!(run["port"], 8080);
    assert_eq!(json["platform"], "linux/amd64");
    let tcp = run["tcp_ms"].as_u64().unwrap();
    let http = run["http_ms"].as_u64().unwrap();
    assert!(tcp <= http, "{run}");
    assert_eq!(run["health_status"], 200);
    assert!(run["peak_memory"].as_u64().unwrap() > 1_000_000, "{run}");
    assert_eq!(run["listeners"][0]["port"], 8080);
    assert!(kinds(run).is_empty(), "{run}");
}

#[test]
fn an_app_that_sleeps_before_binding_fails_the_budget() {
    let app = App::build(&["sleep=30"]);
    let dir = project("sleepy", "1", "512Mi");
    let t = Instant::now();
    let o = smoke(
        dir.path(),
        &["sleepy", "--image", &app.tag, "--budget", "3"],
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("error: did not listen on PORT 8080 within the 3 s budget"),
        "{out}"
    );
    assert!(out.contains("FAIL"), "{out}");
    assert!(leftovers("sleepy").is_empty());
}

#[test]
fn an_app_that_allocates_past_the_limit_is_reported_oom_killed() {
    let app = App::build(&["alloc_mb=400"]);
    let (code, json) = run_json("hog", "0.5", "256Mi", &app, &["--budget", "30"]);
    assert_eq!(code, Some(1), "{json}");
    let run = &json["runs"][0];
    assert_eq!(run["oom_killed"], true, "{run}");
    assert!(kinds(run).contains(&"oom_killed".to_string()), "{run}");
    assert!(
        message(run, "oom_killed").contains("OOM-killed: it needed more than the 256Mi limit"),
        "{run}"
    );
}

#[test]
fn an_app_on_another_port_is_listening_on_the_wrong_port() {
    let app = App::build(&["port=8001"]);
    let (code, json) = run_json("wrongport", "1", "512Mi", &app, &["--budget", "3"]);
    assert_eq!(code, Some(1), "{json}");
    let run = &json["runs"][0];
    assert_eq!(
        message(run, "wrong_port"),
        "listening on the wrong port: 8001 while PORT is 8080"
    );
}

#[test]
fn an_app_bound_to_loopback_is_reported_so() {
    let app = App::build(&["host=127.0.0.1"]);
    let (code, json) = run_json("loopback", "1", "512Mi", &app, &["--budget", "3"]);
    assert_eq!(code, Some(1), "{json}");
    let run = &json["runs"][0];
    assert!(
        message(run, "loopback_only").starts_with("listening on 127.0.0.1 only (port 8080)"),
        "{run}"
    );
    assert_eq!(run["listeners"][0]["addr"], "127.0.0.1");
}

#[test]
fn an_app_that_exits_at_import_shows_its_last_log_lines() {
    let app = App::build(&["exit=1"]);
    let dir = project("crashy", "1", "512Mi");
    let o = smoke(dir.path(), &["crashy", "--image", &app.tag]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("error: the container exited with code 3 before listening on $PORT"),
        "{out}"
    );
    assert!(
        out.contains("| ModuleNotFoundError: No module named 'missing_dependency'"),
        "{out}"
    );
    assert!(leftovers("crashy").is_empty());
}

#[test]
fn a_port_open_long_before_answers_is_flagged_with_the_gap() {
    let app = App::build(&["gap=3"]);
    let (code, json) = run_json("gappy", "1", "512Mi", &app, &["--budget", "30"]);
    // A warning, not a failure: Cloud Run starts it, but routes traffic too early.
    assert_eq!(code, Some(0), "{json}");
    let run = &json["runs"][0];
    let m = message(run, "tcp_before_ready");
    assert!(m.contains("accepted connections") && m.contains("before the app answered"));
    let gap = run["http_ms"].as_u64().unwrap() - run["tcp_ms"].as_u64().unwrap();
    assert!(gap >= 2000, "{run}");
}

#[test]
fn a_health_path_that_is_not_200_fails_with_its_status() {
    let app = App::build(&[]);
    let dir = project_with_health("unhealthy", "1", "512Mi", "/nope");
    let o = smoke(
        dir.path(),
        &["unhealthy", "--image", &app.tag, "--budget", "3"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("error: /nope answered 404 instead of 200 within the 3 s budget"),
        "{out}"
    );
    assert!(leftovers("unhealthy").is_empty());
}

#[test]
fn sweep_reports_the_smallest_profile_a_memory_hungry_app_fits() {
    let app = App::build(&["alloc_mb=300"]);
    let (code, json) = run_json("hungry", "1", "512Mi", &app, &["--sweep", "--budget", "60"]);
    assert_eq!(code, Some(0), "{json}");
    let runs = json["runs"].as_array().unwrap();
    // 256Mi is OOM-killed; 512Mi holds ~300 MiB with margin; nothing bigger is tried.
    assert_eq!(runs.len(), 2, "{json}");
    assert_eq!(runs[0]["profile"]["memory_text"], "256Mi");
    assert_eq!(runs[0]["oom_killed"], true);
    assert_eq!(runs[1]["passed"], true);
    assert_eq!(json["smallest_passing"]["memory_text"], "512Mi");
    assert_eq!(json["smallest_passing"]["cpu"], 0.5);
}

/// Sends `signal` to a smoke run once its container started; returns the exit code, after
/// checking that no container of `name` is left.
fn signalled_mid_run(signal: &str, name: &str) -> Option<i32> {
    let app = App::build(&["sleep=60"]);
    let dir = project(name, "1", "512Mi");
    let mut child = common::TestEnv::at(dir.path())
        .cmd(&[])
        .args(["smoke", "--progress", "none", name, "--image", &app.tag])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while leftovers(name).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no container started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(leftovers(name), Vec::<String>::new(), "after SIG{signal}");
    status.code()
}

#[test]
fn sigint_mid_run_removes_the_container_and_exits_130() {
    assert_eq!(signalled_mid_run("INT", "interrupted"), Some(130));
}

/// `docker stop` and Cloud Build end a step with SIGTERM; a dropped ssh session sends SIGHUP.
/// Either left the container running when only SIGINT was handled.
#[test]
fn sigterm_or_sighup_mid_run_removes_the_container_too() {
    assert_eq!(signalled_mid_run("TERM", "terminated"), Some(130));
    assert_eq!(signalled_mid_run("HUP", "hungup"), Some(130));
}

#[test]
fn the_example_backend_passes_smoke() {
    common::require_engine();
    let dir = tempfile::tempdir().unwrap();
    for f in ["main.py", "requirements.txt"] {
        std::fs::copy(
            common::repo_root().join("examples/backend").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        "[services.backend]\nkind = \"python-asgi\"\ncontext = \".\"\napp = \"main:app\"\nworkers = 2\nhealth_path = \"/health\"\n\n[services.backend.deploy]\ncpu = 1\nmemory = \"1Gi\"\n",
    )
    .unwrap();
    let o = smoke(
        dir.path(),
        &["backend", "--base-image", &common::python_image(), "--json"],
    );
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}", common::stderr(&o)));
    // The image keeps its default tag (ctxbuild/backend:latest-build): other suites build it too.
    assert_eq!(o.status.code(), Some(0), "{json}");
    let run = &json["runs"][0];
    assert_eq!(run["health_status"], 200, "{run}");
    assert!(run["health_ms"].as_u64().is_some(), "{run}");
    assert!(leftovers("backend").is_empty());
    // The template compiled the dependencies and the app at build time, as unchecked-hash
    // .pyc files (flags word 1: hash-based, source not checked): no timestamps inside.
    let image = json["image"].as_str().unwrap();
    let flags = common::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import fastapi, glob, os; d = os.path.dirname(fastapi.__file__); \
         fs = glob.glob(d + '/__pycache__/*.pyc') + glob.glob('/app/__pycache__/main.*.pyc'); \
         print(len(fs), sorted({int.from_bytes(open(f, 'rb').read(8)[4:], 'little') for f in fs}))",
    ]);
    let (count, kinds) = flags.trim().split_once(' ').unwrap();
    assert!(count.parse::<usize>().unwrap() > 5, "{flags}");
    assert_eq!(kinds, "[1]", "{flags}");
}

/// The offline Node base image made by `scripts/base-images.sh`.
fn node_image() -> String {
    std::env::var("CTXBUILD_TEST_NODE").unwrap_or_else(|_| "ctxbuild-test/node:20-bookworm".into())
}

#[test]
fn the_example_frontend_builds_through_the_node_template_and_passes_smoke() {
    common::require_engine();
    let dir = tempfile::tempdir().unwrap();
    let src = common::repo_root().join("examples/frontend");
    for f in [
        "package.json",
        "package-lock.json",
        "scripts/build.mjs",
        "src/server.js",
        "public/index.html",
    ] {
        let to = dir.path().join("frontend").join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), to).unwrap();
    }
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        "[services.web]\nkind = \"node\"\ncontext = \"frontend\"\nhealth_path = \"/\"\n\n[services.web.deploy]\ncpu = 1\nmemory = \"512Mi\"\n",
    )
    .unwrap();
    let o = smoke(
        dir.path(),
        &["web", "--slim", "--base-image", &node_image(), "--json"],
    );
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}", common::stderr(&o)));
    assert_eq!(o.status.code(), Some(0), "{json}");
    // The final stage ran (not the deps stage): the server answered on / with 200.
    assert_eq!(json["image"], "ctxbuild/web:latest-build");
    let run = &json["runs"][0];
    assert_eq!(run["health_status"], 200, "{run}");
    assert!(leftovers("web").is_empty());
}

#[test]
fn the_env_file_reaches_the_container_and_port_stays_the_deploys() {
    let app = App::build(&["need=SMOKE_TOKEN"]);
    let dir = tempfile::tempdir().unwrap();
    let toml = "[services.envd]\nkind = \"python-asgi\"\ncontext = \"app\"\napp = \"main:app\"\nhealth_path = \"/\"\n";
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                &format!("{toml}env_file = \"smoke.env\"\n"),
            ),
            // PORT in the file is ignored: Cloud Run sets it.
            (
                "smoke.env",
                "# for smoke only\nSMOKE_TOKEN='s3cret'\nPORT=1\n",
            ),
            ("app/main.py", "app = None\n"),
        ],
    );
    let o = smoke(dir.path(), &["envd", "--image", &app.tag, "--budget", "30"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    // Without the file's variable the same image exits before listening.
    std::fs::write(dir.path().join("ctxbuild.toml"), toml).unwrap();
    let o = smoke(dir.path(), &["envd", "--image", &app.tag, "--budget", "30"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    assert!(
        common::stdout(&o).contains("missing environment variable")
            || common::stderr(&o).contains("missing environment variable"),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    assert!(leftovers("envd").is_empty());
}
