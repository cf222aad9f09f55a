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
}

/// The stat-cache directory: `$CTXBUILD_CACHE_DIR/stat`, else the user cache dir.
pub(super) fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("CTXBUILD_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("ctxbuild")))
        .map(|d| d.join("stat"))
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

/// Builds the manifest of a scanned context, through the stat cache unless disabled, on
/// `pool`'s threads.
pub(super) fn manifest(
    ctx: &Context,
    stat_cache: bool,
    started_ns: i128,
    pool: &rayon::ThreadPool,
    printer: &Printer,
) -> anyhow::Result<(Manifest, ManifestStats)> {
    let mut cache = match (stat_cache, cache_dir()) {
        (true, Some(dir)) => Some(pool.install(|| StatCache::load(&dir, &ctx.root))),
        _ => None,
    };
    if let Some(c) = &cache {
        if let key::statcache::LoadState::Rebuilt(why) = &c.state {
            printer.verbose(&format!("stat cache {} rebuilt: {why}", c.path().display()));
        }
    }
    let (m, stats) = pool
        .install(|| key::manifest::build(&ctx.root, &ctx.entries, cache.as_mut()))
        .map_err(diagnose)?;
    if let Some(c) = cache.as_mut() {
        if let Err(e) = c.save(&ctx.entries, started_ns) {
            printer.warn(&e.to_string());
        }
    }
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
    let ctx = scan(req.dir, req.file, printer)?;
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
    let (m, _) = manifest(&ctx, req.stat_cache, started, &pool, printer)?;
    printer.verbose(&format!("keyed the context in {:.0?}", clock.elapsed()));
    let clock = std::time::Instant::now();
    let opts = PlanOptions {
        build_args: parse_build_args(req.build_args),
        target: req.target.clone(),
    };
    let plan = pool
        .install(|| key::plan(&df, &m, &opts))
        .map_err(diagnose)?;
    printer.verbose(&format!(
        "planned {} steps in {:.0?}",
        plan.steps.len(),
        clock.elapsed()
    ));
    Ok((plan, m))
}

pub fn run(args: &PlanArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let req = Request {
        dir: &args.dir,
        file: args.file.as_deref(),
        build_args: &args.build_args,
        target: args.target.clone(),
        stat_cache: !args.no_stat_cache,
    };
    let (plan, m) = compute(&req, printer)?;
    if let Some(save) = &args.save {
        let mut saved = plan.clone();
        saved.manifest = Some(m);
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
