//! Dockerfile parsing and the step model, as the classic builder (moby 20.10+, which vendors
//! BuildKit's parser) reads a Dockerfile.
//!
//! [`parse`] turns text into a [`Dockerfile`]: parser directives, then one [`Instruction`] per
//! logical line (continuations joined, comments dropped) with 1-based line numbers, keyword,
//! flags and arguments (raw text, plus the JSON array for exec form). [`Dockerfile::stages`]
//! groups instructions by `FROM`; [`Dockerfile::steps`] numbers them as the classic builder
//! prints "Step N/M" (meta `ARG`s before the first `FROM` and every `FROM` count).
//! [`shell`] implements the `$VAR` / `${VAR:-default}` substitution Docker applies to `ENV`,
//! `ARG`, `COPY`/`ADD`, `WORKDIR`, … .
//!
//! Boundary: text in, data out. No filesystem access, no cache keys, no printing. Heredocs are
//! not supported (the classic builder of Docker 20.10 does not support them either) and are
//! rejected with an error naming the file and line.

mod parse;
pub mod shell;

pub use parse::parse;

use crate::diagnostics::Diagnose;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dockerfile {
    /// The name used in messages (usually the path relative to the context root).
    pub name: String,
    pub directives: Directives,
    /// Every instruction in file order, meta `ARG`s before the first `FROM` included.
    pub instructions: Vec<Instruction>,
    /// Non-fatal findings (e.g. empty continuation lines), as Docker would warn.
    pub warnings: Vec<Warning>,
}

/// Parser directives from the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directives {
    pub syntax: Option<String>,
    /// The escape character: `\` unless `# escape=` says `` ` ``.
    pub escape: char,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// The instruction keywords Docker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Keyword {
    From,
    Run,
    Cmd,
    Label,
    Maintainer,
    Expose,
    Env,
    Add,
    Copy,
    Entrypoint,
    Volume,
    User,
    Workdir,
    Arg,
    Onbuild,
    Stopsignal,
    Healthcheck,
    Shell,
}

impl Keyword {
    /// Parses a keyword case-insensitively.
    pub fn from_word(word: &str) -> Option<Keyword> {
        use Keyword::*;
        Some(match word.to_ascii_lowercase().as_str() {
            "from" => From,
            "run" => Run,
            "cmd" => Cmd,
            "label" => Label,
            "maintainer" => Maintainer,
            "expose" => Expose,
            "env" => Env,
            "add" => Add,
            "copy" => Copy,
            "entrypoint" => Entrypoint,
            "volume" => Volume,
            "user" => User,
            "workdir" => Workdir,
            "arg" => Arg,
            "onbuild" => Onbuild,
            "stopsignal" => Stopsignal,
            "healthcheck" => Healthcheck,
            "shell" => Shell,
            _ => return None,
        })
    }

    /// The canonical upper-case spelling.
    pub fn as_str(self) -> &'static str {
        use Keyword::*;
        match self {
            From => "FROM",
            Run => "RUN",
            Cmd => "CMD",
            Label => "LABEL",
            Maintainer => "MAINTAINER",
            Expose => "EXPOSE",
            Env => "ENV",
            Add => "ADD",
            Copy => "COPY",
            Entrypoint => "ENTRYPOINT",
            Volume => "VOLUME",
            User => "USER",
            Workdir => "WORKDIR",
            Arg => "ARG",
            Onbuild => "ONBUILD",
            Stopsignal => "STOPSIGNAL",
            Healthcheck => "HEALTHCHECK",
            Shell => "SHELL",
        }
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--name[=value]` flag of an instruction (`--from=build`, `--chown=1000:1000`, `--link`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: String,
    /// `None` for a bare boolean flag (`--link`).
    pub value: Option<String>,
}

/// One instruction (one logical line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based line where it ends (after continuations).
    pub end_line: usize,
    pub keyword: Keyword,
    /// Flags before the arguments, in order.
    pub flags: Vec<Flag>,
    /// The arguments after the keyword and flags, continuations joined, trimmed. Not expanded.
    pub args: String,
    /// The exec-form array when the arguments are a JSON array of strings (`CMD ["a", "b"]`).
    pub json: Option<Vec<String>>,
    /// The whole logical line, trimmed, exactly as Docker prints it after "Step N/M : ".
    pub original: String,
}

impl Instruction {
    /// The value of flag `--name` (`Some("")` for a bare flag), if present. The last one wins.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// Whether the arguments are in exec (JSON) form.
    pub fn is_exec_form(&self) -> bool {
        self.json.is_some()
    }

    /// The arguments as words: the JSON array in exec form, else split on whitespace (how Docker
    /// reads `FROM`, `EXPOSE`, `COPY`/`ADD` sources and destination, `VOLUME`).
    pub fn words(&self) -> Vec<String> {
        match &self.json {
            Some(v) => v.clone(),
            None => parse::split_whitespace(&self.args),
        }
    }

    /// `KEY=VALUE` pairs of `ENV`, `LABEL` and `ARG` (value `None` for `ARG NAME`), quotes
    /// and escapes still in place (they are removed by [`shell::expand`]).
    pub fn key_values(&self, escape: char) -> Result<Vec<(String, Option<String>)>, String> {
        parse::key_values(self.keyword, &self.args, escape)
    }

    /// For `FROM`: the image reference and the stage name after `AS` (lower-cased, as Docker
    /// compares stage names case-insensitively).
    pub fn from_parts(&self) -> Option<(String, Option<String>)> {
        if self.keyword != Keyword::From {
            return None;
        }
        let w = self.words();
        let image = w.first()?.clone();
        let name = match w.len() {
            3 if w[1].eq_ignore_ascii_case("as") => Some(w[2].to_ascii_lowercase()),
            _ => None,
        };
        Some((image, name))
    }
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stage {
    /// 0-based stage index (what `COPY --from=0` refers to).
    pub index: usize,
    /// The name after `AS`, lower-cased.
    pub name: Option<String>,
    /// The image reference as written (not expanded).
    pub base: String,
    /// Index of the `FROM` in [`Dockerfile::instructions`].
    pub from: usize,
    /// Indices into [`Dockerfile::instructions`] of the stage's instructions after `FROM`.
    pub body: std::ops::Range<usize>,
}

/// One step as the classic builder numbers it ("Step N/M : original").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// 1-based step number.
    pub number: usize,
    /// Total steps of the build (M in "Step N/M").
    pub total: usize,
    /// The stage the step belongs to; `None` for meta `ARG`s before the first `FROM`.
    pub stage: Option<usize>,
    pub instruction: &'a Instruction,
}

impl Dockerfile {
    /// The `ARG`s before the first `FROM` (usable in `FROM` lines only).
    pub fn meta_args(&self) -> &[Instruction] {
        let first_from = self
            .instructions
            .iter()
            .position(|i| i.keyword == Keyword::From)
            .unwrap_or(self.instructions.len());
        &self.instructions[..first_from]
    }

    /// The stages in file order.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages: Vec<Stage> = Vec::new();
        for (i, ins) in self.instructions.iter().enumerate() {
            if ins.keyword == Keyword::From {
                if let Some(last) = stages.last_mut() {
                    last.body.end = i;
                }
                let (base, name) = ins.from_parts().unwrap_or_default();
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    base,
                    from: i,
                    body: i + 1..self.instructions.len(),
                });
            }
        }
        stages
    }

    /// Finds a stage by name (case-insensitive) or by index, as `--target` and `COPY --from` do.
    pub fn stage(&self, name_or_index: &str) -> Option<Stage> {
        let stages = self.stages();
        let lower = name_or_index.to_ascii_lowercase();
        if let Some(s) = stages.iter().find(|s| s.name.as_deref() == Some(&lower)) {
            return Some(s.clone());
        }
        name_or_index
            .parse::<usize>()
            .ok()
            .and_then(|i| stages.get(i).cloned())
    }

    /// The steps the classic builder runs for `target` (all stages when `None`), numbered as it
    /// prints them: meta `ARG`s first, then every stage up to and including the target, each
    /// `FROM` counting as a step.
    pub fn steps(&self, target: Option<&str>) -> Result<Vec<Step<'_>>, ParseError> {
        let stages = self.stages();
        if stages.is_empty() {
            return Err(ParseError::NoFrom {
                name: self.name.clone(),
            });
        }
        let last = match target {
            None => stages.len() - 1,
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(&lower))
                    .ok_or_else(|| ParseError::NoSuchStage {
                        name: self.name.clone(),
                        target: t.to_string(),
                    })?
            }
        };
        let end = stages[last].body.end;
        let meta = self.meta_args().len();
        let total = end;
        let mut steps = Vec::with_capacity(total);
        for (i, ins) in self.instructions[..end].iter().enumerate() {
            let stage = if i < meta {
                None
            } else {
                stages.iter().rposition(|s| s.from <= i)
            };
            steps.push(Step {
                number: i + 1,
                total,
                stage,
                instruction: ins,
            });
        }
        Ok(steps)
    }
}

/// Why a Dockerfile could not be parsed. Messages name the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{name}:{line}: unknown instruction: {word}")]
    UnknownInstruction {
        name: String,
        line: usize,
        word: String,
    },
    #[error("{name}:{line}: {message}")]
    Syntax {
        name: String,
        line: usize,
        message: String,
    },
    #[error("{name}:{line}: heredocs ({marker}) are not supported by the classic builder")]
    Heredoc {
        name: String,
        line: usize,
        marker: String,
    },
    #[error("{name}:{line}: only one {directive} parser directive can be used")]
    DuplicateDirective {
        name: String,
        line: usize,
        directive: String,
    },
    #[error("{name}:{line}: invalid escape token '{value}' does not match ` or \\")]
    BadEscape {
        name: String,
        line: usize,
        value: String,
    },
    #[error("{name}: no FROM instruction: a Dockerfile must start with FROM (after ARGs)")]
    NoFrom { name: String },
    #[error("{name}:{line}: {keyword} before the first FROM: only ARG may come before FROM")]
    BeforeFrom {
        name: String,
        line: usize,
        keyword: Keyword,
    },
    #[error("{name}: target stage '{target}' could not be found")]
    NoSuchStage { name: String, target: String },
}

impl Diagnose for ParseError {
    fn hint(&self) -> Option<String> {
        match self {
            ParseError::Heredoc { .. } => Some(
                "write the script to a file and COPY it, or use `RUN printf '...' > file`".into(),
            ),
            ParseError::UnknownInstruction { .. } => Some(
                "check the spelling, or a line continuation (\\) missing on the line before".into(),
            ),
            ParseError::NoSuchStage { .. } => {
                Some("name the stage with `FROM image AS name`".into())
            }
            _ => None,
        }
    }
    fn class(&self) -> crate::diagnostics::ErrorClass {
        crate::diagnostics::ErrorClass::Failed
    }
}
