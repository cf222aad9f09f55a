//! `ctxbuild check`: runs the lint and prints its report, as text or `--json` from the same data.

use crate::cli::{CheckArgs, CheckFormat};
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use ctxbuild::check::{self, Finding, Severity};
use ctxbuild::diagnostics::diagnose;
use ctxbuild::service::{self, Config};

pub fn run(args: &CheckArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    if args.rules {
        if args.json {
            printer.json(&check::RULES)?;
        } else {
            for r in check::RULES {
                printer.line(&format!(
                    "{:<28} {:<8} {}",
                    r.id,
                    r.severity.as_str(),
                    r.summary
                ))?;
            }
        }
        return Ok(ExitStatus::Success);
    }
    let path = service::config_path(args.config.as_deref());
    let config = Config::load(&path).map_err(diagnose)?;
    let report = check::run_with(
        &config,
        &args.services,
        &check::Options {
            builder: args.builder,
        },
    )
    .map_err(diagnose)?;
    let format = if args.json {
        CheckFormat::Json
    } else {
        args.format
    };
    let paths = || check::format::Paths {
        prefix: check::format::repo_prefix(std::path::Path::new(".")),
        config_file: config.path.display().to_string(),
    };
    if format == CheckFormat::Json {
        printer.json(&report)?;
    } else if format == CheckFormat::Sarif {
        printer.json(&check::format::sarif(&report, &paths()))?;
    } else if format == CheckFormat::Github {
        for line in check::format::github(&report, &paths()).lines() {
            printer.line(line)?;
        }
    } else {
        for u in &report.dockerfiles {
            printer.info(&format!(
                "{}: checking {} ({})",
                u.service, u.dockerfile, u.reason
            ));
        }
        for f in &report.findings {
            for line in finding_text(f, printer).lines() {
                printer.line(line)?;
            }
        }
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        printer.info(&format!(
            "checked {} and {}: {}, {}{}",
            plural(report.services.len(), "service"),
            plural(config.compose.len(), "compose file"),
            plural(report.errors, "error"),
            plural(report.warnings, "warning"),
            if report.notes > 0 {
                format!(", {}", plural(report.notes, "note"))
            } else {
                String::new()
            },
        ));
    }
    Ok(if report.has_errors() {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

/// How a finding reads on the terminal: `file:line: error[rule] message`, then `  fix: …`.
/// `ctxbuild image`'s check gate shows its findings the same way.
pub fn finding_text(f: &Finding, printer: &Printer) -> String {
    let sev = match f.severity {
        Severity::Error => printer.paint("error", console::Style::new().red().bold()),
        Severity::Warning => printer.paint("warning", console::Style::new().yellow().bold()),
        Severity::Note => printer.paint("note", console::Style::new().cyan().bold()),
    };
    format!(
        "{}: {sev}[{}] {}\n  fix: {}",
        f.location(),
        f.rule,
        f.message,
        f.fix
    )
}
