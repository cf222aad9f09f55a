//! `ctxbuild completions SHELL`: shell completion scripts generated from the clap definition.

use crate::cli::{Cli, CompletionsArgs};
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use clap::CommandFactory;

pub fn run(args: &CompletionsArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ctxbuild", &mut buf);
    printer.bytes(&buf)?;
    Ok(ExitStatus::Success)
}
