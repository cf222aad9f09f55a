//! One file per subcommand: each turns parsed arguments into one library call and prints the
//! returned data through the [`Printer`]. No command does the work itself.

mod check;
mod clean;
mod cloudbuild;
mod completions;
mod context;
mod explain;
mod image;
mod init;
mod ls;
mod plan;
mod render;
mod smoke;

use crate::cli::Command;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::config::Settings;

/// Runs one subcommand.
pub fn dispatch(
    command: &Command,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Clean(a) => clean::run(a, printer, settings),
        Command::Ls(a) => ls::run(a, printer, settings),
        Command::Plan(a) => plan::run(a, printer, settings),
        Command::Explain(a) => explain::run(a, printer, settings),
        Command::Context(a) => context::run(a, printer, settings),
        Command::Render(a) => render::run(a, printer),
        Command::Check(a) => check::run(a, printer),
        Command::Image(a) => image::run(a, printer, settings),
        Command::Smoke(a) => smoke::run(a, printer, settings),
        Command::Completions(a) => completions::run(a, printer),
        Command::Cloudbuild(a) => cloudbuild::run(a, printer),
        Command::Init(a) => init::run(a, printer),
    }
}
