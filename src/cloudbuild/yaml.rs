//! A small YAML emitter for the fixed shape of a Cloud Build config: block mappings and block
//! sequences of strings and booleans, nothing else. Deterministic by construction (keys come
//! out in the order given) and conservative: a string is written plain only when no YAML 1.1
//! or 1.2 reader could take it for anything but that string, and double-quoted otherwise.
//!
//! It knows nothing about Cloud Build; `cloudbuild/mod.rs` builds the [`Node`] tree.

use std::fmt::Write;

/// A YAML value of the shapes a build config needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    Bool(bool),
    /// A block sequence; an empty one is written `[]`.
    Seq(Vec<Node>),
    /// A block mapping in this key order; an empty one is written `{}`.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    pub fn strs<S: AsRef<str>>(items: &[S]) -> Node {
        Node::Seq(items.iter().map(|s| Node::str(s.as_ref())).collect())
    }
}

/// Renders a document whose root is a mapping, ending in a newline.
pub fn render(root: &[(String, Node)]) -> String {
    let mut out = String::new();
    write_map(&mut out, root, 0);
    out
}

fn write_map(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (key, value) in entries {
        pad(out, indent);
        out.push_str(&scalar(key));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

/// Writes what follows `key:` (or `- `): inline for scalars and empty collections, on the
/// next lines for the rest.
fn write_value_after_key(out: &mut String, value: &Node, indent: usize) {
    match value {
        Node::Str(s) => {
            out.push(' ');
            out.push_str(&scalar(s));
            out.push('\n');
        }
        Node::Bool(b) => {
            let _ = writeln!(out, " {b}");
        }
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        Node::Map(entries) => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
    }
}

fn write_seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            // A mapping item starts on the dash's line: `- id: x` then its other keys
            // aligned under `id`.
            Node::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                let mut first = String::new();
                write_map(&mut first, entries, indent + 2);
                out.push_str(first.trim_start_matches(' '));
            }
            Node::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            other => write_value_after_key(out, other, indent),
        }
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// The string as a plain scalar when that is unambiguous, else double-quoted.
pub fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// Plain only for a conservative alphabet, a first character no reader treats as an indicator,
/// number or timestamp, and never a word YAML 1.1 reads as a boolean or null.
fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let body_ok = bytes.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'_' | b'.' | b'/' | b':' | b'@' | b'$' | b'{' | b'}' | b'=' | b'+' | b'-' | b','
            )
    });
    // `-` starts a plain scalar only when followed by a non-space: `--push` is plain, `-` is
    // a sequence entry and `-1` a number.
    let first_ok = first.is_ascii_alphabetic()
        || matches!(first, b'_' | b'$' | b'/')
        || (first == b'-'
            && bytes
                .get(1)
                .is_some_and(|b| *b == b'-' || b.is_ascii_alphabetic()));
    // `: ` would end a key; a trailing `:` reads as a mapping key too.
    let colon_ok = !s.ends_with(':');
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let word_ok = !WORDS.contains(&s.to_ascii_lowercase().as_str());
    body_ok && first_ok && colon_ok && word_ok
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Non-printable in YAML's sense (C1 controls, line/paragraph separators, BOM).
            c if matches!(c as u32, 0x80..=0x9f | 0x2028 | 0x2029 | 0xfeff) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::{Yaml, YamlLoader};

    fn round_trip(s: &str) -> Yaml {
        let doc = render(&[("k".into(), Node::str(s))]);
        let mut docs = YamlLoader::load_from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        docs.remove(0)["k"].clone()
    }

    #[test]
    fn every_tricky_string_reads_back_as_the_same_string() {
        let cases = [
            "",
            "-",
            "--push",
            "-1",
            "1",
            "1.5",
            "0x1f",
            "1e3",
            "3300s",
            "true",
            "No",
            "on",
            "Y",
            "null",
            "~",
            ".inf",
            ".nan",
            "2001-12-14",
            "1:20",
            "a: b",
            "a #b",
            "#x",
            "key:",
            "${_REPO}/backend:${_TAG}",
            "gs://${_ARTIFACTS_BUCKET}/x/",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "nel\u{85}",
            "sep\u{2028}",
            "ünïcode",
            "[x]",
            "{x}",
            "*alias",
            "&anchor",
            "!tag",
            "|",
            ">",
            "%dir",
            "@at",
            "`bt",
            " lead",
            "trail ",
            "--port=8080",
            "--memory=1Gi",
            "--cpu=0.5",
            "a,b",
        ];
        for s in cases {
            assert_eq!(round_trip(s), Yaml::String(s.to_string()), "{s:?}");
        }
    }

    #[test]
    fn plain_where_it_is_safe_quoted_elsewhere() {
        assert_eq!(scalar("--push"), "--push");
        assert_eq!(
            scalar("${_REPO}/backend:${_TAG}"),
            "${_REPO}/backend:${_TAG}"
        );
        assert_eq!(scalar("-"), "\"-\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("600s"), "\"600s\"");
    }

    #[test]
    fn nested_shapes_read_back() {
        let doc = render(&[
            (
                "steps".into(),
                Node::Seq(vec![Node::Map(vec![
                    ("id".into(), Node::str("check")),
                    ("args".into(), Node::strs(&["clean", "--check"])),
                    ("waitFor".into(), Node::strs(&["-"])),
                    ("env".into(), Node::Seq(vec![])),
                ])]),
            ),
            (
                "options".into(),
                Node::Map(vec![("dynamicSubstitutions".into(), Node::Bool(true))]),
            ),
            ("empty".into(), Node::Map(vec![])),
        ]);
        let y = &YamlLoader::load_from_str(&doc).unwrap()[0];
        assert_eq!(y["steps"][0]["id"].as_str(), Some("check"), "{doc}");
        assert_eq!(y["steps"][0]["args"][1].as_str(), Some("--check"), "{doc}");
        assert_eq!(y["steps"][0]["waitFor"][0].as_str(), Some("-"), "{doc}");
        assert_eq!(
            y["steps"][0]["env"].as_vec().map(Vec::len),
            Some(0),
            "{doc}"
        );
        assert_eq!(
            y["options"]["dynamicSubstitutions"].as_bool(),
            Some(true),
            "{doc}"
        );
        assert!(y["empty"].as_hash().is_some_and(|h| h.is_empty()), "{doc}");
    }
}
