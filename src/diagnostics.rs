//! What an error means for the caller: its [`ErrorClass`] and its hints (the fix for the user).
//!
//! Stage modules return their own `thiserror` enums. At the use-case edge they become
//! `anyhow::Error`s; a [`Hint`] layer attached with [`ResultExt`] (or [`diagnose`] for errors
//! that implement [`Diagnose`]) carries the fix and the class. The library renders nothing:
//! the binary lays out `error:` / `caused by:` / `hint:` from [`messages`] and [`hints_of`] and
//! maps the class to an exit code.

use std::fmt;

/// What kind of failure an error is; the binary maps each class to its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Bad input, a usage error, an I/O failure, or an operation that failed.
    Failed,
    /// The work ran and found problems (the `check` gate of `image`).
    Findings,
    /// No Docker engine answered at the configured host.
    EngineUnreachable,
    /// The engine answered but the build failed.
    BuildFailed,
    /// The build succeeded but a push failed.
    PushFailed,
    /// Interrupted by Ctrl-C / SIGINT.
    Interrupted,
}

/// An error annotated with a fix for the user and the exit status it maps to.
///
/// It displays as the error it wraps and has that error as its source, so [`render`] folds it
/// away and only its hint shows.
#[derive(Debug)]
pub struct Hint {
    pub text: Option<String>,
    pub class: ErrorClass,
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

fn wrap(inner: anyhow::Error, text: Option<String>, class: ErrorClass) -> anyhow::Error {
    anyhow::Error::new(Hint { text, class, inner })
}

/// Stage errors that know their fix and class.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// One line telling the user what to do, if there is something to do.
    fn hint(&self) -> Option<String> {
        None
    }
    /// What kind of failure this is.
    fn class(&self) -> ErrorClass {
        ErrorClass::Failed
    }
}

/// Wraps a stage error into an `anyhow::Error` that carries its hint and class.
pub fn diagnose<E: Diagnose>(err: E) -> anyhow::Error {
    let (text, class) = (err.hint(), err.class());
    wrap(anyhow::Error::new(err), text, class)
}

/// Attach a hint or a class to any fallible result.
pub trait ResultExt<T> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T>;
    fn with_class(self, class: ErrorClass) -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            let class = class_of(&e);
            wrap(e, Some(text.into()), class)
        })
    }

    fn with_class(self, class: ErrorClass) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            wrap(e, None, class)
        })
    }
}

/// The class of an error: the outermost [`Hint`]'s, else [`ErrorClass::Failed`].
pub fn class_of(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(|c| c.downcast_ref::<Hint>().map(|h| h.class))
        .unwrap_or(ErrorClass::Failed)
}

/// Every hint attached along the chain, outermost first, each once.
pub fn hints_of(err: &anyhow::Error) -> Vec<String> {
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

/// The messages of an error's chain, outermost first, each said once (thiserror
/// `#[error(transparent)]` and `{0}` wrappers repeat their source).
pub fn messages(err: &anyhow::Error) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for c in err.chain() {
        let m = c.to_string();
        if messages
            .last()
            .is_some_and(|last| last == &m || last.ends_with(&m))
        {
            continue;
        }
        messages.push(m);
    }
    messages
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
    fn messages_cause_and_hint() {
        let e = diagnose(ReadFailed {
            path: "app/main.py".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"),
        });
        assert_eq!(
            messages(&e),
            vec![
                "cannot read app/main.py".to_string(),
                "permission denied".into()
            ]
        );
        assert_eq!(
            hints_of(&e),
            vec!["check the file's permissions".to_string()]
        );
        assert_eq!(class_of(&e), ErrorClass::Failed);
    }

    #[test]
    fn class_and_hint_attach_to_any_error() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("connection refused"));
        let e = r
            .hint("start dockerd")
            .with_class(ErrorClass::EngineUnreachable)
            .unwrap_err();
        assert_eq!(class_of(&e), ErrorClass::EngineUnreachable);
        assert_eq!(messages(&e), vec!["connection refused".to_string()]);
        assert_eq!(hints_of(&e), vec!["start dockerd".to_string()]);
    }
}
