//! `ctxbuild context`.

use crate::cli::ContextArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &ContextArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("context")
}
