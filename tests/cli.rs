//! Basic CLI behaviour: help, version, completions, usage errors.

mod common;

#[test]
fn help_lists_every_command_with_examples() {
    let o = common::TestEnv::new().run(&["--help"]);
    assert!(o.status.success());
    let text = common::stdout(&o);
    for cmd in [
        "clean", "ls", "plan", "explain", "context", "render", "check", "image",
    ] {
        assert!(text.contains(cmd), "help lacks {cmd}:\n{text}");
    }
    assert!(text.contains("Examples:"));
}

#[test]
fn completions_are_generated() {
    let o = common::TestEnv::new().run(&["completions", "bash"]);
    assert!(o.status.success());
    assert!(common::stdout(&o).contains("ctxbuild"));
}

#[test]
fn usage_error_exits_2() {
    let o = common::TestEnv::new().run(&["--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn thread_count_is_bounded() {
    for bad in ["0", "257", "100000"] {
        let o = common::TestEnv::new().run(&["-j", bad, "ls"]);
        assert_eq!(o.status.code(), Some(2), "-j {bad} must be a usage error");
        assert!(
            common::stderr(&o).contains("--threads"),
            "{}",
            common::stderr(&o)
        );
    }
}
