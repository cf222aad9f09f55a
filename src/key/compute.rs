//! The `plan` and `explain` use case: scan the context, key it through the stat cache (on the
//! settings' pool), parse the Dockerfile, choose the builder whose cache the keys predict
//! (offline: `auto` assumes the engine has BuildKit, see [`crate::builder::choose`]) and
//! compute the per-step keys.
//!
//! Returns the plan, its manifest and [`Note`]s — what a person may want to know (timings,
//! Dockerfile warnings, a plan file that Docker would send) — as data; the binary words them.

use super::{Manifest, ManifestStats, Plan, PlanOptions, StatCache};
use crate::buildargs::{self, BuildArg};
use crate::builder::{self, Builder, BuilderChoice, Choice};
use crate::config::Settings;
use crate::context::{self, Context, ContextOptions};
use crate::diagnostics::{diagnose, ResultExt};
use crate::dockerfile;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to plan.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub dir: &'a Path,
    /// `-f`, relative to the current directory.
    pub file: Option<&'a Path>,
    pub build_args: &'a [BuildArg],
    pub target: Option<String>,
    /// Read and write the stat cache.
    pub stat_cache: bool,
    /// A file ctxbuild writes or reads beside the plan (`--save`, `--since`): noted
    /// ([`Note::PlanFileSent`]) when it lies inside the context and `.dockerignore` lets it in.
    pub watch: Option<&'a Path>,
    /// `--builder`: whose cache to predict.
    pub builder: BuilderChoice,
}

/// Something worth telling about a plan run.
#[derive(Debug, Clone)]
pub enum Note {
    /// The stat cache at `path` was unusable and is rebuilt.
    StatCacheRebuilt {
        path: PathBuf,
        why: String,
    },
    Scanned {
        entries: usize,
        took: Duration,
    },
    Keyed {
        stats: ManifestStats,
        took: Duration,
    },
    Planned {
        steps: usize,
        took: Duration,
    },
    /// The parser's warning about a Dockerfile line.
    DockerfileWarning {
        file: String,
        line: usize,
        message: String,
    },
    /// The stat cache could not be saved (the next run is only slower).
    StatCacheNotSaved {
        error: String,
    },
    /// The watched file lies inside the context and Docker would send it: `COPY .` sees it
    /// change. `rel` is its path in the context.
    PlanFileSent {
        rel: PathBuf,
    },
}

/// A computed plan.
#[derive(Debug)]
pub struct Computed {
    pub plan: Plan,
    pub manifest: Manifest,
    pub notes: Vec<Note>,
    /// The builder the keys predict, and why.
    pub builder: Choice,
}

/// Scans the context; an unreadable entry fails the scan, as it fails `docker build`.
pub fn scan_readable(
    dir: &Path,
    file: Option<&Path>,
    settings: &Settings,
) -> anyhow::Result<Context> {
    scan_for(dir, file, Builder::Classic, settings)
}

/// [`scan_readable`] as `builder` sees the context (BuildKit: `<Dockerfile>.dockerignore`
/// wins, nothing is force-sent).
pub fn scan_for(
    dir: &Path,
    file: Option<&Path>,
    builder: Builder,
    settings: &Settings,
) -> anyhow::Result<Context> {
    let mut opts = ContextOptions::new(dir);
    opts.dockerfile = file.map(Path::to_path_buf);
    opts.buildkit = builder == Builder::BuildKit;
    opts.threads = settings.threads.get();
    let ctx = context::scan(&opts).map_err(diagnose)?;
    if let Some(issue) = ctx
        .issues
        .iter()
        .find(|i| i.kind == context::IssueKind::Unreadable)
    {
        return Err(anyhow::anyhow!("{issue}"))
            .hint("docker build would fail on this entry too: fix its permissions or add it to .dockerignore");
    }
    Ok(ctx)
}

/// The stat-cache directory: `CACHE_DIR/stat`.
fn cache_dir(settings: &Settings) -> Option<PathBuf> {
    settings.cache_dir.as_ref().map(|d| d.join("stat"))
}

/// Loads the stat cache of the context at `root`, unless disabled.
fn load_cache(root: &Path, stat_cache: bool, settings: &Settings) -> Option<StatCache> {
    match (stat_cache, cache_dir(settings)) {
        (true, Some(dir)) => Some(StatCache::load(&dir, root)),
        _ => None,
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Scan, key and plan.
pub fn compute(req: &Request, settings: &Settings) -> anyhow::Result<Computed> {
    let mut notes = Vec::new();
    let started = now_ns();
    // `auto` needs the Dockerfile, found by the scan: scan as classic, and again if the
    // Dockerfile then picks BuildKit and the two views can differ.
    let scan_builder = match req.builder {
        BuilderChoice::BuildKit => Builder::BuildKit,
        _ => Builder::Classic,
    };
    let clock = Instant::now();
    // The stat cache loads (and verifies its checksum) while the walk runs.
    let (ctx, cache) = std::thread::scope(|s| {
        let loader = std::fs::canonicalize(req.dir)
            .ok()
            .map(|root| s.spawn(move || load_cache(&root, req.stat_cache, settings)));
        let ctx = scan_for(req.dir, req.file, scan_builder, settings);
        let cache = loader.and_then(|h| h.join().ok()).flatten();
        (ctx, cache)
    });
    let mut ctx = ctx?;
    if let Some(rel) = req.watch.and_then(|w| ctx.exposes(w)) {
        notes.push(Note::PlanFileSent { rel });
    }
    // A root that moved between the two resolutions gets the cache of the scanned one.
    let mut cache = match (cache, cache_dir(settings)) {
        (Some(c), Some(dir)) if c.path() == StatCache::file_for(&dir, &ctx.root) => Some(c),
        _ => load_cache(&ctx.root, req.stat_cache, settings),
    };
    notes.push(Note::Scanned {
        entries: ctx.entries.len(),
        took: clock.elapsed(),
    });
    let (df_path, df_name) = match (req.file, &ctx.dockerfile) {
        (_, Some(rel)) => (ctx.root.join(rel), rel.to_string_lossy().into_owned()),
        (Some(f), None) => (f.to_path_buf(), f.to_string_lossy().into_owned()),
        (None, None) => {
            return Err(anyhow::anyhow!("no Dockerfile in `{}`", req.dir.display()))
                .hint("pass one with -f")
        }
    };
    let text = crate::fsutil::read_text(&df_path)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context(format!("cannot read {df_name}")))?;
    let df = dockerfile::parse(&text, &df_name).map_err(diagnose)?;
    let choice = builder::choose(req.builder, Some(&df), None);
    if choice.builder != scan_builder && buildkit_view_differs(&ctx, req.file) {
        ctx = scan_for(req.dir, req.file, choice.builder, settings)?;
        notes.retain(|n| !matches!(n, Note::PlanFileSent { .. }));
        if let Some(rel) = req.watch.and_then(|w| ctx.exposes(w)) {
            notes.push(Note::PlanFileSent { rel });
        }
    }
    notes.extend(df.warnings.iter().map(|w| Note::DockerfileWarning {
        file: df_name.clone(),
        line: w.line,
        message: w.message.clone(),
    }));
    let clock = Instant::now();
    if let Some(c) = &cache {
        if let super::statcache::LoadState::Rebuilt(why) = &c.state {
            notes.push(Note::StatCacheRebuilt {
                path: c.path().to_path_buf(),
                why: why.clone(),
            });
        }
    }
    // The entries are not needed after keying: their paths move into the manifest, and the
    // stat cache is saved from them on the way (see `build_owned`).
    let entries = std::mem::take(&mut ctx.entries);
    let (m, stats, saved) = settings
        .pool
        .install(|| super::manifest::build_owned(&ctx.root, entries, cache.as_mut(), started))
        .map_err(diagnose)?;
    if let Some(Err(e)) = saved {
        notes.push(Note::StatCacheNotSaved {
            error: e.to_string(),
        });
    }
    notes.push(Note::Keyed {
        stats,
        took: clock.elapsed(),
    });
    let clock = Instant::now();
    let opts = PlanOptions {
        build_args: buildargs::resolve_from_process(req.build_args),
        target: req.target.clone(),
        builder: choice.builder,
    };
    let plan = settings.pool.install(|| super::plan(&df, &m, &opts));
    let plan = plan.map_err(diagnose)?;
    notes.push(Note::Planned {
        steps: plan.steps.len(),
        took: clock.elapsed(),
    });
    // The process ends soon after: freeing what is left of the context and the cache would
    // only delay the exit.
    std::mem::forget(ctx);
    std::mem::forget(cache);
    Ok(Computed {
        plan,
        manifest: m,
        notes,
        builder: choice,
    })
}

/// Whether BuildKit can see another context than the classic scan `ctx`: when the classic
/// CLI force-sent and the daemon hid an excluded Dockerfile or `.dockerignore`, or when a
/// `<Dockerfile>.dockerignore` exists. (Implied directories differ only in their mode, which
/// BuildKit's keys leave out.)
fn buildkit_view_differs(ctx: &Context, file: Option<&Path>) -> bool {
    if !ctx.hidden.is_empty() {
        return true;
    }
    let df = match (&ctx.dockerfile, file) {
        (Some(rel), _) => ctx.root.join(rel),
        (None, Some(f)) => f.to_path_buf(),
        (None, None) => return false,
    };
    let mut name = df.into_os_string();
    name.push(".dockerignore");
    std::fs::symlink_metadata(PathBuf::from(name)).is_ok()
}
