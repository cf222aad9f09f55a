//! Error rendering in the uv style: `error:` what happened, `caused by:` the chain, `hint:` the fix.
//!
//! Stage modules return their own `thiserror` enums. At the command edge they become
//! `anyhow::Error`s; a [`Hint`] layer attached with [`ResultExt`] (or [`diagnose`] for errors
//! that implement [`Diagnose`]) carries the fix and the exit status. [`render`] is the only
//! place that formats an error for a person.

use crate::exit::ExitStatus;
use std::fmt;

/// An error annotated with a fix for the user and the exit status it maps to.
///
/// It displays as the error it wraps and has that error as its source, so [`render`] folds it
/// away and only its hint shows.
#[derive(Debug)]
pub struct Hint {
    pub text: Option<String>,
    pub status: ExitStatus,
    inner: anyhow::Error,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl std::error::Error for Hint {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The wrapped error itself; `render` folds the repeated message.
        Some(self.inner.as_ref())
    }
}

fn wrap(inner: anyhow::Error, text: Option<String>, status: ExitStatus) -> anyhow::Error {
    anyhow::Error::new(Hint {
        text,
        status,
        inner,
    })
}

/// Stage errors that know their fix and exit status.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// One line telling the user what to do, if there is something to do.
    fn hint(&self) -> Option<String> {
        None
    }
    /// The exit status this error maps to.
    fn status(&self) -> ExitStatus {
        ExitStatus::Error
    }
}

/// Wraps a stage error into an `anyhow::Error` that carries its hint and status.
pub fn diagnose<E: Diagnose>(err: E) -> anyhow::Error {
    let (text, status) = (err.hint(), err.status());
    wrap(anyhow::Error::new(err), text, status)
}

/// Attach a hint or a status to any fallible result.
pub trait ResultExt<T> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T>;
    fn with_status(self, status: ExitStatus) -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            let status = status_of(&e);
            wrap(e, Some(text.into()), status)
        })
    }

    fn with_status(self, status: ExitStatus) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            wrap(e, None, status)
        })
    }
}

/// The exit status an error maps to: the outermost [`Hint`]'s, else [`ExitStatus::Error`].
pub fn status_of(err: &anyhow::Error) -> ExitStatus {
    err.chain()
        .find_map(|c| c.downcast_ref::<Hint>().map(|h| h.status))
        .unwrap_or(ExitStatus::Error)
}

fn hints_of(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in err.chain() {
        if let Some(Hint { text: Some(t), .. }) = c.downcast_ref::<Hint>() {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// Formats an error for a person: `error: …`, then `  caused by: …` lines, then `hint: …` lines.
pub fn render(err: &anyhow::Error) -> String {
    render_styled(err, false)
}

/// [`render`], with `error:` in bold red and `hint:` in bold cyan when `color` is on.
pub fn render_styled(err: &anyhow::Error, color: bool) -> String {
    let label = |text: &str, style: console::Style| {
        if color {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_string()
        }
    };
    let error_label = label("error:", console::Style::new().red().bold());
    let hint_label = label("hint:", console::Style::new().cyan().bold());
    let mut messages: Vec<String> = Vec::new();
    for c in err.chain() {
        let m = c.to_string();
        // thiserror `#[error(transparent)]` and `{0}` wrappers repeat their source; say it once.
        if messages
            .last()
            .is_some_and(|last| last == &m || last.ends_with(&m))
        {
            continue;
        }
        messages.push(m);
    }
    let mut out = String::new();
    let mut it = messages.into_iter();
    out.push_str(&error_label);
    out.push(' ');
    out.push_str(&it.next().unwrap_or_else(|| "unknown error".to_string()));
    out.push('\n');
    for m in it {
        out.push_str("  caused by: ");
        out.push_str(&m);
        out.push('\n');
    }
    for h in hints_of(err) {
        out.push_str(&hint_label);
        out.push(' ');
        out.push_str(&h);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}")]
    struct ReadFailed {
        path: String,
        #[source]
        source: std::io::Error,
    }

    impl Diagnose for ReadFailed {
        fn hint(&self) -> Option<String> {
            Some("check the file's permissions".into())
        }
    }

    #[test]
    fn renders_error_cause_and_hint() {
        let e = diagnose(ReadFailed {
            path: "app/main.py".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"),
        });
        let text = render(&e);
        assert_eq!(
            text,
            "error: cannot read app/main.py\n  caused by: permission denied\nhint: check the file's permissions\n"
        );
        assert_eq!(status_of(&e), ExitStatus::Error);
    }

    #[test]
    fn colour_only_when_asked() {
        let e = anyhow::anyhow!("boom");
        assert_eq!(render_styled(&e, false), "error: boom\n");
        let styled = render_styled(&e, true);
        assert!(styled.contains("\u{1b}["), "{styled:?}");
        assert!(styled.ends_with("boom\n"));
    }

    #[test]
    fn status_and_hint_attach_to_any_error() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("connection refused"));
        let e = r
            .hint("start dockerd")
            .with_status(ExitStatus::EngineUnreachable)
            .unwrap_err();
        assert_eq!(status_of(&e), ExitStatus::EngineUnreachable);
        assert_eq!(
            render(&e),
            "error: connection refused\nhint: start dockerd\n"
        );
    }
}
