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

/// The gRPC services the session exposes, on an HTTP/2 server with the windows below.
fn services(
    files: FileSyncService,
    credentials: Option<Arc<DockerConfig>>,
) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .add_service(HealthServer::new(HealthService))
        .add_service(FileSyncServer::new(files))
        .add_service(AuthServer::new(AuthService { credentials }))
}

/// The session's HTTP/2 windows. The h2 crate closes a connection (GOAWAY
/// `too_many_data_frames`) once the small DATA frames it holds unread cost more than half the
/// connection window (≈ 245 bytes of budget per frame under 256 bytes); the daemon asks for
/// each file with one ~11-byte frame and sends them in bursts, so with hyper's 1 MiB windows a
/// context of ~30,000 files or more died mid-transfer ("load build context: transport is
/// closing"). A 64 KiB stream window holds at most ~6,000 unread requests per stream (≈ 1.5 MiB
/// of budget); a 16 MiB connection window makes the budget 8 MiB, above any number of streams
/// a build opens. Only requests flow this way: file data goes out under the daemon's windows.
const STREAM_WINDOW: u32 = 64 << 10;
const CONNECTION_WINDOW: u32 = 16 << 20;

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
        let _ = services(files, credentials)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{self, ContextOptions};
    use crate::engine::buildkit::filesync::Transfer;
    use bollard_buildkit_proto::fsutil::types::{packet::PacketType, Packet};
    use prost::Message;

    /// One gRPC message: uncompressed flag, big-endian length, the packet.
    fn grpc(p: &Packet) -> Bytes {
        let body = p.encode_to_vec();
        let mut b = vec![0u8];
        b.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        b.extend_from_slice(&body);
        Bytes::from(b)
    }

    /// Reads whole gRPC messages off the response until `done` says stop.
    async fn read_packets(
        body: &mut h2::RecvStream,
        buf: &mut Vec<u8>,
        mut done: impl FnMut(Packet) -> bool,
    ) -> Result<(), h2::Error> {
        loop {
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let p = Packet::decode(&buf[5..5 + len]).unwrap();
                buf.drain(..5 + len);
                if done(p) {
                    return Ok(());
                }
            }
            let chunk = body.data().await.expect("the stream ended early")?;
            body.flow_control().release_capacity(chunk.len())?;
            buf.extend_from_slice(&chunk);
        }
    }

    /// The daemon asks for every file of a large context in one burst of tiny DATA frames. The
    /// h2 server closed the connection (GOAWAY `too_many_data_frames`) once ~2,000 of them sat
    /// unread under hyper's default windows: BuildKit builds of 30,000+ files died with
    /// "load build context: transport is closing".
    #[test]
    fn a_burst_of_file_requests_is_served_whole() {
        const FILES: usize = 12_000;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..FILES {
            std::fs::write(dir.path().join(format!("f{i:05}")), b"x").unwrap();
        }
        let ctx = context::scan(&ContextOptions::new(dir.path())).unwrap();
        let files = FileSyncService {
            sources: Arc::new(Sources {
                root: ctx.root.clone(),
                entries: Box::new(ctx.entries),
                dockerfile_name: "Dockerfile".into(),
                dockerfile: b"FROM scratch\n".to_vec(),
                ignore: None,
            }),
            sent: Arc::new(Transfer::new(std::time::Instant::now())),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ids, ends, fin) =
            rt.block_on(async move {
                let (client_io, server_io) = tokio::io::duplex(1 << 20);
                tokio::spawn(services(files, None).serve_with_incoming(
                    futures_util::stream::iter([Ok::<_, std::io::Error>(server_io)]),
                ));
                let (client, conn) = h2::client::handshake(client_io).await.unwrap();
                tokio::spawn(conn);
                let mut client = client.ready().await.unwrap();
                let req = http::Request::post("http://session/moby.filesync.v1.FileSync/DiffCopy")
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("dir-name", "context")
                    .body(())
                    .unwrap();
                let (response, mut send) = client.send_request(req, false).unwrap();
                let mut body = response.await.unwrap().into_body();
                let mut buf = Vec::new();
                // The listing: a request names a regular file by its index in it.
                let (mut ids, mut index) = (Vec::new(), 0u32);
                read_packets(&mut body, &mut buf, |p| {
                    let Some(stat) = p.stat else { return true };
                    if stat.mode < 0o10000 {
                        ids.push(index);
                    }
                    index += 1;
                    false
                })
                .await
                .unwrap();
                for &id in &ids {
                    let req = Packet {
                        r#type: PacketType::PacketReq as i32,
                        id,
                        ..Default::default()
                    };
                    send.send_data(grpc(&req), false).unwrap();
                }
                let fin = Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Default::default()
                };
                send.send_data(grpc(&fin), false).unwrap();
                let (mut ends, mut fin) = (0usize, false);
                let read = read_packets(&mut body, &mut buf, |p| {
                    match PacketType::try_from(p.r#type) {
                        Ok(PacketType::PacketData) if p.data.is_empty() => ends += 1,
                        Ok(PacketType::PacketFin) => fin = true,
                        _ => {}
                    }
                    fin
                })
                .await;
                if let Err(e) = read {
                    panic!("the session closed after {ends} files: {e}");
                }
                (ids.len(), ends, fin)
            });
        assert_eq!(ids, FILES);
        assert_eq!(ends, FILES, "every requested file ends with an empty DATA");
        assert!(fin);
    }
}
