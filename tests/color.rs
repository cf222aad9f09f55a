//! Colour follows the terminal and `NO_COLOR` (https://no-color.org): run under a pseudo-terminal
//! (util-linux `script`), an error is coloured; with `NO_COLOR` set, or `--color never`, it is
//! plain text. Piped output is never coloured.
//!
//! Not through `common::TestEnv`: it sets `NO_COLOR` for every run, and this test needs the
//! binary under `script` with `NO_COLOR` unset.

use std::process::Command;

fn under_pty(dir: &std::path::Path, args: &str, no_color: bool) -> String {
    let bin = env!("CARGO_BIN_EXE_ctxbuild");
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env("CTXBUILD_CACHE_DIR", dir.join(".cache"));
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().expect("util-linux `script` runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_color_and_color_never_turn_colour_off_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("ctxbuild.toml"),
        "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\nwokers = 2\n",
    )
    .unwrap();
    let coloured = under_pty(d.path(), "check", false);
    assert!(coloured.contains("unknown key"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = under_pty(d.path(), "check", true);
    assert!(plain.contains("unknown key"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
    let never = under_pty(d.path(), "--color never check", false);
    assert!(!never.contains('\x1b'), "--color never: {never:?}");
    // Not a terminal: no colour whatever NO_COLOR says.
    let piped = Command::new(env!("CARGO_BIN_EXE_ctxbuild"))
        .arg("check")
        .current_dir(d.path())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains('\x1b'));
}
