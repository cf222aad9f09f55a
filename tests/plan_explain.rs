//! `ctxbuild plan` and `ctxbuild explain` end to end: the JSON shape, the human table, the stat
//! cache (reused, and never trusted when corrupt or stale), `--save` + `explain --since` naming
//! the files behind the first miss, and parse errors naming file:line.

mod common;

use common::{stderr, stdout, write_tree, TestEnv};
use std::path::Path;
use std::process::Output;

fn run(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    TestEnv::at(dir).with_cache(cache).run(args)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    o
}

const DF: &str = "FROM busybox\nENV A=1\nCOPY requirements.txt /r/\nRUN pip install -r /r/requirements.txt\nCOPY app/ /app/\nCMD [\"python\", \"/app/main.py\"]\n";

fn project(root: &Path) {
    write_tree(
        root,
        &[
            ("Dockerfile", DF),
            ("requirements.txt", "flask\n"),
            ("app/main.py", "print('hi')\n"),
            ("app/pkg/util.py", "X = 1\n"),
        ],
    );
}

fn keys(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn json_shape_and_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    let o = ok(run(&ctx, &cache, &["plan", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["context_digest"].as_str().unwrap().len(), 64);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[4]["index"], 5);
    assert_eq!(steps[4]["instruction"], "COPY app/ /app/");
    assert_eq!(steps[4]["sources"], serde_json::json!(["app/"]));
    // Files only: app/main.py and app/pkg/util.py (not the directories app and app/pkg).
    assert_eq!(steps[4]["files"], 2, "app/main.py, app/pkg/util.py");
    assert!(
        v.get("manifest").is_none(),
        "the manifest is only in saved plans"
    );

    let table = stdout(&ok(run(&ctx, &cache, &["plan"])));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STEP"));
    assert!(
        lines[5].starts_with("5/6") && lines[5].ends_with("COPY app/ /app/"),
        "{table}"
    );
}

#[test]
fn stat_cache_is_used_and_never_trusted_blindly() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    // Old mtimes so the entries are not "racily clean" and get cached.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for f in [
        "Dockerfile",
        "requirements.txt",
        "app/main.py",
        "app/pkg/util.py",
    ] {
        let file = std::fs::File::options()
            .write(true)
            .open(ctx.join(f))
            .unwrap();
        file.set_modified(old).unwrap();
    }
    let cold = ok(run(&ctx, &cache, &["plan", "--json", "-v"]));
    assert!(stderr(&cold).contains("4 hashed"), "{}", stderr(&cold));
    let warm = ok(run(&ctx, &cache, &["plan", "--json", "-v"]));
    assert!(
        stderr(&warm).contains("0 hashed") && stderr(&warm).contains("4 from the stat cache"),
        "{}",
        stderr(&warm)
    );
    assert_eq!(keys(&cold), keys(&warm));

    // A content change with the same size and a restored mtime still shows: ctime moved.
    std::fs::write(ctx.join("app/main.py"), "print('ho')\n").unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(ctx.join("app/main.py"))
        .unwrap();
    file.set_modified(old).unwrap();
    let changed = ok(run(&ctx, &cache, &["plan", "--json", "-v"]));
    assert_ne!(keys(&changed)[4], keys(&warm)[4]);

    // Corrupt every cache file: the plan is still right, and the cache is rebuilt.
    let dir = cache.join("stat");
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n / 2] ^= 0x55;
        std::fs::write(&p, b).unwrap();
    }
    let after = ok(run(&ctx, &cache, &["plan", "--json", "-v"]));
    assert!(
        stderr(&after).contains("rebuilt: checksum mismatch"),
        "{}",
        stderr(&after)
    );
    assert_eq!(keys(&after), keys(&changed));
    let nocache = ok(run(&ctx, &cache, &["plan", "--json", "--no-stat-cache"]));
    assert_eq!(keys(&nocache), keys(&changed));
}

#[test]
fn explain_names_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    let saved = tmp.path().join("plan.json");
    ok(run(
        &ctx,
        &cache,
        &["plan", "--save", saved.to_str().unwrap()],
    ));

    let same = stdout(&ok(run(
        &ctx,
        &cache,
        &["explain", "--since", saved.to_str().unwrap()],
    )));
    assert!(same.ends_with("every step will use the cache\n"), "{same}");

    std::fs::write(ctx.join("app/main.py"), "print('changed')\n").unwrap();
    for i in 0..5 {
        write_tree(
            &ctx,
            &[(&format!("app/pkg/__pycache__/m{i}.cpython-311.pyc"), "b")],
        );
    }
    let o = stdout(&ok(run(
        &ctx,
        &cache,
        &["explain", "--since", saved.to_str().unwrap()],
    )));
    assert!(
        o.contains("3/6      hit   COPY requirements.txt /r/"),
        "{o}"
    );
    assert!(o.contains("5/6      miss  COPY app/ /app/"), "{o}");
    assert!(
        o.contains("Step 5/6 COPY app/ /app/ will rebuild: app/main.py content changed, 5 app/pkg/**/__pycache__/*.pyc added — run `ctxbuild clean` or add `**/__pycache__` to .dockerignore"),
        "{o}"
    );
    let j = ok(run(
        &ctx,
        &cache,
        &["explain", "--since", saved.to_str().unwrap(), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["first_miss"]["index"], 5);
    assert_eq!(v["first_miss"]["reason"]["kind"], "files");
    assert_eq!(
        v["first_miss"]["reason"]["content_changed"],
        serde_json::json!(["app/main.py"])
    );
}

#[test]
fn errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    std::fs::write(ctx.join("Dockerfile"), "FROM x\n\nRUN <<EOF\necho\nEOF\n").unwrap();
    let o = run(&ctx, &cache, &["plan"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Dockerfile:3: heredocs (<<EOF) are not supported"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));

    std::fs::write(ctx.join("Dockerfile"), "FROM x\nCOPY missing.txt /m\n").unwrap();
    let o = run(&ctx, &cache, &["plan"]);
    assert!(
        stderr(&o).contains("Dockerfile:2: COPY missing.txt: file not found in build context"),
        "{}",
        stderr(&o)
    );

    let o = run(&ctx, &cache, &["explain", "--since", "nope.json"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("plan --save"), "{}", stderr(&o));
}

#[test]
fn target_cuts_the_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM x AS build\nRUN make\nFROM y AS final\nCOPY --from=build /a /a\n",
    )
    .unwrap();
    let o = ok(run(&ctx, &cache, &["plan", "--json", "--target", "build"]));
    assert_eq!(keys(&o).len(), 2);
    let o = run(&ctx, &cache, &["plan", "--target", "nope"]);
    assert!(
        stderr(&o).contains("target stage 'nope' could not be found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_plan_saved_inside_the_context_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    let warning = "lies inside the context and is not in .dockerignore";

    let o = ok(run(
        &ctx,
        &cache,
        &["plan", ".", "--save", ".ctxbuild-plan.json"],
    ));
    assert!(
        stderr(&o).contains(&format!(".ctxbuild-plan.json {warning}")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint: save the plan outside the context"));
    let o = ok(run(
        &ctx,
        &cache,
        &["explain", ".", "--since", ".ctxbuild-plan.json"],
    ));
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));

    // Outside the context (the README's flow): no warning, and nothing rebuilds.
    let o = ok(run(
        &ctx,
        &cache,
        &["plan", ".", "--save", "../before.json"],
    ));
    assert!(!stderr(&o).contains(warning), "{}", stderr(&o));
    let o = ok(run(
        &ctx,
        &cache,
        &["explain", ".", "--since", "../before.json"],
    ));
    assert!(!stderr(&o).contains(warning), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("every step will use the cache"),
        "{}",
        stdout(&o)
    );

    // Inside but excluded by .dockerignore: no warning.
    std::fs::write(ctx.join(".dockerignore"), ".ctxbuild-plan.json\n").unwrap();
    let o = ok(run(
        &ctx,
        &cache,
        &["plan", ".", "--save", ".ctxbuild-plan.json"],
    ));
    assert!(!stderr(&o).contains(warning), "{}", stderr(&o));
}

#[test]
fn add_url_is_a_maybe_not_a_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    write_tree(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\nADD https://example.invalid/x.tgz /x/\nRUN true\n",
        )],
    );
    let o = ok(run(&ctx, &cache, &["plan", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"][1]["remote"], true);
    ok(run(&ctx, &cache, &["plan", ".", "--save", "../p.json"]));
    let o = ok(run(&ctx, &cache, &["explain", ".", "--since", "../p.json"]));
    let out = stdout(&o);
    assert!(
        out.contains("2/3      maybe ADD https://example.invalid/x.tgz /x/"),
        "{out}"
    );
    assert!(out.contains("3/3      maybe RUN true"), "{out}");
    assert!(
        out.contains("may rebuild: ADD fetches a remote source (the cache depends on the downloaded content)"),
        "{out}"
    );
    assert!(out.contains("no step will certainly rebuild"), "{out}");
    let o = ok(run(
        &ctx,
        &cache,
        &["explain", ".", "--since", "../p.json", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"][1]["verdict"], "may-miss");
    assert!(v["first_miss"].is_null());
    assert_eq!(v["first_may_miss"]["reason"]["kind"], "remote");
}

/// `--builder` on plan and explain: `auto` follows the Dockerfile, BuildKit keys follow what
/// BuildKit hashes (its `<Dockerfile>.dockerignore`, no directory modes, metadata without a
/// vertex), classic refuses BuildKit-only flags, and a saved plan keeps its builder.
#[test]
fn builder_choice_drives_the_keys() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    let json = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };

    let classic = tmp.path().join("classic.json");
    ok(run(
        &ctx,
        &cache,
        &["plan", "--save", classic.to_str().unwrap()],
    ));
    // auto: nothing BuildKit-only, so classic (no `builder` in the JSON).
    let v = json(&ok(run(&ctx, &cache, &["plan", "--json"])));
    assert!(v.get("builder").is_none());
    let bk = json(&ok(run(
        &ctx,
        &cache,
        &["plan", "--builder", "buildkit", "--json"],
    )));
    assert_eq!(bk["builder"], "buildkit");
    let cacheable: Vec<bool> = bk["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cacheable"].as_bool().unwrap())
        .collect();
    assert_eq!(
        cacheable,
        [false, false, true, true, true, false],
        "ENV, CMD: no vertex"
    );

    // A directory's mode moves the classic key of COPY app/, not BuildKit's.
    let before = keys(&ok(run(
        &ctx,
        &cache,
        &["plan", "--builder", "buildkit", "--json"],
    )));
    let classic_before = keys(&ok(run(&ctx, &cache, &["plan", "--json"])));
    std::fs::set_permissions(ctx.join("app/pkg"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let after = keys(&ok(run(
        &ctx,
        &cache,
        &["plan", "--builder", "buildkit", "--json"],
    )));
    let classic_after = keys(&ok(run(&ctx, &cache, &["plan", "--json"])));
    assert_eq!(before, after);
    assert_ne!(classic_before[4], classic_after[4]);

    // BuildKit reads Dockerfile.dockerignore instead of .dockerignore; classic ignores it.
    write_tree(&ctx, &[("Dockerfile.dockerignore", "app/pkg\n")]);
    let files = |o: &Output| json(o)["steps"][4]["files"].as_u64().unwrap();
    assert_eq!(
        files(&ok(run(
            &ctx,
            &cache,
            &["plan", "--builder", "buildkit", "--json"]
        ))),
        1
    );
    assert_eq!(files(&ok(run(&ctx, &cache, &["plan", "--json"]))), 2);
    std::fs::remove_file(ctx.join("Dockerfile.dockerignore")).unwrap();

    // A BuildKit-only flag: auto picks BuildKit, classic names the line.
    let mount = DF.replace("RUN pip", "RUN --mount=type=cache,target=/root/.cache pip");
    write_tree(&ctx, &[("Dockerfile", mount.as_str())]);
    let v = json(&ok(run(&ctx, &cache, &["plan", "--json"])));
    assert_eq!(v["builder"], "buildkit");
    // auto scans as classic to find the Dockerfile, then again as BuildKit when it differs.
    write_tree(&ctx, &[("Dockerfile.dockerignore", "app/pkg\n")]);
    assert_eq!(files(&ok(run(&ctx, &cache, &["plan", "--json"]))), 1);
    std::fs::remove_file(ctx.join("Dockerfile.dockerignore")).unwrap();
    let o = run(&ctx, &cache, &["plan", "--builder", "classic"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Dockerfile:4: the --mount option requires BuildKit"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("pass --builder buildkit"),
        "{}",
        stderr(&o)
    );

    // explain: the saved plan's builder unless another is asked; a mismatch is warned about.
    let saved = tmp.path().join("plan.json");
    ok(run(
        &ctx,
        &cache,
        &["plan", "--save", saved.to_str().unwrap()],
    ));
    write_tree(
        &ctx,
        &[("Dockerfile", mount.replace("ENV A=1", "ENV A=2").as_str())],
    );
    let o = ok(run(
        &ctx,
        &cache,
        &["explain", "--since", saved.to_str().unwrap()],
    ));
    let out = stdout(&o);
    // BuildKit: the COPY before the RUN hits (its copy op has no env); the RUN names the ENV.
    assert!(
        out.contains("3/6      hit   COPY requirements.txt /r/"),
        "{out}"
    );
    assert!(
        out.contains("Step 4/6 RUN --mount=type=cache,target=/root/.cache pip install -r /r/requirements.txt will rebuild: ENV A changed: 1 → 2"),
        "{out}"
    );
    let o = ok(run(
        &ctx,
        &cache,
        &[
            "explain",
            "--builder",
            "buildkit",
            "--since",
            classic.to_str().unwrap(),
        ],
    ));
    assert!(
        stderr(&o).contains("their keys never match"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_plan_saved_to_stdout_is_all_that_stdout_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, cache) = (tmp.path().join("ctx"), tmp.path().join("cache"));
    project(&ctx);
    for spelling in ["-", "/dev/stdout"] {
        let o = ok(run(&ctx, &cache, &["plan", ".", "--save", spelling]));
        // The saved plan (manifest included) parses as one JSON document: no table after it.
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("--save {spelling}: {e}: {}", stdout(&o)));
        assert!(v["manifest"].is_object(), "--save {spelling}: {v}");
        assert_eq!(v["steps"].as_array().unwrap().len(), 6);
        assert!(!stdout(&o).contains("INSTRUCTION"), "{}", stdout(&o));
        assert!(!ctx.join(spelling.trim_start_matches('/')).exists());
        // Usable by explain like a saved file.
        std::fs::write(tmp.path().join("saved.json"), &o.stdout).unwrap();
        let e = ok(run(
            &ctx,
            &cache,
            &["explain", ".", "--since", "../saved.json"],
        ));
        assert!(
            stdout(&e).contains("every step will use the cache"),
            "{}",
            stdout(&e)
        );
    }
    let o = run(&ctx, &cache, &["plan", ".", "--save", "-", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("both write to standard output"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}
