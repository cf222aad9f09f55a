//! The no-op build on the real engine: `ctxbuild image` may skip the upload and the build only
//! when Docker would have served every step from its cache. For every mutation family of
//! `tests/cache_prediction.rs` the context is changed, `ctxbuild image` runs, and the engine
//! is asked for the truth: when the fast path was taken, a `--force` build must come out fully
//! cached with the very same image id; when it was not, the build that ran must have missed
//! somewhere (otherwise the fast path was a missed chance — reported too, as a failure). Plus
//! a deleted image, a re-tagged base, another engine ID, another `DOCKER_HOST` spelling of
//! the same engine, `--force`, and `--push` from the fast path.
//!
//! Mutations are cumulative and the Dockerfile carries a unique label, so no layer from another
//! run can produce a hit. Every image and tag made is removed at the end.
// Engine suite: built only with `--features engine-tests`.
#![cfg(feature = "engine-tests")]

mod common;

use common::{busybox_image, docker, docker_output, require_engine, unique, write_tree};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Images and tags made by a test, removed on drop (also when the test fails).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(self.0.iter().map(String::as_str));
            let _ = docker_output(&args);
        }
    }
}

struct Run {
    up_to_date: bool,
    /// Every step CACHED (FROM of a local image counts as cached).
    all_cached: bool,
    image_id: String,
    report: serde_json::Value,
}

/// `ctxbuild image demo -f ctx/Dockerfile -t TAG` plus `extra`, in `dir`, cache inside `dir`.
fn image(dir: &Path, tag: &str, build_args: &[(String, String)], extra: &[&str]) -> Run {
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut a: Vec<String> = [
        "image",
        "demo",
        "-f",
        "ctx/Dockerfile",
        "--no-check",
        "-t",
        tag,
        "--report",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(report.to_string_lossy().into_owned());
    for (k, v) in build_args {
        a.push("--build-arg".into());
        a.push(format!("{k}={v}"));
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = common::TestEnv::at(dir)
        .with_cache(&dir.join(".cache"))
        .cmd(&argv)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run ctxbuild");
    assert!(
        o.status.success(),
        "ctxbuild image failed: {}\n{}",
        common::stderr(&o),
        common::stdout(&o)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let steps = report["steps"].as_array().expect("steps");
    Run {
        up_to_date: report["up_to_date"].as_bool().expect("up_to_date"),
        all_cached: steps.iter().all(|s| s["status"] == "CACHED"),
        image_id: report["image_id"].as_str().unwrap_or("").to_string(),
        report,
    }
}

fn append(p: &Path, s: &str) {
    let mut old = std::fs::read_to_string(p).expect("read");
    old.push_str(s);
    std::fs::write(p, old).expect("write");
}

type Mutation = (&'static str, Box<dyn Fn(&Path, &mut Vec<(String, String)>)>);

/// The families of `tests/cache_prediction.rs`, on the context `d` (= `ctx/`).
fn mutations() -> Vec<Mutation> {
    let m = |name: &'static str, f: fn(&Path, &mut Vec<(String, String)>)| -> Mutation {
        (name, Box::new(f))
    };
    vec![
        m("touch only (mtime) of every file", |d, _| {
            for f in ["app/main.py", "app/pkg/mod.py", "README.md", "Dockerfile"] {
                let t = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
                let file = std::fs::File::options()
                    .write(true)
                    .open(d.join(f))
                    .expect("open");
                file.set_modified(t).expect("set mtime");
            }
        }),
        m("same bytes rewritten", |d, _| {
            let p = d.join("app/pkg/mod.py");
            let c = std::fs::read(&p).expect("read");
            std::fs::write(&p, c).expect("write");
        }),
        m("chown of a file (the CLI sends uid/gid 0)", |d, _| {
            std::os::unix::fs::chown(d.join("app/main.py"), Some(4321), Some(4321)).expect("chown");
        }),
        m("content edit of app/main.py", |d, _| {
            append(&d.join("app/main.py"), "x = 2\n")
        }),
        m("chmod +x app/pkg/mod.py", |d, _| {
            std::fs::set_permissions(
                d.join("app/pkg/mod.py"),
                std::fs::Permissions::from_mode(0o755),
            )
            .expect("chmod");
        }),
        m("new file at the root", |d, _| {
            write_tree(d, &[("notes2.txt", "n\n")])
        }),
        m("deleted file app/pkg/data.txt", |d, _| {
            std::fs::remove_file(d.join("app/pkg/data.txt")).expect("rm")
        }),
        m("rename README.md -> README.rst", |d, _| {
            std::fs::rename(d.join("README.md"), d.join("README.rst")).expect("mv")
        }),
        m(
            "new app/__pycache__/*.pyc (ignored by */__pycache__)",
            |d, _| write_tree(d, &[("app/__pycache__/main.cpython-311.pyc", "bytecode")]),
        ),
        m(
            "new app/pkg/__pycache__/*.pyc (not ignored by .dockerignore; ctxbuild keeps bytecode out)",
            |d, _| {
                write_tree(
                    d,
                    &[("app/pkg/__pycache__/mod.cpython-311.pyc", "bytecode")],
                )
            },
        ),
        m("change inside an ignored path", |d, _| {
            append(&d.join("logs/x.log"), "more\n")
        }),
        m("new file under an ignored directory", |d, _| {
            write_tree(d, &[("logs/y.log", "y\n")])
        }),
        m("empty directory added in app/", |d, _| {
            std::fs::create_dir(d.join("app/newdir")).expect("mkdir")
        }),
        m("chmod 700 of an empty directory", |d, _| {
            std::fs::set_permissions(d.join("app/empty"), std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
        }),
        m("symlink retarget app/link -> pkg/mod.py", |d, _| {
            std::fs::remove_file(d.join("app/link")).expect("rm");
            symlink("pkg/mod.py", d.join("app/link")).expect("ln");
        }),
        m("dangling symlink retarget", |d, _| {
            std::fs::remove_file(d.join("app/dang")).expect("rm");
            symlink("nowhere-else", d.join("app/dang")).expect("ln");
        }),
        m(".dockerignore edit (now ignores notes2.txt)", |d, _| {
            append(&d.join(".dockerignore"), "notes2.txt\n")
        }),
        m("Dockerfile comment edit", |d, _| {
            append(&d.join("Dockerfile"), "# a comment\n")
        }),
        m("build-arg change V=2", |_, args| {
            args.push(("V".into(), "2".into()))
        }),
        m("undeclared build-arg added", |_, args| {
            args.push(("OTHER".into(), "1".into()))
        }),
        m("file replaced by a directory", |d, _| {
            std::fs::remove_file(d.join("app/pkg/extra.txt")).expect("rm");
            std::fs::create_dir(d.join("app/pkg/extra.txt")).expect("mkdir");
        }),
        m("ENV value edit in the Dockerfile", |d, _| {
            let p = d.join("Dockerfile");
            let t = std::fs::read_to_string(&p)
                .expect("read")
                .replace("ENV APP=/app", "ENV APP=/srv");
            std::fs::write(&p, t).expect("write");
        }),
    ]
}

/// A project with service `demo` (context `ctx/`, its own Dockerfile `FROM base`).
fn project(dir: &Path, base: &str, nonce: &str) {
    let dockerfile = format!(
        "FROM {base}\nLABEL ctxbuild.test={nonce}\nARG V=1\nENV APP=/app\nCOPY app/ /app/\nRUN echo built\nCOPY . /src/\nRUN echo $V\n"
    );
    write_tree(
        dir,
        &[
            (
                "ctxbuild.toml",
                "[services.demo]\nkind = \"python-asgi\"\ncontext = \"ctx\"\napp = \"main:app\"\n",
            ),
            ("ctx/Dockerfile", dockerfile.as_str()),
            ("ctx/.dockerignore", "*/__pycache__\nlogs/\n*.log\n"),
            ("ctx/app/main.py", "print('hi')\n"),
            ("ctx/app/pkg/mod.py", "X = 1\n"),
            ("ctx/app/pkg/data.txt", "data\n"),
            ("ctx/app/pkg/extra.txt", "extra\n"),
            ("ctx/README.md", "# readme\n"),
            ("ctx/logs/x.log", "log\n"),
        ],
    );
    std::fs::create_dir(dir.join("ctx/app/empty")).expect("mkdir");
    symlink("main.py", dir.join("ctx/app/link")).expect("ln");
    symlink("nowhere", dir.join("ctx/app/dang")).expect("ln");
}

/// A base image of our own (a tag of busybox), so re-tagging it touches nothing shared.
fn own_base(nonce: &str, cleanup: &mut Cleanup) -> String {
    let base = format!("ctxbuild-test/noop-base-{nonce}:1");
    docker(&["tag", &busybox_image(), &base]);
    cleanup.0.push(base.clone());
    base
}

#[test]
fn fast_path_is_taken_exactly_when_docker_would_cache_every_step() {
    require_engine();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nonce = unique("noop");
    let mut cleanup = Cleanup(Vec::new());
    let base = own_base(&nonce, &mut cleanup);
    project(dir, &base, &nonce);
    let tag = format!("ctxbuild-test/{nonce}:1");
    cleanup.0.push(tag.clone());
    let mut args: Vec<(String, String)> = Vec::new();

    let first = image(dir, &tag, &args, &[]);
    cleanup.0.push(first.image_id.clone());
    assert!(
        !first.up_to_date,
        "the first build has nothing to compare with"
    );
    let again = image(dir, &tag, &args, &[]);
    assert!(again.up_to_date, "an unchanged rebuild is a no-op");
    assert_eq!(again.image_id, first.image_id);
    assert!(again.all_cached);
    // The saved sizes come back: the COPY app/ layer is not empty.
    assert!(
        again.report["steps"][4]["layer_size"].as_u64().unwrap_or(0) > 0,
        "{}",
        again.report
    );
    let forced = image(dir, &tag, &args, &["--force"]);
    assert!(!forced.up_to_date, "--force builds");
    assert!(forced.all_cached && forced.image_id == first.image_id);

    let mut failures = Vec::new();
    let mut taken = Vec::new();
    for (name, mutate) in mutations() {
        mutate(&dir.join("ctx"), &mut args);
        let r = image(dir, &tag, &args, &[]);
        cleanup.0.push(r.image_id.clone());
        if r.up_to_date {
            taken.push(name);
            let truth = image(dir, &tag, &args, &["--force"]);
            cleanup.0.push(truth.image_id.clone());
            if !truth.all_cached || truth.image_id != r.image_id {
                failures.push(format!(
                    "{name}: fast path taken, but Docker rebuilt (all cached: {}, {} vs {})",
                    truth.all_cached, truth.image_id, r.image_id
                ));
            }
        } else if r.all_cached {
            failures.push(format!(
                "{name}: Docker cached every step, the fast path was not taken"
            ));
        }
        eprintln!("{name}: fast path {}", r.up_to_date);
    }
    assert!(failures.is_empty(), "wrong:\n{}", failures.join("\n"));
    // What the families document: touch, rewrite, chown, ignored paths and an undeclared
    // build arg change nothing Docker hashes.
    for name in [
        "touch only (mtime) of every file",
        "same bytes rewritten",
        "chown of a file (the CLI sends uid/gid 0)",
        "new app/__pycache__/*.pyc (ignored by */__pycache__)",
        "change inside an ignored path",
        "new file under an ignored directory",
        "undeclared build-arg added",
    ] {
        assert!(taken.contains(&name), "{name}: expected the fast path");
    }
    assert!(!taken.contains(&"content edit of app/main.py"));
}

#[test]
fn deleted_image_retagged_base_and_another_engine_id_build() {
    require_engine();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nonce = unique("noop-engine");
    let mut cleanup = Cleanup(Vec::new());
    let base = own_base(&nonce, &mut cleanup);
    project(dir, &base, &nonce);
    let tag = format!("ctxbuild-test/{nonce}:1");
    cleanup.0.push(tag.clone());
    let none: Vec<(String, String)> = Vec::new();

    let first = image(dir, &tag, &none, &[]);
    cleanup.0.push(first.image_id.clone());
    assert!(image(dir, &tag, &none, &[]).up_to_date);

    // The tags are re-applied: a tag moved away comes back to the recorded image.
    docker(&["tag", &busybox_image(), &tag]);
    let r = image(dir, &tag, &none, &[]);
    assert!(r.up_to_date);
    let now = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(now.trim(), first.image_id);

    // The same engine through another DOCKER_HOST spelling (a symlinked socket): same engine
    // ID, same image store, Docker would hit — the fast path is taken.
    let sock = dir.join("docker.sock");
    symlink("/var/run/docker.sock", &sock).expect("ln");
    let host = format!("unix://{}", sock.display());
    let r = image(dir, &tag, &none, &["-H", &host]);
    assert!(r.up_to_date, "same engine ID through another host spelling");

    // A record made by another engine (another ID): build.
    let noop_dir = dir.join(".cache/noop");
    let files: Vec<_> = std::fs::read_dir(&noop_dir)
        .expect("record dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).expect("record");
    let v: serde_json::Value = serde_json::from_str(&text).expect("record json");
    let id = v["engine_id"].as_str().expect("engine_id").to_string();
    assert!(!id.is_empty());
    std::fs::write(&files[0], text.replace(&id, "OTHER:ENGINE")).expect("write");
    let r = image(dir, &tag, &none, &[]);
    assert!(
        !r.up_to_date,
        "another engine's record must not skip the build"
    );
    assert!(image(dir, &tag, &none, &[]).up_to_date, "re-recorded");

    // The image deleted from the engine: build (and Docker rebuilds the LABEL steps at least).
    docker(&["rmi", "-f", &first.image_id]);
    let r = image(dir, &tag, &none, &[]);
    cleanup.0.push(r.image_id.clone());
    assert!(!r.up_to_date, "a deleted image must be rebuilt");
    assert!(!r.all_cached);
    assert!(image(dir, &tag, &none, &[]).up_to_date);

    // The base reference re-tagged to another image: build, and Docker misses after FROM.
    let other = format!("ctxbuild-test/noop-other-{nonce}:1");
    let bdir = dir.join("other");
    write_tree(
        &bdir,
        &[(
            "Dockerfile",
            &format!("FROM {}\nLABEL other={nonce}\n", busybox_image()),
        )],
    );
    docker(&["build", "-q", "-t", &other, &bdir.to_string_lossy()]);
    cleanup.0.push(other.clone());
    docker(&["tag", &other, &base]);
    let r = image(dir, &tag, &none, &[]);
    cleanup.0.push(r.image_id.clone());
    assert!(!r.up_to_date, "a re-tagged base must be rebuilt");
    assert_eq!(r.report["steps"][1]["status"], "BUILT", "{}", r.report);
    assert!(image(dir, &tag, &none, &[]).up_to_date);
}

#[test]
fn push_from_the_fast_path_pushes_what_the_registry_lacks() {
    require_engine();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nonce = unique("noop-push");
    let mut cleanup = Cleanup(Vec::new());
    let base = own_base(&nonce, &mut cleanup);
    project(dir, &base, &nonce);
    let tag = format!("{}/ctxbuild-test/{nonce}:1", common::registry());
    cleanup.0.push(tag.clone());
    let none: Vec<(String, String)> = Vec::new();
    let first = image(dir, &tag, &none, &[]);
    cleanup.0.push(first.image_id.clone());
    let r = image(dir, &tag, &none, &["--push"]);
    assert!(r.up_to_date);
    let digest = r.report["pushed"][0]["digest"].as_str().unwrap_or("");
    assert!(digest.starts_with("sha256:"), "{}", r.report);
    // The registry has it now: pulling by digest works.
    let by_digest = format!("{}@{digest}", tag.rsplit_once(':').unwrap().0);
    docker(&["rmi", &tag]);
    docker(&["pull", "-q", &by_digest]);
    cleanup.0.push(by_digest);
}
