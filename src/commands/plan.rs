//! `ctxbuild plan`: [`compute`] the per-step keys and print them as a "Step N/M" table or JSON;
//! `--save` keeps the plan with its manifest for `ctxbuild explain`. Also how `plan` and
//! `explain` word the run's notes.

use crate::cli::PlanArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use anyhow::Context as _;
use ctxbuild::builder::{Builder, Choice, ChoiceReason};
use ctxbuild::config::Settings;
use ctxbuild::key::compute::{compute, Computed, Note, Request};
use std::path::Path;

/// Words the notes of a plan run: details with `-v`, warnings always.
pub(super) fn show_notes(notes: &[Note], printer: &Printer) {
    for n in notes {
        match n {
            Note::StatCacheRebuilt { path, why } => {
                printer.verbose(&format!("stat cache {} rebuilt: {why}", path.display()))
            }
            Note::Scanned { entries, took } => {
                printer.verbose(&format!("scanned {entries} entries in {took:.0?}"))
            }
            Note::Keyed { stats, took } => {
                printer.verbose(&format!(
                    "{} files: {} hashed ({} bytes), {} from the stat cache",
                    stats.files, stats.hashed, stats.hashed_bytes, stats.cached
                ));
                printer.verbose(&format!("keyed the context in {took:.0?}"));
            }
            Note::Planned { steps, took } => {
                printer.verbose(&format!("planned {steps} steps in {took:.0?}"))
            }
            Note::DockerfileWarning {
                file,
                line,
                message,
            } => printer.warn(&format!("{file}:{line}: {message}")),
            Note::StatCacheNotSaved { error } => printer.warn(error),
            Note::PlanFileSent { rel } => printer.warn(&format!(
                "{} lies inside the context and is not in .dockerignore: `COPY .` will see it \
                 change\nhint: save the plan outside the context (e.g. --save ../plan.json) or \
                 add `{}` to .dockerignore",
                rel.display(),
                rel.display()
            )),
        }
    }
}

/// Which builder's cache the keys predict, with `-v`.
pub(super) fn say_builder(choice: &Choice, printer: &Printer) {
    let why = match &choice.reason {
        ChoiceReason::Asked => "asked".to_string(),
        ChoiceReason::Needed(n) => format!("auto: {} at line {}", n.what, n.line),
        ChoiceReason::NotNeeded => "auto: nothing needs BuildKit".to_string(),
        ChoiceReason::EngineLacks(n) => {
            format!("auto: {} at line {}, engine lacks BuildKit", n.what, n.line)
        }
    };
    printer.verbose(&format!(
        "keys predict the {} builder's cache ({why})",
        choice.builder
    ));
}

pub fn run(
    args: &PlanArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    // `--save -` (or `/dev/stdout`) makes the saved plan the whole of standard output: the table
    // or `--json` beside it would make the JSON unreadable.
    let save_to_stdout = args
        .save
        .as_deref()
        .is_some_and(ctxbuild::fsutil::names_stdout);
    if save_to_stdout && args.json {
        anyhow::bail!(
            "--save {} and --json both write to standard output\nhint: save the plan to a file \
             (--save plan.json), or drop --json",
            args.save.as_deref().unwrap_or(Path::new("-")).display()
        );
    }
    let req = Request {
        dir: &args.context.dir,
        file: args.context.file.as_deref(),
        build_args: &args.build.build_args,
        target: args.build.target.clone(),
        stat_cache: !args.no_stat_cache,
        watch: args.save.as_deref().filter(|_| !save_to_stdout),
        builder: args.build.builder.unwrap_or_default(),
    };
    let Computed {
        plan,
        manifest: m,
        notes,
        builder,
    } = compute(&req, settings)?;
    show_notes(&notes, printer);
    say_builder(&builder, printer);
    let used = args.context.dir.join(&plan.dockerfile);
    super::say_dockerfile(
        printer,
        &args.context.dir,
        args.context.file.as_deref(),
        Some(used.as_path()),
    );
    // Not freed entry by entry at exit (see `compute`) unless it is saved.
    let m = std::mem::ManuallyDrop::new(m);
    if let Some(save) = &args.save {
        let mut saved = plan.clone();
        saved.manifest = Some(std::mem::ManuallyDrop::into_inner(m));
        // Written as it is encoded: a million-file manifest is ~150 MB of JSON, which should
        // not be held beside the manifest it encodes.
        ctxbuild::fsutil::write_output_with(save, |f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
            serde_json::to_writer(&mut w, &saved).map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut w)
        })
        .with_context(|| format!("cannot write {}", save.display()))?;
        if save_to_stdout {
            return Ok(ExitStatus::Success);
        }
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
        // BuildKit: a stage the target does not read is never built, and metadata lines
        // make no vertex (their JSON key is the vertex before them).
        let is_from = s
            .instruction
            .get(..4)
            .is_some_and(|k| k.eq_ignore_ascii_case("from"));
        let key = match plan.builder {
            Builder::BuildKit if s.skipped => "skipped",
            Builder::BuildKit if !s.cacheable && !is_from => "-",
            _ => &s.key[..12],
        };
        printer.line(&format!(
            "{:<8} {:<12} {:>6}  {}",
            format!("{}/{}", s.index, s.total),
            key,
            files,
            s.instruction
        ))?;
    }
    printer.info(&format!("context digest {}", plan.context_digest));
    Ok(ExitStatus::Success)
}
