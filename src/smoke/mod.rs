//! `smoke` as a library use case: start a service's image on the engine under its Cloud Run
//! limits (memory without swap, CPUs, `$PORT`, linux/amd64) and measure what Cloud Run's
//! startup would see — time to the first accepted TCP connection, to the first HTTP answer and
//! to `health_path` 200, peak memory, OOM kills, exits with their last log lines, sockets bound
//! to the wrong port or to loopback only — then remove the container, also on Ctrl-C.
//!
//! [`smoke`] builds the image through [`image::build`] unless one is given, runs one profile
//! (the service's `[deploy]`) or, with `sweep`, the Cloud Run profiles from the smallest up, and
//! returns a [`SmokeOutcome`]. Nothing here prints or picks exit codes.

pub mod envfile;
pub mod probe;
pub mod sockets;
pub mod sweep;

use crate::config::Settings;
use crate::diagnostics::{diagnose, ResultExt};
use crate::engine::{Engine, EngineConfig, EngineError, RunSpec, LOG_TAIL_LINES};
use crate::events::Sink;
use crate::image::{self, ImageRequest};
use crate::service::config::format_memory;
use crate::service::{Config, Service};
use serde::Serialize;
use sockets::{Listener, PortState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use sweep::Profile;

/// Cloud Run's default startup probe: TCP on `$PORT`, 240 s.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(240);
/// The label every smoke container carries (value: the service), so leftovers can be found.
pub const LABEL: &str = "io.ctxbuild.smoke";
/// Cloud Run runs linux/amd64 images only.
pub const PLATFORM: &str = "linux/amd64";
/// How often the container is looked at while it starts.
const TICK: Duration = Duration::from_millis(100);
/// How long a ready container is still watched, so a crash or OOM kill right after the first
/// answer is seen.
const SETTLE: Duration = Duration::from_millis(1500);
/// A TCP-to-ready gap at least this long is reported.
const GAP_WARN: Duration = Duration::from_secs(1);
/// Peak memory above this share of the limit leaves no margin.
const MEMORY_MARGIN: f64 = 0.8;
/// How often memory is sampled.
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// The most bytes read of one socket table.
const SOCKET_TABLE_LIMIT: u64 = 1 << 20;

/// What to smoke-test, as asked.
#[derive(Debug, Clone)]
pub struct SmokeRequest {
    /// How to build the image (its config path, service and engine host are used in any case).
    pub build: ImageRequest,
    /// Run this image instead of building one.
    pub image: Option<String>,
    /// How long the container may take to listen on `$PORT` (and answer).
    pub budget: Duration,
    /// Run the Cloud Run profiles from the smallest up instead of the deploy's own.
    pub sweep: bool,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Cloud Run would fail this start (the run fails).
    Error,
    /// It starts, but Cloud Run would punish it.
    Warning,
}

/// What was found, for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    NotListening,
    WrongPort,
    LoopbackOnly,
    Exited,
    OomKilled,
    HealthNotOk,
    NoHttpAnswer,
    TcpBeforeReady,
    MemoryTight,
    Platform,
}

/// One thing smoke found, with the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
    pub hint: String,
}

/// One start of the image under one profile.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeRun {
    pub profile: Profile,
    pub port: u16,
    /// Milliseconds from start to the first accepted TCP connection on `$PORT`.
    pub tcp_ms: Option<u64>,
    /// … to the first HTTP answer (any status) on `/`.
    pub http_ms: Option<u64>,
    /// `health_path` when ctxbuild.toml sets it (then it must answer 200); unset, the first HTTP
    /// answer is the readiness signal, as for the template's HEALTHCHECK.
    pub health_path: Option<String>,
    /// … to `health_path` answering 200.
    pub health_ms: Option<u64>,
    /// The last status `health_path` answered.
    pub health_status: Option<u16>,
    /// Bytes (the cgroup's high-water mark where the engine reports it).
    pub peak_memory: Option<u64>,
    pub oom_killed: bool,
    /// Set when the container exited during the run.
    pub exit_code: Option<i64>,
    pub restarts: u64,
    /// Listening sockets seen at the end of the run.
    pub listeners: Vec<Listener>,
    /// The container's last log lines, when it failed.
    pub logs: Vec<String>,
    pub findings: Vec<Finding>,
    /// No error finding.
    pub passed: bool,
    /// Passed with memory and time to spare (peak ≤ 80 % of the limit, ready in half the budget).
    pub margin: bool,
}

/// Everything one `smoke` found.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeOutcome {
    pub service: String,
    pub image: String,
    /// `os/architecture` of the image.
    pub platform: String,
    pub budget_secs: u64,
    pub runs: Vec<SmokeRun>,
    /// With `--sweep`: the smallest profile that passed with margin.
    pub smallest_passing: Option<Profile>,
    /// Findings about the image itself (its platform).
    pub findings: Vec<Finding>,
}

impl SmokeOutcome {
    /// Whether the run should exit 0: the single run passed, or the sweep found a profile.
    pub fn passed(&self) -> bool {
        if self.runs.len() > 1 || self.smallest_passing.is_some() {
            self.smallest_passing.is_some()
        } else {
            self.runs.iter().all(|r| r.passed)
        }
    }
}

/// Builds (unless given) and smoke-tests a service's image.
pub fn smoke(
    req: &SmokeRequest,
    settings: &Settings,
    sink: &dyn Sink,
) -> anyhow::Result<SmokeOutcome> {
    let config = Config::load(&req.build.config_path).map_err(diagnose)?;
    let svc = config
        .service(&req.build.service)
        .map_err(diagnose)?
        .clone();

    // Read before anything runs: a bad env file is the user's to fix, not a failed start.
    // Its values go into a container of the project's image: a symbolic link planted in a
    // cloned repository must not hand it another project's secrets.
    let env = match &svc.env_file {
        Some(rel) => {
            match config.contained(std::path::Path::new(rel), "env_file") {
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    return Err(anyhow::anyhow!(
                        "{e} ({}:{})",
                        config.path.display(),
                        svc.pos("env_file").line
                    ))
                    .hint("copy the file into the project, or declare where it really is (`env_file = \"../…\"`)");
                }
                _ => {}
            }
            envfile::read(&config.root.join(rel), rel).map_err(diagnose)?
        }
        None => Vec::new(),
    };

    let engine_config =
        EngineConfig::from_env(req.build.engine_host.as_deref()).map_err(diagnose)?;
    let engine = Engine::connect(&engine_config).map_err(diagnose)?;
    // Registered before the build, so a Ctrl-C at any point reaches this engine too.
    engine.cancel_on_signals().map_err(diagnose)?;

    let image = match &req.image {
        Some(image) => image.clone(),
        None => {
            let report = image::build(&req.build, settings, sink)?.report;
            // The tag names the final image; the report's id has been seen naming an earlier
            // stage of a multi-stage build.
            report.tags.first().cloned().unwrap_or(report.image_id)
        }
    };
    if engine.is_cancelled() {
        return Err(diagnose(EngineError::Interrupted));
    }
    let arch = engine.image_arch(&image).map_err(diagnose)?;
    let platform = format!("{}/{}", arch.os, arch.architecture);
    let mut findings = Vec::new();
    if platform != PLATFORM {
        findings.push(Finding {
            kind: FindingKind::Platform,
            severity: Severity::Error,
            message: format!("the image is {platform}; Cloud Run runs {PLATFORM} only"),
            hint: format!("build with --platform {PLATFORM}"),
        });
    }

    let profiles = if req.sweep {
        sweep::profiles()
    } else {
        vec![Profile::of(&svc)]
    };
    let mut runs = Vec::new();
    let mut smallest_passing = None;
    for profile in profiles {
        let run = run_one(&engine, &image, &svc, &env, profile, req.budget)?;
        let good = run.passed && run.margin;
        runs.push(run);
        if req.sweep && good {
            smallest_passing = Some(profile);
            break;
        }
    }
    if !findings.is_empty() {
        for r in &mut runs {
            r.passed = false;
        }
        smallest_passing = None;
    }
    Ok(SmokeOutcome {
        service: svc.name.clone(),
        image,
        platform,
        budget_secs: req.budget.as_secs(),
        runs,
        smallest_passing,
        findings,
    })
}

/// Removes the container when dropped, whatever happened (errors, `?`, panics).
struct Removal<'a> {
    engine: &'a Engine,
    id: Option<String>,
}

impl Removal<'_> {
    fn finish(mut self) -> Result<(), EngineError> {
        match self.id.take() {
            Some(id) => self.engine.remove_container(&id),
            None => Ok(()),
        }
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.engine.remove_container(&id);
        }
    }
}

/// What the watch loop saw.
#[derive(Debug, Default)]
struct Watch {
    tcp: Option<Duration>,
    http: Option<Duration>,
    health: Option<Duration>,
    health_status: Option<u16>,
    peak: Option<u64>,
    exited: bool,
    timed_out: bool,
    pid: Option<u32>,
}

/// Starts the image once under `profile` and watches it until it is ready (and a little
/// longer), exits, or runs out of budget.
fn run_one(
    engine: &Engine,
    image: &str,
    svc: &Service,
    env: &[(String, String)],
    profile: Profile,
    budget: Duration,
) -> anyhow::Result<SmokeRun> {
    let port = svc.deploy_port();
    // PORT last: Cloud Run sets it whatever the deploy's variables say.
    let mut vars: Vec<(String, String)> =
        env.iter().filter(|(k, _)| k != "PORT").cloned().collect();
    vars.push(("PORT".into(), port.to_string()));
    let spec = RunSpec {
        image: image.to_string(),
        env: vars,
        memory: profile.memory,
        cpus: profile.cpu,
        labels: vec![(LABEL.to_string(), svc.name.clone())],
        platform: Some(PLATFORM.to_string()),
    };
    let id = engine.create_container(&spec).map_err(diagnose)?;
    let removal = Removal {
        engine,
        id: Some(id.clone()),
    };
    let watched = watch(engine, &id, svc, port, budget);
    let result = watched.and_then(|w| conclude(engine, &id, svc, profile, port, budget, w));
    // An interrupt still removes the container, then reports the interrupt.
    let removed = removal.finish();
    let run = result.map_err(diagnose)?;
    removed.map_err(diagnose)?;
    Ok(run)
}

fn watch(
    engine: &Engine,
    id: &str,
    svc: &Service,
    port: u16,
    budget: Duration,
) -> Result<Watch, EngineError> {
    engine.start_container(id)?;
    let t0 = Instant::now();
    let mut w = Watch::default();
    let health_path = configured_health(svc);
    let health_path = health_path.as_deref();
    let mut last_sample: Option<Instant> = None;
    let mut ready_at: Option<Instant> = None;
    loop {
        let elapsed = t0.elapsed();
        let state = engine.inspect_container(id)?;
        w.pid = state.pid.or(w.pid);
        if last_sample.is_none_or(|t| t.elapsed() >= MEMORY_EVERY) {
            last_sample = Some(Instant::now());
            sample_memory(engine, id, &mut w);
        }
        if !state.running {
            w.exited = true;
            break;
        }
        let addr = state.ip.map(|ip| SocketAddr::new(ip, port));
        if let Some(addr) = addr {
            if w.tcp.is_none() && probe::tcp_accepts(addr, Duration::from_millis(200)) {
                w.tcp = Some(t0.elapsed());
            }
            if w.tcp.is_some()
                && w.http.is_none()
                && probe::http_status(addr, "/", Duration::from_secs(1)).is_some()
            {
                w.http = Some(t0.elapsed());
            }
            if let (Some(_), None, Some(path)) = (w.http, w.health, health_path) {
                w.health_status = probe::http_status(addr, path, Duration::from_secs(2));
                if w.health_status == Some(200) {
                    w.health = Some(t0.elapsed());
                }
            }
        }
        let ready = if health_path.is_some() {
            w.health
        } else {
            w.http
        };
        if ready.is_some() {
            let at = *ready_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= SETTLE {
                break;
            }
        } else if elapsed >= budget {
            w.timed_out = true;
            break;
        }
        if engine.sleep_or_cancelled(TICK) {
            return Err(EngineError::Interrupted);
        }
    }
    Ok(w)
}

/// The health path, when ctxbuild.toml sets one.
fn configured_health(svc: &Service) -> Option<String> {
    svc.positions
        .contains_key("health_path")
        .then(|| svc.health_path.clone())
}

fn sample_memory(engine: &Engine, id: &str, w: &mut Watch) {
    // A container that just exited has no stats: the earlier samples stand.
    if let Ok(m) = engine.memory_sample(id) {
        let seen = m.max_usage.into_iter().chain(m.usage).max();
        w.peak = w.peak.max(seen);
    }
}

/// Turns what was seen into a run with findings.
fn conclude(
    engine: &Engine,
    id: &str,
    svc: &Service,
    profile: Profile,
    port: u16,
    budget: Duration,
    mut w: Watch,
) -> Result<SmokeRun, EngineError> {
    let state = engine.inspect_container(id)?;
    let mut listeners = Vec::new();
    if state.running {
        sample_memory(engine, id, &mut w);
        listeners = read_listeners(engine, id, state.pid.or(w.pid));
    }
    let mut findings = Vec::new();
    let mem = format_memory(profile.memory);
    let secs = budget.as_secs();
    let oom = state.oom_killed;
    if oom {
        findings.push(Finding {
            kind: FindingKind::OomKilled,
            severity: Severity::Error,
            message: format!("the container was OOM-killed: it needed more than the {mem} limit"),
            hint: "raise [deploy] memory in ctxbuild.toml (try `ctxbuild smoke SERVICE --sweep`), or use fewer workers".into(),
        });
    }
    let exited = w.exited || !state.running;
    if exited && !oom {
        let code = state.exit_code.unwrap_or(-1);
        let when = if w.tcp.is_none() {
            "before listening on $PORT"
        } else {
            "after it started listening"
        };
        findings.push(Finding {
            kind: FindingKind::Exited,
            severity: Severity::Error,
            message: format!("the container exited with code {code} {when}"),
            hint: "its last log lines are below".into(),
        });
    }
    if w.timed_out {
        match sockets::port_state(&listeners, port) {
            PortState::WrongPort(ports) => findings.push(Finding {
                kind: FindingKind::WrongPort,
                severity: Severity::Error,
                message: format!(
                    "listening on the wrong port: {} while PORT is {port}",
                    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                ),
                hint: "bind to $PORT (gunicorn --bind 0.0.0.0:$PORT); Cloud Run sends traffic only there".into(),
            }),
            PortState::LoopbackOnly => findings.push(Finding {
                kind: FindingKind::LoopbackOnly,
                severity: Severity::Error,
                message: format!("listening on 127.0.0.1 only (port {port}): unreachable from outside the container"),
                hint: format!("bind to 0.0.0.0:{port} (gunicorn --bind 0.0.0.0:$PORT)"),
            }),
            PortState::Listening if w.tcp.is_none() => findings.push(Finding {
                kind: FindingKind::NotListening,
                severity: Severity::Error,
                message: format!("port {port} listens inside the container but accepted no connection within {secs} s"),
                hint: "the engine's bridge network may not be reachable from here (a remote engine?)".into(),
            }),
            _ if w.tcp.is_none() => findings.push(Finding {
                kind: FindingKind::NotListening,
                severity: Severity::Error,
                message: format!("did not listen on PORT {port} within the {secs} s budget"),
                hint: format!("Cloud Run would fail the deploy (\"failed to start and listen on the port defined by the PORT environment variable\"); start faster (precompiled bytecode, fewer imports at start-up) or give it more CPU/memory; measured with {} CPU / {mem}", profile.cpu),
            }),
            _ if w.http.is_none() => findings.push(Finding {
                kind: FindingKind::NoHttpAnswer,
                severity: Severity::Error,
                message: format!("port {port} accepted connections but no HTTP answer came within the {secs} s budget"),
                hint: "the workers never became ready: look at the logs below".into(),
            }),
            _ => findings.push(Finding {
                kind: FindingKind::HealthNotOk,
                severity: Severity::Error,
                message: format!(
                    "{} answered {} instead of 200 within the {secs} s budget",
                    svc.health_path,
                    w.health_status.map_or_else(|| "nothing".to_string(), |s| s.to_string())
                ),
                hint: "serve 200 on health_path, or set health_path in ctxbuild.toml to the path the app serves".into(),
            }),
        }
    }
    let health_path = configured_health(svc);
    let ready = if health_path.is_some() {
        w.health
    } else {
        w.http
    };
    if let (Some(tcp), Some(ready)) = (w.tcp, ready) {
        let gap = ready.saturating_sub(tcp);
        if gap >= GAP_WARN {
            findings.push(Finding {
                kind: FindingKind::TcpBeforeReady,
                severity: Severity::Warning,
                message: format!(
                    "port {port} accepted connections {:.1} s before the app answered: Cloud Run's default TCP startup probe would send traffic to an instance that is not ready",
                    gap.as_secs_f64()
                ),
                hint: format!("configure an HTTP startup probe on {} (or start gunicorn with --preload so workers fork after the app is imported)", health_path.as_deref().unwrap_or(&svc.health_path)),
            });
        }
    }
    let tight = w
        .peak
        .is_some_and(|p| p as f64 > profile.memory as f64 * MEMORY_MARGIN);
    if tight && !oom {
        findings.push(Finding {
            kind: FindingKind::MemoryTight,
            severity: Severity::Warning,
            message: format!("peak memory {} is over {:.0} % of the {mem} limit", shown_memory(w.peak), MEMORY_MARGIN * 100.0),
            hint: "traffic will need more: raise [deploy] memory (`ctxbuild smoke SERVICE --sweep` finds the smallest that fits)".into(),
        });
    }
    let passed = !findings.iter().any(|f| f.severity == Severity::Error);
    let margin = passed && !tight && ready.is_some_and(|r| r <= budget / 2);
    let logs = if passed {
        Vec::new()
    } else {
        engine.logs_tail(id, LOG_TAIL_LINES).unwrap_or_default()
    };
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    Ok(SmokeRun {
        profile,
        port,
        tcp_ms: ms(w.tcp),
        http_ms: ms(w.http),
        health_path,
        health_ms: ms(w.health),
        health_status: w.health_status,
        peak_memory: w.peak,
        oom_killed: oom,
        exit_code: if exited { state.exit_code } else { None },
        restarts: state.restart_count,
        listeners,
        logs,
        findings,
        passed,
        margin,
    })
}

fn shown_memory(b: Option<u64>) -> String {
    b.map_or_else(
        || "unknown".into(),
        |b| format!("{} MiB", b / (1024 * 1024)),
    )
}

/// The container's listening sockets: from the host's view of its init process's network
/// namespace (works on scratch images, needs a local engine), else by `cat` in the container.
fn read_listeners(engine: &Engine, id: &str, pid: Option<u32>) -> Vec<Listener> {
    let mut out = Vec::new();
    let mut read_any = false;
    if let Some(pid) = pid.filter(|_| engine.is_local()) {
        for table in ["tcp", "tcp6"] {
            let path = std::path::PathBuf::from(format!("/proc/{pid}/net/{table}"));
            if let Ok(bytes) = crate::fsutil::read_limited(&path, SOCKET_TABLE_LIMIT) {
                read_any = true;
                out.extend(sockets::parse_table(&String::from_utf8_lossy(&bytes)));
            }
        }
    }
    if !read_any {
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            if let Ok(text) = engine.exec_output(id, &["cat", table]) {
                out.extend(sockets::parse_table(&text));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
