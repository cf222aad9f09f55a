//! The Docker Engine boundary: connection, streamed classic builds, image history, push, pull,
//! and the short-lived containers `smoke` runs.
//!
//! The only module that imports bollard. Everything it returns is our own data
//! ([`BuildEvent`], [`BuildOutcome`], [`StepRecord`], [`PushOutcome`]) or a typed
//! [`EngineError`]; callers never see an HTTP detail. It prints nothing: progress goes to the
//! caller's event callback. The public API is blocking — the engine owns a small tokio runtime —
//! so commands stay synchronous.
//!
//! Connection follows the docker CLI (see [`host`]): `--host`, `DOCKER_HOST`, TLS via
//! `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`, ssh. bollard speaks API 1.53; the version is
//! negotiated down to what the engine answers (1.41 on Debian's dockerd 20.10).

pub mod auth;
mod build;
pub mod buildkit;
mod dial;
pub mod error;
pub mod events;
mod facts;
pub mod host;
pub mod http;
mod images;
pub mod lines;
mod push;
pub mod reference;
mod run;
pub mod steps;
pub mod upload;

pub use auth::{Credentials, DockerConfig};
pub use build::{BuildOptions, BuildOutcome, HistoryLayer};
pub use buildkit::{BuildKitInput, Numbering, Sources};
pub use error::{EngineError, PushFailure, StepRef};
pub use events::BuildEvent;
pub use facts::Facts;
pub use host::{EngineConfig, HostSource, Transport};
pub use images::ImageInfo;
pub use push::{PushEvent, PushOutcome};
pub use run::{ContainerState, ImageArch, MemorySample, RunSpec, LOG_TAIL_LINES};
pub use steps::{StepRecord, StepStatus};

use bollard::Docker;
use error::{connect_problem, ConnectProblem};
use tokio_util::sync::CancellationToken;

/// A connected engine.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    config: EngineConfig,
    api_version: String,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.config.host)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// Cancels the engine's current and later operations (they end with [`EngineError::Interrupted`]).
#[derive(Debug, Clone)]
pub struct CancelHandle(CancellationToken);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.cancel()
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl Engine {
    /// Connects, checks that the engine answers, and negotiates the API version.
    pub fn connect(config: &EngineConfig) -> Result<Engine, EngineError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Other {
                host: config.host.clone(),
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        let timeout = config.timeout.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let unreachable = |cause: bollard::errors::Error| classify_connect(config, cause);
        // bollard's constructors spawn nothing, but TLS set-up may touch the runtime.
        let _guard = rt.enter();
        let docker = match &config.transport {
            Transport::Unix(path) => {
                Docker::connect_with_unix(&format!("unix://{}", path.display()), timeout, version)
                    .map_err(unreachable)?
            }
            Transport::Tcp(addr) => {
                Docker::connect_with_http(&format!("tcp://{addr}"), timeout, version)
                    .map_err(unreachable)?
            }
            // TLS and ssh the docker CLI's way, through our own client (see `dial`): one
            // connection per request, a fresh TLS session each time, `ssh … docker system
            // dial-stdio` for ssh rather than bollard's openssh control master.
            Transport::Tls { .. } | Transport::Ssh(_) => {
                if let Transport::Tls { certs, .. } = &config.transport {
                    // Unusable certificate files are a TLS problem, said before any connection.
                    dial::client_config(certs).map_err(|cause| EngineError::Tls {
                        host: config.host.clone(),
                        cause,
                    })?;
                }
                let transport = config.transport.clone();
                Docker::connect_with_custom_transport(
                    move |req: bollard::BollardRequest| {
                        let transport = transport.clone();
                        async move {
                            http::request_detached(&transport, req).await.map_err(|e| {
                                bollard::errors::Error::IOError {
                                    // Kept whole when it is one, so a refused permission
                                    // still reads as one.
                                    err: match e.downcast::<std::io::Error>() {
                                        Ok(io) => *io,
                                        Err(e) => std::io::Error::other(e),
                                    },
                                }
                            })
                        }
                    },
                    Some("http://docker"),
                    timeout,
                    version,
                )
                .map_err(unreachable)?
            }
        };
        drop(_guard);
        let docker = rt.block_on(async {
            match tokio::time::timeout(host::PING_TIMEOUT, docker.negotiate_version()).await {
                Ok(r) => r.map_err(unreachable),
                Err(_) => Err(classify_connect(
                    config,
                    bollard::errors::Error::RequestTimeoutError,
                )),
            }
        })?;
        let client = docker.client_version();
        Ok(Engine {
            rt,
            api_version: format!("{}.{}", client.major_version, client.minor_version),
            docker,
            config: config.clone(),
            cancel: CancellationToken::new(),
        })
    }

    /// The host as configured (for messages).
    pub fn host(&self) -> &str {
        &self.config.host
    }

    /// The negotiated API version, e.g. "1.41".
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// A handle that cancels this engine's operations from anywhere.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.cancel.clone())
    }

    /// Cancels operations on SIGINT (Ctrl-C), SIGTERM (how Cloud Build and `docker stop` end a
    /// step) or SIGHUP (a dropped terminal or ssh session) instead of dying with a build half
    /// done and containers left behind.
    pub fn cancel_on_signals(&self) -> Result<(), EngineError> {
        use tokio::signal::unix::{signal, SignalKind};
        let _guard = self.rt.enter();
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ] {
            // Registered now, not when the task first runs, so no signal slips through.
            let mut sig = signal(kind).map_err(|e| EngineError::Other {
                host: self.config.host.clone(),
                message: format!("cannot listen for signals: {e}"),
            })?;
            let token = self.cancel.clone();
            self.rt.spawn(async move {
                if sig.recv().await.is_some() {
                    token.cancel();
                }
            });
        }
        Ok(())
    }

    /// Whether a cancellation (Ctrl-C) was requested.
    pub fn is_cancelled(&self) -> bool {
        // Let the signal task run so a pending signal is seen.
        self.rt.block_on(tokio::task::yield_now());
        self.cancel.is_cancelled()
    }

    fn api_error(&self, request: &str, e: bollard::errors::Error) -> EngineError {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Api {
                host: self.config.host.clone(),
                request: request.to_string(),
                status: status_code,
                message,
            },
            other => {
                if connect_problem(&other).is_some() {
                    classify_connect(&self.config, other)
                } else {
                    EngineError::Other {
                        host: self.config.host.clone(),
                        message: format!("{request}: {other}"),
                    }
                }
            }
        }
    }

    /// Whether an image exists locally.
    pub fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        match self.rt.block_on(self.docker.inspect_image(image)) {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.api_error(&format!("GET /images/{image}/json"), e)),
        }
    }

    /// Removes an image (tests and cleanup); a missing image is not an error.
    pub fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveImageOptions {
            force: true,
            noprune: false,
            ..Default::default()
        };
        match self
            .rt
            .block_on(self.docker.remove_image(image, Some(opts), None))
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.api_error(&format!("DELETE /images/{image}"), e)),
        }
    }
}

/// Turns a failed first contact into Unreachable / PermissionDenied / Api.
fn classify_connect(config: &EngineConfig, e: bollard::errors::Error) -> EngineError {
    match connect_problem(&e) {
        Some(ConnectProblem::PermissionDenied) => EngineError::PermissionDenied {
            host: config.host.clone(),
            from: config.source,
            cause: Box::new(e),
        },
        Some(ConnectProblem::Unreachable) => EngineError::Unreachable {
            host: config.host.clone(),
            from: config.source,
            cause: Box::new(e),
        },
        None => match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Api {
                host: config.host.clone(),
                request: "GET /version".into(),
                status: status_code,
                message,
            },
            // Something answered, but not a Docker engine (e.g. a web server on that port).
            other => EngineError::Unreachable {
                host: config.host.clone(),
                from: config.source,
                cause: Box::new(other),
            },
        },
    }
}

/// The next item of an engine stream, or [`EngineError::Interrupted`] as soon as Ctrl-C
/// cancelled this engine's work (checked first, so a busy stream cannot starve it).
async fn next_or_interrupted<S>(
    cancel: &CancellationToken,
    stream: &mut S,
) -> Result<Option<S::Item>, EngineError>
where
    S: futures_util::Stream + Unpin,
{
    use futures_util::StreamExt;
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(EngineError::Interrupted),
        item = stream.next() => Ok(item),
    }
}
