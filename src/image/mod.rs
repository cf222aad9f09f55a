//! `image` as a library use case: resolve a service from `ctxbuild.toml`, pick or render its
//! Dockerfile, gate on `check`, scan the context (bytecode always left out), key it, stream the
//! deterministic tar to the engine, push, and return the per-layer cache report as data.
//!
//! [`build`] takes an [`ImageRequest`] and the resolved [`Settings`] and returns an
//! [`ImageOutcome`]; progress streams into a [`Sink`] as [`Event`]s. Nothing here prints,
//! parses command lines or picks exit codes: errors carry an
//! [`ErrorClass`](crate::diagnostics::ErrorClass) and hints.

pub mod cachefrom;
pub mod dockerfile;
pub mod inject;
pub mod labels;
pub mod noop;
pub mod reason;

pub use dockerfile::{DockerfileSource, ResolvedDockerfile};

use crate::buildargs::{self, BuildArg, Label};
use crate::builder::{self, Builder, BuilderChoice, EngineSupport};
use crate::check::{self, DockerfileText, Finding};
use crate::clean::{self, CleanOptions, Mode, Rules, Scope};
use crate::config::Settings;
use crate::context::{self, ContextOptions};
use crate::diagnostics::{diagnose, ErrorClass, ResultExt};
use crate::engine::{self, BuildOptions, DockerConfig, Engine, EngineConfig, EngineError};
use crate::events::{CleanProgress, Degraded, Event, Sink};
use crate::keep_out;
use crate::key::manifest::ManifestEntry;
use crate::key::store::{PlanKey, PlanStore};
use crate::key::{self, Manifest, Plan, PlanOptions, StatCache};
use crate::pollution;
use crate::report::{DockerfileUsed, Report};
use crate::service::Config;
use crate::tarball::{self, TarOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to build, as asked.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// `ctxbuild.toml` (or `-c FILE`).
    pub config_path: PathBuf,
    pub service: String,
    pub dockerfile: DockerfileSource,
    /// `-t`, in order; empty means `ctxbuild/SERVICE:latest-build`.
    pub tags: Vec<String>,
    pub build_args: Vec<BuildArg>,
    pub target: Option<String>,
    /// Extra labels, after ctxbuild's own.
    pub labels: Vec<Label>,
    pub no_cache: bool,
    /// Build even when nothing changed since the last build (no no-op fast path).
    pub force: bool,
    pub pull: bool,
    pub platform: Option<String>,
    pub push: bool,
    /// `--cache-from`: images the engine may take cached steps from, pulled when absent.
    pub cache_from: Vec<String>,
    /// Remove the context's bytecode before scanning it.
    pub clean: bool,
    /// Refuse to build when `check` finds errors.
    pub check: bool,
    /// The engine, as for `docker -H` (default: `$DOCKER_HOST` or the local socket).
    pub engine_host: Option<String>,
    /// `--builder`; `None` = the service's `builder` (default auto, see [`crate::builder`]).
    pub builder: Option<BuilderChoice>,
}

/// A finished build.
#[derive(Debug)]
pub struct ImageOutcome {
    /// The per-layer cache report (rebuild reason, kept-out bytecode and pushed digests inside).
    pub report: Report,
    /// Bytecode a COPY/ADD names on purpose, sent although it is pollution.
    pub bytecode_named: Vec<String>,
    /// The build succeeded but pushing failed: the report is still worth showing.
    pub push_error: Option<anyhow::Error>,
}

/// The `check` gate refused to build.
#[derive(Debug, thiserror::Error)]
#[error("`ctxbuild check` found {} in service `{service}`; not building:\n{}", errors(findings.len()), shown(findings))]
pub struct GateFailed {
    pub service: String,
    pub findings: Vec<Finding>,
}

fn errors(n: usize) -> String {
    if n == 1 {
        "1 error".to_string()
    } else {
        format!("{n} errors")
    }
}

fn shown(findings: &[Finding]) -> String {
    let lines: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{}: error[{}] {}\n  fix: {}",
                f.location(),
                f.rule,
                f.message,
                f.fix
            )
        })
        .collect();
    lines.join("\n")
}

/// Builds (and pushes) a service's image.
pub fn build(
    req: &ImageRequest,
    settings: &Settings,
    sink: &dyn Sink,
) -> anyhow::Result<ImageOutcome> {
    // Bad input fails before anything is scanned, built or tagged.
    for tag in req.tags.iter().chain(&req.cache_from) {
        engine::reference::check_tag(tag).map_err(diagnose)?;
    }
    if let Some(p) = &req.platform {
        engine::reference::check_platform(p).map_err(diagnose)?;
    }
    let mtime = settings.mtime()?;

    let config = Config::load(&req.config_path).map_err(diagnose)?;
    let svc = config.service(&req.service).map_err(diagnose)?;
    let ctx_dir = config.context_dir(svc);
    dockerfile::check_context_dir(&config, svc, &ctx_dir)?;
    // Checked before anything else happens: `--clean` removes files, and a symbolic link in a
    // cloned repository must not send it outside the project.
    let clean_dir = if req.clean {
        let dir = config.contained_context_dir(svc).map_err(|e| {
            anyhow::anyhow!(
                "refusing --clean: {e} ({}:{})",
                config.path.display(),
                svc.pos("context").line
            )
        });
        Some(dir.hint(
            "remove the link, or declare the context where it really is (`context = \"../…\"`) if it belongs outside",
        )?)
    } else {
        None
    };

    let choice = req.builder.unwrap_or(svc.builder);
    // Only an explicit BuildKit builder renders the template's BuildKit flavour (`auto` keeps
    // the classic one, which needs no BuildKit).
    let df = dockerfile::resolve(
        &req.dockerfile,
        &config,
        svc,
        choice == BuilderChoice::BuildKit,
    )?;
    sink.event(&Event::DockerfileChosen {
        service: &svc.name,
        dockerfile: &df.display,
        reason: &df.reason,
    });
    // A parse error is the check gate's to report (or the engine's, with --no-check).
    let parsed = crate::dockerfile::parse(&df.text, &df.display).ok();
    if let (Some(parsed), Some(target)) = (&parsed, req.target.as_deref()) {
        parsed.steps(Some(target)).map_err(diagnose)?;
    }
    if req.check {
        // The gate checks for the builder this build will use (BuildKit-only syntax is an
        // error only for classic); an engine without BuildKit is told apart below.
        let findings = check::gate(
            &config,
            svc,
            &DockerfileText::new(df.display.clone(), df.text.clone(), df.rendered.is_some()),
            &check::Options {
                builder: Some(choice),
            },
        )
        .map_err(diagnose)?;
        if !findings.is_empty() {
            return Err(GateFailed {
                service: svc.name.clone(),
                findings,
            })
            .hint("fix them, or pass --no-check to build anyway")
            .with_class(ErrorClass::Findings);
        }
    }

    // The gate runs first: what it stops never reaches the engine. Then fail fast when no
    // engine answers, before the scan, keys and tar.
    let engine_config = EngineConfig::from_env(req.engine_host.as_deref()).map_err(diagnose)?;
    let engine = Engine::connect(&engine_config).map_err(diagnose)?;
    sink.event(&Event::EngineConnected {
        host: engine.host(),
        api_version: engine.api_version(),
    });
    let chosen = builder::choose(
        choice,
        parsed.as_ref(),
        Some(EngineSupport::from_version(engine.api_version(), "")),
    );
    sink.event(&Event::BuilderChosen { choice: &chosen });
    if let (Builder::BuildKit, Some(parsed)) = (chosen.builder, parsed.as_ref()) {
        if let Some(bad) = builder::buildkit_rejects(parsed, engine.api_version()) {
            let flag = bad.what.rsplit("--").next().unwrap_or_default();
            return Err(anyhow::anyhow!(
                "{}:{}: {} is unknown to the BuildKit of this engine (API {}, Docker 20.10 or older); the build would fail with \"dockerfile parse error line {}: Unknown flag: {flag}\"",
                df.display,
                bad.line,
                bad.what,
                engine.api_version(),
                bad.line
            ))
            .hint("drop the flag, or build on Docker 23 or newer (a `# syntax=` frontend would have to be pulled)")
            .with_class(ErrorClass::Findings);
        }
    }
    let buildkit = chosen.builder == Builder::BuildKit;
    if let Some(dir) = &clean_dir {
        clean_context(dir, settings, sink)?;
    }

    let mut scanned = context::scan(&ContextOptions {
        root: ctx_dir.clone(),
        dockerfile: df.path.clone(),
        buildkit,
        threads: settings.threads.get(),
    })
    .map_err(diagnose)?;
    if scanned.has_unreadable() {
        let context = config.display_path(&svc.context);
        let issues: Vec<String> = scanned
            .issues
            .iter()
            .map(|i| format!("{context}: {i}"))
            .collect();
        return Err(anyhow::anyhow!("{}", issues.join("\n"))
            .context("some files of the context cannot be read; docker build would fail too"));
    }

    // Bytecode never reaches the engine, whatever .dockerignore says: leave it out of what
    // COPY sees (and so of the keys) and of the tar.
    let sources = parsed
        .as_ref()
        .map(keep_out::copy_sources)
        .unwrap_or_default();
    let kept_out = keep_out::exclude_pollution(&mut scanned.entries, &sources);
    if !kept_out.named.is_empty() {
        sink.event(&Event::BytecodeNamed {
            paths: &kept_out.named,
        });
    }
    if kept_out.entries > 0 {
        sink.event(&Event::BytecodeKeptOut {
            entries: kept_out.entries,
            bytes: kept_out.bytes,
            rules: pollution::DOCKERIGNORE_RULES,
        });
    }

    // The Dockerfile travels in the tar: as the context's own file, or injected under a fixed
    // name with a .dockerignore line that hides it from COPY. An injected one carries the
    // labels as one LABEL line: the engine would add one cached-or-not step per label.
    let inject = df.rendered.is_some() || scanned.dockerfile.is_none();
    // Read before keying takes the entries.
    let own_ignore = if inject {
        inject::own_dockerignore(&scanned)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context("cannot read .dockerignore of the context"))?
    } else {
        None
    };

    // ctxbuild's own keys of the context, for the source-digest label and the rebuild reason.
    // Keying takes the scanned entries: from then on the manifest's records are what the
    // build sends, so a large context is never held twice.
    let cache_dir = settings.build_cache_dir();
    let mut manifest = match key_context(&mut scanned, &cache_dir, settings) {
        Ok((m, threads)) => {
            sink.event(&Event::ContextKeyed {
                files: m.entries.len(),
                threads,
            });
            give_back_freed_memory();
            Some(m)
        }
        Err(e) => {
            sink.event(&Event::Degraded {
                what: Degraded::KeyContext,
                error: &e,
            });
            None
        }
    };

    let mut image_labels = vec![(labels::SERVICE.to_string(), svc.name.clone())];
    if let Some(r) = &df.rendered {
        image_labels.push((
            labels::TEMPLATE.to_string(),
            format!("{} v{}", r.template, r.template_version),
        ));
    }
    if let Some(m) = &manifest {
        image_labels.push((labels::SOURCE_DIGEST.to_string(), m.digest()));
    }
    if let Some(rev) = labels::git_revision(&ctx_dir) {
        image_labels.push((labels::REVISION.to_string(), rev));
    }
    image_labels.extend(req.labels.iter().map(|l| (l.key.clone(), l.value.clone())));

    // With --target only the engine knows which stage is last: labels go through the API.
    let label_line = inject && req.target.is_none();
    let text_with = |labels: &[(String, String)]| {
        if label_line {
            labels::with_label_line(&df.text, labels)
        } else {
            df.text.clone()
        }
    };

    // The plan is keyed without its own label (it cannot contain itself); every build keys it
    // the same way, so plans stay comparable.
    let build_args = buildargs::resolve_from_process(&req.build_args);
    let plan = manifest.as_ref().and_then(|m| {
        let text = text_with(&image_labels);
        match plan_steps(
            &text,
            &df.display,
            m,
            &build_args,
            req.target.as_deref(),
            chosen.builder,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                sink.event(&Event::Degraded {
                    what: Degraded::PlanSteps,
                    error: &e,
                });
                None
            }
        }
    });
    // The plan travels in the image, so a builder that only pulled it can explain a rebuild.
    // The manifest is lent to the labelled plan, not copied (it is the size of the context).
    if let (Some(plan), Some(m)) = (&plan, manifest.take()) {
        let files = m.entries.len();
        let mut with_manifest = plan.clone();
        with_manifest.manifest = Some(m);
        match cachefrom::plan_label(&with_manifest) {
            Some(v) => image_labels.push((labels::PLAN.to_string(), v)),
            None => sink.event(&Event::Degraded {
                what: Degraded::PlanLabel,
                error: &anyhow::anyhow!(
                    "the plan of {files} files exceeds the {} KiB label limit",
                    cachefrom::PLAN_LABEL_LIMIT >> 10
                ),
            }),
        }
        manifest = with_manifest.manifest.take();
    }
    let manifest = manifest.map(Arc::new);
    let text = text_with(&image_labels);
    let api_labels = if label_line { Vec::new() } else { image_labels };
    let (tar_opts, dockerfile_in_tar) = if inject {
        let opts = inject::tar_options(&scanned, own_ignore, &text, mtime);
        (opts, inject::INJECTED_DOCKERFILE.to_string())
    } else {
        let name = scanned.dockerfile.as_ref().map_or_else(
            || "Dockerfile".to_string(),
            |p| p.to_string_lossy().into_owned(),
        );
        (
            TarOptions {
                mtime,
                ..Default::default()
            },
            name,
        )
    };

    let tags = if req.tags.is_empty() {
        vec![format!("ctxbuild/{}:latest-build", svc.name)]
    } else {
        req.tags.clone()
    };
    let plan_key = PlanKey {
        context: scanned.root.clone(),
        dockerfile: df.identity(),
        service: svc.name.clone(),
        tag: tags[0].clone(),
    };
    let inputs = noop::Inputs {
        text: &text,
        dockerfile_in_tar: &dockerfile_in_tar,
        api_labels: &api_labels,
        target: req.target.as_deref(),
        platform: req.platform.as_deref(),
        builder: chosen.builder,
    };
    let allowed = noop::Allowed {
        force: req.force,
        no_cache: req.no_cache,
        pull: req.pull,
    };
    if let Some(mut report) = plan
        .as_ref()
        .and_then(|p| noop::check(&engine, &cache_dir, &plan_key, p, &inputs, allowed))
    {
        report.dockerfile = Some(DockerfileUsed {
            path: df.display.clone(),
            reason: df.reason.clone(),
        });
        report.builder = chosen.builder;
        return up_to_date(&engine, req, &tags, &mut report, kept_out, sink);
    }
    let cache = cachefrom::prepare(&engine, &req.cache_from, &tags, &svc.name, sink)?;
    let opts = BuildOptions {
        dockerfile: Some(dockerfile_in_tar.clone()),
        tags: tags.clone(),
        build_args,
        labels: api_labels.clone(),
        target: req.target.clone(),
        no_cache: req.no_cache,
        pull: req.pull,
        platform: req.platform.clone(),
        cache_from: cache.sources.clone(),
    };

    engine.cancel_on_signals().map_err(diagnose)?;
    let built = if buildkit {
        // BuildKit reads the Dockerfile from its own source: served from memory, under the
        // name the daemon is told, whether it exists on disk or was rendered.
        let ignore = applied_ignore(&scanned)?;
        let input = engine::BuildKitInput {
            // Unreadable configuration: anonymous pulls, as the classic path's build does.
            credentials: DockerConfig::load(
                engine::auth::config_dir(&|k| std::env::var(k).ok()).as_deref(),
            )
            .ok(),
            numbering: parsed_numbering(&text, &df.display, req.target.as_deref()),
            sources: engine::Sources {
                root: scanned.root.clone(),
                // Moved or shared, never copied: a copy would double the peak memory of a
                // large context.
                entries: match &manifest {
                    Some(m) => Box::new(Arc::clone(m)),
                    None => Box::new(std::mem::take(&mut scanned.entries)),
                },
                dockerfile_name: buildkit_dockerfile_name(&df),
                dockerfile: text.clone().into_bytes(),
                ignore,
            },
        };
        let mut opts = opts;
        opts.dockerfile = Some(input.sources.dockerfile_name.clone());
        engine.build_buildkit(&opts, input, &mut |e| sink.event(&Event::Build(e)))
    } else {
        // The producer thread takes the scanned context itself and shares the manifest: a
        // copy of either would double the peak memory of a large context.
        let keyed = manifest.clone();
        let producer = move |w: &mut dyn std::io::Write| -> Result<(), engine::error::BoxError> {
            write_sent(&scanned, keyed.as_deref(), w, &tar_opts)?;
            Ok(())
        };
        engine.build(&opts, producer, &mut |e| sink.event(&Event::Build(e)))
    };
    sink.event(&Event::Finished);
    let built = built.map_err(|e| {
        // Only a render takes `--base-image`; a Dockerfile of the user's refuses it.
        let unpullable = e.is_unpullable_base();
        let e = diagnose(e);
        if unpullable && df.rendered.is_some() {
            let e: anyhow::Result<()> = Err(e).hint(
                "or build the template on a base the engine has: `--base-image IMAGE` (`scripts/base-images.sh` makes ctxbuild-test/python:3-bookworm offline)",
            );
            e.unwrap_err()
        } else {
            e
        }
    })?;

    let history = engine.history(&built.image_id).map_err(diagnose)?;
    // The image's size is the sum of its layers: no second request needed.
    let size = history.iter().map(|l| l.size).sum();
    let mut report = Report::new(Some(svc.name.clone()), &built, &history, size);
    report.builder = chosen.builder;
    cache.mark(&mut report);
    report.dockerfile = Some(DockerfileUsed {
        path: df.display.clone(),
        reason: df.reason.clone(),
    });
    report.context.pollution_excluded_entries = kept_out.entries;
    report.context.pollution_excluded_bytes = kept_out.bytes;
    if let (Some(plan), Some(manifest)) = (plan, manifest) {
        let store = PlanStore::new(&cache_dir);
        let key = plan_key;
        if let Err(e) = noop::remember(&engine, &cache_dir, &key, &plan, &inputs, &built, &report) {
            let e = anyhow::Error::from(e).context("the next unchanged build will run in full");
            sink.event(&Event::Degraded {
                what: Degraded::SavePlan,
                error: &e,
            });
        }
        // Only a rebuilt step has a reason to find: the saved plan (a manifest as large as
        // this build's) is not read beside this one otherwise.
        if !req.no_cache && report.first_built_step().is_some() {
            // This machine's last plan (its manifest read against this one: the records
            // that did not change are not held twice), else the one a cache image carries.
            report.rebuild_reason = match store.load_against(&key, &manifest) {
                Some((previous, old_m)) => {
                    reason::rebuild_reason(&report, Some((&previous, &old_m)), &plan, &manifest)
                }
                None => {
                    let empty = Manifest::default();
                    let previous = cache.plans.first();
                    let old_m = previous.and_then(|p| p.manifest.as_ref()).unwrap_or(&empty);
                    reason::rebuild_reason(&report, previous.map(|p| (p, old_m)), &plan, &manifest)
                }
            };
        }
        // Borrowed: the session's tasks may not have let go of their share yet.
        if let Err(e) = store.save(&key, &plan, &manifest) {
            let e = anyhow::Error::from(e).context(format!(
                "cannot save this build's plan to {}",
                store.path(&key).display()
            ));
            sink.event(&Event::Degraded {
                what: Degraded::SavePlan,
                error: &e,
            });
        }
    }
    if req.no_cache {
        // Nothing changed: the cache was not asked.
        report.rebuild_reason = report.no_cache_reason();
    }

    let mut push_error = None;
    if req.push {
        push_error = push(&engine, &tags, &mut report, sink)?;
    }
    Ok(ImageOutcome {
        report,
        bytecode_named: kept_out.named,
        push_error,
    })
}

/// The no-op build's end: the recorded image gets this request's tags and is pushed if asked
/// (a registry that has the digest answers at once).
fn up_to_date(
    engine: &Engine,
    req: &ImageRequest,
    tags: &[String],
    report: &mut Report,
    kept_out: keep_out::KeptOut,
    sink: &dyn Sink,
) -> anyhow::Result<ImageOutcome> {
    for tag in tags {
        engine.tag(&report.image_id, tag).map_err(diagnose)?;
    }
    report.tags = tags.to_vec();
    report.context.pollution_excluded_entries = kept_out.entries;
    report.context.pollution_excluded_bytes = kept_out.bytes;
    let push_error = if req.push {
        engine.cancel_on_signals().map_err(diagnose)?;
        push(engine, tags, report, sink)?
    } else {
        None
    };
    Ok(ImageOutcome {
        report: report.clone(),
        bytecode_named: kept_out.named,
        push_error,
    })
}

/// Pushes every tag in order, stopping at the first failure (returned, not raised: the build
/// succeeded). An interrupt is raised.
fn push(
    engine: &Engine,
    tags: &[String],
    report: &mut Report,
    sink: &dyn Sink,
) -> anyhow::Result<Option<anyhow::Error>> {
    let docker_config =
        DockerConfig::load(engine::auth::config_dir(&|k| std::env::var(k).ok()).as_deref())
            .map_err(diagnose)?;
    let mut failed = None;
    for tag in tags {
        let pushed = docker_config.credentials_for(tag).and_then(|creds| {
            engine.push(tag, creds.as_ref(), &mut |event| {
                sink.event(&Event::Push { tag, event })
            })
        });
        match pushed {
            Ok(p) => {
                sink.event(&Event::Pushed {
                    tag,
                    digest: p.digest.as_deref(),
                });
                report.pushed.push(p);
            }
            Err(EngineError::Interrupted) => {
                sink.event(&Event::Finished);
                return Err(diagnose(EngineError::Interrupted));
            }
            Err(e) => {
                failed = Some(diagnose(e));
                break;
            }
        }
    }
    sink.event(&Event::Finished);
    Ok(failed)
}

/// Runs `ctxbuild clean --context-only` on the context before scanning it.
fn clean_context(ctx_dir: &Path, settings: &Settings, sink: &dyn Sink) -> anyhow::Result<()> {
    let threads = settings.threads.get();
    let opts = CleanOptions {
        root: ctx_dir.to_path_buf(),
        rules: Rules::bytecode(),
        mode: Mode::Remove,
        scope: Scope::Context,
        walk_threads: threads,
        remove_threads: clean::default_remove_threads(threads),
        cross_filesystems: false,
    };
    let report = clean::clean(&opts, &CleanProgress(sink)).map_err(diagnose)?;
    sink.event(&Event::ContextCleaned {
        files: report.files,
        dirs: report.dirs,
        bytes: report.bytes,
    });
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

/// The content manifest of the context as COPY will see it, hashed on the settings' pool (the
/// stat cache makes it cheap), and how many threads that pool hashed on.
///
/// On success the scanned entries have moved into the manifest (`scanned.entries` is empty);
/// on an error they are left in place for a build without keys.
fn key_context(
    scanned: &mut context::Context,
    cache_dir: &Path,
    settings: &Settings,
) -> anyhow::Result<(Manifest, usize)> {
    let stat_dir = cache_dir.join("stat");
    let mut stat = StatCache::load(&stat_dir, &scanned.root);
    // A stat cache that cannot be written only makes the next run slower.
    let writable = std::fs::create_dir_all(&stat_dir).is_ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let root = scanned.root.clone();
    let entries = &mut scanned.entries;
    // Asked inside the pool: the number of threads the hashing really ran on.
    let (built, threads) = settings.pool.install(|| {
        let cache = if writable { Some(&mut stat) } else { None };
        (
            key::manifest::build_taking(&root, entries, cache, now),
            rayon::current_num_threads(),
        )
    });
    let (manifest, _, _) = built.map_err(diagnose)?;
    Ok((manifest, threads))
}

/// Returns the heap pages freed so far to the system. Keying frees the scan's lists (a
/// million-file context: ~100 MB of entries, the bytecode's paths, the walkers' batches) in
/// holes the allocator keeps: without this the build ran with ~60 MiB more resident than it
/// used, at the peak of the whole command.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of glibc's own arenas; it touches no
    // memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The context tar of `scanned`, from the records of its keyed manifest when keying took its
/// entries (`keyed`), else from the entries themselves: the same bytes either way.
fn write_sent(
    scanned: &context::Context,
    keyed: Option<&Manifest>,
    w: &mut dyn std::io::Write,
    opts: &TarOptions,
) -> Result<tarball::TarStats, tarball::TarError> {
    match keyed {
        Some(m) => {
            let hidden: Vec<ManifestEntry> =
                scanned.hidden.iter().map(ManifestEntry::unkeyed).collect();
            let sent = scanned.sent_of(&m.entries, &hidden);
            tarball::write_context(&scanned.root, sent, w, opts)
        }
        None => tarball::write_context(&scanned.root, scanned.sent(), w, opts),
    }
}

/// The name the Dockerfile is served under to BuildKit: its own file name, or `Dockerfile` for
/// a render.
fn buildkit_dockerfile_name(df: &ResolvedDockerfile) -> String {
    df.path
        .as_ref()
        .filter(|_| df.rendered.is_none())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_string())
}

/// The bytes of the ignore file the scan applied (none without one).
fn applied_ignore(scanned: &context::Context) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(rel) = &scanned.ignore_file else {
        return Ok(None);
    };
    let path = scanned.root.join(rel);
    let bytes = crate::fsutil::read_limited(&path, crate::fsutil::TEXT_LIMIT)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context(format!("cannot read {}", path.display())))?;
    Ok(Some(bytes))
}

/// Maps BuildKit's per-stage step numbers onto the classic builder's numbers of the Dockerfile
/// as sent, so both builders' reports and the plan name steps alike. Empty when it does not
/// parse (the engine then numbers steps in the order it announces them).
fn parsed_numbering(text: &str, display: &str, target: Option<&str>) -> engine::Numbering {
    use crate::dockerfile::Keyword;
    let Ok(df) = crate::dockerfile::parse(text, display) else {
        return engine::Numbering::default();
    };
    let Ok(steps) = df.steps(target) else {
        return engine::Numbering::default();
    };
    let stages = df.stages();
    let mut n = engine::Numbering {
        stages: Vec::new(),
        total: steps.len(),
    };
    for s in &steps {
        let kw = s.instruction.keyword;
        if kw == Keyword::From {
            let name = s
                .stage
                .and_then(|i| stages.get(i))
                .and_then(|st| st.name.clone())
                .map(|n| n.to_ascii_lowercase());
            n.stages.push((name, Vec::new()));
        }
        let fs_op = matches!(
            kw,
            Keyword::From | Keyword::Run | Keyword::Copy | Keyword::Add | Keyword::Workdir
        );
        if let (true, Some(last)) = (fs_op, n.stages.last_mut()) {
            last.1.push((s.number, s.instruction.original.clone()));
        }
    }
    n
}

/// The per-step keys of the Dockerfile as sent.
fn plan_steps(
    text: &str,
    display: &str,
    manifest: &Manifest,
    build_args: &[(String, String)],
    target: Option<&str>,
    builder: Builder,
) -> anyhow::Result<Plan> {
    let df = crate::dockerfile::parse(text, display).map_err(diagnose)?;
    let opts = PlanOptions {
        build_args: build_args.to_vec(),
        target: target.map(str::to_string),
        // The keys follow what the chosen builder hashes (see `key::buildkit`).
        builder,
    };
    key::plan(&df, manifest, &opts).map_err(diagnose)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{class_of, hints_of, messages};

    #[test]
    fn a_missing_target_stage_is_a_usage_error() {
        let df = crate::dockerfile::parse("FROM x AS build\nFROM y\n", "bb.df").unwrap();
        assert!(df.steps(Some("build")).is_ok());
        assert!(df.steps(Some("BUILD")).is_ok());
        let e = diagnose(df.steps(Some("nope")).unwrap_err());
        let text = messages(&e).join("\n");
        assert!(
            text.contains("bb.df: target stage 'nope' could not be found"),
            "{text}"
        );
        assert!(hints_of(&e).iter().any(|h| h.contains("name the stage")));
        assert_eq!(class_of(&e), ErrorClass::Failed);
    }

    /// The classic transfer writes the same tar from the keyed manifest as from the scanned
    /// entries: implied directories left out, hidden files sent, links, pipes and modes kept.
    #[test]
    fn the_tar_from_the_manifest_is_the_tar_from_the_entries() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(
            root.join(".dockerignore"),
            "docs\n!docs/keep.md\nDockerfile\n.dockerignore\n",
        )
        .unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join("main.py"), "print(1)\n").unwrap();
        std::fs::set_permissions(root.join("main.py"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/keep.md"), "keep").unwrap();
        std::fs::write(root.join("docs/drop.md"), "drop").unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("../main.py", root.join("sub/link")).unwrap();
        use std::os::unix::ffi::OsStringExt;
        let fifo = std::ffi::CString::new(root.join("sub/pipe").into_os_string().into_vec());
        assert_eq!(unsafe { libc::mkfifo(fifo.unwrap().as_ptr(), 0o640) }, 0);

        let scanned = context::scan(&ContextOptions::new(root)).unwrap();
        let tar_of = |ctx: &context::Context, keyed: Option<&Manifest>| {
            let mut out = Vec::new();
            write_sent(ctx, keyed, &mut out, &TarOptions::default()).unwrap();
            out
        };
        let want = tar_of(&scanned, None);
        let mut keyed = scanned.clone();
        let (m, _, _) =
            key::manifest::build_taking(&keyed.root.clone(), &mut keyed.entries, None, 0).unwrap();
        assert!(keyed.entries.is_empty(), "keying took the entries");
        let got = tar_of(&keyed, Some(&m));
        let names: Vec<String> = tar::Archive::new(got.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for sent in [
            "Dockerfile",
            ".dockerignore",
            "docs/keep.md",
            "sub/link",
            "sub/pipe",
        ] {
            assert!(names.iter().any(|n| n == sent), "{sent} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("docs/drop")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "docs" || n == "docs/"),
            "{names:?}"
        );
        assert!(
            got == want,
            "same bytes from the manifest as from the entries"
        );
    }
}
