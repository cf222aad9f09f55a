//! Which Dockerfile `image` builds: `-f` (relative to the current directory, as with
//! `docker build -f`), else the one rule every command shares
//! ([`crate::service::dockerfile::resolve`]: the service's `dockerfile` key, else the rendered
//! template), read with a bounded read; whether it is injected into the tar (a render, or a file
//! outside the context); `--base-image` applied to a render and refused for any other
//! Dockerfile; and the check that the service's context directory exists.
//!
//! `check` resolves through the same rule, so the `image` gate lints exactly what is built.

use crate::diagnostics::{diagnose, ResultExt};
use crate::dockerfile::Keyword;
use crate::fsutil;
use crate::service::dockerfile::{self as rule, DockerfileChoice};
use crate::service::{render, Config, Service, Variant};
use std::path::{Path, PathBuf};

/// Where the Dockerfile comes from, as asked.
#[derive(Debug, Clone)]
pub struct DockerfileSource {
    /// `-f`: a Dockerfile instead of the service's own or the rendered one.
    pub file: Option<PathBuf>,
    /// The template variant when rendering.
    pub variant: Variant,
    /// `--alpine` or `--slim` was given explicitly: refused, like `--base-image`, for a
    /// Dockerfile that is not rendered (there is no variant to choose).
    pub variant_given: bool,
    /// `--base-image`: replaces the template's base image. Refused for a Dockerfile that is
    /// not rendered (it has its own FROM: ignoring the flag would be silent).
    pub base_image: Option<String>,
}

/// The Dockerfile a build uses.
#[derive(Debug, Clone)]
pub struct ResolvedDockerfile {
    pub text: String,
    /// How messages name it (relative to the configuration's directory, `-f` as given, or
    /// `<rendered python-asgi/alpine>`).
    pub display: String,
    /// Why this one: `-f`, `` `dockerfile` in ctxbuild.toml ``, or the rendered template.
    pub reason: String,
    /// The path given to the context scan (relative to the current directory), when a file.
    pub path: Option<PathBuf>,
    /// The rendering, when it comes from a template.
    pub rendered: Option<render::Rendered>,
}

impl ResolvedDockerfile {
    /// What identifies it across builds (for the saved plan): its canonical path, or the
    /// template it was rendered from.
    pub fn identity(&self) -> String {
        match (&self.path, &self.rendered) {
            (Some(p), _) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            (None, Some(r)) if r.buildkit => format!("<rendered {}, BuildKit>", r.template),
            (None, Some(r)) => format!("<rendered {}>", r.template),
            (None, None) => self.display.clone(),
        }
    }
}

/// `-f`, else [`rule::resolve`] (the `dockerfile` key, else the rendered template, in its
/// BuildKit flavour when `buildkit`).
pub fn resolve(
    source: &DockerfileSource,
    config: &Config,
    svc: &Service,
    buildkit: bool,
) -> anyhow::Result<ResolvedDockerfile> {
    let (path, display, reason, hint) = if let Some(f) = &source.file {
        let reason = "-f".to_string();
        let hint = "-f is relative to the current directory, as with docker build -f".to_string();
        (f.clone(), f.display().to_string(), reason, hint)
    } else {
        let resolution = rule::resolve(config, svc, source.variant);
        match resolution.choice {
            DockerfileChoice::Configured { path, display, .. } => {
                let hint = format!(
                    "check `dockerfile` of service `{}` in {} (relative to its context)",
                    svc.name,
                    config.path.display()
                );
                (path, display, resolution.reason, hint)
            }
            DockerfileChoice::Rendered { variant } => {
                let rendered = render::render_for(
                    config,
                    svc,
                    variant,
                    source.base_image.as_deref(),
                    buildkit,
                )
                .map_err(diagnose)?;
                let flavour = if buildkit { ", BuildKit" } else { "" };
                return Ok(ResolvedDockerfile {
                    text: rendered.dockerfile.clone(),
                    display: format!("<rendered {}{flavour}>", rendered.template),
                    reason: resolution.reason,
                    path: None,
                    rendered: Some(rendered),
                });
            }
        }
    };
    let text = fsutil::read_text(&path)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context(format!("cannot read the Dockerfile {display}")))
        .hint(hint)?;
    if let Some(base) = &source.base_image {
        return Err(base_image_refused(&display, &reason, base, &text));
    }
    if source.variant_given {
        let flag = match source.variant {
            Variant::Slim => "--slim",
            _ => "--alpine",
        };
        return Err(anyhow::anyhow!(
            "{flag} chooses a variant of the rendered template, and this build uses {display} ({reason})"
        ))
        .hint("drop the flag, or remove the service's `dockerfile` key to build the rendered template");
    }
    Ok(ResolvedDockerfile {
        text,
        display,
        reason,
        path: Some(path),
        rendered: None,
    })
}

/// `--base-image` with a Dockerfile that is not rendered: its FROM lines decide the base, so
/// the flag would do nothing. The hint names the build argument a FROM already reads, if any.
fn base_image_refused(display: &str, reason: &str, base: &str, text: &str) -> anyhow::Error {
    let hint = match from_arg(text) {
        Some((name, line)) => format!(
            "{display}:{line} takes its base image from the build argument {name}: pass `--build-arg {name}={base}` instead"
        ),
        None => format!(
            "change the FROM line of {display}, or declare `ARG BASE_IMAGE=…` before it, write `FROM ${{BASE_IMAGE}}` and pass `--build-arg BASE_IMAGE={base}`; to build the rendered template instead, remove the service's `dockerfile` key"
        ),
    };
    let e: anyhow::Result<()> = Err(anyhow::anyhow!(
        "--base-image applies only to the rendered template, and this build uses {display} ({reason}), whose FROM decides the base image"
    ))
    .hint(hint);
    e.unwrap_err()
}

/// The first build argument declared before the first FROM that a FROM line reads, and that
/// FROM's line.
fn from_arg(text: &str) -> Option<(String, usize)> {
    let df = crate::dockerfile::parse(text, "Dockerfile").ok()?;
    let globals: Vec<String> = df
        .meta_args()
        .iter()
        .filter(|a| a.keyword == Keyword::Arg)
        .filter_map(|a| a.key_values(df.directives.escape).ok())
        .flatten()
        .map(|(k, _)| k)
        .collect();
    df.instructions
        .iter()
        .filter(|i| i.keyword == Keyword::From)
        .find_map(|i| {
            let image = i.args.split_whitespace().next()?;
            variables(image)
                .into_iter()
                .find(|v| globals.contains(v))
                .map(|v| (v, i.line))
        })
}

/// The names of the `$NAME` / `${NAME…}` references in `word`.
fn variables(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.strip_prefix('{');
        let body = braced.unwrap_or(rest);
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if len > 0 {
            out.push(body[..len].to_string());
        }
        rest = body;
    }
    out
}

/// The service's context directory must exist: everything after reads it.
pub fn check_context_dir(config: &Config, svc: &Service, ctx_dir: &Path) -> anyhow::Result<()> {
    if ctx_dir.is_dir() {
        return Ok(());
    }
    let line = svc.pos("context").line;
    let at = if line > 0 {
        format!("{}:{line}", config.path.display())
    } else {
        config.path.display().to_string()
    };
    Err(anyhow::anyhow!(
        "the context directory {} of service `{}` ({at}) does not exist",
        config.display_path(&svc.context),
        svc.name
    ))
    .hint(format!(
        "create it, or fix `context` of [services.{}] in {} (relative to that file's directory)",
        svc.name,
        config.path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{class_of, hints_of, messages, ErrorClass};

    fn project(extra: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n{extra}"
        );
        std::fs::write(dir.path().join("ctxbuild.toml"), &text).unwrap();
        for (p, c) in files {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        let config = Config::load(&dir.path().join("ctxbuild.toml")).unwrap();
        (dir, config)
    }

    fn source(base_image: Option<&str>) -> DockerfileSource {
        DockerfileSource {
            file: None,
            variant: Variant::Alpine,
            variant_given: false,
            base_image: base_image.map(str::to_string),
        }
    }

    #[test]
    fn image_builds_what_check_lints() {
        // A Dockerfile in the context without the key: both render the template.
        let files = [
            ("api/main.py", "app = 1\n"),
            ("api/requirements.txt", "fastapi\n"),
            ("api/Dockerfile", "FROM scratch\n"),
            ("docker/api.Dockerfile", "FROM busybox\n"),
        ];
        for (extra, want) in [
            ("", "<rendered python-asgi/alpine>"),
            ("dockerfile = \"Dockerfile\"\n", "api/Dockerfile"),
            (
                "dockerfile = \"../docker/api.Dockerfile\"\n",
                "docker/api.Dockerfile",
            ),
        ] {
            let (_d, config) = project(extra, &files);
            let svc = config.service("api").unwrap();
            let df = resolve(&source(None), &config, svc, false).unwrap();
            let checked = crate::check::run(&config, &[]).unwrap();
            assert!(df.display.ends_with(want), "{extra}: {}", df.display);
            assert_eq!(checked.dockerfiles[0].dockerfile, df.display, "{extra}");
            assert_eq!(checked.dockerfiles[0].reason, df.reason, "{extra}");
            assert_eq!(df.rendered.is_some(), extra.is_empty());
        }
    }

    #[test]
    fn an_explicit_variant_is_refused_for_an_own_dockerfile() {
        let files = [
            ("api/main.py", "app = 1\n"),
            ("api/requirements.txt", "fastapi\n"),
            ("api/Dockerfile", "FROM python:3.12\nCMD x\n"),
        ];
        let slim = DockerfileSource {
            variant: Variant::Slim,
            variant_given: true,
            ..source(None)
        };
        // A render takes it.
        let (_d, config) = project("", &files);
        let df = resolve(&slim, &config, config.service("api").unwrap(), false).unwrap();
        assert!(df.text.contains("python-asgi/slim"), "{}", df.text);
        // The service's own Dockerfile has no variant: the flag is refused, not ignored.
        let (_d, config) = project("dockerfile = \"Dockerfile\"\n", &files);
        let e = resolve(&slim, &config, config.service("api").unwrap(), false).unwrap_err();
        let shown = messages(&e).join("\n");
        assert!(shown.contains("--slim chooses a variant"), "{shown}");
        // Not given: the default variant never refuses anything.
        assert!(resolve(
            &source(None),
            &config,
            config.service("api").unwrap(),
            false
        )
        .is_ok());
    }

    #[test]
    fn base_image_applies_to_a_render_and_is_refused_for_an_own_dockerfile() {
        let files = [
            ("api/main.py", "app = 1\n"),
            ("api/requirements.txt", "fastapi\n"),
            ("api/Dockerfile", "FROM python:3.12\nCMD x\n"),
            (
                "api/arg.Dockerfile",
                "ARG TAG=3\nARG PY_IMAGE=python:3.12\nFROM ${PY_IMAGE} AS base\nCMD x\n",
            ),
        ];
        let (_d, config) = project("", &files);
        let svc = config.service("api").unwrap();
        let df = resolve(&source(Some("my/base:1")), &config, svc, false).unwrap();
        assert!(df.text.contains("FROM my/base:1"), "{}", df.text);

        let (_d, config) = project("dockerfile = \"Dockerfile\"\n", &files);
        let svc = config.service("api").unwrap();
        let e = resolve(&source(Some("my/base:1")), &config, svc, false).unwrap_err();
        let shown = messages(&e).join("\n");
        assert!(
            shown.contains("--base-image applies only to the rendered template"),
            "{shown}"
        );
        assert!(shown.contains("api/Dockerfile ("), "{shown}");
        assert_eq!(class_of(&e), ErrorClass::Failed);
        let hints = hints_of(&e).join("\n");
        assert!(hints.contains("ARG BASE_IMAGE"), "{hints}");

        let (_d, config) = project("dockerfile = \"arg.Dockerfile\"\n", &files);
        let svc = config.service("api").unwrap();
        let e = resolve(&source(Some("my/base:1")), &config, svc, false).unwrap_err();
        let hints = hints_of(&e).join("\n");
        assert!(
            hints.contains("arg.Dockerfile:3 takes its base image from the build argument PY_IMAGE: pass `--build-arg PY_IMAGE=my/base:1`"),
            "{hints}"
        );
        // -f is not rendered either.
        let mut s = source(Some("my/base:1"));
        s.file = Some(config.root.join("api/Dockerfile"));
        assert!(resolve(&s, &config, svc, false).is_err());
    }

    #[test]
    fn a_missing_context_dir_names_the_service_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("ctxbuild.toml");
        let text =
            "[services.nosvc]\nkind = \"python-asgi\"\ncontext = \"nosvc\"\napp = \"main:app\"\n";
        let config = Config::parse(&toml, text).unwrap();
        let svc = config.service("nosvc").unwrap();
        let e = check_context_dir(&config, svc, &config.context_dir(svc)).unwrap_err();
        let shown = messages(&e).join("\n");
        assert!(shown.contains("the context directory"), "{shown}");
        assert!(shown.contains("of service `nosvc`"), "{shown}");
        assert!(shown.contains("does not exist"), "{shown}");
        assert!(!hints_of(&e).iter().any(|h| h.contains("-f is relative")));
        assert_eq!(class_of(&e), ErrorClass::Failed);
        std::fs::create_dir(dir.path().join("nosvc")).unwrap();
        assert!(check_context_dir(&config, svc, &config.context_dir(svc)).is_ok());
    }
}
