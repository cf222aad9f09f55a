//! Generates a Google Cloud Build config (`cloudbuild.yaml`) from `ctxbuild.toml`: a
//! `clean --check` gate, one `ctxbuild image --push` step per service running in parallel after
//! it, and optionally one `gcloud run deploy` step per service whose flags come from the
//! service's `[deploy]` table, so the image and the deploy cannot disagree.
//!
//! Config in, data out: [`generate`] returns a [`BuildConfig`] (serialisable as Cloud Build's
//! JSON form), [`BuildConfig::to_yaml`] renders it deterministically, and [`schema::validate`]
//! checks a rendered config against Cloud Build's documented build schema. Nothing here prints,
//! reads the environment or touches the disk.
//!
//! Substitutions follow Cloud Build's rules (see the README's Cloud Build section): step
//! fields may only use `$NAME`/`${NAME}` of built-in or `_USER` substitutions, so fallbacks
//! such as "the commit, or `manual` for a build started by hand" live in the *values* of user
//! substitutions, which `options.dynamicSubstitutions` evaluates with bash-style expansions.

pub mod schema;
pub mod yaml;

use crate::diagnostics::Diagnose;
use crate::service::config::{format_memory, normalize_lexically, ConfigError, DEFAULT_FILE};
use crate::service::{Config, Kind, Service};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Component, Path};
use yaml::Node;

/// The step image when none is given: ctxbuild's image pushed to the build's own project.
pub const DEFAULT_STEP_IMAGE: &str = "gcr.io/${PROJECT_ID}/ctxbuild";
/// Google's Cloud SDK image, which carries `gcloud`.
pub const DEPLOY_IMAGE: &str = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim";
/// The id of the pollution gate every image step waits for.
pub const CHECK_STEP_ID: &str = "check";
/// The region when no service's `[deploy]` names one.
pub const DEFAULT_REGION: &str = "us-central1";
/// Cloud Build's working directory, where the source is checked out.
pub const WORKSPACE: &str = "/workspace";

/// Step budgets in seconds. Image steps run in parallel, but on the default two-vCPU builder
/// they compete for the CPU, so the build's timeout is the sum of every step's budget.
const CHECK_BUDGET: u64 = 300;
const PYTHON_IMAGE_BUDGET: u64 = 900;
const NODE_IMAGE_BUDGET: u64 = 1200;
const DEPLOY_BUDGET: u64 = 600;
/// Cloud Build refuses builds and steps longer than 24 hours.
const MAX_TIMEOUT: u64 = 24 * 3600;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// Services to build, by name; empty means every service in the config.
    pub services: Vec<String>,
    /// The image that runs ctxbuild's steps.
    pub step_image: String,
    /// Add a `gcloud run deploy` step per service.
    pub deploy: bool,
    /// Passed to every image step as `--base-image`.
    pub base_image: Option<String>,
    /// Build the Debian slim variant (`--slim`) instead of the Alpine default.
    pub slim: bool,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            services: Vec::new(),
            step_image: DEFAULT_STEP_IMAGE.into(),
            deploy: false,
            base_image: None,
            slim: false,
        }
    }
}

/// A Cloud Build config. Field names and shapes are Cloud Build's, so the JSON serialisation
/// is itself a valid build config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildConfig {
    pub steps: Vec<Step>,
    pub substitutions: BTreeMap<String, String>,
    pub options: BuildOptions,
    /// Duration format (`"3300s"`).
    pub timeout: String,
    pub artifacts: Artifacts,
}

/// One build step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    pub wait_for: Vec<String>,
    pub timeout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildOptions {
    /// Evaluate bash-style expansions in substitution values (always on for triggers).
    pub dynamic_substitutions: bool,
    /// `ALLOW_LOOSE`: a substitution used only inside another one's value (`_REGION` inside
    /// `_REPO` when nothing deploys) must not fail a build started by hand.
    pub substitution_option: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifacts {
    pub objects: ArtifactObjects,
}

/// Files uploaded from `/workspace` to Cloud Storage when the build succeeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactObjects {
    pub location: String,
    pub paths: Vec<String>,
}

/// Why a config cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum CloudBuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{what} {path} is outside the workspace (the directory cloudbuild.yaml is generated in)"
    )]
    OutsideWorkspace { what: &'static str, path: String },
    #[error("service `{service}` has no [services.{service}.deploy] table in {config}, so --deploy has nothing to deploy it with")]
    NoDeploy { service: String, config: String },
    #[error("{what} `{value}` is not a usable image reference")]
    BadImage { what: &'static str, value: String },
}

impl Diagnose for CloudBuildError {
    fn hint(&self) -> Option<String> {
        match self {
            CloudBuildError::Config(e) => e.hint(),
            CloudBuildError::OutsideWorkspace { .. } => Some(
                "run `ctxbuild cloudbuild` from the repository root, with -c naming ctxbuild.toml relative to it"
                    .into(),
            ),
            CloudBuildError::NoDeploy { service, .. } => Some(format!(
                "add [services.{service}.deploy] (region, cpu, memory, request_timeout), or name only the services to deploy"
            )),
            CloudBuildError::BadImage { .. } => {
                Some("give a reference such as gcr.io/my-project/ctxbuild:1".into())
            }
        }
    }
}

/// Builds the Cloud Build config for `request` from `config`.
///
/// Paths in the steps are relative to the workspace root, taken to be the current directory
/// `config.path` was given from (normally the repository root).
pub fn generate(config: &Config, request: &Request) -> Result<BuildConfig, CloudBuildError> {
    check_image("the step image", &request.step_image)?;
    if let Some(b) = &request.base_image {
        check_image("the base image", b)?;
    }
    let services = select(config, &request.services)?;
    let config_arg = config_arg(&config.path)?;

    let mut contexts = Vec::new();
    for svc in &services {
        let ctx = workspace_path("the context of service", &config.root.join(&svc.context))?;
        if !contexts.contains(&ctx) {
            contexts.push(ctx);
        }
    }
    contexts.sort();

    let mut steps = vec![check_step(request, &contexts)];
    for svc in &services {
        steps.push(image_step(svc, request, config_arg.as_deref()));
    }
    let region = common_region(&services);
    if request.deploy {
        for svc in &services {
            let deploy = svc
                .deploy
                .as_ref()
                .ok_or_else(|| CloudBuildError::NoDeploy {
                    service: svc.name.clone(),
                    config: config.path.display().to_string(),
                })?;
            steps.push(deploy_step(svc, deploy, &region));
        }
    }

    let total: u64 = steps
        .iter()
        .map(|s| parse_seconds(&s.timeout))
        .sum::<u64>()
        .min(MAX_TIMEOUT);

    let substitutions = BTreeMap::from([
        ("_REGION".to_string(), region),
        (
            "_REPO".to_string(),
            "${_REGION}-docker.pkg.dev/${PROJECT_ID}/ctxbuild".to_string(),
        ),
        // A trigger knows the commit; a build started by hand does not, and Cloud Build then
        // substitutes an empty string, which would make `backend:` an invalid tag.
        ("_TAG".to_string(), "${SHORT_SHA:-manual}".to_string()),
        (
            "_ARTIFACTS_BUCKET".to_string(),
            "${PROJECT_ID}_cloudbuild".to_string(),
        ),
    ]);

    Ok(BuildConfig {
        steps,
        substitutions,
        options: BuildOptions {
            dynamic_substitutions: true,
            substitution_option: "ALLOW_LOOSE".into(),
        },
        timeout: seconds(total),
        artifacts: Artifacts {
            objects: ArtifactObjects {
                location: "gs://${_ARTIFACTS_BUCKET}/ctxbuild/${BUILD_ID}/".into(),
                paths: services.iter().map(|s| report_file(&s.name)).collect(),
            },
        },
    })
}

/// The report an image step writes, relative to the workspace.
pub fn report_file(service: &str) -> String {
    format!("ctxbuild-report-{service}.json")
}

/// The tag an image step builds and pushes, in substitution syntax.
pub fn image_ref(service: &str) -> String {
    format!("${{_REPO}}/{service}:${{_TAG}}")
}

/// The moving tag every build also pushes, and the next build's `--cache-from`: Cloud Build
/// workers start with an empty layer cache.
pub fn cache_ref(service: &str) -> String {
    format!("${{_REPO}}/{service}:latest")
}

impl BuildConfig {
    /// The config as a YAML document, byte-identical for identical input.
    pub fn to_yaml(&self) -> String {
        let steps = self.steps.iter().map(step_node).collect();
        let subs = self
            .substitutions
            .iter()
            .map(|(k, v)| (k.clone(), Node::str(v)))
            .collect();
        let root = vec![
            ("steps".to_string(), Node::Seq(steps)),
            ("substitutions".to_string(), Node::Map(subs)),
            (
                "options".to_string(),
                Node::Map(vec![
                    (
                        "dynamicSubstitutions".into(),
                        Node::Bool(self.options.dynamic_substitutions),
                    ),
                    (
                        "substitutionOption".into(),
                        Node::str(&self.options.substitution_option),
                    ),
                ]),
            ),
            ("timeout".to_string(), Node::str(&self.timeout)),
            (
                "artifacts".to_string(),
                Node::Map(vec![(
                    "objects".into(),
                    Node::Map(vec![
                        (
                            "location".into(),
                            Node::str(&self.artifacts.objects.location),
                        ),
                        ("paths".into(), Node::strs(&self.artifacts.objects.paths)),
                    ]),
                )]),
            ),
        ];
        format!("{HEADER}{}", yaml::render(&root))
    }
}

const HEADER: &str = "\
# Generated by `ctxbuild cloudbuild` from ctxbuild.toml; regenerate it rather than editing.
# Run by hand: gcloud builds submit --config cloudbuild.yaml .
# Without a trigger, images are tagged `manual` unless you pass --substitutions=_TAG=<tag>.
";

fn step_node(s: &Step) -> Node {
    let mut m = vec![
        ("id".to_string(), Node::str(&s.id)),
        ("name".to_string(), Node::str(&s.name)),
    ];
    if let Some(e) = &s.entrypoint {
        m.push(("entrypoint".into(), Node::str(e)));
    }
    m.push(("args".into(), Node::strs(&s.args)));
    if !s.env.is_empty() {
        m.push(("env".into(), Node::strs(&s.env)));
    }
    if let Some(d) = &s.dir {
        m.push(("dir".into(), Node::str(d)));
    }
    m.push(("waitFor".into(), Node::strs(&s.wait_for)));
    m.push(("timeout".into(), Node::str(&s.timeout)));
    Node::Map(m)
}

fn select<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a Service>, CloudBuildError> {
    if names.is_empty() {
        return Ok(config.services.iter().collect());
    }
    let mut out: Vec<&Service> = Vec::new();
    for n in names {
        let s = config.service(n)?;
        if !out.iter().any(|o| o.name == s.name) {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn check_step(request: &Request, contexts: &[String]) -> Step {
    // The whole of each context, .dockerignore or not: image steps keep bytecode out of the
    // build anyway, so this gate is about the checkout — bytecode committed to the repository.
    let mut args = strings(&["--progress", "plain", "clean", "--check"]);
    args.extend(contexts.iter().cloned());
    Step {
        id: CHECK_STEP_ID.into(),
        name: request.step_image.clone(),
        entrypoint: None,
        args,
        env: Vec::new(),
        dir: None,
        wait_for: vec!["-".into()],
        timeout: seconds(CHECK_BUDGET),
    }
}

fn image_step(svc: &Service, request: &Request, config_arg: Option<&str>) -> Step {
    let mut args = strings(&["--progress", "plain", "image", &svc.name]);
    if let Some(c) = config_arg {
        args.extend(strings(&["--config", c]));
    }
    // The variant and the base image choose among renders of the template: a service with its
    // own Dockerfile gets neither (`image` refuses them rather than ignoring them).
    if svc.dockerfile.is_none() {
        if request.slim {
            args.push("--slim".into());
        }
        if let Some(b) = &request.base_image {
            args.extend(strings(&["--base-image", b]));
        }
    }
    let cache = cache_ref(&svc.name);
    args.extend(strings(&[
        "--tag",
        &image_ref(&svc.name),
        "--tag",
        &cache,
        "--cache-from",
        &cache,
        "--push",
    ]));
    args.extend(strings(&[
        "--report",
        &format!("{WORKSPACE}/{}", report_file(&svc.name)),
    ]));
    let budget = match svc.kind {
        Kind::PythonAsgi => PYTHON_IMAGE_BUDGET,
        Kind::Node => NODE_IMAGE_BUDGET,
    };
    Step {
        id: format!("image-{}", svc.name),
        name: request.step_image.clone(),
        entrypoint: None,
        args,
        env: Vec::new(),
        dir: None,
        wait_for: vec![CHECK_STEP_ID.into()],
        timeout: seconds(budget),
    }
}

fn deploy_step(svc: &Service, deploy: &crate::service::config::Deploy, region: &str) -> Step {
    // A service in the common region follows `_REGION`, so one substitution moves them all;
    // one elsewhere keeps its own.
    let region_arg = match deploy.region.as_deref() {
        Some(r) if r != region => r.to_string(),
        _ => "${_REGION}".to_string(),
    };
    let mut args = vec![
        "run".to_string(),
        "deploy".to_string(),
        deploy.service.clone(),
        format!("--image={}", image_ref(&svc.name)),
        format!("--region={region_arg}"),
        format!("--port={}", svc.deploy_port()),
        format!("--cpu={}", format_cpu(deploy.cpu)),
        format!("--memory={}", format_memory(deploy.memory)),
        format!("--timeout={}s", deploy.request_timeout),
    ];
    if let Some(c) = deploy.concurrency {
        args.push(format!("--concurrency={c}"));
    }
    args.push("--quiet".into());
    Step {
        id: format!("deploy-{}", svc.name),
        name: DEPLOY_IMAGE.into(),
        entrypoint: Some("gcloud".into()),
        args,
        env: Vec::new(),
        dir: None,
        wait_for: vec![format!("image-{}", svc.name)],
        timeout: seconds(DEPLOY_BUDGET),
    }
}

/// The region most of the services name (ties: the first alphabetically).
fn common_region(services: &[&Service]) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in services {
        if let Some(r) = s.deploy.as_ref().and_then(|d| d.region.as_deref()) {
            *count.entry(r).or_default() += 1;
        }
    }
    let best = count.values().copied().max().unwrap_or(0);
    count
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// `1`, `2`, `0.5`: whole numbers without a fraction, as gcloud and Cloud Run write them.
fn format_cpu(cpu: f64) -> String {
    if cpu.fract() == 0.0 {
        format!("{cpu:.0}")
    } else {
        format!("{cpu}")
    }
}

/// The `--config` argument the steps need: none for `./ctxbuild.toml`, else the file's path
/// relative to the workspace.
fn config_arg(path: &Path) -> Result<Option<String>, CloudBuildError> {
    let rel = workspace_path("the configuration", path)?;
    Ok((rel != DEFAULT_FILE).then_some(rel))
}

/// `path` (relative to the current directory) as a `/`-separated path inside the workspace.
fn workspace_path(what: &'static str, path: &Path) -> Result<String, CloudBuildError> {
    let norm = normalize_lexically(path);
    let outside = || CloudBuildError::OutsideWorkspace {
        what,
        path: path.display().to_string(),
    };
    let mut parts = Vec::new();
    for c in norm.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(outside)?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(outside())
            }
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// Rejects what cannot be a step's `name` or a `--base-image`: empty, blanks, control
/// characters, or a `$` that is not a substitution Cloud Build would expand.
fn check_image(what: &'static str, value: &str) -> Result<(), CloudBuildError> {
    let bad = value.is_empty()
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
        || value.contains("$$");
    if bad {
        return Err(CloudBuildError::BadImage {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn seconds(n: u64) -> String {
    format!("{n}s")
}

fn parse_seconds(s: &str) -> u64 {
    s.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
