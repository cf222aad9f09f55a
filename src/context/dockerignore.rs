//! `.dockerignore` with the Docker CLI's exact semantics.
//!
//! Reading follows `ignorefile.ReadAll` (moby/patternmatcher, same as BuildKit's
//! `dockerignore.ReadAll`): lines split on `\n` (a trailing `\r` dropped), a UTF-8 BOM stripped
//! from the first line, a line is a comment only when `#` is in column 1, whitespace trimmed
//! (Go's `strings.TrimSpace`), `!` exceptions trimmed again, every pattern `filepath.Clean`ed and
//! stripped of one leading `/`.
//!
//! Matching follows `patternmatcher.New` and `Pattern.compile`: a pattern is checked with Go's
//! `filepath.Match` syntax rules (so `[` unterminated, `[]`, a trailing `\` are errors), then
//! turned into the same Go regular expression Docker builds (`*` → `[^/]*`, `?` → `[^/]`,
//! `**` → `(.*/)?`, `[...]` copied verbatim, `\x` kept as a regexp escape) and that expression is
//! translated to the `regex` crate's syntax. Docker's shortcuts (exact, `prefix/**`, `**suffix`)
//! are reproduced because they do not always agree with the regexp (`**foo` matches `xfoo`).
//!
//! Three evaluation modes exist in Docker and all three are here, because they disagree on
//! corner cases and each decides something different:
//! - [`Matcher::matches_with_parent`]: `MatchesUsingParentResults`, what the CLI's tar walk
//!   (`archive.TarWithOptions`) uses to decide what is sent. The walk calls it with the parent
//!   directory's [`MatchInfo`]. [`Matcher::is_excluded`] is the same computed from the root.
//! - [`Matcher::matches_or_parent_matches`]: `MatchesOrParentMatches`, the CLI's pre-check.
//! - [`Matcher::matches_legacy`]: the deprecated `Matches` (one parent level), which decides
//!   whether the Dockerfile and `.dockerignore` are force-sent and then hidden by the daemon.
//!
//! This module only parses and matches; it never touches the filesystem.

use crate::pathrules::{self, validate_pattern};
use std::fmt;

/// Where Docker gives up reading a line (`bufio.Scanner`'s `MaxScanTokenSize`).
const MAX_LINE: usize = 64 * 1024;

/// Why a `.dockerignore` line is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// A `!` with nothing after it. Docker: `illegal exclusion pattern: "!"`.
    BareExclusion,
    /// Go's `filepath.ErrBadPattern`. Docker: `syntax error in pattern`. The string says why.
    Syntax(&'static str),
    /// A line of 64 KiB or more. Docker: `bufio.Scanner: token too long`.
    LineTooLong,
}

impl fmt::Display for PatternErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternErrorKind::BareExclusion => write!(f, "illegal exclusion pattern: \"!\""),
            PatternErrorKind::Syntax(why) => write!(f, "syntax error in pattern ({why})"),
            PatternErrorKind::LineTooLong => write!(f, "line is 64 KiB or longer"),
        }
    }
}

/// An invalid line in an ignore file, named `FILE:LINE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}: `{pattern}`")]
pub struct PatternError {
    /// The ignore file, relative to the context root (`.dockerignore`).
    pub file: String,
    /// 1-based line number in that file.
    pub line: usize,
    /// The line as written (lossy UTF-8, trimmed).
    pub pattern: String,
    pub kind: PatternErrorKind,
}

impl crate::diagnostics::Diagnose for PatternError {
    fn hint(&self) -> Option<String> {
        Some(match &self.kind {
            PatternErrorKind::BareExclusion => {
                "docker build fails the same way (`error checking context: illegal exclusion pattern: \"!\"`); remove the line or name what to re-include after `!`".into()
            }
            PatternErrorKind::Syntax(_) => {
                "docker build fails the same way (`error checking context: syntax error in pattern`); close the `[...]` class or escape the character with `\\`".into()
            }
            PatternErrorKind::LineTooLong => {
                "docker build cannot read this file either (`bufio.Scanner: token too long`); split the line".into()
            }
        })
    }
}

/// How one pattern is matched, mirroring patternmatcher's `matchType`.
#[derive(Debug, Clone)]
enum Kind {
    /// `path == pattern`.
    Exact,
    /// `foo/**`: `path.starts_with("foo/")` (the pattern minus its trailing `**`).
    Prefix(Vec<u8>),
    /// `**/foo`: `path.ends_with("/foo")`, or `path == "foo"`.
    Suffix(Vec<u8>),
    /// Matched against UTF-8 bytes (see [`go_regex_to_rust`] for why bytes).
    Regex(regex::bytes::Regex),
}

/// One compiled `.dockerignore` pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern without its `!` (Docker's `Pattern.String()`).
    cleaned: Vec<u8>,
    exclusion: bool,
    /// Number of `/`-separated components (the legacy matcher's parent depth).
    dirs: usize,
    kind: Kind,
    /// 1-based line in the ignore file (0 for patterns added by code).
    line: usize,
}

impl Pattern {
    /// The cleaned pattern as Docker stores it (no `!`).
    pub fn text(&self) -> &[u8] {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The 1-based line this pattern came from (0 when added by code).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the pattern matches `path` itself (no parent logic).
    pub fn matches(&self, path: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned.as_slice(),
            Kind::Prefix(p) => path.starts_with(p),
            Kind::Suffix(s) => path.ends_with(s) || (s.first() == Some(&b'/') && path == &s[1..]),
            Kind::Regex(re) => match std::str::from_utf8(path) {
                Ok(s) => re.is_match(s.as_bytes()),
                Err(_) => re.is_match(go_lossy(path).as_bytes()),
            },
        }
    }
}

/// Which patterns matched a directory, handed to its children (Docker's `MatchInfo`).
///
/// A child inherits every pattern its parent matched, whatever the evaluation order says; this
/// is what lets `!dir/keep` re-include a file under an excluded `dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    bits: Vec<u64>,
}

impl MatchInfo {
    fn reset(&mut self, n: usize) {
        self.bits.clear();
        self.bits.resize(n.div_ceil(64), 0);
    }

    fn get(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.bits.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }

    /// True when no pattern matched (children then inherit nothing).
    pub fn is_zero(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }
}

/// A parsed ignore file: the patterns in order, last match wins.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// `cleaned + "/"` of every exception, for the walk's descend test.
    exception_dirs: Vec<Vec<u8>>,
    file: String,
}

impl Matcher {
    /// A matcher that excludes nothing.
    pub fn empty() -> Matcher {
        Matcher {
            file: ".dockerignore".into(),
            ..Matcher::default()
        }
    }

    /// Parses the bytes of an ignore file. `file` names it in errors (`.dockerignore`).
    pub fn parse(text: &[u8], file: &str) -> Result<Matcher, PatternError> {
        let mut m = Matcher {
            file: file.to_string(),
            ..Matcher::default()
        };
        for (line, pat) in read_lines(text, file)? {
            m.push(&pat, line)?;
        }
        Ok(m)
    }

    /// Appends patterns (as `.dockerignore` lines, after `ReadAll`'s cleaning) at the end, where
    /// they win over every earlier line. Used to add rules such as pollution exclusions.
    pub fn append_lines(&mut self, lines: &[&str]) -> Result<(), PatternError> {
        let text = lines.join("\n");
        for (_, pat) in read_lines(text.as_bytes(), &self.file)? {
            self.push(&pat, 0)?;
        }
        Ok(())
    }

    /// Appends one pattern the way `patternmatcher.New` receives it (trimmed and cleaned, but
    /// not read as a file line): how the CLI appends `!Dockerfile`.
    pub fn add_pattern(&mut self, pattern: &[u8]) -> Result<(), PatternError> {
        self.push(pattern, 0)
    }

    /// The ignore file's name as given to [`Matcher::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any `!` exception exists (Docker's `Exclusions()`).
    pub fn has_exclusions(&self) -> bool {
        !self.exception_dirs.is_empty()
    }

    /// `patternmatcher.New` on one line already through `ReadAll`.
    fn push(&mut self, read: &[u8], line: usize) -> Result<(), PatternError> {
        let err = |kind| PatternError {
            file: self.file.clone(),
            line,
            pattern: String::from_utf8_lossy(read).into_owned(),
            kind,
        };
        let p = go_trim_space(read);
        if p.is_empty() {
            return Ok(());
        }
        let p = pathrules::clean(p);
        let (exclusion, body) = match p.split_first() {
            Some((b'!', rest)) => {
                if rest.is_empty() {
                    return Err(err(PatternErrorKind::BareExclusion));
                }
                (true, rest.to_vec())
            }
            _ => (false, p),
        };
        validate_pattern(&body).map_err(|why| err(PatternErrorKind::Syntax(why.0)))?;
        let kind = compile(&body).map_err(err)?;
        if exclusion {
            let mut d = body.clone();
            d.push(b'/');
            self.exception_dirs.push(d);
        }
        self.patterns.push(Pattern {
            dirs: body.split(|&b| b == b'/').count(),
            cleaned: body,
            exclusion,
            kind,
            line,
        });
        Ok(())
    }

    /// Docker's tar-walk decision for `path` (relative, `/`-separated), given the [`MatchInfo`]
    /// of its parent directory (`None` for entries directly under the root). Fills `out` with
    /// this entry's info, to hand to its children when it is a directory. Returns true when the
    /// entry itself is excluded.
    pub fn matches_with_parent(
        &self,
        path: &[u8],
        parent: Option<&MatchInfo>,
        out: &mut MatchInfo,
    ) -> bool {
        out.reset(self.patterns.len());
        let mut matched = false;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|info| info.get(i));
            if !m {
                // Later patterns only matter if they could flip the current answer.
                if p.exclusion != matched {
                    continue;
                }
                m = p.matches(path);
                // Without parent results Docker falls back to testing every ancestor.
                if !m && parent.is_none() {
                    m = ancestors(path).any(|a| p.matches(a));
                }
            }
            if m {
                out.set(i);
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether Docker's walk must still enter an excluded directory because an exception could
    /// re-include something below it. Docker tests this literally: some `!pattern` must start
    /// with `dir/` (so `!*/keep` or `!**/keep` never rescue anything under an excluded dir).
    pub fn must_descend(&self, dir: &[u8]) -> bool {
        self.exception_dirs
            .iter()
            .any(|e| e.starts_with(dir) && e.get(dir.len()) == Some(&b'/'))
    }

    /// Whether `path` (relative, `/`-separated) is left out of what Docker sends, computed
    /// from the root: an entry is out when it is excluded itself or when an ancestor directory
    /// is excluded and not entered (see [`Matcher::must_descend`]). A directory that is excluded
    /// but entered counts as excluded; entries below it are judged on their own.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let mut parent: Option<MatchInfo> = None;
        let mut cur = MatchInfo::default();
        for prefix in ancestors_top_down(path) {
            let skip = self.matches_with_parent(prefix, parent.as_ref(), &mut cur);
            if skip && !self.must_descend(prefix) {
                return true;
            }
            parent = Some(std::mem::take(&mut cur));
        }
        self.matches_with_parent(path, parent.as_ref(), &mut cur)
    }

    /// `MatchesOrParentMatches`: a pattern matches when it matches the path or any ancestor.
    /// Docker's CLI uses it to pre-check the context (unreadable files that are excluded do not
    /// fail the build).
    pub fn matches_or_parent_matches(&self, path: &[u8]) -> bool {
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            if p.matches(path) || ancestors(path).any(|a| p.matches(a)) {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// The deprecated `Matches` (checks one ancestor only, at the pattern's depth), with the
    /// package-level `filepath.Clean` and "." guard. Docker uses it to decide whether the
    /// Dockerfile and `.dockerignore` are excluded: the CLI then sends them anyway and the
    /// daemon deletes them before `COPY` sees the context.
    pub fn matches_legacy(&self, path: &[u8]) -> bool {
        let path = pathrules::clean(path);
        if path == b"." {
            return false;
        }
        let parent: Vec<&[u8]> = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => path[..i].split(|&b| b == b'/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&path);
            if !m && !parent.is_empty() && p.dirs <= parent.len() {
                m = p.matches(&parent[..p.dirs].join(&b'/'));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// Proper ancestors of a relative path, deepest first: `a/b/c` → `a/b`, `a`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

/// Proper ancestors of a relative path, root first: `a/b/c` → `a`, `a/b`.
fn ancestors_top_down(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

/// `ReadAll`: the patterns of an ignore file with their 1-based line numbers.
fn read_lines(text: &[u8], file: &str) -> Result<Vec<(usize, Vec<u8>)>, PatternError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut line = 0usize;
    while !rest.is_empty() {
        let (mut l, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if l.len() >= MAX_LINE {
            return Err(PatternError {
                file: file.to_string(),
                line: line + 1,
                pattern: String::from_utf8_lossy(&l[..80]).into_owned() + "…",
                kind: PatternErrorKind::LineTooLong,
            });
        }
        if let Some(stripped) = l.strip_suffix(b"\r") {
            l = stripped;
        }
        if line == 0 {
            l = l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l);
        }
        line += 1;
        if l.first() == Some(&b'#') {
            continue;
        }
        let mut p = go_trim_space(l);
        if p.is_empty() {
            continue;
        }
        let invert = p[0] == b'!';
        if invert {
            p = go_trim_space(&p[1..]);
        }
        let mut pat = Vec::with_capacity(p.len() + 1);
        if invert {
            pat.push(b'!');
        }
        if !p.is_empty() {
            let c = pathrules::clean(p);
            let c = if c.len() > 1 && c[0] == b'/' {
                &c[1..]
            } else {
                &c[..]
            };
            pat.extend_from_slice(c);
        }
        out.push((line, pat));
    }
    Ok(out)
}

/// Go's `unicode.IsSpace`.
fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c as u32 > 0xFF && c.is_whitespace())
}

/// Go's `strings.TrimSpace` on bytes that need not be UTF-8.
fn go_trim_space(mut b: &[u8]) -> &[u8] {
    loop {
        match first_char(b) {
            Some((c, n)) if is_go_space(c) => b = &b[n..],
            _ => break,
        }
    }
    loop {
        match last_char(b) {
            Some((c, n)) if is_go_space(c) => b = &b[..b.len() - n],
            _ => break,
        }
    }
    b
}

fn first_char(b: &[u8]) -> Option<(char, usize)> {
    let n = match *b.first()? {
        x if x < 0x80 => 1,
        x if x >= 0xF0 => 4,
        x if x >= 0xE0 => 3,
        _ => 2,
    };
    let s = std::str::from_utf8(b.get(..n)?).ok()?;
    s.chars().next().map(|c| (c, n))
}

fn last_char(b: &[u8]) -> Option<(char, usize)> {
    for n in 1..=4.min(b.len()) {
        if let Ok(s) = std::str::from_utf8(&b[b.len() - n..]) {
            return s.chars().next().map(|c| (c, n));
        }
    }
    None
}

/// Decodes bytes as Go does when ranging over a string: each invalid byte is one U+FFFD.
fn go_lossy(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                out.push('\u{FFFD}');
                rest = &bad[1..];
            }
        }
    }
    out
}

/// Regex metacharacters patternmatcher escapes (`shouldEscape`); others pass through.
fn go_should_escape(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// patternmatcher's `Pattern.compile`: the match kind, and for regexps Docker's Go regexp
/// string translated to the `regex` crate.
fn compile(cleaned: &[u8]) -> Result<Kind, PatternErrorKind> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = go_lossy(cleaned).chars().collect();
    let mut go = String::from("^");
    let mut detected = Detected::Exact;
    let mut k = 0;
    let mut first = true;
    while k < chars.len() {
        let ch = chars[k];
        k += 1;
        if ch == '*' {
            if chars.get(k) == Some(&'*') {
                k += 1;
                if chars.get(k) == Some(&'/') {
                    k += 1;
                }
                if k == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        go.push_str(".*");
                        detected = Detected::Regexp;
                    }
                } else {
                    go.push_str("(.*/)?");
                    detected = Detected::Regexp;
                }
                if first {
                    detected = Detected::Suffix;
                }
            } else {
                go.push_str("[^/]*");
                detected = Detected::Regexp;
            }
        } else if ch == '?' {
            go.push_str("[^/]");
            detected = Detected::Regexp;
        } else if go_should_escape(ch) {
            go.push('\\');
            go.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(k) {
                k += 1;
                go.push('\\');
                go.push(next);
                detected = Detected::Regexp;
            } else {
                go.push_str("\\\\");
            }
        } else if ch == '[' || ch == ']' {
            go.push(ch);
            detected = Detected::Regexp;
        } else {
            go.push(ch);
        }
        first = false;
    }
    match detected {
        Detected::Exact => Ok(Kind::Exact),
        Detected::Prefix => Ok(Kind::Prefix(cleaned[..cleaned.len() - 2].to_vec())),
        Detected::Suffix => Ok(Kind::Suffix(cleaned[2..].to_vec())),
        Detected::Regexp => {
            go.push('$');
            let rust = go_regex_to_rust(&go)?;
            regex::bytes::Regex::new(&rust)
                .map(Kind::Regex)
                .map_err(|_| PatternErrorKind::Syntax("invalid regular expression"))
        }
    }
}

/// Translates the subset of Go RE2 syntax that patternmatcher generates into `regex` syntax.
///
/// The two dialects differ inside classes (`[` is literal in Go but opens a nested class here;
/// `&&`, `--`, `~~` are set operations here) and in `\d`/`\s`/`\w`/`\b` (ASCII in Go, Unicode
/// here), so classes are parsed with Go's rules and re-emitted item by item.
fn go_regex_to_rust(go: &str) -> Result<String, PatternErrorKind> {
    let c: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() * 2);
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                i += 1;
                i = top_escape(&c, i, &mut out)?;
            }
            // The generated runs `[^/]*` (a `*`) and `.*` (a `**`) match runs of bytes, not
            // of characters: over valid UTF-8 (all that is ever matched) both accept the same
            // strings, since no byte of a multi-byte character is `/` or `\n`, and every
            // literal or class around them can only match at a character boundary. Compiled
            // per character, each became a UTF-8 automaton, forwards and backwards: nearly all
            // the cost of parsing a pattern.
            '[' if c[i..].starts_with(&['[', '^', '/', ']', '*']) => {
                out.push_str("(?-u:[^/])*");
                i += 5;
            }
            '.' if c.get(i + 1) == Some(&'*') => {
                out.push_str("(?-u:.)*");
                i += 2;
            }
            '[' => {
                i = class(&c, i + 1, &mut out)?;
            }
            ']' => {
                out.push_str("\\]");
                i += 1;
            }
            // Generated structure (user copies are always escaped) and the user's `^`.
            '(' | ')' | '?' | '*' | '.' | '^' | '$' | '|' => {
                out.push(c[i]);
                i += 1;
            }
            ch => {
                push_literal(&mut out, ch);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, ch: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(ch.encode_utf8(&mut buf)));
}

const ASCII_CLASSES: &[(char, &str)] = &[
    ('d', "[0-9]"),
    ('D', "[^0-9]"),
    ('s', "[\\t\\n\\x0C\\r ]"),
    ('S', "[^\\t\\n\\x0C\\r ]"),
    ('w', "[0-9A-Za-z_]"),
    ('W', "[^0-9A-Za-z_]"),
];

/// An escape outside a class, `c[i]` being the character after `\`.
fn top_escape(c: &[char], i: usize, out: &mut String) -> Result<usize, PatternErrorKind> {
    let Some(&e) = c.get(i) else {
        return Err(PatternErrorKind::Syntax("trailing `\\`"));
    };
    if let Some((_, cls)) = ASCII_CLASSES.iter().find(|(k, _)| *k == e) {
        out.push_str(cls);
        return Ok(i + 1);
    }
    match e {
        'b' => out.push_str("(?-u:\\b)"),
        'B' => out.push_str("(?-u:\\B)"),
        'A' => out.push_str("\\A"),
        'z' => out.push_str("\\z"),
        'Q' => {
            // Literal text up to `\E` or the end.
            let mut j = i + 1;
            while j < c.len() {
                if c[j] == '\\' && c.get(j + 1) == Some(&'E') {
                    return Ok(j + 2);
                }
                push_literal(out, c[j]);
                j += 1;
            }
            return Ok(j);
        }
        'p' | 'P' => {
            let end = unicode_class_end(c, i)?;
            out.extend(&c[i - 1..end]);
            return Ok(end);
        }
        _ => {
            let (ch, next) = escape_char(c, i)?;
            push_literal(out, ch);
            return Ok(next);
        }
    }
    Ok(i + 1)
}

/// End index of `\pL` or `\p{Name}` starting at `c[i] == 'p'`.
fn unicode_class_end(c: &[char], i: usize) -> Result<usize, PatternErrorKind> {
    match c.get(i + 1) {
        Some('{') => c[i + 1..]
            .iter()
            .position(|&x| x == '}')
            .map(|p| i + 1 + p + 1)
            .ok_or(PatternErrorKind::Syntax("unterminated `\\p{`")),
        Some(_) => Ok(i + 2),
        None => Err(PatternErrorKind::Syntax("trailing `\\p`")),
    }
}

/// Go's `parseEscape`: a single character from an escape, `c[i]` being the character after `\`.
fn escape_char(c: &[char], i: usize) -> Result<(char, usize), PatternErrorKind> {
    let Some(&e) = c.get(i) else {
        return Err(PatternErrorKind::Syntax("trailing `\\`"));
    };
    if e.is_ascii() && !e.is_ascii_alphanumeric() {
        return Ok((e, i + 1));
    }
    let octal = |x: Option<&char>| x.is_some_and(|d| ('0'..='7').contains(d));
    match e {
        '1'..='7' if !octal(c.get(i + 1)) => {
            Err(PatternErrorKind::Syntax("backreferences are not allowed"))
        }
        '0'..='7' => {
            let mut v = e as u32 - '0' as u32;
            let mut j = i + 1;
            while j < i + 3 && octal(c.get(j)) {
                v = v * 8 + (c[j] as u32 - '0' as u32);
                j += 1;
            }
            char::from_u32(v)
                .map(|ch| (ch, j))
                .ok_or(PatternErrorKind::Syntax("bad octal escape"))
        }
        'x' => {
            let (digits, next): (String, usize) = if c.get(i + 1) == Some(&'{') {
                let close = c[i + 1..]
                    .iter()
                    .position(|&x| x == '}')
                    .ok_or(PatternErrorKind::Syntax("unterminated `\\x{`"))?;
                (c[i + 2..i + 1 + close].iter().collect(), i + 2 + close)
            } else {
                (c.get(i + 1..i + 3).unwrap_or(&[]).iter().collect(), i + 3)
            };
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| !digits.is_empty() && (digits.len() == 2 || c[i + 1] == '{'))
                .and_then(char::from_u32)
                .map(|ch| (ch, next))
                .ok_or(PatternErrorKind::Syntax("bad `\\x` escape"))
        }
        'a' => Ok(('\u{07}', i + 1)),
        'f' => Ok(('\u{0C}', i + 1)),
        'n' => Ok(('\n', i + 1)),
        'r' => Ok(('\r', i + 1)),
        't' => Ok(('\t', i + 1)),
        'v' => Ok(('\u{0B}', i + 1)),
        // Go rejects every other escape, so Docker reports a syntax error at match time.
        _ => Err(PatternErrorKind::Syntax("invalid escape")),
    }
}

const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A Go class starting after its `[`; emits a `regex` class and returns the index after `]`.
fn class(c: &[char], mut i: usize, out: &mut String) -> Result<usize, PatternErrorKind> {
    let missing = PatternErrorKind::Syntax("missing closing `]`");
    out.push('[');
    if c.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&ch) = c.get(i) else {
            return Err(missing);
        };
        if ch == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        // POSIX `[:name:]`; Go searches for `:]` in the whole rest of the expression.
        if ch == '[' && c.get(i + 1) == Some(&':') {
            if let Some(p) = c[i + 2..].windows(2).position(|w| w == [':', ']']) {
                let name: String = c[i + 2..i + 2 + p].iter().collect();
                let bare = name.strip_prefix('^').unwrap_or(&name);
                if !POSIX.contains(&bare) {
                    return Err(PatternErrorKind::Syntax("unknown `[:class:]`"));
                }
                out.push_str(&format!("[:{name}:]"));
                i += 2 + p + 2;
                continue;
            }
        }
        if ch == '\\' {
            match c.get(i + 1) {
                Some('p' | 'P') => {
                    let end = unicode_class_end(c, i + 1)?;
                    out.extend(&c[i..end]);
                    i = end;
                    continue;
                }
                Some(&e) => {
                    if let Some((_, cls)) = ASCII_CLASSES.iter().find(|(k, _)| *k == e) {
                        out.push_str(cls);
                        i += 2;
                        continue;
                    }
                }
                None => return Err(missing),
            }
        }
        let (lo, next) = class_item_char(c, i)?;
        i = next;
        let mut hi = lo;
        if c.get(i) == Some(&'-') && c.get(i + 1).is_some_and(|&x| x != ']') {
            let (h, next) = class_item_char(c, i + 1)?;
            hi = h;
            i = next;
            if hi < lo {
                return Err(PatternErrorKind::Syntax("range out of order in `[...]`"));
            }
        }
        push_literal(out, lo);
        if hi != lo {
            out.push('-');
            push_literal(out, hi);
        }
    }
}

/// Go's `parseClassChar`.
fn class_item_char(c: &[char], i: usize) -> Result<(char, usize), PatternErrorKind> {
    match c.get(i) {
        None => Err(PatternErrorKind::Syntax("missing closing `]`")),
        Some('\\') => escape_char(c, i + 1),
        Some(&ch) => Ok((ch, i + 1)),
    }
}

/// Parses the patterns of an ignore file without compiling them, as Docker's `ReadAll` returns
/// them (for messages and tests).
pub fn read_patterns(text: &[u8]) -> Result<Vec<(usize, Vec<u8>)>, PatternError> {
    read_lines(text, ".dockerignore")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text.as_bytes(), ".dockerignore").unwrap()
    }

    fn err(text: &str) -> PatternError {
        Matcher::parse(text.as_bytes(), ".dockerignore").unwrap_err()
    }

    /// Excluded per the tar walk, computed from the root.
    fn ex(text: &str, path: &str) -> bool {
        m(text).is_excluded(path.as_bytes())
    }

    /// `*` and `**` match runs of bytes (cheap to compile) but must keep the per-character
    /// meaning Go's regexp gives them: never across `/` for `*`, whole characters for `?` and
    /// classes, and literals after them still anchored.
    #[test]
    fn stars_match_whole_characters_of_non_ascii_names() {
        let pat = |p: &str| {
            let mut m = Matcher::empty();
            m.add_pattern(p.as_bytes()).unwrap();
            m.patterns()[0].clone()
        };
        assert!(pat("*.py").matches("é.py".as_bytes()));
        assert!(pat("a*é").matches("aßé".as_bytes()));
        assert!(!pat("a*é").matches("aé/é".as_bytes()));
        assert!(!pat("*.py").matches("d/é.py".as_bytes()));
        assert!(pat("a?c").matches("aéc".as_bytes()));
        assert!(!pat("a?c").matches("a€€c".as_bytes()));
        assert!(pat("a??c").matches("a€€c".as_bytes()));
        assert!(pat("x/**/y*").matches("x/ü/ö/yé".as_bytes()));
        assert!(!pat("x/**/y*").matches("x/ü/ö/zé".as_bytes()));
        assert!(pat("[é]*").matches("éé".as_bytes()));
        assert!(!pat("[é]*").matches("eé".as_bytes()));
        assert!(pat("[^/]*").matches("éé".as_bytes()));
        assert!(!pat("[^/]*").matches("é/é".as_bytes()));
        // Go's `.` stops at a newline, and so does `**`.
        assert!(!pat("a/**/b*").matches(b"a/x\ny/b"));
    }

    fn pats(text: &str) -> Vec<String> {
        read_patterns(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(_, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn read_all_matches_upstream_fixture() {
        let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            pats(text),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
    }

    #[test]
    fn comments_only_in_column_one() {
        assert_eq!(pats("#c\n #x\n\t#y\n"), ["#x", "#y"]);
        assert!(ex(" #x", "#x"));
        assert!(!ex("#x", "#x"));
    }

    #[test]
    fn bom_crlf_and_unicode_space() {
        assert_eq!(pats("\u{FEFF}a\r\n\u{A0}b\u{2003}\r\n"), ["a", "b"]);
        // A BOM on a later line is data.
        assert_eq!(pats("a\n\u{FEFF}b"), ["a", "\u{FEFF}b"]);
        // BOM then `#`: a comment.
        assert_eq!(pats("\u{FEFF}#c\nd"), ["d"]);
    }

    #[test]
    fn cleaning() {
        assert_eq!(
            pats("./a\n/b/\n//c//d/\na/./b/../e\n/\n.\n!./f/\n../g\n/../h"),
            ["a", "b", "c/d", "a/e", "/", ".", "!f", "../g", "h"]
        );
        assert_eq!(pathrules::clean(b"a//b/./c/.."), b"a/b");
        assert_eq!(pathrules::clean(b"../../a"), b"../../a");
        assert_eq!(pathrules::clean(b"/../a"), b"/a");
        assert_eq!(pathrules::clean(b""), b".");
        assert_eq!(pathrules::clean(b"a/.."), b".");
    }

    #[test]
    fn leading_slash_and_dot_slash_are_relative() {
        assert!(ex("/foo", "foo"));
        assert!(ex("./foo", "foo"));
        assert!(ex("foo/", "foo"));
        assert!(!ex("/", "x"));
    }

    #[test]
    fn star_and_question_never_cross_slash() {
        assert!(ex("*.md", "README.md"));
        assert!(!ex("*.md", "docs/README.md"));
        assert!(ex("*/*.md", "docs/README.md"));
        assert!(!ex("*/*.md", "a/b/c.md"));
        assert!(ex("?.txt", "a.txt"));
        assert!(!ex("?.txt", "ab.txt"));
        assert!(!ex("a?b", "a/b"));
        // `?` is one character, not one byte.
        assert!(ex("?.txt", "é.txt"));
        assert!(ex("*", "anything"));
    }

    #[test]
    fn double_star() {
        assert!(ex("**/__pycache__", "__pycache__"));
        assert!(ex("**/__pycache__", "a/b/__pycache__"));
        assert!(ex("**/__pycache__", "a/b/__pycache__/x.pyc"));
        assert!(ex("**/*.pyc", "x.pyc"));
        assert!(ex("**/*.pyc", "a/b/x.pyc"));
        assert!(!ex("*/__pycache__", "__pycache__"));
        assert!(ex("*/__pycache__", "a/__pycache__"));
        assert!(!ex("*/__pycache__", "a/b/__pycache__"));
        assert!(ex("a/**/z", "a/z"));
        assert!(ex("a/**/z", "a/b/c/z"));
        assert!(ex("a/**", "a/b"));
        assert!(!ex("a/**", "ab"));
        assert!(ex("**", "a/b/c"));
        // Docker's suffix shortcut: `**foo` is a plain suffix test.
        assert!(ex("**foo", "xfoo"));
        assert!(ex("**foo", "a/bfoo"));
        // Prefix shortcut: `foo**` is a plain prefix test.
        assert!(ex("foo**", "foobar"));
        assert!(ex("foo**", "foo/bar"));
    }

    #[test]
    fn exact_and_parent() {
        assert!(ex("node_modules", "node_modules"));
        assert!(ex("node_modules", "node_modules/x/y.js"));
        assert!(!ex("node_modules", "web/node_modules"));
        assert!(ex("a/b", "a/b/c"));
        assert!(!ex("a/b", "a"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        assert!(!ex("*.md\n!README.md", "README.md"));
        assert!(ex("*.md\n!README.md", "CHANGES.md"));
        assert!(ex("!README.md\n*.md", "README.md"));
        assert!(ex("*.md\n!README.md\nREADME*", "README.md"));
    }

    #[test]
    fn exception_below_excluded_dir() {
        let t = "docs\n!docs/keep.md";
        assert!(ex(t, "docs"));
        assert!(ex(t, "docs/other.md"));
        assert!(!ex(t, "docs/keep.md"));
        let mm = m(t);
        assert!(mm.must_descend(b"docs"));
        assert!(!mm.must_descend(b"doc"));
        // The exception itself, were it an excluded directory, is entered too.
        assert!(mm.must_descend(b"docs/keep.md"));
        // A wildcard exception never rescues anything below an excluded directory.
        let w = "docs\n!*/keep.md";
        assert!(!m(w).must_descend(b"docs"));
        assert!(ex(w, "docs/keep.md"));
        assert!(ex("docs\n!**/keep.md", "docs/keep.md"));
        // ...but it does apply where the directory itself was not excluded.
        assert!(!ex("*.md\n!*/keep.md", "docs/keep.md"));
        // Deeper: the exception names a path two levels down.
        let d = "a\n!a/b/c";
        assert!(m(d).must_descend(b"a"));
        assert!(m(d).must_descend(b"a/b"));
        assert!(!ex(d, "a/b/c"));
        assert!(ex(d, "a/b/d"));
        assert!(!ex(d, "a/b/c/deep"));
    }

    #[test]
    fn walk_uses_parent_results_not_ancestor_search() {
        // At `d` the exception is not evaluated (nothing matched yet), so `d/f` does not
        // inherit it; `MatchesOrParentMatches` would re-include `d/f` by testing ancestors.
        let t = "*/f\n!d";
        assert!(ex(t, "d/f"));
        assert!(!m(t).matches_or_parent_matches(b"d/f"));
    }

    #[test]
    fn legacy_matches_checks_one_parent_level() {
        let mm = m("docker");
        assert!(mm.matches_legacy(b"docker/Dockerfile"));
        // `b` has one component: only the first parent component (`a`) is compared.
        assert!(!m("b").matches_legacy(b"a/b/Dockerfile"));
        assert!(m("b").matches_or_parent_matches(b"b/c"));
        assert!(m("Dockerfile").matches_legacy(b"Dockerfile"));
        assert!(!m("Dockerfile").matches_legacy(b"."));
    }

    #[test]
    fn character_classes() {
        assert!(ex("[abc].txt", "b.txt"));
        assert!(!ex("[abc].txt", "d.txt"));
        assert!(ex("[a-c]x", "bx"));
        assert!(ex("[^a]x", "bx"));
        assert!(!ex("[^a]x", "ax"));
        // `[!a]` is not negation in Docker: the class is a regexp class containing `!` and `a`.
        assert!(ex("[!a]x", "ax"));
        assert!(ex("[!a]x", "!x"));
        assert!(!ex("[!a]x", "bx"));
        assert!(ex("[[:digit:]]x", "7x"));
        // `[^/]` inside a class never lets `/` through a negated class either.
        assert!(!ex("a[^b]c", "abc"));
        // `[?]`: Docker turns `?` into `[^/]` inside the class, giving `[[^/]]`.
        assert!(ex("[?]", "[]"));
        assert!(!ex("[?]", "?"));
        // Go treats `&&` literally inside a class.
        assert!(ex("[a&&b]", "&"));
        // `[` inside a Go class is literal.
        assert!(ex("[[]", "["));
        assert!(ex("[a]]", "a]"));
    }

    #[test]
    fn escapes() {
        assert!(ex("\\*", "*"));
        assert!(!ex("\\*", "x"));
        assert!(ex("a\\?b", "a?b"));
        assert!(!ex("a\\?b", "axb"));
        assert!(ex("\\[x\\]", "[x]"));
        assert!(ex("\\#x", "#x"));
        assert!(ex("\\!keep", "!keep"));
        // Go regexp escapes survive: `\d` is an ASCII digit.
        assert!(ex("v\\d", "v7"));
        assert!(!ex("v\\d", "v٣"));
        assert!(ex("a\\tb", "a\tb"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        for (p, path) in [
            ("a.b", "a.b"),
            ("a+b*", "a+bc"),
            ("(x)*", "(x)y"),
            ("a|b*", "a|b"),
            ("{a}*", "{a}z"),
            ("$x*", "$xy"),
            ("a^b", "a^b"),
        ] {
            assert!(ex(p, path), "{p} should match {path}");
        }
        assert!(!ex("a.b", "axb"));
        assert!(!ex("a.b*", "axb"));
        // `^` inside a regexp is an anchor in Go too: it can never match mid-path.
        assert!(!ex("a^b*", "a^b"));
    }

    #[test]
    fn unicode_and_odd_names() {
        assert!(ex("héllo wörld", "héllo wörld"));
        assert!(ex("*wörld", "héllo wörld"));
        assert!(ex("-rf", "-rf"));
        assert!(ex("with space/*", "with space/x"));
        // Non-UTF-8 path: exact bytes for exact patterns, Go's rune view for regexps.
        let mm = m("*.bin");
        assert!(mm.is_excluded(b"\xff\xfe.bin"));
        let exact = Matcher::parse(b"\xff.bin", ".dockerignore").unwrap();
        assert!(exact.is_excluded(b"\xff.bin"));
        assert!(!exact.is_excluded(b"\xfe.bin"));
    }

    #[test]
    fn bare_exclusion_is_rejected_with_line() {
        let e = err("a\n\n!\n");
        assert_eq!(e.line, 3);
        assert_eq!(e.kind, PatternErrorKind::BareExclusion);
        assert_eq!(
            e.to_string(),
            ".dockerignore:3: illegal exclusion pattern: \"!\": `!`"
        );
        assert_eq!(err("! ").kind, PatternErrorKind::BareExclusion);
        // `!/` cleans to `!` inside patternmatcher.New.
        assert_eq!(err("!/").kind, PatternErrorKind::BareExclusion);
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for (p, line) in [
            ("[abc", 1),
            ("ok\n[", 2),
            ("a[]b", 1),
            ("[a-]", 1),
            ("[-a]", 1),
            ("trailing\\", 1),
            ("*[", 1),
            ("x*[a", 1),
            ("[z-a]", 1),
            ("[]]", 1),
            ("[^]]", 1),
            ("[a-]b]", 1),
            ("\\e", 1),
            ("[[:nope:]]", 1),
            ("\\1", 1),
        ] {
            let e = err(p);
            assert_eq!(e.line, line, "{p}");
            assert!(
                matches!(e.kind, PatternErrorKind::Syntax(_)),
                "{p}: {:?}",
                e.kind
            );
            assert!(e.to_string().contains("syntax error in pattern"), "{e}");
        }
        // Valid oddities.
        for p in ["[*]", "a]b", "[a]]", "[[]", "[\\]]"] {
            assert!(Matcher::parse(p.as_bytes(), ".dockerignore").is_ok(), "{p}");
        }
    }

    #[test]
    fn error_names_the_file() {
        let e = Matcher::parse(b"[", "api/Dockerfile.dockerignore").unwrap_err();
        assert!(e.to_string().starts_with("api/Dockerfile.dockerignore:1: "));
        use crate::diagnostics::Diagnose;
        assert!(e.hint().unwrap().contains("syntax error in pattern"));
    }

    #[test]
    fn long_line_is_rejected() {
        let long = "a".repeat(MAX_LINE);
        assert_eq!(err(&long).kind, PatternErrorKind::LineTooLong);
        let ok = "a".repeat(MAX_LINE - 1);
        assert!(Matcher::parse(ok.as_bytes(), ".dockerignore").is_ok());
    }

    #[test]
    fn append_lines_win() {
        let mut mm = m("!keep.pyc");
        mm.append_lines(crate::pollution::DOCKERIGNORE_RULES)
            .unwrap();
        assert!(mm.is_excluded(b"keep.pyc"));
        assert!(mm.is_excluded(b"a/__pycache__/x.pyc"));
        assert!(!mm.is_excluded(b"a/x.py"));
        assert_eq!(mm.patterns()[1].line(), 0);
    }

    #[test]
    fn match_info_inheritance() {
        let mm = m("a\n!a/b");
        let mut top = MatchInfo::default();
        assert!(mm.matches_with_parent(b"a", None, &mut top));
        assert!(!top.is_zero());
        let mut child = MatchInfo::default();
        assert!(mm.matches_with_parent(b"a/c", Some(&top), &mut child));
        assert!(!mm.matches_with_parent(b"a/b", Some(&top), &mut child));
    }

    #[test]
    fn empty_and_comment_only_files_exclude_nothing() {
        assert!(m("").is_empty());
        assert!(m("# only\n\n   \n").is_empty());
        assert!(!m("").is_excluded(b"x"));
    }
}
