//! Inputs ctxbuild reads that are not ordinary files: a FIFO would hang a plain `read`, a
//! device would never end. Each library reader must refuse them promptly, naming the file.

use ctxbuild::engine::DockerConfig;
use ctxbuild::service::Config;
use std::path::Path;
use std::time::{Duration, Instant};

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Runs `f` on another thread and fails the test if it has not returned within 10 s (a read of
/// a FIFO with no writer blocks forever).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let start = Instant::now();
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader hung on a FIFO");
    assert!(start.elapsed() < Duration::from_secs(10));
    r
}

#[test]
fn ctxbuild_toml_as_a_fifo_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("ctxbuild.toml");
    mkfifo(&p);
    let e = promptly(move || Config::load(&p).map(|_| ()).unwrap_err());
    let chain = format!("{:?}", anyhow::Error::from(e));
    assert!(chain.contains("FIFO"), "{chain}");
}

#[test]
fn docker_config_json_as_a_fifo_or_device_is_refused() {
    let d = tempfile::tempdir().unwrap();
    mkfifo(&d.path().join("config.json"));
    let dir = d.path().to_path_buf();
    let e = promptly(move || DockerConfig::load(Some(&dir)).map(|_| ()).unwrap_err());
    assert!(e.to_string().contains("FIFO"), "{e}");

    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.path().join("config.json")).unwrap();
    let dir = d.path().to_path_buf();
    let e = promptly(move || DockerConfig::load(Some(&dir)).map(|_| ()).unwrap_err());
    assert!(e.to_string().contains("character device"), "{e}");
}

#[test]
fn a_fifo_dockerignore_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    mkfifo(&d.path().join(".dockerignore"));
    let root = d.path().to_path_buf();
    let e = promptly(move || {
        ctxbuild::context::scan(&ctxbuild::context::ContextOptions::new(root))
            .map(|_| ())
            .unwrap_err()
    });
    let chain = format!("{:?}", anyhow::Error::from(e));
    assert!(chain.contains("FIFO"), "{chain}");
}
