//! One file per subcommand: each turns parsed arguments into library calls and prints the
//! returned data through the [`Printer`]. No command does the work itself.

mod check;
mod clean;
mod completions;
mod context;
mod explain;
mod image;
mod init;
mod ls;
mod plan;
mod render;

use crate::cli::Command;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

/// Runs one subcommand.
pub fn dispatch(command: &Command, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Clean(a) => clean::run(a, printer),
        Command::Ls(a) => ls::run(a, printer),
        Command::Plan(a) => plan::run(a, printer),
        Command::Explain(a) => explain::run(a, printer),
        Command::Context(a) => context::run(a, printer),
        Command::Render(a) => render::run(a, printer),
        Command::Check(a) => check::run(a, printer),
        Command::Image(a) => image::run(a, printer),
        Command::Completions(a) => completions::run(a, printer),
        Command::Init(a) => init::run(a, printer),
    }
}
