//! The engine module against the real Docker engine: streamed classic builds, the decoded
//! events, cache hits, failures with exit codes, cancellation, unreachable hosts, push.
//!
//! Contexts are made with the `tar` crate here; `tests/image_e2e.rs` covers the whole command.
// Engine suite: built only with `--features engine-tests` (scripts/test.sh always enables it;
// there a missing engine fails the run).
#![cfg(feature = "engine-tests")]

mod common;
#[path = "common/engine.rs"]
mod engine_helpers;

use ctxbuild::diagnostics::Diagnose;
use ctxbuild::diagnostics::ErrorClass;
use ctxbuild::engine::{
    BuildEvent, BuildOptions, Engine, EngineConfig, EngineError, PushFailure, StepStatus,
};
use engine_helpers::{containers_mentioning, rmi, tar_of};

fn engine() -> Engine {
    common::require_engine();
    Engine::connect(&EngineConfig::from_env(None).unwrap()).expect("connect to the engine")
}

fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .collect()
}

#[test]
fn negotiates_down_to_the_engine_api() {
    let e = engine();
    let v: Vec<u32> = e
        .api_version()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    let server = common::docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(e.api_version(), server.trim(), "negotiated {v:?}");
}

#[test]
fn builds_streamed_context_and_hits_the_cache_on_rebuild() {
    let e = engine();
    let tag = format!("ctxbuild-e2e/{}:1", common::unique("cache"));
    let marker = common::unique("marker");
    let dockerfile = format!(
        "FROM {}\nCOPY a.txt /a.txt\nRUN echo built-{marker} && wc -c /a.txt\n",
        common::busybox_image()
    );
    let ctx = files(&[("Dockerfile", &dockerfile), ("a.txt", &marker)]);
    let opts = BuildOptions {
        tags: vec![tag.clone(), format!("{tag}-second")],
        labels: vec![("org.example.test".into(), marker.clone())],
        ..Default::default()
    };

    let mut events = Vec::new();
    let first = e
        .build(&opts, tar_of(ctx.clone()), &mut |ev| {
            events.push(ev.clone())
        })
        .expect("first build");
    // The classic builder applies build labels as an extra, final LABEL step.
    assert_eq!(first.steps.len(), 4, "{:?}", first.steps);
    assert!(
        first.steps[3].instruction.starts_with("LABEL "),
        "{:?}",
        first.steps[3]
    );
    assert_eq!(
        first.steps[2].instruction,
        format!("RUN echo built-{marker} && wc -c /a.txt")
    );
    assert_eq!(first.steps[1].status, StepStatus::Built);
    assert_eq!(first.steps[2].status, StepStatus::Built);
    assert!(first.image_id.starts_with("sha256:"), "{}", first.image_id);
    assert!(first.upload_bytes > 0);
    assert!(events
        .iter()
        .any(|ev| matches!(ev, BuildEvent::UploadDone { .. })));
    assert!(events.iter().any(
        |ev| matches!(ev, BuildEvent::Output { number: 3, line } if line == &format!("built-{marker}"))
    ));
    // The intermediate container of the RUN was announced and removed.
    assert_eq!(first.steps[2].containers.len(), 1);
    assert!(events
        .iter()
        .any(|ev| matches!(ev, BuildEvent::ContainerRemoved { .. })));
    assert_eq!(first.tags, vec![tag.clone(), format!("{tag}-second")]);
    assert!(e.image_exists(&format!("{tag}-second")).unwrap());
    let labels = common::docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"org.example.test\"}}",
        &tag,
    ]);
    assert_eq!(labels.trim(), marker);

    let second = e
        .build(&opts, tar_of(ctx), &mut |_| {})
        .expect("second build");
    assert!(
        second.steps.iter().all(|s| s.status == StepStatus::Cached),
        "{:?}",
        second.steps
    );
    assert_eq!(second.image_id, first.image_id);

    // Layer sizes from the history: the COPY layer holds the marker's bytes.
    let history = e.history(&first.image_id).unwrap();
    let copy_id = first.steps[1].image_id.clone().unwrap();
    let copy = history
        .iter()
        .find(|l| l.id.starts_with(&format!("sha256:{copy_id}")))
        .expect("the COPY step is in the history");
    assert_eq!(copy.size, marker.len() as u64);
    assert!(e.image_size(&first.image_id).unwrap() >= copy.size);
    rmi(&[&tag, &format!("{tag}-second")]);
}

#[test]
fn failing_run_reports_step_code_and_output_and_leaves_no_container() {
    let e = engine();
    let marker = common::unique("failrun");
    let dockerfile = format!(
        "FROM {}\nRUN echo first-{marker}\nRUN echo out-{marker} && echo err-{marker} >&2 && exit 3\n",
        common::busybox_image()
    );
    let err = e
        .build(
            &BuildOptions::default(),
            tar_of(files(&[("Dockerfile", &dockerfile)])),
            &mut |_| {},
        )
        .unwrap_err();
    match &err {
        EngineError::BuildFailed {
            step: Some(step),
            code,
            tail,
            ..
        } => {
            assert_eq!((step.number, step.total), (3, 3));
            assert!(step.instruction.starts_with("RUN echo out-"));
            assert_eq!(*code, Some(3));
            assert!(tail.contains(&format!("out-{marker}")), "{tail:?}");
            assert!(
                tail.contains(&format!("err-{marker}")),
                "stderr kept: {tail:?}"
            );
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::BuildFailed);
    assert!(err.to_string().contains("step 3/3"), "{err}");
    assert_eq!(containers_mentioning(&marker), Vec::<String>::new());
}

#[test]
fn dockerfile_syntax_error_is_a_rejected_build() {
    let e = engine();
    let err = e
        .build(
            &BuildOptions::default(),
            tar_of(files(&[("Dockerfile", "FROM scratch\nFOO bar\n")])),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::BuildRejected { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown instruction"), "{err}");
    assert_eq!(err.class(), ErrorClass::BuildFailed);
}

#[test]
fn a_failing_context_producer_is_reported_as_such() {
    let e = engine();
    let err = e
        .build(
            &BuildOptions::default(),
            |w: &mut dyn std::io::Write| {
                w.write_all(&[0u8; 1024])?;
                Err("cannot read app/locked.py: permission denied".into())
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Context { .. }), "{err:?}");
    let chain = format!("{:?}", anyhow::Error::new(err));
    assert!(chain.contains("app/locked.py"), "{chain}");
}

#[test]
fn cancel_mid_run_removes_the_intermediate_container() {
    let e = engine();
    let marker = common::unique("cancel");
    let dockerfile = format!(
        "FROM {}\nRUN echo start-{marker} && sleep 30\n",
        common::busybox_image()
    );
    let cancel = e.cancel_handle();
    let started = std::time::Instant::now();
    let mut saw_running = false;
    let err = e
        .build(
            &BuildOptions::default(),
            tar_of(files(&[("Dockerfile", &dockerfile)])),
            &mut |ev| {
                if let BuildEvent::Output { line, .. } = ev {
                    if line.starts_with("start-") {
                        saw_running = true;
                        cancel.cancel();
                    }
                }
            },
        )
        .unwrap_err();
    assert!(saw_running);
    assert!(matches!(err, EngineError::Interrupted), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Interrupted);
    assert!(
        started.elapsed().as_secs() < 25,
        "did not wait for the sleep"
    );
    assert_eq!(containers_mentioning(&marker), Vec::<String>::new());
}

#[test]
fn unreachable_hosts_name_the_host_and_exit_3() {
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let cfg = EngineConfig::from_env(Some(host)).unwrap();
        let err = Engine::connect(&cfg).unwrap_err();
        assert!(
            matches!(err, EngineError::Unreachable { .. }),
            "{host}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::EngineUnreachable);
        assert!(err.to_string().contains(host), "{err}");
        assert!(err.to_string().contains("from --host"), "{err}");
        assert!(err.hint().is_some());
    }
}

#[test]
fn push_to_the_loopback_registry_then_pull_by_digest() {
    let e = engine();
    let repo = format!(
        "{}/ctxbuild-e2e/{}",
        common::registry(),
        common::unique("push")
    );
    let tag = format!("{repo}:1");
    let marker = common::unique("pushed");
    let ctx = files(&[
        (
            "Dockerfile",
            &format!("FROM {}\nCOPY m /m\n", common::busybox_image()),
        ),
        ("m", &marker),
    ]);
    let built = e
        .build(
            &BuildOptions {
                tags: vec![tag.clone()],
                ..Default::default()
            },
            tar_of(ctx),
            &mut |_| {},
        )
        .unwrap();
    let mut statuses = Vec::new();
    let pushed = e
        .push(&tag, None, &mut |ev| statuses.push(ev.clone()))
        .expect("push");
    let digest = pushed.digest.clone().expect("a digest");
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(!statuses.is_empty());

    // Pull back by digest into a clean state: the content must be ours.
    rmi(&[&tag]);
    let by_digest = format!("{repo}@{digest}");
    common::docker(&["pull", "-q", &by_digest]);
    let id = common::docker(&["inspect", "--format", "{{.Id}}", &by_digest]);
    assert_eq!(id.trim(), built.image_id);
    rmi(&[&by_digest]);
}

#[test]
fn push_to_a_dead_registry_is_a_network_failure() {
    let e = engine();
    let tag = format!("127.0.0.1:1/ctxbuild-e2e/{}:1", common::unique("dead"));
    let built = e
        .build(
            &BuildOptions {
                tags: vec![tag.clone()],
                ..Default::default()
            },
            tar_of(files(&[(
                "Dockerfile",
                &format!("FROM {}\n", common::busybox_image()),
            )])),
            &mut |_| {},
        )
        .unwrap();
    assert!(!built.image_id.is_empty());
    let err = e.push(&tag, None, &mut |_| {}).unwrap_err();
    match &err {
        EngineError::Push { kind, .. } => assert_eq!(*kind, PushFailure::Network, "{err}"),
        other => panic!("expected a push failure, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::PushFailed);
    rmi(&[&tag]);
}

#[test]
fn an_injected_dockerfile_is_not_visible_to_copy() {
    // The production path: `image`'s tar options (injected Dockerfile + self-hiding
    // .dockerignore) written by the context tar writer.
    use ctxbuild::image::inject::{own_dockerignore, tar_options, INJECTED_DOCKERFILE};
    let e = engine();
    let tag = format!("ctxbuild-e2e/{}:1", common::unique("inject"));
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(dir.path(), &[("app.py", "print(1)\n")]);
    let ctx = ctxbuild::context::scan(&ctxbuild::context::ContextOptions::new(dir.path())).unwrap();
    let dockerfile = format!(
        "FROM {}\nCOPY . /x/\nRUN find /x | sort\n",
        common::busybox_image()
    );
    let own = own_dockerignore(&ctx).unwrap();
    let opts = tar_options(&ctx, own, &dockerfile, 0);
    let root = ctx.root.clone();
    let sent: Vec<_> = ctx.sent().into_iter().cloned().collect();
    let mut out = Vec::new();
    e.build(
        &BuildOptions {
            dockerfile: Some(INJECTED_DOCKERFILE.into()),
            tags: vec![tag.clone()],
            ..Default::default()
        },
        move |w: &mut dyn std::io::Write| {
            ctxbuild::tarball::write_context(&root, &sent, w, &opts)?;
            Ok(())
        },
        &mut |ev| {
            if let BuildEvent::Output { line, .. } = ev {
                out.push(line.clone())
            }
        },
    )
    .expect("build with an injected Dockerfile");
    assert_eq!(out, vec!["/x", "/x/app.py"]);
    rmi(&[&tag]);
}
