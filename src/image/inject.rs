//! A Dockerfile that is not a file of the context, added to the context tar the way the docker
//! CLI does it: under its own name, with a `.dockerignore` that lists that name so the daemon
//! removes it before any `COPY . …` sees it.
//!
//! The CLI picks a random name (`.dockerfile.<random>`), which changes `.dockerignore` on every
//! build and so busts the cache of a `COPY .` that sees `.dockerignore`. ctxbuild uses a fixed
//! name, keeping the context — and the cache — identical from build to build.
//!
//! Boundary: decides what the tar carries ([`TarOptions`]); `tarball` writes it. This is the
//! one path `image` uses, and the engine tests use it too.

use crate::context::Context;
use crate::fsutil;
use crate::tarball::{ExtraFile, TarOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The name the injected Dockerfile has inside the context tar.
pub const INJECTED_DOCKERFILE: &str = ".ctxbuild.Dockerfile";

/// The most `.dockerignore` ctxbuild reads (it is a list of patterns, not data).
const DOCKERIGNORE_LIMIT: u64 = 4 << 20;

/// The `.dockerignore` sent: the context's own plus the injected name, or — with none — one
/// that hides itself and the Dockerfile (as the CLI writes it).
pub fn dockerignore_text(own: Option<&[u8]>) -> Vec<u8> {
    let mut text = match own {
        Some(content) => content.to_vec(),
        None => b".dockerignore".to_vec(),
    };
    text.extend_from_slice(format!("\n{INJECTED_DOCKERFILE}\n").as_bytes());
    text
}

/// The context's own `.dockerignore` (its bytes and mode), visible or hidden, if it has one.
/// Read before the scanned entries are handed on (keying consumes them).
pub fn own_dockerignore(ctx: &Context) -> Result<Option<(Vec<u8>, u32)>, fsutil::ReadError> {
    let own = ctx
        .entries
        .iter()
        .chain(&ctx.hidden)
        .find(|e| e.path.as_os_str().as_bytes() == b".dockerignore");
    match own {
        Some(e) => Ok(Some((
            fsutil::read_limited(&ctx.root.join(&e.path), DOCKERIGNORE_LIMIT)?,
            e.mode,
        ))),
        None => Ok(None),
    }
}

/// Tar options that send `dockerfile` under [`INJECTED_DOCKERFILE`] with the `.dockerignore`
/// that hides it (the context's `own` one, from [`own_dockerignore`], extended), every entry at
/// `mtime`. The context's own Dockerfile, unused then, is sent only when COPY can see it.
pub fn tar_options(
    ctx: &Context,
    own: Option<(Vec<u8>, u32)>,
    dockerfile: &str,
    mtime: u64,
) -> TarOptions {
    let mut opts = TarOptions {
        mtime,
        extra: vec![
            ExtraFile {
                path: PathBuf::from(".dockerignore"),
                data: dockerignore_text(own.as_ref().map(|(t, _)| t.as_slice())),
                mode: own.as_ref().map_or(0o644, |(_, m)| *m),
            },
            ExtraFile {
                path: PathBuf::from(INJECTED_DOCKERFILE),
                data: dockerfile.as_bytes().to_vec(),
                mode: 0o644,
            },
        ],
        ..Default::default()
    };
    if let Some(df) = &ctx.dockerfile {
        if ctx.hidden.iter().any(|h| &h.path == df) {
            opts.exclude.push(df.clone());
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{scan, ContextOptions};
    use std::io::Read;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, String, u32)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mode = e.header().mode().unwrap();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                (path, s, mode)
            })
            .collect()
    }

    fn tar_of(dir: &std::path::Path) -> Vec<u8> {
        let ctx = scan(&ContextOptions::new(dir)).unwrap();
        let own = own_dockerignore(&ctx).unwrap();
        let opts = tar_options(&ctx, own, "FROM scratch\n", 0);
        let sent: Vec<_> = ctx.sent().into_iter().cloned().collect();
        let mut buf = Vec::new();
        crate::tarball::write_context(&ctx.root, &sent, &mut buf, &opts).unwrap();
        buf
    }

    #[test]
    fn adds_dockerfile_and_a_self_hiding_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("main.py"), "print").unwrap();
        let e = entries(&tar_of(d.path()));
        assert!(e.contains(&(
            ".dockerignore".into(),
            ".dockerignore\n.ctxbuild.Dockerfile\n".into(),
            0o644
        )));
        assert!(e.contains(&(
            ".ctxbuild.Dockerfile".into(),
            "FROM scratch\n".into(),
            0o644
        )));
        assert!(e.contains(&("main.py".into(), "print".into(), 0o644)));
    }

    #[test]
    fn keeps_the_contexts_own_dockerignore_and_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let ignore = d.path().join(".dockerignore");
        std::fs::write(&ignore, "**/__pycache__").unwrap();
        std::fs::set_permissions(&ignore, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (a, b) = (tar_of(d.path()), tar_of(d.path()));
        assert_eq!(a, b, "deterministic");
        let e = entries(&a);
        let own: Vec<_> = e.iter().filter(|x| x.0 == ".dockerignore").collect();
        assert_eq!(own.len(), 1, "{e:?}");
        assert_eq!(own[0].1, "**/__pycache__\n.ctxbuild.Dockerfile\n");
        assert_eq!(own[0].2, 0o600);
    }
}
