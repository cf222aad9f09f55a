use super::*;
use crate::service::Config;
use yaml_rust2::{Yaml, YamlLoader};

/// The repository's own ctxbuild.toml, as if `ctxbuild cloudbuild` ran at the repository root.
fn repo_config() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ctxbuild.toml"))
        .expect("read ctxbuild.toml");
    Config::parse(Path::new("ctxbuild.toml"), &text).expect("parse ctxbuild.toml")
}

fn config(path: &str, text: &str) -> Config {
    Config::parse(Path::new(path), text).expect("parse")
}

fn deploy_request() -> Request {
    Request {
        deploy: true,
        ..Request::default()
    }
}

fn to_json(y: &Yaml) -> serde_json::Value {
    match y {
        Yaml::String(s) => serde_json::Value::String(s.clone()),
        Yaml::Boolean(b) => serde_json::Value::Bool(*b),
        Yaml::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => serde_json::Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string key").to_string(), to_json(v)))
                .collect(),
        ),
        other => panic!("the emitter never writes {other:?}"),
    }
}

#[test]
fn repo_config_snapshot() {
    let yaml = generate(&repo_config(), &Request::default())
        .unwrap()
        .to_yaml();
    insta::assert_snapshot!("cloudbuild_examples", yaml);
}

#[test]
fn repo_config_with_deploy_snapshot() {
    let yaml = generate(&repo_config(), &deploy_request())
        .unwrap()
        .to_yaml();
    insta::assert_snapshot!("cloudbuild_examples_deploy", yaml);
}

#[test]
fn generated_configs_pass_the_schema_and_read_back_as_the_json_form() {
    let cfg = repo_config();
    for request in [
        Request::default(),
        deploy_request(),
        Request {
            services: vec!["backend".into()],
            step_image: "ctxbuild-test/ctxbuild:dev".into(),
            base_image: Some("ctxbuild-test/python:3-bookworm".into()),
            slim: true,
            ..deploy_request()
        },
    ] {
        let built = generate(&cfg, &request).unwrap();
        let yaml = built.to_yaml();
        assert_eq!(schema::validate(&yaml), Vec::<String>::new(), "{yaml}");
        let parsed = YamlLoader::load_from_str(&yaml).unwrap().remove(0);
        assert_eq!(
            to_json(&parsed),
            serde_json::to_value(&built).unwrap(),
            "YAML and JSON forms differ"
        );
    }
}

#[test]
fn output_is_deterministic_and_ignores_the_order_services_are_named_in() {
    let cfg = repo_config();
    let a = Request {
        services: vec!["frontend".into(), "backend".into()],
        ..deploy_request()
    };
    let b = Request {
        services: vec!["backend".into(), "frontend".into(), "backend".into()],
        ..deploy_request()
    };
    let ya = generate(&cfg, &a).unwrap().to_yaml();
    assert_eq!(ya, generate(&cfg, &a).unwrap().to_yaml());
    assert_eq!(ya, generate(&cfg, &b).unwrap().to_yaml());
}

#[test]
fn check_runs_first_and_every_image_step_waits_for_it_alone() {
    let built = generate(&repo_config(), &deploy_request()).unwrap();
    let check = &built.steps[0];
    assert_eq!(check.id, CHECK_STEP_ID);
    assert_eq!(check.wait_for, vec!["-"]);
    assert_eq!(
        check.args,
        strings(&[
            "--progress",
            "plain",
            "clean",
            "--check",
            "examples/auth",
            "examples/backend",
            "examples/frontend"
        ])
    );
    let images: Vec<&Step> = built
        .steps
        .iter()
        .filter(|s| s.id.starts_with("image-"))
        .collect();
    assert_eq!(images.len(), 3);
    for s in &images {
        assert_eq!(s.wait_for, vec![CHECK_STEP_ID], "{}", s.id);
        assert_eq!(s.name, DEFAULT_STEP_IMAGE);
    }
    let backend = built
        .steps
        .iter()
        .find(|s| s.id == "image-backend")
        .unwrap();
    assert_eq!(
        backend.args,
        strings(&[
            "--progress",
            "plain",
            "image",
            "backend",
            "--tag",
            "${_REPO}/backend:${_TAG}",
            "--tag",
            "${_REPO}/backend:latest",
            "--cache-from",
            "${_REPO}/backend:latest",
            "--push",
            "--report",
            "/workspace/ctxbuild-report-backend.json"
        ])
    );
    assert_eq!(
        built.artifacts.objects.paths,
        strings(&[
            "ctxbuild-report-auth.json",
            "ctxbuild-report-backend.json",
            "ctxbuild-report-frontend.json"
        ])
    );
}

#[test]
fn deploy_flags_come_from_the_deploy_table() {
    let cfg = config(
        "ctxbuild.toml",
        r#"
[services.api]
kind = "python-asgi"
context = "api"
app = "main:app"
port = 8000

[services.api.deploy]
service = "public-api"
region = "europe-west4"
cpu = 2
memory = "512Mi"
request_timeout = 120
concurrency = 40
port = 9000

[services.worker]
kind = "python-asgi"
context = "worker"
app = "main:app"

[services.worker.deploy]
region = "us-east1"
cpu = 0.5
memory = "2Gi"

[services.jobs]
kind = "python-asgi"
context = "jobs"
app = "main:app"

[services.jobs.deploy]
region = "europe-west4"
"#,
    );
    let built = generate(&cfg, &deploy_request()).unwrap();
    let step = |id: &str| built.steps.iter().find(|s| s.id == id).unwrap().clone();
    let api = step("deploy-api");
    assert_eq!(api.name, DEPLOY_IMAGE);
    assert_eq!(api.entrypoint.as_deref(), Some("gcloud"));
    assert_eq!(api.wait_for, vec!["image-api"]);
    assert_eq!(
        api.args,
        strings(&[
            "run",
            "deploy",
            "public-api",
            "--image=${_REPO}/api:${_TAG}",
            "--region=${_REGION}",
            "--port=9000",
            "--cpu=2",
            "--memory=512Mi",
            "--timeout=120s",
            "--concurrency=40",
            "--quiet"
        ])
    );
    // Two of three deploy to europe-west4: that is `_REGION`; the odd one keeps its own.
    assert_eq!(built.substitutions["_REGION"], "europe-west4");
    let worker = step("deploy-worker");
    assert!(worker.args.contains(&"--region=us-east1".to_string()));
    assert!(worker.args.contains(&"--cpu=0.5".to_string()));
    assert!(worker.args.contains(&"--memory=2Gi".to_string()));
    // No port in [deploy]: the service's own port; no concurrency: none passed.
    assert!(
        worker.args.contains(&"--port=8080".to_string()),
        "{:?}",
        worker.args
    );
    assert!(!worker.args.iter().any(|a| a.starts_with("--concurrency")));
    assert_eq!(schema::validate(&built.to_yaml()), Vec::<String>::new());
}

#[test]
fn timeout_is_the_sum_of_the_step_budgets() {
    let cfg = repo_config();
    let plain = generate(&cfg, &Request::default()).unwrap();
    // check + two Python services + one Node service.
    assert_eq!(plain.timeout, "3300s");
    let deploying = generate(&cfg, &deploy_request()).unwrap();
    assert_eq!(deploying.timeout, "5100s");
    let one = generate(
        &cfg,
        &Request {
            services: vec!["backend".into()],
            ..Request::default()
        },
    )
    .unwrap();
    assert_eq!(one.timeout, "1200s");
}

#[test]
fn tags_fall_back_to_manual_through_a_dynamic_substitution() {
    let built = generate(&repo_config(), &Request::default()).unwrap();
    assert_eq!(built.substitutions["_TAG"], "${SHORT_SHA:-manual}");
    assert!(built.options.dynamic_substitutions);
    // Step fields only ever use plain references, which Cloud Build expands there.
    for s in &built.steps {
        for a in &s.args {
            assert!(!a.contains(":-"), "{a}");
        }
    }
}

#[test]
fn a_config_elsewhere_is_passed_to_image_steps_and_paths_follow_it() {
    let cfg = config(
        "deploy/ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n",
    );
    let built = generate(&cfg, &Request::default()).unwrap();
    assert_eq!(built.steps[0].args.last().unwrap(), "deploy/api");
    let image = &built.steps[1];
    let at = image.args.iter().position(|a| a == "--config").unwrap();
    assert_eq!(image.args[at + 1], "deploy/ctxbuild.toml");
}

#[test]
fn paths_outside_the_workspace_are_refused_with_a_hint() {
    let cfg = config(
        "../elsewhere/ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\ncontext = \".\"\napp = \"main:app\"\n",
    );
    let err = generate(&cfg, &Request::default()).unwrap_err();
    assert!(
        matches!(err, CloudBuildError::OutsideWorkspace { .. }),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("repository root"));
    assert!(
        err.to_string().contains("../elsewhere/ctxbuild.toml"),
        "{err}"
    );

    let cfg = config(
        "/srv/app/ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n",
    );
    let err = generate(&cfg, &Request::default()).unwrap_err();
    assert!(err.to_string().contains("/srv/app"), "{err}");
}

#[test]
fn deploy_without_a_deploy_table_and_unknown_services_are_errors() {
    let cfg = config(
        "ctxbuild.toml",
        "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n",
    );
    let err = generate(&cfg, &deploy_request()).unwrap_err();
    assert!(matches!(err, CloudBuildError::NoDeploy { .. }), "{err}");
    assert!(err.hint().unwrap().contains("[services.api.deploy]"));
    // Without --deploy the same config is fine, and `_REGION` has the documented default.
    let ok = generate(&cfg, &Request::default()).unwrap();
    assert_eq!(ok.substitutions["_REGION"], DEFAULT_REGION);

    let err = generate(
        &cfg,
        &Request {
            services: vec!["apj".into()],
            ..Request::default()
        },
    )
    .unwrap_err();
    assert!(err.hint().unwrap().contains("did you mean `api`"), "{err}");
}

#[test]
fn unusable_image_names_are_refused() {
    for bad in ["", "a b", "x$$y", "tab\there"] {
        let r = Request {
            step_image: bad.into(),
            ..Request::default()
        };
        assert!(
            matches!(
                generate(&repo_config(), &r),
                Err(CloudBuildError::BadImage { .. })
            ),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The schema validator: each rule fails on a config that breaks it.

fn good() -> String {
    generate(&repo_config(), &deploy_request())
        .unwrap()
        .to_yaml()
}

fn problems_after(from: &str, to: &str) -> Vec<String> {
    let text = good();
    assert!(text.contains(from), "{from} not in:\n{text}");
    schema::validate(&text.replacen(from, to, 1))
}

fn assert_problem(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn schema_rejects_unknown_fields() {
    assert_problem(
        &problems_after("substitutions:\n", "subs:\n"),
        "unknown field `subs`",
    );
    assert_problem(
        &problems_after("    waitFor:", "    wait_for:"),
        "unknown field `wait_for`",
    );
    assert_problem(
        &problems_after("  dynamicSubstitutions:", "  dynamicSubstitution:"),
        "unknown field `dynamicSubstitution`",
    );
}

#[test]
fn schema_rejects_wait_for_an_unknown_or_later_step_and_duplicate_ids() {
    assert_problem(
        &problems_after("      - check\n", "      - chek\n"),
        "`chek` is not the id of an earlier step",
    );
    // The check step waiting for an image step that comes after it.
    assert_problem(
        &problems_after("      - \"-\"\n", "      - image-auth\n"),
        "`image-auth` is not the id of an earlier step",
    );
    assert_problem(
        &problems_after("id: image-backend", "id: image-auth"),
        "`image-auth` is not unique",
    );
}

#[test]
fn schema_rejects_bad_substitutions() {
    assert_problem(
        &problems_after("  _TAG:", "  _tag:"),
        "user substitutions match _[A-Z0-9_]+",
    );
    assert_problem(
        &problems_after(
            "${_REPO}/backend:${_TAG}",
            "${_REPO}/backend:${SHORT_SHA:-manual}",
        ),
        "bash expansions belong in a substitution value",
    );
    assert_problem(
        &problems_after("${_REPO}/backend:${_TAG}", "${_REPOSITORY}/backend:${_TAG}"),
        "$_REPOSITORY is not defined",
    );
    assert_problem(
        &problems_after("${_REPO}/backend:${_TAG}", "${_REPO}/backend:${GIT_SHA}"),
        "$GIT_SHA is neither a built-in",
    );
    assert_problem(
        &problems_after("dynamicSubstitutions: true", "dynamicSubstitutions: false"),
        "needs options.dynamicSubstitutions: true",
    );
    assert_problem(
        &problems_after("${SHORT_SHA:-manual}", "${SHORT_SHA:?manual}"),
        "only ${NAME} and ${NAME:-default}",
    );
    // `_REGION` is used only inside `_REPO` when nothing deploys: fine when loose only.
    let plain = generate(&repo_config(), &Request::default())
        .unwrap()
        .to_yaml();
    let strict = plain.replace("ALLOW_LOOSE", "MUST_MATCH");
    assert_problem(&schema::validate(&strict), "_REGION is used only inside");
}

#[test]
fn schema_rejects_bad_durations_artifacts_and_non_string_args() {
    assert_problem(
        &problems_after("timeout: \"5100s\"", "timeout: \"85min\""),
        "a duration such as",
    );
    assert_problem(
        &problems_after("timeout: \"5100s\"", "timeout: \"100s\""),
        "longer than the build's timeout",
    );
    assert_problem(
        &problems_after("location: gs://", "location: s3://"),
        "starting with gs://",
    );
    assert_problem(
        &problems_after("      - --quiet\n", "      - 8080\n"),
        "expected a string",
    );
    assert_problem(
        &problems_after(
            "      - ctxbuild-report-frontend.json\n",
            "      - ctxbuild-report-auth.json\n",
        ),
        "listed twice",
    );
}

#[test]
fn the_readme_example_passes_the_schema() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let section = &readme[readme
        .find("## Cloud Build")
        .expect("a Cloud Build section")..];
    let start = section.find("```yaml\n").expect("a yaml example") + "```yaml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    assert_eq!(schema::validate(example), Vec::<String>::new(), "{example}");
    // It is what the generator writes, in flow style.
    let generated = generate(
        &repo_config(),
        &Request {
            services: vec!["backend".into()],
            ..deploy_request()
        },
    )
    .unwrap();
    let parsed = YamlLoader::load_from_str(example).unwrap().remove(0);
    assert_eq!(to_json(&parsed), serde_json::to_value(&generated).unwrap());
}

#[test]
fn variant_and_base_image_reach_only_the_services_that_build_the_template() {
    let built = generate(
        &repo_config(),
        &Request {
            services: vec!["backend".into(), "auth".into()],
            base_image: Some("ctxbuild-test/python:3-bookworm".into()),
            slim: true,
            ..Request::default()
        },
    )
    .unwrap();
    let args = |id: &str| {
        built
            .steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no step {id}"))
            .args
            .join(" ")
    };
    // backend builds the rendered template: both flags.
    assert!(
        args("image-backend").contains("--slim"),
        "{}",
        args("image-backend")
    );
    assert!(args("image-backend").contains("--base-image ctxbuild-test/python:3-bookworm"));
    // auth has its own Dockerfile (its FROM decides): neither, or `image` would refuse them.
    assert!(
        !args("image-auth").contains("--slim"),
        "{}",
        args("image-auth")
    );
    assert!(
        !args("image-auth").contains("--base-image"),
        "{}",
        args("image-auth")
    );
}
