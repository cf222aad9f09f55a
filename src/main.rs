//! The `ctxbuild` binary: parse, resolve settings once, dispatch, map the result to an exit code.

mod cli;
mod commands;
mod ui;

use clap::Parser;
use ctxbuild::config::Settings;
use std::num::NonZeroUsize;
use ui::exit::ExitStatus;
use ui::printer::{Printer, WriteError};
use ui::{ColorWhen, ProgressMode, ProgressWhen, UiConfig};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let g = &cli.global;
    let ui = UiConfig::resolve(
        match g.color {
            cli::ColorChoice::Auto => ColorWhen::Auto,
            cli::ColorChoice::Always => ColorWhen::Always,
            cli::ColorChoice::Never => ColorWhen::Never,
        },
        match g.progress {
            cli::ProgressChoice::Auto => ProgressWhen::Auto,
            cli::ProgressChoice::Tty => ProgressWhen::Tty,
            cli::ProgressChoice::Plain => ProgressWhen::Plain,
            cli::ProgressChoice::None => ProgressWhen::None,
        },
        g.quiet,
        g.verbose,
    );
    let mut printer = Printer::new(ui);
    let threads = g.threads.and_then(|t| NonZeroUsize::new(usize::from(t)));
    // Every stage runs inside the one pool, so `-j N` bounds hashing, sorting and keying alike
    // (rayon work outside it would fall back to the global pool's one thread per CPU).
    let result = Settings::from_env(threads).and_then(|settings| {
        let pool = settings.pool.clone();
        pool.install(|| commands::dispatch(&cli.command, &mut printer, &settings))
    });
    // Output still buffered may fail only now (a full disk): that is the run's failure too.
    let flushed = printer.flush();
    let result = match (result, flushed) {
        (Ok(status), Ok(())) => Ok(status),
        (Ok(_), Err(e)) => Err(anyhow::Error::from(e)),
        (Err(e), _) => Err(e),
    };
    let status = match result {
        Ok(status) => status,
        // A reader that went away (`ctxbuild ls | head`) is not an error.
        Err(e) if is_closed(&e) => ExitStatus::Success,
        Err(e) => {
            // With plain progress the failing step's output is on screen already.
            let plain = ui.progress == ProgressMode::Plain;
            let keep = |h: &str| !(plain && h.contains("--progress plain"));
            eprint!("{}", ui::diagnostics::render(&e, ui.color, &keep));
            ui::diagnostics::status_of(&e)
        }
    };
    status.into()
}

/// Whether the error is stdout closed by its reader (a broken pipe), and nothing else.
fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<WriteError>(), Some(WriteError::Closed))
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
