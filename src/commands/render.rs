//! `ctxbuild render`.

use crate::cli::RenderArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &RenderArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("render")
}
