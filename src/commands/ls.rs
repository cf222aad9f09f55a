//! `ctxbuild ls`: what `COPY . /dst/` would see, one path per line, as JSON, or weighed.
//!
//! Scans through [`ctxbuild::context::scan`] and prints; the JSON rows and the plain lines come
//! from the same [`Row`]s, and `--sizes` renders [`ctxbuild::context::sizes::SizeReport`] either
//! way. Entries that could not be read are warned about on stderr and make the exit non-zero.

use crate::cli::LsArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::Printer;
use crate::ui::theme::bytes as human_bytes;
use ctxbuild::config::Settings;
use ctxbuild::context::sizes::{sizes, SizeReport};
use ctxbuild::context::{
    copy_mode, scan_with, ContextOptions, Detail, Entry, EntryKind, IssueKind,
};
use ctxbuild::diagnostics::diagnose;
use std::borrow::Cow;

/// How many directories `--sizes` lists.
const TOP_DIRS: usize = 10;

/// One listed entry, as JSON shows it.
#[derive(serde::Serialize)]
struct Row<'a> {
    /// Lossy UTF-8 in JSON; the plain output writes the raw bytes.
    path: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: EntryKind,
    size: u64,
    /// Octal permission bits in the context, e.g. `"0644"`: what the build cache sees.
    mode: String,
    /// Octal permission bits `COPY` gives the copy in the image: setuid, and setgid with
    /// group-execute, are cleared on regular files ([`copy_mode`]).
    copy_mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<Cow<'a, str>>,
    /// `[major, minor]` of a character or block device.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<[u32; 2]>,
}

impl<'a> Row<'a> {
    fn new(e: &'a Entry) -> Row<'a> {
        Row {
            path: e.display(),
            kind: e.kind,
            size: e.size,
            mode: format!("{:04o}", e.mode),
            copy_mode: format!("{:04o}", copy_mode(e)),
            link_target: e.link_target.as_ref().map(|t| t.to_string_lossy()),
            device: e.kind.is_device().then(|| {
                let (major, minor) = e.dev_numbers();
                [major, minor]
            }),
        }
    }
}

pub fn run(
    args: &LsArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    let opts = ContextOptions {
        root: args.context.dir.clone(),
        dockerfile: args.context.file.clone(),
        buildkit: args.buildkit,
        threads: settings.threads.get(),
    };
    // Plain paths need no metadata: skip the lstat per entry, as fd does.
    let detail = if args.json || args.sizes {
        Detail::Full
    } else {
        Detail::NamesOnly
    };
    let ctx = scan_with(&opts, detail).map_err(diagnose)?;
    let used = ctx.dockerfile.as_ref().map(|r| args.context.dir.join(r));
    super::say_dockerfile(
        printer,
        &args.context.dir,
        args.context.file.as_deref(),
        used.as_deref(),
    );

    let mut status = ExitStatus::Success;
    for issue in &ctx.issues {
        printer.warn(&issue.to_string());
        if issue.kind != IssueKind::Special {
            status = ExitStatus::Error;
        }
    }

    if args.sizes {
        let report = sizes(&ctx, TOP_DIRS);
        if args.json {
            printer.json(&report)?;
        } else {
            print_sizes(&report, printer)?;
        }
        return Ok(status);
    }

    if args.json {
        let rows: Vec<Row> = ctx.files().map(Row::new).collect();
        printer.json(&rows)?;
    } else {
        // Straight from the entries: a row per file (two formatted modes each) would double
        // the peak memory of a million-file listing for nothing.
        for e in ctx.files() {
            printer.bytes(e.path_bytes())?;
            printer.bytes(b"\n")?;
        }
    }
    Ok(status)
}

fn print_sizes(r: &SizeReport, printer: &mut Printer) -> anyhow::Result<()> {
    let mut head = format!(
        "context: {}, {}",
        count(r.total.files, "file"),
        human_bytes(r.total.bytes)
    );
    if r.symlinks > 0 {
        head.push_str(&format!(", {}", count(r.symlinks, "symlink")));
    }
    printer.line(&head)?;
    if !r.heaviest.is_empty() {
        printer.line("heaviest directories:")?;
        for d in &r.heaviest {
            printer.line(&format!(
                "  {:>10}  {:>13}  {}",
                human_bytes(d.tally.bytes),
                count(d.tally.files, "file"),
                d.path.to_string_lossy()
            ))?;
        }
    }
    let p = &r.pollution;
    if p.tally.files == 0 && p.pycache_dirs == 0 {
        printer.line("pollution: none")?;
    } else {
        let share = ctxbuild::pollution::share_text(p.tally.bytes, r.total.bytes);
        printer.line(&format!(
            "pollution: {} in {}, {} ({share} of the context)",
            count(p.tally.files, "bytecode file"),
            count(p.pycache_dirs, "__pycache__ dir"),
            human_bytes(p.tally.bytes),
        ))?;
        printer.info(&format!(
            "hint: run `ctxbuild clean`, or add {} to .dockerignore",
            ctxbuild::pollution::DOCKERIGNORE_RULES.join(", ")
        ));
    }
    Ok(())
}

/// `1 file`, `2 files`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
