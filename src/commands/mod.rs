//! One file per subcommand: each turns parsed arguments into one library call and prints the
//! returned data through the [`Printer`]. No command does the work itself.

mod check;
mod clean;
mod cloudbuild;
mod completions;
mod context;
mod explain;
mod image;
mod init;
mod ls;
mod man;
mod plan;
mod render;
mod smoke;

use crate::cli::Command;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::config::Settings;
use ctxbuild::service::dockerfile::{services_at, DockerfileChoice};
use ctxbuild::service::{self, Config};
use std::path::Path;

/// Runs one subcommand.
pub fn dispatch(
    command: &Command,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Clean(a) => clean::run(a, printer, settings),
        Command::Ls(a) => ls::run(a, printer, settings),
        Command::Plan(a) => plan::run(a, printer, settings),
        Command::Explain(a) => explain::run(a, printer, settings),
        Command::Context(a) => context::run(a, printer, settings),
        Command::Render(a) => render::run(a, printer),
        Command::Check(a) => check::run(a, printer),
        Command::Image(a) => image::run(a, printer, settings),
        Command::Smoke(a) => smoke::run(a, printer, settings),
        Command::Completions(a) => completions::run(a, printer),
        Command::Man(a) => man::run(a, printer),
        Command::Cloudbuild(a) => cloudbuild::run(a, printer),
        Command::Init(a) => init::run(a, printer),
    }
}

/// Says which Dockerfile `ls`, `plan`, `explain` or `context` reads (`-f`, else `used`: the
/// default's path on disk, `None` when DIR has none, which is said by the error of a command
/// that needs one), and warns when `./ctxbuild.toml` builds another one for a service
/// whose context is DIR: these commands follow `docker build DIR -f …`, `image` follows the
/// configuration, and neither may contradict the other silently.
fn say_dockerfile(printer: &Printer, dir: &Path, file: Option<&Path>, used: Option<&Path>) {
    match (file, used) {
        (Some(f), _) => printer.info(&format!("using {} (-f)", f.display())),
        (None, Some(u)) => printer.info(&format!(
            "using {} (docker's default in {})",
            u.display(),
            dir.display()
        )),
        // Nothing is read: nothing to say (`ls` of any directory stays quiet).
        (None, None) => {}
    }
    let path = service::config_path(None);
    if !path.is_file() {
        return;
    }
    // A configuration that does not load is `check`'s to report, not this command's.
    let Ok(config) = Config::load(&path) else {
        return;
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let used_canonical = file.or(used).and_then(canonical);
    for (svc, resolution) in services_at(&config, dir) {
        let shown = resolution.display(svc);
        let same = match &resolution.choice {
            DockerfileChoice::Configured { path, .. } => {
                used_canonical.is_some() && canonical(path) == used_canonical
            }
            // A committed `ctxbuild render` of the template is the same build (`check` reports
            // it as `generated-stale` when it falls behind the template).
            DockerfileChoice::Rendered { .. } => file.or(used).is_some_and(|p| {
                ctxbuild::fsutil::read_text(p)
                    .is_ok_and(|t| service::render::generated_by(&t).is_some())
            }),
        };
        if same {
            continue;
        }
        let how = match &resolution.choice {
            DockerfileChoice::Configured { display, .. } => {
                format!("pass `-f {display}` to read that one here")
            }
            DockerfileChoice::Rendered { .. } => format!(
                "`ctxbuild render {}` shows it; `ctxbuild image {}` builds it",
                svc.name, svc.name
            ),
        };
        printer.warn(&format!(
            "{} makes service `{}` build {shown} ({}), not what this command reads; {how}",
            path.display(),
            svc.name,
            resolution.reason
        ));
    }
}
