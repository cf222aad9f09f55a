//! `ctxbuild render`: prints or writes a service's Dockerfile, and optionally its `.dockerignore`.

use crate::cli::RenderArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::builder::BuilderChoice;
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::service::{self, render, Config, Variant};
use std::path::Path;

pub fn run(args: &RenderArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let s = &args.service;
    let path = service::config_path(s.config.as_deref());
    let config = Config::load(&path).map_err(diagnose)?;
    let svc = config.service(&s.service).map_err(diagnose)?;
    let variant = Variant::from_flags(s.slim);
    let buildkit = args.builder.unwrap_or(svc.builder) == BuilderChoice::BuildKit;
    let rendered = render::render_for(&config, svc, variant, s.base_image.as_deref(), buildkit)
        .map_err(diagnose)?;
    let written = args.output.as_deref().filter(|out| *out != Path::new("-"));
    match written {
        Some(out) => {
            ctxbuild::fsutil::write_output(out, rendered.dockerfile.as_bytes())
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
        None if !args.json => printer.bytes(rendered.dockerfile.as_bytes())?,
        None => {}
    }
    let mut dockerignore = None;
    if args.write_dockerignore {
        match render::write_dockerignore(&config, svc).map_err(diagnose)? {
            Some(p) => {
                let shown = p.strip_prefix("./").unwrap_or(&p).display().to_string();
                printer.info(&format!("wrote {shown}"));
                dockerignore = Some(shown);
            }
            None => printer.info(&format!(
                "{} exists; left as it is",
                config.display_path(&svc.context.join(".dockerignore"))
            )),
        }
    }
    if args.json {
        printer.json(&serde_json::json!({
            "schema": "ctxbuild.render/v1",
            "service": svc.name,
            "variant": variant.as_str(),
            "template": rendered.template,
            "template_version": rendered.template_version,
            "base_image": rendered.base_image,
            "worker_class": rendered.worker_class,
            "output": written.map(|p| p.display().to_string()),
            "dockerignore_written": dockerignore,
            "dockerfile": rendered.dockerfile,
        }))?;
    }
    Ok(ExitStatus::Success)
}
