//! Error rendering in the uv style: `error:` what happened, `caused by:` the chain, `hint:` the
//! fix — from the library's [`messages`] and [`hints_of`] — and the exit status of an error.

use super::exit::ExitStatus;
use super::theme::paint;
use ctxbuild::diagnostics::{class_of, hints_of, messages};

/// Formats an error for a person; `keep_hint` drops hints that do not apply (e.g. "rerun with
/// --progress plain" when progress was plain already).
pub fn render(err: &anyhow::Error, color: bool, keep_hint: &dyn Fn(&str) -> bool) -> String {
    let error_label = paint(color, "error:", console::Style::new().red().bold());
    let hint_label = paint(color, "hint:", console::Style::new().cyan().bold());
    let mut out = String::new();
    let mut it = messages(err).into_iter();
    out.push_str(&error_label);
    out.push(' ');
    out.push_str(&it.next().unwrap_or_else(|| "unknown error".to_string()));
    out.push('\n');
    for m in it {
        out.push_str("  caused by: ");
        out.push_str(&m);
        out.push('\n');
    }
    for h in hints_of(err).into_iter().filter(|h| keep_hint(h)) {
        out.push_str(&hint_label);
        out.push(' ');
        out.push_str(&h);
        out.push('\n');
    }
    out
}

/// [`render`] without colour, every hint kept.
pub fn plain(err: &anyhow::Error) -> String {
    render(err, false, &|_| true)
}

/// The exit status an error maps to.
pub fn status_of(err: &anyhow::Error) -> ExitStatus {
    class_of(err).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxbuild::diagnostics::{ErrorClass, ResultExt};

    #[test]
    fn renders_error_cause_and_hint() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("permission denied"));
        let e = r
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context("cannot read app/main.py"))
            .hint("check the file's permissions")
            .unwrap_err();
        assert_eq!(
            plain(&e),
            "error: cannot read app/main.py\n  caused by: permission denied\nhint: check the file's permissions\n"
        );
        assert_eq!(status_of(&e), ExitStatus::Error);
        let dropped = render(&e, false, &|h| !h.contains("permissions"));
        assert!(!dropped.contains("hint:"), "{dropped}");
    }

    #[test]
    fn colour_only_when_asked() {
        let e = anyhow::anyhow!("boom");
        assert_eq!(plain(&e), "error: boom\n");
        let styled = render(&e, true, &|_| true);
        assert!(styled.contains("\u{1b}["), "{styled:?}");
        assert!(styled.ends_with("boom\n"));
    }

    #[test]
    fn the_class_picks_the_exit_status() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("connection refused"));
        let e = r.with_class(ErrorClass::EngineUnreachable).unwrap_err();
        assert_eq!(status_of(&e), ExitStatus::EngineUnreachable);
        assert_eq!(status_of(&e).code(), 3);
    }
}
