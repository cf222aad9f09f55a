//! Node frontends for `init`: a `package.json` with a `build` script, and a guess of the
//! standalone output the node template copies (`build_output`) and runs (`entrypoint`).
//!
//! The guess, most specific first: a `start` script `node DIR/FILE.js` names both; `next build`
//! writes `.next/standalone/server.js` (with `output: "standalone"`); otherwise the config
//! defaults (`dist`, `server.js`). Reads only `package.json`, bounded.

use crate::fsutil;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `package.json` larger than this is not a hand-written manifest.
const MAX_PACKAGE_JSON: u64 = 1 << 20;

/// A Node frontend.
#[derive(Debug, Clone, Serialize)]
pub struct Frontend {
    /// The service name (set by the caller, which owns the namespace).
    pub name: String,
    /// The build context, relative to the root.
    pub context: PathBuf,
    /// `scripts.build` as written.
    pub build_script: String,
    /// The directory `npm run build` is expected to write, relative to the context.
    pub build_output: String,
    /// The file `node` runs inside the build output.
    pub entrypoint: String,
    /// Where the guess comes from: `scripts.start`, `next build` or `default`.
    pub guessed_from: String,
    /// `package-lock.json` exists (the template runs `npm ci`, which needs it).
    pub lockfile: bool,
}

/// The frontend in `abs` (relative path `rel`), if its `package.json` has a `build` script. A
/// manifest that cannot be read or parsed is a note, not a frontend.
pub fn frontend(abs: &Path, rel: &Path, notes: &mut Vec<String>) -> Option<Frontend> {
    let shown = super::shown(rel);
    let text = match fsutil::read_limited(&abs.join("package.json"), MAX_PACKAGE_JSON) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            notes.push(format!("{shown}/package.json: {e}"));
            return None;
        }
    };
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("{shown}/package.json:{}: not JSON ({e})", e.line()));
            return None;
        }
    };
    let script = |k: &str| {
        json.get("scripts")
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let build_script = script("build")?;
    let (build_output, entrypoint, guessed_from) =
        match script("start").and_then(|s| node_target(&s)) {
            Some((dir, file)) => (dir, file, "scripts.start"),
            None if build_script.contains("next build") => {
                (".next/standalone".into(), "server.js".into(), "next build")
            }
            None => ("dist".into(), "server.js".into(), "default"),
        };
    Some(Frontend {
        name: String::new(),
        context: if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        },
        build_script,
        build_output,
        entrypoint,
        guessed_from: guessed_from.into(),
        lockfile: abs.join("package-lock.json").is_file(),
    })
}

/// `node dist/server.js` (flags allowed before the file) → (`dist`, `server.js`). Only a
/// relative path below a directory, without `..`, qualifies.
fn node_target(start: &str) -> Option<(String, String)> {
    let mut words = start.split_whitespace();
    if words.next()? != "node" {
        return None;
    }
    let file = words.find(|w| !w.starts_with('-'))?;
    let file = file.trim_start_matches("./");
    let (dir, name) = file.rsplit_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.split('/').all(|p| !p.is_empty() && p != ".." && p != ".")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    };
    (ok(dir) && ok(name) && name.ends_with("js")).then(|| (dir.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::node_target;

    #[test]
    fn start_script_names_output_and_entrypoint() {
        assert_eq!(
            node_target("node dist/server.js"),
            Some(("dist".into(), "server.js".into()))
        );
        assert_eq!(
            node_target("node --enable-source-maps ./build/app/index.mjs"),
            Some(("build/app".into(), "index.mjs".into()))
        );
        assert_eq!(node_target("node server.js"), None);
        assert_eq!(node_target("node ../x/server.js"), None);
        assert_eq!(node_target("next start"), None);
    }
}
