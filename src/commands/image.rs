//! `ctxbuild image`.

use crate::cli::ImageArgs;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::Printer;

pub fn run(_args: &ImageArgs, _printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    super::not_yet("image")
}
