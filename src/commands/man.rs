//! `ctxbuild man [COMMAND]`: man pages (roff) generated from the clap definition, so they never
//! drift from `--help`. Hidden from the command list; packagers run it at build time
//! (`ctxbuild man > ctxbuild.1`, `ctxbuild man ls > ctxbuild-ls.1`). Lives in the binary, like
//! all of clap: the library stays free of it.

use crate::cli::{Cli, ManArgs};
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use clap::CommandFactory;

pub fn run(args: &ManArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let root = Cli::command();
    let page = match &args.command {
        None => root,
        Some(name) => {
            let visible = |c: &&clap::Command| !c.is_hide_set();
            let Some(sub) = root
                .get_subcommands()
                .filter(visible)
                .find(|c| c.get_name() == name)
            else {
                let known: Vec<&str> = root
                    .get_subcommands()
                    .filter(visible)
                    .map(clap::Command::get_name)
                    .collect();
                anyhow::bail!(
                    "no command `{name}` to document\nhint: one of {}",
                    known.join(", ")
                );
            };
            // ctxbuild-ls(1), with the global options it accepts too.
            sub.clone()
                .name(format!("ctxbuild-{name}"))
                .bin_name(format!("ctxbuild {name}"))
        }
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    printer.bytes(&buf)?;
    Ok(ExitStatus::Success)
}
