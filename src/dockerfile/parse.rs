//! The line-level Dockerfile parser: directives, continuations, comments, flags, JSON form.
//!
//! Follows the rules of BuildKit's `frontend/dockerfile/parser` (which moby's classic builder
//! uses): directives only in the leading comment block; a line ending in the escape character
//! (optionally followed by spaces/tabs) continues; comment lines and empty lines inside a
//! continuation are dropped (the latter with a warning); the first line of an instruction is
//! trimmed on the left, continuation lines are not; the escape char is removed and no space is
//! inserted when joining.

use super::{Directives, Dockerfile, Flag, Instruction, Keyword, ParseError, Warning};

/// The longest line the classic builder reads (`bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE: usize = 64 * 1024 - 1;

/// Parses Dockerfile `text`; `name` is used in messages (e.g. `Dockerfile` or `docker/api.Dockerfile`).
///
/// ```
/// let df = ctxbuild::dockerfile::parse("FROM busybox AS base\nRUN echo \\\n  hi\n", "Dockerfile").unwrap();
/// assert_eq!(df.instructions[1].args, "echo   hi");
/// assert_eq!((df.instructions[1].line, df.instructions[1].end_line), (2, 3));
/// ```
pub fn parse(text: &str, name: &str) -> Result<Dockerfile, ParseError> {
    // Docker's `bufio.Scanner` refuses a line (BOM and `\r` included) over 65,535 bytes.
    if let Some(i) = text.split('\n').position(|l| l.len() > MAX_LINE) {
        return Err(syntax(
            name,
            i + 1,
            format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut directives = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut directives_done = false;
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();

    let mut i = 0;
    while i < lines.len() {
        let raw = trim_newline(lines[i]);
        let lineno = i + 1;
        i += 1;

        if !directives_done {
            match directive(raw.trim_start()) {
                Some((k, v)) => {
                    if seen.contains(&k) {
                        return Err(ParseError::DuplicateDirective {
                            name: name.into(),
                            line: lineno,
                            directive: k,
                        });
                    }
                    match k.as_str() {
                        "escape" => {
                            directives.escape = match v.as_str() {
                                "\\" => '\\',
                                "`" => '`',
                                _ => {
                                    return Err(ParseError::BadEscape {
                                        name: name.into(),
                                        line: lineno,
                                        value: v,
                                    })
                                }
                            }
                        }
                        "syntax" => directives.syntax = Some(v),
                        _ => directives.check = Some(v),
                    }
                    seen.push(k);
                    continue;
                }
                None => directives_done = true,
            }
        }

        let first = raw.trim_start();
        if is_comment(first) {
            continue;
        }
        let (mut line, mut done) = trim_continuation(first, directives.escape);
        if done && line.is_empty() {
            continue;
        }
        let start = lineno;
        let mut end = lineno;
        let mut empty_continuation = false;
        while !done && i < lines.len() {
            let raw = trim_newline(lines[i]);
            i += 1;
            end = i;
            if is_comment(raw.trim_start()) {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (more, d) = trim_continuation(raw, directives.escape);
            line.push_str(&more);
            done = d;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: start,
                message: format!("empty continuation line found in: {}", line.trim()),
            });
        }
        instructions.push(instruction(&line, start, end, &directives, name)?);
    }

    if let Some(bad) = instructions
        .iter()
        .take_while(|i| i.keyword != Keyword::From)
        .find(|i| i.keyword != Keyword::Arg)
    {
        return Err(ParseError::BeforeFrom {
            name: name.into(),
            line: bad.line,
            keyword: bad.keyword,
        });
    }
    if !instructions.iter().any(|i| i.keyword == Keyword::From) {
        return Err(ParseError::NoFrom { name: name.into() });
    }

    Ok(Dockerfile {
        name: name.into(),
        directives,
        instructions,
        warnings,
    })
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.starts_with('#')
}

/// `# key=value` at the top of the file, for the directives Docker knows. An unknown key ends
/// the directive block (it is then an ordinary comment).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let eq = rest.find('=')?;
    let key = rest[..eq].trim_end();
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = rest[eq + 1..].trim();
    if value.is_empty() {
        return None;
    }
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "syntax" | "escape" | "check").then(|| (key, value.to_string()))
}

/// Strips a trailing escape char (plus spaces/tabs after it). Returns the line and whether the
/// instruction ends here.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(body) => (body.to_string(), false),
        None => (line.to_string(), true),
    }
}

fn syntax(name: &str, line: usize, message: impl Into<String>) -> ParseError {
    ParseError::Syntax {
        name: name.into(),
        line,
        message: message.into(),
    }
}

fn instruction(
    line: &str,
    start: usize,
    end: usize,
    d: &Directives,
    name: &str,
) -> Result<Instruction, ParseError> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.find(|c: char| c.is_whitespace()) {
        Some(p) => (&trimmed[..p], trimmed[p..].trim_start()),
        None => (trimmed, ""),
    };
    let keyword = Keyword::from_word(word).ok_or_else(|| ParseError::UnknownInstruction {
        name: name.into(),
        line: start,
        word: word.to_ascii_uppercase(),
    })?;
    let (flags, args) = extract_flags(rest);
    let args = args.trim().to_string();
    let flags: Vec<Flag> = flags
        .into_iter()
        .map(|f| {
            let f = f.strip_prefix("--").unwrap_or(&f).to_string();
            match f.split_once('=') {
                Some((k, v)) => Flag {
                    name: k.to_string(),
                    value: Some(v.to_string()),
                },
                None => Flag {
                    name: f,
                    value: None,
                },
            }
        })
        .collect();

    let json = match keyword {
        Keyword::Run
        | Keyword::Cmd
        | Keyword::Entrypoint
        | Keyword::Shell
        | Keyword::Copy
        | Keyword::Add
        | Keyword::Volume => match parse_json(&args) {
            Json::Strings(v) => Some(v),
            Json::NotStrings => {
                return Err(syntax(
                    name,
                    start,
                    "when using JSON array syntax, arrays must be comprised of strings only",
                ))
            }
            Json::Shell => None,
        },
        _ => None,
    };
    if keyword == Keyword::Shell && json.is_none() {
        return Err(syntax(
            name,
            start,
            "SHELL requires the arguments to be in JSON form",
        ));
    }
    if matches!(keyword, Keyword::Run | Keyword::Copy | Keyword::Add) && json.is_none() {
        if let Some(marker) = heredoc_marker(&args, d.escape) {
            return Err(ParseError::Heredoc {
                name: name.into(),
                line: start,
                marker,
            });
        }
    }
    if matches!(keyword, Keyword::Copy | Keyword::Add) {
        let n = json
            .as_ref()
            .map(Vec::len)
            .unwrap_or_else(|| split_whitespace(&args).len());
        if n < 2 {
            return Err(syntax(
                name,
                start,
                format!("{keyword} requires at least two arguments, but got {n}"),
            ));
        }
    }
    match keyword {
        Keyword::From => {
            let w = split_whitespace(&args);
            let ok = w.len() == 1 || (w.len() == 3 && w[1].eq_ignore_ascii_case("as"));
            if !ok {
                return Err(syntax(
                    name,
                    start,
                    "FROM requires either one or three arguments (FROM image [AS name])",
                ));
            }
        }
        Keyword::Env | Keyword::Label | Keyword::Arg => {
            key_values(keyword, &args, d.escape).map_err(|m| syntax(name, start, m))?;
        }
        Keyword::Onbuild => onbuild_trigger(&args).map_err(|m| syntax(name, start, m))?,
        Keyword::Healthcheck => {
            healthcheck_flags(&flags).map_err(|m| syntax(name, start, m))?;
        }
        _ => {}
    }
    Ok(Instruction {
        line: start,
        end_line: end,
        keyword,
        flags,
        args,
        json,
        original: trimmed.to_string(),
    })
}

/// What the builder's `parseOnBuild` refuses as a trigger.
fn onbuild_trigger(args: &str) -> Result<(), String> {
    let Some(first) = split_whitespace(args).into_iter().next() else {
        return Err("ONBUILD requires at least one argument".into());
    };
    match first.to_ascii_uppercase().as_str() {
        "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        t @ ("FROM" | "MAINTAINER") => Err(format!("{t} isn't allowed as an ONBUILD trigger")),
        _ => Ok(()),
    }
}

/// The builder's checks of HEALTHCHECK's flags: durations of at least 1ms (Go's
/// `time.ParseDuration` syntax), at least one retry.
fn healthcheck_flags(flags: &[Flag]) -> Result<(), String> {
    for f in flags {
        let value = f.value.as_deref().unwrap_or("");
        match f.name.as_str() {
            "interval" | "timeout" | "start-period" if !value.is_empty() => {
                let ns = go_duration_ns(value)
                    .ok_or_else(|| format!("time: invalid duration {value:?}"))?;
                if ns < 1_000_000.0 {
                    return Err(format!("Interval {:?} cannot be less than 1ms", f.name));
                }
            }
            "retries" if !value.is_empty() => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("--retries: invalid number {value:?}"))?;
                if n < 1 {
                    return Err(format!("--retries must be at least 1 (not {n})"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration` as nanoseconds: an optional sign, then one or more decimal
/// numbers each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), or a bare `0`.
fn go_duration_ns(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(if neg { -total } else { total })
}

enum Json {
    Strings(Vec<String>),
    NotStrings,
    Shell,
}

fn parse_json(args: &str) -> Json {
    let t = args.trim_start();
    if !t.starts_with('[') {
        return Json::Shell;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
        Err(_) => Json::Shell,
    }
}

/// Splits on runs of spaces/tabs/CR/VT/FF, as Docker's `parseStringsWhitespaceDelimited`.
pub(super) fn split_whitespace(s: &str) -> Vec<String> {
    s.split([' ', '\t', '\r', '\u{b}', '\u{c}'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Leading `--flag[=value]` words, as Docker's `extractBuilderFlags` (quotes and `\` honoured).
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && (b[pos] as char).is_ascii_whitespace() {
            pos += 1;
        }
        if pos + 1 >= b.len() || b[pos] != b'-' || b[pos + 1] != b'-' {
            return (words, &line[pos..]);
        }
        // One flag word.
        let mut word: Vec<u8> = Vec::new();
        let mut quote: Option<u8> = None;
        let mut blank_ok = false;
        while pos < b.len() {
            let c = b[pos];
            match quote {
                None if (c as char).is_ascii_whitespace() => break,
                None if c == b'\'' || c == b'"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == b'\\' => {
                    if pos + 1 < b.len() {
                        pos += 1;
                        word.push(b[pos]);
                    }
                }
                _ => word.push(c),
            }
            pos += 1;
        }
        let word = String::from_utf8_lossy(&word).into_owned();
        if word == "--" {
            return (words, &line[pos..]);
        }
        if blank_ok || !word.is_empty() {
            words.push(word);
        }
    }
}

/// Words as Docker's `parseWords`: split on whitespace outside quotes; quotes and escapes are
/// kept in the words (they are removed later by word expansion).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// `ENV`/`LABEL` pairs (new `k=v …` form or legacy `ENV k v…`), `ARG` names with optional values.
pub(super) fn key_values(
    keyword: Keyword,
    args: &str,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, String> {
    let words = parse_words(args, escape);
    if words.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    if keyword == Keyword::Arg {
        return words
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some(("", _)) => Err("ARG names can not be blank".to_string()),
                Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                None => Ok((w, None)),
            })
            .collect();
    }
    if !words[0].contains('=') {
        // Legacy form: `ENV KEY value with spaces`.
        let t = args.trim();
        return match t.find([' ', '\t']) {
            Some(p) => Ok(vec![(
                t[..p].to_string(),
                Some(t[p..].trim_start().to_string()),
            )]),
            None => Err(format!("{keyword} must have two arguments")),
        };
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// A heredoc opener (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`) among the shell words, if any.
fn heredoc_marker(args: &str, escape: char) -> Option<String> {
    parse_words(args, escape).into_iter().find(|w| {
        let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = w.strip_prefix("<<") else {
            return false;
        };
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        let rest = rest.trim_matches(|c| c == '"' || c == '\'');
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Dockerfile {
        parse(s, "Dockerfile").unwrap()
    }

    #[test]
    fn continuations_comments_and_lines() {
        let df = p("# syntax=docker/dockerfile:1\nFROM busybox\n\nRUN a \\\n# inner comment\n  b \\\n\n  c\n  cmd [\"x\"]\n");
        assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        let run = &df.instructions[1];
        assert_eq!(run.keyword, Keyword::Run);
        assert_eq!(run.args, "a   b   c");
        assert_eq!((run.line, run.end_line), (4, 8));
        assert_eq!(run.original, "RUN a   b   c");
        assert_eq!(df.warnings.len(), 1, "empty continuation line warns");
        assert_eq!(df.instructions[2].keyword, Keyword::Cmd);
        assert_eq!(df.instructions[2].json, Some(vec!["x".to_string()]));
        assert_eq!(df.instructions[2].line, 9);
    }

    #[test]
    fn escape_directive_changes_continuation() {
        let df = p("# escape=`\nFROM x\nRUN dir c:\\ `\n  /b\n");
        assert_eq!(df.directives.escape, '`');
        assert_eq!(df.instructions[1].args, "dir c:\\   /b");
        assert_eq!(df.instructions[1].end_line, 4);
    }

    #[test]
    fn directives_only_at_the_top() {
        let df = p("FROM x\n# escape=`\nRUN a \\\n b\n");
        assert_eq!(df.directives.escape, '\\');
        assert_eq!(df.instructions[1].args, "a  b");
        let e = parse("# escape=\\\n# escape=`\nFROM x\n", "D").unwrap_err();
        assert!(
            matches!(e, ParseError::DuplicateDirective { line: 2, .. }),
            "{e}"
        );
    }

    #[test]
    fn flags_and_forms() {
        let df = p("FROM x\nCOPY --from=build --chown=1:2 --link a b /dst/\nADD [\"a b\", \"/c\"]\nCMD echo hi\nENTRYPOINT [\"/bin/sh\", \"-c\"]\n");
        let c = &df.instructions[1];
        assert_eq!(c.flag("from"), Some("build"));
        assert_eq!(c.flag("chown"), Some("1:2"));
        assert_eq!(c.flag("link"), Some(""));
        assert_eq!(c.flag("chmod"), None);
        assert_eq!(c.words(), vec!["a", "b", "/dst/"]);
        assert_eq!(df.instructions[2].words(), vec!["a b", "/c"]);
        assert!(!df.instructions[3].is_exec_form());
        assert!(df.instructions[4].is_exec_form());
    }

    #[test]
    fn invalid_json_falls_back_to_shell_form() {
        let df = p("FROM x\nCMD [\"unterminated\"\n");
        assert_eq!(df.instructions[1].json, None);
        let e = parse("FROM x\nCMD [1, 2]\n", "Dockerfile").unwrap_err();
        assert!(e.to_string().contains("Dockerfile:2"), "{e}");
    }

    #[test]
    fn keyword_case_and_unknown() {
        let df = p("from x AS Build\nrun true\n");
        assert_eq!(
            df.instructions[0].from_parts(),
            Some(("x".into(), Some("build".into())))
        );
        assert_eq!(df.instructions[1].keyword, Keyword::Run);
        assert_eq!(df.instructions[1].original, "run true");
        let e = parse("FROM x\nFOO bar\n", "api/Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "api/Dockerfile:2: unknown instruction: FOO");
    }

    #[test]
    fn heredocs_rejected_with_location() {
        let e = parse("FROM x\n\nRUN <<EOF\necho hi\nEOF\n", "Dockerfile").unwrap_err();
        assert!(matches!(e, ParseError::Heredoc { line: 3, .. }), "{e}");
        assert!(e.to_string().starts_with("Dockerfile:3:"), "{e}");
        let e = parse("FROM x\nCOPY <<-\"END\" /a\n", "D").unwrap_err();
        assert!(matches!(e, ParseError::Heredoc { .. }));
        // `<<` inside quotes or as a shift is not a heredoc.
        p("FROM x\nRUN echo \"a <<EOF\" && echo $((1<<2))\n");
    }

    #[test]
    fn env_label_arg_pairs() {
        let df = p("ARG V=1\nFROM x\nENV A=1 B=\"two words\" C=a\\ b\nENV LEGACY value with  spaces\nARG N\nLABEL \"k\"=v\n");
        let kv = df.instructions[2].key_values('\\').unwrap();
        assert_eq!(kv[0], ("A".into(), Some("1".into())));
        assert_eq!(kv[1], ("B".into(), Some("\"two words\"".into())));
        assert_eq!(kv[2], ("C".into(), Some("a\\ b".into())));
        let legacy = df.instructions[3].key_values('\\').unwrap();
        assert_eq!(
            legacy,
            vec![("LEGACY".into(), Some("value with  spaces".into()))]
        );
        assert_eq!(
            df.instructions[4].key_values('\\').unwrap(),
            vec![("N".into(), None)]
        );
        assert!(parse("FROM x\nENV A=1 B\n", "D").is_err());
    }

    #[test]
    fn stages_and_step_numbers() {
        let df = p("ARG BASE=x\nFROM $BASE AS build\nRUN make\nFROM y AS Final\nCOPY --from=build /a /b\nCMD [\"b\"]\n");
        assert_eq!(df.meta_args().len(), 1);
        let stages = df.stages();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].name.as_deref(), Some("build"));
        assert_eq!(stages[0].body, 2..3);
        assert_eq!(stages[1].body, 4..6);
        let steps = df.steps(None).unwrap();
        assert_eq!(steps.len(), 6);
        assert_eq!(
            (steps[0].number, steps[0].total, steps[0].stage),
            (1, 6, None)
        );
        assert_eq!(steps[3].stage, Some(1));
        let t = df.steps(Some("BUILD")).unwrap();
        assert_eq!((t.len(), t[0].total), (3, 3));
        assert!(df.steps(Some("nope")).is_err());
        assert_eq!(df.stage("0").map(|s| s.index), Some(0));
        assert_eq!(df.stage("final").map(|s| s.index), Some(1));
    }

    #[test]
    fn must_start_with_from() {
        assert!(matches!(
            parse("RUN x\n", "D"),
            Err(ParseError::BeforeFrom { line: 1, .. })
        ));
        assert!(matches!(
            parse("# just a comment\n", "D"),
            Err(ParseError::NoFrom { .. })
        ));
    }

    /// Issue 12 §2: each of these passed `check` but fails `docker build` (verified on the engine,
    /// DOCKER_BUILDKIT=0, with these messages).
    #[test]
    fn classic_builder_limits() {
        let long = |n: usize| format!("FROM x\nRUN echo {}\n", "a".repeat(n - 9));
        assert!(parse(&long(MAX_LINE), "D").is_ok());
        let e = parse(&long(MAX_LINE + 1), "D").unwrap_err();
        assert_eq!(
            e.to_string(),
            "D:2: dockerfile line greater than max allowed size of 65535"
        );
        for (df, msg) in [
            (
                "FROM x\nONBUILD ONBUILD RUN true\n",
                "D:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ),
            (
                "FROM x\nonbuild from y\n",
                "D:2: FROM isn't allowed as an ONBUILD trigger",
            ),
            (
                "FROM x\nONBUILD MAINTAINER me\n",
                "D:2: MAINTAINER isn't allowed as an ONBUILD trigger",
            ),
            (
                "FROM x\nONBUILD\n",
                "D:2: ONBUILD requires at least one argument",
            ),
            (
                "FROM x\nHEALTHCHECK --interval=-1s CMD true\n",
                "D:2: Interval \"interval\" cannot be less than 1ms",
            ),
            (
                "FROM x\nHEALTHCHECK --interval=0s CMD true\n",
                "D:2: Interval \"interval\" cannot be less than 1ms",
            ),
            (
                "FROM x\nHEALTHCHECK --timeout=-5m CMD true\n",
                "D:2: Interval \"timeout\" cannot be less than 1ms",
            ),
            (
                "FROM x\nHEALTHCHECK --start-period=-1s CMD true\n",
                "D:2: Interval \"start-period\" cannot be less than 1ms",
            ),
            (
                "FROM x\nHEALTHCHECK --interval=0.5ms CMD true\n",
                "D:2: Interval \"interval\" cannot be less than 1ms",
            ),
            (
                "FROM x\nHEALTHCHECK --interval=abc CMD true\n",
                "D:2: time: invalid duration \"abc\"",
            ),
            (
                "FROM x\nHEALTHCHECK --retries=0 CMD true\n",
                "D:2: --retries must be at least 1 (not 0)",
            ),
            (
                "FROM x\nHEALTHCHECK --retries=-1 CMD true\n",
                "D:2: --retries must be at least 1 (not -1)",
            ),
        ] {
            assert_eq!(parse(df, "D").unwrap_err().to_string(), msg, "{df}");
        }
        for ok in [
            "FROM x\nONBUILD RUN make\n",
            "FROM x\nHEALTHCHECK --interval=1ms --timeout=1h2m3.5s --start-period=30s --retries=3 CMD true\n",
            "FROM x\nHEALTHCHECK NONE\n",
        ] {
            assert!(parse(ok, "D").is_ok(), "{ok}");
        }
    }

    #[test]
    fn crlf_and_bom() {
        let df = p("\u{feff}FROM x\r\nRUN a \\\r\n b\r\n");
        assert_eq!(df.instructions[1].args, "a  b");
    }
}
