//! `ctxbuild context -o FILE`: write the deterministic context tar (what would be sent to the
//! engine) to a file or stdout, optionally gzipped. mtime comes from `SOURCE_DATE_EPOCH` or 0.
//!
//! A file output is written through [`fsutil::write_output_with`] (a temporary file renamed into
//! place only when the tar is complete), so a failed run never destroys the previous output; an output file inside
//! the context is left out of the tar (it is not part of what the user means to send, and it
//! would change while being archived).

use crate::cli::ContextArgs;
use crate::ui::exit::ExitStatus;
use crate::ui::printer::{Printer, Stdout, WriteError};
use anyhow::Context as _;
use ctxbuild::config::Settings;
use ctxbuild::context::inside as inside_context;
use ctxbuild::context::{Entry, EntryKind};
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::fsutil;
use ctxbuild::key::compute::scan_readable as scan;
use ctxbuild::tarball::{self, TarOptions};
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The output's path relative to the context root when it lies inside the context, and its
/// (dev, ino) when it already exists (catches a hard link or another spelling of it).
fn output_in_context(root: &Path, output: &Path) -> (Option<PathBuf>, Option<(u64, u64)>) {
    let id = std::fs::metadata(output).ok().map(|m| (m.dev(), m.ino()));
    (inside_context(root, output), id)
}

pub fn run(
    args: &ContextArgs,
    printer: &mut Printer,
    settings: &Settings,
) -> anyhow::Result<ExitStatus> {
    let to_stdout = args.output.as_os_str() == "-" || fsutil::names_stdout(&args.output);
    if to_stdout && args.json {
        return Err(anyhow::anyhow!(
            "--json needs -o FILE: stdout already carries the tar"
        ))
        .hint("write the tar with -o ctx.tar and keep --json");
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(anyhow::anyhow!("refusing to write a tar to a terminal"))
            .hint("redirect stdout or use -o FILE");
    }
    let mtime = settings.mtime()?;
    let ctx = scan(&args.context.dir, args.context.file.as_deref(), settings)?;
    let used = ctx.dockerfile.as_ref().map(|r| args.context.dir.join(r));
    super::say_dockerfile(
        printer,
        &args.context.dir,
        args.context.file.as_deref(),
        used.as_deref(),
    );
    let mut opts = TarOptions {
        mtime,
        gzip: args.gzip,
        ..Default::default()
    };
    let mut entries: Vec<&Entry> = ctx.sent();
    if !to_stdout {
        let (rel, id) = output_in_context(&ctx.root, &args.output);
        let before = entries.len();
        entries.retain(|e| {
            Some(e.path.as_path()) != rel.as_deref()
                && Some((e.stat.dev, e.stat.ino)) != id.filter(|_| e.kind == EntryKind::File)
        });
        if let Some(rel) = rel {
            if entries.len() != before {
                printer.info(&format!(
                    "leaving the output {} out of the tar (it lies inside the context)",
                    rel.display()
                ));
            }
            opts.exclude.push(rel);
        }
    }
    let result = if to_stdout {
        tarball::write_context(&ctx.root, entries.iter().copied(), Stdout(printer), &opts)
    } else {
        // Through a temporary file renamed into place: a failed run keeps the previous tar.
        let mut outcome = None;
        let written = fsutil::write_output_with(&args.output, |f| {
            let r = tarball::write_context(&ctx.root, entries.iter().copied(), f, &opts);
            let io = r
                .as_ref()
                .err()
                .map(|e| std::io::Error::other(e.to_string()));
            outcome = Some(r);
            io.map_or(Ok(()), Err)
        });
        match (outcome, written) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(st)), Ok(())) => Ok(st),
            (_, written) => {
                let e = written
                    .err()
                    .unwrap_or_else(|| std::io::Error::other("the tar was not written"));
                return Err(anyhow::Error::from(e))
                    .with_context(|| format!("cannot create {}", args.output.display()));
            }
        }
    };
    match result {
        Ok(st) => {
            printer.verbose(&format!(
                "{} entries, {} content bytes, {} bytes written",
                st.entries, st.content_bytes, st.output_bytes
            ));
            if args.json {
                printer.json(&serde_json::json!({
                    "schema": "ctxbuild.context/v1",
                    "root": ctx.root.display().to_string(),
                    "output": args.output.display().to_string(),
                    "gzip": args.gzip,
                    "mtime": mtime,
                    "entries": st.entries,
                    "content_bytes": st.content_bytes,
                    "output_bytes": st.output_bytes,
                }))?;
            }
            Ok(ExitStatus::Success)
        }
        Err(e) if e.is_broken_pipe() => Err(WriteError::Closed.into()),
        Err(e) => Err(diagnose(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_located_in_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let (rel, id) = output_in_context(&root, &root.join("sub/../ctx.tar"));
        assert_eq!(rel.as_deref(), Some(Path::new("ctx.tar")));
        assert_eq!(id, None);
        let (rel, _) = output_in_context(&root.join("sub"), &root.join("ctx.tar"));
        assert_eq!(rel, None);
    }
}
