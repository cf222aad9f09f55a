//! `ctxbuild image --builder buildkit` end to end on the real engine's embedded BuildKit: the
//! example backend builds and answers /health; an unchanged forced rebuild is all CACHED; a
//! one-file edit rebuilds the same steps as the classic builder and names the file; a failing
//! RUN and Ctrl-C end like the classic path and leave nothing running; ignored files (by
//! `.dockerignore` or `<Dockerfile>.dockerignore`) never reach the build; `RUN --mount` builds
//! under `auto`.
//!
//! BuildKit's cache is content-addressed and shared with every other test and helper: contexts
//! carry a unique file where a stale hit would hide a bug, and the cache is never pruned.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it).
#![cfg(feature = "engine-tests")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The BUILT steps that change the filesystem (the only ones BuildKit runs as operations).
fn built_fs_steps(report: &serde_json::Value) -> Vec<String> {
    common::step_statuses(report)
        .into_iter()
        .filter(|(i, s)| {
            let kw = i
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            s == "BUILT" && ["RUN", "COPY", "ADD", "WORKDIR"].contains(&kw.as_str())
        })
        .map(|(i, _)| i)
        .collect()
}

fn nonce() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

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

/// Processes whose command line mentions `marker` (a RUN the daemon should have killed).
fn processes_mentioning(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn example_backend_builds_runs_and_rebuilds_like_classic() {
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
    std::fs::write(ctx.join(".dockerignore"), ".venv\n.git\n").unwrap();
    std::fs::write(
        dir.path().join("ctxbuild.toml"),
        "[services.backend]\nkind = \"python-asgi\"\ncontext = \"backend\"\napp = \"main:app\"\nworkers = 2\n",
    )
    .unwrap();
    let unique = common::unique("bkbackend");
    let tag_bk = format!("ctxbuild-e2e/{unique}:bk");
    let tag_classic = format!("ctxbuild-e2e/{unique}:classic");
    let python = common::python_image();
    let build = |builder: &str, tag: &str, report: &str, extra: &[&str]| {
        let mut args = vec![
            "--progress",
            "plain",
            "image",
            "backend",
            "--alpine",
            "--base-image",
            &python,
            "--builder",
            builder,
            "-t",
            tag,
            "--report",
            report,
        ];
        args.extend_from_slice(extra);
        let o = common::run_in(dir.path(), &args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        (
            common::read_json(&dir.path().join(report)),
            common::stdout(&o),
            common::stderr(&o),
        )
    };

    let (first, _, err) = build("buildkit", &tag_bk, "first.json", &[]);
    assert!(err.contains("builder: buildkit"), "{err}");
    assert_eq!(first["builder"], "buildkit");
    // The rows carry the Dockerfile's own text and the classic step numbers.
    let st = common::step_statuses(&first);
    assert!(st[0].0.starts_with(&format!("FROM {python}")), "{st:?}");
    assert!(st.iter().any(|(i, _)| i == "COPY . ."), "{st:?}");
    let sizes: Vec<&serde_json::Value> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["layer_size"])
        .collect();
    assert!(
        sizes.iter().all(|s| s.is_u64()),
        "every row has a size: {sizes:?}"
    );
    assert!(
        sizes[0].as_u64().unwrap() > 10_000_000,
        "the FROM row is the base image: {sizes:?}"
    );

    // The image runs its CMD: gunicorn answers /health.
    let name = common::unique("bkbackend-run");
    let id = common::docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8080",
        &tag_bk,
    ]);
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

    // Unchanged: the no-op fast path, and a forced build BuildKit serves entirely from cache.
    let (second, _, _) = build("buildkit", &tag_bk, "second.json", &[]);
    assert_eq!(second["up_to_date"], true);
    assert_eq!(second["image_id"], first["image_id"]);
    let (forced, text, _) = build("buildkit", &tag_bk, "forced.json", &["--force"]);
    assert_eq!(forced["up_to_date"], false);
    assert!(
        common::step_statuses(&forced)
            .iter()
            .all(|(_, s)| s == "CACHED"),
        "{:?}",
        common::step_statuses(&forced)
    );
    assert!(text.contains("steps cached (100%)"), "{text}");
    assert_eq!(forced["image_id"], first["image_id"]);

    // BuildKit's record is no "up to date" for the classic builder (same tag, same plan).
    let (cross, _, _) = build("classic", &tag_bk, "cross.json", &[]);
    assert_eq!(cross["up_to_date"], false, "{cross}");
    assert_eq!(cross["builder"], "classic");
    build("classic", &tag_classic, "classic0.json", &[]);

    // One .py edited (uniquely: the cache is shared): both builders rebuild the same steps.
    let main = std::fs::read_to_string(ctx.join("main.py")).unwrap();
    std::fs::write(
        ctx.join("main.py"),
        format!("{main}\n# edited {}\n", nonce()),
    )
    .unwrap();
    let (bk, text, _) = build("buildkit", &tag_bk, "bk-edit.json", &[]);
    let (classic, _, _) = build("classic", &tag_classic, "classic-edit.json", &[]);
    let built = built_fs_steps(&bk);
    assert_eq!(built, built_fs_steps(&classic), "{bk}\n{classic}");
    assert_eq!(
        built.first().map(String::as_str),
        Some("COPY . ."),
        "{built:?}"
    );
    // The report names the file, as on the classic path.
    assert_eq!(
        bk["rebuild_reason"]["changes"],
        serde_json::json!(["main.py content changed"]),
        "{}",
        bk["rebuild_reason"]
    );
    assert_eq!(
        bk["rebuild_reason"]["step"],
        classic["rebuild_reason"]["step"]
    );
    assert!(text.contains("main.py content changed"), "{text}");
    assert!(
        bk["context"]["bytes_sent"].as_u64().unwrap() > 0,
        "the edited file was sent"
    );

    let _ = common::docker_output(&["rmi", &tag_bk, &tag_classic]);
}

#[test]
fn failing_run_exits_4_like_classic_with_its_output() {
    common::require_engine();
    let marker = common::unique("bkfail");
    let df = format!(
        "FROM {}\nRUN echo said-{marker} && exit 7\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("fail.Dockerfile", &df)]);
    let mut errs = Vec::new();
    for builder in ["buildkit", "classic"] {
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
                "--builder",
                builder,
            ],
        );
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(4), "{builder}: {err}");
        assert!(err.contains("step 2/"), "{builder}: {err}");
        assert!(err.contains("failed with exit code 7"), "{builder}: {err}");
        assert!(
            err.contains(&format!("| said-{marker}")),
            "{builder}: {err}"
        );
        errs.push(err);
    }
    // The same error shape: the same `error:` line on both paths, but for the step count
    // (the classic builder adds a LABEL step per API label).
    let shape = |e: &str| {
        e.lines()
            .find(|l| l.starts_with("error: step 2/"))
            .and_then(|l| l.split_once('`'))
            .map(|(_, rest)| rest.to_string())
    };
    assert!(shape(&errs[0]).is_some(), "{}", errs[0]);
    assert_eq!(shape(&errs[0]), shape(&errs[1]));
}

#[test]
fn ctrl_c_mid_run_exits_130_and_the_daemon_stops_the_step() {
    common::require_engine();
    let marker = common::unique("bkint");
    let df = format!(
        "FROM {}\nRUN echo begin-{marker} && sleep 30 && echo end-{marker}\n",
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
            "--builder",
            "buildkit",
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
    assert!(seen.contains(&format!("| begin-{marker}")), "{seen}");
    assert!(
        !processes_mentioning(&format!("begin-{marker}")).is_empty(),
        "the RUN is running"
    );
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
    // Dropping the request and the session cancels the solve: the RUN's processes go away.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&format!("begin-{marker}"));
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = processes_mentioning(&format!("begin-{marker}"));
    }
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn ignored_files_never_reach_the_build_and_the_dockerfile_ignore_file_wins() {
    common::require_engine();
    let n = nonce();
    // The context's .dockerignore drops `secret.txt`, `logs/` and `keep.txt`.
    let plain_df = format!(
        "FROM {}\nCOPY . /ctx\nRUN find /ctx | sort\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[
        ("app/.dockerignore", "secret.txt\nlogs\nkeep.txt\n"),
        ("app/secret.txt", "password\n"),
        ("app/logs/a.log", "log\n"),
        ("app/keep.txt", "keep\n"),
        ("app/drop.txt", "drop\n"),
        ("app/unique.txt", &n),
        // Go's walk order puts `a/x` before `a.txt`; a byte sort of whole paths does not.
        ("app/a/x", "x\n"),
        ("app/a.txt", "t\n"),
        ("plain.Dockerfile", &plain_df),
        ("own.Dockerfile", &plain_df),
        // Next to own.Dockerfile: replaces .dockerignore for it (keep.txt comes back).
        ("own.Dockerfile.dockerignore", "drop.txt\n"),
    ]);
    let listing = |dockerfile: &str| {
        let o = common::run_in(
            dir.path(),
            &[
                "--progress",
                "plain",
                "image",
                "demo",
                "-f",
                dockerfile,
                "--no-check",
                "--builder",
                "buildkit",
            ],
        );
        let err = common::stderr(&o);
        assert!(o.status.success(), "{err}");
        let files: Vec<String> = err
            .lines()
            .filter_map(|l| l.split("| ").nth(1))
            .filter(|l| l.starts_with("/ctx"))
            .map(str::to_string)
            .collect();
        assert!(files.contains(&"/ctx/unique.txt".to_string()), "{err}");
        files
    };
    let plain = listing("plain.Dockerfile");
    for gone in [
        "/ctx/secret.txt",
        "/ctx/logs",
        "/ctx/logs/a.log",
        "/ctx/keep.txt",
    ] {
        assert!(
            !plain.contains(&gone.to_string()),
            "{gone} reached the build: {plain:?}"
        );
    }
    for there in ["/ctx/drop.txt", "/ctx/a/x", "/ctx/a.txt"] {
        assert!(plain.contains(&there.to_string()), "{there}: {plain:?}");
    }

    let own = listing("own.Dockerfile");
    assert!(own.contains(&"/ctx/keep.txt".to_string()), "{own:?}");
    assert!(own.contains(&"/ctx/secret.txt".to_string()), "{own:?}");
    assert!(!own.contains(&"/ctx/drop.txt".to_string()), "{own:?}");
}

#[test]
fn a_cache_mount_builds_under_auto() {
    common::require_engine();
    let n = nonce();
    let df = format!(
        "FROM {}\nCOPY main.py /main.py\nRUN --mount=type=cache,target=/cache echo {n} > /cache/seen && cat /cache/seen\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("mount.Dockerfile", &df)]);
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "mount.Dockerfile",
            "--no-check",
            "--report",
            "r.json",
        ],
    );
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("builder: buildkit"), "{err}");
    assert!(err.contains(&format!("| {n}")), "{err}");
    let report = common::read_json(&dir.path().join("r.json"));
    assert_eq!(report["builder"], "buildkit");
    assert_eq!(
        common::step_statuses(&report)
            .last()
            .map(|(_, s)| s.as_str()),
        Some("BUILT")
    );
}

/// A context of thousands of files and megabytes: the file transfer must not deadlock (one
/// shared queue for the listing and the data made the daemon cancel "load build context" above
/// ~2,000 files), and every file arrives.
#[test]
fn a_large_context_transfers_whole() {
    common::require_engine();
    let n = nonce();
    let dir = common::demo_service(&[(
        "big.Dockerfile",
        &format!(
            "FROM {}\nCOPY tree /tree\nRUN echo {n} && find /tree -type f | wc -l && head -n 1 /tree/d42/f77.py\n",
            common::busybox_image()
        ),
    )]);
    let body = "x".repeat(3000);
    for d in 0..60 {
        let sub = dir.path().join(format!("app/tree/d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("f{f}.py")), format!("{d}/{f} {n}\n{body}")).unwrap();
        }
    }
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "big.Dockerfile",
            "--no-check",
            "--builder",
            "buildkit",
        ],
    );
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("| 6000"), "every file arrived: {err}");
    assert!(err.contains(&format!("| 42/77 {n}")), "{err}");
}

/// Stages on `scratch` or on an earlier stage have no FROM vertex and BuildKit numbers their
/// steps without it (`[stage-1 1/1] COPY …`): each row must still carry its own instruction,
/// not the stage's FROM (the report said "FROM scratch" for the COPY, "1/1 steps").
#[test]
fn stages_without_a_from_vertex_keep_their_rows() {
    common::require_engine();
    let n = nonce();
    let df = format!(
        "FROM {} AS base\nRUN echo {n} > /n\nFROM base AS mid\nCOPY main.py /m.py\nFROM scratch\nCOPY --from=mid /n /n\nCOPY main.py /main.py\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("scratch.Dockerfile", &df)]);
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "scratch.Dockerfile",
            "--no-check",
            "--builder",
            "buildkit",
            "--report",
            "r.json",
        ],
    );
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    let report = common::read_json(&dir.path().join("r.json"));
    let rows: Vec<String> = common::step_statuses(&report)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let base = format!("FROM {} AS base", common::busybox_image());
    let run = format!("RUN echo {n} > /n");
    assert_eq!(
        rows,
        [
            base.as_str(),
            run.as_str(),
            "FROM base AS mid",
            "COPY main.py /m.py",
            "FROM scratch",
            "COPY --from=mid /n /n",
            "COPY main.py /main.py",
        ],
        "{err}"
    );
    assert_eq!(
        built_fs_steps(&report),
        [
            run.as_str(),
            "COPY main.py /m.py",
            "COPY --from=mid /n /n",
            "COPY main.py /main.py"
        ]
    );
}

/// What the file sync sends besides the bytes, as `DOCKER_BUILDKIT=1 docker build` sends it: a
/// hard link arrives as a link to the same inode and a file keeps its modification time. The
/// transfer serves the keyed manifest, which keeps no stat: both come from the filesystem as
/// the file is sent (a zero time or a second copy of the file would show here).
#[test]
fn hard_links_and_times_arrive_as_docker_sends_them() {
    common::require_engine();
    let n = nonce();
    let df = format!(
        "FROM {}\nCOPY links /links\nRUN echo {n} && stat -c 'at %Y %h' /links/a /links/b && [ /links/a -ef /links/b ] && echo same-inode\n",
        common::busybox_image()
    );
    let dir = common::demo_service(&[("links.Dockerfile", &df)]);
    let links = dir.path().join("app/links");
    std::fs::create_dir(&links).unwrap();
    std::fs::write(links.join("a"), format!("{n}\n")).unwrap();
    std::fs::hard_link(links.join("a"), links.join("b")).unwrap();
    // 2001-02-03 04:05:06 UTC
    let when = std::time::UNIX_EPOCH + Duration::from_secs(981_173_106);
    std::fs::File::options()
        .write(true)
        .open(links.join("a"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let o = common::run_in(
        dir.path(),
        &[
            "--progress",
            "plain",
            "image",
            "demo",
            "-f",
            "links.Dockerfile",
            "--no-check",
            "--builder",
            "buildkit",
        ],
    );
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("| at 981173106 2").count(), 2, "{err}");
    assert!(err.contains("| same-inode"), "{err}");
}
