//! What a `COPY`/`ADD` source selection yields, and how a path resolves through the context's
//! symlinks. A leaf of `key`: both the classic rules (`plan`) and BuildKit's (`buildkit`) use it.

use super::manifest::{Hash, Records};
use crate::context::EntryKind;
use std::os::unix::ffi::OsStrExt;

/// Result of selecting `COPY`/`ADD` sources in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// What Docker's source hash depends on.
    pub hash: Hash,
    /// Indices into the manifest of every entry that takes part, sorted, deduplicated.
    pub entries: Vec<usize>,
}

/// Why sources could not be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    NotFound(String),
    Outside(String),
    NoMatch(String),
}

pub enum Resolved {
    /// A path without symlinks (empty: the context root); it may not exist.
    Path(Vec<u8>),
    /// Too many links.
    Loop,
}

/// Follows symlinks inside the context as Docker's `FollowSymlinkInScope` does: `..` never
/// leaves the root, absolute targets start at the root.
pub fn resolve_in<M: Records + ?Sized>(m: &M, path: &[u8]) -> Resolved {
    let mut todo: std::collections::VecDeque<Vec<u8>> =
        path.split(|&c| c == b'/').map(<[u8]>::to_vec).collect();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let joined = cur.join(&b'/');
        if let Some(e) = m.lookup(&joined) {
            if e.kind == EntryKind::Symlink {
                links += 1;
                if links > 255 {
                    return Resolved::Loop;
                }
                cur.pop();
                let target = e
                    .link_target
                    .as_ref()
                    .map(|t| t.as_os_str().as_bytes().to_vec())
                    .unwrap_or_default();
                if target.starts_with(b"/") {
                    cur.clear();
                }
                for part in target.split(|&c| c == b'/').rev() {
                    todo.push_front(part.to_vec());
                }
            }
        }
    }
    Resolved::Path(cur.join(&b'/'))
}
