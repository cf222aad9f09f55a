//! Docker's word expansion (`shell/lex.go` `ProcessWord`/`ProcessWords`): `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, single and
//! double quotes, and the escape character (`\` or `` ` ``).
//!
//! This is what Docker applies to `ENV`, `ARG`, `LABEL`, `COPY`/`ADD` sources, destination and
//! `--chown`, `WORKDIR`, `USER`, `EXPOSE`, `VOLUME`, `STOPSIGNAL` and `FROM` (with meta args)
//! before using them — and so before they enter a cache key. `RUN`/`CMD`/`ENTRYPOINT` are never
//! expanded by the builder (the shell in the container does that).

/// Variables visible to an expansion, in definition order; a later definition wins.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Lookup for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Lookup for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Lookup::get(self.as_slice(), name)
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    Modifier(char),
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    #[error("{0}: {1}")]
    Required(String, String),
    /// `${…}` and quotes nested deeper than [`MAX_NESTING`].
    #[error("substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    /// The expansion grew past [`MAX_EXPANDED`] bytes.
    #[error("the expansion is larger than {} MiB", MAX_EXPANDED >> 20)]
    TooLong,
    /// The expansions of one Dockerfile together grew past [`MAX_TOTAL_EXPANDED`] bytes.
    #[error("variables of this Dockerfile expand to more than {} MiB in total", MAX_TOTAL_EXPANDED >> 20)]
    TotalTooLong,
}

/// What all the expansions of one build may produce together (see [`MAX_EXPANDED`]): each
/// value is kept for the steps after it, so many capped values would still add up.
pub const MAX_TOTAL_EXPANDED: usize = 64 << 20;

/// How deep `${VAR:-${…}}` and quotes may nest. The lexer recurses per level, so input must
/// not choose the depth; real Dockerfiles nest two or three levels.
pub const MAX_NESTING: usize = 64;

/// The largest expansion of one word: 1 MiB. Larger values are useless to a build (Linux
/// refuses an environment string over 128 KiB, so `RUN` could not start with one), and each
/// `ARG A=$B$B` doubles its input: without a cap 28 such lines take gigabytes.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Expands one word: variables substituted, quotes and escapes removed.
///
/// ```
/// use ctxbuild::dockerfile::shell::expand;
/// let env = vec![("APP".to_string(), "api".to_string())];
/// assert_eq!(expand("/srv/${APP}/'$HOME'", &env, '\\').unwrap(), "/srv/api/$HOME");
/// assert_eq!(expand("${NOPE:-dflt}", &env, '\\').unwrap(), "dflt");
/// ```
pub fn expand(word: &str, env: &dyn Lookup, escape: char) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(word, env, escape);
    let (s, _) = lx.process(None)?;
    Ok(s)
}

/// Expands into several words, split on unquoted whitespace (what `EXPOSE $PORTS` does).
pub fn expand_words(
    word: &str,
    env: &dyn Lookup,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    let mut lx = Lexer::new(word, env, escape);
    let (_, words) = lx.process(None)?;
    Ok(words)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Lookup,
    escape: char,
    /// Open `${…}` words and double quotes.
    depth: usize,
}

/// Word splitting state for `expand_words`.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn raw_char(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.cur));
                self.in_word = false;
            }
        } else {
            self.raw_char(c);
        }
    }
    fn string(&mut self, s: &str) {
        for c in s.chars() {
            self.char(c);
        }
    }
    fn raw_string(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.cur);
        }
        self.words
    }
}

impl<'a> Lexer<'a> {
    fn new(word: &str, env: &'a dyn Lookup, escape: char) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end.
    fn process(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ExpandError> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((out, words.finish()));
            }
            if out.len() > MAX_EXPANDED {
                return Err(ExpandError::TooLong);
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    words.string(&v);
                    out.push_str(&v);
                }
                '\'' => {
                    let v = self.single_quote()?;
                    words.raw_string(&v);
                    out.push_str(&v);
                }
                '"' => {
                    let v = self.double_quote()?;
                    words.raw_string(&v);
                    out.push_str(&v);
                }
                _ => {
                    self.next();
                    if c == self.escape {
                        match self.next() {
                            Some(n) => {
                                words.raw_char(n);
                                out.push(n);
                            }
                            None => break,
                        }
                    } else {
                        words.char(c);
                        out.push(c);
                    }
                }
            }
        }
        if out.len() > MAX_EXPANDED {
            return Err(ExpandError::TooLong);
        }
        match stop {
            Some(s) => Err(ExpandError::Unterminated(s)),
            None => Ok((out, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err(ExpandError::Unterminated('\'')),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.enter()?;
        let r = self.double_quote_body();
        self.depth -= 1;
        r
    }

    /// One more level of nesting, refused past [`MAX_NESTING`].
    fn enter(&mut self) -> Result<(), ExpandError> {
        if self.depth >= MAX_NESTING {
            return Err(ExpandError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    fn double_quote_body(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut s = String::new();
        loop {
            if s.len() > MAX_EXPANDED {
                return Err(ExpandError::TooLong);
            }
            match self.peek() {
                None => return Err(ExpandError::Unterminated('"')),
                Some('"') => {
                    self.next();
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some(_) => {
                    let mut c = self.next().unwrap_or_default();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                c = n;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    s.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && "*#@?-$!".contains(c) {
                self.next();
                name.push(c);
                return name;
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.env.get(&name).unwrap_or("").to_string());
        }
        self.next();
        match self.peek() {
            None => return Err(ExpandError::MissingBrace),
            Some('{') | Some('}') | Some(':') => return Err(ExpandError::BadSubstitution),
            _ => {}
        }
        let name = self.name();
        let value = self.env.get(&name).map(str::to_string);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let modifier = self.next().ok_or(ExpandError::MissingBrace)?;
                let word = self.braced_word()?;
                let v = value.clone().unwrap_or_default();
                match modifier {
                    '+' => Ok(if v.is_empty() { String::new() } else { word }),
                    '-' => Ok(if v.is_empty() { word } else { v }),
                    '?' if v.is_empty() => Err(ExpandError::Required(
                        name,
                        if !word.is_empty() {
                            word
                        } else if value.is_none() {
                            "is not allowed to be unset".into()
                        } else {
                            "is not allowed to be empty".into()
                        },
                    )),
                    '?' => Ok(v),
                    m => Err(ExpandError::Modifier(m)),
                }
            }
            Some(m @ ('+' | '-' | '?')) => {
                let word = self.braced_word()?;
                match (m, value) {
                    ('+', Some(_)) => Ok(word),
                    ('+', None) => Ok(String::new()),
                    ('-', Some(v)) => Ok(v),
                    ('-', None) => Ok(word),
                    ('?', Some(v)) => Ok(v),
                    (_, None) => Err(ExpandError::Required(
                        name,
                        if word.is_empty() {
                            "is not allowed to be unset".into()
                        } else {
                            word
                        },
                    )),
                    (_, Some(v)) => Ok(v),
                }
            }
            None => Err(ExpandError::MissingBrace),
            Some(m) => Err(ExpandError::Modifier(m)),
        }
    }

    fn braced_word(&mut self) -> Result<String, ExpandError> {
        self.enter()?;
        let r = self.process(Some('}'));
        self.depth -= 1;
        match r {
            Ok((w, _)) => Ok(w),
            Err(e @ (ExpandError::TooDeep | ExpandError::TooLong)) => Err(e),
            Err(_) if self.peek().is_none() => Err(ExpandError::MissingBrace),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("A".into(), "one".into()),
            ("EMPTY".into(), String::new()),
            ("A".into(), "two".into()),
        ]
    }

    fn x(s: &str) -> String {
        expand(s, &env(), '\\').unwrap()
    }

    #[test]
    fn variables() {
        assert_eq!(x("$A"), "two", "a later definition wins");
        assert_eq!(x("${A}x"), "twox");
        assert_eq!(x("$Ax"), "");
        assert_eq!(x("$NOPE-"), "-");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$1"), "");
    }

    #[test]
    fn modifiers() {
        assert_eq!(x("${NOPE:-d}"), "d");
        assert_eq!(x("${EMPTY:-d}"), "d");
        assert_eq!(x("${EMPTY-d}"), "");
        assert_eq!(x("${NOPE-d}"), "d");
        assert_eq!(x("${A:-d}"), "two");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${EMPTY:+alt}"), "");
        assert_eq!(x("${EMPTY+alt}"), "alt");
        assert_eq!(x("${NOPE:-${A}}"), "two");
        assert!(matches!(
            expand("${NOPE:?}", &env(), '\\'),
            Err(ExpandError::Required(..))
        ));
        assert_eq!(expand("${A", &env(), '\\'), Err(ExpandError::MissingBrace));
        assert_eq!(
            expand("${}", &env(), '\\'),
            Err(ExpandError::BadSubstitution)
        );
        assert_eq!(
            expand("${A:%x}", &env(), '\\'),
            Err(ExpandError::Modifier('%'))
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "two b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"\\$A\\x\""), "$A\\x");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(expand("`$A", &env(), '`').unwrap(), "$A");
        assert_eq!(expand("c:\\dir", &env(), '`').unwrap(), "c:\\dir");
        assert!(expand("'open", &env(), '\\').is_err());
    }

    /// Issue 12 §2: 5,000 levels overflowed the stack (the lexer recurses per level).
    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}x{}", "${a:-".repeat(5_000), "}".repeat(5_000));
        assert_eq!(expand(&deep, &env(), '\\'), Err(ExpandError::TooDeep));
        let quoted = format!("{}x{}", "\"${a:-".repeat(5_000), "}\"".repeat(5_000));
        assert_eq!(expand(&quoted, &env(), '\\'), Err(ExpandError::TooDeep));
        let ok = format!(
            "{}x{}",
            "${a:-".repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert_eq!(x(&ok), "x");
    }

    #[test]
    fn expansion_size_is_capped() {
        let big = vec![("B".to_string(), "b".repeat(MAX_EXPANDED / 2 + 1))];
        assert_eq!(expand("$B$B", &big, '\\'), Err(ExpandError::TooLong));
        assert_eq!(expand("\"$B$B\"", &big, '\\'), Err(ExpandError::TooLong));
        assert_eq!(
            expand("$B", &big, '\\').unwrap().len(),
            MAX_EXPANDED / 2 + 1
        );
    }

    #[test]
    fn words() {
        let env = vec![("P".to_string(), "80 443/tcp".to_string())];
        assert_eq!(
            expand_words("$P 8080", &env, '\\').unwrap(),
            vec!["80", "443/tcp", "8080"]
        );
        assert_eq!(
            expand_words("\"a b\" c", &env, '\\').unwrap(),
            vec!["a b", "c"]
        );
    }
}
