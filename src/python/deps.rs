//! Where a Python project declares its dependencies, and what they are.
//!
//! Three sources, chosen automatically in this order unless `ctxbuild.toml` says otherwise:
//! `uv.lock` (installed exactly with `uv sync --frozen`), `pyproject.toml` with PEP 621
//! `[project] dependencies`, then the requirements file. [`analyse`] reads only those files,
//! through [`crate::fsutil`]'s bounded reads, and returns data; it never installs or prints.

use crate::fsutil::{self, ReadError};
use crate::python::requirements::{self, Requirement};
use std::path::{Path, PathBuf};

/// How the image installs the project's dependencies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencySource {
    /// `uv.lock` + `pyproject.toml`: `uv sync --frozen --no-dev`.
    Uv,
    /// `pyproject.toml` `[project] dependencies`, installed with pip.
    Pyproject,
    /// A pip requirements file (relative to the context).
    Requirements,
    /// Nothing but the server.
    None,
}

impl DependencySource {
    pub fn as_str(&self) -> &'static str {
        match self {
            DependencySource::Uv => "uv",
            DependencySource::Pyproject => "pyproject",
            DependencySource::Requirements => "requirements",
            DependencySource::None => "none",
        }
    }
}

/// What `pyproject.toml` says that matters to an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pyproject {
    /// `[project] name`.
    pub name: Option<String>,
    /// `[project] dependencies`, parsed.
    pub dependencies: Vec<Requirement>,
    /// `dependencies` is listed in `[project] dynamic` (only a build of the project knows them).
    pub dynamic_dependencies: bool,
    /// Whether installing the project installs a package (a `[build-system]` table, unless
    /// `[tool.uv] package = false`, which is uv's own rule).
    pub is_package: bool,
    /// `[project] requires-python`.
    pub requires_python: Option<String>,
}

/// A package pinned in `uv.lock`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Locked {
    /// PEP 503-normalised name.
    pub name: String,
    pub version: Option<String>,
}

/// The dependency files of a context and the source chosen among them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dependencies {
    pub source: DependencySource,
    /// Whether the source was chosen by the configuration rather than detected.
    pub configured: bool,
    /// The requirements file (relative to the context) when the source is `requirements`.
    pub requirements_file: Option<PathBuf>,
    /// The project's direct requirements from the chosen source (for `uv`: `pyproject.toml`'s).
    pub direct: Vec<Requirement>,
    /// Every package of `uv.lock` (empty unless the source is `uv`).
    pub locked: Vec<Locked>,
    /// `pyproject.toml`, when the context has one.
    pub pyproject: Option<Pyproject>,
    /// Which of the candidate files exist (for `init` and messages).
    pub found: Found,
}

/// Which dependency files exist in the context.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub uv_lock: bool,
    pub pyproject: bool,
    pub requirements: bool,
}

impl Dependencies {
    /// Whether the image should install the project itself after copying the code.
    pub fn installs_project(&self) -> bool {
        matches!(
            self.source,
            DependencySource::Uv | DependencySource::Pyproject
        ) && self.pyproject.as_ref().is_some_and(|p| p.is_package)
    }
}

/// Why the dependency files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "the dependency source `{source_name}` needs {missing}, which the context does not have"
    )]
    Missing {
        source_name: &'static str,
        missing: String,
    },
}

/// What the configuration says about dependencies.
#[derive(Debug, Clone, Default)]
pub struct DepsSettings {
    /// `dependencies = "…"`, if set.
    pub source: Option<DependencySource>,
    /// The `requirements` path (relative to the context).
    pub requirements: Option<PathBuf>,
    /// Whether `requirements` was written in the file (an explicit choice of that source).
    pub requirements_configured: bool,
}

pub const UV_LOCK: &str = "uv.lock";
pub const PYPROJECT: &str = "pyproject.toml";
pub const REQUIREMENTS: &str = "requirements.txt";

/// Finds the dependency files of `context` and chooses the source (see the module doc):
/// an explicit `dependencies` wins, then an explicitly configured `requirements` file, then
/// `uv.lock` > `pyproject.toml` with dependencies > the requirements file > none.
pub fn analyse(context: &Path, settings: &DepsSettings) -> Result<Dependencies, DepsError> {
    let req_rel = settings
        .requirements
        .clone()
        .unwrap_or_else(|| PathBuf::from(REQUIREMENTS));
    let found = Found {
        uv_lock: is_file(&context.join(UV_LOCK)),
        pyproject: is_file(&context.join(PYPROJECT)),
        requirements: is_file(&context.join(&req_rel)),
    };
    let pyproject = if found.pyproject {
        Some(parse_pyproject(
            &fsutil::read_text(&context.join(PYPROJECT))?,
            PYPROJECT,
        )?)
    } else {
        None
    };
    let pyproject_has_deps = pyproject
        .as_ref()
        .is_some_and(|p| !p.dependencies.is_empty() || p.dynamic_dependencies);
    let (source, configured) = match &settings.source {
        Some(s) => (s.clone(), true),
        None if settings.requirements_configured => (DependencySource::Requirements, true),
        None if found.uv_lock && found.pyproject => (DependencySource::Uv, false),
        None if pyproject_has_deps => (DependencySource::Pyproject, false),
        None if found.requirements => (DependencySource::Requirements, false),
        // A package with no dependencies is still worth installing.
        None if pyproject.as_ref().is_some_and(|p| p.is_package) => {
            (DependencySource::Pyproject, false)
        }
        None => (DependencySource::None, false),
    };
    let missing = |source_name, missing: &str| DepsError::Missing {
        source_name,
        missing: missing.to_string(),
    };
    let mut deps = Dependencies {
        source: source.clone(),
        configured,
        requirements_file: None,
        direct: Vec::new(),
        locked: Vec::new(),
        pyproject: pyproject.clone(),
        found: found.clone(),
    };
    match source {
        DependencySource::Uv => {
            if !found.pyproject || !found.uv_lock {
                return Err(missing("uv", "pyproject.toml and uv.lock"));
            }
            deps.locked = parse_uv_lock(&fsutil::read_text(&context.join(UV_LOCK))?, UV_LOCK)?;
            deps.direct = pyproject.map(|p| p.dependencies).unwrap_or_default();
        }
        DependencySource::Pyproject => {
            let p = pyproject.ok_or_else(|| missing("pyproject", "pyproject.toml"))?;
            deps.direct = p.dependencies;
        }
        DependencySource::Requirements => {
            let text = fsutil::read_text(&context.join(&req_rel))?;
            deps.direct = requirements::parse(&text);
            deps.requirements_file = Some(req_rel);
        }
        DependencySource::None => {}
    }
    Ok(deps)
}

/// A context that is a member of a uv workspace whose root, and lock, lie above it: the
/// template builds the context alone, so a sibling workspace package the member depends on
/// cannot be installed (pip would ask PyPI for it, and fail or install an unrelated package of
/// that name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkspaceMember {
    /// The workspace root: the directory of its `pyproject.toml` and `uv.lock`.
    pub root: PathBuf,
    /// The member's name, as `uv.lock` has it.
    pub name: String,
    /// The member's directory relative to the root, as `uv.lock` has it.
    pub dir: String,
    /// The line of `[tool.uv.workspace]` in the root's `pyproject.toml`.
    pub line: usize,
    /// Other workspace packages the member depends on, as `uv.lock` has them.
    pub workspace_deps: Vec<String>,
}

/// How far up [`workspace_member`] looks for the workspace root.
const WORKSPACE_LEVELS: usize = 16;

/// The uv workspace `context` is a member of, when its root lies above it: the nearest
/// ancestor with a `uv.lock` (uv's own rule: the lock is at the workspace root) whose
/// `pyproject.toml` has `[tool.uv.workspace]` and whose lock lists `context` as a member.
/// `None` when `context` has its own `uv.lock` (it is a root itself), when the walk reaches a
/// repository's top (`.git`) or the filesystem's without one, or when the lock does not list
/// the context (a stale lock is uv's error to report, not a guess to make here).
pub fn workspace_member(context: &Path) -> Option<WorkspaceMember> {
    if is_file(&context.join(UV_LOCK)) || !is_file(&context.join(PYPROJECT)) {
        return None;
    }
    let context = std::fs::canonicalize(context).ok()?;
    for root in context.ancestors().skip(1).take(WORKSPACE_LEVELS) {
        let lock = root.join(UV_LOCK);
        if is_file(&lock) {
            let text = fsutil::read_text(&root.join(PYPROJECT)).ok()?;
            let doc: toml::Table = toml::from_str(&text).ok()?;
            doc.get("tool")?.get("uv")?.get("workspace")?;
            // The table's header; `workspace = { … }` inline under `[tool.uv]` otherwise.
            let line = text
                .find("[tool.uv.workspace]")
                .or_else(|| text.find("[tool.uv]"))
                .map_or(1, |o| line_of(&text, o));
            let rel = context.strip_prefix(root).ok()?;
            let lock: toml::Table = toml::from_str(&fsutil::read_text(&lock).ok()?).ok()?;
            let packages = lock.get("package")?.as_array()?;
            // `[manifest] members` names the workspace's members (the root included); a lock
            // without it (one member, an older uv) counts the editable and virtual sources. A
            // `directory` source or a path dependency outside the list is not a member.
            let members: Option<Vec<&str>> = lock
                .get("manifest")
                .and_then(|m| m.get("members"))
                .and_then(|m| m.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect());
            fn name_of(p: &toml::Value) -> Option<&str> {
                p.get("name")?.as_str()
            }
            let member_dir = |p: &toml::Value| {
                let source = p.get("source")?;
                let dir = ["editable", "virtual"]
                    .iter()
                    .find_map(|k| source.get(k)?.as_str())?;
                match &members {
                    Some(list) if !list.contains(&name_of(p)?) => None,
                    _ => Some(dir.to_string()),
                }
            };
            let member = packages.iter().find(|p| {
                member_dir(p).is_some_and(|d| Path::new(&d).components().eq(rel.components()))
            })?;
            let name = name_of(member)?.to_string();
            // Its dependencies that are other members of the workspace (the root, `.`, aside).
            let siblings: Vec<&str> = packages
                .iter()
                .filter(|p| member_dir(p).is_some_and(|d| d != "."))
                .filter_map(name_of)
                .collect();
            let workspace_deps = member
                .get("dependencies")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| d.get("name")?.as_str())
                .filter(|n| siblings.contains(n) && *n != name)
                .map(str::to_string)
                .collect();
            return Some(WorkspaceMember {
                root: root.to_path_buf(),
                name,
                dir: rel.display().to_string(),
                line,
                workspace_deps,
            });
        }
        if root.join(".git").exists() {
            break;
        }
    }
    None
}

/// Present as anything but a directory: a FIFO or device named `requirements.txt` counts as
/// found, so reading it fails with "is a FIFO, not a regular file" instead of "not found".
fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_dir())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn toml_error(path: &str, text: &str, e: toml::de::Error) -> DepsError {
    DepsError::Invalid {
        path: path.to_string(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().trim().to_string(),
    }
}

/// Parses `pyproject.toml` text (`path` names it in errors).
pub fn parse_pyproject(text: &str, path: &str) -> Result<Pyproject, DepsError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let project = doc.get("project").and_then(|v| v.as_table());
    let str_at = |key: &str| {
        project
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let mut dependencies = Vec::new();
    if let Some(list) = project.and_then(|p| p.get("dependencies")) {
        let Some(list) = list.as_array() else {
            return Err(DepsError::Invalid {
                path: path.to_string(),
                line: text
                    .find("dependencies")
                    .map(|o| line_of(text, o))
                    .unwrap_or(1),
                message: "`[project] dependencies` must be an array of requirement strings".into(),
            });
        };
        for item in list {
            let s = item.as_str().unwrap_or_default();
            let line = text.find(s).map(|o| line_of(text, o)).unwrap_or(0);
            if let Some(r) = requirements::parse_line(s, line) {
                dependencies.push(r);
            }
        }
    }
    let dynamic_dependencies = project
        .and_then(|p| p.get("dynamic"))
        .and_then(|v| v.as_array())
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("dependencies")));
    let uv_package = doc
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.get("package"))
        .and_then(|p| p.as_bool());
    let is_package = uv_package.unwrap_or_else(|| doc.contains_key("build-system"));
    Ok(Pyproject {
        name: str_at("name"),
        dependencies,
        dynamic_dependencies,
        is_package,
        requires_python: str_at("requires-python"),
    })
}

/// Parses `uv.lock` text: every `[[package]]`'s name and version.
pub fn parse_uv_lock(text: &str, path: &str) -> Result<Vec<Locked>, DepsError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let mut out: Vec<Locked> = doc
        .get("package")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let name = p.get("name")?.as_str()?;
                    Some(Locked {
                        name: requirements::normalize(name),
                        version: p
                            .get("version")
                            .and_then(|v| v.as_str())
                            .map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "[project]\nname = \"mono\"\nversion = \"0\"\n\n[tool.uv.workspace]\nmembers = [\"svc/*\", \"lib\"]\n";
    const MEMBER: &str =
        "[project]\nname = \"api\"\nversion = \"0\"\ndependencies = [\"fastapi\"]\n";
    const LOCK: &str = r#"version = 1

[manifest]
members = ["api", "lib", "mono"]

[[package]]
name = "api"
version = "0"
source = { virtual = "svc/api" }
dependencies = [{ name = "fastapi" }, { name = "lib" }, { name = "vendored" }]

[[package]]
name = "vendored"
version = "0"
source = { editable = "vendor/pkg" }

[[package]]
name = "lib"
version = "0"
source = { editable = "lib" }

[[package]]
name = "fastapi"
version = "1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "mono"
version = "0"
source = { virtual = "." }
dependencies = [{ name = "api" }]
"#;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn a_member_is_found_through_the_lock_above_it() {
        let d = tree(&[
            ("pyproject.toml", ROOT),
            ("uv.lock", LOCK),
            ("svc/api/pyproject.toml", MEMBER),
            ("lib/pyproject.toml", "[project]\nname = \"lib\"\n"),
        ]);
        let m = workspace_member(&d.path().join("svc/api")).expect("a member");
        assert_eq!(m.root, std::fs::canonicalize(d.path()).unwrap());
        assert_eq!(
            (m.name.as_str(), m.dir.as_str(), m.line),
            ("api", "svc/api", 5)
        );
        // `mono` (the root, `.`), the registry's fastapi and `vendored` (a path dependency,
        // not in `[manifest] members`) are not workspace packages.
        assert_eq!(m.workspace_deps, ["lib"]);
        assert_eq!(
            workspace_member(&d.path().join("lib"))
                .unwrap()
                .workspace_deps,
            [] as [String; 0]
        );
        // The root itself has its lock: not a member above anything.
        assert_eq!(workspace_member(d.path()), None);
        // A path dependency's directory is not a member.
        std::fs::create_dir_all(d.path().join("vendor/pkg")).unwrap();
        std::fs::write(d.path().join("vendor/pkg/pyproject.toml"), MEMBER).unwrap();
        assert_eq!(workspace_member(&d.path().join("vendor/pkg")), None);
        // Without `[manifest]` (one member, an older uv), editable and virtual sources count.
        let lock = LOCK.replace("[manifest]\nmembers = [\"api\", \"lib\", \"mono\"]\n", "");
        std::fs::write(d.path().join("uv.lock"), lock).unwrap();
        assert_eq!(
            workspace_member(&d.path().join("svc/api"))
                .unwrap()
                .workspace_deps,
            ["lib", "vendored"]
        );
    }

    #[test]
    fn no_member_without_a_workspace_that_locks_it() {
        // A directory the lock does not list (a stale lock, an excluded directory).
        let d = tree(&[
            ("pyproject.toml", ROOT),
            ("uv.lock", LOCK),
            ("svc/other/pyproject.toml", MEMBER),
        ]);
        assert_eq!(workspace_member(&d.path().join("svc/other")), None);
        // A lock above without `[tool.uv.workspace]`: a project, not a workspace.
        let d = tree(&[
            ("pyproject.toml", "[project]\nname = \"mono\"\n"),
            ("uv.lock", LOCK),
            ("svc/api/pyproject.toml", MEMBER),
        ]);
        assert_eq!(workspace_member(&d.path().join("svc/api")), None);
        // The member's own lock makes it a root of its own.
        let d = tree(&[
            ("pyproject.toml", ROOT),
            ("uv.lock", LOCK),
            ("svc/api/pyproject.toml", MEMBER),
            ("svc/api/uv.lock", "version = 1\n"),
        ]);
        assert_eq!(workspace_member(&d.path().join("svc/api")), None);
        // The walk stops at a repository's top: a workspace above the checkout is not its.
        let d = tree(&[
            ("pyproject.toml", ROOT),
            ("uv.lock", LOCK),
            ("svc/api/pyproject.toml", MEMBER),
        ]);
        std::fs::create_dir(d.path().join("svc/.git")).unwrap();
        assert_eq!(workspace_member(&d.path().join("svc/api")), None);
    }
}
