//! The BuildKit session and the `/build` request, spoken over our own HTTP/1 connections.
//!
//! bollard's own session serves no FileSync (no build context) and keeps its upgrade plumbing
//! crate-private, so this module opens the connections itself ([`crate::engine::http`]: unix
//! socket, plain TCP, TLS or ssh dial-stdio, as the engine configuration says): `POST /session`
//! upgraded to h2c, on which the daemon is the gRPC *client* of our health, FileSync and Auth
//! services; and `POST /build?version=2&session=…` whose NDJSON answer the caller reads chunk by
//! chunk.

use super::filesync::{FileSyncService, Sources};
use crate::engine::auth::DockerConfig;
use crate::engine::host::Transport;
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::{Request, Response, Status};

/// The gRPC methods the session serves, announced to the daemon in the upgrade request.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.Auth/Credentials",
];

pub use crate::engine::http::IoError;
use crate::engine::http::{error_message, request, ConnBody};

/// The engine answered `/session` with something other than the protocol switch.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// A running session: dropping it closes the connection (and with it the daemon's view of it).
pub struct Session {
    pub id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens `/session` and serves FileSync, Auth and health on it.
pub async fn start(
    transport: &Transport,
    api_version: &str,
    sources: Arc<Sources>,
    sent: Arc<super::filesync::Transfer>,
    credentials: Option<Arc<DockerConfig>>,
    shared_key: &str,
) -> Result<Session, IoError> {
    let id = random_id();
    let mut b = http::Request::post(format!("/v{api_version}/session"))
        .header("Host", "docker")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .header("X-Docker-Expose-Session-Uuid", &id)
        .header("X-Docker-Expose-Session-Name", "ctxbuild")
        .header("X-Docker-Expose-Session-Sharedkey", shared_key);
    for m in METHODS {
        b = b.header("X-Docker-Expose-Session-Grpc-Method", *m);
    }
    let mut res = request(transport, b.body(Empty::<Bytes>::new())?).await?;
    if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let (status, message) = error_message(res).await?;
        return Err(Box::new(Refused { status, message }));
    }
    // The upgrade takes the socket over from the connection task.
    res.body_mut().detach();
    let upgraded = hyper::upgrade::on(res).await?;
    let io = Upgraded(TokioIo::new(upgraded));
    let files = FileSyncService { sources, sent };
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(HealthServer::new(HealthService))
            .add_service(FileSyncServer::new(files))
            .add_service(AuthServer::new(AuthService { credentials }))
            .serve_with_incoming(futures_util::stream::iter([Ok::<_, std::io::Error>(io)]))
            .await;
    });
    Ok(Session { id, task })
}

/// Sends `POST /build` and returns the answer once its headers arrived.
pub async fn build(
    transport: &Transport,
    path_and_query: &str,
) -> Result<http::Response<ConnBody>, IoError> {
    let req = http::Request::post(path_and_query)
        .header("Host", "docker")
        .header("Content-Type", "application/x-tar")
        .body(Empty::<Bytes>::new())?;
    request(transport, req).await
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // /dev/urandom never blocks once the system booted; the pid and time are a fallback only.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let seed = format!("{}:{:?}", std::process::id(), std::time::SystemTime::now());
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The upgraded connection, as tonic's server wants its incoming connections.
struct Upgraded(TokioIo<hyper::upgrade::Upgraded>);

impl tonic::transport::server::Connected for Upgraded {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    type WatchStream =
        Pin<Box<dyn futures_util::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Registry credentials asked over the session, from the docker CLI's configuration and
/// credential helpers (BuildKit asks here, not in `/build`'s auth header: moby issue 48112).
/// Anonymous when none are configured.
struct AuthService {
    credentials: Option<Arc<DockerConfig>>,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let Some(config) = self.credentials.clone() else {
            return Ok(Response::new(CredentialsResponse::default()));
        };
        let host = request.into_inner().host;
        // Docker Hub's API host is configured under docker.io.
        let image = match host.as_str() {
            "registry-1.docker.io" | "index.docker.io" => "docker.io/library/x".to_string(),
            h => format!("{h}/x"),
        };
        // A credential helper is a process: keep it off the session's I/O thread.
        let found = tokio::task::spawn_blocking(move || config.credentials_for(&image))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let answer = match found {
            Some(c) => match (c.identity_token, c.username, c.password) {
                (Some(token), _, _) => CredentialsResponse {
                    username: String::new(),
                    secret: token,
                },
                (None, Some(user), Some(pass)) => CredentialsResponse {
                    username: user,
                    secret: pass,
                },
                _ => CredentialsResponse::default(),
            },
            None => CredentialsResponse::default(),
        };
        Ok(Response::new(answer))
    }
    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }
    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("get_token_authority"))
    }
    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}
