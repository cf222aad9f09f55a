//! ctxbuild: Docker build contexts done right.
//!
//! The library does the work and returns data; the binary (`main.rs` and `commands/`) parses,
//! prints and maps results to exit codes. Data flows one way:
//! walk → filter → clean | key → tar → engine → report.
//!
//! Module map (one concern per file):
//! - [`pathrules`]: Go's `path.Clean` / `path.Match` and moby's COPY source rules, once.
//! - [`context`]: the Docker-faithful model of a build context (`.dockerignore`, walk, entries).
//! - [`clean`]: removal of bytecode pollution.
//! - [`exit`], [`diagnostics`]: exit statuses and `error:` / `caused by:` / `hint:` rendering.
//! - [`config`]: global settings resolved once from the CLI and the environment.
//! - [`python`]: offline analysis of a Python project (dependencies, servers, app, gunicorn).

pub mod check;
pub mod clean;
pub mod config;
pub mod context;
pub mod diagnostics;
pub mod dockerfile;
pub mod engine;
pub mod exit;
pub mod fsutil;
pub mod key;
pub mod pathrules;
pub mod pollution;
pub mod printer;
pub mod progress;
pub mod python;
pub mod report;
pub mod service;
pub mod tarball;
