//! ctxbuild: Docker build contexts done right.
//!
//! The library owns every use case and returns data; the binary (`main.rs`, `cli.rs`,
//! `commands/`, `ui/`) parses, prints and maps results to exit codes. Data flows one way:
//! walk → filter → clean | key → tar → engine → report.
//!
//! Module map (one concern per file):
//! - [`pathrules`]: Go's `path.Clean` / `path.Match` and moby's COPY source rules, once.
//! - [`context`]: the Docker-faithful model of a build context (`.dockerignore`, walk, entries).
//! - [`pollution`]: what bytecode pollution is; [`keep_out`]: `image`'s filter that keeps it out.
//! - [`clean`]: removal of bytecode pollution.
//! - [`key`]: manifests, per-step cache keys, the diff that explains a miss, saved plans.
//! - [`image`]: the `image` use case ([`image::build`]), streaming [`events`] into a sink.
//! - [`smoke`]: the `smoke` use case ([`smoke::smoke`]): run an image under its Cloud Run limits
//!   and measure readiness, memory, exits and sockets.
//! - [`diagnostics`]: error classes and hints (the binary renders them).
//! - [`config`]: settings resolved once by the binary and passed in (threads, pool, cache).
//! - [`python`]: offline analysis of a Python project (dependencies, servers, app, gunicorn).
//! - [`cloudbuild`]: a Cloud Build config generated from `ctxbuild.toml`, and its schema check.
//! - [`init`]: what a repository holds that `ctxbuild.toml` should declare, and that file.

pub mod buildargs;
pub mod builder;
pub mod check;
pub mod clean;
pub mod cloudbuild;
pub mod config;
pub mod context;
pub mod diagnostics;
pub mod dockerfile;
pub mod engine;
pub mod events;
pub mod fsutil;
pub mod image;
pub mod init;
pub mod keep_out;
pub mod key;
pub mod pathrules;
pub mod pollution;
pub mod python;
pub mod report;
pub mod secrets;
pub mod service;
pub mod smoke;
pub mod tarball;
