//! What gunicorn will really run with: `gunicorn.conf.py`, `GUNICORN_CMD_ARGS` and the command
//! line, merged in gunicorn's own order (config file < `GUNICORN_CMD_ARGS` < command line).
//!
//! Only the settings `check` reasons about are read — worker class, bind, workers, timeout —
//! and only from simple top-level assignments of the config file; anything computed is kept as
//! its expression text ([`Value::Expr`]) so a caller can still see, say, that a bind mentions
//! `PORT`. Pure functions over text; reading the file is [`config_file`]'s one job.

use super::scan;
use crate::fsutil::{self, ReadError};
use std::path::{Path, PathBuf};

/// gunicorn's default config file, looked up in its working directory.
pub const DEFAULT_CONFIG: &str = "gunicorn.conf.py";

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Value {
    /// A literal string (or a one-element list of one, for `bind`).
    Str(String),
    /// A literal integer.
    Int(i64),
    /// Anything else, as written (`multiprocessing.cpu_count() * 2 + 1`, an f-string…).
    Expr(String),
}

impl Value {
    /// The value as text (the literal, or the expression).
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) | Value::Expr(s) => s.clone(),
            Value::Int(i) => i.to_string(),
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Origin {
    /// A line of the config file (relative to the context).
    File { path: PathBuf, line: usize },
    /// The `GUNICORN_CMD_ARGS` environment variable.
    EnvArgs,
    /// The command line.
    CommandLine,
}

/// One setting and its origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub value: Value,
    pub origin: Origin,
}

/// The settings ctxbuild reasons about; `None` = gunicorn's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    pub worker_class: Option<Setting>,
    /// Every bind address (gunicorn accepts several).
    pub bind: Vec<Setting>,
    pub workers: Option<Setting>,
    pub timeout: Option<Setting>,
    /// `-c`/`--config` given on the command line or in `GUNICORN_CMD_ARGS`.
    pub config: Option<String>,
}

impl Settings {
    /// Whether every bind follows `$PORT` (mentions `PORT`); `None` with no bind at all (gunicorn
    /// then binds 127.0.0.1:8000, which Cloud Run cannot reach — also `PORT` is honoured by
    /// gunicorn ≥ 20 only when no bind is set, so `None` is for the caller to judge).
    pub fn bind_follows_port(&self) -> Option<bool> {
        if self.bind.is_empty() {
            return None;
        }
        Some(self.bind.iter().all(|b| b.value.text().contains("PORT")))
    }

    /// Overlays `other` (more authoritative) onto `self`.
    pub fn overlay(&mut self, other: Settings) {
        if other.worker_class.is_some() {
            self.worker_class = other.worker_class;
        }
        if !other.bind.is_empty() {
            self.bind = other.bind;
        }
        if other.workers.is_some() {
            self.workers = other.workers;
        }
        if other.timeout.is_some() {
            self.timeout = other.timeout;
        }
        if other.config.is_some() {
            self.config = other.config;
        }
    }
}

/// Reads the settings of a gunicorn config file's text (`path` is recorded as the origin).
pub fn parse_config(text: &str, path: &Path) -> Settings {
    let mut s = Settings::default();
    for st in scan::statements(text) {
        if !st.module_level || st.indent != 0 {
            continue;
        }
        let Some((name, value)) = st.text.split_once('=') else {
            continue;
        };
        let name = name.split(':').next().unwrap_or("").trim();
        let value = value.trim();
        if value.starts_with('=') {
            continue;
        }
        let setting = |value| Setting {
            value,
            origin: Origin::File {
                path: path.to_path_buf(),
                line: st.line,
            },
        };
        match name {
            "worker_class" => s.worker_class = Some(setting(literal(value))),
            "bind" => s.bind = binds(value).into_iter().map(setting).collect(),
            "workers" => s.workers = Some(setting(literal(value))),
            "timeout" => s.timeout = Some(setting(literal(value))),
            _ => {}
        }
    }
    s
}

fn literal(value: &str) -> Value {
    let v = value.trim();
    if let Ok(i) = v.replace('_', "").parse::<i64>() {
        return Value::Int(i);
    }
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) && !v[1..v.len() - 1].contains(q) {
            return Value::Str(v[1..v.len() - 1].to_string());
        }
    }
    Value::Expr(v.to_string())
}

/// `bind = "a"`, `bind = ["a", "b"]`, or an expression.
fn binds(value: &str) -> Vec<Value> {
    let v = value.trim();
    if let Some(inner) = v
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .or_else(|| v.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
    {
        let items: Vec<Value> = inner
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(literal)
            .collect();
        if items.iter().all(|i| matches!(i, Value::Str(_))) {
            return items;
        }
    }
    vec![literal(v)]
}

/// The gunicorn flags ctxbuild reads, each of which takes a value.
const VALUE_FLAGS: &[&str] = &[
    "-k",
    "--worker-class",
    "-b",
    "--bind",
    "-w",
    "--workers",
    "-t",
    "--timeout",
    "-c",
    "--config",
];

/// Reads the command-line style arguments gunicorn takes (from `GUNICORN_CMD_ARGS`, split like
/// a shell would, or from a CMD's argv after `gunicorn`).
pub fn parse_args<S: AsRef<str>>(args: &[S], origin: Origin) -> Settings {
    let mut s = Settings::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_ref();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a, None),
        };
        let known = VALUE_FLAGS.contains(&flag);
        // `-kuvicorn…` / `-w4`: a short flag glued to its value.
        let (flag, inline) = if !known && flag.len() > 2 && !flag.starts_with("--") {
            let (f, v) = flag.split_at(2);
            (f, Some(v.to_string()))
        } else {
            (flag, inline)
        };
        let takes = VALUE_FLAGS.contains(&flag);
        if !takes {
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                match args.get(i) {
                    Some(v) => v.as_ref().to_string(),
                    None => break,
                }
            }
        };
        let setting = |v: Value| Setting {
            value: v,
            origin: origin.clone(),
        };
        let typed = || match value.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Expr(value.clone()),
        };
        match flag {
            "-k" | "--worker-class" => s.worker_class = Some(setting(Value::Str(value.clone()))),
            "-b" | "--bind" => s.bind.push(setting(Value::Str(value.clone()))),
            "-w" | "--workers" => s.workers = Some(setting(typed())),
            "-t" | "--timeout" => s.timeout = Some(setting(typed())),
            _ => s.config = Some(value.clone()),
        }
        i += 1;
    }
    s
}

/// Splits `GUNICORN_CMD_ARGS` as gunicorn does (`shlex.split`): whitespace, with single and
/// double quotes grouping.
pub fn split_env_args(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The config file gunicorn loads from `workdir` (relative to the context): `config` when
/// given (`-c`; a `python:module` config is not read), else `gunicorn.conf.py` if present.
/// `Ok(None)` when there is none.
pub fn config_file(
    context: &Path,
    workdir: &Path,
    config: Option<&str>,
) -> Result<Option<Settings>, ReadError> {
    let rel = match config {
        Some(c) if c.starts_with("python:") => return Ok(None),
        Some(c) => workdir.join(c.strip_prefix("file:").unwrap_or(c)),
        None => workdir.join(DEFAULT_CONFIG),
    };
    let path = context.join(&rel);
    match fsutil::read_text(&path) {
        Ok(text) => Ok(Some(parse_config(&text, &rel))),
        Err(e) if e.is_not_found() && config.is_none() => Ok(None),
        Err(e) => Err(e),
    }
}

/// What runs: the config file's settings, overlaid by `GUNICORN_CMD_ARGS`, overlaid by the
/// command line (gunicorn's precedence).
pub fn effective(
    file: Option<Settings>,
    env_args: Option<&str>,
    command_line: &[String],
) -> Settings {
    let mut s = file.unwrap_or_default();
    if let Some(env) = env_args {
        s.overlay(parse_args(&split_env_args(env), Origin::EnvArgs));
    }
    s.overlay(parse_args(command_line, Origin::CommandLine));
    s
}
