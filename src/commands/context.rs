//! `ctxbuild context -o FILE`: write the deterministic context tar (what would be sent to the
//! engine) to a file or stdout, optionally gzipped. mtime comes from `SOURCE_DATE_EPOCH` or 0.
//!
//! A file output is written to a temporary file beside it and renamed into place only when the
//! tar is complete, so a failed run never destroys the previous output; an output file inside
//! the context is left out of the tar (it is not part of what the user means to send, and it
//! would change while being archived).

use super::plan::scan;
use crate::cli::ContextArgs;
use anyhow::Context as _;
use ctxbuild::context::inside as inside_context;
use ctxbuild::context::{Entry, EntryKind};
use ctxbuild::diagnostics::{diagnose, ResultExt};
use ctxbuild::exit::ExitStatus;
use ctxbuild::printer::{Closed, Printer};
use ctxbuild::tarball::{self, TarOptions};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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

/// A temporary file beside the output; removed on drop unless [`Staged::commit`] renamed it.
struct Staged {
    tmp: PathBuf,
    done: bool,
}

impl Staged {
    fn create(output: &Path) -> anyhow::Result<(Staged, File)> {
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "context.tar".into());
        let tmp = dir.join(format!(".{name}.ctxbuild-{}.tmp", std::process::id()));
        // 0o666 before the umask: the same mode File::create would give the output.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", output.display()))?;
        Ok((Staged { tmp, done: false }, f))
    }

    fn commit(mut self, output: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.tmp, output)
            .with_context(|| format!("cannot rename the finished tar to {}", output.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The output's path relative to the context root when it lies inside the context, and its
/// (dev, ino) when it already exists (catches a hard link or another spelling of it).
fn output_in_context(root: &Path, output: &Path) -> (Option<PathBuf>, Option<(u64, u64)>) {
    let id = std::fs::metadata(output).ok().map(|m| (m.dev(), m.ino()));
    (inside_context(root, output), id)
}

pub fn run(args: &ContextArgs, printer: &mut Printer) -> anyhow::Result<ExitStatus> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(anyhow::anyhow!("refusing to write a tar to a terminal"))
            .hint("redirect stdout or use -o FILE");
    }
    let ctx = scan(&args.dir, args.file.as_deref(), printer)?;
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut opts = TarOptions {
        mtime,
        gzip: args.gzip,
        ..Default::default()
    };
    let mut entries: Vec<Entry> = ctx.sent().into_iter().cloned().collect();
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
        tarball::write_context(&ctx.root, &entries, Stdout(printer), &opts)
    } else {
        let (staged, mut f) = Staged::create(&args.output)?;
        match tarball::write_context(&ctx.root, &entries, &mut f, &opts) {
            Ok(st) => {
                f.sync_all()
                    .with_context(|| format!("cannot write {}", args.output.display()))?;
                staged.commit(&args.output)?;
                Ok(st)
            }
            Err(e) => Err(e),
        }
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
        Err(e) => Err(diagnose(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_leaves_the_previous_output_intact() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ctx.tar");
        std::fs::write(&out, b"previous good tar").unwrap();
        {
            let (_staged, mut f) = Staged::create(&out).unwrap();
            f.write_all(b"half a tar").unwrap();
            // dropped without commit: the run failed
        }
        assert_eq!(std::fs::read(&out).unwrap(), b"previous good tar");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file was removed");
    }

    #[test]
    fn a_finished_run_replaces_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ctx.tar");
        std::fs::write(&out, b"old").unwrap();
        let (staged, mut f) = Staged::create(&out).unwrap();
        f.write_all(b"new").unwrap();
        staged.commit(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

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
