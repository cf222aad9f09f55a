//! `ctxbuild.toml`: the service declarations, parsed with line numbers and validated once.
//!
//! Raw serde structs with `Spanned` fields mirror the file; [`Config::load`] turns them into the
//! plain [`Config`] the rest of the crate uses, remembering the line of each setting so `check`
//! can point at it. Unknown keys and bad values are [`ConfigError`]s naming `file:line:col` with
//! a hint. This module reads only the configuration file; it never looks at the services' trees.

use crate::builder::BuilderChoice;
use crate::diagnostics::Diagnose;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The file name looked for when no `-c FILE` is given.
pub const DEFAULT_FILE: &str = "ctxbuild.toml";

/// Cloud Run's default profile, which busy multi-worker Python services outgrow: 512 MiB and 1 CPU.
pub const DEFAULT_SMALL_MEMORY: u64 = 512 * MIB;
pub const DEFAULT_SMALL_CPU: f64 = 1.0;

const MIB: u64 = 1024 * 1024;

/// What a service is, which decides its templates and the rules `check` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A Python ASGI app (FastAPI, Starlette…) served by gunicorn with an Uvicorn worker.
    PythonAsgi,
    /// A Node app built with `npm run build` into a standalone output.
    Node,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PythonAsgi => "python-asgi",
            Kind::Node => "node",
        }
    }
}

/// A position in `ctxbuild.toml` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// The parsed, validated `ctxbuild.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file as the user named it (for messages).
    pub path: PathBuf,
    /// The directory every relative path in the file is resolved from.
    pub root: PathBuf,
    /// Services sorted by name.
    pub services: Vec<Service>,
    /// Compose files to check, relative to `root`.
    pub compose: Vec<PathBuf>,
    /// Settings of `ctxbuild check`.
    pub check: CheckSettings,
    /// The file's text, kept so findings can quote it.
    pub text: String,
}

/// Settings of `ctxbuild check` from the `[check]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettings {
    /// `cloudrun-small-profile` warns when memory ≤ this many bytes…
    pub small_memory: u64,
    /// …and CPU ≤ this.
    pub small_cpu: f64,
    /// Rule ids not to report, as written: `check` owns the rule list, so it resolves them
    /// (and rejects an unknown one at its line).
    pub ignore: Vec<IgnoredRule>,
}

/// One entry of `check.ignore` and where it stands in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredRule {
    pub id: String,
    pub pos: Pos,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            small_memory: DEFAULT_SMALL_MEMORY,
            small_cpu: DEFAULT_SMALL_CPU,
            ignore: Vec::new(),
        }
    }
}

/// Base images per variant; `None` means the template's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImages {
    pub alpine: Option<String>,
    pub slim: Option<String>,
}

/// One service from `[services.NAME]`.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub kind: Kind,
    /// The build context, relative to [`Config::root`].
    pub context: PathBuf,
    /// The ASGI app as `module:attr` (Python services).
    pub app: Option<String>,
    /// The port the server listens on when `$PORT` is unset.
    pub port: u16,
    /// gunicorn workers.
    pub workers: u32,
    /// gunicorn `--timeout`, seconds.
    pub timeout: u32,
    /// The requirements file, relative to the context (Python services).
    pub requirements: PathBuf,
    /// `dependencies = "uv" | "pyproject" | "requirements" | "none"`: how the image installs
    /// the project's dependencies; `None` = detected (see [`crate::python::deps::analyse`]).
    pub dependencies: Option<crate::python::DependencySource>,
    pub base_image: BaseImages,
    /// Build-only system packages, removed after `pip install`.
    pub system_packages: Vec<String>,
    /// System packages kept in the runtime image.
    pub runtime_packages: Vec<String>,
    /// A hand-written Dockerfile relative to the context (it may lie outside it, under the
    /// configuration's directory); `None` means the rendered template, whatever the context
    /// holds (see [`crate::service::dockerfile::resolve`]).
    pub dockerfile: Option<PathBuf>,
    /// The HTTP path the HEALTHCHECK requests.
    pub health_path: String,
    /// `builder = "classic" | "buildkit" | "auto"` (default auto; see [`crate::builder`]).
    pub builder: BuilderChoice,
    /// Python: compile the dependencies and the app to bytecode at build time (default true).
    pub compile_bytecode: bool,
    /// `KEY=VALUE` lines `smoke` passes to the container (as a deploy's env vars or secrets
    /// would be), relative to the directory of ctxbuild.toml; never baked into an image.
    pub env_file: Option<String>,
    /// Node: the directory `npm run build` writes the standalone app to.
    pub build_output: String,
    /// Node: the file `node` runs from the build output.
    pub entrypoint: String,
    pub deploy: Option<Deploy>,
    /// Where each setting was written, keyed by its dotted name (`port`, `deploy.cpu`…);
    /// `""` is the `[services.NAME]` header.
    pub positions: BTreeMap<String, Pos>,
}

impl Service {
    /// The line of a setting, or of the service's header when the setting was defaulted.
    pub fn pos(&self, key: &str) -> Pos {
        self.positions
            .get(key)
            .or_else(|| self.positions.get(""))
            .copied()
            .unwrap_or_default()
    }

    /// The port the deploy target sends traffic to (Cloud Run's `$PORT`).
    pub fn deploy_port(&self) -> u16 {
        self.deploy
            .as_ref()
            .and_then(|d| d.port)
            .unwrap_or(self.port)
    }
}

/// The Cloud Run deploy target of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    /// The Cloud Run service name (default: the ctxbuild service name).
    pub service: String,
    pub region: Option<String>,
    /// vCPUs (Cloud Run default 1).
    pub cpu: f64,
    /// Bytes (Cloud Run default 512 MiB).
    pub memory: u64,
    /// The memory as written, for messages.
    pub memory_text: String,
    /// Seconds (Cloud Run default 300).
    pub request_timeout: u32,
    pub concurrency: Option<u32>,
    /// The container port Cloud Run sets `$PORT` to (default: the service's port).
    pub port: Option<u16>,
}

/// Why `ctxbuild.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: u32,
        column: u32,
        message: String,
        hint: Option<String>,
    },
    #[error("no service `{name}` in {path}")]
    UnknownService {
        name: String,
        path: String,
        known: Vec<String>,
    },
}

impl Diagnose for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some(format!(
                    "run ctxbuild from the directory holding {DEFAULT_FILE}, or pass -c FILE"
                ))
            }
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { hint, .. } => hint.clone(),
            ConfigError::UnknownService { name, known, .. } => {
                if known.is_empty() {
                    return Some("declare it under [services.NAME]".into());
                }
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                Some(match closest(name, &names) {
                    Some(s) => format!("did you mean `{s}`? services: {}", known.join(", ")),
                    None => format!("services: {}", known.join(", ")),
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file model. Field names are the file's keys; `deny_unknown_fields` makes typos errors.

const FILE_KEYS: &[&str] = &["services", "compose", "check"];
const SERVICE_KEYS: &[&str] = &[
    "kind",
    "context",
    "app",
    "port",
    "workers",
    "timeout",
    "requirements",
    "dependencies",
    "base_image",
    "system_packages",
    "runtime_packages",
    "dockerfile",
    "health_path",
    "compile_bytecode",
    "env_file",
    "build_output",
    "entrypoint",
    "builder",
    "deploy",
];
const DEPLOY_KEYS: &[&str] = &[
    "service",
    "region",
    "cpu",
    "memory",
    "request_timeout",
    "concurrency",
    "port",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    services: BTreeMap<Spanned<String>, Spanned<RawService>>,
    #[serde(default)]
    compose: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    check: Option<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    small_profile_memory: Option<Spanned<String>>,
    small_profile_cpu: Option<Spanned<Number>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    kind: Option<Spanned<Kind>>,
    context: Option<Spanned<String>>,
    app: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    workers: Option<Spanned<i64>>,
    timeout: Option<Spanned<i64>>,
    requirements: Option<Spanned<String>>,
    dependencies: Option<Spanned<crate::python::DependencySource>>,
    base_image: Option<RawBaseImage>,
    #[serde(default)]
    system_packages: Vec<Spanned<String>>,
    #[serde(default)]
    runtime_packages: Vec<Spanned<String>>,
    dockerfile: Option<Spanned<String>>,
    health_path: Option<Spanned<String>>,
    compile_bytecode: Option<Spanned<bool>>,
    env_file: Option<Spanned<String>>,
    build_output: Option<Spanned<String>>,
    entrypoint: Option<Spanned<String>>,
    builder: Option<Spanned<String>>,
    deploy: Option<Spanned<RawDeploy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseImage {
    alpine: Option<Spanned<String>>,
    slim: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    service: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    cpu: Option<Spanned<Number>>,
    memory: Option<Spanned<String>>,
    request_timeout: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    port: Option<Spanned<i64>>,
}

/// A CPU count written as `1`, `0.5` or `"1000m"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::fsutil::read_text(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration text; `path` names it in messages and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let lines = LineIndex::new(text);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let pos = e.span().map(|s| lines.pos(s.start)).unwrap_or_default();
            let (message, hint) = explain_toml_error(e.message());
            ConfigError::Invalid {
                path: display.clone(),
                line: pos.line,
                column: pos.column,
                message,
                hint,
            }
        })?;
        let v = Validator {
            path: &display,
            lines: &lines,
        };
        let root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        let mut services = Vec::new();
        for (name, raw) in raw.services {
            let header = lines.pos(name.span().start);
            let name = name.into_inner();
            services.push(v.service(name, header, raw.into_inner())?);
        }
        let compose = match raw.compose {
            Some(list) => list
                .into_inner()
                .into_iter()
                .map(|p| v.rel_path(&p, "compose file").map(PathBuf::from))
                .collect::<Result<_, _>>()?,
            None => default_compose(&root),
        };
        let check = match raw.check {
            Some(c) => v.check(c)?,
            None => CheckSettings::default(),
        };
        Ok(Config {
            path: path.to_path_buf(),
            root,
            services,
            compose,
            check,
            text: text.to_string(),
        })
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Result<&Service, ConfigError> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ConfigError::UnknownService {
                name: name.to_string(),
                path: self.path.display().to_string(),
                known: self.services.iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// The service's context directory on disk.
    pub fn context_dir(&self, service: &Service) -> PathBuf {
        join_clean(&self.root, &service.context)
    }

    /// The service's context directory, canonical, refused when a symbolic link takes it out
    /// of the configuration's directory although the configured path stays inside it (a
    /// context declared above it, `../shared`, is the configuration's own choice). What a
    /// command that writes or removes inside the context (`render --write-dockerignore`,
    /// `image --clean`) works in: a link planted in a cloned repository must not send it to `~`.
    pub fn contained_context_dir(&self, service: &Service) -> std::io::Result<PathBuf> {
        self.contained(&service.context, "context directory")
    }

    /// `rel` (relative to the configuration's directory), canonical, refused when it is declared
    /// inside that directory but a symbolic link leads it out (see
    /// [`Config::contained_context_dir`]); `what` names it in the error.
    pub fn contained(&self, rel: &Path, what: &str) -> std::io::Result<PathBuf> {
        use std::path::Component;
        let root = std::fs::canonicalize(&self.root)?;
        let path = std::fs::canonicalize(join_clean(&self.root, rel))?;
        let declared_inside = !rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir));
        if declared_inside && !path.starts_with(&root) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the {what} leads through a symbolic link to {}, outside {}",
                    path.display(),
                    root.display()
                ),
            ));
        }
        Ok(path)
    }

    /// A path under `root` as shown in messages (`examples/auth/Dockerfile`), normalised
    /// lexically so `app/../outside/Dockerfile` reads `outside/Dockerfile`. For display only:
    /// through a symlink `..` may lead elsewhere on disk.
    pub fn display_path(&self, rel: &Path) -> String {
        let p = normalize_lexically(&join_clean(&self.root, rel));
        p.strip_prefix("./").unwrap_or(&p).display().to_string()
    }
}

/// `p` with `.` dropped and `dir/..` pairs removed, without touching the disk; leading `..`
/// stay, `..` above the root is the root, and nothing left is `.` (Go's `path.Clean`).
pub fn normalize_lexically(p: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let cleaned = crate::pathrules::clean(p.as_os_str().as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(cleaned))
}

/// `root/rel` without a leading `./` when root is `.`.
fn join_clean(root: &Path, rel: &Path) -> PathBuf {
    if root == Path::new(".") {
        if rel.as_os_str().is_empty() || rel == Path::new(".") {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        }
    } else if rel == Path::new(".") {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Compose files found next to the configuration when none are listed.
fn default_compose(root: &Path) -> Vec<PathBuf> {
    [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ]
    .iter()
    .filter(|n| root.join(n).is_file())
    .map(PathBuf::from)
    .collect()
}

struct Validator<'a> {
    path: &'a str,
    lines: &'a LineIndex,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        message: String,
        hint: &str,
    ) -> Result<T, ConfigError> {
        let pos = self.lines.pos(span.start);
        Err(ConfigError::Invalid {
            path: self.path.to_string(),
            line: pos.line,
            column: pos.column,
            message,
            hint: (!hint.is_empty()).then(|| hint.to_string()),
        })
    }

    fn service(&self, name: String, header: Pos, raw: RawService) -> Result<Service, ConfigError> {
        let mut positions = BTreeMap::new();
        positions.insert(String::new(), header);
        let mut at = |key: &str, span: std::ops::Range<usize>| {
            positions.insert(key.to_string(), self.lines.pos(span.start));
        };
        if !valid_name(&name) {
            return self
                .err(
                    0..0,
                    format!("service name `{name}` is not a valid name"),
                    "use lowercase letters, digits, `-` and `_`",
                )
                .map_err(|e| relocate(e, header));
        }
        let Some(kind) = raw.kind else {
            return self
                .err(
                    0..0,
                    format!("service `{name}` has no `kind`"),
                    "add kind = \"python-asgi\" or kind = \"node\"",
                )
                .map_err(|e| relocate(e, header));
        };
        at("kind", kind.span());
        let kind = kind.into_inner();

        let app = match raw.app {
            Some(app) => {
                at("app", app.span());
                if kind == Kind::PythonAsgi && !valid_app(app.get_ref()) {
                    return self.err(
                        app.span(),
                        format!("`app = \"{}\"` is not `module:attr`", app.get_ref()),
                        "write the ASGI app as gunicorn takes it, e.g. app = \"main:app\" or app = \"myapp.api:app\"",
                    );
                }
                Some(app.into_inner())
            }
            None if kind == Kind::PythonAsgi => {
                return self
                    .err(
                        0..0,
                        format!("python-asgi service `{name}` has no `app`"),
                        "add app = \"main:app\" (the module and the ASGI object gunicorn serves)",
                    )
                    .map_err(|e| relocate(e, header));
            }
            None => None,
        };

        let context = match raw.context {
            Some(c) => {
                at("context", c.span());
                PathBuf::from(self.rel_path(&c, "context")?)
            }
            None => PathBuf::from("."),
        };
        let port = match raw.port {
            Some(p) => {
                at("port", p.span());
                self.port(&p)?
            }
            None => 8080,
        };
        let workers = self.positive(raw.workers.as_ref(), "workers", 2, 64, &mut at)?;
        let timeout = self.positive(raw.timeout.as_ref(), "timeout", 300, 86_400, &mut at)?;
        let requirements = match raw.requirements {
            Some(r) => {
                at("requirements", r.span());
                PathBuf::from(self.rel_path(&r, "requirements file")?)
            }
            None => PathBuf::from("requirements.txt"),
        };
        let dependencies = raw.dependencies.map(|d| {
            at("dependencies", d.span());
            d.into_inner()
        });
        let base_image = match raw.base_image {
            Some(b) => BaseImages {
                alpine: b.alpine.map(|i| self.image(i)).transpose()?,
                slim: b.slim.map(|i| self.image(i)).transpose()?,
            },
            None => BaseImages::default(),
        };
        let system_packages = self.packages(raw.system_packages)?;
        let runtime_packages = self.packages(raw.runtime_packages)?;
        let dockerfile = match raw.dockerfile {
            Some(d) => {
                at("dockerfile", d.span());
                Some(self.dockerfile_path(&d, &context)?)
            }
            None => None,
        };
        let health_path = match raw.health_path {
            Some(h) => {
                at("health_path", h.span());
                if !h.get_ref().starts_with('/')
                    || !h
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
                {
                    return self.err(
                        h.span(),
                        format!("health_path `{}` is not a plain URL path", h.get_ref()),
                        "write it like \"/health\"",
                    );
                }
                h.into_inner()
            }
            None => "/health".into(),
        };
        let compile_bytecode = match raw.compile_bytecode {
            Some(c) => {
                at("compile_bytecode", c.span());
                c.into_inner()
            }
            None => true,
        };
        let env_file = match raw.env_file {
            Some(e) => {
                at("env_file", e.span());
                Some(self.rel_path(&e, "env_file")?)
            }
            None => None,
        };
        let build_output = match raw.build_output {
            Some(b) => self.rel_path(&b, "build_output")?,
            None => "dist".into(),
        };
        let entrypoint = match raw.entrypoint {
            Some(e) => self.rel_path(&e, "entrypoint")?,
            None => "server.js".into(),
        };
        let builder = match raw.builder {
            Some(b) => {
                at("builder", b.span());
                match b.get_ref().parse::<BuilderChoice>() {
                    Ok(c) => c,
                    Err(e) => {
                        return self.err(
                            b.span(),
                            e,
                            "write builder = \"auto\" (BuildKit only when the Dockerfile needs it), \"classic\" or \"buildkit\"",
                        )
                    }
                }
            }
            None => BuilderChoice::Auto,
        };
        let deploy = match raw.deploy {
            Some(d) => {
                at("deploy", d.span());
                Some(self.deploy(&name, d.into_inner(), &mut at)?)
            }
            None => None,
        };
        Ok(Service {
            name,
            kind,
            context,
            app,
            port,
            workers,
            timeout,
            requirements,
            dependencies,
            base_image,
            system_packages,
            runtime_packages,
            dockerfile,
            health_path,
            compile_bytecode,
            env_file,
            build_output,
            entrypoint,
            builder,
            deploy,
            positions,
        })
    }

    fn deploy(
        &self,
        name: &str,
        raw: RawDeploy,
        at: &mut impl FnMut(&str, std::ops::Range<usize>),
    ) -> Result<Deploy, ConfigError> {
        let cpu = match raw.cpu {
            Some(c) => {
                at("deploy.cpu", c.span());
                self.cpu(&c)?
            }
            None => 1.0,
        };
        let (memory, memory_text) = match raw.memory {
            Some(m) => {
                at("deploy.memory", m.span());
                match parse_memory(m.get_ref()) {
                    Some(b) => (b, m.into_inner()),
                    None => {
                        return self.err(
                            m.span(),
                            format!("memory `{}` is not a size", m.get_ref()),
                            "write it as Cloud Run does: \"512Mi\", \"1Gi\", \"2Gi\"",
                        )
                    }
                }
            }
            None => (512 * MIB, "512Mi".into()),
        };
        let request_timeout = match raw.request_timeout {
            Some(t) => {
                at("deploy.request_timeout", t.span());
                match u32::try_from(*t.get_ref()) {
                    Ok(v) => v,
                    Err(_) => {
                        return self.err(
                            t.span(),
                            format!("request_timeout {} is not a number of seconds", t.get_ref()),
                            "Cloud Run accepts 1 to 3600 seconds",
                        )
                    }
                }
            }
            None => 300,
        };
        let concurrency = match raw.concurrency {
            Some(c) => {
                at("deploy.concurrency", c.span());
                match u32::try_from(*c.get_ref()) {
                    Ok(v) if (1..=1000).contains(&v) => Some(v),
                    _ => {
                        return self.err(
                            c.span(),
                            format!("concurrency {} is out of range", c.get_ref()),
                            "Cloud Run accepts 1 to 1000 concurrent requests per instance",
                        )
                    }
                }
            }
            None => None,
        };
        let port = match raw.port {
            Some(p) => {
                at("deploy.port", p.span());
                Some(self.port(&p)?)
            }
            None => None,
        };
        Ok(Deploy {
            service: raw
                .service
                .map(Spanned::into_inner)
                .unwrap_or_else(|| name.to_string()),
            region: raw.region.map(Spanned::into_inner),
            cpu,
            memory,
            memory_text,
            request_timeout,
            concurrency,
            port,
        })
    }

    fn check(&self, raw: RawCheck) -> Result<CheckSettings, ConfigError> {
        let mut s = CheckSettings::default();
        if let Some(m) = raw.small_profile_memory {
            s.small_memory = match parse_memory(m.get_ref()) {
                Some(b) => b,
                None => {
                    return self.err(
                        m.span(),
                        format!("small_profile_memory `{}` is not a size", m.get_ref()),
                        "write it like \"512Mi\" or \"1Gi\"",
                    )
                }
            };
        }
        if let Some(c) = raw.small_profile_cpu {
            s.small_cpu = self.cpu(&c)?;
        }
        for id in raw.ignore {
            s.ignore.push(IgnoredRule {
                pos: self.lines.pos(id.span().start),
                id: id.into_inner(),
            });
        }
        Ok(s)
    }

    fn port(&self, p: &Spanned<i64>) -> Result<u16, ConfigError> {
        match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => Ok(v),
            _ => self.err(
                p.span(),
                format!("port {} is out of range", p.get_ref()),
                "use a TCP port between 1 and 65535; Cloud Run's default is 8080",
            ),
        }
    }

    fn positive(
        &self,
        v: Option<&Spanned<i64>>,
        key: &str,
        default: u32,
        max: u32,
        at: &mut impl FnMut(&str, std::ops::Range<usize>),
    ) -> Result<u32, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        at(key, v.span());
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => self.err(
                v.span(),
                format!("{key} = {} is out of range", v.get_ref()),
                &format!("use 1 to {max} (default {default})"),
            ),
        }
    }

    fn cpu(&self, c: &Spanned<Number>) -> Result<f64, ConfigError> {
        let v = match c.get_ref() {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Text(t) => parse_cpu(t),
        };
        match v {
            Some(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => self.err(
                c.span(),
                "cpu is not a positive number of vCPUs".into(),
                "write cpu = 1, cpu = 2 or cpu = \"500m\"",
            ),
        }
    }

    fn image(&self, i: Spanned<String>) -> Result<String, ConfigError> {
        let s = i.get_ref();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return self.err(
                i.span(),
                format!("base image `{s}` is not an image reference"),
                "write it like \"python:3.12-alpine\"",
            );
        }
        Ok(i.into_inner())
    }

    fn packages(&self, list: Vec<Spanned<String>>) -> Result<Vec<String>, ConfigError> {
        list.into_iter()
            .map(|p| {
                let ok = p
                    .get_ref()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                    && p.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-._=:".contains(c));
                if ok {
                    Ok(p.into_inner())
                } else {
                    self.err(
                        p.span(),
                        format!("`{}` is not a package name", p.get_ref()),
                        "list one apk/apt package per string, e.g. [\"gcc\", \"musl-dev\"]",
                    )
                }
            })
            .collect()
    }

    /// A relative path that stays inside the repository.
    /// The `dockerfile` key: relative to the service's context (like compose's
    /// `build.dockerfile`); it may leave the context with `..` (the file is then injected into
    /// the build like a render), but not the directory of ctxbuild.toml.
    fn dockerfile_path(&self, p: &Spanned<String>, context: &Path) -> Result<PathBuf, ConfigError> {
        let s = p.get_ref();
        let path = Path::new(s);
        let escapes = normalize_lexically(&context.join(path)).starts_with("..");
        if s.is_empty() || path.is_absolute() || escapes || s.ends_with('/') {
            return self.err(
                p.span(),
                format!("dockerfile `{s}` must be a file path relative to the service's context, inside the repository"),
                "`dockerfile` is relative to the service's `context` (\"Dockerfile.prod\", or \"../docker/api.Dockerfile\" for one outside it) and must stay under the directory of ctxbuild.toml",
            );
        }
        Ok(PathBuf::from(s.trim_start_matches("./")))
    }

    fn rel_path(&self, p: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
        let s = p.get_ref();
        let path = Path::new(s);
        if s.is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return self.err(
                p.span(),
                format!("{what} `{s}` must be a relative path inside the repository"),
                "paths are relative to the directory of ctxbuild.toml, without `..`",
            );
        }
        Ok(s.trim_start_matches("./").trim_end_matches('/').to_string())
    }
}

/// Moves an error raised without a span to the service header.
fn relocate(e: ConfigError, pos: Pos) -> ConfigError {
    match e {
        ConfigError::Invalid {
            path,
            message,
            hint,
            ..
        } => ConfigError::Invalid {
            path,
            line: pos.line,
            column: pos.column,
            message,
            hint,
        },
        other => other,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// `module.sub:attr` with Python identifiers.
fn valid_app(s: &str) -> bool {
    fn ident(s: &str) -> bool {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    match s.split_once(':') {
        Some((module, attr)) => module.split('.').all(ident) && ident(attr),
        None => false,
    }
}

/// Parses `512Mi`, `1Gi`, `2G`, `512M` or plain bytes.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        _ => return None,
    };
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes.round() as u64)
}

/// Parses `"1"`, `"0.5"` or `"500m"`.
fn parse_cpu(s: &str) -> Option<f64> {
    let s = s.trim();
    match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
        None => s.parse().ok(),
    }
}

/// Formats bytes the way Cloud Run writes memory (`512Mi`, `4Gi`).
pub fn format_memory(bytes: u64) -> String {
    const GIB: u64 = 1024 * MIB;
    if bytes % GIB == 0 {
        format!("{}Gi", bytes / GIB)
    } else if bytes % MIB == 0 {
        format!("{}Mi", bytes / MIB)
    } else {
        format!("{bytes}")
    }
}

/// Turns toml's message into ours plus a hint: unknown keys suggest the closest known one.
fn explain_toml_error(message: &str) -> (String, Option<String>) {
    let first = message.lines().next().unwrap_or(message).trim().to_string();
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or("");
        let candidates: Vec<&str> = first
            .split("expected ")
            .nth(1)
            .map(|t| t.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let known = if candidates.is_empty() {
            [FILE_KEYS, SERVICE_KEYS, DEPLOY_KEYS].concat()
        } else {
            candidates.clone()
        };
        let hint = match closest(key, &known) {
            Some(s) => format!(
                "did you mean `{s}`? known keys here: {}",
                candidates.join(", ")
            ),
            None => format!("known keys here: {}", candidates.join(", ")),
        };
        return (format!("unknown key `{key}`"), Some(hint));
    }
    if let Some(rest) = first.strip_prefix("unknown variant `") {
        let v = rest.split('`').next().unwrap_or("");
        let hint = match closest(v, &["python-asgi", "node"]) {
            Some(s) => format!("did you mean `{s}`? kind is \"python-asgi\" or \"node\""),
            None => "kind is \"python-asgi\" or \"node\"".into(),
        };
        return (format!("unknown kind `{v}`"), Some(hint));
    }
    if first.starts_with("invalid type") {
        return (
            first,
            Some("see the Configuration section of the README for each key's type".into()),
        );
    }
    (first, None)
}

/// The known word nearest to `word` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Byte offset → line and column.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
    text: String,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            starts,
            text: text.to_string(),
        }
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = self
            .text
            .get(start..offset.min(self.text.len()))
            .map(|s| s.chars().count())
            .unwrap_or(0);
        Pos {
            line: line as u32,
            column: col as u32 + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        let n = |s: &str| normalize_lexically(Path::new(s)).display().to_string();
        assert_eq!(n("app/../outside/Dockerfile"), "outside/Dockerfile");
        assert_eq!(n("./a/./b/.."), "a");
        assert_eq!(n("../x/../../y"), "../../y");
        assert_eq!(n("/a/../../b"), "/b");
        assert_eq!(n("a/.."), ".");
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("ctxbuild.toml"), text)
    }

    fn invalid(text: &str) -> (u32, String, Option<String>) {
        match parse(text) {
            Err(e @ ConfigError::Invalid { .. }) => {
                let hint = e.hint();
                let ConfigError::Invalid { line, message, .. } = e else {
                    unreachable!()
                };
                (line, message, hint)
            }
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn builder_defaults_to_auto_and_refuses_unknown_names_at_their_line() {
        let base = "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.service("api").unwrap().builder, BuilderChoice::Auto);
        let c = parse(&format!("{base}builder = \"buildkit\"\n")).unwrap();
        assert_eq!(c.service("api").unwrap().builder, BuilderChoice::BuildKit);
        let (line, message, hint) = invalid(&format!("{base}builder = \"kit\"\n"));
        assert_eq!(line, 4);
        assert!(message.contains("unknown builder `kit`"), "{message}");
        assert!(hint.unwrap().contains("builder = \"auto\""));
    }

    #[test]
    fn minimal_service_gets_defaults() {
        let c = parse("[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\n").unwrap();
        let s = c.service("api").unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.workers, 2);
        assert_eq!(s.timeout, 300);
        assert_eq!(s.requirements, PathBuf::from("requirements.txt"));
        assert_eq!(s.context, PathBuf::from("."));
        assert_eq!(s.health_path, "/health");
        assert!(s.deploy.is_none());
        assert_eq!(
            s.pos("port").line,
            1,
            "a defaulted key points at the header"
        );
        assert_eq!(c.check, CheckSettings::default());
    }

    #[test]
    fn full_service_and_positions() {
        let text = r#"compose = ["compose.yaml"]

[services.backend]
kind = "python-asgi"
context = "./examples/backend/"
app = "app.main:app"
port = 8001
workers = 4
timeout = 120
system_packages = ["gcc", "musl-dev"]
base_image = { alpine = "python:3.12-alpine3.20" }

[services.backend.deploy]
cpu = "2000m"
memory = "1Gi"
request_timeout = 600
region = "europe-west1"

[check]
small_profile_memory = "1Gi"
small_profile_cpu = 1
ignore = ["base-image-tag"]
"#;
        let c = parse(text).unwrap();
        let s = c.service("backend").unwrap();
        assert_eq!(s.context, PathBuf::from("examples/backend"));
        assert_eq!(s.app.as_deref(), Some("app.main:app"));
        assert_eq!((s.port, s.workers, s.timeout), (8001, 4, 120));
        assert_eq!(s.system_packages, ["gcc", "musl-dev"]);
        assert_eq!(
            s.base_image.alpine.as_deref(),
            Some("python:3.12-alpine3.20")
        );
        let d = s.deploy.as_ref().unwrap();
        assert_eq!(d.cpu, 2.0);
        assert_eq!(d.memory, 1024 * MIB);
        assert_eq!(d.request_timeout, 600);
        assert_eq!(d.service, "backend");
        assert_eq!(s.deploy_port(), 8001);
        assert_eq!(s.pos("port").line, 7);
        assert_eq!(s.pos("deploy.memory").line, 15);
        assert_eq!(c.check.small_memory, 1024 * MIB);
        let ignored: Vec<&str> = c.check.ignore.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ignored, ["base-image-tag"]);
        assert_eq!(c.check.ignore[0].pos.line, 22);
        assert_eq!(c.compose, [PathBuf::from("compose.yaml")]);
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let (line, msg, hint) =
            invalid("[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\nprot = 8080\n");
        assert_eq!(line, 4);
        assert_eq!(msg, "unknown key `prot`");
        assert!(hint.unwrap().starts_with("did you mean `port`?"));
    }

    #[test]
    fn unknown_deploy_key_and_top_level_key() {
        let (line, msg, hint) =
            invalid("[services.api]\nkind = \"node\"\n[services.api.deploy]\nmemroy = \"1Gi\"\n");
        assert_eq!((line, msg.as_str()), (4, "unknown key `memroy`"));
        assert!(hint.unwrap().contains("`memory`"));
        let (line, msg, _) = invalid("servces = 1\n");
        assert_eq!((line, msg.as_str()), (1, "unknown key `servces`"));
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let base = "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\n";
        let (line, msg, hint) = invalid(&format!("{base}port = 70000\n"));
        assert_eq!(line, 4);
        assert!(msg.contains("port 70000"), "{msg}");
        assert!(hint.is_some());
        let (line, msg, _) = invalid(&format!("{base}workers = 0\n"));
        assert_eq!((line, msg.contains("workers")), (4, true));
        let (line, _, hint) = invalid(&format!("{base}port = \"eighty\"\n"));
        assert_eq!(line, 4);
        assert!(hint.is_some());
        let (line, msg, _) = invalid(&format!("{base}[services.api.deploy]\nmemory = \"lots\"\n"));
        assert_eq!((line, msg.contains("lots")), (5, true));
        let (line, msg, _) = invalid(&format!("{base}context = \"../elsewhere\"\n"));
        assert_eq!((line, msg.contains("relative path")), (4, true));
    }

    #[test]
    fn app_must_be_module_attr() {
        let (line, msg, hint) = invalid("[services.api]\nkind = \"python-asgi\"\napp = \"main\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("module:attr"));
        assert!(hint.unwrap().contains("main:app"));
    }

    #[test]
    fn missing_kind_or_app_points_at_the_header() {
        let (line, msg, _) = invalid("\n[services.api]\napp = \"main:app\"\n");
        assert_eq!((line, msg.contains("kind")), (2, true));
        let (line, msg, hint) = invalid("\n\n[services.api]\nkind = \"python-asgi\"\n");
        assert_eq!((line, msg.contains("app")), (3, true));
        assert!(hint.is_some());
    }

    #[test]
    fn unknown_kind_suggests() {
        let (line, msg, hint) = invalid("[services.api]\nkind = \"pyhton-asgi\"\n");
        assert_eq!(line, 2);
        assert_eq!(msg, "unknown kind `pyhton-asgi`");
        assert!(hint.unwrap().contains("`python-asgi`"));
    }

    #[test]
    fn unknown_service_suggests() {
        let c = parse("[services.backend]\nkind = \"node\"\n").unwrap();
        let e = c.service("backnd").unwrap_err();
        assert_eq!(e.to_string(), "no service `backnd` in ctxbuild.toml");
        assert!(e.hint().unwrap().contains("did you mean `backend`?"));
    }

    #[test]
    fn memory_and_cpu_units() {
        assert_eq!(parse_memory("512Mi"), Some(512 * MIB));
        assert_eq!(parse_memory("2Gi"), Some(2048 * MIB));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("12X"), None);
        assert_eq!(parse_memory(""), None);
        assert_eq!(parse_cpu("500m"), Some(0.5));
        assert_eq!(parse_cpu("2"), Some(2.0));
        assert_eq!(format_memory(512 * MIB), "512Mi");
        assert_eq!(format_memory(4096 * MIB), "4Gi");
    }

    #[test]
    fn line_index_counts_chars() {
        let li = LineIndex::new("ab\nçd\n");
        assert_eq!(li.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(li.pos(3), Pos { line: 2, column: 1 });
        assert_eq!(li.pos(5), Pos { line: 2, column: 2 });
    }

    #[test]
    fn dependencies_source_is_configurable() {
        let base = "[services.api]\nkind = \"python-asgi\"\napp = \"main:app\"\n";
        let c = Config::parse(Path::new("ctxbuild.toml"), base).unwrap();
        assert_eq!(c.services[0].dependencies, None);
        let c = Config::parse(
            Path::new("ctxbuild.toml"),
            &format!("{base}dependencies = \"uv\"\nhealth_path = \"/hz\"\n"),
        )
        .unwrap();
        assert_eq!(
            c.services[0].dependencies,
            Some(crate::python::DependencySource::Uv)
        );
        assert_eq!(c.services[0].pos("dependencies").line, 4);
        assert_eq!(c.services[0].pos("health_path").line, 5);
        let e = Config::parse(
            Path::new("ctxbuild.toml"),
            &format!("{base}dependencies = \"poetry\"\n"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("ctxbuild.toml:4:"), "{text}");
        assert!(text.contains("poetry"), "{text}");
    }
}
