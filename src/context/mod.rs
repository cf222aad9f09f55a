//! The Docker-faithful model of a build context.
//!
//! Given a context directory and a Dockerfile, [`scan`] returns the sorted entries Docker's
//! classic builder would see in `COPY . /dst/`, applying `.dockerignore` exactly as the Docker CLI
//! does. This module never removes, hashes or prints anything.

pub mod dockerignore;
pub mod entry;

pub use entry::{Entry, EntryKind, StatInfo};

use std::path::PathBuf;

/// What to scan.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// The context root.
    pub root: PathBuf,
    /// The Dockerfile; `None` means `<root>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// Honour BuildKit's `<Dockerfile>.dockerignore` next to the Dockerfile.
    pub buildkit: bool,
    /// Walker threads.
    pub threads: usize,
}

/// The context as Docker sees it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The canonical context root.
    pub root: PathBuf,
    /// Every entry visible to `COPY . /dst/` (files, symlinks, directories), sorted by path bytes.
    pub entries: Vec<Entry>,
}

/// Why a context could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("scanning build contexts is not implemented yet")]
    NotImplemented,
}

impl crate::diagnostics::Diagnose for ContextError {}

/// Scans a context. Not implemented yet.
pub fn scan(_opts: &ContextOptions) -> Result<Context, ContextError> {
    Err(ContextError::NotImplemented)
}
