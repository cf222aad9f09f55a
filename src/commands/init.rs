//! `ctxbuild init`: detects the services of a directory, writes its commented `ctxbuild.toml`
//! (never over one) and prints what was found and what to run next. `--json` prints the same
//! detection as JSON; `--print` shows the file instead of writing it.

use crate::cli::InitArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::diagnostics::diagnose;
use ctxbuild::init::{self, Detection};

pub fn run(args: &InitArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    if !args.dir.is_dir() {
        anyhow::bail!("{} is not a directory", args.dir.display());
    }
    let detection = init::detect(&args.dir);
    let text = init::render_config(&detection);
    if args.print {
        printer.bytes(text.as_bytes())?;
        return Ok(ExitStatus::Success);
    }
    let written = init::write_config(&args.dir, &text).map_err(diagnose)?;
    if args.json {
        printer.json(&detection)?;
        return Ok(ExitStatus::Success);
    }
    summary(&detection, printer)?;
    printer.line(&format!("wrote {}", written.display()))?;
    if let Some(name) = detection
        .services
        .first()
        .map(|s| &s.name)
        .or(detection.frontends.first().map(|f| &f.name))
    {
        let dir = (args.dir.as_os_str() != ".").then(|| format!("cd {} && ", args.dir.display()));
        printer.line(&format!(
            "next: {}ctxbuild check && ctxbuild image {name}",
            dir.unwrap_or_default()
        ))?;
    }
    Ok(ExitStatus::Success)
}

fn summary(d: &Detection, printer: &mut Printer) -> anyhow::Result<()> {
    if d.services.is_empty() && d.frontends.is_empty() {
        printer.line("found no service: no module-level FastAPI()/Starlette() app, no package.json with a build script")?;
    }
    for s in &d.services {
        printer.line(&format!(
            "service {} (python-asgi, context {})",
            s.name,
            s.context.display()
        ))?;
        let c = &s.candidates[0];
        printer.line(&format!(
            "  app           {}  ({}:{}, {})",
            s.app,
            c.file.display(),
            c.line,
            c.class
        ))?;
        let files: Vec<String> = s
            .dependencies
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        printer.line(&format!(
            "  dependencies  {}  ({})",
            s.dependencies.source.as_str(),
            if files.is_empty() {
                "no dependency file".into()
            } else {
                files.join(", ")
            }
        ))?;
        let dockerfile = match &s.dockerfile {
            Some(f) if f.generated => format!(
                "ctxbuild's template ({} is a committed render)",
                f.path.display()
            ),
            Some(f) => format!(
                "{} (the context's own; written as the `dockerfile` key)",
                f.path.display()
            ),
            None => "ctxbuild's template (no Dockerfile in the context)".into(),
        };
        printer.line(&format!("  dockerfile    {dockerfile}"))?;
        if let (
            Some(w),
            None
            | Some(init::FoundDockerfile {
                generated: true, ..
            }),
        ) = (&s.dependencies.workspace, &s.dockerfile)
        {
            printer.warn(&format!(
                "{}: `{}` is a member of the uv workspace of {}, whose uv.lock and packages lie \
                 outside this context: ctxbuild's template cannot build it; `ctxbuild check` \
                 says what to do",
                s.context.display(),
                w.name,
                w.root.join("pyproject.toml").display()
            ));
        }
        if let Some(g) = &s.gunicorn_conf {
            printer.line(&format!(
                "  gunicorn      {} (gunicorn reads it at start)",
                g.path.display()
            ))?;
        }
    }
    for f in &d.frontends {
        printer.line(&format!(
            "frontend {} (node, context {})",
            f.name,
            f.context.display()
        ))?;
        printer.line(&format!(
            "  build         npm run build → {}/{}  (guessed from {})",
            f.build_output, f.entrypoint, f.guessed_from
        ))?;
    }
    if !d.compose.is_empty() {
        let files: Vec<String> = d.compose.iter().map(|f| f.display().to_string()).collect();
        printer.line(&format!("compose: {}", files.join(", ")))?;
    }
    for n in &d.notes {
        printer.line(&format!("note: {n}"))?;
    }
    for q in &d.questions {
        printer.line(&format!("question: {}", q.question))?;
        printer.line(&format!(
            "  wrote app = \"{}\"; the others: {}",
            q.chosen,
            q.choices
                .iter()
                .filter(|c| **c != q.chosen)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    Ok(())
}
