//! `ctxbuild completions SHELL`: shell completion scripts generated from the clap definition.

use crate::cli::{Cli, CompletionsArgs};
use clap::CommandFactory;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(args: &CompletionsArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ctxbuild", &mut buf);
    printer.bytes(&buf)?;
    Ok(ExitStatus::Success)
}
