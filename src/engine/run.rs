//! Running a container for `smoke`: create it under resource limits, start, inspect, sample its
//! memory, read its last log lines, exec a command, and remove it.
//!
//! Returns our own data ([`RunSpec`] in, [`ContainerState`], [`ImageArch`] out); no HTTP or
//! bollard type leaves this file. Removal never looks at the cancel token: it is what runs
//! *after* a Ctrl-C, so it must not be cancelled itself.

use super::{Engine, EngineError};
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StatsOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::IpAddr;

/// Lines kept from a container's log tail.
pub const LOG_TAIL_LINES: usize = 20;
/// The most bytes read from one exec's output (a socket table is a few KiB).
const EXEC_OUTPUT_LIMIT: usize = 1 << 20;
/// The most bytes kept of one log line.
const LOG_LINE_LIMIT: usize = 4096;

/// What to run, and under which limits.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub image: String,
    /// `KEY=VALUE` pairs.
    pub env: Vec<(String, String)>,
    /// Bytes; swap is set to the same value, so the container gets no swap (Cloud Run has none).
    pub memory: u64,
    /// CPUs, e.g. 0.5.
    pub cpus: f64,
    pub labels: Vec<(String, String)>,
    /// e.g. `linux/amd64`: the engine refuses to run an image of another platform.
    pub platform: Option<String>,
}

/// The running (or finished) container as inspect sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerState {
    pub running: bool,
    pub oom_killed: bool,
    pub exit_code: Option<i64>,
    /// The host pid of the container's first process (0 once it has exited).
    pub pid: Option<u32>,
    pub restart_count: u64,
    /// The container's address on its first network (the default bridge).
    pub ip: Option<IpAddr>,
    /// The engine's error starting it, if any.
    pub error: Option<String>,
}

/// An image's platform as the engine records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArch {
    pub os: String,
    pub architecture: String,
}

/// Memory figures of a running container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    pub usage: Option<u64>,
    /// The cgroup's high-water mark (cgroup v1 only; v2 engines omit it).
    pub max_usage: Option<u64>,
}

impl Engine {
    /// Creates a container (not started) and returns its id.
    pub fn create_container(&self, spec: &RunSpec) -> Result<String, EngineError> {
        let memory = i64::try_from(spec.memory).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((spec.cpus * 1e9).round() as i64),
            // Cloud Run does not restart a container that failed to start; neither do we.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.iter().cloned().collect::<HashMap<_, _>>()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: None,
            platform: spec.platform.clone().unwrap_or_default(),
        };
        self.rt
            .block_on(self.docker.create_container(Some(opts), body))
            .map(|r| r.id)
            .map_err(|e| self.api_error("POST /containers/create", e))
    }

    pub fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.rt
            .block_on(self.docker.start_container(id, None))
            .map_err(|e| self.api_error(&format!("POST /containers/{id}/start"), e))
    }

    pub fn inspect_container(&self, id: &str) -> Result<ContainerState, EngineError> {
        let r = self
            .rt
            .block_on(self.docker.inspect_container(id, None))
            .map_err(|e| self.api_error(&format!("GET /containers/{id}/json"), e))?;
        let state = r.state.unwrap_or_default();
        let ip = r
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                // Sorted so the choice does not depend on map order.
                let mut nets: Vec<_> = nets.into_iter().collect();
                nets.sort_by(|a, b| a.0.cmp(&b.0));
                nets.into_iter()
                    .filter_map(|(_, ep)| ep.ip_address)
                    .find(|ip| !ip.is_empty())
            })
            .and_then(|ip| ip.parse().ok());
        Ok(ContainerState {
            running: state.running.unwrap_or(false),
            oom_killed: state.oom_killed.unwrap_or(false),
            exit_code: state.exit_code,
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            restart_count: r
                .restart_count
                .and_then(|c| u64::try_from(c).ok())
                .unwrap_or(0),
            ip,
            error: state.error.filter(|e| !e.is_empty()),
        })
    }

    /// One memory sample (the engine answers at once with `one-shot`).
    pub fn memory_sample(&self, id: &str) -> Result<MemorySample, EngineError> {
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(id, Some(opts));
        let first = self.rt.block_on(stream.next());
        match first {
            None => Ok(MemorySample::default()),
            Some(Err(e)) => Err(self.api_error(&format!("GET /containers/{id}/stats"), e)),
            Some(Ok(s)) => {
                let m = s.memory_stats.unwrap_or_default();
                Ok(MemorySample {
                    usage: m.usage,
                    max_usage: m.max_usage,
                })
            }
        }
    }

    /// The last `lines` lines of stdout and stderr, interleaved as written.
    pub fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let request = format!("GET /containers/{id}/logs");
        self.rt.block_on(async {
            let mut stream = self.docker.logs(id, Some(opts));
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.api_error(&request, e))?;
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                // The engine sends at most `lines` lines; a line without newlines is cut here.
                if text.len() > lines.saturating_mul(LOG_LINE_LIMIT) {
                    break;
                }
            }
            let mut out: Vec<String> = text
                .lines()
                .map(|l| l.chars().take(LOG_LINE_LIMIT).collect())
                .collect();
            let skip = out.len().saturating_sub(lines);
            out.drain(..skip);
            Ok(out)
        })
    }

    /// Runs `cmd` in the container and returns its stdout (bounded).
    pub fn exec_output(&self, id: &str, cmd: &[&str]) -> Result<String, EngineError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let request = format!("POST /containers/{id}/exec");
        self.rt.block_on(async {
            let exec = self
                .docker
                .create_exec(
                    id,
                    CreateExecOptions {
                        attach_stdout: Some(true),
                        attach_stderr: Some(false),
                        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| self.api_error(&request, e))?;
            let started = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| self.api_error(&request, e))?;
            let mut out = Vec::new();
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    let chunk = chunk.map_err(|e| self.api_error(&request, e))?;
                    out.extend_from_slice(&chunk.into_bytes());
                    if out.len() > EXEC_OUTPUT_LIMIT {
                        out.truncate(EXEC_OUTPUT_LIMIT);
                        break;
                    }
                }
            }
            let inspected = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| self.api_error(&request, e))?;
            match inspected.exit_code {
                Some(0) | None => Ok(String::from_utf8_lossy(&out).into_owned()),
                Some(code) => Err(EngineError::Other {
                    host: self.config.host.clone(),
                    message: format!("{} exited with {code} in the container", cmd.join(" ")),
                }),
            }
        })
    }

    /// Removes a container and its anonymous volumes, killing it first. A container already
    /// gone is not an error. Never cancelled: this is the clean-up after a Ctrl-C.
    pub fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .rt
            .block_on(self.docker.remove_container(id, Some(opts)))
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.api_error(&format!("DELETE /containers/{id}"), e)),
        }
    }

    /// Ids of every container (running or not) carrying `label` (`KEY` or `KEY=VALUE`).
    pub fn containers_labelled(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![label.to_string()],
            )])),
            ..Default::default()
        };
        self.rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map(|cs| cs.into_iter().filter_map(|c| c.id).collect())
            .map_err(|e| self.api_error("GET /containers/json", e))
    }

    /// The platform an image was built for.
    pub fn image_arch(&self, image: &str) -> Result<ImageArch, EngineError> {
        let r = self
            .rt
            .block_on(self.docker.inspect_image(image))
            .map_err(|e| self.api_error(&format!("GET /images/{image}/json"), e))?;
        Ok(ImageArch {
            os: r.os.unwrap_or_default(),
            architecture: r.architecture.unwrap_or_default(),
        })
    }

    /// Whether the engine runs on this machine (a local socket), so its containers' host pids
    /// are this machine's.
    pub fn is_local(&self) -> bool {
        matches!(self.config.transport, super::Transport::Unix(_))
    }

    /// Sleeps, waking early when the run is cancelled; returns whether it was.
    pub fn sleep_or_cancelled(&self, d: std::time::Duration) -> bool {
        let token = self.cancel.clone();
        self.rt.block_on(async {
            tokio::select! {
                _ = token.cancelled() => true,
                _ = tokio::time::sleep(d) => false,
            }
        })
    }
}
