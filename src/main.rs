//! The `ctxbuild` binary: parse, resolve, dispatch, map the result to an exit code.

mod cli;
mod commands;

use clap::Parser;
use ctxbuild::config::GlobalConfig;
use ctxbuild::diagnostics;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::{Closed, Printer};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let g = &cli.global;
    let config = GlobalConfig::resolve(
        g.color,
        g.progress,
        g.quiet,
        g.verbose,
        g.threads.map(usize::from),
    );
    let mut printer = Printer::new(config);
    let result = commands::dispatch(&cli.command, &mut printer);
    let flushed = printer.flush();
    let status = match result {
        Ok(status) => status,
        // A reader that went away (`ctxbuild ls | head`) is not an error.
        Err(e) if e.downcast_ref::<Closed>().is_some() => ExitStatus::Success,
        Err(e) => {
            eprint!("{}", diagnostics::render_styled(&e, printer.config.color));
            diagnostics::status_of(&e)
        }
    };
    let _ = flushed;
    status.into()
}
