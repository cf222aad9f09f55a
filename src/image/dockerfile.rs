//! Which Dockerfile a service builds with: `-f` (relative to the current directory, as with
//! `docker build -f`), else the service's own `dockerfile`, else the rendered template; and the
//! check that the service's context directory exists.

use crate::diagnostics::{diagnose, ResultExt};
use crate::fsutil;
use crate::service::{render, Config, Service, Variant};
use std::path::{Path, PathBuf};

/// Where the Dockerfile comes from, as asked.
#[derive(Debug, Clone)]
pub struct DockerfileSource {
    /// `-f`: a Dockerfile instead of the service's own or the rendered one.
    pub file: Option<PathBuf>,
    /// The template variant when rendering.
    pub variant: Variant,
    /// `--base-image`: overrides the template's base image.
    pub base_image: Option<String>,
}

/// The Dockerfile a build uses.
#[derive(Debug, Clone)]
pub struct ResolvedDockerfile {
    pub text: String,
    /// How messages name it (relative to the configuration's directory).
    pub display: String,
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
            (None, Some(r)) => format!("<rendered {}>", r.template),
            (None, None) => self.display.clone(),
        }
    }
}

/// `-f`, then the service's own Dockerfile, then the rendered template.
pub fn resolve(
    source: &DockerfileSource,
    config: &Config,
    svc: &Service,
    ctx_dir: &Path,
) -> anyhow::Result<ResolvedDockerfile> {
    let from_file = |path: PathBuf, display: String| -> anyhow::Result<ResolvedDockerfile> {
        let read = fsutil::read_text(&path)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot read the Dockerfile {display}")));
        let text = if source.file.is_some() {
            read.hint("-f is relative to the current directory, as with docker build -f")?
        } else {
            read.hint(format!(
                "check `dockerfile` of service `{}` in {} (relative to its context)",
                svc.name,
                config.path.display()
            ))?
        };
        Ok(ResolvedDockerfile {
            text,
            display,
            path: Some(path),
            rendered: None,
        })
    };
    if let Some(f) = &source.file {
        return from_file(f.clone(), f.display().to_string());
    }
    if let Some(rel) = &svc.dockerfile {
        return from_file(
            ctx_dir.join(rel),
            config.display_path(&svc.context.join(rel)),
        );
    }
    let rendered = render::render(config, svc, source.variant, source.base_image.as_deref())
        .map_err(diagnose)?;
    Ok(ResolvedDockerfile {
        text: rendered.dockerfile.clone(),
        display: format!("<rendered {}>", rendered.template),
        path: None,
        rendered: Some(rendered),
    })
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
