//! Typed errors of the engine stage and the exit status each maps to.
//!
//! Connection problems (nothing answers, the socket refuses us), API errors (the engine answered
//! with an HTTP error), build failures (the HTTP 200 build stream reported an error, or the
//! connection died mid-build) and push failures (auth vs network) stay apart, because each needs
//! a different fix. bollard's error type never leaves this module: it is classified here.

use super::host::{HostError, HostSource};
use crate::diagnostics::Diagnose;
use crate::diagnostics::ErrorClass;
use std::fmt;

/// Any error as a boxed source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A build step as the daemon numbers it ("Step 3/9 : COPY . /app").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepRef {
    pub number: usize,
    pub total: usize,
    pub instruction: String,
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {}/{} `{}`",
            self.number, self.total, self.instruction
        )
    }
}

/// Why a push was rejected: the fix differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFailure {
    /// The registry refused our credentials (or we had none).
    Auth,
    /// The registry could not be reached.
    Network,
    /// Anything else the registry or engine said.
    Other,
}

/// Errors of the engine stage.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Host(#[from] HostError),

    #[error("cannot reach the Docker engine at {host} ({from})")]
    Unreachable {
        host: String,
        from: HostSource,
        #[source]
        cause: BoxError,
    },

    #[error("permission denied on the Docker socket {host} ({from})")]
    PermissionDenied {
        host: String,
        from: HostSource,
        #[source]
        cause: BoxError,
    },

    #[error("cannot set up TLS to the Docker engine at {host}")]
    Tls {
        host: String,
        #[source]
        cause: BoxError,
    },

    #[error("the Docker engine at {host} refused `{request}`: {message} (HTTP {status})")]
    Api {
        host: String,
        request: String,
        status: u16,
        message: String,
    },

    #[error("the Docker engine rejected the build: {message}")]
    BuildRejected { status: u16, message: String },

    #[error("{}", build_failed_message(.step.as_ref(), .message, *.code, .tail))]
    BuildFailed {
        step: Option<StepRef>,
        /// The daemon's message, e.g. "The command '/bin/sh -c exit 3' returned a non-zero code: 3".
        message: String,
        /// The failing command's exit code, when the daemon gave one.
        code: Option<i64>,
        /// The last lines the step printed.
        tail: Vec<String>,
    },

    #[error("the connection to the Docker engine at {host} broke {}: the engine may have stopped or restarted", match .step { Some(s) => format!("during {s}"), None => "mid-build".to_string() })]
    Disconnected {
        host: String,
        step: Option<StepRef>,
        #[source]
        cause: BoxError,
    },

    /// The engine answered the build with something that is not its JSON message stream (a
    /// proxy's error page, a broken or hostile engine). The connection itself was fine.
    #[error("the Docker engine at {host} sent a malformed build stream {}: {message}", match .step { Some(s) => format!("during {s}"), None => "before the first step".to_string() })]
    MalformedStream {
        host: String,
        step: Option<StepRef>,
        message: String,
    },

    #[error("cannot produce the build context")]
    Context {
        #[source]
        cause: BoxError,
    },

    #[error("interrupted")]
    Interrupted,

    #[error("push of {tag} failed: {message}")]
    Push {
        tag: String,
        kind: PushFailure,
        message: String,
    },

    #[error("credential helper `docker-credential-{helper}` failed for {registry}: {message}")]
    CredentialHelper {
        helper: String,
        registry: String,
        message: String,
    },

    #[error("cannot read the Docker config {path}: {message}")]
    DockerConfigFile { path: String, message: String },

    #[error("the Docker engine at {host} failed: {message}")]
    Other { host: String, message: String },
}

fn build_failed_message(
    step: Option<&StepRef>,
    message: &str,
    code: Option<i64>,
    tail: &[String],
) -> String {
    let mut s = match (step, code) {
        (Some(step), Some(code)) => format!("{step} failed with exit code {code}"),
        (Some(step), None) => format!("{step} failed: {message}"),
        (None, _) => format!("the build failed: {message}"),
    };
    if !tail.is_empty() {
        s.push_str("\n  last output:");
        for line in tail {
            s.push_str("\n    | ");
            s.push_str(line);
        }
    }
    s
}

/// Whether a step is a `FROM`: its failure (without an exit code) means the image was not found.
impl EngineError {
    /// A `FROM` step failed without running anything: its base image could not be had. (Only
    /// the caller knows whether `--base-image` would apply, so the hint never names it.)
    pub fn is_unpullable_base(&self) -> bool {
        matches!(
            self,
            EngineError::BuildFailed {
                step: Some(step),
                code: None,
                ..
            } if is_from(step)
        )
    }
}

fn is_from(step: &StepRef) -> bool {
    step.instruction
        .split_whitespace()
        .next()
        .is_some_and(|k| k.eq_ignore_ascii_case("from"))
}

impl Diagnose for EngineError {
    fn hint(&self) -> Option<String> {
        match self {
            EngineError::Host(e) => e.hint(),
            EngineError::Unreachable { host, from, .. } => Some(match from {
                HostSource::Default => format!(
                    "start a Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST / --host at a running one (tried {host})"
                ),
                _ if host.starts_with("unix://") || host.starts_with('/') => {
                    "check that the socket path is right and that dockerd runs there, or unset it to use /var/run/docker.sock".to_string()
                }
                _ => "check that dockerd listens there (`dockerd -H tcp://0.0.0.0:2375` or ssh access) and that nothing blocks the port".to_string(),
            }),
            EngineError::PermissionDenied { .. } => Some(
                "set DOCKER_HOST to an engine you may use, or add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again)".into(),
            ),
            EngineError::Tls { .. } => Some(
                "DOCKER_CERT_PATH must hold ca.pem, cert.pem and key.pem for the engine (as for `docker --tlsverify`)".into(),
            ),
            EngineError::BuildRejected { .. } => Some(
                "fix the Dockerfile; `ctxbuild check` lints it before a build".into(),
            ),
            EngineError::BuildFailed {
                step: Some(step),
                code: None,
                ..
            } if is_from(step) => Some(format!(
                "the base image of `{}` is neither local nor pullable from here: pull or build it where the engine can see it, or change the FROM line",
                step.instruction
            )),
            EngineError::BuildFailed {
                step: None,
                message,
                ..
            } if message.contains("resolve image config for")
                && message.contains("docker/dockerfile") =>
            {
                Some(
                    "a `# syntax=` line makes BuildKit pull that frontend image, and the engine cannot pull it: remove the line to use the engine's built-in Dockerfile frontend, or make the image pullable"
                        .into(),
                )
            }
            EngineError::BuildFailed { code: Some(_), .. } => Some(
                "rerun with --progress plain to see the whole output of the failing step".into(),
            ),
            EngineError::Disconnected { .. } => Some(
                "check the engine's logs (`journalctl -u docker`) and run the build again; the layers already built are cached".into(),
            ),
            EngineError::MalformedStream { .. } => Some(
                "check that DOCKER_HOST points at a Docker engine and not at a proxy or another service".into(),
            ),
            EngineError::Push { kind: PushFailure::Auth, tag, .. } => Some(format!(
                "log in first: `docker login {}` (or configure a credential helper in ~/.docker/config.json)",
                super::reference::registry_of(tag)
            )),
            EngineError::Push { kind: PushFailure::Network, .. } => Some(
                "check that the registry is up and reachable from the engine (the engine pushes, not ctxbuild)".into(),
            ),
            EngineError::CredentialHelper { helper, .. } => Some(format!(
                "check that docker-credential-{helper} is on PATH and logged in, or remove it from ~/.docker/config.json"
            )),
            _ => None,
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            EngineError::Unreachable { .. }
            | EngineError::PermissionDenied { .. }
            | EngineError::Tls { .. } => ErrorClass::EngineUnreachable,
            EngineError::BuildRejected { .. }
            | EngineError::BuildFailed { .. }
            | EngineError::Disconnected { .. }
            | EngineError::MalformedStream { .. } => ErrorClass::BuildFailed,
            EngineError::Push { .. } | EngineError::CredentialHelper { .. } => {
                ErrorClass::PushFailed
            }
            EngineError::Interrupted => ErrorClass::Interrupted,
            EngineError::Host(_)
            | EngineError::Api { .. }
            | EngineError::Context { .. }
            | EngineError::DockerConfigFile { .. }
            | EngineError::Other { .. } => ErrorClass::Failed,
        }
    }
}

/// What went wrong on the way to the engine, read from an error's source chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectProblem {
    PermissionDenied,
    Unreachable,
}

/// Reads an I/O error kind out of any error chain: hyper and bollard wrap the socket's error.
pub(crate) fn connect_problem(err: &(dyn std::error::Error + 'static)) -> Option<ConnectProblem> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return Some(match io.kind() {
                PermissionDenied => ConnectProblem::PermissionDenied,
                _ => ConnectProblem::Unreachable,
            });
        }
        if let Some(b) = e.downcast_ref::<bollard::errors::Error>() {
            match b {
                // `#[error(transparent)]`: its source() skips the io::Error itself.
                bollard::errors::Error::IOError { err } => return connect_problem(err),
                bollard::errors::Error::SocketNotFoundError(_)
                | bollard::errors::Error::RequestTimeoutError => {
                    return Some(ConnectProblem::Unreachable)
                }
                bollard::errors::Error::HyperLegacyError { err } if err.is_connect() => {
                    // The io::Error below says whether it was a permission problem.
                    if let Some(p) = std::error::Error::source(err).and_then(connect_problem) {
                        return Some(p);
                    }
                    return Some(ConnectProblem::Unreachable);
                }
                _ => {}
            }
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn unpullable_base_image_is_known_and_the_hint_never_names_base_image() {
        let e = EngineError::BuildFailed {
            step: Some(StepRef {
                number: 1,
                total: 11,
                instruction: "FROM python:3.12-alpine".into(),
            }),
            message: "Get \"https://registry-1.docker.io/v2/\": no such host".into(),
            code: None,
            tail: vec![],
        };
        let hint = e.hint().unwrap_or_default();
        assert!(hint.contains("neither local nor pullable"), "{hint}");
        // The engine cannot know whether the Dockerfile is a render: `image` adds that hint.
        assert!(!hint.contains("--base-image"), "{hint}");
        assert!(e.is_unpullable_base());
        let run = EngineError::BuildFailed {
            step: Some(StepRef {
                number: 2,
                total: 11,
                instruction: "RUN false".into(),
            }),
            message: "returned a non-zero code: 1".into(),
            code: Some(1),
            tail: vec![],
        };
        assert!(!run.hint().unwrap_or_default().contains("--base-image"));
        assert!(!run.is_unpullable_base());
    }

    use super::*;

    #[test]
    fn permission_denied_is_told_apart() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let wrapped = bollard::errors::Error::IOError { err: io };
        assert_eq!(
            connect_problem(&wrapped),
            Some(ConnectProblem::PermissionDenied)
        );
        let refused = bollard::errors::Error::IOError {
            err: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(connect_problem(&refused), Some(ConnectProblem::Unreachable));
        let missing = bollard::errors::Error::SocketNotFoundError("/x.sock".into());
        assert_eq!(connect_problem(&missing), Some(ConnectProblem::Unreachable));
        let api = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert_eq!(connect_problem(&api), None);
    }

    #[test]
    fn statuses_and_hints() {
        let e = EngineError::Unreachable {
            host: "unix:///nonexistent.sock".into(),
            from: HostSource::Flag,
            cause: "no such file".into(),
        };
        assert_eq!(e.class(), ErrorClass::EngineUnreachable);
        assert!(e.to_string().contains("unix:///nonexistent.sock"));
        let e = EngineError::PermissionDenied {
            host: "unix:///var/run/docker.sock".into(),
            from: HostSource::Default,
            cause: "denied".into(),
        };
        assert!(e.hint().unwrap().contains("docker group"));
        assert!(e.hint().unwrap().contains("DOCKER_HOST"));
        assert_eq!(EngineError::Interrupted.class(), ErrorClass::Interrupted);
        let e = EngineError::Push {
            tag: "127.0.0.1:5000/app:1".into(),
            kind: PushFailure::Auth,
            message: "unauthorized".into(),
        };
        assert_eq!(e.class(), ErrorClass::PushFailed);
        assert!(e.hint().unwrap().contains("docker login 127.0.0.1:5000"));
    }

    #[test]
    fn failed_step_names_step_code_and_output() {
        let e = EngineError::BuildFailed {
            step: Some(StepRef {
                number: 4,
                total: 4,
                instruction: "RUN exit 3".into(),
            }),
            message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
            code: Some(3),
            tail: vec!["hello".into()],
        };
        assert_eq!(e.class(), ErrorClass::BuildFailed);
        assert_eq!(
            e.to_string(),
            "step 4/4 `RUN exit 3` failed with exit code 3\n  last output:\n    | hello"
        );
    }
}
