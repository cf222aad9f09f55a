//! `ctxbuild image SERVICE`: the arguments become an [`ImageRequest`], [`image::build`] does the
//! work (streaming progress into the ui's renderer), and the report is printed (and written as
//! JSON with `--report`).

use crate::cli::ImageArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use crate::ui::progress::Renderer;
use ctxbuild::config::Settings;
use ctxbuild::image::{self, DockerfileSource, ImageRequest};
use ctxbuild::service::{self, Variant};

pub fn run(
    args: &ImageArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    // `--report -` (or `/dev/stdout`) makes the JSON report the whole of standard output.
    let report_to_stdout = args
        .report
        .as_deref()
        .is_some_and(ctxbuild::fsutil::names_stdout);
    if report_to_stdout && args.json {
        anyhow::bail!(
            "--report {} and --json both write to standard output\nhint: write the report to a \
             file (--report report.json), or drop --json",
            args.report
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        );
    }
    let svc = &args.service;
    let req = ImageRequest {
        config_path: service::config_path(svc.config.as_deref()),
        service: svc.service.clone(),
        dockerfile: DockerfileSource {
            file: args.file.clone(),
            variant: Variant::from_flags(svc.slim),
            variant_given: svc.slim || svc.alpine,
            base_image: svc.base_image.clone(),
        },
        tags: args.tags.clone(),
        build_args: args.build.build_args.clone(),
        target: args.build.target.clone(),
        labels: args.labels.clone(),
        no_cache: args.no_cache,
        force: args.force,
        pull: args.pull,
        platform: args.platform.clone(),
        push: args.push,
        cache_from: args.cache_from.clone(),
        clean: args.clean,
        check: !args.no_check,
        engine_host: args.host.clone(),
        builder: args.build.builder,
    };
    let renderer = Renderer::new(printer.ui);
    let outcome = image::build(&req, settings, &renderer)?;

    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&outcome.report)? + "\n";
        ctxbuild::fsutil::write_output(path, text.as_bytes())
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot write the report to {}", path.display())))?;
    }
    if report_to_stdout {
        // The report on stdout is the JSON just written; the human one would follow it.
    } else if args.json {
        printer.json(&ctxbuild::report::ImageResult::new(&outcome.report))?;
    } else {
        let text = crate::ui::report::human(&outcome.report, printer.ui.color);
        for line in text.lines() {
            printer.line(line)?;
        }
    }
    match outcome.push_error {
        Some(e) => Err(e),
        None => Ok(ExitStatus::Success),
    }
}
