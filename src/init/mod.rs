//! `ctxbuild init`: what a repository holds that `ctxbuild.toml` should declare, found offline.
//!
//! [`detect`] walks the directory once (bounded: [`MAX_DEPTH`] levels, [`MAX_ENTRIES`] entries,
//! no symlinks followed, VCS/virtualenv/cache/test directories skipped by the same rule the
//! Python reader uses) and returns a [`Detection`]: the Python ASGI services (their context, the
//! app candidates of [`crate::python::app::detect`], the dependency source, an existing
//! Dockerfile, `gunicorn.conf.py`), the Node frontends (a `package.json` with a `build` script),
//! the compose files at the root, and the questions only the user can answer (two apps in one
//! context: the first is preselected, never silently). [`render_config`] turns it into a
//! commented `ctxbuild.toml`; [`write_config`] writes that file without ever replacing one.
//! Nothing here prints.

mod node;
mod render;
#[cfg(test)]
mod tests;
mod write;

pub use node::Frontend;
pub use render::render_config;
pub use write::{write_config, WriteError};

use crate::python::app::{self, Candidate};
use crate::python::{self, gunicorn, health, DependencySource, DepsSettings};
use crate::service::render::generated_by;
use crate::{fsutil, service};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How deep below the root a service context may be (`services/api` is 2).
pub const MAX_DEPTH: usize = 5;
/// Directory entries looked at before the walk stops (and says so).
pub const MAX_ENTRIES: usize = 20_000;
/// Service contexts examined at most.
pub const MAX_CONTEXTS: usize = 32;

/// Compose files looked for at the root, in the order docker compose prefers them.
pub const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Files whose directory is a Python service context candidate.
const PYTHON_MARKERS: &[&str] = &[
    python::deps::REQUIREMENTS,
    python::deps::PYPROJECT,
    python::deps::UV_LOCK,
];
/// The Dockerfile names the docker CLI picks up by default, preferred first.
const DOCKERFILES: &[&str] = &["Dockerfile", "dockerfile"];

/// Everything `init` found under a directory.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The directory examined, as given.
    pub root: PathBuf,
    /// `ctxbuild.toml` already exists there (`init` will not replace it).
    pub config_exists: bool,
    pub services: Vec<PythonService>,
    pub frontends: Vec<Frontend>,
    /// Compose files at the root.
    pub compose: Vec<PathBuf>,
    /// Some service context is a subdirectory of the root.
    pub monorepo: bool,
    /// What the user must decide; the generated file marks each with `# QUESTION:`.
    pub questions: Vec<Question>,
    /// Things found that are not services (a dependency file without an app, a walk limit hit).
    pub notes: Vec<String>,
}

/// A Python ASGI service.
#[derive(Debug, Clone, Serialize)]
pub struct PythonService {
    /// The service name written as `[services.NAME]`.
    pub name: String,
    /// The build context, relative to the root (`.` for the root itself).
    pub context: PathBuf,
    /// The app written as `app` (`module:attr`): the first candidate.
    pub app: String,
    /// Every ASGI app found in the context, launcher-named first.
    pub candidates: Vec<Candidate>,
    pub dependencies: Dependencies,
    /// A Dockerfile in the context; a hand-written one is written as the `dockerfile` key.
    pub dockerfile: Option<FoundDockerfile>,
    /// `gunicorn.conf.py` in the context (gunicorn reads it from its working directory).
    pub gunicorn_conf: Option<GunicornConf>,
    /// Where the source quotes `/health`, if anywhere.
    pub health_route: Option<health::Mention>,
}

/// How the service's dependencies are declared.
#[derive(Debug, Clone, Serialize)]
pub struct Dependencies {
    /// The source the image will use (detected, as `render` will detect it).
    pub source: DependencySource,
    /// The dependency files present, relative to the context.
    pub files: Vec<PathBuf>,
    /// Why the files could not be read, if they could not (`check` will say it again).
    pub error: Option<String>,
    /// The uv workspace the context is a member of, when its root lies above the context and
    /// the member depends on other packages of it (the template cannot build such a member:
    /// `check` says why).
    pub workspace: Option<python::deps::WorkspaceMember>,
}

/// A Dockerfile found in a context.
#[derive(Debug, Clone, Serialize)]
pub struct FoundDockerfile {
    /// Relative to the context (`Dockerfile` or `dockerfile`).
    pub path: PathBuf,
    /// Its first line says ctxbuild rendered it: the template stays the source of truth.
    pub generated: bool,
}

/// What `gunicorn.conf.py` sets that matters to an image.
#[derive(Debug, Clone, Serialize)]
pub struct GunicornConf {
    pub path: PathBuf,
    pub worker_class: Option<String>,
    pub bind: Vec<String>,
}

/// A choice `init` could not make for the user.
#[derive(Debug, Clone, Serialize)]
pub struct Question {
    /// The service the question is about.
    pub service: String,
    /// The `ctxbuild.toml` key it decides.
    pub key: String,
    pub question: String,
    /// The possible values, the preselected one first.
    pub choices: Vec<String>,
    /// The value written until the user changes it.
    pub chosen: String,
}

/// What kind of service a directory may hold.
#[derive(Debug, Default, Clone)]
struct Markers {
    python: bool,
    dockerfile: bool,
    package_json: bool,
}

/// Examines `dir` (see the module doc). Unreadable entries are skipped, never fatal.
pub fn detect(dir: &Path) -> Detection {
    let (markers, truncated) = walk(dir);
    let mut d = Detection {
        root: dir.to_path_buf(),
        config_exists: dir.join(service::config::DEFAULT_FILE).exists(),
        services: Vec::new(),
        frontends: Vec::new(),
        compose: COMPOSE_FILES
            .iter()
            .filter(|n| is_file(&dir.join(n)))
            .map(PathBuf::from)
            .collect(),
        monorepo: false,
        questions: Vec::new(),
        notes: Vec::new(),
    };
    if truncated {
        d.notes.push(format!(
            "stopped looking after {MAX_ENTRIES} entries or {MAX_DEPTH} levels; declare services below that by hand"
        ));
    }
    let contexts: Vec<&PathBuf> = markers.keys().collect();
    let mut names = Names::default();
    for (rel, m) in markers.iter().take(MAX_CONTEXTS) {
        let abs = dir.join(rel);
        if m.python || m.dockerfile || rel.as_os_str().is_empty() {
            // Apps under a nested context belong to that context.
            let nested: Vec<&PathBuf> = contexts
                .iter()
                .filter(|c| *c != &rel && c.starts_with(rel))
                .copied()
                .collect();
            let candidates: Vec<Candidate> = app::detect(&abs)
                .into_iter()
                .filter(|c| !nested.iter().any(|n| rel.join(&c.file).starts_with(n)))
                // Below the walk's depth the user was told to declare services by hand.
                .filter(|c| rel.join(&c.file).components().count() <= MAX_DEPTH + 1)
                .collect();
            if candidates.is_empty() {
                if m.python {
                    d.notes.push(format!(
                        "{}: dependency files but no module-level FastAPI()/Starlette() app",
                        shown(rel)
                    ));
                }
            } else {
                let name = names.claim(service_name(dir, rel));
                d.services.push(python_service(&abs, rel, name, candidates));
            }
        }
        if m.package_json {
            if let Some(mut f) = node::frontend(&abs, rel, &mut d.notes) {
                f.name = names.claim(service_name(dir, rel));
                d.frontends.push(f);
            }
        }
    }
    if markers.len() > MAX_CONTEXTS {
        d.notes.push(format!(
            "only the first {MAX_CONTEXTS} candidate directories were examined"
        ));
    }
    for s in &d.services {
        if s.candidates.len() > 1 {
            d.questions.push(Question {
                service: s.name.clone(),
                key: "app".into(),
                question: format!(
                    "{} ASGI apps in {}: which one does service `{}` serve?",
                    s.candidates.len(),
                    shown(&s.context),
                    s.name
                ),
                choices: s.candidates.iter().map(|c| c.app.to_string()).collect(),
                chosen: s.app.clone(),
            });
        }
    }
    d.monorepo = d
        .services
        .iter()
        .map(|s| &s.context)
        .chain(d.frontends.iter().map(|f| &f.context))
        .any(|c| c != Path::new("."));
    d
}

/// The directories holding marker files, relative to `dir` (`""` is the root, always present),
/// and whether a limit stopped the walk.
fn walk(dir: &Path) -> (BTreeMap<PathBuf, Markers>, bool) {
    let mut out: BTreeMap<PathBuf, Markers> = BTreeMap::new();
    out.insert(PathBuf::new(), Markers::default());
    let mut truncated = false;
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .max_depth(MAX_DEPTH + 1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !python::files::skip_dir(e.path(), &e.file_name().to_string_lossy())
        });
    for (n, entry) in walker.enumerate() {
        if n >= MAX_ENTRIES {
            truncated = true;
            break;
        }
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            // A directory at the depth limit may hold services the walk will not see.
            truncated |= entry.depth() == MAX_DEPTH + 1;
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let python = PYTHON_MARKERS.contains(&name.as_ref());
        let dockerfile = DOCKERFILES.contains(&name.as_ref());
        let package_json = name == "package.json";
        if !(python || dockerfile || package_json) || !entry.file_type().is_file() {
            continue;
        }
        let Some(rel) = entry.path().parent().and_then(|p| p.strip_prefix(dir).ok()) else {
            continue;
        };
        // A context path must be writable in TOML.
        if rel.to_str().is_none() {
            continue;
        }
        let m = out.entry(rel.to_path_buf()).or_default();
        m.python |= python;
        m.dockerfile |= dockerfile;
        m.package_json |= package_json;
    }
    (out, truncated)
}

fn python_service(
    abs: &Path,
    rel: &Path,
    name: String,
    candidates: Vec<Candidate>,
) -> PythonService {
    let dependencies = match python::analyse(abs, &DepsSettings::default()) {
        Ok(deps) => {
            let f = &deps.found;
            let files = [
                (f.uv_lock, python::deps::UV_LOCK),
                (f.pyproject, python::deps::PYPROJECT),
                (f.requirements, python::deps::REQUIREMENTS),
            ]
            .iter()
            .filter(|(present, _)| *present)
            .map(|(_, n)| PathBuf::from(n))
            .collect();
            Dependencies {
                source: deps.source,
                files,
                error: None,
                workspace: workspace_member(abs, rel),
            }
        }
        Err(e) => Dependencies {
            source: DependencySource::None,
            files: Vec::new(),
            error: Some(e.to_string()),
            workspace: workspace_member(abs, rel),
        },
    };
    let dockerfile = DOCKERFILES
        .iter()
        .find(|n| is_file_named(abs, n))
        .map(|n| FoundDockerfile {
            path: PathBuf::from(n),
            generated: fsutil::read_limited(&abs.join(n), fsutil::TEXT_LIMIT)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .is_some_and(|t| generated_by(&t).is_some()),
        });
    let gunicorn_conf = gunicorn::config_file(abs, Path::new(""), None)
        .ok()
        .flatten()
        .map(|s| GunicornConf {
            path: PathBuf::from(gunicorn::DEFAULT_CONFIG),
            worker_class: s.worker_class.map(|w| w.value.text()),
            bind: s.bind.iter().map(|b| b.value.text()).collect(),
        });
    PythonService {
        name,
        context: if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        },
        app: candidates[0].app.to_string(),
        candidates,
        dependencies,
        dockerfile,
        gunicorn_conf,
        health_route: health::find_mention(abs, "/health"),
    }
}

/// The uv workspace the context `abs` (`rel` under the directory being initialised) is a
/// member of, its root shown relative to that directory when inside it.
fn workspace_member(abs: &Path, rel: &Path) -> Option<python::deps::WorkspaceMember> {
    // Only a member the template cannot build: one that depends on its siblings.
    let mut w = python::deps::workspace_member(abs).filter(|w| !w.workspace_deps.is_empty())?;
    let top = std::fs::canonicalize(abs)
        .ok()?
        .ancestors()
        .nth(rel.components().count())?
        .to_path_buf();
    if let Ok(r) = w.root.strip_prefix(&top) {
        w.root = if r.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            r.to_path_buf()
        };
    }
    Some(w)
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// `dir/name` exists under exactly that name: on a case-insensitive filesystem `Dockerfile`
/// would also open `dockerfile`, so the directory listing decides.
fn is_file_named(dir: &Path, name: &str) -> bool {
    is_file(&dir.join(name))
        && std::fs::read_dir(dir)
            .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.file_name() == name)))
}

/// A context as shown to people: `.` for the root.
pub fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// The name of the service in `rel`: its directory's name (the root's own name for the root),
/// made a valid `ctxbuild.toml` service name.
fn service_name(root: &Path, rel: &Path) -> String {
    let dir = if rel.as_os_str().is_empty() {
        std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
    } else {
        rel.to_path_buf()
    };
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches('-')
        .to_string();
    if name.is_empty() {
        "app".into()
    } else {
        name
    }
}

/// Service names handed out so far; a second `api` becomes `api-2`.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn claim(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.0.push(name.clone());
        name
    }
}
