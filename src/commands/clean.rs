//! `ctxbuild clean [DIR…]`: turns the arguments into [`CleanOptions`], runs
//! [`ctxbuild::clean::clean`] on each root (progress into the ui's renderer) and hands the
//! reports to `ui::clean` to print.

use crate::cli::CleanArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use crate::ui::progress::Renderer;
use ctxbuild::clean::{
    self, default_remove_threads, CleanOptions, CleanReport, Mode, Rules, Scope,
};
use ctxbuild::config::Settings;
use ctxbuild::diagnostics::diagnose;
use ctxbuild::events::{CleanProgress, Discard, Event, Sink};
use std::path::PathBuf;

pub fn run(
    args: &CleanArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    let rules =
        Rules::new(&args.debris, &args.erase, &args.keep, args.include_venv).map_err(diagnose)?;
    let mode = if args.check {
        Mode::Check
    } else if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Remove
    };
    let dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.dirs.clone()
    };
    // Every root must be valid before anything is removed from any of them.
    for d in &dirs {
        clean::resolve_root(d).map_err(diagnose)?;
    }
    let walk_threads = settings.threads.get();
    let remove_threads = args
        .remove_threads
        .map(usize::from)
        .unwrap_or_else(|| default_remove_threads(walk_threads));

    let renderer = Renderer::new(printer.ui);
    let sink: &dyn Sink = if args.json { &Discard } else { &renderer };
    let mut reports: Vec<(PathBuf, CleanReport)> = Vec::new();
    for dir in &dirs {
        let opts = CleanOptions {
            root: dir.clone(),
            rules: rules.clone(),
            mode,
            scope: if args.context_only {
                Scope::Context
            } else {
                Scope::Tree
            },
            walk_threads,
            remove_threads,
        };
        let report = clean::clean(&opts, &CleanProgress(sink)).map_err(diagnose)?;
        reports.push((dir.clone(), report));
    }
    sink.event(&Event::Finished);

    let failed = reports.iter().any(|(_, r)| !r.failures.is_empty());
    let found = reports.iter().any(|(_, r)| !r.is_clean());
    if args.json {
        printer.json(&crate::ui::clean::JsonOut::new(mode, &reports))?;
    } else {
        crate::ui::clean::render(printer, mode, &reports)?;
    }
    Ok(if failed {
        ExitStatus::Error
    } else if mode == Mode::Check && found {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}
