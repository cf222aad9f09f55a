//! Test helpers for the engine suites: contexts as tars, leftover-container checks, cleanup.
#![allow(dead_code)]

use std::io::Write;

/// A tar writer for a context given as (path, contents) pairs, for `Engine::build`.
pub fn tar_of(
    files: Vec<(String, Vec<u8>)>,
) -> impl FnOnce(&mut dyn Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + 'static
{
    move |w: &mut dyn Write| {
        let mut b = tar::Builder::new(w);
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_slice())?;
        }
        b.finish()?;
        Ok(())
    }
}

/// Ids and commands of every container whose command mentions `marker`.
pub fn containers_mentioning(marker: &str) -> Vec<String> {
    let out =
        super::common::docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"]);
    out.lines()
        .filter(|l| l.contains(marker))
        .map(str::to_string)
        .collect()
}

/// Removes images by reference, ignoring missing ones.
pub fn rmi(refs: &[&str]) {
    for r in refs {
        let _ = super::common::docker_output(&["rmi", "-f", r]);
    }
}
