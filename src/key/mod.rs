//! Cache keys: the content manifest of a context, the stat cache that makes re-keying cheap,
//! per-step keys that predict the classic builder's layer cache or BuildKit's (`buildkit`: what
//! BuildKit hashes where it differs), and the diff that explains a miss.
//!
//! Pipeline position: after `context` (which decides what Docker sees), before `tarball` and
//! `engine`. Boundary: returns data; never prints, never talks to Docker, reads only the files
//! it hashes and its own stat-cache file.
//!
//! Typical use:
//! ```no_run
//! # fn f(ctx: &ctxbuild::context::Context, text: &str) -> anyhow::Result<()> {
//! use ctxbuild::key;
//! let df = ctxbuild::dockerfile::parse(text, "Dockerfile")?;
//! let (manifest, _stats) = key::manifest::build(&ctx.root, &ctx.entries, None)?;
//! let plan = key::plan(&df, &manifest, &key::PlanOptions::default())?;
//! # Ok(()) }
//! ```

pub mod buildkit;
pub mod compute;
pub mod diff;
pub mod manifest;
pub mod plan;
pub mod sources;
pub mod statcache;
pub mod store;
#[cfg(test)]
mod testutil;

pub use diff::{
    explain, reason_text, Explanation, FileChange, FileDiff, MissReason, StepVerdict, Verdict,
};
pub use manifest::{Manifest, ManifestEntry, ManifestStats};
pub use plan::{plan, Plan, PlanError, PlanOptions, PlanStep};
pub use statcache::StatCache;

use std::path::PathBuf;

/// Why a context could not be keyed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// Relative to the context root.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::diagnostics::Diagnose for KeyError {
    fn hint(&self) -> Option<String> {
        match self {
            KeyError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Some("docker build would fail on this file too: fix its permissions or add it to .dockerignore".into())
            }
            _ => None,
        }
    }
}
