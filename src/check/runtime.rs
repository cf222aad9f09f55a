//! What the container runs: gunicorn with an Uvicorn worker for ASGI services (the drift that
//! gave 503s), the deprecated worker class, variables in exec-form commands that no shell will
//! expand, and a gunicorn `--timeout` longer than the deploy's request timeout.
//!
//! Reads the final stage's effective ENTRYPOINT + CMD (see `dockerfile.rs`); ports are `ports.rs`.

use super::dockerfile::{basename, Parsed};
use super::{Finding, RuleId, ServiceCtx};
use crate::python::requirements;
use crate::service::config::Kind;
use crate::service::render::{WORKER_NEW, WORKER_OLD};

pub fn check(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(cmd) = p.command() else {
        if cx.service.kind == Kind::PythonAsgi {
            let line = p.df.instructions.last().map(|i| i.line).unwrap_or(1);
            out.push(cx.finding(
                RuleId::AsgiServer,
                p.loc(cx, line, None),
                format!("service `{}` has no CMD or ENTRYPOINT: the base image's CMD runs, and ctxbuild cannot see it offline, so nothing says the app is served", cx.service.name),
                fix_cmd(cx),
            ));
        }
        return out;
    };
    let line = cmd.at.line;

    // Exec form runs the program directly: `$PORT` reaches it as four literal characters.
    if !cmd.has_shell() {
        if let Some(arg) = cmd.argv.iter().find(|a| has_variable(a)) {
            out.push(cx.finding(
                RuleId::ExecFormVariable,
                p.loc(cx, line, None),
                format!("{} is in exec form, so `{arg}` is passed literally: no shell expands the variable", cmd.at.keyword),
                format!("wrap it in a shell that still hands over the process: [\"sh\", \"-c\", \"exec {}\"]", cmd.argv.join(" ")),
            ));
        }
    }

    let words = cmd.program();
    let gunicorn_at = words
        .iter()
        .position(|w| basename(w) == "gunicorn")
        .or_else(|| {
            words
                .windows(2)
                .position(|w| w[0] == "-m" && w[1] == "gunicorn")
                .map(|i| i + 1)
        });

    if cx.service.kind == Kind::PythonAsgi {
        let prog = words.first().map(|w| basename(w)).unwrap_or("");
        match gunicorn_at {
            None => {
                let what = if prog == "uvicorn"
                    || words.windows(2).any(|w| w[0] == "-m" && w[1] == "uvicorn")
                {
                    "runs uvicorn directly, without gunicorn supervising its workers".to_string()
                } else if prog.is_empty() {
                    "runs nothing recognisable".to_string()
                } else {
                    format!("runs `{prog}`, not gunicorn")
                };
                out.push(cx.finding(
                    RuleId::AsgiServer,
                    p.loc(cx, line, None),
                    format!("service `{}` {what}; the proven ASGI setup is gunicorn with an Uvicorn worker", cx.service.name),
                    fix_cmd(cx),
                ));
            }
            Some(g) => {
                let args = &words[g + 1..];
                let gconf = super::python::gunicorn_config(cx, p, args);
                let worker_setting = gconf.settings.worker_class.as_ref();
                let worker = worker_setting.map(|w| w.value.text());
                // Where the worker class was chosen: the command, GUNICORN_CMD_ARGS, or a line
                // of gunicorn's config file.
                let wloc = |key| match worker_setting {
                    Some(w) => super::python::setting_loc(cx, p, &gconf, w, line, key),
                    None => p.loc(cx, line, key),
                };
                let unknown_config = gconf.unreadable.is_some();
                match worker.as_deref() {
                    Some(w) if w.ends_with("UvicornWorker") || w.ends_with("UvicornH11Worker") => {
                        if w.starts_with("uvicorn.workers.") {
                            out.push(cx.finding(
                                RuleId::UvicornWorkerDeprecated,
                                wloc(Some("requirements")),
                                format!("`{w}` is deprecated since uvicorn 0.30 (it still works)"),
                                format!(
                                    "add `uvicorn-worker` to {} and use `-k {WORKER_NEW}`",
                                    requirements_name(cx)
                                ),
                            ));
                        } else if w.starts_with("uvicorn_worker.") {
                            // A ctxbuild render (template v2+) installs uvicorn-worker itself
                            // when the project does not (python::servers), whatever the source.
                            let installed_by_template = p.text.rendered
                                || crate::service::render::generated_by(&p.text.text)
                                    .is_some_and(|(_, _, v)| v >= 2);
                            match requirements_mention(cx, "uvicorn-worker")
                                .filter(|_| !installed_by_template)
                                .or(installed_by_template.then_some(true))
                            {
                                Some(true) => {}
                                Some(false) => out.push(cx.finding(
                                    RuleId::AsgiServer,
                                    wloc(Some("requirements")),
                                    format!("`{w}` comes from the uvicorn-worker package, which {} does not list: gunicorn will fail to load the worker", requirements_name(cx)),
                                    format!("add `uvicorn-worker` to {}, or use `-k {WORKER_OLD}`", requirements_name(cx)),
                                )),
                                // Without the file the worker package cannot be verified: say so
                                // rather than pass silently where a wrong file would fail.
                                None => out.push(cx.finding(
                                    RuleId::RequirementsMissing,
                                    cx.config_loc("requirements"),
                                    format!("service `{}`: the requirements file {} does not exist, so the uvicorn-worker package that `{w}` needs cannot be verified", cx.service.name, requirements_name(cx)),
                                    format!("create {} with fastapi, gunicorn, uvicorn and uvicorn-worker, or set `requirements` to the right file", requirements_name(cx)),
                                )),
                            }
                        }
                    }
                    // A config file ctxbuild cannot read may set the worker: say nothing.
                    None if unknown_config => {}
                    other => {
                        let what = match (other, worker_setting) {
                            (Some(w), Some(s)) => format!("the `{w}` worker (set in {})", super::python::origin_words(cx, s)),
                            _ => "gunicorn's default sync (WSGI) worker (no `-k` on the command line, in GUNICORN_CMD_ARGS or in gunicorn.conf.py)".to_string(),
                        };
                        out.push(cx.finding(
                            RuleId::AsgiServer,
                            wloc(None),
                            format!("gunicorn runs {what}, which cannot serve the ASGI app of `{}`", cx.service.name),
                            format!("pass `-k {WORKER_NEW}` (with uvicorn-worker in {}) — or re-render with `ctxbuild render {}`", requirements_name(cx), cx.service.name),
                        ));
                    }
                }
            }
        }
    }

    if let (Some(g), Some(deploy)) = (gunicorn_at, &cx.service.deploy) {
        let gconf = super::python::gunicorn_config(cx, p, &words[g + 1..]);
        let set = gconf.settings.timeout.as_ref();
        let timeout = set
            .and_then(|t| t.value.text().parse::<u32>().ok())
            .unwrap_or(30);
        let loc = match set {
            Some(s) => super::python::setting_loc(cx, p, &gconf, s, line, Some("timeout")),
            None => p.loc(cx, line, Some("timeout")),
        };
        if timeout > deploy.request_timeout {
            out.push(cx.finding(
                RuleId::GunicornTimeout,
                loc,
                format!(
                    "gunicorn --timeout {timeout} s is longer than the deploy's request timeout of {} s: Cloud Run cuts requests before gunicorn would",
                    deploy.request_timeout
                ),
                format!("lower the gunicorn timeout to at most {} s, or raise deploy.request_timeout", deploy.request_timeout),
            ));
        }
    }
    out
}

/// `$X`, `${X}` (not `$$` or a lone `$`).
pub fn has_variable(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(2)
        .any(|w| w[0] == b'$' && (w[1] == b'{' || w[1] == b'_' || w[1].is_ascii_alphabetic()))
}

fn fix_cmd(cx: &ServiceCtx) -> String {
    format!(
        "CMD [\"sh\", \"-c\", \"exec gunicorn {} -w {} -k {WORKER_NEW} --bind 0.0.0.0:${{PORT:-{}}} --timeout {} --access-logfile - --error-logfile -\"], or `ctxbuild render {}`",
        cx.service.app.as_deref().unwrap_or("main:app"),
        cx.service.workers,
        cx.service.deploy_port(),
        cx.service.timeout,
        cx.service.name
    )
}

fn requirements_name(cx: &ServiceCtx) -> String {
    cx.display(&cx.service.requirements.to_string_lossy())
}

/// Whether the service's requirements list `package`; `None` when there is no such file.
fn requirements_mention(cx: &ServiceCtx, package: &str) -> Option<bool> {
    let text = crate::fsutil::read_text(&cx.context_dir.join(&cx.service.requirements)).ok()?;
    Some(requirements::mentions(&text, package))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables() {
        assert!(has_variable("0.0.0.0:$PORT"));
        assert!(has_variable("${PORT:-8080}"));
        assert!(!has_variable("cost$"));
        assert!(!has_variable("$1"));
    }
}
