//! Settings every use case receives, resolved once by the binary and passed explicitly: the
//! worker-thread count and the one rayon pool built from it, ctxbuild's cache directory, and
//! the tar mtime (`SOURCE_DATE_EPOCH`).
//!
//! No stage reads these from the environment itself; presentation (colour, progress, verbosity)
//! is the binary's and never reaches the library.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker threads for walking, hashing and removing.
    pub threads: NonZeroUsize,
    /// The pool every parallel stage runs on (hashing, keying), built with `threads` threads.
    pub pool: Arc<rayon::ThreadPool>,
    /// ctxbuild's cache directory (stat caches, saved plans), when there is one.
    pub cache_dir: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH` as read: the mtime of tar entries, or why the value is invalid.
    pub source_date_epoch: Result<Option<u64>, String>,
}

impl Settings {
    /// Builds the pool for `threads` workers.
    pub fn new(
        threads: NonZeroUsize,
        cache_dir: Option<PathBuf>,
        source_date_epoch: Result<Option<u64>, String>,
    ) -> anyhow::Result<Settings> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.get())
            // The whole command runs on a pool thread (see main): give it a main-thread stack.
            .stack_size(8 << 20)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start {threads} worker threads: {e}"))?;
        Ok(Settings {
            threads,
            pool: Arc::new(pool),
            cache_dir,
            source_date_epoch,
        })
    }

    /// Settings from the process environment with `threads` workers (tests, library callers).
    pub fn from_env(threads: Option<NonZeroUsize>) -> anyhow::Result<Settings> {
        let threads = threads.unwrap_or_else(default_threads);
        let sde = std::env::var("SOURCE_DATE_EPOCH").ok();
        Settings::new(
            threads,
            cache_root(),
            crate::fsutil::source_date_epoch(sde.as_deref()),
        )
    }

    /// The mtime of every tar entry: `SOURCE_DATE_EPOCH`, or 0 when unset.
    pub fn mtime(&self) -> anyhow::Result<u64> {
        match &self.source_date_epoch {
            Ok(v) => Ok(v.unwrap_or(0)),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// The cache directory for things a build needs to keep (saved plans): the configured one,
    /// else a private one in the temporary directory (see [`private_temp_dir`]).
    pub fn build_cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(private_temp_dir)
    }
}

/// `$TMPDIR/ctxbuild-<uid>`, created mode 0700. The temporary directory is shared: a directory
/// of that name that is a symbolic link, another user's, or open to others could hold planted
/// plans and no-op records (or read this user's, which hold `--build-arg` values), so then a
/// fresh private directory is made instead (`ctxbuild-<uid>-<pid>-<n>`), used for this run only.
fn private_temp_dir() -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = unsafe { libc::geteuid() };
    let base = std::env::temp_dir();
    let private = |dir: &std::path::Path| {
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
    };
    let shared = base.join(format!("ctxbuild-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&shared);
    if private(&shared) {
        return shared;
    }
    for n in 0..100u32 {
        let fresh = base.join(format!("ctxbuild-{uid}-{}-{n}", std::process::id()));
        if std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&fresh)
            .is_ok()
            && private(&fresh)
        {
            return fresh;
        }
    }
    shared
}

/// The number of CPUs (2 when unknown).
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN.saturating_add(1))
}

/// ctxbuild's cache directory (stat caches, saved build plans): `$CTXBUILD_CACHE_DIR` when set
/// and not empty, else the user cache directory's `ctxbuild/`; `None` when neither exists.
pub fn cache_root() -> Option<PathBuf> {
    std::env::var_os("CTXBUILD_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("ctxbuild")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_cache_is_private_to_its_user() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let uid = unsafe { libc::geteuid() };
        let dir = private_temp_dir();
        let m = std::fs::symlink_metadata(&dir).unwrap();
        assert!(
            m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0,
            "{dir:?}"
        );
        // Opened to others (as another user's planted directory would be): not used.
        let shared = std::env::temp_dir().join(format!("ctxbuild-{uid}"));
        if dir == shared {
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
            let other = private_temp_dir();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert_ne!(other, shared);
            let m = std::fs::symlink_metadata(&other).unwrap();
            assert!(m.mode() & 0o077 == 0);
            std::fs::remove_dir(&other).unwrap();
        }
    }

    #[test]
    fn the_pool_has_the_threads_asked_for() {
        let one = Settings::new(NonZeroUsize::MIN, None, Ok(None)).unwrap();
        assert_eq!(one.pool.install(rayon::current_num_threads), 1);
        let three = Settings::new(NonZeroUsize::new(3).unwrap(), None, Ok(Some(7))).unwrap();
        assert_eq!(three.pool.install(rayon::current_num_threads), 3);
        assert_eq!(three.mtime().unwrap(), 7);
        let bad = Settings::new(NonZeroUsize::MIN, None, Err("bad".into())).unwrap();
        assert!(bad.mtime().is_err());
    }
}
