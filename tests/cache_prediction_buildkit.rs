//! ctxbuild's BuildKit cache keys against the engine's embedded BuildKit: for every mutation
//! family, build a context with `DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain`,
//! save `ctxbuild plan --builder buildkit --save`, mutate, predict with `ctxbuild explain
//! --builder buildkit --since`, build again, and check that ctxbuild's first changed step is
//! BuildKit's first non-cached vertex, that the explanation names the cause, and that exactly
//! the steps ctxbuild calls cacheable make vertices.
//!
//! BuildKit's cache is content-addressed and shared by every build on the engine (other
//! suites, other people), and it must never be pruned here. Each case therefore starts from
//! its own base image with a unique layer (BuildKit keys an image by its layers, not its
//! labels), so no vertex below `FROM` can hit on another case's state; the first build of
//! each case asserts that it hit nothing. Cases run on a few threads; every image is removed.
// Engine suite: built only with `--features engine-tests`.
#![cfg(feature = "engine-tests")]

mod common;

use common::{busybox_image, unique, write_tree};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The 20.10 client that drives BuildKit builds (the `docker` first on PATH lacks buildx).
const DOCKER_2010: &str = "/usr/bin/docker";

fn docker(buildkit: bool, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut c = Command::new(DOCKER_2010);
    c.env("DOCKER_BUILDKIT", if buildkit { "1" } else { "0" })
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        c.stdin(std::process::Stdio::piped());
    }
    let mut child = c.spawn().expect("run /usr/bin/docker");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for docker")
}

/// `/usr/bin/docker` must be there: with `CTXBUILD_REQUIRE_ENGINE=1` (CI) its absence fails
/// the suite; elsewhere the suite says loudly that it did not run.
fn docker_2010_present() -> bool {
    let ok = Path::new(DOCKER_2010).exists()
        && docker(
            true,
            &["version", "--format", "{{.Server.APIVersion}}"],
            None,
        )
        .status
        .success();
    if !ok {
        let msg = format!("{DOCKER_2010} (a 20.10 client talking to the engine) is missing");
        if std::env::var("CTXBUILD_REQUIRE_ENGINE").as_deref() == Ok("1") {
            panic!("{msg}; CTXBUILD_REQUIRE_ENGINE=1 requires it");
        }
        eprintln!("SKIPPED: {msg}; set CTXBUILD_REQUIRE_ENGINE=1 to make this a failure");
    }
    ok
}

/// One vertex of a `--progress=plain` build.
#[derive(Debug)]
struct Vertex {
    /// What follows `[stage i/n] `: the instruction as written.
    text: String,
    cached: bool,
}

/// Builds `dir` with BuildKit; the vertices in the order BuildKit announced them.
fn bk_build(dir: &Path, tag: &str, args: &[(String, String)]) -> Vec<Vertex> {
    let mut a: Vec<String> = vec![
        "build".into(),
        "--progress=plain".into(),
        "-t".into(),
        tag.into(),
    ];
    for (k, v) in args {
        a.push("--build-arg".into());
        a.push(format!("{k}={v}"));
    }
    a.push(dir.to_string_lossy().into_owned());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = docker(true, &refs, None);
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "BuildKit build failed:\n{log}");
    let mut names: Vec<(String, String)> = Vec::new();
    let mut cached: Vec<String> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((num, what)) = rest.split_once(' ') else {
            continue;
        };
        if what == "CACHED" {
            cached.push(num.to_string());
        } else if let Some(name) = what.strip_prefix('[') {
            if names.iter().any(|(n, _)| n == num) || name.starts_with("internal]") {
                continue;
            }
            if let Some((_, text)) = name.split_once("] ") {
                names.push((num.to_string(), text.to_string()));
            }
        }
    }
    names
        .into_iter()
        .map(|(n, text)| Vertex {
            cached: cached.contains(&n),
            text,
        })
        .collect()
}

fn normalized(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A base image no other build shares: busybox plus one unique layer.
fn base_image(nonce: &str) -> String {
    let tag = format!("ctxbuild-bkcase/base:{nonce}");
    let df = format!("FROM {}\nRUN echo {nonce} > /.nonce\n", busybox_image());
    let o = docker(false, &["build", "-q", "-t", &tag, "-"], Some(&df));
    assert!(
        o.status.success(),
        "base image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    tag
}

type Mutate = fn(&Path, &mut Vec<(String, String)>);

struct Case {
    name: &'static str,
    /// `{base}` is replaced by the case's base image.
    dockerfile: &'static str,
    dockerignore: &'static str,
    /// Run before the first build (a state the mutation then changes).
    setup: Option<fn(&Path)>,
    mutate: Mutate,
    /// The instruction BuildKit is expected to rebuild first (`None`: everything cached).
    expect: Option<&'static str>,
    /// A fragment of `explain`'s sentence for the first miss.
    why: Option<&'static str>,
    /// A vertex BuildKit must report CACHED in the second build although an earlier one
    /// rebuilt (content-addressed: identical input, same key).
    cached_too: Option<&'static str>,
}

const IGNORE: &str = "*/__pycache__\nlogs/\n*.log\n";
/// The Dockerfile out of the context, so an edit shows through its instructions only.
const IGNORE_DF: &str = "*/__pycache__\nlogs/\n*.log\nDockerfile\n";
const DF: &str = "FROM {base}\nARG V=1\nENV APP=/app\nCOPY app/ /app/\nRUN echo built\nCOPY . /src/\nRUN echo last\n";
const DF_META: &str = "FROM {base}\nARG V=1\nENV APP=/app\nLABEL l=1\nWORKDIR /w1\nUSER 0:0\nCOPY app/ /app/\nRUN echo built\n";
const DF_CHMOD: &str = "FROM {base}\nCOPY --chmod=644 app/ /app/\nRUN echo chmodded\n";
const DF_MOUNT: &str = "FROM {base}\nCOPY app/ /app/\nRUN --mount=type=bind,source=README.md,target=/r.md cat /r.md\nRUN echo after mount\n";
const DF_STAGES: &str = "FROM {base} AS build\nCOPY README.md /req\nRUN cat /req > /out\n\
FROM {base} AS unused\nCOPY app/ /a\nRUN echo unused\n\
FROM {base}\nRUN echo final\nCOPY --from=build /out /out\nRUN echo after copy\n";

fn append(p: &Path, s: &str) {
    let mut old = std::fs::read_to_string(p).expect("read");
    old.push_str(s);
    std::fs::write(p, old).expect("write");
}

fn replace(p: &Path, a: &str, b: &str) {
    let old = std::fs::read_to_string(p).expect("read");
    assert!(old.contains(a), "{a} not in {}", p.display());
    std::fs::write(p, old.replace(a, b)).expect("write");
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    assert_eq!(unsafe { libc::mknod(c.as_ptr(), mode, dev) }, 0, "mknod");
    assert_eq!(
        unsafe { libc::chmod(c.as_ptr(), mode & 0o7777) },
        0,
        "chmod"
    );
}

fn cases() -> Vec<Case> {
    let c = |name, dockerfile, dockerignore, mutate, expect, why| Case {
        name,
        dockerfile,
        dockerignore,
        setup: None,
        mutate,
        expect,
        why,
        cached_too: None,
    };
    vec![
        c(
            "content edit",
            DF,
            IGNORE,
            |d, _| append(&d.join("app/main.py"), "x = 2\n"),
            Some("COPY app/ /app/"),
            Some("app/main.py content changed"),
        ),
        c(
            "touch (mtime) only",
            DF,
            IGNORE,
            |d, _| {
                for f in ["app/main.py", "README.md", "Dockerfile"] {
                    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
                    let file = std::fs::File::options()
                        .write(true)
                        .open(d.join(f))
                        .expect("open");
                    file.set_modified(t).expect("mtime");
                }
            },
            None,
            None,
        ),
        c(
            "same bytes rewritten",
            DF,
            IGNORE,
            |d, _| {
                let p = d.join("app/pkg/mod.py");
                let b = std::fs::read(&p).expect("read");
                std::fs::write(&p, b).expect("write");
            },
            None,
            None,
        ),
        c(
            "chmod +x",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app/pkg/mod.py"), 0o755),
            Some("COPY app/ /app/"),
            Some("app/pkg/mod.py mode 644→755"),
        ),
        c(
            "chmod g+w",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app/main.py"), 0o664),
            Some("COPY app/ /app/"),
            Some("mode 644→664"),
        ),
        c(
            "chmod o-r",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app/main.py"), 0o640),
            Some("COPY app/ /app/"),
            Some("mode 644→640"),
        ),
        c(
            "chmod setuid",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app/main.py"), 0o4644),
            Some("COPY app/ /app/"),
            Some("mode 644→4644"),
        ),
        c(
            "chown (the CLI sends uid/gid 0)",
            DF,
            IGNORE,
            |d, _| {
                std::os::unix::fs::chown(d.join("app/main.py"), Some(4321), Some(4321))
                    .expect("chown")
            },
            None,
            None,
        ),
        c(
            "new file at the root",
            DF,
            IGNORE,
            |d, _| write_tree(d, &[("notes2.txt", "n\n")]),
            Some("COPY . /src/"),
            Some("notes2.txt added"),
        ),
        c(
            "deleted file",
            DF,
            IGNORE,
            |d, _| std::fs::remove_file(d.join("app/pkg/data.txt")).expect("rm"),
            Some("COPY app/ /app/"),
            Some("app/pkg/data.txt removed"),
        ),
        c(
            "rename",
            DF,
            IGNORE,
            |d, _| std::fs::rename(d.join("README.md"), d.join("README.rst")).expect("mv"),
            Some("COPY . /src/"),
            Some("README.rst added"),
        ),
        c(
            ".pyc under an ignored pattern",
            DF,
            IGNORE,
            |d, _| write_tree(d, &[("app/__pycache__/main.cpython-311.pyc", "bytecode")]),
            None,
            None,
        ),
        c(
            ".pyc under a not-ignored pattern",
            DF,
            IGNORE,
            |d, _| {
                write_tree(
                    d,
                    &[("app/pkg/__pycache__/mod.cpython-311.pyc", "bytecode")],
                )
            },
            Some("COPY app/ /app/"),
            Some("ctxbuild clean"),
        ),
        c(
            "new file under an ignored directory",
            DF,
            IGNORE,
            |d, _| write_tree(d, &[("logs/y.log", "y\n")]),
            None,
            None,
        ),
        c(
            "empty directory added",
            DF,
            IGNORE,
            |d, _| std::fs::create_dir(d.join("app/newdir")).expect("mkdir"),
            Some("COPY app/ /app/"),
            Some("app/newdir added"),
        ),
        c(
            "empty directory removed",
            DF,
            IGNORE,
            |d, _| std::fs::remove_dir(d.join("app/empty")).expect("rmdir"),
            Some("COPY app/ /app/"),
            Some("app/empty removed"),
        ),
        c(
            "a directory's own mode (BuildKit ignores it)",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app/pkg"), 0o700),
            None,
            None,
        ),
        c(
            "the COPY source directory's mode",
            DF,
            IGNORE,
            |d, _| chmod(&d.join("app"), 0o775),
            None,
            None,
        ),
        c(
            "symlink added",
            DF,
            IGNORE,
            |d, _| symlink("pkg/mod.py", d.join("app/lnk2")).expect("ln"),
            Some("COPY app/ /app/"),
            Some("app/lnk2 added"),
        ),
        c(
            "symlink retargeted",
            DF,
            IGNORE,
            |d, _| {
                std::fs::remove_file(d.join("app/link")).expect("rm");
                symlink("pkg/mod.py", d.join("app/link")).expect("ln");
            },
            Some("COPY app/ /app/"),
            Some("app/link link target changed"),
        ),
        c(
            "dangling symlink retargeted (BuildKit hashes the link text)",
            DF,
            IGNORE,
            |d, _| {
                std::fs::remove_file(d.join("app/dang")).expect("rm");
                symlink("nowhere-else", d.join("app/dang")).expect("ln");
            },
            Some("COPY app/ /app/"),
            Some("app/dang link target changed"),
        ),
        c(
            "named pipe added",
            DF,
            IGNORE,
            |d, _| mknod(&d.join("app/pipe"), libc::S_IFIFO | 0o644, 0),
            Some("COPY app/ /app/"),
            Some("app/pipe added"),
        ),
        Case {
            setup: Some(|d| {
                mknod(
                    &d.join("app/null"),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(1, 3),
                )
            }),
            ..c(
                "char device renumbered",
                DF,
                IGNORE,
                |d, _| {
                    std::fs::remove_file(d.join("app/null")).expect("rm");
                    mknod(
                        &d.join("app/null"),
                        libc::S_IFCHR | 0o666,
                        libc::makedev(1, 5),
                    );
                },
                Some("COPY app/ /app/"),
                Some("app/null content changed"),
            )
        },
        c(
            ".dockerignore edit (the file is in the context)",
            DF,
            IGNORE,
            |d, _| append(&d.join(".dockerignore"), "*.zzz\n"),
            Some("COPY . /src/"),
            Some(".dockerignore content changed"),
        ),
        c(
            "Dockerfile comment (the file is in the context)",
            DF,
            IGNORE,
            |d, _| append(&d.join("Dockerfile"), "# a comment\n"),
            Some("COPY . /src/"),
            Some("Dockerfile content changed"),
        ),
        c(
            "Dockerfile comment, Dockerfile ignored",
            DF,
            IGNORE_DF,
            |d, _| append(&d.join("Dockerfile"), "# a comment\n"),
            None,
            None,
        ),
        c(
            "Dockerfile edit of the last line: earlier steps stay cached",
            DF,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "RUN echo last", "RUN echo final"),
            Some("RUN echo final"),
            Some("`last` → `final`"),
        ),
        c(
            "Dockerfile.dockerignore added (BuildKit honours it)",
            DF,
            IGNORE,
            |d, _| write_tree(d, &[("Dockerfile.dockerignore", "README.md\n")]),
            Some("COPY . /src/"),
            Some("README.md removed"),
        ),
        c(
            "build arg changed (declared, unused)",
            DF,
            IGNORE,
            |_, a| a.push(("V".into(), "2".into())),
            Some("RUN echo built"),
            Some("build arg V changed: 1 → 2"),
        ),
        c(
            "undeclared build arg",
            DF,
            IGNORE,
            |_, a| a.push(("OTHER".into(), "1".into())),
            None,
            None,
        ),
        c(
            "ENV edit (no vertex; the next RUN misses, not the COPY)",
            DF_META,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "ENV APP=/app", "ENV APP=/srv"),
            Some("RUN echo built"),
            Some("ENV APP changed: /app → /srv"),
        ),
        c(
            "ARG default edit (no vertex; the next RUN misses)",
            DF_META,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "ARG V=1", "ARG V=3"),
            Some("RUN echo built"),
            Some("build arg V changed: 1 → 3"),
        ),
        c(
            "LABEL edit (metadata only)",
            DF_META,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "LABEL l=1", "LABEL l=2"),
            None,
            None,
        ),
        c(
            "USER edit (the next RUN misses, not the COPY)",
            DF_META,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "USER 0:0", "USER 1:1"),
            Some("RUN echo built"),
            Some("line 6 changed: `USER 0:0` → `USER 1:1`"),
        ),
        c(
            "WORKDIR edit (a vertex)",
            DF_META,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "WORKDIR /w1", "WORKDIR /w2"),
            Some("WORKDIR /w2"),
            Some("was `WORKDIR /w1`"),
        ),
        c(
            "COPY --chmod: the source's mode still counts",
            DF_CHMOD,
            IGNORE_DF,
            |d, _| chmod(&d.join("app/main.py"), 0o755),
            Some("COPY --chmod=644 app/ /app/"),
            Some("app/main.py mode 644→755"),
        ),
        c(
            "COPY --chmod value edit",
            DF_CHMOD,
            IGNORE_DF,
            |d, _| replace(&d.join("Dockerfile"), "--chmod=644", "--chmod=600"),
            Some("COPY --chmod=600 app/ /app/"),
            None,
        ),
        c(
            "RUN --mount=type=bind: its source changes",
            DF_MOUNT,
            IGNORE_DF,
            |d, _| append(&d.join("README.md"), "more\n"),
            Some("RUN --mount=type=bind,source=README.md,target=/r.md cat /r.md"),
            Some("README.md content changed"),
        ),
        c(
            "RUN --mount=type=bind: another file changes",
            DF_MOUNT,
            IGNORE_DF,
            |d, _| write_tree(d, &[("notes2.txt", "n\n")]),
            None,
            None,
        ),
        c(
            "multi-stage: the copied stage's input changes",
            DF_STAGES,
            IGNORE_DF,
            |d, _| append(&d.join("README.md"), "more\n"),
            Some("COPY README.md /req"),
            Some("README.md content changed"),
        ),
        c(
            "multi-stage: a stage the target does not read changes",
            DF_STAGES,
            IGNORE_DF,
            |d, _| append(&d.join("app/main.py"), "x = 3\n"),
            None,
            None,
        ),
        Case {
            cached_too: Some("COPY --from=build /out /out"),
            ..c(
                "multi-stage: a stage rebuilds with identical output",
                DF_STAGES,
                IGNORE_DF,
                |d, _| {
                    replace(
                        &d.join("Dockerfile"),
                        "RUN cat /req > /out",
                        "RUN cat /req  > /out",
                    )
                },
                Some("RUN cat /req  > /out"),
                None,
            )
        },
    ]
}

fn ctxbuild(dir: &Path, cache: &Path, args: &[String]) -> Output {
    common::TestEnv::at(dir)
        .with_cache(cache)
        .cmd(&[])
        .args(args)
        .output()
        .expect("run ctxbuild")
}

fn with_args(mut a: Vec<String>, args: &[(String, String)]) -> Vec<String> {
    for (k, v) in args {
        a.push("--build-arg".into());
        a.push(format!("{k}={v}"));
    }
    a
}

/// Runs one case; `Err` says what went wrong. Images it makes go to `images`.
fn run(case: &Case, root: &Path, images: &Mutex<Vec<String>>) -> Result<(), String> {
    let nonce = unique("bk");
    let base = base_image(&nonce);
    images.lock().unwrap().push(base.clone());
    let dir = root.join(&nonce).join("ctx");
    let cache = root.join(&nonce).join("cache");
    let saved = root.join(&nonce).join("plan.json");
    let dockerfile = case.dockerfile.replace("{base}", &base);
    write_tree(
        &dir,
        &[
            ("Dockerfile", dockerfile.as_str()),
            (".dockerignore", case.dockerignore),
            ("app/main.py", "print('hi')\n"),
            ("app/pkg/mod.py", "X = 1\n"),
            ("app/pkg/data.txt", "data\n"),
            ("README.md", "# readme\n"),
            ("logs/x.log", "log\n"),
        ],
    );
    std::fs::create_dir(dir.join("app/empty")).expect("mkdir");
    symlink("main.py", dir.join("app/link")).expect("ln");
    symlink("nowhere", dir.join("app/dang")).expect("ln");
    if let Some(setup) = case.setup {
        setup(&dir);
    }
    let mut args: Vec<(String, String)> = Vec::new();
    let tag = |n: u8| format!("ctxbuild-bkcase/img:{nonce}-{n}");
    images.lock().unwrap().extend([tag(1), tag(2)]);

    let first = bk_build(&dir, &tag(1), &args);
    if let Some(v) = first
        .iter()
        .find(|v| v.cached && !v.text.starts_with("FROM "))
    {
        return Err(format!(
            "isolation failed: the first build hit `{}`",
            v.text
        ));
    }
    let plan_args = with_args(
        vec![
            "plan".into(),
            dir.to_string_lossy().into_owned(),
            "--builder".into(),
            "buildkit".into(),
            "--save".into(),
            saved.to_string_lossy().into_owned(),
        ],
        &args,
    );
    let o = ctxbuild(&dir, &cache, &plan_args);
    if !o.status.success() {
        return Err(format!("plan --save failed: {}", common::stderr(&o)));
    }
    (case.mutate)(&dir, &mut args);
    let explain_args = with_args(
        vec![
            "explain".into(),
            dir.to_string_lossy().into_owned(),
            "--builder".into(),
            "buildkit".into(),
            "--since".into(),
            saved.to_string_lossy().into_owned(),
            "--json".into(),
        ],
        &args,
    );
    let o = ctxbuild(&dir, &cache, &explain_args);
    if !o.status.success() {
        return Err(format!("explain failed: {}", common::stderr(&o)));
    }
    let ex: serde_json::Value = serde_json::from_slice(&o.stdout).expect("explain JSON");
    let steps = ex["steps"].as_array().expect("steps");
    let second = bk_build(&dir, &tag(2), &args);

    let mut problems = Vec::new();
    let mut predicted: Option<String> = None;
    let mut actual: Option<String> = None;
    for s in steps {
        let text = s["instruction"].as_str().unwrap_or("");
        let cacheable = s["cacheable"].as_bool().unwrap_or(false);
        let hit = s["hit"].as_bool().unwrap_or(false);
        if cacheable && !hit && predicted.is_none() {
            predicted = Some(text.to_string());
        }
        if text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .eq_ignore_ascii_case("from")
        {
            continue;
        }
        let vertex = second
            .iter()
            .find(|v| normalized(&v.text) == normalized(text));
        match (vertex, cacheable) {
            (Some(v), true) => {
                if !v.cached && actual.is_none() {
                    actual = Some(text.to_string());
                }
            }
            (Some(_), false) => problems.push(format!(
                "`{text}` made a vertex; ctxbuild says it makes none"
            )),
            (None, true) => problems.push(format!("`{text}` made no vertex; ctxbuild keys it")),
            (None, false) => {}
        }
    }
    if predicted != actual {
        problems.push(format!(
            "ctxbuild predicts the first rebuild at {predicted:?}, BuildKit rebuilt {actual:?} first"
        ));
    } else if actual.as_deref() != case.expect {
        problems.push(format!(
            "ctxbuild and BuildKit agree on {actual:?}, but the test documents {:?}",
            case.expect
        ));
    }
    if let Some(want) = case.cached_too {
        match second
            .iter()
            .find(|v| normalized(&v.text) == normalized(want))
        {
            Some(v) if v.cached => {}
            other => problems.push(format!("`{want}` was expected CACHED, BuildKit: {other:?}")),
        }
        // ctxbuild cannot see the stage's output: "maybe", never "will".
        let verdict = steps
            .iter()
            .find(|s| s["instruction"].as_str() == Some(want))
            .and_then(|s| s["verdict"].as_str());
        if verdict != Some("may-miss") {
            problems.push(format!("explain calls `{want}` {verdict:?}, not may-miss"));
        }
    }
    let sentence = ex["first_miss"]["sentence"].as_str().unwrap_or("");
    match case.why {
        Some(why) if !sentence.contains(why) => problems.push(format!(
            "explain says `{sentence}`, which does not name `{why}`"
        )),
        None if case.expect.is_none() && !sentence.is_empty() => {
            problems.push(format!("explain predicts a rebuild: `{sentence}`"))
        }
        _ => {}
    }
    eprintln!(
        "{}: ctxbuild {predicted:?}, BuildKit {actual:?}; {sentence}",
        case.name
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn first_changed_buildkit_key_is_buildkits_first_rebuilt_vertex() {
    if !docker_2010_present() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root: PathBuf = tmp.path().to_path_buf();
    let cases = cases();
    let next = Mutex::new(0usize);
    let images = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let threads = std::env::var("CTXBUILD_BK_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(case) = cases.get(i) else { break };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(case, &root, &images)
                }));
                let err = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e,
                    Err(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into()),
                };
                failures
                    .lock()
                    .unwrap()
                    .push(format!("{}: {err}", case.name));
            });
        }
    });
    // Built images first, then the bases they sit on.
    let mut all = images.into_inner().unwrap();
    all.sort_by_key(|t| t.starts_with("ctxbuild-bkcase/base:"));
    for chunk in all.chunks(32) {
        let mut a = vec!["rmi", "-f"];
        a.extend(chunk.iter().map(String::as_str));
        let _ = docker(false, &a, None);
    }
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases mispredicted:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
