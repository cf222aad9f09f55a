//! `ctxbuild smoke SERVICE`: the arguments become a [`SmokeRequest`], [`smoke::smoke`] builds
//! (unless `--image`) and runs the container, and the outcome is printed as a table or JSON.

use crate::cli::SmokeArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use crate::ui::progress::Renderer;
use ctxbuild::config::Settings;
use ctxbuild::image::{DockerfileSource, ImageRequest};
use ctxbuild::service::{self, Variant};
use ctxbuild::smoke::{self, SmokeRequest};
use std::time::Duration;

pub fn run(
    args: &SmokeArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    let svc = &args.service;
    let req = SmokeRequest {
        build: ImageRequest {
            config_path: service::config_path(svc.config.as_deref()),
            service: svc.service.clone(),
            dockerfile: DockerfileSource {
                file: None,
                variant: Variant::from_flags(svc.slim),
                variant_given: svc.slim || svc.alpine,
                base_image: svc.base_image.clone(),
            },
            tags: Vec::new(),
            build_args: Vec::new(),
            target: None,
            labels: Vec::new(),
            no_cache: false,
            pull: false,
            // Cloud Run runs linux/amd64 only.
            platform: Some(smoke::PLATFORM.to_string()),
            push: false,
            clean: false,
            check: true,
            engine_host: args.host.clone(),
            cache_from: Vec::new(),
            force: false,
            builder: None,
        },
        image: args.image.clone(),
        budget: Duration::from_secs(args.budget),
        sweep: args.sweep,
    };
    let renderer = Renderer::new(printer.ui);
    let outcome = smoke::smoke(&req, settings, &renderer)?;
    if args.json {
        printer.json(&outcome)?;
    } else {
        let text = crate::ui::smoke::human(&outcome, printer.ui.color);
        for line in text.lines() {
            printer.line(line)?;
        }
    }
    Ok(if outcome.passed() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}
