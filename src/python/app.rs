//! The ASGI app: resolving the configured `module:attr` against the context, and finding the
//! candidates `init` can offer.
//!
//! [`resolve`] does what gunicorn does at boot, offline: import path → file (`a/b.py` or
//! `a/b/__init__.py`, from the context root or a `src/` layout), then a module-level binding of
//! the attribute (an assignment, an annotated assignment, an import, a `def`/`class`). When that
//! fails the error carries a suggestion: `main.py:app` → `main:app`, a module found elsewhere, a
//! launcher (`main.py` that only calls `uvicorn.run("pkg.api:app")`) → its target.
//! [`detect`] lists every module-level `FastAPI(...)` / `Starlette(...)` instance (and factory
//! call) in the context's Python files, marking the ones a launcher names; choosing among
//! several is the caller's question to ask. Pure functions over files; nothing is printed.

use super::files::{python_files, SourceFile};
use super::scan::{self, is_ident, is_identifier, Statement};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The classes whose module-level instances are ASGI apps.
const APP_CLASSES: &[&str] = &["FastAPI", "Starlette"];

/// A `module:attr` reference, as gunicorn and uvicorn take it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppRef {
    pub module: String,
    /// The attribute; a factory call keeps its parentheses stripped (see `factory`).
    pub attr: String,
    /// `module:create_app()`: gunicorn calls the attribute to get the app.
    pub factory: bool,
}

impl std::fmt::Display for AppRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.module, self.attr)?;
        if self.factory {
            f.write_str("()")?;
        }
        Ok(())
    }
}

/// What a module-level name is bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Binding {
    /// `app = FastAPI(...)`.
    Instance { class: String },
    /// `app = create_app()` (any other call or value).
    Assigned { value: String },
    /// `from x import app`.
    Imported { from: String },
    /// `def app(...)`.
    Function,
    /// `class App`.
    Class,
}

/// A resolved app: where its module is and how the attribute is bound.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedApp {
    pub app: AppRef,
    /// The module's file, relative to the context.
    pub file: PathBuf,
    /// The line of the (last) module-level binding.
    pub line: usize,
    pub binding: Binding,
}

/// Why `app` does not name an importable ASGI app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("`{app}` is not `module:attribute` ({reason})")]
    Syntax {
        app: String,
        reason: &'static str,
        suggestion: Option<String>,
    },
    #[error("`{app}` names a file, but gunicorn takes an import path")]
    FilePath { app: String, suggestion: String },
    #[error("module `{module}` not found in the context (no {tried})")]
    ModuleNotFound {
        module: String,
        tried: String,
        suggestion: Option<String>,
    },
    #[error("{} has no module-level `{attr}`", file.display())]
    AttrNotFound {
        file: PathBuf,
        attr: String,
        suggestion: Option<String>,
    },
    #[error("{} is a launcher: it starts `{target}` with uvicorn.run and binds no `{attr}`", file.display())]
    Launcher {
        file: PathBuf,
        attr: String,
        target: String,
    },
}

impl AppError {
    /// The `module:attr` to use instead, when one is known.
    pub fn suggestion(&self) -> Option<&str> {
        match self {
            AppError::Syntax { suggestion, .. }
            | AppError::ModuleNotFound { suggestion, .. }
            | AppError::AttrNotFound { suggestion, .. } => suggestion.as_deref(),
            AppError::FilePath { suggestion, .. } => Some(suggestion),
            AppError::Launcher { target, .. } => Some(target),
        }
    }
}

/// Parses `module:attr` (gunicorn's syntax; a missing `:attr` is an error here because uvicorn
/// and ctxbuild's templates both need it).
pub fn parse(app: &str) -> Result<AppRef, AppError> {
    let syntax = |reason, suggestion| AppError::Syntax {
        app: app.to_string(),
        reason,
        suggestion,
    };
    let (module, attr) = match app.split_once(':') {
        Some(pair) => pair,
        None => {
            let suggestion = module_from_path(app).map(|m| format!("{m}:app"));
            return Err(syntax("no `:attribute`", suggestion));
        }
    };
    if module.ends_with(".py") || module.contains('/') || module.contains('\\') {
        if let Some(m) = module_from_path(module) {
            return Err(AppError::FilePath {
                app: app.to_string(),
                suggestion: format!("{m}:{attr}"),
            });
        }
    }
    let (attr, factory) = match attr.strip_suffix("()") {
        Some(a) => (a, true),
        None => (attr, false),
    };
    if !module.split('.').all(is_identifier) {
        return Err(syntax("the module is not a dotted Python name", None));
    }
    if !is_identifier(attr) {
        return Err(syntax("the attribute is not a Python name", None));
    }
    Ok(AppRef {
        module: module.to_string(),
        attr: attr.to_string(),
        factory,
    })
}

/// `src/app/main.py` → `app.main`; `./main.py` → `main`.
fn module_from_path(p: &str) -> Option<String> {
    let p = p.trim_start_matches("./").replace('\\', "/");
    let p = p.strip_suffix(".py").unwrap_or(&p);
    let p = p.strip_suffix("/__init__").unwrap_or(p);
    let p = p.strip_prefix("src/").unwrap_or(p);
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    (!parts.is_empty() && parts.iter().all(|s| is_identifier(s))).then(|| parts.join("."))
}

/// The directories imports resolve from: the context (gunicorn's working directory) and, for a
/// `src/` layout (a `src/` that is not itself a package), `src/` — the project is installed.
fn roots(context: &Path) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::new()];
    let src = context.join("src");
    if src.is_dir() && !src.join("__init__.py").exists() {
        roots.push(PathBuf::from("src"));
    }
    roots
}

/// The file of `module` relative to the context, if it exists.
pub fn module_file(context: &Path, module: &str) -> Option<PathBuf> {
    let rel: PathBuf = module.split('.').collect();
    for root in roots(context) {
        let file = root.join(&rel).with_extension("py");
        if context.join(&file).is_file() {
            return Some(file);
        }
        let init = root.join(&rel).join("__init__.py");
        if context.join(&init).is_file() {
            return Some(init);
        }
    }
    None
}

/// Resolves `app` against the context (see the module doc).
pub fn resolve(context: &Path, app: &str) -> Result<ResolvedApp, AppError> {
    let r = parse(app)?;
    let Some(file) = module_file(context, &r.module) else {
        let tried = {
            let rel = r.module.replace('.', "/");
            format!("{rel}.py or {rel}/__init__.py")
        };
        let suggestion = suggest_for_module(context, &r);
        return Err(AppError::ModuleNotFound {
            module: r.module.clone(),
            tried,
            suggestion,
        });
    };
    let text = fsutil::read_limited(&context.join(&file), super::files::MAX_FILE)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let stmts = scan::statements(&text);
    if let Some((line, binding)) = module_bindings(&stmts)
        .into_iter()
        .rev()
        .find(|(name, _, _)| *name == r.attr)
        .map(|(_, line, b)| (line, b))
    {
        return Ok(ResolvedApp {
            app: r,
            file,
            line,
            binding,
        });
    }
    if let Some(target) = launcher_target(&text) {
        return Err(AppError::Launcher {
            file,
            attr: r.attr,
            target,
        });
    }
    // Another app instance in the same module is the likely intent (`api = FastAPI()`).
    let suggestion = module_bindings(&stmts)
        .into_iter()
        .find(|(_, _, b)| matches!(b, Binding::Instance { .. }))
        .map(|(name, _, _)| format!("{}:{name}", r.module));
    Err(AppError::AttrNotFound {
        file,
        attr: r.attr,
        suggestion,
    })
}

fn suggest_for_module(context: &Path, r: &AppRef) -> Option<String> {
    let candidates = detect(context);
    let last = r.module.rsplit('.').next().unwrap_or(&r.module);
    let same_name = |c: &&Candidate| {
        let m = c.app.module.as_str();
        m == last || m.ends_with(&format!(".{last}"))
    };
    candidates
        .iter()
        .find(|c| same_name(c) && c.app.attr == r.attr)
        .or_else(|| candidates.iter().find(same_name))
        .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
        .map(|c| c.app.to_string())
}

/// The `module:attr` a launcher starts: the string first argument of `uvicorn.run(...)`.
pub fn launcher_target(text: &str) -> Option<String> {
    for (i, _) in text.match_indices("uvicorn.run(") {
        let rest = text[i + "uvicorn.run(".len()..].trim_start();
        if rest.starts_with(['"', '\'']) {
            if let Some(s) = scan::first_string(rest) {
                if s.contains(':') {
                    return Some(s.to_string());
                }
            }
        }
    }
    None
}

/// Every module-level binding: (name, line, binding), in source order.
pub fn module_bindings(stmts: &[Statement]) -> Vec<(String, usize, Binding)> {
    let mut out = Vec::new();
    for s in stmts.iter().filter(|s| s.module_level) {
        let t = s.text.as_str();
        if let Some(rest) = t.strip_prefix("from ") {
            if let Some((from, names)) = rest.split_once(" import ") {
                let names = names.trim().trim_start_matches('(').trim_end_matches(')');
                for n in names.split(',') {
                    let n = n.trim();
                    let bound = n.rsplit(" as ").next().unwrap_or(n).trim();
                    if is_identifier(bound) {
                        out.push((
                            bound.to_string(),
                            s.line,
                            Binding::Imported {
                                from: from.trim().to_string(),
                            },
                        ));
                    }
                }
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("import ") {
            for n in rest.split(',') {
                let n = n.trim();
                let bound = match n.split_once(" as ") {
                    Some((_, b)) => b.trim(),
                    None => n.split('.').next().unwrap_or(n),
                };
                if is_identifier(bound) {
                    out.push((
                        bound.to_string(),
                        s.line,
                        Binding::Imported {
                            from: n.to_string(),
                        },
                    ));
                }
            }
            continue;
        }
        let def = t
            .strip_prefix("async def ")
            .or_else(|| t.strip_prefix("def "));
        if let Some(rest) = def {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            out.push((name, s.line, Binding::Function));
            continue;
        }
        if let Some(rest) = t.strip_prefix("class ") {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            out.push((name, s.line, Binding::Class));
            continue;
        }
        let parts = split_assignment(t);
        if parts.len() < 2 {
            continue;
        }
        let value = parts[parts.len() - 1].trim();
        let binding = match instance_class(value) {
            Some(class) => Binding::Instance { class },
            None => Binding::Assigned {
                value: value.chars().take(80).collect(),
            },
        };
        for target in &parts[..parts.len() - 1] {
            // `app: FastAPI` — the annotation is not part of the name.
            let name = target.split(':').next().unwrap_or("").trim();
            if is_identifier(name) {
                out.push((name.to_string(), s.line, binding.clone()));
            }
        }
    }
    out
}

/// Splits `a = b = value` at the top-level `=` signs (not `==`, `<=`, `!=`, `:=`, keyword
/// arguments inside brackets or `=` inside strings).
fn split_assignment(t: &str) -> Vec<&str> {
    let bytes = t.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'=' if depth == 0 => {
                    let prev = if i > 0 { bytes[i - 1] } else { 0 };
                    let next = bytes.get(i + 1).copied().unwrap_or(0);
                    let compound = b"=<>!:+-*/%&|^@".contains(&prev);
                    if next == b'=' {
                        i += 1;
                    } else if !compound {
                        parts.push(&t[start..i]);
                        start = i + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(&t[start..]);
    parts
}

/// `FastAPI(...)`, `fastapi.FastAPI(...)` → `FastAPI`.
fn instance_class(value: &str) -> Option<String> {
    let call = value.split('(').next()?.trim();
    let class = call.rsplit('.').next()?;
    (value.contains('(') && APP_CLASSES.contains(&class)).then(|| class.to_string())
}

/// An ASGI app found in the context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub app: AppRef,
    pub file: PathBuf,
    pub line: usize,
    /// `FastAPI`, `Starlette`, or `factory` for `app = create_app()` where `create_app`
    /// builds one.
    pub class: String,
    /// Launchers (`uvicorn.run("…")`) that name this app.
    pub launched_by: Vec<PathBuf>,
}

/// The importable module of a file relative to the context (`None` when a directory on the way
/// is not a Python name).
fn module_of(context: &Path, rel: &Path) -> Option<String> {
    let s = rel.to_string_lossy().replace('\\', "/");
    let s = if roots(context).len() > 1 {
        s.strip_prefix("src/").map(str::to_string).unwrap_or(s)
    } else {
        s
    };
    module_from_path(&s)
}

/// Every module-level ASGI app instance in the context (see the module doc), sorted with the
/// ones a launcher names first, then by path.
pub fn detect(context: &Path) -> Vec<Candidate> {
    let files = python_files(context);
    let parsed: Vec<(&SourceFile, Vec<Statement>)> = files
        .iter()
        .map(|f| (f, scan::statements(&f.text)))
        .collect();

    // Functions whose body builds an app: `def create_app(): app = FastAPI()`.
    let mut factories = Vec::new();
    for (_, stmts) in &parsed {
        let mut current: Option<String> = None;
        for s in stmts {
            if s.module_level {
                current = s
                    .text
                    .strip_prefix("def ")
                    .or_else(|| s.text.strip_prefix("async def "))
                    .map(|r| r.chars().take_while(|c| is_ident(*c)).collect());
            } else if let Some(name) = &current {
                if APP_CLASSES
                    .iter()
                    .any(|c| s.text.contains(&format!("{c}(")))
                    && !factories.contains(name)
                {
                    factories.push(name.clone());
                }
            }
        }
    }

    let mut out: Vec<Candidate> = Vec::new();
    let mut launches: Vec<(String, PathBuf)> = Vec::new();
    for (f, stmts) in &parsed {
        if let Some(t) = launcher_target(&f.text) {
            launches.push((t, f.rel.clone()));
        }
        let Some(module) = module_of(context, &f.rel) else {
            continue;
        };
        for (name, line, binding) in module_bindings(stmts) {
            let class = match binding {
                Binding::Instance { class } => class,
                Binding::Assigned { value } => {
                    let call = value.split('(').next().unwrap_or("").trim();
                    let func = call.rsplit('.').next().unwrap_or(call);
                    if value.contains('(') && factories.iter().any(|f| f == func) {
                        "factory".to_string()
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            out.push(Candidate {
                app: AppRef {
                    module: module.clone(),
                    attr: name,
                    factory: false,
                },
                file: f.rel.clone(),
                line,
                class,
                launched_by: Vec::new(),
            });
        }
    }
    for (target, launcher) in launches {
        if let Some(c) = out.iter_mut().find(|c| c.app.to_string() == target) {
            c.launched_by.push(launcher);
        }
    }
    out.sort_by(|a, b| {
        a.launched_by
            .is_empty()
            .cmp(&b.launched_by.is_empty())
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
    });
    out
}
