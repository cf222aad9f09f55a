//! `ctxbuild cloudbuild` end to end: a generated `cloudbuild.yaml` is executed step by step by
//! a small local runner that does what Cloud Build does — substitutions (dynamic ones too),
//! `waitFor` order, and each step run as `docker run` with the Docker socket and the workspace
//! mounted at `/workspace` — with the real step image (`scripts/step-image.sh`) on the real
//! engine, pushing to the loopback registry. `gcloud` deploy steps are not run (no image, no
//! project); their arguments are asserted instead.
//!
//! Also: the step image itself (scratch, root, no shell, the entrypoint) and name resolution
//! of `DOCKER_HOST=tcp://localhost:PORT` from inside it.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

const DEPLOY_IMAGE: &str = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim";
const SOCKET: &str = "/var/run/docker.sock";

/// The step image `scripts/step-image.sh` builds.
fn step_image() -> String {
    let image = std::env::var("CTXBUILD_TEST_STEP_IMAGE")
        .unwrap_or_else(|_| "ctxbuild-test/ctxbuild:dev".into());
    let o = common::docker_output(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert!(
        o.status.success(),
        "the step image {image} is missing\nhint: run scripts/step-image.sh (scripts/test.sh does)"
    );
    image
}

/// One step as the runner saw it.
#[derive(Debug)]
struct Ran {
    id: String,
    name: String,
    args: Vec<String>,
    /// `None`: not run (a `gcloud` step).
    code: Option<i32>,
    output: String,
}

/// Runs `cloudbuild.yaml` in `workspace` like Cloud Build: built-in substitutions from
/// `builtins`, user ones from the file overridden by `overrides` (`--substitutions`), steps in
/// file order (valid because `waitFor` may only name earlier steps), stopping at the first
/// failing step. Returns every step it ran, and whether the build succeeded.
fn run_build(
    workspace: &Path,
    builtins: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> (Vec<Ran>, bool) {
    let text = std::fs::read_to_string(workspace.join("cloudbuild.yaml")).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let subs = substitutions(&doc, builtins, overrides);
    let home = tempfile::tempdir().unwrap();
    let mut seen: Vec<String> = vec!["-".into()];
    let mut ran = Vec::new();
    for step in doc["steps"].as_vec().expect("steps") {
        let id = step["id"].as_str().unwrap_or("").to_string();
        for w in strs(&step["waitFor"]) {
            assert!(seen.contains(&w), "{id} waits for {w}, which has not run");
        }
        let name = apply(step["name"].as_str().unwrap(), &subs);
        let args: Vec<String> = strs(&step["args"])
            .iter()
            .map(|a| apply(a, &subs))
            .collect();
        seen.push(id.clone());
        if name == DEPLOY_IMAGE {
            ran.push(Ran {
                id,
                name,
                args,
                code: None,
                output: String::new(),
            });
            continue;
        }
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--network", "host"])
            .args(["-v", &format!("{SOCKET}:{SOCKET}")])
            .args(["-v", &format!("{}:/workspace", workspace.display())])
            .args(["-v", &format!("{}:/builder/home", home.path().display())])
            .args(["-e", "HOME=/builder/home"]);
        let dir = match step["dir"].as_str() {
            Some(d) => format!("/workspace/{}", apply(d, &subs)),
            None => "/workspace".into(),
        };
        cmd.args(["-w", &dir]);
        if let Some(e) = step["entrypoint"].as_str() {
            cmd.args(["--entrypoint", &apply(e, &subs)]);
        }
        for e in strs(&step["env"]) {
            cmd.args(["-e", &apply(&e, &subs)]);
        }
        cmd.arg(&name).args(&args);
        let o = cmd.output().expect("run docker");
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let ok = o.status.success();
        ran.push(Ran {
            id,
            name,
            args,
            code: o.status.code(),
            output,
        });
        if !ok {
            return (ran, false);
        }
    }
    (ran, true)
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| v.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Built-ins plus user substitutions, with dynamic values evaluated (`$NAME`, `${NAME}`,
/// `${NAME:-default}`; an unset built-in is empty, as in a build started by hand).
fn substitutions(
    doc: &Yaml,
    builtins: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut raw: BTreeMap<String, String> = doc["substitutions"]
        .as_hash()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in overrides {
        raw.insert(k.to_string(), v.to_string());
    }
    let mut values: BTreeMap<String, String> = builtins
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    values.extend(raw.clone());
    if doc["options"]["dynamicSubstitutions"].as_bool() == Some(true) {
        // One round per substitution settles any acyclic chain (`_REPO` uses `_REGION`).
        for _ in 0..=raw.len() {
            let next: BTreeMap<String, String> = raw
                .iter()
                .map(|(k, v)| (k.clone(), expand(v, &values, 0)))
                .collect();
            values.extend(next);
        }
    }
    values
}

/// A dynamic value: `$NAME`, `${NAME}`, `${NAME:-default}` (the default expanded in turn).
fn expand(s: &str, vars: &BTreeMap<String, String>, depth: u8) -> String {
    assert!(depth < 4, "defaults nested too deep in {s}");
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(s.len(), |n| i + n);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        let braced = b.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let n = name_len(&b[start..]);
        assert!(n > 0, "not a reference: {}", &s[i..]);
        let name = &s[start..start + n];
        let value = vars.get(name).cloned().unwrap_or_default();
        i = start + n;
        if !braced {
            out.push_str(&value);
            continue;
        }
        if b[i] == b'}' {
            out.push_str(&value);
            i += 1;
            continue;
        }
        assert_eq!(&s[i..i + 2], ":-", "unsupported expansion in {s}");
        let mut level = 1;
        let mut j = i + 2;
        while level > 0 {
            match b[j] {
                b'{' => level += 1,
                b'}' => level -= 1,
                _ => {}
            }
            j += 1;
        }
        let default = &s[i + 2..j - 1];
        if value.is_empty() {
            out.push_str(&expand(default, vars, depth + 1));
        } else {
            out.push_str(&value);
        }
        i = j;
    }
    out
}

/// A step field: `$$` is a dollar, `$NAME`/`${NAME}` its value (empty when unknown).
fn apply(s: &str, subs: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if b[i] == b'$' {
            let braced = b.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let n = name_len(&b[start..]);
            if n > 0 && (!braced || b.get(start + n) == Some(&b'}')) {
                out.push_str(subs.get(&s[start..start + n]).map_or("", String::as_str));
                i = start + n + usize::from(braced);
                continue;
            }
        }
        let c = s[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_uppercase() || *c == b'_' => b
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
            .count(),
        _ => 0,
    }
}

/// A workspace holding the example backend and a ctxbuild.toml deploying it, with
/// `cloudbuild.yaml` generated by the binary for the step image and the offline base image.
fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let ctx = ws.path().join("examples/backend");
    std::fs::create_dir_all(&ctx).unwrap();
    for f in ["main.py", "requirements.txt", ".dockerignore"] {
        let from = common::repo_root().join("examples/backend").join(f);
        if from.exists() {
            std::fs::copy(&from, ctx.join(f)).unwrap();
        }
    }
    std::fs::write(
        ws.path().join("ctxbuild.toml"),
        "[services.backend]\nkind = \"python-asgi\"\ncontext = \"examples/backend\"\n\
         app = \"main:app\"\nworkers = 2\n\n[services.backend.deploy]\nregion = \"europe-west1\"\n\
         cpu = 1\nmemory = \"1Gi\"\nrequest_timeout = 300\nconcurrency = 20\n",
    )
    .unwrap();
    let o = common::TestEnv::at(ws.path()).run(&[
        "cloudbuild",
        "--deploy",
        "--step-image",
        &step_image(),
        "--base-image",
        &common::python_image(),
        "-o",
        "cloudbuild.yaml",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    ws
}

/// GET `path` from the loopback registry; the status code and body.
fn registry_get(path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(common::registry()).expect("the loopback registry answers");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        common::registry()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

#[test]
fn generated_config_runs_step_by_step_builds_pushes_and_reports() {
    common::require_engine();
    let ws = workspace();
    let project = common::unique("test-project");
    let repo = format!("{}/{project}", common::registry());
    let (ran, ok) = run_build(
        ws.path(),
        &[
            ("PROJECT_ID", "test-project"),
            ("BUILD_ID", "6f1c7a52-0000-4000-8000-000000000001"),
            ("SHORT_SHA", "abc1234"),
            ("COMMIT_SHA", "abc1234def5678abc1234def5678abc1234def5"),
        ],
        &[("_REPO", &repo)],
    );
    let summary: Vec<String> = ran
        .iter()
        .map(|r| format!("{} {:?}\n{}", r.id, r.code, r.output))
        .collect();
    assert!(ok, "the build failed:\n{}", summary.join("\n"));
    let ids: Vec<&str> = ran.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["check", "image-backend", "deploy-backend"]);
    assert_eq!(ran[0].code, Some(0));
    assert!(
        ran[0].output.contains("no pollution found"),
        "{}",
        ran[0].output
    );

    // The image step ran in the step image and built through the host's engine.
    let tag = format!("{repo}/backend:abc1234");
    assert_eq!(ran[1].name, step_image());
    assert!(ran[1].args.contains(&tag), "{:?}", ran[1].args);
    assert!(ran[1].output.contains("Pushed"), "{}", ran[1].output);
    let id = common::docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert!(id.trim().starts_with("sha256:"));

    // The report landed in the workspace, where `artifacts` collects it.
    let report_path = ws.path().join("ctxbuild-report-backend.json");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["image_id"].as_str(), Some(id.trim()));
    let digest = report["pushed"][0]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{report}");

    // The registry holds the tag, at the reported digest.
    let (code, body) = registry_get(&format!("/v2/{project}/backend/tags/list"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("abc1234"), "{body}");

    // The deploy step was not run, but its arguments are what Cloud Run would get.
    let deploy = &ran[2];
    assert_eq!(deploy.code, None);
    assert_eq!(
        deploy.args,
        [
            "run",
            "deploy",
            "backend",
            &format!("--image={tag}"),
            "--region=europe-west1",
            "--port=8080",
            "--cpu=1",
            "--memory=1Gi",
            "--timeout=300s",
            "--concurrency=20",
            "--quiet"
        ]
    );

    // The moving tag the next build takes its cache from was pushed too.
    assert!(body.contains("latest"), "{body}");
    let _ = common::docker_output(&["rmi", &tag, &format!("{repo}/backend:latest")]);
}

#[test]
fn check_step_fails_the_build_on_a_polluted_workspace() {
    common::require_engine();
    let ws = workspace();
    common::write_tree(
        ws.path(),
        &[("examples/backend/__pycache__/main.cpython-312.pyc", "junk")],
    );
    let (ran, ok) = run_build(
        ws.path(),
        &[("PROJECT_ID", "test-project"), ("SHORT_SHA", "abc1234")],
        &[("_REPO", "127.0.0.1:5000/never-pushed")],
    );
    assert!(!ok);
    assert_eq!(ran.len(), 1, "steps ran after the check failed: {ran:?}");
    assert_eq!(ran[0].id, "check");
    assert_eq!(ran[0].code, Some(1), "{}", ran[0].output);
    assert!(
        ran[0].output.contains("__pycache__"),
        "the log names the pollution: {}",
        ran[0].output
    );
    assert!(!ws.path().join("ctxbuild-report-backend.json").exists());
}

/// Without a trigger there is no SHORT_SHA: the tag falls back to `manual`; `_TAG` overrides.
#[test]
fn manual_builds_tag_manual_unless_tag_is_given() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::repo_root().join("ctxbuild.toml"),
        ws.path().join("ctxbuild.toml"),
    )
    .unwrap();
    let o = common::TestEnv::at(ws.path()).run(&["cloudbuild", "backend", "-o", "cloudbuild.yaml"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = std::fs::read_to_string(ws.path().join("cloudbuild.yaml")).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let tag_of = |builtins: &[(&str, &str)], overrides: &[(&str, &str)]| {
        let subs = substitutions(&doc, builtins, overrides);
        let args = strs(&doc["steps"][1]["args"]);
        let at = args.iter().position(|a| a == "--tag").unwrap();
        apply(&args[at + 1], &subs)
    };
    let p = [("PROJECT_ID", "acme")];
    assert_eq!(
        tag_of(&p, &[]),
        "europe-west1-docker.pkg.dev/acme/ctxbuild/backend:manual"
    );
    assert_eq!(
        tag_of(&[("PROJECT_ID", "acme"), ("SHORT_SHA", "abc1234")], &[]),
        "europe-west1-docker.pkg.dev/acme/ctxbuild/backend:abc1234"
    );
    assert_eq!(
        tag_of(&p, &[("_TAG", "v1.2.0"), ("_REGION", "us-east1")]),
        "us-east1-docker.pkg.dev/acme/ctxbuild/backend:v1.2.0"
    );
}

#[test]
fn step_image_is_scratch_root_without_a_shell() {
    common::require_engine();
    let image = step_image();
    let cfg = common::docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}|{{.Config.User}}|{{.Config.WorkingDir}}",
        &image,
    ]);
    assert_eq!(cfg.trim(), "[\"ctxbuild\"]||/workspace");
    let o = common::docker_output(&["run", "--rm", &image, "--version"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(common::stdout(&o).starts_with("ctxbuild "));
    let o = common::docker_output(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "true",
    ]);
    assert!(!o.status.success(), "the step image has a shell");
}

/// Forwards TCP connections on 127.0.0.1 to the engine's socket: a `tcp://` engine to test.
fn tcp_engine() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(unix) = UnixStream::connect(SOCKET) else {
                continue;
            };
            let (mut tr, mut tw) = (conn.try_clone().unwrap(), conn);
            let (mut ur, mut uw) = (unix.try_clone().unwrap(), unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tr, &mut uw);
                let _ = uw.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut ur, &mut tw);
                let _ = tw.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// The static binary resolves `localhost` in a FROM scratch container (no NSS modules, no
/// nsswitch.conf): it builds through `DOCKER_HOST=tcp://localhost:PORT`.
#[test]
fn step_image_reaches_a_tcp_engine_by_host_name() {
    common::require_engine();
    let image = step_image();
    let port = tcp_engine();
    let ws = tempfile::tempdir().unwrap();
    let marker = common::unique("cb-tcp");
    common::write_tree(
        ws.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.bb]\nkind = \"python-asgi\"\ncontext = \"bb\"\napp = \"main:app\"\n",
            ),
            ("bb/main.py", &format!("# {marker}\n")),
            (
                "bb.df",
                &format!("FROM {}\nCOPY main.py /main.py\n", common::busybox_image()),
            ),
        ],
    );
    let tag = format!("ctxbuild-e2e/{marker}:1");
    let o = Command::new("docker")
        .args(["run", "--rm", "--network", "host"])
        .args(["-v", &format!("{}:/workspace", ws.path().display())])
        .args(["-e", &format!("DOCKER_HOST=tcp://localhost:{port}")])
        .arg(&image)
        .args([
            "--progress",
            "plain",
            "image",
            "bb",
            "-f",
            "bb.df",
            "--no-check",
            "-t",
            &tag,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    common::docker(&["image", "inspect", &tag]);
    let _ = common::docker_output(&["rmi", &tag]);
}
