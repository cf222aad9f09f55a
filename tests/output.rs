//! Writing results: only a reader that went away (a broken pipe) is graceful. Any other write
//! error on stdout — `/dev/full` here — fails the run with its cause, including one that only
//! shows when the buffered output is flushed at the end.

mod common;

use common::TestEnv;
use std::process::{Output, Stdio};

fn to_dev_full(env: &TestEnv, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    env.cmd(args)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .expect("run ctxbuild")
}

fn assert_fails_with_cause(o: &Output, what: &str) {
    let err = common::stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains("No space left on device"), "{what}: {err}");
}

fn small_context() -> TestEnv {
    TestEnv::new().with(&[
        ("ctx/app.py", "print(1)\n"),
        ("ctx/Dockerfile", "FROM scratch\n"),
    ])
}

#[test]
fn ls_to_a_full_disk_fails() {
    // A few lines: they sit in the buffer until the final flush, whose error must count.
    let env = small_context();
    assert_fails_with_cause(&to_dev_full(&env, &["ls", "ctx"]), "ls");
    assert!(common::stderr(&to_dev_full(&env, &["ls", "ctx"])).contains("cannot write to stdout"));
}

#[test]
fn context_tar_to_a_full_disk_fails() {
    let env = small_context();
    // Bigger than any buffer: the failure comes from the tar writer itself.
    common::write_tree(
        &env.path().join("ctx"),
        &[("big.bin", &"x".repeat(200_000))],
    );
    assert_fails_with_cause(
        &to_dev_full(&env, &["context", "ctx", "-o", "-"]),
        "context",
    );
}

#[test]
fn check_json_to_a_full_disk_fails() {
    let env = TestEnv::new().with(&[
        (
            "ctxbuild.toml",
            "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n",
        ),
        ("api/main.py", "app = None\n"),
        (
            "api/requirements.txt",
            "fastapi\ngunicorn\nuvicorn-worker\n",
        ),
    ]);
    let o = to_dev_full(&env, &["check", "--json"]);
    assert_ne!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert_ne!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert_fails_with_cause(&o, "check --json");
}

fn mknod(path: &std::path::Path, mode: libc::mode_t, dev: libc::dev_t) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    unsafe { libc::mknod(c.as_ptr(), mode, dev) == 0 }
}

fn file_type(path: &std::path::Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

/// `-o` naming a FIFO or a device writes into it, as a shell's `>` does. Renaming the tar over
/// it (the atomic write meant for files) replaced the node: `context -o /dev/null` run as root
/// turned `/dev/null` into a regular file.
#[test]
fn context_to_a_fifo_or_device_writes_into_it() {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let env = small_context();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("context.tar");
    assert!(mknod(&fifo, libc::S_IFIFO | 0o644, 0));
    // The read end first, non-blocking: ctxbuild's open does not wait, and a run that replaced
    // the FIFO instead of feeding it leaves it empty rather than hanging the test.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut child = env
        .cmd(&["context", "ctx", "-o", fifo.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drained while it runs (a tar bigger than the pipe would otherwise block it), bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut tar, mut buf) = (Vec::new(), [0u8; 65536]);
    let status = loop {
        let exited = child.try_wait().unwrap();
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => tar.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        if let Some(st) = exited {
            // Whatever it wrote before exiting is in the pipe: read to the end.
            let _ = reader.read_to_end(&mut tar);
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("context -o FIFO did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "{err}");
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"app.py".to_string()), "{names:?}");
    assert!(file_type(&fifo).is_fifo());

    // Our own full device (as root): its error is the run's, and the node stays.
    let full = dir.path().join("full");
    if mknod(&full, libc::S_IFCHR | 0o666, libc::makedev(1, 7)) {
        let o = env
            .cmd(&["context", "ctx", "-o", full.to_str().unwrap()])
            .output()
            .unwrap();
        assert_fails_with_cause(&o, "context -o full");
        assert!(file_type(&full).is_char_device());
    } else {
        eprintln!("mknod not permitted: the device case is covered by the FIFO only");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2 - usize::from(!full.exists())
    );
}

/// `-o /dev/fd/3` with descriptor 3 given by the caller (a shell's `3>out.tar`) writes there;
/// a descriptor the caller did not give is refused, not written into whatever ctxbuild itself
/// holds open at that number.
#[test]
fn context_to_a_given_descriptor_writes_there() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let env = small_context();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tar");
    let file = std::fs::File::create(&out).unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = env.cmd(&["context", "ctx", "-o", "/dev/fd/3"]);
    // SAFETY: dup2 and fcntl are async-signal-safe; they make fd 3 (without close-on-exec) in
    // the child.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it then.
            let ok = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let tar = std::fs::read(&out).unwrap();
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"app.py".to_string()), "{names:?}");

    // Not given: refused with the reason, whatever is or is not open at that number inside.
    for fd in [3, 9] {
        let mut cmd = env.cmd(&["context", "ctx", "-o", &format!("/dev/fd/{fd}")]);
        // Whatever the test's own parent left open there (a make jobserver) is not given.
        // SAFETY: close is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::close(fd);
                Ok(())
            });
        }
        let o = cmd.output().unwrap();
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("was not given to ctxbuild") || err.contains("is not open"),
            "{err}"
        );
    }
}
