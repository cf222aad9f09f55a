//! One Dockerfile as the rule families read it ([`Parsed`], or the `dockerfile-invalid`
//! finding when it does not parse), and the helpers they share: the final stage's effective command and a shell-word splitter for the
//! `sh -c` scripts Docker itself never parses.

use super::{DockerfileText, Finding, RuleId, ServiceCtx};
use crate::dockerfile::{self, Dockerfile, Instruction, Keyword};

/// The Dockerfile as the rule families read it, or the `dockerfile-invalid` finding when it
/// does not parse (then no other Dockerfile rule can run).
pub fn parsed<'a>(cx: &ServiceCtx, d: &'a DockerfileText) -> Result<Parsed<'a>, Finding> {
    match &d.parsed {
        Ok(df) => Ok(Parsed { text: d, df }),
        Err(e) => {
            let line = error_line(e);
            // The parser's message starts with `file:line: `; the finding shows its location.
            let text = e.to_string();
            let prefix = match line {
                Some(l) => format!("{}:{l}: ", d.display),
                None => format!("{}: ", d.display),
            };
            let message = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
            Err(cx.finding(
                RuleId::DockerfileInvalid,
                (d.display.clone(), line),
                message,
                "fix the syntax; `docker build` would reject this file too",
            ))
        }
    }
}

fn error_line(e: &dockerfile::ParseError) -> Option<u32> {
    use dockerfile::ParseError::*;
    match e {
        UnknownInstruction { line, .. }
        | Syntax { line, .. }
        | Heredoc { line, .. }
        | DuplicateDirective { line, .. }
        | BadEscape { line, .. }
        | BeforeFrom { line, .. } => Some(*line as u32),
        _ => None,
    }
}

/// A Dockerfile as the rules see it: the source and its parse.
pub struct Parsed<'a> {
    pub text: &'a DockerfileText,
    pub df: &'a Dockerfile,
}

impl Parsed<'_> {
    /// Where a finding about `line` goes: the Dockerfile, or ctxbuild.toml's `config_key` when
    /// the Dockerfile is a render (its lines come from the configuration).
    pub fn loc(
        &self,
        cx: &ServiceCtx,
        line: usize,
        config_key: Option<&str>,
    ) -> (String, Option<u32>) {
        match config_key {
            Some(key) if self.text.rendered => cx.config_loc(key),
            _ => (self.text.display.clone(), Some(line as u32)),
        }
    }

    /// The instructions of the final stage, following `FROM <earlier stage>` to its parent, so
    /// an inherited CMD counts. Nearest first.
    pub fn final_stage_chain(&self) -> Vec<&Instruction> {
        let stages = self.df.stages();
        let mut out = Vec::new();
        let mut idx = stages.len().checked_sub(1);
        let mut guard = 0;
        while let Some(i) = idx {
            let s = &stages[i];
            out.extend(self.df.instructions[s.body.clone()].iter().rev());
            let base = s.base.to_ascii_lowercase();
            idx = stages[..i]
                .iter()
                .rposition(|p| p.name.as_deref() == Some(base.as_str()));
            guard += 1;
            if guard > stages.len() {
                break;
            }
        }
        out
    }

    /// The last instruction of `keyword` that applies to the final stage.
    pub fn last(&self, keyword: Keyword) -> Option<&Instruction> {
        self.final_stage_chain()
            .into_iter()
            .find(|i| i.keyword == keyword)
    }

    /// The instructions of `keyword` in the final stage only (not inherited).
    pub fn final_stage(&self, keyword: Keyword) -> Vec<&Instruction> {
        let stages = self.df.stages();
        match stages.last() {
            Some(s) => self.df.instructions[s.body.clone()]
                .iter()
                .filter(|i| i.keyword == keyword)
                .collect(),
            None => Vec::new(),
        }
    }

    /// What the container runs: ENTRYPOINT + CMD as argv, and the instruction that carries the
    /// command (CMD unless ENTRYPOINT alone defines it).
    pub fn command(&self) -> Option<Command<'_>> {
        let entry = self.last(Keyword::Entrypoint);
        let cmd = self.last(Keyword::Cmd);
        let argv_of = |i: &Instruction| match &i.json {
            Some(v) => v.clone(),
            None => vec!["/bin/sh".to_string(), "-c".to_string(), i.args.clone()],
        };
        let mut argv = Vec::new();
        if let Some(e) = entry {
            argv.extend(argv_of(e));
        }
        // A shell-form ENTRYPOINT ignores CMD.
        if entry.is_none_or(|e| e.json.is_some()) {
            if let Some(c) = cmd {
                argv.extend(argv_of(c));
            }
        }
        let at = match (entry, cmd) {
            (Some(e), Some(c)) if e.json.is_some() => {
                if c.line > e.line {
                    c
                } else {
                    e
                }
            }
            (Some(e), _) => e,
            (None, Some(c)) => c,
            (None, None) => return None,
        };
        Some(Command { argv, at })
    }
}

/// The container's command line.
pub struct Command<'a> {
    pub argv: Vec<String>,
    pub at: &'a Instruction,
}

impl Command<'_> {
    /// The words of the program the container really runs: init wrappers (`tini --`,
    /// `dumb-init`), `exec`, `env` and `VAR=value` dropped, `sh -c SCRIPT` replaced by the
    /// script's words, cut at the first `&&`/`;`/`|`.
    pub fn program(&self) -> Vec<String> {
        let mut words = self.argv.clone();
        for _ in 0..4 {
            while words.first().is_some_and(|w| {
                matches!(
                    basename(w),
                    "exec" | "env" | "tini" | "dumb-init" | "catatonit" | "--"
                ) || is_assignment(w)
            }) {
                words.remove(0);
            }
            match shell_script(&words) {
                Some(script) => words = shell_words(&script),
                None => break,
            }
        }
        if let Some(end) = words
            .iter()
            .position(|w| matches!(w.as_str(), "&&" | ";" | "||" | "|"))
        {
            words.truncate(end);
        }
        words
    }

    /// Whether the command runs through a shell, which expands `$VAR`.
    pub fn has_shell(&self) -> bool {
        let mut words = self.argv.as_slice();
        while words
            .first()
            .is_some_and(|w| matches!(basename(w), "tini" | "dumb-init" | "catatonit" | "--"))
        {
            words = &words[1..];
        }
        shell_script(words).is_some()
    }

    /// All the text of the command, for port and variable searches.
    pub fn text(&self) -> String {
        self.argv.join(" ")
    }
}

/// The script of `sh -c SCRIPT` (or bash/ash/dash/zsh), if `words` is one.
fn shell_script(words: &[String]) -> Option<String> {
    let prog = words.first().map(|p| basename(p))?;
    if !matches!(prog, "sh" | "bash" | "ash" | "dash" | "zsh") {
        return None;
    }
    // `-c`, or combined flags ending in c such as `-ec`.
    let c = words
        .iter()
        .skip(1)
        .position(|a| a.starts_with('-') && !a.starts_with("--") && a.ends_with('c'))?;
    words.get(c + 2).cloned()
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((k, _)) => {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// The last path component of a program name.
pub fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Splits a shell script into words: quotes group and are removed, `;`/`&&`/`||`/`|` become
/// words of their own. Variables are left as written. Enough for the one-line CMDs we read.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        in_word = true;
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                ';' | '&' | '|' => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                    let mut op = c.to_string();
                    if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                        op.push(c);
                        chars.next();
                    }
                    words.push(op);
                }
                _ => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The value of an option in a word list: `-k X`, `--worker-class X`, `--worker-class=X`, `-kX`.
pub fn option_value<'w>(
    words: &'w [String],
    short: Option<&str>,
    long: &str,
) -> Option<(&'w str, usize)> {
    for (i, w) in words.iter().enumerate() {
        if w == long || short.is_some_and(|s| w == s) {
            return words.get(i + 1).map(|v| (v.as_str(), i + 1));
        }
        if let Some(v) = w.strip_prefix(long).and_then(|r| r.strip_prefix('=')) {
            return Some((v, i));
        }
        if let Some(s) = short {
            if let Some(v) = w
                .strip_prefix(s)
                .filter(|v| !v.is_empty() && !w.starts_with("--"))
            {
                return Some((v, i));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_split_and_unquote() {
        assert_eq!(
            shell_words("exec gunicorn 'main:app' -b \"0.0.0.0:${PORT:-8080}\" && echo done; x"),
            [
                "exec",
                "gunicorn",
                "main:app",
                "-b",
                "0.0.0.0:${PORT:-8080}",
                "&&",
                "echo",
                "done",
                ";",
                "x"
            ]
        );
    }

    #[test]
    fn option_forms() {
        let w: Vec<String> = [
            "gunicorn",
            "-kuvicorn.workers.UvicornWorker",
            "--bind=0.0.0.0:80",
            "-t",
            "30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            option_value(&w, Some("-k"), "--worker-class").map(|v| v.0),
            Some("uvicorn.workers.UvicornWorker")
        );
        assert_eq!(
            option_value(&w, Some("-b"), "--bind").map(|v| v.0),
            Some("0.0.0.0:80")
        );
        assert_eq!(
            option_value(&w, Some("-t"), "--timeout").map(|v| v.0),
            Some("30")
        );
        assert_eq!(option_value(&w, Some("-w"), "--workers"), None);
    }

    #[test]
    fn invalid_dockerfile_names_its_location_once() {
        let config = crate::service::config::Config::parse(
            std::path::Path::new("ctxbuild.toml"),
            "[services.api]\nkind = \"node\"\n",
        )
        .unwrap();
        let cx = ServiceCtx {
            config: &config,
            service: &config.services[0],
            context_dir: ".".into(),
            dockerfile: None,
            context: None,
        };
        let d = DockerfileText::new("rv/syn.df", "FROM x\nBOGUS y\n", false);
        let f = super::parsed(&cx, &d).err().unwrap();
        assert_eq!(f.rule, "dockerfile-invalid");
        assert_eq!(f.location(), "rv/syn.df:2");
        assert_eq!(f.message, "unknown instruction: BOGUS");
    }

    fn parsed(text: &str) -> Dockerfile {
        dockerfile::parse(text, "Dockerfile").unwrap()
    }

    #[test]
    fn command_follows_stage_chain_and_exec() {
        let df = parsed("FROM python:3.12 AS base\nCMD [\"sh\", \"-c\", \"exec gunicorn a:b\"]\nFROM base\nRUN true\n");
        let t = DockerfileText::new("Dockerfile", "FROM x\n", false);
        let p = Parsed { text: &t, df: &df };
        let c = p.command().unwrap();
        assert_eq!(c.at.line, 2);
        assert_eq!(c.program(), ["gunicorn", "a:b"]);
        let df = parsed("FROM x\nENTRYPOINT [\"tini\", \"--\"]\nCMD uvicorn main:app\n");
        let p = Parsed { text: &t, df: &df };
        let c = p.command().unwrap();
        assert_eq!(c.argv, ["tini", "--", "/bin/sh", "-c", "uvicorn main:app"]);
    }
}
