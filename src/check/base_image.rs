//! Base images must be pinned: a `FROM` without a tag, or with `latest`, changes under the
//! build without any edit to the Dockerfile (and breaks the layer cache when it does).
//!
//! `FROM` lines naming an earlier stage or `scratch` are not images; `${VAR}` references are
//! expanded with the meta ARG defaults first, and skipped if they stay unresolved.

use super::dockerfile::Parsed;
use super::{Finding, RuleId, ServiceCtx};
use crate::dockerfile::{shell, Keyword};

/// The tag of an image reference (`None` when untagged); a digest counts as pinned.
pub fn tag(image: &str) -> Option<&str> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t)
}

pub fn check(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    let escape = p.df.directives.escape;
    let meta: Vec<(String, String)> =
        p.df.meta_args()
            .iter()
            .filter_map(|i| i.key_values(escape).ok())
            .flatten()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
    let any_value: Vec<(String, String)> =
        p.df.meta_args()
            .iter()
            .filter_map(|i| i.key_values(escape).ok())
            .flatten()
            .map(|(k, _)| (k, "x".to_string()))
            .collect();
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for ins in
        p.df.instructions
            .iter()
            .filter(|i| i.keyword == Keyword::From)
    {
        let Some((raw, name)) = ins.from_parts() else {
            continue;
        };
        // Every declared meta ARG may be set by --build-arg; an image name that stays blank
        // whatever they are set to fails every build ("base name should not be blank").
        if shell::expand(&raw, &any_value, escape).is_ok_and(|i| i.is_empty()) {
            out.push(cx.finding(
                RuleId::DockerfileInvalid,
                p.loc(cx, ins.line, None),
                format!("base name ({raw}) should not be blank"),
                "declare the variable with `ARG NAME=default` before the first FROM, or name the image",
            ));
            continue;
        }
        let image = shell::expand(&raw, &meta, escape).unwrap_or(raw.clone());
        let known_stage = stages.contains(&image.to_ascii_lowercase());
        if let Some(n) = name {
            stages.push(n);
        }
        if known_stage
            || image.eq_ignore_ascii_case("scratch")
            || image.contains('$')
            || image.is_empty()
        {
            continue;
        }
        let problem = match tag(&image) {
            None => format!("base image `{image}` has no tag, so it means `latest`"),
            Some("latest") => format!("base image `{image}` uses `latest`"),
            Some(_) => continue,
        };
        out.push(cx.finding(
            RuleId::BaseImageTag,
            p.loc(cx, ins.line, None),
            format!("{problem}: it changes without any edit here"),
            "pin a version tag (python:3.12-alpine, node:20-alpine) or a digest (image@sha256:…)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag("python:3.12-alpine"), Some("3.12-alpine"));
        assert_eq!(tag("python"), None);
        assert_eq!(tag("localhost:5000/py"), None);
        assert_eq!(tag("localhost:5000/py:1"), Some("1"));
        assert_eq!(tag("py@sha256:abc"), Some("sha256:abc"));
    }
}
