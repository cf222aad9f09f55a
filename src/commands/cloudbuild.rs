//! `ctxbuild cloudbuild`: maps arguments to a [`cloudbuild::Request`], prints or writes the
//! generated config (YAML, or Cloud Build's JSON form with `--json`).

use crate::cli::CloudbuildArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::cloudbuild::{self, Request};
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::fsutil;
use ctxbuild::service::{self, Config};
use std::path::Path;

pub fn run(args: &CloudbuildArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let path = service::config_path(args.config.as_deref());
    let config = Config::load(&path).map_err(diagnose)?;
    let request = Request {
        services: args.services.clone(),
        step_image: args.step_image.clone(),
        deploy: args.deploy,
        base_image: args.base_image.clone(),
        slim: args.slim,
    };
    let built = cloudbuild::generate(&config, &request).map_err(diagnose)?;
    let yaml = built.to_yaml();
    // The schema check guards the generator itself: a failure here is a ctxbuild bug.
    let problems = cloudbuild::schema::validate(&yaml);
    if !problems.is_empty() {
        anyhow::bail!(
            "the generated config breaks Cloud Build's schema (a ctxbuild bug; please report it):\n  {}",
            problems.join("\n  ")
        );
    }
    let text = if args.json {
        serde_json::to_string_pretty(&built)? + "\n"
    } else {
        yaml
    };
    match args.output.as_deref() {
        Some(out) if out != Path::new("-") => {
            fsutil::write_output(out, text.as_bytes())
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("cannot write {}", out.display())))
                .hint("check that the directory exists and is writable")?;
            let images = built
                .steps
                .iter()
                .filter(|s| s.id.starts_with("image-"))
                .count();
            let deploys = built
                .steps
                .iter()
                .filter(|s| s.id.starts_with("deploy-"))
                .count();
            printer.info(&format!(
                "wrote {} (check, {images} image step(s){}, timeout {})",
                out.display(),
                if deploys > 0 {
                    format!(", {deploys} deploy step(s)")
                } else {
                    String::new()
                },
                built.timeout
            ));
        }
        _ => printer.bytes(text.as_bytes())?,
    }
    Ok(ExitStatus::Success)
}
