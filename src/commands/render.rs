//! `ctxbuild render`: prints or writes a service's Dockerfile, and optionally its `.dockerignore`.

use crate::cli::RenderArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::service::{self, render, Config, Variant};
use std::path::Path;

pub fn run(args: &RenderArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let s = &args.service;
    let path = service::config_path(s.config.as_deref());
    let config = Config::load(&path).map_err(diagnose)?;
    let svc = config.service(&s.service).map_err(diagnose)?;
    let variant = Variant::from_flags(s.slim);
    let rendered =
        render::render(&config, svc, variant, s.base_image.as_deref()).map_err(diagnose)?;
    match args.output.as_deref() {
        Some(out) if out != Path::new("-") => {
            std::fs::write(out, &rendered.dockerfile)
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("cannot write {}", out.display())))
                .hint("check that the directory exists and is writable")?;
            printer.info(&format!(
                "wrote {} ({} v{}, FROM {})",
                out.display(),
                rendered.template,
                rendered.template_version,
                rendered.base_image
            ));
        }
        _ => printer.bytes(rendered.dockerfile.as_bytes())?,
    }
    if args.write_dockerignore {
        match render::write_dockerignore(&config, svc).map_err(diagnose)? {
            Some(p) => printer.info(&format!(
                "wrote {}",
                p.strip_prefix("./").unwrap_or(&p).display()
            )),
            None => printer.info(&format!(
                "{} exists; left as it is",
                config.display_path(&svc.context.join(".dockerignore"))
            )),
        }
    }
    Ok(ExitStatus::Success)
}
