//! Docker's path rules, in one place: Go's `path.Clean` and `path.Match` (which `filepath` uses
//! unchanged on Unix), and the two rules moby's classic builder adds for `COPY`/`ADD` sources
//! (`containsWildcards` and the leading `/` / `./` trim of `calcCopyInfo`).
//!
//! Everything works on bytes, as Go strings do: a path need not be UTF-8, and a byte that does
//! not start a valid UTF-8 sequence is one character (U+FFFD) for `?` and `[...]`, like Go's
//! `utf8.DecodeRune`.
//!
//! [`match_path`] never backtracks: it is Go's chunk algorithm (each `*`-separated chunk is
//! committed at its leftmost match), so its cost is at most pattern length × name length, and
//! a pattern needing more characters than the name has is refused after one syntax pass.
//!
//! Boundary: a leaf. Pure functions on bytes; no filesystem, no other module of the crate.

/// Go's `path.ErrBadPattern`, with the reason Go does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern ({0})")]
pub struct BadPattern(pub &'static str);

/// Go's `path.Clean`: the shortest path equivalent to `path` by lexical processing. Empty
/// elements and `.` are dropped, `dir/..` pairs removed, `..` above a rooted path dropped,
/// leading `..` of a relative path kept, and nothing left is `.`.
pub fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut r = 0;
    // Where `..` may no longer be removed by backtracking.
    let mut dotdot = 0;
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        let elem_end = |at: usize| at == n || path[at] == b'/';
        if path[r] == b'/' || (path[r] == b'.' && elem_end(r + 1)) {
            r += 1;
        } else if path[r] == b'.' && r + 1 < n && path[r + 1] == b'.' && elem_end(r + 2) {
            r += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// [`clean`] for text.
pub fn clean_str(path: &str) -> String {
    // Cleaning only drops whole ASCII-delimited elements, so UTF-8 stays UTF-8.
    String::from_utf8(clean(path.as_bytes())).unwrap_or_default()
}

/// Whether a cleaned relative path leaves its root (`..` or `../…`).
pub fn escapes_root(cleaned: &[u8]) -> bool {
    cleaned == b".." || cleaned.starts_with(b"../")
}

/// moby's `containsWildcards` (Unix): a `*`, `?` or `[` not escaped by `\`. A source with one is
/// matched against every path of the context; any other is looked up as a path.
pub fn has_wildcards(p: &[u8]) -> bool {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The source as the classic builder looks it up (`calcCopyInfo`): one leading `/` dropped,
/// then one leading `./`. Nothing else is cleaned here: a wildcard source is matched as
/// written, and a plain one is cleaned by the join with the context root.
pub fn trim_copy_source(src: &[u8]) -> &[u8] {
    let s = src.strip_prefix(b"/").unwrap_or(src);
    s.strip_prefix(b"./").unwrap_or(s)
}

/// Go's `path.Match`: whether `name` matches the shell pattern as a whole. `*` matches any run
/// of non-`/` characters, `?` one non-`/` character, `[...]` a class (`^` negates; ranges
/// `a-z`; `\\` escapes), `\\c` the character `c`. A malformed pattern is an error whatever the
/// name (Go reports it as soon as it reads the bad part; this checks the whole pattern first).
/// To test many names, check the pattern once with [`Glob::new`].
pub fn match_path(pattern: &[u8], name: &[u8]) -> Result<bool, BadPattern> {
    Ok(Glob::new(pattern)?.matches(name))
}

/// A `path.Match` pattern whose syntax has been checked, for matching many names.
#[derive(Debug, Clone, Copy)]
pub struct Glob<'p> {
    pattern: &'p [u8],
    /// Bytes a name needs at least: one per operator other than `*`.
    needed: usize,
}

impl<'p> Glob<'p> {
    /// Checks the pattern's syntax as Go's `Match` does.
    pub fn new(pattern: &'p [u8]) -> Result<Glob<'p>, BadPattern> {
        Ok(Glob {
            needed: validate_pattern(pattern)?,
            pattern,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &[u8]) -> bool {
        if self.needed > name.len() {
            return false;
        }
        let mut pattern = self.pattern;
        let mut name = name;
        'chunks: while !pattern.is_empty() {
            let (star, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if star && chunk.is_empty() {
                // A trailing `*` matches the rest unless it holds a `/`.
                return !name.contains(&b'/');
            }
            // The chunk at the current position; the last chunk must also end the name.
            if let Some(t) = match_chunk(chunk, name) {
                if t.is_empty() || !pattern.is_empty() {
                    name = t;
                    continue;
                }
            }
            if star {
                // Skip 1, 2, … bytes, never a `/`. The leftmost match is kept: a later one
                // would only leave less of the name for the chunks after it.
                let mut i = 0;
                while i < name.len() && name[i] != b'/' {
                    if let Some(t) = match_chunk(chunk, &name[i + 1..]) {
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'chunks;
                    }
                    i += 1;
                }
            }
            return false;
        }
        name.is_empty()
    }
}

/// Checks the whole pattern as Go's `Match` would on its way through, and returns how many
/// bytes of a name it needs at least (one per operator other than `*`).
pub fn validate_pattern(pattern: &[u8]) -> Result<usize, BadPattern> {
    let mut needed = 0;
    let mut rest = pattern;
    while !rest.is_empty() {
        let (_, chunk, r) = scan_chunk(rest);
        rest = r;
        needed += validate_chunk(chunk)?;
    }
    Ok(needed)
}

/// Go's `scanChunk`: leading stars, then everything up to the next `*` outside a class.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut p = pattern;
    let mut star = false;
    while let Some((b'*', r)) = p.split_first() {
        p = r;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => return (star, &p[..i], &p[i..]),
            _ => {}
        }
        i += 1;
    }
    (star, p, &[])
}

/// Syntax of one chunk, as Go's `matchChunk` checks it; returns its operator count.
fn validate_chunk(mut chunk: &[u8]) -> Result<usize, BadPattern> {
    let mut ops = 0;
    while let Some(&c) = chunk.first() {
        ops += 1;
        match c {
            b'[' => {
                chunk = &chunk[1..];
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (_, r) = get_esc(chunk)?;
                    chunk = r;
                    if chunk[0] == b'-' {
                        let (_, r) = get_esc(&chunk[1..])?;
                        chunk = r;
                    }
                    nrange += 1;
                }
            }
            b'\\' => {
                if chunk.len() < 2 {
                    return Err(BadPattern("trailing `\\`"));
                }
                chunk = &chunk[2..];
            }
            _ => chunk = &chunk[1..],
        }
    }
    Ok(ops)
}

/// Go's `matchChunk` on a chunk already validated: the rest of `s` after the chunk matched its
/// beginning, or `None`.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Option<&'s [u8]> {
    while let Some(&c) = chunk.first() {
        if s.is_empty() {
            return None;
        }
        match c {
            b'[' => {
                let (r, n) = decode_rune(s);
                s = &s[n..];
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk).ok()?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..]).ok()?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    return None;
                }
            }
            b'?' => {
                if s[0] == b'/' {
                    return None;
                }
                let (_, n) = decode_rune(s);
                s = &s[n..];
                chunk = &chunk[1..];
            }
            _ => {
                let lit = if c == b'\\' {
                    chunk = &chunk[1..];
                    chunk[0]
                } else {
                    c
                };
                if lit != s[0] {
                    return None;
                }
                s = &s[1..];
                chunk = &chunk[1..];
            }
        }
    }
    Some(s)
}

/// Go's `getEsc`: one possibly escaped character of a class; the rest must not be empty.
fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut c = chunk;
    match c.first() {
        None => return Err(BadPattern("missing closing `]`")),
        Some(b'-') => return Err(BadPattern("`-` cannot start a range in `[...]`")),
        Some(b']') => return Err(BadPattern("empty `[]` or range ending in `]`")),
        Some(b'\\') => {
            c = &c[1..];
            if c.is_empty() {
                return Err(BadPattern("missing closing `]`"));
            }
        }
        Some(_) => {}
    }
    let (r, n) = decode_rune(c);
    if r == 0xFFFD && n == 1 {
        return Err(BadPattern("invalid UTF-8 in `[...]`"));
    }
    let rest = &c[n..];
    if rest.is_empty() {
        return Err(BadPattern("missing closing `]`"));
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune`: the code point and its width; an invalid byte is U+FFFD of width 1.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&b) = s.first() else {
        return (0xFFFD, 0);
    };
    if b < 0x80 {
        return (u32::from(b), 1);
    }
    let want = match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (0xFFFD, 1),
    };
    match s.get(..want).map(std::str::from_utf8) {
        Some(Ok(t)) => (t.chars().next().map_or(0xFFFD, u32::from), want),
        _ => (0xFFFD, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `cleantests` (src/path/path_test.go): every result, and cleaning it again.
    #[test]
    fn clean_matches_go_vectors() {
        let vectors = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        for (path, want) in vectors {
            assert_eq!(clean_str(path), want, "Clean({path:?})");
            assert_eq!(clean_str(want), want, "Clean({want:?})");
        }
        // Names that only look like dots, and bytes that are not UTF-8.
        assert_eq!(clean_str("a/.b/..c/..."), "a/.b/..c/...");
        assert_eq!(clean(b"\xff/../\xfe"), b"\xfe");
    }

    /// Go's `matchTests` (src/path/match_test.go).
    #[test]
    fn match_matches_go_vectors() {
        let ok = |p: &str, s: &str, want: bool| {
            assert_eq!(
                match_path(p.as_bytes(), s.as_bytes()),
                Ok(want),
                "Match({p:?}, {s:?})"
            );
        };
        ok("abc", "abc", true);
        ok("*", "abc", true);
        ok("*c", "abc", true);
        ok("a*", "a", true);
        ok("a*", "abc", true);
        ok("a*", "ab/c", false);
        ok("a*/b", "abc/b", true);
        ok("a*/b", "a/c/b", false);
        ok("a*b*c*d*e*/f", "axbxcxdxe/f", true);
        ok("a*b*c*d*e*/f", "axbxcxdxexxx/f", true);
        ok("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false);
        ok("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false);
        ok("a*b?c*x", "abxbbxdbxebxczzx", true);
        ok("a*b?c*x", "abxbbxdbxebxczzy", false);
        ok("ab[c]", "abc", true);
        ok("ab[b-d]", "abc", true);
        ok("ab[e-g]", "abc", false);
        ok("ab[^c]", "abc", false);
        ok("ab[^b-d]", "abc", false);
        ok("ab[^e-g]", "abc", true);
        ok("a\\*b", "a*b", true);
        ok("a\\*b", "ab", false);
        ok("a?b", "a☺b", true);
        ok("a[^a]b", "a☺b", true);
        ok("a???b", "a☺b", false);
        ok("a[^a][^a][^a]b", "a☺b", false);
        ok("[a-ζ]*", "α", true);
        ok("*[a-ζ]", "A", false);
        ok("a?b", "a/b", false);
        ok("a*b", "a/b", false);
        ok("[\\]a]", "]", true);
        ok("[\\-]", "-", true);
        ok("[x\\-]", "x", true);
        ok("[x\\-]", "-", true);
        ok("[x\\-]", "z", false);
        ok("[\\-x]", "x", true);
        ok("[\\-x]", "-", true);
        ok("[\\-x]", "a", false);
        ok("*x", "xxx", true);
        for (p, s) in [
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[x-]", "-"),
            ("[x-]", "z"),
            ("[-x]", "x"),
            ("[-x]", "-"),
            ("[-x]", "a"),
            ("\\", "a"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
        ] {
            assert!(
                match_path(p.as_bytes(), s.as_bytes()).is_err(),
                "Match({p:?}, {s:?}) must be ErrBadPattern"
            );
        }
    }

    #[test]
    fn match_on_bytes_that_are_not_utf8() {
        assert_eq!(match_path(b"?.bin", b"\xff.bin"), Ok(true));
        assert_eq!(match_path(b"*.bin", b"\xff\xfe.bin"), Ok(true));
        assert_eq!(match_path(b"[^a].bin", b"\xff.bin"), Ok(true));
        assert_eq!(match_path(b"\xff", b"\xff"), Ok(true));
    }

    /// Backtracking matchers take exponential time on these (issue 12 §2); this one answers
    /// at once.
    #[test]
    fn hostile_patterns_are_instant() {
        let start = std::time::Instant::now();
        let p = format!("{}b", "*a".repeat(5_000));
        let name = "a".repeat(200);
        assert_eq!(match_path(p.as_bytes(), name.as_bytes()), Ok(false));
        let p = format!("{}b", "*a".repeat(30));
        assert_eq!(match_path(p.as_bytes(), name.as_bytes()), Ok(false));
        let mut yes = name.clone();
        yes.push('b');
        assert_eq!(match_path(p.as_bytes(), yes.as_bytes()), Ok(true));
        let stars = "*".repeat(300_000);
        assert_eq!(match_path(stars.as_bytes(), b"anything"), Ok(true));
        let p = format!("{stars}x{stars}");
        assert_eq!(match_path(p.as_bytes(), name.as_bytes()), Ok(false));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn wildcards_as_moby_detects_them() {
        assert!(has_wildcards(b"*.py"));
        assert!(has_wildcards(b"a?"));
        assert!(has_wildcards(b"x[ab]"));
        assert!(!has_wildcards(b"a\\*b"));
        assert!(!has_wildcards(b"a/b.c"));
        assert!(has_wildcards(b"a\\\\*"));
    }

    #[test]
    fn copy_source_trim() {
        assert_eq!(trim_copy_source(b"/app"), b"app");
        assert_eq!(trim_copy_source(b"./app"), b"app");
        assert_eq!(trim_copy_source(b"/./app"), b"app");
        assert_eq!(trim_copy_source(b"//app"), b"/app");
        assert_eq!(trim_copy_source(b"././app"), b"./app");
        // `./a/../b` is `b` once joined with the root: `a` need not exist.
        assert_eq!(clean(trim_copy_source(b"./a/../b")), b"b");
        assert!(escapes_root(&clean(b"a/../../b")));
        assert!(!escapes_root(&clean(b"a/../b")));
        assert!(!escapes_root(b"..b"));
    }
}
