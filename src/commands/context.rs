//! `ctxbuild context -o FILE`: write the deterministic context tar (what would be sent to the
//! engine) to a file or stdout, optionally gzipped. mtime comes from `SOURCE_DATE_EPOCH` or 0.

use super::plan::scan;
use crate::cli::ContextArgs;
use anyhow::Context as _;
use ctxbuild::diagnostics::diagnose;
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::{Closed, Printer};
use ctxbuild::tarball::{self, TarError, TarOptions};
use std::io::Write;

/// Streams into the printer (the only writer of stdout); a closed pipe becomes BrokenPipe.
struct Stdout<'a>(&'a mut Printer);

impl Write for Stdout<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .bytes(buf)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .flush()
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

pub fn run(args: &ContextArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let ctx = scan(&args.dir, args.file.as_deref(), printer)?;
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let sent = ctx.sent();
    let entries: Vec<_> = sent.into_iter().cloned().collect();
    let opts = TarOptions {
        mtime,
        gzip: args.gzip,
        ..Default::default()
    };
    let result = if args.output.as_os_str() == "-" {
        tarball::write_context(&ctx.root, &entries, Stdout(printer), &opts)
    } else {
        let f = std::fs::File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        tarball::write_context(&ctx.root, &entries, f, &opts)
    };
    match result {
        Ok(st) => {
            printer.verbose(&format!(
                "{} entries, {} content bytes, {} bytes written",
                st.entries, st.content_bytes, st.output_bytes
            ));
            Ok(ExitStatus::Success)
        }
        Err(e) if e.is_broken_pipe() => Err(Closed.into()),
        Err(e @ TarError::Changed { .. }) | Err(e @ TarError::Read { .. }) => Err(diagnose(e)),
        Err(e) => Err(diagnose(e)),
    }
}
