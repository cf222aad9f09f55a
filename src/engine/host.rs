//! Which Docker engine to talk to, decided like the docker CLI decides it.
//!
//! `--host` wins over `DOCKER_HOST`, which wins over the local socket. `DOCKER_TLS_VERIFY` turns
//! a `tcp://` host into TLS with the client certificates in `DOCKER_CERT_PATH` (default
//! `~/.docker`). Resolution is pure: the environment comes in as a lookup function so tests can
//! feed any combination. Nothing here opens a connection.

use std::path::PathBuf;
use std::time::Duration;

/// The local socket the docker CLI uses when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long a single API request may take before its response starts.
///
/// The classic builder answers `POST /build` only after it has read the whole context and
/// started the first step, so the timeout covers the upload of a large context plus any base
/// image pull: bollard's 2-minute default fails real builds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How long the first ping may take before the engine counts as unreachable.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the host setting came from, so an error can say what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostSource {
    /// `--host` / `-H`.
    Flag,
    /// The `DOCKER_HOST` environment variable.
    Env,
    /// Nothing was set: the local socket.
    Default,
}

impl std::fmt::Display for HostSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostSource::Flag => "from --host",
            HostSource::Env => "from DOCKER_HOST",
            HostSource::Default => "the default socket",
        })
    }
}

/// The transport to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
    /// HTTPS to `host:port` with client certificates.
    Tls { addr: String, certs: TlsFiles },
    /// `docker system dial-stdio` over ssh (`ssh://[user@]host[:port]`).
    Ssh(String),
}

/// The three PEM files of a TLS client, as the docker CLI names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The resolved engine connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The host as the user would write it (`unix:///…`, `tcp://…`, `ssh://…`).
    pub host: String,
    pub source: HostSource,
    pub transport: Transport,
    /// The request timeout given to bollard (see [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

/// A host setting ctxbuild cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("cannot use Docker host `{host}` ({from}): {reason}")]
    Invalid {
        host: String,
        from: HostSource,
        reason: String,
    },
}

impl crate::diagnostics::Diagnose for HostError {
    fn hint(&self) -> Option<String> {
        Some(
            "use unix:///path/to/docker.sock, tcp://HOST:PORT (TLS with DOCKER_TLS_VERIFY=1 and \
             DOCKER_CERT_PATH) or ssh://USER@HOST"
                .into(),
        )
    }
}

impl EngineConfig {
    /// Resolves the engine from `--host` and the environment, as the docker CLI does.
    ///
    /// `env` looks up a variable; an empty value counts as unset (the CLI treats
    /// `DOCKER_HOST=` as unset, and `DOCKER_TLS_VERIFY=` as off).
    pub fn resolve(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EngineConfig, HostError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let (host, source) = match (flag.filter(|f| !f.is_empty()), get("DOCKER_HOST")) {
            (Some(f), _) => (f.to_string(), HostSource::Flag),
            (None, Some(e)) => (e, HostSource::Env),
            (None, None) => (DEFAULT_SOCKET.to_string(), HostSource::Default),
        };
        let tls = get("DOCKER_TLS_VERIFY").is_some();
        let invalid = |reason: &str| HostError::Invalid {
            host: host.clone(),
            from: source,
            reason: reason.to_string(),
        };

        let transport = if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("the socket path is empty"));
            }
            Transport::Unix(PathBuf::from(path))
        } else if host.starts_with('/') {
            // A bare socket path: what users mean, even though the CLI wants the scheme.
            Transport::Unix(PathBuf::from(&host))
        } else if let Some(rest) = host.strip_prefix("ssh://") {
            if rest.is_empty() {
                return Err(invalid("no host after ssh://"));
            }
            Transport::Ssh(host.clone())
        } else if host.starts_with("npipe://") || host.starts_with("fd://") {
            return Err(invalid("this transport is not available on this platform"));
        } else {
            // tcp://, http://, https:// or a bare HOST[:PORT] (the CLI's default protocol).
            let (rest, https) = if let Some(r) = host.strip_prefix("tcp://") {
                (r, false)
            } else if let Some(r) = host.strip_prefix("http://") {
                (r, false)
            } else if let Some(r) = host.strip_prefix("https://") {
                (r, true)
            } else if host.contains("://") {
                return Err(invalid("unknown scheme"));
            } else {
                (host.as_str(), false)
            };
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() {
                return Err(invalid("no address"));
            }
            let use_tls = tls || https;
            let addr = if has_port(hostport) {
                hostport.to_string()
            } else {
                // The CLI's defaults: 2376 for TLS, 2375 for plain HTTP.
                format!("{hostport}:{}", if use_tls { 2376 } else { 2375 })
            };
            if use_tls {
                let dir = match get("DOCKER_CERT_PATH") {
                    Some(d) => PathBuf::from(d),
                    None => match get("DOCKER_CONFIG") {
                        Some(d) => PathBuf::from(d),
                        None => dirs::home_dir().map(|h| h.join(".docker")).ok_or_else(|| {
                            invalid("DOCKER_CERT_PATH is unset and there is no home directory")
                        })?,
                    },
                };
                Transport::Tls {
                    addr,
                    certs: TlsFiles {
                        ca: dir.join("ca.pem"),
                        cert: dir.join("cert.pem"),
                        key: dir.join("key.pem"),
                    },
                }
            } else {
                Transport::Tcp(addr)
            }
        };
        Ok(EngineConfig {
            host,
            source,
            transport,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Resolves from `--host` and the real process environment.
    pub fn from_env(flag: Option<&str>) -> Result<EngineConfig, HostError> {
        EngineConfig::resolve(flag, &|k| std::env::var(k).ok())
    }
}

/// Whether `host[:port]` (or `[v6]:port`) carries a port.
fn has_port(hostport: &str) -> bool {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.contains("]:");
    }
    hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<EngineConfig, HostError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EngineConfig::resolve(flag, &|k| map.get(k).cloned())
    }

    #[test]
    fn default_is_the_local_socket() {
        let c = resolve(None, &[]).unwrap();
        assert_eq!(c.source, HostSource::Default);
        assert_eq!(c.transport, Transport::Unix("/var/run/docker.sock".into()));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn flag_beats_env_and_empty_env_is_unset() {
        let c = resolve(
            Some("unix:///tmp/d.sock"),
            &[("DOCKER_HOST", "tcp://10.0.0.1:2375")],
        )
        .unwrap();
        assert_eq!(c.source, HostSource::Flag);
        assert_eq!(c.transport, Transport::Unix("/tmp/d.sock".into()));
        let c = resolve(None, &[("DOCKER_HOST", "")]).unwrap();
        assert_eq!(c.source, HostSource::Default);
        let c = resolve(None, &[("DOCKER_HOST", "tcp://127.0.0.1:1")]).unwrap();
        assert_eq!(c.source, HostSource::Env);
        assert_eq!(c.transport, Transport::Tcp("127.0.0.1:1".into()));
    }

    #[test]
    fn tcp_defaults_ports_like_the_cli() {
        assert_eq!(
            resolve(Some("tcp://build-box"), &[]).unwrap().transport,
            Transport::Tcp("build-box:2375".into())
        );
        assert_eq!(
            resolve(Some("build-box:1234"), &[]).unwrap().transport,
            Transport::Tcp("build-box:1234".into())
        );
        assert_eq!(
            resolve(Some("tcp://[::1]:2375/"), &[]).unwrap().transport,
            Transport::Tcp("[::1]:2375".into())
        );
    }

    #[test]
    fn tls_verify_uses_the_cert_path() {
        let c = resolve(
            Some("tcp://build-box"),
            &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/certs")],
        )
        .unwrap();
        assert_eq!(
            c.transport,
            Transport::Tls {
                addr: "build-box:2376".into(),
                certs: TlsFiles {
                    ca: "/certs/ca.pem".into(),
                    cert: "/certs/cert.pem".into(),
                    key: "/certs/key.pem".into(),
                }
            }
        );
        // DOCKER_TLS_VERIFY= (empty) is off, as in the CLI.
        let c = resolve(Some("tcp://b:1"), &[("DOCKER_TLS_VERIFY", "")]).unwrap();
        assert_eq!(c.transport, Transport::Tcp("b:1".into()));
    }

    #[test]
    fn ssh_and_bad_hosts() {
        assert_eq!(
            resolve(Some("ssh://me@box"), &[]).unwrap().transport,
            Transport::Ssh("ssh://me@box".into())
        );
        let e = resolve(Some("ftp://x"), &[]).unwrap_err();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        assert!(e.to_string().contains("from --host"), "{e}");
        assert!(resolve(Some("unix://"), &[]).is_err());
        assert!(resolve(None, &[("DOCKER_HOST", "npipe:////./pipe/docker_engine")]).is_err());
    }
}
