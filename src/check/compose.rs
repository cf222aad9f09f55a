//! Compose files: every `build:` must point at a context and a Dockerfile that exist.
//!
//! Parsed with yaml-rust2's event parser into a small tree that keeps line numbers, so each
//! finding names the line of the offending `context:` or `dockerfile:`. Only the `services.*.build`
//! keys are read; everything else in the file is ignored. Remote contexts (URLs, git) and values
//! with `${VAR}` interpolation cannot be checked locally and are skipped.

use super::{Finding, RuleId};
use crate::service::config::Config;
use std::path::{Path, PathBuf};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A YAML node with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(String, u32),
    Seq(Vec<Node>, u32),
    Map(Vec<(Node, Node)>, u32),
    /// Aliases are not followed.
    Alias(u32),
}

impl Node {
    pub fn line(&self) -> u32 {
        match self {
            Node::Scalar(_, l) | Node::Seq(_, l) | Node::Map(_, l) | Node::Alias(l) => *l,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(pairs, _) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Node::Scalar(s, _) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    /// Pending keys of open mappings (parallel to `stack` entries that are maps).
    keys: Vec<Option<Node>>,
    root: Option<Node>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Node::Seq(items, _)) => items.push(node),
            Some(Node::Map(pairs, _)) => {
                // Every open map pushes a key slot; a missing one means unbalanced events,
                // which the YAML parser never emits, so dropping the value is safe.
                let Some(slot) = self.keys.last_mut() else {
                    return;
                };
                match slot.take() {
                    None => *slot = Some(node),
                    Some(k) => pairs.push((k, node)),
                }
            }
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line() as u32;
        match ev {
            Event::Scalar(s, ..) => self.push_value(Node::Scalar(s, line)),
            Event::Alias(_) => self.push_value(Node::Alias(line)),
            Event::SequenceStart(..) => self.stack.push(Node::Seq(Vec::new(), line)),
            Event::MappingStart(..) => {
                self.stack.push(Node::Map(Vec::new(), line));
                self.keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(node) = self.stack.pop() {
                    if matches!(node, Node::Map(..)) {
                        self.keys.pop();
                    }
                    self.push_value(node);
                }
            }
            _ => {}
        }
    }
}

/// Parses the first YAML document; `Err` is the parser's message with the line (1-based) and
/// column (1-based) of the scanner's marker.
pub fn parse(text: &str) -> Result<Option<Node>, (String, u32, u32)> {
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, false)
        .map_err(|e| {
            let m = e.marker();
            (e.info().to_string(), m.line() as u32, m.col() as u32 + 1)
        })?;
    Ok(b.root)
}

/// Checks one compose file named relative to the configuration's directory.
pub fn check_file(config: &Config, rel: &Path) -> Vec<Finding> {
    let display = config.display_path(rel);
    let path = config.root.join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return vec![Finding::new(
                RuleId::ComposeUnreadable,
                display,
                None,
                format!("cannot read the compose file: {e}"),
                format!(
                    "fix or remove it from `compose` in {}",
                    config.path.display()
                ),
            )]
        }
    };
    let base = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    check_text(
        &text,
        &display,
        &|p: &Path| config.root.join(&base).join(p),
        &|p: &Path| config.display_path(&base.join(p)),
    )
}

/// Checks compose text; `resolve` maps a path relative to the compose file onto the disk and
/// `show` onto how messages name it.
pub fn check_text(
    text: &str,
    display: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    show: &dyn Fn(&Path) -> String,
) -> Vec<Finding> {
    let root = match parse(text) {
        Ok(Some(r)) => r,
        Ok(None) => return Vec::new(),
        Err((msg, line, col)) => {
            // The scanner reports end-of-input errors one line past the end.
            let line = line.clamp(1, text.lines().count().max(1) as u32);
            return vec![Finding::new(
                RuleId::ComposeUnreadable,
                display,
                Some(line),
                format!("not valid YAML (column {col}): {msg}"),
                "fix the YAML syntax (indentation, quotes, `:` after keys)",
            )];
        }
    };
    let mut out = Vec::new();
    let Some(Node::Map(services, _)) = root.get("services") else {
        return out;
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?");
        let Some(build) = svc.get("build") else {
            continue;
        };
        let (context, dockerfile) = match build {
            Node::Scalar(..) => (Some(build), None),
            Node::Map(..) => (build.get("context"), build.get("dockerfile")),
            _ => continue,
        };
        if build.get("dockerfile_inline").is_some() {
            continue;
        }
        let ctx_text = context.and_then(Node::as_str).unwrap_or(".");
        if !local(ctx_text) {
            continue;
        }
        let ctx_rel = PathBuf::from(ctx_text);
        let ctx_line = context.map(Node::line).unwrap_or(build.line());
        if !resolve(&ctx_rel).is_dir() {
            out.push(Finding::new(
                RuleId::ComposeContextMissing,
                display,
                Some(ctx_line),
                format!(
                    "service `{name}` builds from context {}, which does not exist",
                    show(&ctx_rel)
                ),
                "fix the path (it is relative to the compose file) or create the directory",
            ));
            continue;
        }
        let df_text = dockerfile.and_then(Node::as_str).unwrap_or("Dockerfile");
        if df_text.contains('$') {
            continue;
        }
        let df_rel = ctx_rel.join(df_text);
        let df_line = dockerfile.map(Node::line).unwrap_or(ctx_line);
        if !resolve(&df_rel).is_file() {
            let fix = if dockerfile.is_none() {
                format!(
                    "render one with `ctxbuild render {name} -o {}`, or set build.dockerfile",
                    show(&df_rel)
                )
            } else {
                "fix the path (it is relative to the build context) or create the Dockerfile"
                    .to_string()
            };
            out.push(Finding::new(
                RuleId::ComposeDockerfileMissing,
                display,
                Some(df_line),
                format!(
                    "service `{name}` builds with {}, which does not exist",
                    show(&df_rel)
                ),
                fix,
            ));
        }
    }
    out
}

/// Whether a context can be checked on this disk (not a URL, not interpolated).
fn local(ctx: &str) -> bool {
    !(ctx.contains("://") || ctx.starts_with("git@") || ctx.ends_with(".git") || ctx.contains('$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_lines() {
        let root = parse("services:\n  web:\n    build:\n      context: ./web\n      dockerfile: Dockerfile.dev\n").unwrap().unwrap();
        let build = root
            .get("services")
            .unwrap()
            .get("web")
            .unwrap()
            .get("build")
            .unwrap();
        assert_eq!(
            build.get("context").unwrap(),
            &Node::Scalar("./web".into(), 4)
        );
        assert_eq!(build.get("dockerfile").unwrap().line(), 5);
    }

    #[test]
    fn finds_missing_context_and_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("api")).unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(dir.path().join("web/Dockerfile"), "FROM scratch\n").unwrap();
        let text = "services:\n  api:\n    build: ./api\n  web:\n    build:\n      context: web\n  gone:\n    build:\n      context: ./gone\n  odd:\n    build:\n      context: web\n      dockerfile: Dockerfile.prod\n  remote:\n    build: https://github.com/x/y.git\n  image_only:\n    image: redis:7\n";
        let root = dir.path().to_path_buf();
        let f = check_text(text, "compose.yaml", &|p| root.join(p), &|p| {
            p.display().to_string()
        });
        let got: Vec<(&str, Option<u32>)> = f.iter().map(|f| (f.rule.as_str(), f.line)).collect();
        assert_eq!(
            got,
            [
                ("compose-dockerfile-missing", Some(3)),
                ("compose-context-missing", Some(9)),
                ("compose-dockerfile-missing", Some(13))
            ]
        );
        assert!(f[0].fix.contains("ctxbuild render api"));
    }

    #[test]
    fn bad_yaml_is_a_finding() {
        let f = check_text(
            "services:\n  api: [\n",
            "c.yaml",
            &|p| p.to_path_buf(),
            &|p| p.display().to_string(),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "compose-unreadable");
    }

    #[test]
    fn bad_yaml_is_reported_at_the_scanner_line() {
        // The bad escape on line 5 is the error, not the first or the last line.
        let text =
            "services:\n  api:\n    image: a\n  web:\n    image: \"b\\q\"\n  db:\n    image: c\n";
        let f = check_text(text, "c.yaml", &|p| p.to_path_buf(), &|p| {
            p.display().to_string()
        });
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].location(), "c.yaml:5");
        assert!(f[0].message.contains("column "), "{}", f[0].message);
    }
}
