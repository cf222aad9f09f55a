//! `ctxbuild clean`.

use crate::cli::CleanArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &CleanArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("clean")
}
