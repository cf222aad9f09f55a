//! `ctxbuild image` end to end on the real engine: the example backend built from the offline
//! Python image answers /health; rebuilds are fully cached; an edited .py rebuilds exactly the
//! code COPY and what follows; bytecode junk is not sent; failures, Ctrl-C and unreachable
//! engines give their documented exit codes and leave no container behind; --push then pull by
//! digest.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it;
// there a missing engine fails the run).
#![cfg(feature = "engine-tests")]

mod common;
#[path = "common/engine.rs"]
mod engine_helpers;

use engine_helpers::{containers_mentioning, rmi};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn unreachable_engine_exits_3_naming_the_host() {
    // The Dockerfile is rendered before the engine is asked: the render needs requirements.
    let dir = common::demo_service(&[("app/requirements.txt", "fastapi\n")]);
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        // --no-check: the gate runs before the engine is asked, and this demo is no app.
        let o = common::run_in(dir.path(), &["image", "demo", "--no-check", "-H", host]);
        assert_eq!(o.status.code(), Some(3), "{host}: {}", common::stderr(&o));
        let err = common::stderr(&o);
        assert!(
            err.contains(&format!("cannot reach the Docker engine at {host}")),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }
    // DOCKER_HOST is honoured like the docker CLI does.
    let o = common::TestEnv::at(dir.path())
        .cmd(&["image", "demo", "--no-check"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(common::stderr(&o).contains("from DOCKER_HOST"));
}

#[test]
fn failing_run_exits_4_with_step_output_and_no_leftover_container() {
    common::require_engine();
    let marker = common::unique("imgfail");
    let df = format!(
        "FROM {}\nRUN echo said-{marker} && exit 7\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("fail.Dockerfile", &df)]);
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "fail.Dockerfile",
            "--no-check",
        ],
    );
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    // The classic builder appends a LABEL step per image label: step 2 of 2 + labels.
    assert!(err.contains("step 2/"), "{err}");
    assert!(err.contains("exit code 7"), "{err}");
    assert!(err.contains(&format!("| said-{marker}")), "{err}");
    assert_eq!(containers_mentioning(&marker), Vec::<String>::new());
}

#[test]
fn ctrl_c_mid_build_exits_130_and_leaves_no_container() {
    common::require_engine();
    let marker = common::unique("imgint");
    let df = format!(
        "FROM {}\nRUN echo begin-{marker} && sleep 30\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("sleep.Dockerfile", &df)]);
    let started = Instant::now();
    let mut child = common::TestEnv::at(dir.path())
        .with_cache(&dir.path().join(".cache"))
        .cmd(&[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "sleep.Dockerfile",
            "--no-check",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(&format!("| begin-{marker}")) {
            break;
        }
    }
    assert!(seen.contains("running in"), "{seen}");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{}", rest.join("\n"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it waited for the sleep"
    );
    assert_eq!(containers_mentioning(&marker), Vec::<String>::new());
}

#[test]
fn push_to_the_loopback_registry_and_pull_back_by_digest() {
    common::require_engine();
    let marker = common::unique("imgpush");
    let repo = format!("{}/ctxbuild-e2e/{marker}", common::registry());
    let tag = format!("{repo}:1");
    let df = format!("FROM {}\nCOPY main.py /main.py\n", common::busybox_image());
    let dir = common::demo_service(&[
        ("p.Dockerfile", &df),
        ("app/main.py", &format!("# {marker}\n")),
    ]);
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "p.Dockerfile",
            "--no-check",
            "-t",
            &tag,
            "--push",
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let report = common::read_json(&dir.path().join("r.json"));
    let digest = report["pushed"][0]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"));
    assert!(common::stdout(&o).contains(&format!("Pushed {tag} {digest}")));
    let image_id = report["image_id"].as_str().unwrap().to_string();
    rmi(&[&tag]);
    let by_digest = format!("{repo}@{digest}");
    common::docker(&["pull", "-q", &by_digest]);
    let pulled = common::docker(&["inspect", "--format", "{{.Id}}", &by_digest]);
    assert_eq!(pulled.trim(), image_id);
    rmi(&[&by_digest]);
}

/// GET `path` on 127.0.0.1:`port`; the status code and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        code,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// The example backend: builds from the offline Python image, serves /health from gunicorn with
/// the Uvicorn worker, then: unchanged rebuild all CACHED; an edited .py rebuilds from the code
/// COPY; bytecode junk is not sent and the cache holds.
#[test]
fn example_backend_builds_runs_and_caches_exactly() {
    common::require_engine();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("backend");
    std::fs::create_dir(&ctx).unwrap();
    for f in ["main.py", "requirements.txt"] {
        std::fs::copy(
            common::repo_root().join("examples/backend").join(f),
            ctx.join(f),
        )
        .unwrap();
    }
    // A .dockerignore that forgets bytecode: ctxbuild must keep it out anyway.
    std::fs::write(ctx.join(".dockerignore"), ".venv\n.git\n").unwrap();
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        "[services.backend]\nkind = \"python-asgi\"\ncontext = \"backend\"\napp = \"main:app\"\nworkers = 2\n",
    )
    .unwrap();
    let tag = format!("ctxbuild-e2e/{}:1", common::unique("backend"));
    let python = common::python_image();
    let run = |report: &str, extra: &[&str]| {
        let mut args = vec![
            "--progress",
            "plain",
            "image",
            "backend",
            "--alpine",
            "--base-image",
            &python,
            "-t",
            &tag,
            "--report",
            report,
        ];
        args.extend_from_slice(extra);
        let o = common::run_in(dir.path(), &args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        o
    };
    let build_with = |report: &str, extra: &[&str]| {
        let o = run(report, extra);
        (
            common::read_json(&dir.path().join(report)),
            common::stdout(&o),
        )
    };
    let build = |report: &str| build_with(report, &[]);

    let (first, _) = build("first.json");
    let name = common::unique("backend-run");
    let id = common::docker(&["run", "-d", "--name", &name, "-p", "127.0.0.1::8080", &tag]);
    let port: u16 = common::docker(&["port", id.trim(), "8080/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answer = None;
    while Instant::now() < deadline {
        if let Some(r) = http_get(port, "/health") {
            answer = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = common::docker_output(&["rm", "-f", &name]);
    let (code, body) = answer.expect("/health answered");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("gunicorn"), "{body}");

    // Unchanged: the no-op build (nothing sent, nothing built), every step CACHED.
    let (second, text) = build("second.json");
    assert_eq!(second["image_id"], first["image_id"]);
    assert_eq!(second["up_to_date"], true);
    assert!(
        common::step_statuses(&second)
            .iter()
            .all(|(_, s)| s == "CACHED"),
        "{:?}",
        common::step_statuses(&second)
    );
    assert!(text.contains("Up to date: "), "{text}");
    // `--report -`: the JSON report is the whole of stdout, the table is not printed after it.
    let o = run("-", &[]);
    let on_stdout: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", common::stdout(&o)));
    assert_eq!(on_stdout["image_id"], first["image_id"]);
    assert!(!dir.path().join("-").exists());
    // And the engine agrees: a forced build is served entirely from the cache.
    let (forced, text) = build_with("forced.json", &["--force"]);
    assert_eq!(forced["image_id"], first["image_id"]);
    assert_eq!(forced["up_to_date"], false);
    assert!(text.contains("steps cached (100%)"), "{text}");

    // One .py edited: the code COPY and everything after it rebuild, nothing before.
    let main = std::fs::read_to_string(ctx.join("main.py")).unwrap();
    // A unique edit: the engine's cache is shared with every earlier run of this test, and a
    // fixed text could hit a layer an earlier (or concurrent) run left behind.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        ctx.join("main.py"),
        format!("{main}\n# edited {} {nonce}\n", std::process::id()),
    )
    .unwrap();
    let (third, text) = build("third.json");
    let st = common::step_statuses(&third);
    let copy_code = st
        .iter()
        .position(|(i, _)| i.starts_with("COPY . "))
        .expect("a COPY . step");
    for (i, (instr, status)) in st.iter().enumerate() {
        let want = if i < copy_code { "CACHED" } else { "BUILT" };
        assert_eq!(status, want, "step {} `{instr}`: {st:?}", i + 1);
    }
    // The report names the file, from ctxbuild's key diff against the previous build.
    let reason = &third["rebuild_reason"];
    assert_eq!(reason["step"], copy_code + 1, "{reason}");
    assert_eq!(
        reason["changes"],
        serde_json::json!(["main.py content changed"]),
        "{reason}"
    );
    assert!(text.contains("main.py content changed"), "{text}");
    assert!(
        text.contains(&format!("Step {} `COPY . ", copy_code + 1)),
        "{text}"
    );

    // Bytecode junk: not sent, said so, and the cache holds.
    common::write_tree(
        &ctx,
        &[
            ("__pycache__/main.cpython-311.pyc", &"x".repeat(4096)),
            ("__pycache__/other.cpython-311.pyc", &"y".repeat(1000)),
        ],
    );
    let (fourth, text) = build("fourth.json");
    assert!(
        common::step_statuses(&fourth)
            .iter()
            .all(|(_, s)| s == "CACHED"),
        "{:?}",
        common::step_statuses(&fourth)
    );
    assert_eq!(fourth["context"]["pollution_excluded_entries"], 3);
    assert_eq!(fourth["context"]["pollution_excluded_bytes"], 5096);
    assert!(
        text.contains("3 bytecode entries (5.10 kB) kept out"),
        "{text}"
    );
    rmi(&[&tag]);
}

/// A busybox service `bb` (context `bb/`, Dockerfile given with -f) for the quick checks below.
fn busybox_demo(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "ctxbuild.toml",
                "[services.bb]\nkind = \"python-asgi\"\ncontext = \"bb\"\napp = \"main:app\"\n",
            ),
            ("bb/main.py", "print('hi')\n"),
            (
                "bb.df",
                &dockerfile.replace("BUSYBOX", &common::busybox_image()),
            ),
        ],
    );
    common::write_tree(dir.path(), files);
    dir
}

#[test]
fn bad_tag_or_platform_exits_2_before_building_or_tagging() {
    common::require_engine();
    let dir = busybox_demo("FROM BUSYBOX\nRUN echo built\n", &[]);
    let good = common::unique("rv-good");
    let good_tag = format!("{good}:x");
    let out = common::run_in(
        dir.path(),
        &[
            "image",
            "bb",
            "-f",
            "bb.df",
            "--no-check",
            "-t",
            &good_tag,
            "-t",
            "Bad Tag",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("-t `Bad Tag`"), "{err}");
    assert!(err.contains("hint: fix the -t value"), "{err}");
    assert!(!err.contains("built"), "{err}");
    let inspect = common::docker_output(&["image", "inspect", &good_tag]);
    assert!(!inspect.status.success(), "{good_tag} was tagged");

    let out = common::run_in(
        dir.path(),
        &[
            "image",
            "bb",
            "-f",
            "bb.df",
            "--no-check",
            "--platform",
            "bogus",
            "-t",
            &good_tag,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("hint: fix the --platform value"), "{err}");
}

#[test]
fn bytecode_the_dockerfile_copies_by_name_is_sent() {
    common::require_engine();
    let dir = busybox_demo(
        "FROM BUSYBOX\nCOPY vendor/lib.pyc /x/\nCOPY . /app\nRUN test -f /x/lib.pyc && test ! -e /app/junk.pyc\n",
        &[("bb/vendor/lib.pyc", "bytecode"), ("bb/junk.pyc", "junk")],
    );
    let tag = format!("{}:t", common::unique("rv-pyc"));
    let out = common::run_in(
        dir.path(),
        &["image", "bb", "-f", "bb.df", "--no-check", "-t", &tag],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    rmi(&[&tag]);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("because the Dockerfile names them in COPY/ADD: vendor/lib.pyc"),
        "{err}"
    );
    assert!(err.contains("leaving 1 bytecode entry ("), "{err}");
}

#[test]
fn check_gate_prints_errors_like_check_with_one_location() {
    common::require_engine();
    let dir = busybox_demo("FROM BUSYBOX\nBOGUS y\n", &[]);
    let out = common::run_in(dir.path(), &["image", "bb", "-f", "bb.df"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\nbb.df:2: error[dockerfile-invalid] unknown instruction: BOGUS\n  fix: "),
        "{err}"
    );
    assert!(!err.contains("warning:"), "{err}");
    assert!(err.contains("hint: fix them, or pass --no-check"), "{err}");
}

#[test]
fn missing_target_stage_exits_2_before_building() {
    common::require_engine();
    let dir = busybox_demo("FROM BUSYBOX AS base\nRUN echo built\n", &[]);
    let tag = format!("{}:t", common::unique("rv-target"));
    let out = common::run_in(
        dir.path(),
        &["image", "bb", "-f", "bb.df", "--target", "nope", "-t", &tag],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    rmi(&[&tag]);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: bb.df: target stage 'nope' could not be found"),
        "{err}"
    );
    assert!(err.contains("hint: name the stage"), "{err}");
    assert!(!err.contains("warning:"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Built"));
}

#[test]
fn missing_service_context_dir_is_named_without_the_f_hint() {
    common::require_engine();
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[(
            "ctxbuild.toml",
            "[services.nosvc]\nkind = \"python-asgi\"\ncontext = \"nosvc\"\napp = \"main:app\"\ndockerfile = \"Dockerfile\"\n",
        )],
    );
    let out = common::run_in(dir.path(), &["image", "nosvc"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the context directory nosvc of service `nosvc`"),
        "{err}"
    );
    assert!(!err.contains("-f is relative"), "{err}");
}

/// The classic builder closes every stage with an aux image id; the image is the last stage's.
/// ctxbuild took the first: the report, the `Built` line and every extra `-t` named stage one.
#[test]
fn a_multi_stage_image_is_its_last_stage_and_every_tag_names_it() {
    common::require_engine();
    let dir = busybox_demo(
        "FROM BUSYBOX AS a\nCOPY main.py /a.py\nFROM BUSYBOX\nCOPY --from=a /a.py /b.py\nRUN echo NONCE > /n\n"
            .replace("NONCE", &common::unique("ms"))
            .as_str(),
        &[],
    );
    let name = common::unique("rv-multi");
    let (one, two) = (format!("{name}:one"), format!("{name}:two"));
    let build = |report: &str| {
        common::run_in(
            dir.path(),
            &[
                "image",
                "bb",
                "-f",
                "bb.df",
                "--no-check",
                "--builder",
                "classic",
                "-t",
                &one,
                "-t",
                &two,
                "--report",
                report,
            ],
        )
    };
    let out = build("r.json");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let id = |r: &str| {
        let o = common::docker_output(&["image", "inspect", "-f", "{{.Id}}", r]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (id_one, id_two) = (id(&one), id(&two));
    // The unchanged rebuild takes the no-op path, which re-applies the tags to the recorded id.
    let again = build("r2.json");
    let again_err = String::from_utf8_lossy(&again.stderr).to_string();
    let (again_one, again_two) = (id(&one), id(&two));
    rmi(&[&one, &two]);
    assert_eq!(again.status.code(), Some(0), "{again_err}");
    let again_report = common::read_json(&dir.path().join("r2.json"));
    assert_eq!(again_report["up_to_date"], true, "{again_err}");
    assert_eq!((&again_one, &again_two), (&id_one, &id_one), "no-op re-tag");
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report = common::read_json(&dir.path().join("r.json"));
    assert!(id_one.starts_with("sha256:"), "{one}: {id_one:?}");
    assert_eq!(report["image_id"], id_one.as_str(), "{err}");
    assert_eq!(id_two, id_one, "the extra tag names another image");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("Built {}", &id_one[7..19])),
        "{summary}"
    );
}
