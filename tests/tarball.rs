//! `ctxbuild context`: the tar is byte-identical across runs and across `touch`, normalised
//! (sorted, uid/gid 0, fixed mtime, modes kept, symlinks and empty dirs in), honours
//! `.dockerignore` while always carrying the Dockerfile and `.dockerignore`, streams to stdout,
//! and the engine accepts it as a build context.

mod common;

use common::{busybox_image, docker_output, require_engine, unique, write_tree, TestEnv};
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Output;

fn run(dir: &Path, args: &[&str], epoch: Option<&str>) -> Output {
    let mut c = TestEnv::at(dir).cmd(args);
    match epoch {
        Some(e) => c.env("SOURCE_DATE_EPOCH", e),
        None => c.env_remove("SOURCE_DATE_EPOCH"),
    };
    let o = c.output().expect("run ctxbuild");
    assert!(
        o.status.success(),
        "ctxbuild {args:?} failed: {}",
        common::stderr(&o)
    );
    o
}

fn tree(root: &Path) {
    write_tree(
        root,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            (
                ".dockerignore",
                "Dockerfile\n.dockerignore\n**/__pycache__\nsecret.txt\n",
            ),
            ("app/main.py", "print('hi')\n"),
            ("app/__pycache__/main.cpython-311.pyc", "bytecode"),
            ("b.txt", "b\n"),
            ("secret.txt", "nope\n"),
        ],
    );
    std::fs::create_dir(root.join("app/empty")).unwrap();
    std::fs::set_permissions(
        root.join("app/main.py"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    symlink("main.py", root.join("app/link")).unwrap();
}

struct TarEntry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    uid: u64,
    link: Option<String>,
    data: String,
}

fn entries(bytes: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = String::new();
            e.read_to_string(&mut data).unwrap();
            TarEntry {
                path: e.path().unwrap().to_string_lossy().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                mtime: h.mtime().unwrap(),
                uid: h.uid().unwrap(),
                link: e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                data,
            }
        })
        .collect()
}

#[test]
fn byte_identical_across_runs_and_touch() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    let out = tmp.path().join("a.tar");
    let o = out.to_str().unwrap();
    run(&ctx, &["context", ".", "-o", o], None);
    let first = std::fs::read(&out).unwrap();
    run(&ctx, &["context", ".", "-o", o], None);
    assert_eq!(std::fs::read(&out).unwrap(), first, "two runs differ");

    // Touch everything (mtime/atime/ctime change): same bytes.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(7200);
    for f in ["app/main.py", "b.txt", "Dockerfile"] {
        let file = std::fs::File::options()
            .write(true)
            .open(ctx.join(f))
            .unwrap();
        file.set_modified(later).unwrap();
    }
    run(&ctx, &["context", ".", "-o", o], None);
    assert_eq!(std::fs::read(&out).unwrap(), first, "touch changed the tar");

    // stdout gives the same bytes.
    let stdout = run(&ctx, &["context", ".", "-o", "-"], None).stdout;
    assert_eq!(stdout, first);

    // A real change does change it.
    std::fs::write(ctx.join("b.txt"), "c\n").unwrap();
    run(&ctx, &["context", ".", "-o", o], None);
    assert_ne!(std::fs::read(&out).unwrap(), first);
}

#[test]
fn normalised_headers_and_docker_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    let bytes = run(&ctx, &["context", ".", "-o", "-"], Some("1700000000")).stdout;
    let es = entries(&bytes);
    let names: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
    // Sorted by bytes; the excluded Dockerfile and .dockerignore are still sent; ignored
    // bytecode and secret.txt are not.
    assert_eq!(
        names,
        vec![
            ".dockerignore",
            "Dockerfile",
            "app/",
            "app/empty/",
            "app/link",
            "app/main.py",
            "b.txt"
        ]
    );
    assert!(es.iter().all(|e| e.mtime == 1_700_000_000 && e.uid == 0));
    let main = es.iter().find(|e| e.path == "app/main.py").unwrap();
    assert_eq!((main.mode, main.data.as_str()), (0o750, "print('hi')\n"));
    let link = es.iter().find(|e| e.path == "app/link").unwrap();
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link.as_deref(), Some("main.py"));
    let empty = es.iter().find(|e| e.path == "app/empty/").unwrap();
    assert_eq!(empty.kind, tar::EntryType::Directory);

    let zero = run(&ctx, &["context", ".", "-o", "-"], None).stdout;
    assert!(
        entries(&zero).iter().all(|e| e.mtime == 0),
        "mtime 0 without SOURCE_DATE_EPOCH"
    );
}

#[test]
fn gzip_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    let a = run(&ctx, &["context", ".", "-o", "-", "--gzip"], None).stdout;
    let b = run(&ctx, &["context", ".", "-o", "-", "--gzip=9"], None).stdout;
    let c = run(&ctx, &["context", ".", "-o", "-", "--gzip"], None).stdout;
    assert_eq!(a, c);
    let mut pa = Vec::new();
    flate2::read::GzDecoder::new(a.as_slice())
        .read_to_end(&mut pa)
        .unwrap();
    let mut pb = Vec::new();
    flate2::read::GzDecoder::new(b.as_slice())
        .read_to_end(&mut pb)
        .unwrap();
    assert_eq!(pa, pb, "levels differ only in compression");
    assert_eq!(pa, run(&ctx, &["context", ".", "-o", "-"], None).stdout);
}

#[test]
#[cfg_attr(
    not(feature = "engine-tests"),
    ignore = "engine test: run with --features engine-tests (scripts/test.sh does)"
)]
fn the_engine_builds_from_it() {
    require_engine();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nCOPY . /ctx/\nRUN test -L /ctx/app/link && test -d /ctx/app/empty && test ! -e /ctx/secret.txt\n", busybox_image()),
    )
    .unwrap();
    let tar = tmp.path().join("ctx.tar");
    run(&ctx, &["context", ".", "-o", tar.to_str().unwrap()], None);
    let tag = format!("ctxbuild-test/{}:1", unique("keys-tar"));
    let o = std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    let _ = docker_output(&["rmi", "-f", &tag]);
    assert!(
        o.status.success(),
        "docker build from the tar failed: {}",
        common::stderr(&o)
    );
}

#[test]
fn an_output_inside_the_context_is_left_out_and_runs_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    let outside = tmp.path().join("outside.tar");
    run(
        &ctx,
        &["context", ".", "-o", outside.to_str().unwrap()],
        None,
    );
    let expected = std::fs::read(&outside).unwrap();

    // The README's example: the output lies inside the context, run twice.
    run(&ctx, &["context", ".", "-o", "ctx.tar"], None);
    let first = std::fs::read(ctx.join("ctx.tar")).unwrap();
    let o = run(&ctx, &["context", ".", "-o", "ctx.tar"], None);
    let second = std::fs::read(ctx.join("ctx.tar")).unwrap();
    assert_eq!(first, second, "the second run differs");
    assert_eq!(second, expected, "the output file was archived");
    assert!(
        common::stderr(&o).contains("leaving the output ctx.tar out of the tar"),
        "{}",
        common::stderr(&o)
    );
    assert!(entries(&second).iter().all(|e| !e.path.contains("ctx.tar")));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&ctx)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ctxbuild"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_failed_run_creates_nothing_and_bad_levels_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    tree(&ctx);
    let o = TestEnv::at(&ctx).run(&["context", ".", "-o", "missing/ctx.tar"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("cannot create missing/ctx.tar"));
    assert!(!ctx.join("missing").exists());

    let o = TestEnv::at(&ctx).run(&["context", ".", "-o", "x.tar", "--gzip=12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("0..=9"),
        "{}",
        common::stderr(&o)
    );
    assert!(!ctx.join("x.tar").exists());
}
