//! `ctxbuild explain`.

use crate::cli::ExplainArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &ExplainArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("explain")
}
