//! Services: `ctxbuild.toml` ([`config`]) and the embedded Dockerfile templates ([`render`]).
//! Reading the Python project itself (requirements, pyproject, the app) is [`crate::python`]'s.
//!
//! The API the `render`, `check` and `image` commands call:
//! [`Config::load`] → [`Config::service`] → [`render::render`] (Dockerfile text + template id)
//! and [`render::write_dockerignore`] / [`render::dockerignore`]; [`dockerfile::resolve`] is the
//! one rule for which Dockerfile a service builds.

pub mod config;
pub mod dockerfile;
pub mod render;

pub use config::{Config, ConfigError, Deploy, Kind, Service};
pub use render::{render, RenderError, Rendered, Variant};

use std::path::{Path, PathBuf};

/// The configuration file to use: `-c FILE` or `./ctxbuild.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_FILE))
}
