//! `ctxbuild check`: a lint over Dockerfiles, compose files and `ctxbuild.toml` for the drift that
//! breaks deploys. Each rule family lives in its own file and returns [`Finding`]s as data;
//! this module picks what to check per service and gathers the findings into a [`Report`].
//!
//! It never prints and never fails on a finding: unreadable inputs become findings too, so one
//! bad file does not hide the others. The `image` command calls [`gate`] with the Dockerfile it
//! is about to build and stops on the errors.
//!
//! What the build context holds is never decided here: each service's context is
//! [`crate::context::scan`]ned once, exactly as `ls`, `plan` and `image` see it, and the rule
//! families read that [`Context`]. Each Dockerfile is parsed once ([`DockerfileText::new`]).

pub mod base_image;
pub mod builder;
pub mod cloudrun;
pub mod compose;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod format;
pub mod generated;
pub mod ports;
pub mod python;
pub mod rules;
pub mod runtime;

pub use builder::Builder;
pub use rules::{Rule, RuleId, Severity, RULES};

use crate::builder::BuilderChoice;
use crate::context::{self as ctx, Context, ContextError, ContextOptions};
use crate::dockerfile::{self as df, Dockerfile, ParseError};
use crate::service::config::{Config, ConfigError, Kind, Pos, Service};
use crate::service::dockerfile::{self as service_dockerfile, DockerfileChoice};
use crate::service::render::{self, Variant};
use std::path::{Path, PathBuf};

/// One problem, where it is, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    /// Relative to the configuration's directory (`examples/auth/Dockerfile`), or
    /// `<rendered python-asgi/alpine>` for a Dockerfile that exists only in memory.
    pub file: String,
    /// 1-based; `None` when the finding is about a whole file or directory.
    pub line: Option<u32>,
    /// The service it concerns, if any (compose findings may concern none).
    pub service: Option<String>,
    pub message: String,
    pub fix: String,
}

impl Finding {
    /// A finding of `rule` with that rule's severity.
    pub fn new(
        rule: RuleId,
        file: impl Into<String>,
        line: Option<u32>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            file: file.into(),
            line,
            service: None,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// `file:line` for messages.
    pub fn location(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => self.file.clone(),
        }
    }
}

/// Every finding of one `check` run, sorted by file, line and rule.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
    /// Notes: what ctxbuild adds or assumes, never a problem.
    pub notes: usize,
    /// The services that were checked.
    pub services: Vec<String>,
    /// Which Dockerfile each checked service builds, and why.
    pub dockerfiles: Vec<UsedDockerfile>,
}

/// The Dockerfile `check` linted for a service (the one `image` builds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsedDockerfile {
    pub service: String,
    /// Its path relative to the configuration's directory, or `<rendered python-asgi/alpine>`.
    pub dockerfile: String,
    /// Why this one (`` `dockerfile` in ctxbuild.toml ``, or the rendered template).
    pub reason: String,
}

/// How `check` runs: the builder the image will be built with decides which syntax is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--builder`; `None` = each service's `builder` (default auto, see [`crate::builder`]).
    pub builder: Option<BuilderChoice>,
}

impl Report {
    fn new(mut findings: Vec<Finding>, services: Vec<String>, ignore: &[RuleId]) -> Report {
        findings.retain(|f| !ignore.contains(&f.rule));
        findings.sort_by(|a, b| {
            (&a.file, a.line, a.rule.as_str(), &a.message).cmp(&(
                &b.file,
                b.line,
                b.rule.as_str(),
                &b.message,
            ))
        });
        findings.dedup();
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let notes = findings
            .iter()
            .filter(|f| f.severity == Severity::Note)
            .count();
        Report {
            warnings: findings.len() - errors - notes,
            errors,
            notes,
            findings,
            services,
            dockerfiles: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
}

/// A Dockerfile to check, from disk or rendered in memory, parsed once.
#[derive(Debug, Clone)]
pub struct DockerfileText {
    /// How findings name it: a path relative to the configuration's directory, or
    /// `<rendered python-asgi/alpine>`.
    pub display: String,
    pub text: String,
    /// Rendered from ctxbuild.toml, not a file: findings point at ctxbuild.toml instead.
    pub rendered: bool,
    /// The parse of `text` (named `display` in errors), shared by every rule.
    pub parsed: Result<Dockerfile, ParseError>,
}

impl DockerfileText {
    /// Parses `text` once; `display` is how findings and parse errors name it.
    pub fn new(display: impl Into<String>, text: impl Into<String>, rendered: bool) -> Self {
        let (display, text) = (display.into(), text.into());
        let parsed = df::parse(&text, &display);
        DockerfileText {
            display,
            text,
            rendered,
            parsed,
        }
    }

    /// A Dockerfile rendered in memory (what `image` builds when no `-f` is given).
    pub fn from_render(r: &render::Rendered) -> DockerfileText {
        DockerfileText::new(
            format!("<rendered {}>", r.template),
            r.dockerfile.clone(),
            true,
        )
    }

    /// A Dockerfile on disk (a regular file of bounded size); `display` is how findings name it.
    pub fn from_file(
        path: &Path,
        display: impl Into<String>,
    ) -> Result<DockerfileText, crate::fsutil::ReadError> {
        Ok(DockerfileText::new(
            display,
            crate::fsutil::read_text(path)?,
            false,
        ))
    }
}

/// What a rule family gets to look at for one service.
pub struct ServiceCtx<'a> {
    pub config: &'a Config,
    pub service: &'a Service,
    /// The context directory on disk.
    pub context_dir: PathBuf,
    pub dockerfile: Option<&'a DockerfileText>,
    /// The context as Docker sends it; `None` when it could not be scanned (that is a
    /// finding of its own).
    pub context: Option<&'a Context>,
}

impl ServiceCtx<'_> {
    /// ctxbuild.toml and the line of a setting of this service.
    pub fn config_loc(&self, key: &str) -> (String, Option<u32>) {
        let Pos { line, .. } = self.service.pos(key);
        (
            self.config.path.display().to_string(),
            Some(line).filter(|l| *l > 0),
        )
    }

    /// A path inside the context as messages show it.
    pub fn display(&self, rel: &str) -> String {
        if rel.is_empty() || rel == "." {
            return self.config.display_path(&self.service.context);
        }
        self.config.display_path(&self.service.context.join(rel))
    }

    /// A finding about this service.
    pub fn finding(
        &self,
        rule: RuleId,
        (file, line): (String, Option<u32>),
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        let mut f = Finding::new(rule, file, line, message, fix);
        f.service = Some(self.service.name.clone());
        f
    }
}

/// Checks the named services (all when `names` is empty) and the configured compose files.
/// Fails only on the configuration itself (an unknown service, an unknown id in
/// `check.ignore`).
pub fn run(config: &Config, names: &[String]) -> Result<Report, ConfigError> {
    run_with(config, names, &Options::default())
}

/// [`run`] with explicit [`Options`].
pub fn run_with(config: &Config, names: &[String], opts: &Options) -> Result<Report, ConfigError> {
    let ignore = rules::ignored(config)?;
    let services: Vec<&Service> = if names.is_empty() {
        config.services.iter().collect()
    } else {
        // `check api api` checks api once; first mention keeps its place.
        let mut picked: Vec<&Service> = Vec::new();
        for n in names {
            let s = config.service(n)?;
            if !picked.iter().any(|p| p.name == s.name) {
                picked.push(s);
            }
        }
        picked
    };
    let mut findings = Vec::new();
    let mut used = Vec::new();
    for s in &services {
        let (f, u) = check_service_with(config, s, None, opts);
        findings.extend(f);
        used.extend(u);
    }
    for c in &config.compose {
        findings.extend(compose::check_file(config, c));
    }
    let mut report = Report::new(
        findings,
        services.iter().map(|s| s.name.clone()).collect(),
        &ignore,
    );
    report.dockerfiles = used;
    Ok(report)
}

/// The errors that must stop `ctxbuild image` from building `dockerfile` for `service` with
/// `opts.builder`.
pub fn gate(
    config: &Config,
    service: &Service,
    dockerfile: &DockerfileText,
    opts: &Options,
) -> Result<Vec<Finding>, ConfigError> {
    let report = Report::new(
        check_service_with(config, service, Some(dockerfile), opts).0,
        vec![service.name.clone()],
        &rules::ignored(config)?,
    );
    Ok(report
        .findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect())
}

/// All findings for one service. `dockerfile` overrides the one `check` would pick
/// ([`service_dockerfile::resolve`]: the `dockerfile` key, else the rendered Alpine template).
pub fn check_service(
    config: &Config,
    service: &Service,
    dockerfile: Option<&DockerfileText>,
) -> Vec<Finding> {
    check_service_with(config, service, dockerfile, &Options::default()).0
}

/// [`check_service`] with [`Options`], also returning the Dockerfile it checked when `check`
/// picked it itself.
pub fn check_service_with(
    config: &Config,
    service: &Service,
    dockerfile: Option<&DockerfileText>,
    opts: &Options,
) -> (Vec<Finding>, Option<UsedDockerfile>) {
    let context_dir = config.context_dir(service);
    let resolution = service_dockerfile::resolve(config, service, Variant::Alpine);
    let used = dockerfile.is_none().then(|| UsedDockerfile {
        service: service.name.clone(),
        dockerfile: resolution.display(service),
        reason: resolution.reason.clone(),
    });
    let mut findings = Vec::new();
    if !context_dir.is_dir() {
        // Nothing under a missing context can be read: reporting its Dockerfile or requirements
        // as missing would point at the wrong key. Cloud Run settings are still checked.
        let Pos { line, .. } = service.pos("context");
        let shown = config.display_path(&service.context);
        let mut f = Finding::new(
            RuleId::ContextMissing,
            config.path.display().to_string(),
            Some(line).filter(|l| *l > 0),
            format!(
                "service `{}`: context directory `{shown}` does not exist",
                service.name
            ),
            format!(
                "fix `context` in {} (it is relative to that file) or create the directory",
                config.path.display()
            ),
        );
        f.service = Some(service.name.clone());
        findings.push(f);
        let cx = ServiceCtx {
            config,
            service,
            context_dir,
            dockerfile: None,
            context: None,
        };
        findings.extend(cloudrun::check(&cx));
        return (findings, used);
    }

    let picked;
    let dockerfile = match dockerfile {
        Some(d) => Some(d),
        None => {
            let (d, f) = pick_dockerfile(config, service, &resolution);
            findings.extend(f);
            picked = d;
            picked.as_ref()
        }
    };
    let scanned = match scan_context(config, service, &context_dir) {
        Ok(c) => Some(c),
        Err(f) => {
            findings.push(f);
            None
        }
    };
    let cx = ServiceCtx {
        config,
        service,
        context_dir: context_dir.clone(),
        dockerfile,
        context: scanned.as_ref(),
    };
    findings.extend(cloudrun::check(&cx));
    if let Some(c) = &scanned {
        findings.extend(context::check(&cx, c));
    }
    findings.extend(python::check_app(&cx));
    if let Some(d) = dockerfile {
        match dockerfile::parsed(&cx, d) {
            Ok(f) => {
                findings.extend(runtime::check(&cx, &f));
                findings.extend(ports::check(&cx, &f));
                findings.extend(copy::check(&cx, &f));
                findings.extend(base_image::check(&cx, &f));
                findings.extend(generated::check(&cx, &f));
                let chosen = crate::builder::choose(
                    opts.builder.unwrap_or(service.builder),
                    Some(f.df),
                    None,
                );
                findings.extend(builder::check(&cx, &f, chosen.builder));
                findings.extend(python::check_servers(&cx, &f));
                findings.extend(python::check_health(&cx, &f));
                findings.extend(python::check_bytecode(&cx, &f));
            }
            Err(invalid) => findings.push(invalid),
        }
    }
    findings.extend(unused_dockerfiles(&cx, &resolution));
    (findings, used)
}

/// The context's `Dockerfile`/`dockerfile` that the service does not build: a warning saying
/// how to use it — unless ctxbuild rendered it (a render committed for compose), which is held
/// to its template by `generated-stale` instead.
fn unused_dockerfiles(
    cx: &ServiceCtx,
    resolution: &service_dockerfile::Resolution,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for rel in &resolution.unused {
        let display = cx.display(&rel.to_string_lossy());
        let Ok(text) = DockerfileText::from_file(&cx.context_dir.join(rel), display.clone()) else {
            continue;
        };
        if render::generated_by(&text.text).is_some() {
            if let Ok(p) = dockerfile::parsed(cx, &text) {
                out.extend(generated::check(cx, &p));
            }
            continue;
        }
        let builds = match &resolution.choice {
            DockerfileChoice::Rendered { .. } => format!(
                "the rendered template (ctxbuild.toml has no `dockerfile` key for `{}`)",
                cx.service.name
            ),
            DockerfileChoice::Configured { display, .. } => {
                format!("{display} (its `dockerfile` key)")
            }
        };
        let key = format!("dockerfile = \"{}\"", rel.display());
        out.push(cx.finding(
            RuleId::DockerfileUnused,
            (display.clone(), None),
            format!(
                "{display} is not used: service `{}` builds {builds}",
                cx.service.name
            ),
            format!(
                "to build it, add `{key}` to [services.{}] in {} (the path is relative to the context); otherwise delete or rename it",
                cx.service.name,
                cx.config.path.display()
            ),
        ));
    }
    out
}

/// The service's context as Docker's classic builder receives it (its Dockerfile, when it is
/// on disk, force-sent as the CLI does), or the finding that says why it cannot be built.
fn scan_context(
    config: &Config,
    service: &Service,
    context_dir: &Path,
) -> Result<Context, Finding> {
    let mut opts = ContextOptions::new(context_dir);
    opts.dockerfile = service
        .dockerfile
        .as_ref()
        .map(|d| context_dir.join(d))
        .filter(|p| p.exists());
    let finding = |rule, file: String, line, message: String, fix: String| {
        let mut f = Finding::new(rule, file, line, message, fix);
        f.service = Some(service.name.clone());
        f
    };
    let ignore_file = || config.display_path(&service.context.join(".dockerignore"));
    ctx::scan_with(&opts, ctx::Detail::Full).map_err(|e| match e {
        ContextError::Pattern(p) => finding(
            RuleId::DockerignoreInvalid,
            ignore_file(),
            Some(p.line as u32),
            format!("{}: `{}`", p.kind, p.pattern),
            crate::diagnostics::Diagnose::hint(&p).unwrap_or_else(|| "fix the pattern".into()),
        ),
        ContextError::ReadIgnore { source, .. } => finding(
            RuleId::DockerignoreInvalid,
            ignore_file(),
            None,
            format!("cannot read .dockerignore: {source}"),
            "docker build cannot read it either; fix its permissions or remove it".into(),
        ),
        other => finding(
            RuleId::ContextMissing,
            config.path.display().to_string(),
            Some(service.pos("context").line).filter(|l| *l > 0),
            format!("service `{}`: {other}", service.name),
            crate::diagnostics::Diagnose::hint(&other)
                .unwrap_or_else(|| "fix `context` or the directory's permissions".into()),
        ),
    })
}

/// The Dockerfile `check` looks at when none is given (the one [`service_dockerfile::resolve`]
/// chose), plus findings about reading or rendering it.
fn pick_dockerfile(
    config: &Config,
    service: &Service,
    resolution: &service_dockerfile::Resolution,
) -> (Option<DockerfileText>, Vec<Finding>) {
    let variant = match &resolution.choice {
        DockerfileChoice::Configured { path, display, .. } => {
            return match DockerfileText::from_file(path, display.clone()) {
                Ok(d) => (Some(d), Vec::new()),
                Err(e) => {
                    let e = match e {
                        crate::fsutil::ReadError::Io { source, .. } => source.to_string(),
                        other => other.to_string(),
                    };
                    let Pos { line, .. } = service.pos("dockerfile");
                    let mut f = Finding::new(
                        RuleId::DockerfileMissing,
                        config.path.display().to_string(),
                        Some(line),
                        format!("service `{}`: cannot read its Dockerfile {display}: {e}", service.name),
                        format!("create it, fix `dockerfile` in {} (it is relative to the service's context), or remove the key to build the rendered template", config.path.display()),
                    );
                    f.service = Some(service.name.clone());
                    (None, vec![f])
                }
            };
        }
        DockerfileChoice::Rendered { variant } => *variant,
    };
    match render::render(config, service, variant, None) {
        Ok(r) => (Some(DockerfileText::from_render(&r)), Vec::new()),
        Err(render::RenderError::Requirements { path, .. }) if service.kind == Kind::PythonAsgi => {
            let Pos { line, .. } = service.pos("requirements");
            let mut f = Finding::new(
                RuleId::RequirementsMissing,
                config.path.display().to_string(),
                Some(line),
                format!("service `{}`: the requirements file {path} does not exist", service.name),
                "create it, or set `requirements` to the right file (or `dependencies` to the project's dependency source)",
            );
            f.service = Some(service.name.clone());
            (None, vec![f])
        }
        Err(e @ render::RenderError::WorkspaceMember { .. }) => {
            let hint = crate::diagnostics::Diagnose::hint(&e).unwrap_or_default();
            let mut f = Finding::new(
                RuleId::UvWorkspaceMember,
                config.path.display().to_string(),
                Some(service.pos("context").line),
                e.to_string(),
                hint,
            );
            f.service = Some(service.name.clone());
            (None, vec![f])
        }
        Err(e) => {
            let mut f = Finding::new(
                RuleId::DockerfileMissing,
                config.path.display().to_string(),
                Some(service.pos("").line),
                format!(
                    "service `{}`: cannot render its Dockerfile: {e}",
                    service.name
                ),
                "fix what the message names in the context or ctxbuild.toml",
            );
            f.service = Some(service.name.clone());
            (None, vec![f])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_sorts_counts_and_ignores() {
        let f = |rule, file: &str, line| Finding::new(rule, file, line, "m", "f");
        let r = Report::new(
            vec![
                f(RuleId::BaseImageTag, "b", Some(1)),
                f(RuleId::CopyMissing, "a", Some(9)),
                f(RuleId::CopyMissing, "a", Some(2)),
                f(RuleId::ContextSecret, "c", None),
            ],
            vec![],
            &[RuleId::ContextSecret],
        );
        let locs: Vec<String> = r.findings.iter().map(Finding::location).collect();
        assert_eq!(locs, ["a:2", "a:9", "b:1"]);
        assert_eq!((r.errors, r.warnings), (2, 1));
    }
}
