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

/// Every command `--help` lists (clap's own `help` aside).
const COMMANDS: [&str; 12] = [
    "clean",
    "ls",
    "plan",
    "explain",
    "context",
    "render",
    "check",
    "image",
    "smoke",
    "completions",
    "cloudbuild",
    "init",
];

/// Renders roff to text with groff when the machine has it (man pages are for machines that
/// do); otherwise the roff source is checked as it is.
fn render_roff(roff: &[u8]) -> String {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou", "-ww"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return String::from_utf8_lossy(roff).replace("\\-", "-");
    };
    child.stdin.take().unwrap().write_all(roff).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "groff: {}", common::stderr(&o));
    assert!(o.stderr.is_empty(), "groff warns: {}", common::stderr(&o));
    common::stdout(&o)
}

#[test]
fn man_page_renders_and_names_every_command() {
    let o = common::TestEnv::new().cmd(&["man"]).output().unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let roff = common::stdout(&o);
    assert!(roff.contains(".TH ctxbuild 1"), "{roff}");
    let text = render_roff(&o.stdout);
    assert!(text.contains("SUBCOMMANDS"), "{text}");
    // `--help` and the page agree on the command list.
    let help = common::stdout(&common::TestEnv::new().cmd(&["--help"]).output().unwrap());
    for cmd in COMMANDS {
        assert!(help.contains(&format!("  {cmd} ")), "--help lacks {cmd}");
        assert!(
            text.contains(&format!("ctxbuild-{cmd}(1)")),
            "the man page does not name {cmd}:\n{text}"
        );
    }
    let listed = text.matches("ctxbuild-").count();
    // Each command once, plus clap's `help`; nothing undocumented slipped in.
    assert_eq!(listed, COMMANDS.len() + 1, "{text}");
    // The hidden generator itself is not advertised.
    assert!(!text.contains("ctxbuild-man"), "{text}");
}

#[test]
fn man_page_of_a_command_shows_its_options() {
    let o = common::TestEnv::new().cmd(&["man", "ls"]).output().unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = render_roff(&o.stdout);
    assert!(text.contains("ctxbuild-ls"), "{text}");
    for opt in ["--json", "--sizes", "--buildkit", "--file"] {
        assert!(text.contains(opt), "ctxbuild-ls(1) lacks {opt}:\n{text}");
    }
    let o = common::TestEnv::new()
        .cmd(&["man", "nope"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(common::stderr(&o).contains("no command `nope`"));
}

/// `image --clean` removes bytecode from the service's context: a context that a symbolic link
/// planted in the project leads out of it (`app -> ~`) is refused before anything is removed,
/// sent or even connected to, as `render --write-dockerignore` refuses to write there.
#[test]
fn image_clean_refuses_a_context_linked_out_of_the_project() {
    let outside = tempfile::tempdir().unwrap();
    common::write_tree(
        outside.path(),
        &[("__pycache__/m.cpython-311.pyc", "x"), ("m.py", "")],
    );
    let env = common::TestEnv::new().with(&[(
        "ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\ncontext = \"app\"\n",
    )]);
    std::os::unix::fs::symlink(outside.path(), env.path().join("app")).unwrap();
    let o = env.cmd(&["image", "api", "--clean"]).output().unwrap();
    let err = common::stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("refusing --clean"), "{err}");
    assert!(err.contains("ctxbuild.toml:4"), "{err}");
    assert!(outside
        .path()
        .join("__pycache__/m.cpython-311.pyc")
        .exists());
}

/// `smoke` passes `env_file`'s values into a container of the project's image: a symbolic link
/// planted in the project (`smoke.env -> ~/other/.env`) is refused before anything runs.
#[test]
fn smoke_refuses_an_env_file_linked_out_of_the_project() {
    let outside = tempfile::tempdir().unwrap();
    common::write_tree(outside.path(), &[("secret.env", "TOKEN=s3cret\n")]);
    let env = common::TestEnv::new().with(&[(
        "ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\ncontext = \".\"\nenv_file = \"smoke.env\"\n",
    )]);
    std::os::unix::fs::symlink(
        outside.path().join("secret.env"),
        env.path().join("smoke.env"),
    )
    .unwrap();
    let o = env
        .cmd(&["smoke", "api", "--image", "ctxbuild-test/never-run:1"])
        .output()
        .unwrap();
    let err = common::stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("env_file leads through a symbolic link"),
        "{err}"
    );
    assert!(err.contains("ctxbuild.toml:5"), "{err}");
}

#[test]
fn image_report_to_stdout_and_json_conflict_before_anything_runs() {
    // No engine is needed: the conflict is refused before the config is even read.
    let env = common::TestEnv::new();
    for spelling in ["-", "/dev/stdout"] {
        let o = env
            .cmd(&["image", "api", "--report", spelling, "--json"])
            .output()
            .unwrap();
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("both write to standard output"), "{err}");
        assert!(o.stdout.is_empty());
    }
}
