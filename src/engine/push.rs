//! `POST /images/{name}/push`: push one tag with registry credentials, report progress and the
//! pushed digest, and tell an auth failure from a network failure.

use super::auth::Credentials;
use super::build::split_tag;
use super::error::{EngineError, PushFailure};
use super::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptions;

/// Progress of a push.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum PushEvent {
    /// "Preparing", "Pushing", "Pushed", "Layer already exists", …
    Status { status: String },
    /// Bytes of the current layer pushed so far.
    Progress { current: u64, total: u64 },
}

/// A pushed tag.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PushOutcome {
    pub tag: String,
    /// `sha256:…` of the manifest the registry stored.
    pub digest: Option<String>,
    /// Manifest size in bytes, as the engine reports it.
    pub size: Option<u64>,
    pub seconds: f64,
}

impl Engine {
    /// Pushes `reference` (`registry/repo:tag`).
    pub fn push(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
        on_event: &mut dyn FnMut(&PushEvent),
    ) -> Result<PushOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        let started = std::time::Instant::now();
        let (name, tag) = split_tag(reference);
        let creds = credentials.map(|c| DockerCredentials {
            username: c.username.clone(),
            password: c.password.clone(),
            serveraddress: Some(c.server.clone()),
            identitytoken: c.identity_token.clone(),
            ..Default::default()
        });
        let opts = PushImageOptions {
            tag: Some(tag.to_string()),
            platform: None,
        };
        let mut digest = None;
        let mut size = None;
        self.rt.block_on(async {
            let mut stream = self.docker.push_image(name, Some(opts), creds);
            loop {
                let item = super::next_or_interrupted(&self.cancel, &mut stream).await?;
                match item {
                    None => return Ok(()),
                    Some(Ok(info)) => {
                        if let Some(status) = info.status {
                            if let Some((d, s)) = digest_in(&status) {
                                digest = Some(d);
                                size = s;
                            }
                            on_event(&PushEvent::Status { status });
                        }
                        if let Some(p) = info.progress_detail {
                            if let (Some(c), Some(t)) = (p.current, p.total) {
                                on_event(&PushEvent::Progress {
                                    current: u64::try_from(c).unwrap_or(0),
                                    total: u64::try_from(t).unwrap_or(0),
                                });
                            }
                        }
                    }
                    Some(Err(bollard::errors::Error::DockerStreamError { error })) => {
                        return Err(EngineError::Push {
                            tag: reference.to_string(),
                            kind: classify_push(&error),
                            message: error,
                        })
                    }
                    Some(Err(bollard::errors::Error::DockerResponseServerError {
                        status_code,
                        message,
                    })) => {
                        // 404: no such image locally — ours to fix, not the registry's.
                        let kind = if status_code == 401 || status_code == 403 {
                            PushFailure::Auth
                        } else {
                            classify_push(&message)
                        };
                        return Err(EngineError::Push {
                            tag: reference.to_string(),
                            kind,
                            message,
                        });
                    }
                    Some(Err(e)) => {
                        return Err(self.api_error(&format!("POST /images/{name}/push"), e))
                    }
                }
            }
        })?;
        Ok(PushOutcome {
            tag: reference.to_string(),
            digest,
            size,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// "1: digest: sha256:abc… size: 527" → the digest and size.
fn digest_in(status: &str) -> Option<(String, Option<u64>)> {
    let (_, rest) = status.split_once("digest: ")?;
    let mut words = rest.split_whitespace();
    let digest = words.next()?.to_string();
    if !digest.starts_with("sha256:") {
        return None;
    }
    let size = match (words.next(), words.next()) {
        (Some("size:"), Some(n)) => n.parse().ok(),
        _ => None,
    };
    Some((digest, size))
}

/// Auth vs network, from the registry's words as the engine relays them.
fn classify_push(message: &str) -> PushFailure {
    let m = message.to_ascii_lowercase();
    const AUTH: &[&str] = &[
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth credentials",
        "forbidden",
        "401",
        "403",
    ];
    const NETWORK: &[&str] = &[
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "connection reset",
        "network is unreachable",
        "tls handshake",
        "server gave http response to https client",
        "timeout exceeded",
        "eof",
    ];
    if AUTH.iter().any(|w| m.contains(w)) {
        PushFailure::Auth
    } else if NETWORK.iter().any(|w| m.contains(w)) {
        PushFailure::Network
    } else {
        PushFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_the_final_status() {
        assert_eq!(
            digest_in("1: digest: sha256:0123abcd size: 527"),
            Some(("sha256:0123abcd".into(), Some(527)))
        );
        assert_eq!(digest_in("Pushed"), None);
    }

    #[test]
    fn auth_and_network_failures_differ() {
        assert_eq!(
            classify_push("unauthorized: authentication required"),
            PushFailure::Auth
        );
        assert_eq!(
            classify_push("denied: requested access to the resource is denied"),
            PushFailure::Auth
        );
        assert_eq!(
            classify_push("Get \"https://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"),
            PushFailure::Network
        );
        assert_eq!(classify_push("manifest invalid"), PushFailure::Other);
    }
}
