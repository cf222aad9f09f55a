//! Exit statuses of the `ctxbuild` binary, in one place so the README and the code agree.
//!
//! Documented in the README's "Exit codes" table; changing a number is a breaking change. The
//! library classifies its errors ([`ErrorClass`]); this maps each class to its status.

use ctxbuild::diagnostics::ErrorClass;

/// How a `ctxbuild` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// Everything went as asked.
    Success,
    /// The run worked and found something: `clean --check` saw pollution, `check` reported errors.
    Findings,
    /// Bad input, a usage error, or an operation that failed (some of it may have succeeded).
    Error,
    /// No Docker engine answered at the configured host.
    EngineUnreachable,
    /// The engine answered but the build failed (a RUN failed, a syntax error, the daemon died).
    BuildFailed,
    /// The build succeeded but a push failed.
    PushFailed,
    /// Interrupted by Ctrl-C / SIGINT (the shell convention 128 + 2).
    Interrupted,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
            ExitStatus::EngineUnreachable => 3,
            ExitStatus::BuildFailed => 4,
            ExitStatus::PushFailed => 5,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ErrorClass> for ExitStatus {
    fn from(class: ErrorClass) -> ExitStatus {
        match class {
            ErrorClass::Failed => ExitStatus::Error,
            ErrorClass::Findings => ExitStatus::Findings,
            ErrorClass::EngineUnreachable => ExitStatus::EngineUnreachable,
            ErrorClass::BuildFailed => ExitStatus::BuildFailed,
            ErrorClass::PushFailed => ExitStatus::PushFailed,
            ErrorClass::Interrupted => ExitStatus::Interrupted,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        // Codes are all within 0..=255.
        std::process::ExitCode::from(s.code() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_the_documented_code() {
        let codes: Vec<i32> = [
            ErrorClass::Findings,
            ErrorClass::Failed,
            ErrorClass::EngineUnreachable,
            ErrorClass::BuildFailed,
            ErrorClass::PushFailed,
            ErrorClass::Interrupted,
        ]
        .into_iter()
        .map(|c| ExitStatus::from(c).code())
        .collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 130]);
        assert_eq!(ExitStatus::Success.code(), 0);
    }
}
