//! `ctxbuild plan`.

use crate::cli::PlanArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &PlanArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("plan")
}
