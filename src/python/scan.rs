//! A light, line-based reader of Python source: just enough structure to see what a module binds
//! at module level and which calls it makes, without a real parser.
//!
//! [`statements`] joins physical lines into logical ones (open brackets, strings — triple-quoted
//! too — and backslash continuations), strips comments, and marks each statement as module level
//! or not: a statement is module level unless it sits inside a `def` or `class` body (the bodies
//! of top-level `if`/`try`/`with`/`for` still bind module names). Everything is a single pass with
//! counters and a bounded indentation stack — no recursion, so no input can exhaust the stack —
//! and each statement's text is capped, so no input can grow a buffer without bound.
//! It never reads files and never fails: text it cannot make sense of yields fewer statements.

/// Longest logical statement kept; the rest of a longer one is dropped (a literal data table).
const MAX_STATEMENT: usize = 64 * 1024;
/// Deepest indentation tracked; deeper blocks are treated as their deepest tracked parent.
const MAX_BLOCKS: usize = 256;

/// One logical statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// 1-based line where the statement starts.
    pub line: usize,
    /// Columns of indentation of its first line (a tab counts as 8, as Python does).
    pub indent: usize,
    /// The statement on one line: comments removed, continuation lines joined with a space.
    pub text: String,
    /// True unless the statement is inside a `def` or `class` body.
    pub module_level: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Str {
    None,
    Single(char),
    Triple(char),
}

/// Splits Python source into logical statements (see the module doc).
pub fn statements(source: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut blocks: Vec<(usize, bool)> = Vec::new();
    let mut text = String::new();
    let mut start_line = 0usize;
    let mut indent = 0usize;
    let mut depth = 0usize;
    let mut string = Str::None;
    let mut line_no = 1usize;
    let mut at_line_start = true;
    let mut col = 0usize;
    let mut chars = source.chars().peekable();
    let push = |c: char, text: &mut String| {
        if text.len() < MAX_STATEMENT {
            text.push(c);
        }
    };

    while let Some(c) = chars.next() {
        if at_line_start && text.is_empty() && string == Str::None && depth == 0 {
            match c {
                ' ' => {
                    col += 1;
                    continue;
                }
                '\t' => {
                    col = (col / 8 + 1) * 8;
                    continue;
                }
                '\r' | '\x0c' => continue,
                '\n' => {
                    line_no += 1;
                    col = 0;
                    continue;
                }
                '#' => {
                    // A comment-only line: skip to its end.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                    line_no += 1;
                    col = 0;
                    continue;
                }
                _ => {
                    at_line_start = false;
                    start_line = line_no;
                    indent = col;
                }
            }
        }
        match string {
            Str::Single(q) => {
                push(c, &mut text);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        if n == '\n' {
                            line_no += 1;
                        }
                        push(n, &mut text);
                    }
                } else if c == q {
                    string = Str::None;
                } else if c == '\n' {
                    // An unterminated string ends at the line, as a SyntaxError would.
                    line_no += 1;
                    string = Str::None;
                    text.pop();
                    finish(&mut out, &mut blocks, &mut text, start_line, indent);
                    at_line_start = true;
                    col = 0;
                    depth = 0;
                }
                continue;
            }
            Str::Triple(q) => {
                push(c, &mut text);
                if c == '\n' {
                    line_no += 1;
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        if n == '\n' {
                            line_no += 1;
                        }
                        push(n, &mut text);
                    }
                } else if c == q && chars.peek() == Some(&q) {
                    chars.next();
                    push(q, &mut text);
                    if chars.peek() == Some(&q) {
                        chars.next();
                        push(q, &mut text);
                        string = Str::None;
                    }
                }
                continue;
            }
            Str::None => {}
        }
        match c {
            '\'' | '"' => {
                push(c, &mut text);
                if chars.peek() == Some(&c) {
                    chars.next();
                    push(c, &mut text);
                    if chars.peek() == Some(&c) {
                        chars.next();
                        push(c, &mut text);
                        string = Str::Triple(c);
                    }
                    // Two quotes and no third: an empty string, already closed.
                } else {
                    string = Str::Single(c);
                }
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line_no += 1;
                if depth == 0 {
                    finish(&mut out, &mut blocks, &mut text, start_line, indent);
                    at_line_start = true;
                    col = 0;
                } else {
                    push(' ', &mut text);
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line_no += 1;
                push(' ', &mut text);
            }
            '(' | '[' | '{' => {
                depth += 1;
                push(c, &mut text);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                push(c, &mut text);
            }
            '\n' => {
                line_no += 1;
                if depth == 0 {
                    finish(&mut out, &mut blocks, &mut text, start_line, indent);
                    at_line_start = true;
                    col = 0;
                } else {
                    push(' ', &mut text);
                }
            }
            '\r' => {}
            _ => push(c, &mut text),
        }
    }
    finish(&mut out, &mut blocks, &mut text, start_line, indent);
    out
}

fn finish(
    out: &mut Vec<Statement>,
    blocks: &mut Vec<(usize, bool)>,
    text: &mut String,
    line: usize,
    indent: usize,
) {
    let t = text.trim();
    if t.is_empty() {
        text.clear();
        return;
    }
    while blocks.last().is_some_and(|&(i, _)| i >= indent) {
        blocks.pop();
    }
    let module_level = !blocks.iter().any(|&(_, scope)| scope);
    if t.ends_with(':') && blocks.len() < MAX_BLOCKS {
        let scope = t.starts_with("def ")
            || t.starts_with("async def ")
            || t.starts_with("class ")
            || t.starts_with("def\t")
            || t.starts_with("class\t");
        blocks.push((indent, scope));
    }
    out.push(Statement {
        line,
        indent,
        text: t.to_string(),
        module_level,
    });
    text.clear();
}

/// The first string literal in `text` (plain quotes; prefixes like `f` are not checked), unquoted.
pub fn first_string(text: &str) -> Option<&str> {
    let start = text.find(['"', '\''])?;
    let q = text[start..].chars().next()?;
    let rest = &text[start + 1..];
    let end = rest.find(q)?;
    Some(&rest[..end])
}

/// Whether `c` can be part of a Python identifier (ASCII subset).
pub fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `s` is an ASCII Python identifier.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(is_ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, bool, String)> {
        statements(src)
            .into_iter()
            .map(|s| (s.line, s.module_level, s.text))
            .collect()
    }

    #[test]
    fn joins_brackets_strings_and_continuations() {
        let src = "\"\"\"Doc\nstring: with colon:\n\"\"\"\nimport os  # c\napp = FastAPI(\n    title='x',  # t\n)\nx = 1 + \\\n  2\ns = 'a#b'\n";
        let got = texts(src);
        assert_eq!(got[0].0, 1);
        assert!(got[0].2.starts_with("\"\"\"Doc"));
        assert_eq!(got[1], (4, true, "import os".into()));
        assert_eq!(
            got[2],
            (5, true, "app = FastAPI(     title='x',   )".into())
        );
        assert_eq!(got[3], (8, true, "x = 1 +    2".into()));
        assert_eq!(got[4], (10, true, "s = 'a#b'".into()));
    }

    #[test]
    fn def_and_class_bodies_are_not_module_level() {
        let src = "def make():\n    app = FastAPI()\n    return app\n\nif True:\n    app = FastAPI()\nelse:\n    other = 1\nclass C:\n    def m(self):\n        x = 1\ny = 2\n";
        let got = texts(src);
        let level = |t: &str| got.iter().find(|g| g.2 == t).map(|g| g.1);
        assert_eq!(got.iter().filter(|g| g.2 == "app = FastAPI()").count(), 2);
        assert!(!got[1].1, "inside def");
        assert_eq!(level("if True:"), Some(true));
        assert!(got[4].1, "inside a top-level if");
        assert_eq!(level("other = 1"), Some(true));
        assert_eq!(level("x = 1"), Some(false));
        assert_eq!(level("y = 2"), Some(true));
    }

    #[test]
    fn deep_nesting_and_unbalanced_input_do_not_hurt() {
        let deep = "(".repeat(100_000) + "\nx = 1\n";
        assert_eq!(statements(&deep).len(), 1);
        let indented: String = (0..2000)
            .map(|i| format!("{}if x:\n", " ".repeat(i)))
            .collect();
        assert_eq!(statements(&indented).len(), 2000);
        assert_eq!(statements("s = 'open\napp = 1\n")[1].text, "app = 1");
    }

    #[test]
    fn strings() {
        assert_eq!(
            first_string("uvicorn.run(\"pkg.api:app\", port=1)"),
            Some("pkg.api:app")
        );
        assert_eq!(first_string("x = 1"), None);
        assert!(is_identifier("app_1") && !is_identifier("1app") && !is_identifier("a-b"));
    }
}
