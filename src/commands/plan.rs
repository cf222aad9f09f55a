//! `ctxbuild plan`: scan the context, build the manifest (through the stat cache), parse the
//! Dockerfile and print the per-step keys as a "Step N/M" table or JSON; `--save` keeps the plan
//! with its manifest for `ctxbuild explain`. Also the shared plumbing `explain` uses.

use crate::cli::PlanArgs;
use anyhow::Context as _;
use ctxbuild::context::{self, Context, ContextOptions};
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::dockerfile;
use ctxbuild::exit::ExitStatus;
use ctxbuild::key::{self, Manifest, ManifestStats, Plan, PlanOptions, StatCache};
use ctxbuild::printer::Printer;
use std::path::{Path, PathBuf};

/// Inputs shared by `plan` and `explain`.
pub(super) struct Request<'a> {
    pub dir: &'a Path,
    pub file: Option<&'a Path>,
    pub build_args: &'a [String],
    pub target: Option<String>,
    pub stat_cache: bool,
    /// A file ctxbuild writes or reads beside the plan (`--save`, `--since`): reported by
    /// [`compute`] when it lies inside the context and `.dockerignore` does not exclude it.
    pub watch: Option<&'a Path>,
}

/// The warning for a plan file that Docker would send: it changes the context between `plan
/// --save` and `explain --since`, so `COPY .` always looks changed.
pub(super) fn warn_exposed(ctx: &Context, path: &Path, printer: &Printer) {
    if let Some(rel) = ctx.exposes(path) {
        {
            printer.warn(&format!(
                "{} lies inside the context and is not in .dockerignore: `COPY .` will see it \
                 change\nhint: save the plan outside the context (e.g. --save ../plan.json) or \
                 add `{}` to .dockerignore",
                rel.display(),
                rel.display()
            ));
        }
    }
}

/// The stat-cache directory: `$CTXBUILD_CACHE_DIR/stat`, else the user cache dir.
pub(super) fn cache_dir() -> Option<PathBuf> {
    ctxbuild::config::cache_root().map(|d| d.join("stat"))
}

/// `K=V` as given; a bare `K` takes its value from the environment, as `docker build` does
/// (and is dropped when unset).
pub(super) fn parse_build_args(args: &[String]) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Scans the context, fails like Docker on unreadable entries.
pub(super) fn scan(dir: &Path, file: Option<&Path>, printer: &Printer) -> anyhow::Result<Context> {
    let mut opts = ContextOptions::new(dir);
    opts.dockerfile = file.map(Path::to_path_buf);
    opts.threads = printer.config.threads;
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

/// Loads the stat cache of the context at `dir`, unless disabled.
fn load_cache(root: &Path, stat_cache: bool) -> Option<StatCache> {
    match (stat_cache, cache_dir()) {
        (true, Some(dir)) => Some(StatCache::load(&dir, root)),
        _ => None,
    }
}

/// Builds the manifest of a scanned context on `pool`'s threads, through `cache` when given
/// (loaded for `ctx.root`); the caller saves the cache.
pub(super) fn manifest(
    ctx: &Context,
    cache: Option<&mut StatCache>,
    pool: &rayon::ThreadPool,
    printer: &Printer,
) -> anyhow::Result<(Manifest, ManifestStats)> {
    if let Some(c) = &cache {
        if let key::statcache::LoadState::Rebuilt(why) = &c.state {
            printer.verbose(&format!("stat cache {} rebuilt: {why}", c.path().display()));
        }
    }
    let (m, stats) = pool
        .install(|| key::manifest::build(&ctx.root, &ctx.entries, cache))
        .map_err(diagnose)?;
    printer.verbose(&format!(
        "{} files: {} hashed ({} bytes), {} from the stat cache",
        stats.files, stats.hashed, stats.hashed_bytes, stats.cached
    ));
    Ok((m, stats))
}

/// Scan, key and plan.
pub(super) fn compute(req: &Request, printer: &Printer) -> anyhow::Result<(Plan, Manifest)> {
    let started = now_ns();
    let clock = std::time::Instant::now();
    // The stat cache loads (and verifies its checksum) while the walk runs.
    let (ctx, cache) = std::thread::scope(|s| {
        let loader = std::fs::canonicalize(req.dir)
            .ok()
            .map(|root| s.spawn(move || load_cache(&root, req.stat_cache)));
        let ctx = scan(req.dir, req.file, printer);
        let cache = loader.and_then(|h| h.join().ok()).flatten();
        (ctx, cache)
    });
    let ctx = ctx?;
    if let Some(w) = req.watch {
        warn_exposed(&ctx, w, printer);
    }
    // A root that moved between the two resolutions gets the cache of the scanned one.
    let mut cache = match (cache, cache_dir()) {
        (Some(c), Some(dir)) if c.path() == StatCache::file_for(&dir, &ctx.root) => Some(c),
        _ => load_cache(&ctx.root, req.stat_cache),
    };
    printer.verbose(&format!(
        "scanned {} entries in {:.0?}",
        ctx.entries.len(),
        clock.elapsed()
    ));
    let (df_path, df_name) = match (req.file, &ctx.dockerfile) {
        (_, Some(rel)) => (ctx.root.join(rel), rel.to_string_lossy().into_owned()),
        (Some(f), None) => (f.to_path_buf(), f.to_string_lossy().into_owned()),
        (None, None) => {
            return Err(anyhow::anyhow!("no Dockerfile in `{}`", req.dir.display()))
                .hint("pass one with -f")
        }
    };
    let text =
        std::fs::read_to_string(&df_path).with_context(|| format!("cannot read {df_name}"))?;
    let df = dockerfile::parse(&text, &df_name).map_err(diagnose)?;
    for w in &df.warnings {
        printer.warn(&format!("{df_name}:{}: {}", w.line, w.message));
    }
    let clock = std::time::Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(printer.config.threads)
        .build()
        .context("cannot start hashing threads")?;
    let (m, _) = manifest(&ctx, cache.as_mut(), &pool, printer)?;
    printer.verbose(&format!("keyed the context in {:.0?}", clock.elapsed()));
    let clock = std::time::Instant::now();
    let opts = PlanOptions {
        build_args: parse_build_args(req.build_args),
        target: req.target.clone(),
    };
    // The stat cache is saved (usually: found unchanged) while the plan is computed.
    let (saved, plan) = pool.install(|| {
        rayon::join(
            || cache.as_mut().map(|c| c.save(&ctx.entries, started)),
            || key::plan(&df, &m, &opts),
        )
    });
    if let Some(Err(e)) = saved {
        printer.warn(&e.to_string());
    }
    let plan = plan.map_err(diagnose)?;
    printer.verbose(&format!(
        "planned {} steps in {:.0?}",
        plan.steps.len(),
        clock.elapsed()
    ));
    // The process ends soon after: freeing the tens of thousands of paths of the context and
    // the cache one by one would only delay the exit.
    std::mem::forget(ctx);
    std::mem::forget(cache);
    Ok((plan, m))
}

pub fn run(args: &PlanArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let req = Request {
        dir: &args.dir,
        file: args.file.as_deref(),
        build_args: &args.build_args,
        target: args.target.clone(),
        stat_cache: !args.no_stat_cache,
        watch: args.save.as_deref(),
    };
    let (plan, m) = compute(&req, printer)?;
    // Not freed entry by entry at exit (see `compute`) unless it is saved.
    let m = std::mem::ManuallyDrop::new(m);
    if let Some(save) = &args.save {
        let mut saved = plan.clone();
        saved.manifest = Some(std::mem::ManuallyDrop::into_inner(m));
        let text = serde_json::to_vec(&saved).context("cannot encode the plan")?;
        std::fs::write(save, text).with_context(|| format!("cannot write {}", save.display()))?;
        printer.info(&format!("saved the plan to {}", save.display()));
    }
    if args.json {
        printer.json(&plan)?;
        return Ok(ExitStatus::Success);
    }
    printer.line(&format!(
        "{:<8} {:<12} {:>6}  INSTRUCTION",
        "STEP", "KEY", "FILES"
    ))?;
    for s in &plan.steps {
        let files = if s.sources.is_empty() {
            "-".to_string()
        } else {
            s.files.to_string()
        };
        printer.line(&format!(
            "{:<8} {:<12} {:>6}  {}",
            format!("{}/{}", s.index, s.total),
            &s.key[..12],
            files,
            s.instruction
        ))?;
    }
    printer.info(&format!("context digest {}", plan.context_digest));
    Ok(ExitStatus::Success)
}
