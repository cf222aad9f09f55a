//! `ctxbuild clean [DIR…]`: turns the arguments into [`CleanOptions`], runs
//! [`ctxbuild::clean::prepare`] on every root first (nothing is removed until all are valid),
//! then runs each (progress into the ui's renderer) and hands the
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
    let walk_threads = settings.threads.get();
    let remove_threads = args
        .remove_threads
        .map(usize::from)
        .unwrap_or_else(|| default_remove_threads(walk_threads));

    // Every root (and with --context-only its .dockerignore) must be valid before anything is
    // removed from any of them.
    let mut prepared = Vec::with_capacity(dirs.len());
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
            cross_filesystems: args.cross_filesystems,
        };
        prepared.push((dir.clone(), clean::prepare(&opts).map_err(diagnose)?));
    }

    let renderer = Renderer::new(printer.ui);
    let sink: &dyn Sink = if args.json { &Discard } else { &renderer };
    // One set of seen directories across roots: overlapping roots are walked once.
    let seen = clean::Seen::default();
    let mut reports: Vec<(PathBuf, CleanReport)> = Vec::new();
    for (dir, root) in prepared {
        reports.push((dir, root.run(&CleanProgress(sink), &seen)));
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
