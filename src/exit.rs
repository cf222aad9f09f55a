//! Exit statuses of the `ctxbuild` binary, in one place so the README and the code agree.
//!
//! Documented in the README's "Exit codes" table; changing a number is a breaking change.

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

    /// The more severe of two statuses, so a run can accumulate outcomes.
    pub fn max(self, other: ExitStatus) -> ExitStatus {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    fn severity(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
            ExitStatus::PushFailed => 3,
            ExitStatus::BuildFailed => 4,
            ExitStatus::EngineUnreachable => 5,
            ExitStatus::Interrupted => 6,
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
    fn codes_are_distinct() {
        let all = [
            ExitStatus::Success,
            ExitStatus::Findings,
            ExitStatus::Error,
            ExitStatus::EngineUnreachable,
            ExitStatus::BuildFailed,
            ExitStatus::PushFailed,
            ExitStatus::Interrupted,
        ];
        let mut codes: Vec<i32> = all.iter().map(|s| s.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn max_keeps_the_worse() {
        assert_eq!(
            ExitStatus::Success.max(ExitStatus::Findings),
            ExitStatus::Findings
        );
        assert_eq!(
            ExitStatus::Error.max(ExitStatus::Findings),
            ExitStatus::Error
        );
        assert_eq!(
            ExitStatus::Interrupted.max(ExitStatus::Error),
            ExitStatus::Interrupted
        );
    }
}
