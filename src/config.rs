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
    /// else the temporary directory's `ctxbuild/`.
    pub fn build_cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ctxbuild"))
    }
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
