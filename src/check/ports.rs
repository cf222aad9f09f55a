//! Ports: every default port the image carries (`${PORT:-N}` in the command, `--bind`/`--port`,
//! `EXPOSE`, `ENV PORT=`) must be the deploy's port — the 8001 vs 8080 auth outage — and the
//! server should follow Cloud Run's `$PORT` instead of a fixed number.

use super::dockerfile::{option_value, Parsed};
use super::{Finding, RuleId, ServiceCtx};
use crate::dockerfile::{shell, Keyword};

pub fn check(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    let want = cx.service.deploy_port();
    let mut out = Vec::new();
    let mismatch = |what: String, got: u16, line: usize| {
        cx.finding(
            RuleId::PortMismatch,
            p.loc(cx, line, Some("port")),
            format!("{what} defaults to port {got}, but the deploy sends traffic to {want}"),
            format!("use {want} (e.g. `--bind 0.0.0.0:${{PORT:-{want}}}`), or set the service's port in ctxbuild.toml to what the deploy uses"),
        )
    };

    if let Some(cmd) = p.command() {
        let line = cmd.at.line;
        let text = cmd.text();
        for d in port_defaults(&text) {
            if d != want {
                out.push(mismatch("the command's `$PORT`".to_string(), d, line));
            }
        }
        let words = cmd.program();
        let bind = option_value(&words, Some("-b"), "--bind").map(|(v, _)| v.to_string());
        let port_opt = option_value(&words, None, "--port").map(|(v, _)| v.to_string());
        let fixed = bind
            .as_deref()
            .and_then(|b| b.rsplit_once(':').map(|(_, p)| p.to_string()))
            .or(port_opt)
            .filter(|p| !p.contains('$'))
            .and_then(|p| p.parse::<u16>().ok());
        if let Some(n) = fixed {
            if n != want {
                out.push(mismatch(
                    format!("the server binds a fixed port and {}", cmd.at.keyword),
                    n,
                    line,
                ));
            } else {
                out.push(cx.finding(
                    RuleId::PortFixed,
                    p.loc(cx, line, None),
                    format!("the server binds port {n} literally and ignores $PORT, which Cloud Run sets"),
                    format!("bind `0.0.0.0:${{PORT:-{want}}}` through `sh -c` so $PORT wins when set"),
                ));
            }
        }
    }

    // EXPOSE and ENV are expanded by the builder with the stage's ARG/ENV defaults, so
    // `ARG PORT=8001` + `EXPOSE ${PORT}/tcp` exposes 8001: check what Docker would see.
    let escape = p.df.directives.escape;
    let mut env: Vec<(String, String)> = Vec::new();
    let body =
        p.df.stages()
            .last()
            .map(|s| s.body.clone())
            .unwrap_or_default();
    for e in &p.df.instructions[body] {
        match e.keyword {
            Keyword::Arg | Keyword::Env => {
                let Ok(kv) = e.key_values(escape) else {
                    continue;
                };
                for (k, v) in kv {
                    let Some(v) = v else { continue };
                    let v = shell::expand(&v, &env, escape).unwrap_or(v);
                    if e.keyword == Keyword::Env && k == "PORT" {
                        if let Ok(n) = v.parse::<u16>() {
                            if n != want {
                                out.push(mismatch("ENV PORT".into(), n, e.line));
                            }
                        }
                    }
                    env.push((k, v));
                }
            }
            Keyword::Expose => {
                let words =
                    shell::expand_words(&e.args, &env, escape).unwrap_or_else(|_| e.words());
                let ports: Vec<u16> = words
                    .iter()
                    .filter_map(|w| w.split('/').next().and_then(|n| n.parse().ok()))
                    .collect();
                if !ports.is_empty() && !ports.contains(&want) {
                    out.push(mismatch("EXPOSE".into(), ports[0], e.line));
                }
            }
            _ => {}
        }
    }
    out
}

/// Every `N` in `${PORT:-N}`, `${PORT-N}`, `${PORT:=N}` or `${PORT=N}` of a command: each is
/// the port the shell uses when `$PORT` is unset.
pub fn port_defaults(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${PORT") {
        rest = &rest[i + 6..];
        let r = [":-", ":=", "-", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op));
        if let Some(r) = r {
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            if r[digits.len()..].starts_with('}') {
                if let Ok(n) = digits.parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_in_text() {
        assert_eq!(
            port_defaults("--bind 0.0.0.0:${PORT:-8001} x ${PORT-9} ${PORT}"),
            [8001, 9]
        );
        assert_eq!(port_defaults("0.0.0.0:${PORT:=8001} ${PORT=7}"), [8001, 7]);
        assert!(port_defaults("${PORTS:-1}").is_empty());
        assert!(port_defaults("$PORT").is_empty());
    }
}
