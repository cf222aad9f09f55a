//! `ctxbuild explain --since FILE`: compare the current plan with one saved by
//! `ctxbuild plan --save` and say, per step, hit, miss or
//! maybe (depends on content ctxbuild cannot see), and why the first miss misses.

use super::plan::{say_builder, show_notes};
use crate::cli::ExplainArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use anyhow::Context as _;
use ctxbuild::builder::{Builder, BuilderChoice};
use ctxbuild::config::Settings;
use ctxbuild::diagnostics::ResultExt;
use ctxbuild::key::compute::{compute, Computed, Request};
use ctxbuild::key::{self, Plan, Verdict};

pub fn run(
    args: &ExplainArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    // Read twice, as it is parsed: first without its manifest (the target and builder to plan
    // with), then, once this plan's manifest exists, with the saved records that equal this
    // one's not held twice.
    let open = || {
        key::store::open(&args.since)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot read the saved plan {}", args.since.display()))
            .hint("save one first: ctxbuild plan --save FILE")
    };
    let not_a_plan = || format!("{} is not a plan saved by ctxbuild", args.since.display());
    let (old, has_manifest): (Plan, bool) = key::store::read_plan_head(open()?)
        .with_context(not_a_plan)
        .hint("save one with: ctxbuild plan --save FILE")?;
    let req = Request {
        dir: &args.context.dir,
        file: args.context.file.as_deref(),
        build_args: &args.build.build_args,
        target: args.build.target.clone().or_else(|| old.target.clone()),
        stat_cache: true,
        watch: Some(&args.since),
        // Like the target: the saved plan's builder unless another is asked for.
        builder: args.build.builder.unwrap_or(match old.builder {
            Builder::Classic => BuilderChoice::Classic,
            Builder::BuildKit => BuilderChoice::BuildKit,
        }),
    };
    let Computed {
        plan: new,
        manifest: m,
        notes,
        builder,
    } = compute(&req, settings)?;
    show_notes(&notes, printer);
    say_builder(&builder, printer);
    if new.builder != old.builder {
        printer.warn(&format!(
            "the saved plan predicts the {} builder's cache, this one the {}'s: their keys never \
             match\nhint: save the plan again with --builder {}",
            old.builder, new.builder, new.builder
        ));
    }
    let used = args.context.dir.join(&new.dockerfile);
    super::say_dockerfile(
        printer,
        &args.context.dir,
        args.context.file.as_deref(),
        Some(used.as_path()),
    );
    let ex = if has_manifest {
        let (old, old_m) = key::store::read_plan_against(open()?, &m)
            .with_context(not_a_plan)
            .hint("save one with: ctxbuild plan --save FILE")?;
        key::explain(&old, &old_m, &new, &m)
    } else {
        printer.warn("the saved plan has no manifest (saved with --json?): files cannot be named");
        key::explain(&old, &key::Manifest::default(), &new, &m)
    };
    if args.json {
        printer.json(&ex)?;
        return Ok(ExitStatus::Success);
    }
    for s in &ex.steps {
        let verdict = match s.verdict {
            Verdict::NotCached => "-",
            Verdict::Hit => "hit",
            Verdict::Miss => "miss",
            Verdict::MayMiss => "maybe",
        };
        printer.line(&format!(
            "{:<8} {:<5} {}",
            format!("{}/{}", s.index, s.total),
            verdict,
            s.instruction
        ))?;
    }
    if let Some(m) = &ex.first_may_miss {
        printer.line(&m.sentence)?;
    }
    match (&ex.first_miss, &ex.first_may_miss) {
        (Some(m), _) => printer.line(&m.sentence)?,
        (None, Some(_)) => printer.line("no step will certainly rebuild")?,
        (None, None) => printer.line("every step will use the cache")?,
    }
    Ok(ExitStatus::Success)
}
