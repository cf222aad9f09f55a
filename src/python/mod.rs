//! Python project analysis: what a FastAPI/Starlette project in a build context declares and
//! needs, read offline from its files. Every function here takes a context directory (or text)
//! and returns data; nothing prints, nothing installs, nothing runs.
//!
//! - [`requirements`]: the little of a pip requirements file ctxbuild needs (names, pins, extras).
//! - [`deps`]: the dependency source (`uv.lock` > `pyproject.toml` > requirements file) and the
//!   project's requirements.
//! - [`servers`]: which of gunicorn / uvicorn-worker / uvicorn the project installs, and the
//!   pinned ones the image must add.
//! - [`app`]: resolving `module:attr` and detecting ASGI app instances (for `check` and `init`).
//! - [`gunicorn`]: gunicorn's own configuration (`gunicorn.conf.py`, `GUNICORN_CMD_ARGS`).
//! - [`health`]: whether the source mentions a health path.
//! - [`scan`], [`files`]: the line-based Python reader and the bounded source walk they share.

pub mod app;
pub mod deps;
pub mod files;
pub mod gunicorn;
pub mod health;
pub mod requirements;
pub mod scan;
pub mod servers;

pub use deps::{analyse, Dependencies, DependencySource, DepsError, DepsSettings};
pub use servers::{Pin, Servers};

/// What the rendered template needs to know about a Python project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstallPlan {
    pub source: DependencySource,
    /// The requirements file (relative to the context) for the `requirements` source.
    pub requirements_file: Option<String>,
    /// Server packages the image adds, pinned (the project does not install them).
    pub servers: Vec<Pin>,
    /// Install the project itself after copying the code (a package `pyproject.toml`).
    pub install_project: bool,
}

impl InstallPlan {
    /// The plan for analysed dependencies.
    pub fn of(deps: &Dependencies) -> InstallPlan {
        InstallPlan {
            source: deps.source.clone(),
            requirements_file: deps
                .requirements_file
                .as_ref()
                .map(|p| p.to_string_lossy().replace('\\', "/")),
            servers: Servers::of(deps).missing(),
            install_project: deps.installs_project(),
        }
    }
}
