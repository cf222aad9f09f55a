//! `ctxbuild image SERVICE`: resolve the service, pick or render its Dockerfile, gate on
//! `check`, scan the context (bytecode pollution always left out), key it, stream the
//! deterministic tar to the engine, show progress, print the per-layer cache report (with the
//! key diff's reason for the first rebuilt step), push.
//!
//! This file wires stages; each stage's work lives in its module (service, check, clean,
//! context, key, tarball, engine, report, progress). Only here are things printed.

use crate::cli::ImageArgs;
use ctxbuild::check::{self, DockerfileText};
use ctxbuild::clean::{self, CleanOptions, Mode, Rules, Scope};
use ctxbuild::config::ProgressMode;
use ctxbuild::context::{self, ContextOptions, Entry, EntryKind};
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::engine::inject::{Injection, INJECTED_DOCKERFILE};
use ctxbuild::engine::{self, BuildOptions, DockerConfig, Engine, EngineConfig, EngineError};
use ctxbuild::exit::ExitStatus;
use ctxbuild::key::{self, Manifest, Plan, PlanOptions, StatCache};
use ctxbuild::pollution;
use ctxbuild::printer::Printer;
use ctxbuild::progress::Progress;
use ctxbuild::report::{human_bytes, RebuildReason, Report};
use ctxbuild::service::{self, render, Config, Variant};
use ctxbuild::tarball::{self, ExtraFile, TarOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Label keys ctxbuild sets on every image.
const LABEL_SERVICE: &str = "dev.ctxbuild.service";
const LABEL_TEMPLATE: &str = "dev.ctxbuild.template";
const LABEL_SOURCE_DIGEST: &str = "dev.ctxbuild.source-digest";
const LABEL_REVISION: &str = "org.opencontainers.image.revision";

/// The Dockerfile a build uses.
struct Dockerfile {
    text: String,
    /// How messages name it (relative to the configuration's directory).
    display: String,
    /// The path given to the context scan (relative to the current directory), when it is a file.
    path: Option<PathBuf>,
    rendered: Option<render::Rendered>,
}

pub fn run(args: &ImageArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    // Bad input fails before anything is scanned, built or tagged.
    for tag in &args.tags {
        engine::reference::check_tag(tag).map_err(diagnose)?;
    }
    if let Some(p) = &args.platform {
        engine::reference::check_platform(p).map_err(diagnose)?;
    }

    let config_path = service::config_path(args.config.as_deref());
    let config = Config::load(&config_path).map_err(diagnose)?;
    let svc = config.service(&args.service).map_err(diagnose)?;
    let ctx_dir = config.context_dir(svc);
    check_context_dir(&config, svc, &ctx_dir)?;

    // Fail fast when no engine answers, before any scan or render work.
    let engine_config = EngineConfig::from_env(args.host.as_deref()).map_err(diagnose)?;
    let engine = Engine::connect(&engine_config).map_err(diagnose)?;
    printer.verbose(&format!(
        "engine {} (API {})",
        engine.host(),
        engine.api_version()
    ));

    let dockerfile = pick_dockerfile(args, &config, svc, &ctx_dir)?;
    // A parse error is the check gate's to report (or the engine's, with --no-check).
    let parsed = ctxbuild::dockerfile::parse(&dockerfile.text, &dockerfile.display).ok();
    if let (Some(df), Some(target)) = (&parsed, args.target.as_deref()) {
        check_target(df, target)?;
    }
    if !args.no_check {
        let findings = check::gate(
            &config,
            svc,
            &DockerfileText::new(
                dockerfile.display.clone(),
                dockerfile.text.clone(),
                dockerfile.rendered.is_some(),
            ),
        )
        .map_err(diagnose)?;
        if !findings.is_empty() {
            let shown: Vec<String> = findings
                .iter()
                .map(|f| super::check::finding_text(f, printer))
                .collect();
            return Err(anyhow::anyhow!(
                "`ctxbuild check` found {} error(s) in service `{}`; not building:\n{}",
                findings.len(),
                svc.name,
                shown.join("\n")
            ))
            .hint("fix them, or pass --no-check to build anyway")
            .with_status(ExitStatus::Findings);
        }
    }

    if args.clean {
        clean_context(&ctx_dir, printer)?;
    }

    let mut scanned = context::scan(&ContextOptions {
        root: ctx_dir.clone(),
        dockerfile: dockerfile.path.clone(),
        buildkit: false,
        threads: printer.config.threads,
    })
    .map_err(diagnose)?;
    if scanned.has_unreadable() {
        for i in &scanned.issues {
            printer.warn(&format!("{}: {i}", config.display_path(&svc.context)));
        }
        anyhow::bail!("some files of the context cannot be read; docker build would fail too");
    }

    // Bytecode never reaches the engine, whatever .dockerignore says: leave it out of what
    // COPY sees (and so of the keys) and of the tar.
    let sources = parsed.as_ref().map(copy_sources).unwrap_or_default();
    let kept_out = exclude_pollution(&mut scanned.entries, &sources);
    if !kept_out.named.is_empty() {
        printer.info(&format!(
            "sending {} bytecode entries because the Dockerfile names them in COPY/ADD: {}",
            kept_out.named.len(),
            kept_out.named.join(", ")
        ));
    }
    if kept_out.entries > 0 {
        printer.info(&format!(
            "leaving {} bytecode entries ({}) out of the context: .dockerignore lets them in \
             (add {} to it, or run `ctxbuild clean`)",
            kept_out.entries,
            human_bytes(kept_out.bytes),
            pollution::DOCKERIGNORE_RULES.join(", ")
        ));
    }

    // ctxbuild's own keys of the context, for the source-digest label and the rebuild reason.
    let cache_dir = cache_dir();
    let manifest = match key_context(&scanned, &cache_dir) {
        Ok(m) => Some(m),
        Err(e) => {
            printer.warn(&format!(
                "cannot key the context, so the report cannot say why a step rebuilt: {}",
                ctxbuild::diagnostics::render(&e).trim_end()
            ));
            None
        }
    };

    let mut labels = vec![(LABEL_SERVICE.to_string(), svc.name.clone())];
    if let Some(r) = &dockerfile.rendered {
        labels.push((
            LABEL_TEMPLATE.to_string(),
            format!("{} v{}", r.template, r.template_version),
        ));
    }
    if let Some(m) = &manifest {
        labels.push((LABEL_SOURCE_DIGEST.to_string(), m.digest()));
    }
    if let Some(rev) = git_revision(&ctx_dir) {
        labels.push((LABEL_REVISION.to_string(), rev));
    }
    labels.extend(parse_pairs(&args.labels, "--label")?);

    // The Dockerfile travels in the tar: as the context's own file, or injected under a fixed
    // name with a .dockerignore line that hides it from COPY. An injected one carries the
    // labels as one LABEL line: the engine would add one cached-or-not step per label.
    let inject = dockerfile.rendered.is_some() || scanned.dockerfile.is_none();
    let mut text = dockerfile.text.clone();
    let mut api_labels = Vec::new();
    if inject && args.target.is_none() {
        text = with_label_line(&text, &labels);
    } else {
        // With --target only the engine knows which stage is last.
        api_labels = labels;
    }
    let mut tar_opts = TarOptions {
        mtime: source_date_epoch(),
        ..Default::default()
    };
    let dockerfile_in_tar = if inject {
        let ignore_entry = scanned
            .entries
            .iter()
            .chain(&scanned.hidden)
            .find(|e| e.path.as_os_str().as_bytes() == b".dockerignore");
        let dockerignore = match ignore_entry {
            Some(e) => Some((
                std::fs::read(scanned.root.join(&e.path)).with_context_path(".dockerignore")?,
                e.mode,
            )),
            None => None,
        };
        let injection = Injection {
            dockerfile: text.clone().into_bytes(),
            dockerignore,
            mtime: tar_opts.mtime,
        };
        tar_opts.extra = vec![
            ExtraFile {
                path: PathBuf::from(".dockerignore"),
                data: injection.dockerignore_text(),
                mode: injection.dockerignore.as_ref().map_or(0o644, |(_, m)| *m),
            },
            ExtraFile {
                path: PathBuf::from(INJECTED_DOCKERFILE),
                data: injection.dockerfile.clone(),
                mode: 0o644,
            },
        ];
        // The context's own Dockerfile, unused here, is sent only when COPY can see it.
        if let Some(df) = &scanned.dockerfile {
            if scanned.hidden.iter().any(|h| &h.path == df) {
                tar_opts.exclude.push(df.clone());
            }
        }
        INJECTED_DOCKERFILE.to_string()
    } else {
        scanned.dockerfile.as_ref().map_or_else(
            || "Dockerfile".to_string(),
            |p| p.to_string_lossy().into_owned(),
        )
    };

    let build_args = parse_pairs(&args.build_args, "--build-arg")?;
    let plan = match &manifest {
        Some(m) => match plan_steps(
            &text,
            &dockerfile.display,
            m,
            &build_args,
            args.target.as_deref(),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                printer.warn(&format!(
                    "cannot compute cache keys, so the report cannot say why a step rebuilt: {}",
                    ctxbuild::diagnostics::render(&e).trim_end()
                ));
                None
            }
        },
        None => None,
    };

    let tags = if args.tags.is_empty() {
        vec![format!("ctxbuild/{}:latest-build", svc.name)]
    } else {
        args.tags.clone()
    };
    let opts = BuildOptions {
        dockerfile: Some(dockerfile_in_tar),
        tags: tags.clone(),
        build_args,
        labels: api_labels,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        platform: args.platform.clone(),
    };

    engine.cancel_on_signals().map_err(diagnose)?;
    let mut progress = Progress::new(&printer.config);
    let root = scanned.root.clone();
    let sent: Vec<Entry> = scanned.sent().into_iter().cloned().collect();
    let producer = move |w: &mut dyn std::io::Write| -> Result<(), engine::error::BoxError> {
        tarball::write_context(&root, &sent, w, &tar_opts)?;
        Ok(())
    };
    let built = engine.build(&opts, producer, &mut |e| progress.build_event(e));
    progress.finish();
    let built =
        built.map_err(|e| build_error(e, printer.config.progress == ProgressMode::Plain))?;

    let history = engine.history(&built.image_id).map_err(diagnose)?;
    // The image's size is the sum of its layers: no second request needed.
    let size = history.iter().map(|l| l.size).sum();
    let mut report = Report::new(Some(svc.name.clone()), &built, &history, size);
    report.context.pollution_excluded_entries = kept_out.entries;
    report.context.pollution_excluded_bytes = kept_out.bytes;
    if let (Some(plan), Some(manifest)) = (plan, manifest) {
        let store = plan_file(&cache_dir, &svc.name, &tags[0]);
        report.rebuild_reason = if args.no_cache {
            None
        } else {
            rebuild_reason(&report, load_plan(&store).as_ref(), &plan, &manifest)
        };
        if let Err(e) = save_plan(&store, plan, manifest) {
            printer.warn(&format!(
                "cannot save this build's plan to {} (the next report cannot say why a step rebuilt): {e}",
                store.display()
            ));
        }
    }

    if args.no_cache {
        // Nothing changed: the cache was not asked.
        report.rebuild_reason = report.no_cache_reason();
    }

    let mut push_error = None;
    if args.push {
        let docker_config =
            DockerConfig::load(engine::auth::config_dir(&|k| std::env::var(k).ok()).as_deref())
                .map_err(diagnose)?;
        for tag in &tags {
            let pushed = docker_config.credentials_for(tag).and_then(|creds| {
                engine.push(tag, creds.as_ref(), &mut |e| progress.push_event(tag, e))
            });
            match pushed {
                Ok(p) => {
                    progress.push_done(tag, p.digest.as_deref());
                    report.pushed.push(p);
                }
                Err(EngineError::Interrupted) => {
                    progress.finish();
                    return Err(diagnose(EngineError::Interrupted));
                }
                Err(e) => {
                    push_error = Some(e);
                    break;
                }
            }
        }
        progress.finish();
    }

    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot write the report to {}", path.display())))?;
    }
    let paint = |s: &str, st: console::Style| printer.paint(s, st);
    let text = report.human(&paint);
    for line in text.lines() {
        printer.line(line)?;
    }
    match push_error {
        Some(e) => Err(diagnose(e)),
        None => Ok(ExitStatus::Success),
    }
}

/// A failed build as the user sees it. With `--progress plain` the failing step's whole output
/// is already on screen, so the hint to rerun that way would send them in a circle.
fn build_error(e: EngineError, plain_progress: bool) -> anyhow::Error {
    if plain_progress && matches!(e, EngineError::BuildFailed { code: Some(_), .. }) {
        let status = ctxbuild::diagnostics::Diagnose::status(&e);
        return Err::<(), _>(anyhow::Error::new(e))
            .with_status(status)
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the build failed"));
    }
    diagnose(e)
}

/// The service's context directory must exist: everything after reads it.
fn check_context_dir(
    config: &Config,
    svc: &service::Service,
    ctx_dir: &Path,
) -> anyhow::Result<()> {
    if ctx_dir.is_dir() {
        return Ok(());
    }
    let line = svc.pos("context").line;
    let at = if line > 0 {
        format!("{}:{line}", config.path.display())
    } else {
        config.path.display().to_string()
    };
    Err(anyhow::anyhow!(
        "the context directory {} of service `{}` ({at}) does not exist",
        config.display_path(&svc.context),
        svc.name
    ))
    .hint(format!(
        "create it, or fix `context` of [services.{}] in {} (relative to that file's directory)",
        svc.name,
        config.path.display()
    ))
}

/// `-f`, then the service's own Dockerfile, then the rendered template.
fn pick_dockerfile(
    args: &ImageArgs,
    config: &Config,
    svc: &service::Service,
    ctx_dir: &Path,
) -> anyhow::Result<Dockerfile> {
    let from_file = |path: PathBuf, display: String| -> anyhow::Result<Dockerfile> {
        let read = std::fs::read_to_string(&path)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot read the Dockerfile {display}")));
        let text = if args.file.is_some() {
            read.hint("-f is relative to the current directory, as with docker build -f")?
        } else {
            read.hint(format!(
                "check `dockerfile` of service `{}` in {} (relative to its context)",
                svc.name,
                config.path.display()
            ))?
        };
        Ok(Dockerfile {
            text,
            display,
            path: Some(path),
            rendered: None,
        })
    };
    if let Some(f) = &args.file {
        return from_file(f.clone(), f.display().to_string());
    }
    if let Some(rel) = &svc.dockerfile {
        return from_file(
            ctx_dir.join(rel),
            config.display_path(&svc.context.join(rel)),
        );
    }
    let variant = Variant::from_flags(args.slim);
    let rendered =
        render::render(config, svc, variant, args.base_image.as_deref()).map_err(diagnose)?;
    Ok(Dockerfile {
        text: rendered.dockerfile.clone(),
        display: format!("<rendered {}>", rendered.template),
        path: None,
        rendered: Some(rendered),
    })
}

/// What [`exclude_pollution`] left out, and what it kept because the Dockerfile names it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct KeptOut {
    entries: u64,
    bytes: u64,
    /// Bytecode entries a COPY/ADD source names on purpose: sent, not counted above.
    named: Vec<String>,
}

/// The context paths COPY/ADD read (not `--from` copies, URLs or sources still holding
/// variables), normalized: `./a//b/` → `a/b`.
fn copy_sources(df: &ctxbuild::dockerfile::Dockerfile) -> Vec<String> {
    use ctxbuild::dockerfile::Keyword;
    let mut out = Vec::new();
    for ins in &df.instructions {
        if !matches!(ins.keyword, Keyword::Copy | Keyword::Add) || ins.flag("from").is_some() {
            continue;
        }
        let words = ins.words();
        let Some((_, sources)) = words.split_last() else {
            continue;
        };
        for src in sources {
            if src.contains('$') || src.contains("://") || src.starts_with("git@") {
                continue;
            }
            let norm: Vec<&str> = src
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            if !norm.is_empty() {
                out.push(norm.join("/"));
            }
        }
    }
    out
}

/// Whether the COPY/ADD `source` names the bytecode entry `path` on purpose: the source is
/// the entry itself, or the source lies in (or is) a `__pycache__` directory and the entry is
/// under it, or the source is a glob whose last component ends in `.pyc`/`.pyo` and matches it.
/// A broad `COPY . /app` names nothing.
fn names_explicitly(source: &str, path: &str) -> bool {
    if source == path {
        return true;
    }
    let has_glob = ctxbuild::pathrules::has_wildcards(source.as_bytes());
    let glob = || ctxbuild::pathrules::Glob::new(source.as_bytes()).ok();
    let in_pycache = source.split('/').any(|c| c == "__pycache__");
    if in_pycache {
        // The entry or one of its directories is what the source names.
        let matcher = if has_glob { glob() } else { None };
        let mut p = Some(Path::new(path));
        while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
            let hit = match &matcher {
                Some(m) => m.matches(a.as_os_str().as_bytes()),
                None => a.as_os_str().as_bytes() == source.as_bytes(),
            };
            if hit {
                return true;
            }
            p = a.parent();
        }
        return false;
    }
    let last = source.rsplit('/').next().unwrap_or(source);
    if has_glob && (last.ends_with(".pyc") || last.ends_with(".pyo")) {
        return glob().is_some_and(|m| m.matches(path.as_bytes()));
    }
    false
}

/// Drops bytecode files and everything inside `__pycache__` directories from `entries`
/// (sorted by path), even when `.dockerignore` lets them in, except what a COPY/ADD source
/// names explicitly (see [`names_explicitly`]) and the directories holding it.
fn exclude_pollution(entries: &mut Vec<Entry>, sources: &[String]) -> KeptOut {
    let mut out = KeptOut::default();
    let polluted = |e: &Entry| {
        let n = e.path.iter().count();
        e.path.iter().enumerate().any(|(i, comp)| {
            let is_dir = i + 1 < n || e.kind == EntryKind::Dir;
            pollution::classify(comp, is_dir).is_some()
        })
    };
    let named: Vec<PathBuf> = entries
        .iter()
        .filter(|e| polluted(e))
        .filter(|e| {
            let p = e.path.to_string_lossy();
            sources.iter().any(|s| names_explicitly(s, &p))
        })
        .map(|e| e.path.clone())
        .collect();
    out.named = named.iter().map(|p| p.display().to_string()).collect();
    entries.retain(|e| {
        if !polluted(e) {
            return true;
        }
        // A named entry, or a bytecode directory on the way to one, travels.
        if named.iter().any(|n| n.starts_with(&e.path)) {
            return true;
        }
        out.entries += 1;
        if e.kind == EntryKind::File {
            out.bytes += e.size;
        }
        false
    });
    out
}

/// `--target` must name a stage of the Dockerfile: the engine would otherwise build it all
/// (the classic builder) or fail only after the upload.
fn check_target(df: &ctxbuild::dockerfile::Dockerfile, target: &str) -> anyhow::Result<()> {
    df.steps(Some(target)).map(|_| ()).map_err(diagnose)
}

/// Runs `ctxbuild clean --context-only` on the context before scanning it.
fn clean_context(ctx_dir: &Path, printer: &Printer) -> anyhow::Result<()> {
    let opts = CleanOptions {
        root: ctx_dir.to_path_buf(),
        rules: Rules::bytecode(),
        mode: Mode::Remove,
        scope: Scope::Context,
        walk_threads: printer.config.threads,
        remove_threads: clean::default_remove_threads(printer.config.threads),
    };
    let report = clean::clean(&opts, &clean::NoProgress).map_err(diagnose)?;
    printer.info(&format!(
        "cleaned the context: {} files and {} directories of bytecode removed ({})",
        report.files,
        report.dirs,
        human_bytes(report.bytes)
    ));
    if let Some(f) = report.failures.first() {
        anyhow::bail!(
            "cannot remove {} ({}); {} removal(s) failed",
            f.path.display(),
            f.error,
            report.failures.len()
        );
    }
    Ok(())
}

/// The content manifest of the context as COPY will see it (the stat cache makes it cheap).
fn key_context(scanned: &context::Context, cache_dir: &Path) -> anyhow::Result<Manifest> {
    let stat_dir = cache_dir.join("stat");
    let mut stat = StatCache::load(&stat_dir, &scanned.root);
    let (manifest, _) =
        key::manifest::build(&scanned.root, &scanned.entries, Some(&mut stat)).map_err(diagnose)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    // A stat cache that cannot be written only makes the next run slower.
    if std::fs::create_dir_all(&stat_dir).is_ok() {
        let _ = stat.save(&scanned.entries, now);
    }
    Ok(manifest)
}

/// The per-step keys of the Dockerfile as sent.
fn plan_steps(
    text: &str,
    display: &str,
    manifest: &Manifest,
    build_args: &[(String, String)],
    target: Option<&str>,
) -> anyhow::Result<Plan> {
    let df = ctxbuild::dockerfile::parse(text, display).map_err(diagnose)?;
    let opts = PlanOptions {
        build_args: build_args.to_vec(),
        target: target.map(str::to_string),
    };
    key::plan(&df, manifest, &opts).map_err(diagnose)
}

/// The Dockerfile with one `LABEL "k"="v" …` line appended (JSON string quoting is valid
/// Dockerfile quoting).
fn with_label_line(text: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return text.to_string();
    }
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("LABEL");
    for (k, v) in labels {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""));
        out.push_str(&format!(" {}={}", q(k), q(v)));
    }
    out.push('\n');
    out
}

/// ctxbuild's cache directory; the temporary directory when the user has none, because the
/// saved plan is what lets the next build say why a step rebuilt.
fn cache_dir() -> PathBuf {
    ctxbuild::config::cache_root().unwrap_or_else(|| std::env::temp_dir().join("ctxbuild"))
}

/// Where the plan of the last build of `service` tagged `tag` is kept.
fn plan_file(cache_dir: &Path, service: &str, tag: &str) -> PathBuf {
    let safe: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir
        .join("plans")
        .join(service)
        .join(format!("{safe}.json"))
}

/// The plan saved by the previous build; an unreadable or older-format file counts as none.
fn load_plan(path: &Path) -> Option<Plan> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Saves the plan with its manifest (so the next diff can name files), atomically.
fn save_plan(path: &Path, mut plan: Plan, manifest: Manifest) -> std::io::Result<()> {
    plan.manifest = Some(manifest);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&plan).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// Why the first rebuilt step rebuilt, from ctxbuild's key diff against the previous build.
fn rebuild_reason(
    report: &Report,
    previous: Option<&Plan>,
    plan: &Plan,
    manifest: &Manifest,
) -> Option<RebuildReason> {
    let first = report.first_built_step()?;
    let previous = previous?;
    if first.number > plan.steps.len() {
        // Past the Dockerfile: the LABEL steps the engine appends for API labels.
        return Some(RebuildReason {
            step: first.number,
            instruction: first.instruction.clone(),
            summary: "an image label changed (e.g. the git revision): the engine applies labels as extra LABEL steps".into(),
            changes: Vec::new(),
        });
    }
    let empty = Manifest {
        entries: Vec::new(),
    };
    let old_m = previous.manifest.as_ref().unwrap_or(&empty);
    let miss = key::explain(previous, old_m, plan, manifest).first_miss?;
    let summary = miss
        .sentence
        .split_once(": ")
        .map_or_else(|| miss.sentence.clone(), |(_, why)| why.to_string());
    let changes = match &miss.reason {
        key::MissReason::Files(d) => d
            .changes()
            .into_iter()
            .map(|c| match c {
                key::FileChange::Added(p) => format!("{p} added"),
                key::FileChange::Removed(p) => format!("{p} removed"),
                key::FileChange::Content(p) => format!("{p} content changed"),
                key::FileChange::Mode(p) => format!("{p} mode changed"),
                key::FileChange::Type(p) => format!("{p} type changed"),
                key::FileChange::Link(p) => format!("{p} link target changed"),
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(RebuildReason {
        step: miss.index,
        instruction: miss.instruction,
        summary,
        changes,
    })
}

/// The mtime of every tar entry: `SOURCE_DATE_EPOCH` or 0.
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The commit checked out where the context lives, when it is in a git repository.
///
/// Read from `.git` directly (HEAD, loose ref, packed-refs; worktrees too): spawning `git`
/// costs more than a whole fully cached build. Falls back to `git rev-parse HEAD` when the
/// layout is unusual.
fn git_revision(dir: &Path) -> Option<String> {
    read_git_head(dir).or_else(|| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && is_sha(&rev)).then_some(rev)
    })
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_git_head(dir: &Path) -> Option<String> {
    let start = std::fs::canonicalize(dir).ok()?;
    let dot_git = start
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| g.exists())?;
    // A worktree or submodule: `.git` is a file naming the real git dir.
    let git_dir = if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let rel = text.trim().strip_prefix("gitdir:")?.trim().to_string();
        dot_git.parent()?.join(rel)
    } else {
        dot_git
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.clone(),
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_sha(head).then(|| head.to_string());
    };
    for base in [&git_dir, &common] {
        if let Ok(sha) = std::fs::read_to_string(base.join(reference)) {
            let sha = sha.trim();
            if is_sha(sha) {
                return Some(sha.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference && is_sha(sha)).then(|| sha.to_string())
    })
}

/// `K=V` pairs; a bare `K` takes its value from the environment, as docker build does.
fn parse_pairs(items: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !item.is_empty() => Ok((item.clone(), std::env::var(item).unwrap_or_default())),
            _ => Err(anyhow::anyhow!("{flag} `{item}` is not KEY=VALUE"))
                .hint(format!("e.g. {flag} PYTHON_VERSION=3.12")),
        })
        .collect()
}

trait ReadContext<T> {
    fn with_context_path(self, path: &str) -> anyhow::Result<T>;
}

impl<T> ReadContext<T> for std::io::Result<T> {
    fn with_context_path(self, path: &str) -> anyhow::Result<T> {
        self.map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot read {path} of the context")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxbuild::context::StatInfo;

    fn entry(path: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            size,
            link_target: None,
            stat: StatInfo::default(),
        }
    }

    #[test]
    fn pollution_is_left_out_with_its_bytes() {
        let mut v = vec![
            entry("app", EntryKind::Dir, 0),
            entry("app/__pycache__", EntryKind::Dir, 0),
            entry("app/__pycache__/main.cpython-312.pyc", EntryKind::File, 300),
            entry("app/__pycache__/notes.txt", EntryKind::File, 5),
            entry("app/main.py", EntryKind::File, 40),
            entry("old.pyo", EntryKind::File, 7),
            entry("__pycache__", EntryKind::File, 1),
        ];
        let out = exclude_pollution(&mut v, &[]);
        let kept: Vec<String> = v.iter().map(|e| e.display().into_owned()).collect();
        assert_eq!(kept, vec!["app", "app/main.py", "__pycache__"]);
        assert_eq!(
            out,
            KeptOut {
                entries: 4,
                bytes: 312,
                named: vec![],
            }
        );
    }

    #[test]
    fn bytecode_the_dockerfile_copies_by_name_is_kept() {
        let all = || {
            vec![
                entry("app", EntryKind::Dir, 0),
                entry("app/__pycache__", EntryKind::Dir, 0),
                entry("app/__pycache__/m.cpython-312.pyc", EntryKind::File, 300),
                entry("app/main.py", EntryKind::File, 40),
                entry("vendor", EntryKind::Dir, 0),
                entry("vendor/lib.pyc", EntryKind::File, 10),
                entry("vendor/other.pyc", EntryKind::File, 20),
                entry("vendor/x.pyo", EntryKind::File, 5),
            ]
        };
        let kept_of = |dockerfile: &str| {
            let df = ctxbuild::dockerfile::parse(dockerfile, "Dockerfile").unwrap();
            let mut v = all();
            let out = exclude_pollution(&mut v, &copy_sources(&df));
            let kept: Vec<String> = v.iter().map(|e| e.display().into_owned()).collect();
            (kept, out)
        };
        // The exact path: only that file.
        let (kept, out) = kept_of("FROM x\nCOPY ./vendor/lib.pyc /x/\nCOPY . /app\n");
        assert!(kept.contains(&"vendor/lib.pyc".to_string()), "{kept:?}");
        assert!(!kept.contains(&"vendor/other.pyc".to_string()));
        assert_eq!(out.named, vec!["vendor/lib.pyc"]);
        assert_eq!((out.entries, out.bytes), (4, 325));
        // A glob ending in .pyc: every match, not the .pyo.
        let (kept, out) = kept_of("FROM x\nCOPY vendor/*.pyc /x/\n");
        assert!(kept.contains(&"vendor/other.pyc".to_string()));
        assert!(!kept.contains(&"vendor/x.pyo".to_string()));
        assert_eq!(out.named.len(), 2);
        // A __pycache__ source: everything under it, the directory included.
        let (kept, out) = kept_of("FROM x\nCOPY app/__pycache__ /x/\n");
        assert!(kept.contains(&"app/__pycache__".to_string()));
        assert!(kept.contains(&"app/__pycache__/m.cpython-312.pyc".to_string()));
        assert_eq!(out.entries, 3);
        // The file inside __pycache__ by name keeps its directory too.
        let (kept, _) = kept_of("FROM x\nCOPY app/__pycache__/m.cpython-312.pyc /x/\n");
        assert!(kept.contains(&"app/__pycache__".to_string()), "{kept:?}");
        // Broad copies, other stages' files and globs not ending in .pyc name nothing.
        for df in [
            "FROM x\nCOPY . /app\n",
            "FROM x\nCOPY vendor /v\n",
            "FROM x\nCOPY vendor/* /v\n",
            "FROM x AS b\nFROM x\nCOPY --from=b vendor/lib.pyc /x/\n",
        ] {
            let (_, out) = kept_of(df);
            assert!(out.named.is_empty(), "{df}: {:?}", out.named);
            assert_eq!(out.entries, 5, "{df}");
        }
    }

    #[test]
    fn a_missing_target_stage_is_a_usage_error() {
        let df = ctxbuild::dockerfile::parse("FROM x AS build\nFROM y\n", "bb.df").unwrap();
        assert!(check_target(&df, "build").is_ok());
        assert!(check_target(&df, "BUILD").is_ok());
        let e = check_target(&df, "nope").unwrap_err();
        let text = ctxbuild::diagnostics::render(&e);
        assert!(
            text.contains("bb.df: target stage 'nope' could not be found"),
            "{text}"
        );
        assert!(text.contains("hint: name the stage"), "{text}");
        assert_eq!(ctxbuild::diagnostics::status_of(&e), ExitStatus::Error);
    }

    #[test]
    fn the_progress_plain_hint_only_when_progress_was_not_plain() {
        let failed = || EngineError::BuildFailed {
            step: None,
            message: "returned a non-zero code: 3".into(),
            code: Some(3),
            tail: vec![],
        };
        let bars = ctxbuild::diagnostics::render(&build_error(failed(), false));
        assert!(bars.contains("hint: rerun with --progress plain"), "{bars}");
        let plain_err = build_error(failed(), true);
        let plain = ctxbuild::diagnostics::render(&plain_err);
        assert!(!plain.contains("--progress plain"), "{plain}");
        assert!(plain.contains("error: the build failed"), "{plain}");
        assert_eq!(
            ctxbuild::diagnostics::status_of(&plain_err),
            ExitStatus::BuildFailed
        );
    }

    #[test]
    fn a_missing_context_dir_names_the_service_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("ctxbuild.toml");
        let text =
            "[services.nosvc]\nkind = \"python-asgi\"\ncontext = \"nosvc\"\napp = \"main:app\"\n";
        let config = Config::parse(&toml, text).unwrap();
        let svc = config.service("nosvc").unwrap();
        let e = check_context_dir(&config, svc, &config.context_dir(svc)).unwrap_err();
        let shown = ctxbuild::diagnostics::render(&e);
        assert!(shown.contains("the context directory"), "{shown}");
        assert!(shown.contains("nosvc"), "{shown}");
        assert!(shown.contains("of service `nosvc`"), "{shown}");
        assert!(shown.contains("does not exist"), "{shown}");
        assert!(!shown.contains("-f is relative"), "{shown}");
        assert_eq!(ctxbuild::diagnostics::status_of(&e), ExitStatus::Error);
        std::fs::create_dir(dir.path().join("nosvc")).unwrap();
        assert!(check_context_dir(&config, svc, &config.context_dir(svc)).is_ok());
    }

    #[test]
    fn labels_become_one_quoted_label_line() {
        let text = with_label_line(
            "FROM x\nCOPY . /app",
            &[
                (
                    "dev.ctxbuild.template".into(),
                    "python-asgi/alpine v1".into(),
                ),
                ("q".into(), "say \"hi\"".into()),
            ],
        );
        assert_eq!(
            text,
            "FROM x\nCOPY . /app\nLABEL \"dev.ctxbuild.template\"=\"python-asgi/alpine v1\" \"q\"=\"say \\\"hi\\\"\"\n"
        );
        assert_eq!(with_label_line("FROM x\n", &[]), "FROM x\n");
        // The parser ctxbuild keys with reads it as one more instruction.
        let df = ctxbuild::dockerfile::parse(&text, "Dockerfile").unwrap();
        assert_eq!(df.instructions.len(), 3);
    }

    #[test]
    fn git_revision_matches_git_itself() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let git = std::process::Command::new("git")
            .arg("-C")
            .arg(here)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        if git.status.success() {
            let want = String::from_utf8(git.stdout).unwrap().trim().to_string();
            assert_eq!(read_git_head(here).as_deref(), Some(want.as_str()));
        }
        assert_eq!(read_git_head(Path::new("/")), None);
    }

    #[test]
    fn pairs_parse_like_docker_build() {
        assert_eq!(
            parse_pairs(&["A=1".into(), "B=x=y".into(), "C=".into()], "--build-arg").unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), "".into())
            ]
        );
        assert!(parse_pairs(&["=v".into()], "--label").is_err());
    }
}
