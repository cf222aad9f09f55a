//! `ctxbuild check`.

use crate::cli::CheckArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &CheckArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("check")
}
