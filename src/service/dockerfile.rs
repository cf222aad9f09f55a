//! Which Dockerfile a service builds: the one rule every command shares (`check`, `image`,
//! `plan`, `ls`, `init`). `ctxbuild.toml` decides — the service's `dockerfile` key, else the
//! rendered template. A `Dockerfile` (or lowercase `dockerfile`, as the docker CLI accepts) that
//! sits in the context without being named is never picked up silently: it is reported back as
//! [`Resolution::unused`] so the caller can say how to use it.
//!
//! The `dockerfile` key is relative to the service's context (as compose's `build.dockerfile`
//! and `docker build -f` inside the context); it may leave the context with `..` — such a file
//! is injected into the build like a render — but not the directory of `ctxbuild.toml`
//! (validated by [`super::config`]). Pure: it looks at the file system only to list the unused
//! candidates; reading the chosen file is the caller's job.

use super::config::{normalize_lexically, Config, Service};
use super::render::Variant;
use std::path::{Path, PathBuf};

/// The names the docker CLI looks for when no `-f` is given, in its order.
pub const DEFAULT_NAMES: [&str; 2] = ["Dockerfile", "dockerfile"];

/// The Dockerfile a service builds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DockerfileChoice {
    /// The service's `dockerfile` key.
    Configured {
        /// The path on disk (the context joined with the key).
        path: PathBuf,
        /// As messages show it: relative to the configuration's directory.
        display: String,
        /// Whether the file lies inside the context (else it is injected like a render).
        inside_context: bool,
    },
    /// The template rendered from `ctxbuild.toml`.
    Rendered { variant: Variant },
}

/// The choice, why it was made, and the Dockerfiles of the context it leaves unused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    pub choice: DockerfileChoice,
    /// One sentence for the user: `` `dockerfile` in ctxbuild.toml `` or why the template.
    pub reason: String,
    /// `Dockerfile` / `dockerfile` at the context's root that the choice does not use,
    /// relative to the context.
    pub unused: Vec<PathBuf>,
}

impl Resolution {
    /// How messages name the chosen Dockerfile: its path, or `<rendered python-asgi/alpine>`.
    pub fn display(&self, service: &Service) -> String {
        match &self.choice {
            DockerfileChoice::Configured { display, .. } => display.clone(),
            DockerfileChoice::Rendered { variant } => {
                format!("<rendered {}/{}>", service.kind.as_str(), variant.as_str())
            }
        }
    }
}

/// The Dockerfile `service` builds (see the module doc); `variant` is the template variant a
/// render uses (the caller's `--alpine`/`--slim`).
pub fn resolve(config: &Config, service: &Service, variant: Variant) -> Resolution {
    let context_dir = config.context_dir(service);
    let (choice, reason) = match &service.dockerfile {
        Some(rel) => {
            let display = config.display_path(&service.context.join(rel));
            let inside = !normalize_lexically(rel).starts_with("..");
            (
                DockerfileChoice::Configured {
                    path: context_dir.join(rel),
                    display,
                    inside_context: inside,
                },
                format!("`dockerfile` in {}", config.path.display()),
            )
        }
        None => (
            DockerfileChoice::Rendered { variant },
            format!(
                "no `dockerfile` key in {}: the rendered template",
                config.path.display()
            ),
        ),
    };
    let used = match &choice {
        DockerfileChoice::Configured { path, .. } => Some(normalize_lexically(path)),
        DockerfileChoice::Rendered { .. } => None,
    };
    let mut unused = Vec::new();
    for name in DEFAULT_NAMES {
        let candidate = context_dir.join(name);
        // `symlink_metadata`: a name listed by the directory, not a case-folded alias.
        if !listed(&context_dir, name) {
            continue;
        }
        if used.as_deref() == Some(normalize_lexically(&candidate).as_path()) {
            continue;
        }
        if candidate.is_file() {
            unused.push(PathBuf::from(name));
        }
    }
    Resolution {
        choice,
        reason,
        unused,
    }
}

/// The services of `config` whose context is the directory `dir` (compared canonically), each
/// with the Dockerfile it builds: what `ls`, `plan`, `explain` and `context` (which take a
/// directory and `-f`, as `docker build` does) compare their choice with.
pub fn services_at<'c>(config: &'c Config, dir: &Path) -> Vec<(&'c Service, Resolution)> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    config
        .services
        .iter()
        .filter(|s| std::fs::canonicalize(config.context_dir(s)).is_ok_and(|c| c == dir))
        .map(|s| (s, resolve(config, s, Variant::Alpine)))
        .collect()
}

/// Whether `dir` holds an entry spelt exactly `name` (a case-insensitive file system answers
/// `Dockerfile` for `dockerfile`; the listing does not).
fn listed(dir: &Path, name: &str) -> bool {
    if dir.join(name).symlink_metadata().is_err() {
        return false;
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .any(|e| e.file_name() == std::ffi::OsStr::new(name)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        let text = format!(
            "[services.api]\nkind = \"python-asgi\"\ncontext = \"api\"\napp = \"main:app\"\n{extra}"
        );
        let mut c = Config::parse(&dir.join("ctxbuild.toml"), &text).unwrap();
        c.root = dir.to_path_buf();
        c
    }

    #[test]
    fn key_decides_and_unused_files_are_listed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("api/docker")).unwrap();
        std::fs::write(d.path().join("api/dockerfile"), "FROM x\n").unwrap();
        let c = config(d.path(), "");
        let r = resolve(&c, &c.services[0], Variant::Slim);
        assert_eq!(
            r.choice,
            DockerfileChoice::Rendered {
                variant: Variant::Slim
            }
        );
        assert_eq!(r.unused, [PathBuf::from("dockerfile")]);
        assert_eq!(r.display(&c.services[0]), "<rendered python-asgi/slim>");

        let c = config(d.path(), "dockerfile = \"dockerfile\"\n");
        let r = resolve(&c, &c.services[0], Variant::Alpine);
        assert!(matches!(
            r.choice,
            DockerfileChoice::Configured {
                inside_context: true,
                ..
            }
        ));
        assert!(r.unused.is_empty(), "{:?}", r.unused);

        let c = config(d.path(), "dockerfile = \"../docker/api.Dockerfile\"\n");
        let r = resolve(&c, &c.services[0], Variant::Alpine);
        let DockerfileChoice::Configured {
            inside_context,
            path,
            ..
        } = &r.choice
        else {
            panic!("{r:?}")
        };
        assert!(!inside_context);
        assert_eq!(path, &d.path().join("api/../docker/api.Dockerfile"));
        assert_eq!(r.unused, [PathBuf::from("dockerfile")]);
    }

    #[test]
    fn services_at_finds_the_service_of_a_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("api/sub")).unwrap();
        let c = config(d.path(), "");
        let found = services_at(&c, &d.path().join("api/sub/.."));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.name, "api");
        assert!(matches!(
            found[0].1.choice,
            DockerfileChoice::Rendered { .. }
        ));
        assert!(services_at(&c, &d.path().join("api/sub")).is_empty());
        assert!(services_at(&c, &d.path().join("nope")).is_empty());
    }
}
