//! Manifest constructors shared by the unit tests of `key` (test builds only).

use super::manifest::{Manifest, ManifestEntry};
use crate::context::EntryKind;

pub(crate) fn file(p: &str, mode: u32, content: &str) -> ManifestEntry {
    ManifestEntry {
        path: p.into(),
        kind: EntryKind::File,
        mode,
        size: content.len() as u64,
        link_target: None,
        rdev: 0,
        hash: Some(*blake3::hash(content.as_bytes()).as_bytes()),
    }
}
pub(crate) fn dir(p: &str) -> ManifestEntry {
    ManifestEntry {
        path: p.into(),
        kind: EntryKind::Dir,
        mode: 0o755,
        size: 0,
        link_target: None,
        rdev: 0,
        hash: None,
    }
}
pub(crate) fn link(p: &str, t: &str) -> ManifestEntry {
    ManifestEntry {
        path: p.into(),
        kind: EntryKind::Symlink,
        mode: 0o777,
        size: t.len() as u64,
        link_target: Some(t.into()),
        rdev: 0,
        hash: None,
    }
}
pub(crate) fn manifest(mut v: Vec<ManifestEntry>) -> Manifest {
    v.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
    Manifest { entries: v }
}
