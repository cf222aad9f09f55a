//! The classic builder's parser limits against the real engine: every Dockerfile the engine
//! rejects here, `ctxbuild`'s parser (and so `check` and `plan`) rejects with the same words,
//! and the largest line the engine accepts is accepted by both (issue 12 §2).

mod common;
#[path = "common/engine.rs"]
mod engine_helpers;

use ctxbuild::engine::{BuildOptions, Engine, EngineConfig};
use engine_helpers::{rmi, tar_of};

fn engine() -> Engine {
    common::require_engine();
    Engine::connect(&EngineConfig::from_env(None).unwrap()).expect("connect to the engine")
}

/// The engine's error for `dockerfile`, or `None` when it builds (the image is then removed).
fn engine_error(e: &Engine, dockerfile: &str) -> Option<String> {
    let tag = common::unique("ctxbuild-limits");
    let opts = BuildOptions {
        tags: vec![tag.clone()],
        ..BuildOptions::default()
    };
    let files = vec![("Dockerfile".to_string(), dockerfile.as_bytes().to_vec())];
    let r = e.build(&opts, tar_of(files), &mut |_| {});
    rmi(&[&tag]);
    r.err().map(|err| format!("{err:#}"))
}

/// What ctxbuild says about `dockerfile`: the parse error, or the plan error (FROM and
/// variable expansion are checked while planning, as the builder checks them per step).
fn ctxbuild_error(dockerfile: &str) -> Option<String> {
    let df = match ctxbuild::dockerfile::parse(dockerfile, "Dockerfile") {
        Ok(df) => df,
        Err(e) => return Some(e.to_string()),
    };
    let m = ctxbuild::key::Manifest::default();
    ctxbuild::key::plan(&df, &m, &ctxbuild::key::PlanOptions::default())
        .err()
        .map(|e| e.to_string())
}

#[test]
fn parser_limits_match_the_classic_builder() {
    let e = engine();
    let b = common::busybox_image();
    let line = |n: usize| format!("FROM {b}\nLABEL x={}\n", "a".repeat(n - 8));
    let rejected = [
        (
            line(65_536),
            "dockerfile line greater than max allowed size of 65535",
        ),
        (
            format!("FROM {b}\nONBUILD ONBUILD RUN true\n"),
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            format!("FROM {b}\nONBUILD FROM x\n"),
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            format!("FROM {b}\nHEALTHCHECK --interval=-1s CMD true\n"),
            "Interval \"interval\" cannot be less than 1ms",
        ),
        (
            format!("FROM {b}\nHEALTHCHECK --timeout=0s CMD true\n"),
            "Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            format!("FROM {b}\nHEALTHCHECK --retries=0 CMD true\n"),
            "--retries must be at least 1 (not 0)",
        ),
        (
            "FROM ${UNSET}\nRUN true\n".to_string(),
            "base name (${UNSET}) should not be blank",
        ),
    ];
    for (df, words) in &rejected {
        let shown = &df[..df.len().min(60)];
        let engine_says = engine_error(&e, df).unwrap_or_else(|| panic!("engine built {shown}"));
        assert!(engine_says.contains(words), "engine: {engine_says}");
        let ours = ctxbuild_error(df).unwrap_or_else(|| panic!("ctxbuild accepted {shown}"));
        assert!(ours.contains(words), "ctxbuild: {ours}");
    }
    let longest = line(65_535);
    assert_eq!(engine_error(&e, &longest), None);
    assert_eq!(ctxbuild_error(&longest), None);
}
