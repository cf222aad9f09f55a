//! `ctxbuild ls`: the listing, `--json`, `--sizes`, `-f`, errors and exit codes.

mod common;

use common::{stderr, stdout, write_tree, TestEnv};
use std::os::unix::ffi::OsStrExt;

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn lists_files_and_symlinks_visible_to_copy_sorted_by_bytes() {
    let d = tempfile::tempdir().unwrap();
    write_tree(
        d.path(),
        &[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*.md\n!KEEP.md\nsecrets\nDockerfile\n"),
            ("a.md", ""),
            ("KEEP.md", ""),
            ("secrets/key", ""),
            ("src/app.py", ""),
            ("src.txt", ""),
            ("Z", ""),
        ],
    );
    std::fs::create_dir(d.path().join("empty")).unwrap();
    std::os::unix::fs::symlink("src/app.py", d.path().join("link")).unwrap();
    let o = TestEnv::at(d.path()).run(&["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Byte order: `src.txt` (0x2e) sorts before `src/app.py` (0x2f); dirs are not listed;
    // the excluded Dockerfile is sent but not visible to COPY.
    assert_eq!(
        lines(&o),
        [
            ".dockerignore",
            "KEEP.md",
            "Z",
            "link",
            "src.txt",
            "src/app.py"
        ]
    );
}

#[test]
fn json_has_type_size_mode_and_link_target() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), &[("run.sh", "#!/bin/sh\n")]);
    std::fs::set_permissions(
        d.path().join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("missing", d.path().join("dangling")).unwrap();
    let o = TestEnv::at(d.path()).run(&["ls", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["path"], "dangling");
    assert_eq!(rows[0]["type"], "symlink");
    assert_eq!(rows[0]["link_target"], "missing");
    assert_eq!(rows[1]["path"], "run.sh");
    assert_eq!(rows[1]["type"], "file");
    assert_eq!(rows[1]["size"], 10);
    assert_eq!(rows[1]["mode"], "0750");
    assert!(rows[1].get("link_target").is_none());
}

#[test]
fn sizes_weigh_directories_and_pollution() {
    let d = tempfile::tempdir().unwrap();
    write_tree(
        d.path(),
        &[
            ("app/main.py", &"x".repeat(1000)),
            ("app/__pycache__/main.cpython-312.pyc", &"y".repeat(3000)),
            ("lib/util.pyc", &"z".repeat(500)),
            ("docs/readme.txt", "hi"),
        ],
    );
    let o = TestEnv::at(d.path()).run(&["ls", "--sizes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("context: 4 files, 4.50 kB\n"), "{text}");
    assert!(text.contains("heaviest directories:\n"), "{text}");
    let first = text.lines().nth(2).unwrap();
    assert!(first.ends_with("  app"), "{text}");
    assert!(
        text.contains(
            "pollution: 2 bytecode files in 1 __pycache__ dir, 3.50 kB (77.7% of the context)"
        ),
        "{text}"
    );
    assert!(stderr(&o).contains("hint: run `ctxbuild clean`"));

    let o = TestEnv::at(d.path()).run(&["ls", "--sizes", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"]["files"], 4);
    assert_eq!(v["total"]["bytes"], 4502);
    assert_eq!(v["pollution"]["files"], 2);
    assert_eq!(v["pollution"]["bytes"], 3500);
    assert_eq!(v["pollution"]["pycache_dirs"], 1);
    assert_eq!(v["heaviest"][0]["path"], "app");
    assert_eq!(v["heaviest"][0]["bytes"], 4000);
}

#[test]
fn sizes_after_dockerignore_show_no_pollution() {
    let d = tempfile::tempdir().unwrap();
    write_tree(
        d.path(),
        &[
            (".dockerignore", "**/__pycache__\n**/*.pyc\n"),
            ("app/__pycache__/m.pyc", "x"),
            ("app/m.py", "x"),
        ],
    );
    let o = TestEnv::at(d.path()).run(&["ls", "--sizes"]);
    assert!(stdout(&o).contains("pollution: none"), "{}", stdout(&o));
}

#[test]
fn dockerfile_flag_is_relative_to_the_current_directory() {
    let d = tempfile::tempdir().unwrap();
    write_tree(
        d.path(),
        &[
            ("ctx/docker/Dockerfile", "FROM scratch\n"),
            ("ctx/docker/notes", ""),
            ("ctx/.dockerignore", "docker\n"),
            ("ctx/app.py", ""),
        ],
    );
    let o = TestEnv::at(d.path()).run(&["ls", "ctx", "-f", "ctx/docker/Dockerfile"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Sent (force-included) but deleted by the daemon before COPY.
    assert_eq!(lines(&o), [".dockerignore", "app.py"]);
    let o = TestEnv::at(d.path()).run(&["ls", "ctx", "-f", "docker/Dockerfile"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Dockerfile `docker/Dockerfile` does not exist"));
    assert!(stderr(&o).contains("hint: `-f` is relative to the current directory"));
}

#[test]
fn buildkit_flag_uses_the_dockerfile_dockerignore() {
    let d = tempfile::tempdir().unwrap();
    write_tree(
        d.path(),
        &[
            ("Dockerfile", ""),
            ("Dockerfile.dockerignore", "*.log\nDockerfile*\n"),
            (".dockerignore", "*.txt\n"),
            ("a.log", ""),
            ("a.txt", ""),
        ],
    );
    let classic = TestEnv::at(d.path()).run(&["ls"]);
    assert_eq!(
        lines(&classic),
        [
            ".dockerignore",
            "Dockerfile",
            "Dockerfile.dockerignore",
            "a.log"
        ]
    );
    let bk = TestEnv::at(d.path()).run(&["ls", "--buildkit"]);
    assert_eq!(lines(&bk), [".dockerignore", "a.txt"]);
}

#[test]
fn non_utf8_names_are_printed_as_raw_bytes() {
    let d = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(d.path().join(name), "").unwrap();
    let o = TestEnv::at(d.path()).run(&["ls"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"caf\xe9.txt\n");
}

#[test]
fn missing_context_is_an_error_with_a_hint() {
    let d = tempfile::tempdir().unwrap();
    let o = TestEnv::at(d.path()).run(&["ls", "no-such-dir"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: build context `no-such-dir` does not exist\n"),
        "{err}"
    );
    assert!(err.contains("hint: pass the directory you give `docker build`"));
    assert!(o.stdout.is_empty());
}

#[test]
fn invalid_dockerignore_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), &[(".dockerignore", "# ok\n*.md\n!\n")]);
    let o = TestEnv::at(d.path()).run(&["ls"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: .dockerignore:3: illegal exclusion pattern: \"!\""),
        "{err}"
    );
    assert!(
        err.contains("hint: docker build fails the same way"),
        "{err}"
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    // 12,000 lines of 11 bytes: twice a 64 KiB pipe buffer, so ctxbuild is still writing when
    // the reader goes and really meets the broken pipe.
    let d = tempfile::tempdir().unwrap();
    for i in 0..12_000 {
        std::fs::write(d.path().join(format!("file-{i:05}")), "").unwrap();
    }
    let mut child = TestEnv::at(d.path())
        .cmd(&["ls"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first[..11], b"file-00000\n");
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "said nothing");
}

#[test]
fn default_dir_is_the_current_directory() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), &[("x", "")]);
    let o = TestEnv::at(&d.path().join(".")).run(&["ls"]);
    assert_eq!(lines(&o), ["x"]);
}

fn mknod(path: &std::path::Path, mode: libc::mode_t, dev: libc::dev_t) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    unsafe { libc::mknod(c.as_ptr(), mode, dev) == 0 }
}

#[test]
fn json_lists_pipes_and_devices_with_their_type_and_number() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), &[("a.txt", "a")]);
    assert!(mknod(&d.path().join("pipe"), libc::S_IFIFO | 0o640, 0));
    // Device nodes need CAP_MKNOD: check the pipe everywhere, the device where we may.
    let dev = mknod(
        &d.path().join("null"),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3),
    );
    let o = TestEnv::at(d.path()).run(&["ls", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("leaves it out"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let by_path = |p: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == p)
            .unwrap_or_else(|| panic!("{p} not listed: {v}"))
            .clone()
    };
    let pipe = by_path("pipe");
    assert_eq!(pipe["type"], "fifo");
    assert_eq!(pipe["mode"], "0640");
    assert_eq!(pipe["size"], 0);
    assert!(pipe.get("device").is_none());
    if dev {
        let null = by_path("null");
        assert_eq!(null["type"], "char-device");
        assert_eq!(null["device"], serde_json::json!([1, 3]));
    }
    // The plain listing names them too.
    let o = TestEnv::at(d.path()).run(&["ls"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pipe\n"));
}

#[test]
fn json_shows_the_mode_copy_produces_for_setuid_and_setgid() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), &[("su", "x"), ("sg", "y"), ("sgnx", "z")]);
    for (name, mode) in [("su", 0o4755), ("sg", 0o2750), ("sgnx", 0o2644)] {
        std::fs::set_permissions(d.path().join(name), PermissionsExt::from_mode(mode)).unwrap();
    }
    let o = TestEnv::at(d.path()).run(&["ls", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<(String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["mode"].as_str().unwrap().to_owned(),
                r["copy_mode"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // As observed on the engine: 4755 → 0755, 2750 → 0750; setgid without group-execute stays.
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        got,
        [
            t("sg", "2750", "0750"),
            t("sgnx", "2644", "2644"),
            t("su", "4755", "0755")
        ]
    );
}
