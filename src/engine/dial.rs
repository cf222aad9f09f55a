//! The byte streams ctxbuild's own HTTP client ([`super::http`]) runs over when the engine is
//! not a unix socket or plain tcp: TLS with the docker CLI's client certificates, and ssh's
//! `docker system dial-stdio`.
//!
//! TLS uses the rustls stack bollard already builds (ring provider): the engine is verified
//! against `ca.pem` and we present `cert.pem`/`key.pem`, as the CLI does with
//! `DOCKER_TLS_VERIFY`. ssh runs the same command line as the CLI's ssh connection helper and
//! speaks HTTP over the child's stdin/stdout; the child is killed when the stream is dropped.
//! Nothing here knows HTTP.

use crate::engine::host::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A failure to open one of these streams.
pub type DialError = Box<dyn std::error::Error + Send + Sync>;

/// The largest PEM file read (a certificate chain is a few KiB).
const PEM_LIMIT: u64 = 1 << 20;

/// Opens a TLS connection to `addr` (`host:port` or `[v6]:port`), verifying the engine's
/// certificate against the CA file and presenting the client certificate.
pub async fn tls(
    addr: &str,
    files: &TlsFiles,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, DialError> {
    let config = client_config(files)?;
    let name = server_name(addr)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Ok(connector.connect(name, tcp).await?)
}

/// The client side of `DOCKER_TLS_VERIFY`: the engine must chain to `ca.pem`, and we
/// authenticate with `cert.pem` and `key.pem`.
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, DialError> {
    let read = |path: &Path| -> Result<Vec<u8>, DialError> {
        crate::fsutil::read_limited(path, PEM_LIMIT)
            .map_err(|e| format!("cannot read the TLS file {}: {e}", path.display()).into())
    };
    let bad = |path: &Path, what: &str, e: &dyn std::fmt::Display| -> DialError {
        format!("{} is not {what}: {e}", path.display()).into()
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let cert = cert.map_err(|e| bad(&files.ca, "a PEM certificate file", &e))?;
        roots
            .add(cert)
            .map_err(|e| bad(&files.ca, "a CA certificate", &e))?;
    }
    if roots.is_empty() {
        return Err(bad(
            &files.ca,
            "a CA certificate",
            &"it holds no certificate",
        ));
    }
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, "a PEM certificate file", &e))?;
    if chain.is_empty() {
        return Err(bad(
            &files.cert,
            "a client certificate",
            &"it holds no certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| bad(&files.key, "a PEM private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad(&files.key, "the key of the client certificate", &e))
}

/// The name the engine's certificate must carry: the host part of `addr` (an IP address or a
/// DNS name), as Go's TLS client checks it for the CLI.
fn server_name(addr: &str) -> Result<ServerName<'static>, DialError> {
    let host = match addr.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
    };
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` is not a host name TLS can verify: {e}").into())
}

/// Where an `ssh://[user@]host[:port]` engine is, parsed as the docker CLI's ssh helper does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<String>,
}

impl SshTarget {
    pub fn parse(url: &str) -> Result<SshTarget, DialError> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("`{url}` is not an ssh:// URL"))?;
        if let Some(i) = rest.find(['/', '?', '#']) {
            // The CLI refuses these too: a path would be silently ignored.
            return Err(format!("`{url}` has extra text after the host: `{}`", &rest[i..]).into());
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
                None => return Err(format!("`{url}`: unclosed `[` in the host").into()),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!("`{url}` names no usable host").into());
        }
        if let Some(p) = port {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{url}`: the port `{p}` is not a number").into());
            }
        }
        if user
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err(format!("`{url}` names no usable user").into());
        }
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port: port.map(str::to_string),
        })
    }

    /// The arguments of `ssh`, as the docker CLI passes them (`--` keeps the host from being
    /// read as an option).
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(u) = &self.user {
            args.extend(["-l".to_string(), u.clone()]);
        }
        if let Some(p) = &self.port {
            args.extend(["-p".to_string(), p.clone()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(str::to_string));
        args
    }
}

/// `ssh … docker system dial-stdio`: the child's stdout read, its stdin written. ssh's own
/// messages (host key prompts, auth failures) go to our stderr, as with the docker CLI.
pub fn ssh(url: &str) -> Result<SshStream, DialError> {
    let target = SshTarget::parse(url)?;
    let mut child = tokio::process::Command::new("ssh")
        .args(target.args())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run ssh for {url}: {e}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("ssh started without its pipes".into());
    };
    Ok(SshStream {
        _child: child,
        stdin,
        stdout,
    })
}

/// The stream of one `ssh` child; dropping it kills the child.
pub struct SshStream {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_become_the_clis_command_line() {
        let t = SshTarget::parse("ssh://me@build-box:2222").unwrap();
        assert_eq!(
            t.args(),
            [
                "-l",
                "me",
                "-p",
                "2222",
                "--",
                "build-box",
                "docker",
                "system",
                "dial-stdio"
            ]
        );
        let t = SshTarget::parse("ssh://build-box").unwrap();
        assert_eq!(
            t.args(),
            ["--", "build-box", "docker", "system", "dial-stdio"]
        );
        let t = SshTarget::parse("ssh://[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port.as_deref()), ("::1", Some("22")));
        for bad in [
            "ssh://",
            "ssh://box/var/run/docker.sock",
            "ssh://-oProxyCommand=x",
            "ssh://me@box:port",
            "ssh://@box",
            "tcp://box",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_names_come_from_the_address() {
        assert_eq!(
            server_name("127.0.0.1:2376").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("[::1]:2376").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert_eq!(
            server_name("build-box:2376").unwrap(),
            ServerName::try_from("build-box").unwrap()
        );
    }

    #[test]
    fn missing_or_empty_tls_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            ca: d.path().join("ca.pem"),
            cert: d.path().join("cert.pem"),
            key: d.path().join("key.pem"),
        };
        let e = client_config(&files).unwrap_err().to_string();
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::write(&files.ca, "not pem\n").unwrap();
        let e = client_config(&files).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
    }
}
