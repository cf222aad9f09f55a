//! The Python project behind a python-asgi service, read offline through [`crate::python`]:
//! does `app` name a real module-level attribute, does the image install the server its CMD
//! runs (or what does the rendered template add), does a configured `health_path` exist in the
//! source, and what gunicorn's own configuration (`gunicorn.conf.py`, `-c`,
//! `GUNICORN_CMD_ARGS`) makes it run — which `runtime.rs` and `ports.rs` judge.
//!
//! The gunicorn config file is looked up in the context at the path the image's WORKDIR holds
//! it: the code is assumed copied to the WORKDIR (`COPY . .`), as in every template and
//! almost every hand-written Dockerfile.

use super::dockerfile::{basename, Parsed};
use super::{Finding, RuleId, ServiceCtx};
use crate::dockerfile::{shell, Instruction, Keyword};
use crate::python::gunicorn::{self, Origin, Setting, Settings};
use crate::python::{self as py, servers::Server, DepsSettings, Servers};
use crate::service::config::Kind;
use crate::service::render;
use std::path::{Path, PathBuf};

/// `app` resolved against the context as gunicorn would import it.
pub fn check_app(cx: &ServiceCtx) -> Vec<Finding> {
    let (Kind::PythonAsgi, Some(app)) = (cx.service.kind, cx.service.app.as_deref()) else {
        return Vec::new();
    };
    let Err(e) = py::app::resolve(&cx.context_dir, app) else {
        return Vec::new();
    };
    let fix = match e.suggestion() {
        Some(s) => format!("set `app = \"{s}\"` in {}", cx.config.path.display()),
        None => format!(
            "set `app` in {} to the module (a file or package under {}) and the ASGI object it binds at module level, e.g. `main:app`",
            cx.config.path.display(),
            cx.display(".")
        ),
    };
    vec![cx.finding(
        RuleId::AppUnresolved,
        cx.config_loc("app"),
        format!(
            "service `{}`: app {e}; gunicorn would fail to import it at boot",
            cx.service.name
        ),
        fix,
    )]
}

/// How the configuration chooses the dependency source (the template's own rule).
fn deps_settings(cx: &ServiceCtx) -> DepsSettings {
    DepsSettings {
        source: cx.service.dependencies.clone(),
        requirements: Some(cx.service.requirements.clone()),
        requirements_configured: cx.service.positions.contains_key("requirements"),
    }
}

/// Whether the Dockerfile is one ctxbuild's template (v2+) produced, which installs the
/// server packages itself.
fn from_template(p: &Parsed) -> bool {
    p.text.rendered || render::generated_by(&p.text.text).is_some_and(|(_, _, v)| v >= 2)
}

/// A hand-written CMD that runs a server nothing installs is an error; for the template, a
/// note of the packages it adds.
pub fn check_servers(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    if cx.service.kind != Kind::PythonAsgi {
        return Vec::new();
    }
    if from_template(p) {
        let Ok(plan) = render::install_plan(cx.config, cx.service) else {
            return Vec::new(); // requirements-missing and friends say why.
        };
        if plan.servers.is_empty() {
            return Vec::new();
        }
        let pins: Vec<String> = plan.servers.iter().map(|s| s.requirement()).collect();
        return vec![cx.finding(
            RuleId::TemplateInstalls,
            cx.config_loc(""),
            format!(
                "the image installs {} (not in {}), in its own layer before the project's dependencies",
                pins.join(" "),
                source_name(cx, &plan.source, plan.requirements_file.as_deref())
            ),
            "nothing to do; list them in the project's dependencies to choose the versions yourself",
        )];
    }
    let Some(cmd) = p.command() else {
        return Vec::new();
    };
    let words = cmd.program();
    let runs = |name: &str| {
        words.first().is_some_and(|w| basename(w) == name)
            || words.windows(2).any(|w| w[0] == "-m" && w[1] == name)
    };
    let server = if runs("gunicorn") {
        Server::Gunicorn
    } else if runs("uvicorn") {
        Server::Uvicorn
    } else {
        return Vec::new();
    };
    let name = server.package();
    if installed_by_dockerfile(p, name) {
        return Vec::new();
    }
    let mut sources = Vec::new();
    let mut provided = false;
    if let Ok(deps) = py::analyse(&cx.context_dir, &deps_settings(cx)) {
        provided |= provides(&Servers::of(&deps), server);
        sources.push(source_name(
            cx,
            &deps.source,
            deps.requirements_file
                .as_deref()
                .map(|p| p.to_string_lossy())
                .as_deref(),
        ));
    }
    for file in requirement_files(p) {
        let Ok(text) = crate::fsutil::read_text(&cx.context_dir.join(&file)) else {
            continue;
        };
        let reqs = crate::python::requirements::parse(&text);
        provided |= provides(&Servers::of_requirements(&reqs), server);
        sources.push(cx.display(&file.to_string_lossy()));
    }
    if provided {
        return Vec::new();
    }
    sources.dedup();
    let from = if sources.is_empty() {
        "no dependency file of the context".to_string()
    } else {
        sources.join(" and ")
    };
    vec![cx.finding(
        RuleId::ServerNotInstalled,
        p.loc(cx, cmd.at.line, None),
        format!(
            "{} runs {name}, but {from} never installs it: the container exits at boot with `exec: {name}: not found`",
            cmd.at.keyword
        ),
        format!(
            "add `{name}`{} to {from}, or remove the `dockerfile` key to build the rendered template, which installs the server",
            if server == Server::Gunicorn { " and `uvicorn-worker`" } else { "" }
        ),
    )]
}

/// `uvicorn-worker` depends on both gunicorn and uvicorn.
fn provides(s: &Servers, server: Server) -> bool {
    s.get(server).is_some() || s.get(Server::UvicornWorker).is_some()
}

/// How messages name where dependencies come from.
fn source_name(cx: &ServiceCtx, source: &py::DependencySource, req: Option<&str>) -> String {
    match source {
        py::DependencySource::Uv => cx.display(py::deps::UV_LOCK),
        py::DependencySource::Pyproject => cx.display(py::deps::PYPROJECT),
        py::DependencySource::Requirements => {
            cx.display(req.unwrap_or(&cx.service.requirements.to_string_lossy()))
        }
        py::DependencySource::None => "the project (it declares no dependencies)".into(),
    }
}

/// Whether a RUN of the Dockerfile installs `package` by name (`pip install gunicorn`), or the
/// base image's name says it ships it (`tiangolo/uvicorn-gunicorn-fastapi`).
fn installed_by_dockerfile(p: &Parsed, package: &str) -> bool {
    let mentions = |text: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .any(|w| w.eq_ignore_ascii_case(package))
    };
    p.df.instructions.iter().any(|i| match i.keyword {
        Keyword::Run => i.args.contains("install") && mentions(&i.args),
        Keyword::From => mentions(&i.args),
        _ => false,
    })
}

/// The files RUN steps install with `pip install -r FILE` (as written, relative to the context
/// when the image's WORKDIR holds the context's files).
fn requirement_files(p: &Parsed) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for i in
        p.df.instructions
            .iter()
            .filter(|i| i.keyword == Keyword::Run)
    {
        let words = super::dockerfile::shell_words(&i.args);
        for (k, w) in words.iter().enumerate() {
            let file = match w.as_str() {
                "-r" | "--requirement" => words.get(k + 1).map(String::as_str),
                _ => w
                    .strip_prefix("--requirement=")
                    .or_else(|| w.strip_prefix("-r").filter(|r| !r.is_empty())),
            };
            if let Some(f) = file.filter(|f| !f.contains('$')) {
                let rel = f.trim_start_matches("./");
                let rel = workdir_relative(p, rel);
                out.push(rel);
            }
        }
    }
    out
}

/// An image path as a context path: absolute paths under the final WORKDIR lose that prefix.
fn workdir_relative(p: &Parsed, path: &str) -> PathBuf {
    let workdir = final_workdir(p);
    let path = Path::new(path);
    match (&workdir, path.is_absolute()) {
        (Some(w), true) => path
            .strip_prefix(w)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

fn final_workdir(p: &Parsed) -> Option<PathBuf> {
    p.last(Keyword::Workdir)
        .map(|w| PathBuf::from(w.args.trim()))
        .filter(|w| w.is_absolute())
}

/// A configured `health_path` the source never mentions: the template's HEALTHCHECK then
/// requests a route that answers 404, and the container turns `unhealthy`.
pub fn check_health(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    if cx.service.kind != Kind::PythonAsgi
        || !cx.service.positions.contains_key("health_path")
        || !from_template(p)
    {
        return Vec::new();
    }
    let path = &cx.service.health_path;
    if py::health::find_mention(&cx.context_dir, path).is_some()
        || path.trim_matches('/').is_empty()
    {
        return Vec::new();
    }
    vec![cx.finding(
        RuleId::HealthPathUnmentioned,
        cx.config_loc("health_path"),
        format!(
            "health_path `{path}` appears in no Python file of {}: the HEALTHCHECK would get a 404 and the container turn `unhealthy`",
            cx.display(".")
        ),
        format!("add the route (`@app.get(\"{path}\")`), or remove `health_path` so the default HEALTHCHECK accepts any answer of a running app"),
    )]
}

/// A Python image that compiles no bytecode during the build: uv installs none, `pip
/// --no-compile` none, and the app's own modules never get any, so each cold start compiles them
/// before the port answers (`smoke` measures it). A `compileall` RUN, uv's `--compile-bytecode`
/// or `UV_COMPILE_BYTECODE` count as compiling.
pub fn check_bytecode(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    if cx.service.kind != Kind::PythonAsgi {
        return Vec::new();
    }
    let instructions = &p.df.instructions;
    let runs = || instructions.iter().filter(|i| i.keyword == Keyword::Run);
    if runs().any(|i| i.args.contains("compileall")) {
        return Vec::new();
    }
    if from_template(p) {
        // The template always compiles unless told not to (or rendered before it did).
        let why = if cx.service.compile_bytecode {
            "it was rendered by a template without the compile step"
        } else {
            "`compile_bytecode = false`"
        };
        return vec![cx.finding(
            RuleId::BytecodeMissing,
            if p.text.rendered { cx.config_loc("compile_bytecode") } else { (p.text.display.clone(), Some(1)) },
            format!("service `{}`: the image compiles no bytecode at build time ({why}): every cold start compiles the app's modules (and, with uv, every dependency) before the port answers", cx.service.name),
            "remove `compile_bytecode = false` (the default compiles with `compileall --invalidation-mode unchecked-hash`), and re-render a committed Dockerfile",
        )];
    }
    let uv_compiles = instructions
        .iter()
        .any(|i| i.keyword == Keyword::Env && i.args.contains("UV_COMPILE_BYTECODE"));
    let culprit = runs().find(|i| {
        let a = &i.args;
        (a.contains("pip install") && a.contains("--no-compile"))
            || ((a.contains("uv sync") || a.contains("uv pip install"))
                && !a.contains("--compile-bytecode")
                && !uv_compiles)
    });
    let Some(i) = culprit else {
        return Vec::new();
    };
    vec![cx.finding(
        RuleId::BytecodeMissing,
        p.loc(cx, i.line, None),
        format!("service `{}`: this install leaves the dependencies without bytecode and no `compileall` follows: every cold start compiles them before the port answers", cx.service.name),
        "add `RUN python -m compileall -q --invalidation-mode unchecked-hash <site-packages> /app` after the install (deterministic, so the cache holds), or pass uv `--compile-bytecode`",
    )]
}

/// What gunicorn runs with for a command whose arguments after `gunicorn` are `args`.
pub struct GunicornConfig {
    pub settings: Settings,
    /// The line of the `ENV GUNICORN_CMD_ARGS` that applies.
    pub env_line: Option<usize>,
    /// A `-c` file that cannot be read (then the worker and bind are unknown).
    pub unreadable: Option<String>,
}

/// gunicorn's effective settings: `gunicorn.conf.py` (or `-c FILE`) in the WORKDIR, then
/// `GUNICORN_CMD_ARGS` from the final stage's ENV, then the command line.
pub fn gunicorn_config(cx: &ServiceCtx, p: &Parsed, args: &[String]) -> GunicornConfig {
    let env = gunicorn_env(p);
    let mut given = gunicorn::parse_args(args, Origin::CommandLine).config;
    if given.is_none() {
        if let Some((v, _)) = &env {
            given = gunicorn::parse_args(&gunicorn::split_env_args(v), Origin::EnvArgs).config;
        }
    }
    let rel = given.as_deref().map(|c| {
        let c = c.strip_prefix("file:").unwrap_or(c);
        workdir_relative(p, c).to_string_lossy().into_owned()
    });
    let mut unreadable = None;
    let file = match gunicorn::config_file(&cx.context_dir, Path::new(""), rel.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            unreadable = Some(e.to_string());
            None
        }
    };
    if given.as_deref().is_some_and(|c| c.starts_with("python:")) {
        unreadable = Some(format!(
            "`{}` is a Python module",
            given.unwrap_or_default()
        ));
    }
    GunicornConfig {
        settings: gunicorn::effective(file, env.as_ref().map(|(v, _)| v.as_str()), args),
        env_line: env.map(|(_, l)| l),
        unreadable,
    }
}

/// The value and line of the last `ENV GUNICORN_CMD_ARGS` applying to the final stage.
fn gunicorn_env(p: &Parsed) -> Option<(String, usize)> {
    let escape = p.df.directives.escape;
    p.final_stage_chain()
        .into_iter()
        .filter(|i: &&Instruction| i.keyword == Keyword::Env)
        .find_map(|i| {
            let kv = i.key_values(escape).ok()?;
            kv.into_iter()
                .rev()
                .find(|(k, _)| k == "GUNICORN_CMD_ARGS")
                .and_then(|(_, v)| v)
                // ENV values are quoted and expanded by the builder: `"-k a --bind b"`.
                .map(|v| {
                    let none: Vec<(String, String)> = Vec::new();
                    (shell::expand(&v, &none, escape).unwrap_or(v), i.line)
                })
        })
}

/// Where a gunicorn setting was made: its line in the config file, the ENV line, or the command.
pub fn setting_loc(
    cx: &ServiceCtx,
    p: &Parsed,
    g: &GunicornConfig,
    s: &Setting,
    cmd_line: usize,
    config_key: Option<&str>,
) -> (String, Option<u32>) {
    match &s.origin {
        Origin::File { path, line } => (cx.display(&path.to_string_lossy()), Some(*line as u32)),
        Origin::EnvArgs => p.loc(cx, g.env_line.unwrap_or(cmd_line), config_key),
        Origin::CommandLine => p.loc(cx, cmd_line, config_key),
    }
}

/// Where a setting was made, in words (`gunicorn.conf.py:3`, `GUNICORN_CMD_ARGS`, the command).
pub fn origin_words(cx: &ServiceCtx, s: &Setting) -> String {
    match &s.origin {
        Origin::File { path, line } => format!("{}:{line}", cx.display(&path.to_string_lossy())),
        Origin::EnvArgs => "GUNICORN_CMD_ARGS".into(),
        Origin::CommandLine => "the command line".into(),
    }
}
