//! A Dockerfile that is not a file of the context, added to the context tar the way the docker
//! CLI does it: under its own name, with a `.dockerignore` that lists that name so the daemon
//! removes it before any `COPY . …` sees it.
//!
//! The CLI picks a random name (`.dockerfile.<random>`), which changes `.dockerignore` on every
//! build and so busts the cache of a `COPY .` that sees `.dockerignore`. ctxbuild uses a fixed
//! name, keeping the context — and the cache — identical from build to build.
//!
//! The injected entries are written *before* the context tar (which ends with its own
//! end-of-archive blocks); the caller leaves the context's own `.dockerignore` out of it.

use super::error::BoxError;
use std::io::Write;

/// The name the injected Dockerfile has inside the context tar.
pub const INJECTED_DOCKERFILE: &str = ".ctxbuild.Dockerfile";

/// What to add in front of the context.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The Dockerfile's text.
    pub dockerfile: Vec<u8>,
    /// The context's own `.dockerignore` (content and mode), if it has one.
    pub dockerignore: Option<(Vec<u8>, u32)>,
    /// mtime of the added entries (`SOURCE_DATE_EPOCH` or 0, like the rest of the tar).
    pub mtime: u64,
}

impl Injection {
    /// The `.dockerignore` sent: the context's own plus the injected name, or — with none —
    /// one that hides itself and the Dockerfile (as the CLI writes it).
    pub fn dockerignore_text(&self) -> Vec<u8> {
        let mut text = match &self.dockerignore {
            Some((content, _)) => content.clone(),
            None => b".dockerignore".to_vec(),
        };
        text.extend_from_slice(format!("\n{INJECTED_DOCKERFILE}\n").as_bytes());
        text
    }

    /// Writes the injected entries (no end-of-archive: the context tar follows).
    pub fn write(&self, out: &mut dyn Write) -> Result<(), BoxError> {
        let mode = self.dockerignore.as_ref().map_or(0o644, |(_, m)| *m);
        write_file(
            out,
            ".dockerignore",
            &self.dockerignore_text(),
            mode,
            self.mtime,
        )?;
        write_file(
            out,
            INJECTED_DOCKERFILE,
            &self.dockerfile,
            0o644,
            self.mtime,
        )?;
        Ok(())
    }
}

fn write_file(
    out: &mut dyn Write,
    path: &str,
    data: &[u8],
    mode: u32,
    mtime: u64,
) -> Result<(), BoxError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    out.write_all(data)?;
    let pad = (512 - data.len() % 512) % 512;
    out.write_all(&[0u8; 512][..pad])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn context_tar(out: &mut dyn Write) {
        let mut b = tar::Builder::new(out);
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "app/main.py", &b"print"[..]).unwrap();
        b.finish().unwrap();
    }

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

    #[test]
    fn adds_dockerfile_and_a_self_hiding_dockerignore() {
        let inj = Injection {
            dockerfile: b"FROM scratch\n".to_vec(),
            dockerignore: None,
            mtime: 0,
        };
        let mut buf = Vec::new();
        inj.write(&mut buf).unwrap();
        context_tar(&mut buf);
        assert_eq!(
            entries(&buf),
            vec![
                (
                    ".dockerignore".into(),
                    ".dockerignore\n.ctxbuild.Dockerfile\n".into(),
                    0o644
                ),
                (
                    ".ctxbuild.Dockerfile".into(),
                    "FROM scratch\n".into(),
                    0o644
                ),
                ("app/main.py".into(), "print".into(), 0o644),
            ]
        );
    }

    #[test]
    fn keeps_the_contexts_own_dockerignore_and_its_mode() {
        let inj = Injection {
            dockerfile: b"FROM scratch\n".to_vec(),
            dockerignore: Some((b"**/__pycache__".to_vec(), 0o600)),
            mtime: 0,
        };
        let mut a = Vec::new();
        inj.write(&mut a).unwrap();
        let mut b = Vec::new();
        inj.write(&mut b).unwrap();
        assert_eq!(a, b, "deterministic");
        let e = entries(&{
            context_tar(&mut a);
            a
        });
        assert_eq!(e[0].1, "**/__pycache__\n.ctxbuild.Dockerfile\n");
        assert_eq!(e[0].2, 0o600);
    }
}
