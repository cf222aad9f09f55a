//! `ctxbuild ls`.

use crate::cli::LsArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &LsArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("ls")
}
