//! Writing the generated `ctxbuild.toml`, never over an existing one.
//!
//! The name is claimed first with create-new semantics (`O_CREAT|O_EXCL|O_NOFOLLOW`): an
//! existing file, a directory or even a dangling symlink there makes it fail, so two `init`s
//! racing (or a user saving the file meanwhile) cannot clobber anything. The text then goes in
//! through [`fsutil::write_atomic`], which renames a complete file over the empty placeholder
//! this process owns, so a reader never sees half a file.

use crate::diagnostics::Diagnose;
use crate::fsutil;
use crate::service::config::DEFAULT_FILE;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the configuration was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} already exists; init never overwrites it", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Diagnose for WriteError {
    fn hint(&self) -> Option<String> {
        match self {
            WriteError::Exists { .. } => Some(
                "edit it by hand, or run `ctxbuild init --print` to see what init would write"
                    .into(),
            ),
            WriteError::Io { .. } => None,
        }
    }
}

/// Writes `text` as `dir/ctxbuild.toml` unless something already has that name; returns the
/// path written.
pub fn write_config(dir: &Path, text: &str) -> Result<PathBuf, WriteError> {
    let path = dir.join(DEFAULT_FILE);
    let io_err = |source| WriteError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(WriteError::Exists { path })
        }
        Err(e) => return Err(io_err(e)),
    }
    if let Err(e) = fsutil::write_atomic(&path, text.as_bytes()) {
        // The placeholder is ours and empty; leave nothing half-made behind.
        let _ = std::fs::remove_file(&path);
        return Err(io_err(e));
    }
    Ok(path)
}
