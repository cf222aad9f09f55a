//! Our own HTTP/1 connections to the engine, for the requests whose answers bollard would buffer
//! whole (`POST /build`'s NDJSON) or whose protocol it keeps private (`POST /session`).
//!
//! One fresh connection per request over whatever the engine configuration says: a unix socket,
//! plain TCP, TLS with the CLI's client certificates, or ssh's `docker system dial-stdio` (see
//! [`super::dial`]). The answer's body
//! owns its connection: dropping it (a finished build, Ctrl-C, a malformed stream) closes the
//! socket and drops the request body, so an upload producer stops at its next write instead of
//! waiting on an engine nobody reads.

use crate::engine::dial;
use crate::engine::host::Transport;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// A transport failure of one of our connections.
pub type IoError = Box<dyn std::error::Error + Send + Sync>;

/// The most bytes of an HTTP error answer read.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The most bytes of an error answer kept in a message.
const ERROR_TEXT_LIMIT: usize = 4096;

/// A byte stream to the engine.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn dial(transport: &Transport) -> Result<Box<dyn Io>, IoError> {
    Ok(match transport {
        Transport::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        Transport::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(addr.as_str()).await?),
        Transport::Tls { addr, certs } => Box::new(dial::tls(addr, certs).await?),
        Transport::Ssh(url) => Box::new(dial::ssh(url)?),
    })
}

/// An answer's body; dropping it ends the connection (see [`ConnBody::detach`]).
pub struct ConnBody {
    inner: Incoming,
    conn: Conn,
}

impl ConnBody {
    /// Lets the connection outlive this body: an upgrade (`/session`) takes the socket over
    /// once the connection task hands it on.
    pub fn detach(&mut self) {
        self.conn.0 = None;
    }
}

/// The task driving a connection, ended when its owner goes.
struct Conn(Option<tokio::task::JoinHandle<()>>);

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Body for ConnBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Sends an HTTP/1 request on a fresh connection and returns the answer once its headers
/// arrived; the request body is sent while the answer is awaited and read.
pub async fn request<B>(
    transport: &Transport,
    req: http::Request<B>,
) -> Result<http::Response<ConnBody>, IoError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<IoError>,
{
    let io = dial(transport).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let task = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    // Until the answer arrives this future owns the connection: dropping it closes it.
    let conn = Conn(Some(task));
    let res = sender.send_request(req).await?;
    Ok(res.map(|inner| ConnBody { inner, conn }))
}

/// Sends a request for bollard (its custom transport, used for ssh engines): the connection
/// lives while hyper drives it, and goes (killing the ssh child) when the answer is read or
/// dropped. The request goes out in origin form, as the engine expects.
pub(crate) async fn request_detached<B>(
    transport: &Transport,
    mut req: http::Request<B>,
) -> Result<http::Response<Incoming>, IoError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<IoError>,
{
    let origin = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<http::Uri>()?;
    *req.uri_mut() = origin;
    req.headers_mut()
        .insert(http::header::HOST, http::HeaderValue::from_static("docker"));
    let io = dial(transport).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender.send_request(req).await?)
}

/// Reads a refused request's answer: the engine's `message`, or the start of whatever it sent.
pub async fn error_message(res: http::Response<ConnBody>) -> Result<(u16, String), IoError> {
    let status = res.status().as_u16();
    // An error answer is short; a hostile one is cut, not held whole.
    let body = http_body_util::Limited::new(res.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_TEXT_LIMIT)]).into_owned();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    Ok((status, message))
}

/// `application/x-www-form-urlencoded` pairs, for API queries.
pub(crate) fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
