//! `--build-arg K` (no `=`) means what it means to the docker CLI everywhere: K's value from the
//! environment, else K is left unset (the Dockerfile's default holds). `--label K` never reads
//! the environment. `plan` and `image` resolve build args the same way.

mod common;

use common::TestEnv;

fn busybox_service(dockerfile: &str) -> TestEnv {
    TestEnv::new().with(&[
        (
            "ctxbuild.toml",
            "[services.bb]\nkind = \"python-asgi\"\ncontext = \"bb\"\napp = \"main:app\"\ndockerfile = \"Dockerfile\"\n",
        ),
        ("bb/main.py", "print('hi')\n"),
        ("bb/Dockerfile", &dockerfile.replace("BUSYBOX", &common::busybox_image())),
    ])
}

#[test]
fn plan_takes_a_bare_build_arg_from_the_environment_or_leaves_it_unset() {
    let env = TestEnv::new().with(&[("Dockerfile", "FROM x\nARG V=dflt\nRUN echo $V\n")]);
    let key = |args: &[&str], v: Option<&str>| {
        let mut c = env.cmd(&[&["plan", ".", "--json"], args].concat());
        match v {
            Some(v) => c.env("V", v),
            None => c.env_remove("V"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        plan["steps"][2]["key"].as_str().unwrap().to_string()
    };
    assert_eq!(key(&["--build-arg", "V"], None), key(&[], None));
    assert_eq!(
        key(&["--build-arg", "V"], Some("e")),
        key(&["--build-arg", "V=e"], None)
    );
    assert_ne!(key(&["--build-arg", "V="], None), key(&[], None));
}

#[test]
#[cfg_attr(
    not(feature = "engine-tests"),
    ignore = "engine test: run with --features engine-tests (scripts/test.sh does)"
)]
fn image_leaves_an_unset_bare_build_arg_unset_and_labels_never_read_the_environment() {
    common::require_engine();
    let env = busybox_service("FROM BUSYBOX\nARG V=dflt\nRUN echo \"V is <$V>\"\n");
    let tag = format!("{}:t", common::unique("bargs"));
    let build = |v: Option<&str>| {
        let mut c = env.cmd(&[
            "--progress",
            "plain",
            "image",
            "bb",
            "--no-check",
            "--no-cache",
            "-t",
            &tag,
            "--build-arg",
            "V",
            "--label",
            "PATH",
        ]);
        match v {
            Some(v) => c.env("V", v),
            None => c.env_remove("V"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        common::stderr(&o)
    };
    let unset = build(None);
    let from_env = build(Some("from-env"));
    let label = common::docker(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"PATH\"}}",
        &tag,
    ]);
    let _ = common::docker_output(&["rmi", &tag]);
    // Before: `V=""` was sent, overriding the default.
    assert!(unset.contains("V is <dflt>"), "{unset}");
    assert!(from_env.contains("V is <from-env>"), "{from_env}");
    assert_eq!(label.trim(), "", "the label read $PATH");
}
