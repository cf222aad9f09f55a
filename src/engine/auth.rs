//! Registry credentials from the Docker CLI's configuration, for `--push`.
//!
//! Reads `config.json` in `DOCKER_CONFIG` (default `~/.docker`): `credHelpers` per registry,
//! then `credsStore`, then the base64 `auth` entries of `auths`, in the CLI's order. A
//! credential helper is run as `docker-credential-<name> get` with the server address on stdin.
//! Never logs or returns a secret in an error message.

use super::error::EngineError;
pub use super::reference::registry_of;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs a credential helper: (helper name, server) → credentials.
type HelperFn<'a> = dyn Fn(&str, &str) -> Result<Option<Credentials>, EngineError> + 'a;

/// Docker Hub's key in `auths` and for credential helpers.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth identity token (credential helpers return it with username `<token>`).
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The Docker CLI configuration, as far as pushing needs it.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    file: ConfigFile,
}

/// The configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None => dirs::home_dir().map(|h| h.join(".docker")),
    }
}

impl DockerConfig {
    /// Loads `<dir>/config.json`; a missing file is an empty configuration.
    pub fn load(dir: Option<&Path>) -> Result<DockerConfig, EngineError> {
        let Some(dir) = dir else {
            return Ok(DockerConfig::default());
        };
        let path = dir.join("config.json");
        let text = match crate::fsutil::read_text(&path).map_err(std::io::Error::from) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default())
            }
            Err(e) => {
                return Err(EngineError::DockerConfigFile {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let file: ConfigFile =
            serde_json::from_str(&text).map_err(|e| EngineError::DockerConfigFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(DockerConfig {
            path: Some(path),
            file,
        })
    }

    /// Where the configuration was read from, if a file existed.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Credentials for the registry of `image` (e.g. `127.0.0.1:5000/app:1`), if configured.
    pub fn credentials_for(&self, image: &str) -> Result<Option<Credentials>, EngineError> {
        self.credentials_with(image, &|helper, server| {
            run_helper(
                Path::new(&format!("docker-credential-{helper}")),
                helper,
                server,
            )
        })
    }

    fn credentials_with(
        &self,
        image: &str,
        helper: &HelperFn<'_>,
    ) -> Result<Option<Credentials>, EngineError> {
        let registry = registry_of(image);
        let server = if registry == "docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry.clone()
        };
        if let Some(h) = self.file.cred_helpers.get(&registry) {
            return helper(h, &server);
        }
        if let Some(store) = self.file.creds_store.as_deref().filter(|s| !s.is_empty()) {
            return helper(store, &server);
        }
        for (key, entry) in &self.file.auths {
            if normalize_key(key) != registry {
                continue;
            }
            let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
            if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| EngineError::DockerConfigFile {
                        path: self.path_text(),
                        message: format!(
                            "the `auth` entry for {key} is not base64 of user:password"
                        ),
                    })?;
                let (u, p) =
                    decoded
                        .split_once(':')
                        .ok_or_else(|| EngineError::DockerConfigFile {
                            path: self.path_text(),
                            message: format!(
                                "the `auth` entry for {key} has no `:` between user and password"
                            ),
                        })?;
                username = Some(u.to_string());
                password = Some(p.to_string());
            }
            return Ok(Some(Credentials {
                server: key.clone(),
                username,
                password,
                identity_token: entry.identitytoken.clone().filter(|t| !t.is_empty()),
            }));
        }
        Ok(None)
    }

    fn path_text(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "config.json".to_string(), |p| p.display().to_string())
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/v2/` → `host:5000`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

#[derive(serde::Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs a credential helper's `get` for `server`.
fn run_helper(
    program: &Path,
    name: &str,
    server: &str,
) -> Result<Option<Credentials>, EngineError> {
    let fail = |message: String| EngineError::CredentialHelper {
        helper: name.to_string(),
        registry: server.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        // The helpers' protocol for "nothing stored": push anonymously, as the CLI does.
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(if msg.is_empty() {
            format!("it exited with {}", out.status)
        } else {
            msg
        }));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(format!(
            "it printed something that is not its JSON reply ({e})"
        ))
    })?;
    Ok(Some(if reply.username == "<token>" {
        Credentials {
            server: server.to_string(),
            username: None,
            password: None,
            identity_token: Some(reply.secret),
        }
    } else {
        Credentials {
            server: server.to_string(),
            username: Some(reply.username),
            password: Some(reply.secret),
            identity_token: None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        DockerConfig {
            path: Some(PathBuf::from("/x/config.json")),
            file: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn registry_of_follows_the_cli() {
        assert_eq!(registry_of("127.0.0.1:5000/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("gcr.io/acme/backend:abc"), "gcr.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("acme/backend:1"), "docker.io");
        assert_eq!(registry_of("backend"), "docker.io");
    }

    #[test]
    fn auths_entries_decode_base64() {
        let c = config(
            r#"{"auths":{"https://127.0.0.1:5000/v2/":{"auth":"dXNlcjpwYTpzcw=="},
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"}}}"#,
        );
        let got = c.credentials_for("127.0.0.1:5000/app:1").unwrap().unwrap();
        assert_eq!(got.username.as_deref(), Some("user"));
        assert_eq!(
            got.password.as_deref(),
            Some("pa:ss"),
            "only the first colon splits"
        );
        let hub = c.credentials_for("acme/app").unwrap().unwrap();
        assert_eq!(hub.username.as_deref(), Some("hub"));
        assert!(c.credentials_for("gcr.io/x/y").unwrap().is_none());
        assert!(!format!("{got:?}").contains("pa:ss"), "Debug hides secrets");
    }

    #[test]
    fn bad_auth_is_an_error_naming_the_registry_not_the_secret() {
        let c = config(r#"{"auths":{"r.example":{"auth":"not base64!"}}}"#);
        let e = c.credentials_for("r.example/app").unwrap_err().to_string();
        assert!(e.contains("r.example"), "{e}");
        assert!(!e.contains("not base64!"), "{e}");
    }

    #[test]
    fn helpers_win_in_the_cli_order() {
        let c = config(
            r#"{"auths":{"gcr.io":{"auth":"dTpw"}},"credsStore":"desktop",
                "credHelpers":{"gcr.io":"gcloud"}}"#,
        );
        let called = std::cell::RefCell::new(Vec::new());
        let fake = |h: &str, s: &str| {
            called.borrow_mut().push(format!("{h} {s}"));
            Ok(None)
        };
        c.credentials_with("gcr.io/acme/x", &fake).unwrap();
        c.credentials_with("acme/x", &fake).unwrap();
        assert_eq!(
            *called.borrow(),
            vec!["gcloud gcr.io".to_string(), format!("desktop {DOCKER_HUB}")]
        );
    }

    #[test]
    fn runs_a_helper_with_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        std::fs::write(
            &script,
            "#!/bin/sh\nread server\ncase \"$server\" in\n  tok.example) echo '{\"ServerURL\":\"tok.example\",\"Username\":\"<token>\",\"Secret\":\"T0K\"}';;\n  none.example) echo 'credentials not found in native keychain'; exit 1;;\n  *) echo \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"u\\\",\\\"Secret\\\":\\\"s\\\"}\";;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let got = run_helper(&script, "fake", "r.example").unwrap().unwrap();
        assert_eq!(got.username.as_deref(), Some("u"));
        assert_eq!(got.password.as_deref(), Some("s"));
        let tok = run_helper(&script, "fake", "tok.example").unwrap().unwrap();
        assert_eq!(tok.identity_token.as_deref(), Some("T0K"));
        assert!(tok.username.is_none());
        assert!(run_helper(&script, "fake", "none.example")
            .unwrap()
            .is_none());
        let missing = run_helper(&dir.path().join("nope"), "nope", "r").unwrap_err();
        assert!(missing.to_string().contains("docker-credential-nope"));
    }

    #[test]
    fn missing_config_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load(Some(dir.path())).unwrap();
        assert!(c.path().is_none());
        assert!(c.credentials_for("127.0.0.1:5000/x").unwrap().is_none());
        std::fs::write(dir.path().join("config.json"), "{ nope").unwrap();
        assert!(DockerConfig::load(Some(dir.path())).is_err());
    }
}
