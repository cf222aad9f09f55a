//! `POST /build` with the classic builder and a streamed context.
//!
//! The context comes from a producer (anything that writes a tar into a `Write`) running on its
//! own thread (see [`super::upload`]). The request goes through our own connection
//! ([`super::http`]) on every transport (unix, tcp, TLS, ssh) and its answer is split into lines
//! of bounded length, so a hostile engine cannot make one line cost memory and junk is a
//! malformed stream, not a disconnect. The NDJSON answer is decoded into [`BuildEvent`]s that go
//! to the caller's callback as they happen and into a [`StepTracker`]. On failure or Ctrl-C the
//! request is dropped — the classic builder then kills and, with `forcerm`, removes its
//! intermediate container — and any container it announced but never said it removed is removed
//! here too.

use super::error::{connect_problem, BoxError, ConnectProblem, EngineError};
use super::events::{BuildEvent, Decoder};
use super::host::Transport;
use super::http::{self, ConnBody};
use super::lines::{LineSplitter, Malformed};
use super::steps::{StepRecord, StepTracker};
use super::{upload, Engine};
use bollard::models::BuildInfo;
use bollard::query_parameters::{RemoveContainerOptions, TagImageOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What to build. Mirrors `docker build` flags that the classic builder honours.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Path of the Dockerfile inside the context tar (default `Dockerfile`).
    pub dockerfile: Option<String>,
    /// `-t`, in order; the first is given to the build, the rest tagged afterwards.
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub platform: Option<String>,
    /// `--cache-from`: images the classic builder may take cached steps from. With any given,
    /// it trusts a local cache hit only when the hit is an ancestor of one of them.
    pub cache_from: Vec<String>,
}

/// A successful build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildOutcome {
    /// The final image, `sha256:…`.
    pub image_id: String,
    pub steps: Vec<StepRecord>,
    pub tags: Vec<String>,
    pub warnings: Vec<String>,
    /// Size of the context tar sent.
    pub upload_bytes: u64,
    pub upload_seconds: f64,
    /// Wall time of the whole request.
    pub seconds: f64,
}

/// One layer of an image's history (`GET /images/{id}/history`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryLayer {
    /// `sha256:…`, or `<missing>` for layers pulled from a registry.
    pub id: String,
    pub size: u64,
    pub created_by: String,
}

/// How often upload progress is reported.
const UPLOAD_TICK: Duration = Duration::from_millis(100);
/// How long to wait for the engine to finish removing a cancelled step's container.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(20);

impl Engine {
    /// Builds an image from a context tar written by `context`, calling `on_event` for every
    /// event as it happens.
    pub fn build<F>(
        &self,
        opts: &BuildOptions,
        context: F,
        on_event: &mut dyn FnMut(&BuildEvent),
    ) -> Result<BuildOutcome, EngineError>
    where
        F: FnOnce(&mut dyn Write) -> Result<(), BoxError> + Send + 'static,
    {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        let started = Instant::now();
        let up = upload::start(context).map_err(|e| EngineError::Context { cause: Box::new(e) })?;
        let state = up.state.clone();
        let mut tracker = StepTracker::new();
        let mut decoder = Decoder::new();
        let mut upload_done: Option<(u64, f64)> = None;
        let mut last_sent = 0u64;

        let result: Result<(), EngineError> = self.rt.block_on(async {
            // Our own connection on every transport: its line splitter bounds what one NDJSON
            // line may cost (bollard's decoder holds a whole line, however long).
            let path = format!("/v{}/build?{}", self.api_version, classic_query(opts));
            let mut stream = std::pin::pin!(own_answer(&self.config.transport, &path, up.body));
            let mut tick = tokio::time::interval(UPLOAD_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // Reports the end of the upload once, before the first step (the classic builder
            // reads the whole context before it starts).
            let finish_upload =
                |upload_done: &mut Option<(u64, f64)>, on_event: &mut dyn FnMut(&BuildEvent)| {
                    if upload_done.is_none() && state.finished.load(Ordering::Relaxed) {
                        let bytes = state.sent.load(Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64();
                        *upload_done = Some((bytes, secs));
                        on_event(&BuildEvent::UploadDone {
                            bytes,
                            seconds: secs,
                        });
                    }
                };
            loop {
                let item = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                    item = stream.next() => item,
                    _ = tick.tick() => {
                        let sent = state.sent.load(Ordering::Relaxed);
                        if upload_done.is_none() && sent != last_sent {
                            last_sent = sent;
                            on_event(&BuildEvent::Upload { bytes: sent });
                        }
                        finish_upload(&mut upload_done, on_event);
                        continue;
                    }
                };
                let events = match item {
                    Some(Msg::Info(info)) => decoder.feed(&info),
                    Some(Msg::Rejected { status, message }) => {
                        return Err(EngineError::BuildRejected { status, message })
                    }
                    Some(Msg::Malformed(message)) => {
                        for ev in decoder.finish() {
                            tracker.observe(&ev, started.elapsed());
                            on_event(&ev);
                        }
                        return Err(EngineError::MalformedStream {
                            host: self.config.host.clone(),
                            step: tracker.last().map(StepRecord::step_ref),
                            message,
                        });
                    }
                    Some(Msg::Broken(e)) => {
                        let mut ev = decoder.finish();
                        for e in ev.drain(..) {
                            tracker.observe(&e, started.elapsed());
                            on_event(&e);
                        }
                        return Err(self.broken(&tracker, e));
                    }
                    None => {
                        let ev = decoder.finish();
                        for e in &ev {
                            tracker.observe(e, started.elapsed());
                            on_event(e);
                        }
                        if tracker.image_id.is_some() {
                            return Ok(());
                        }
                        return Err(EngineError::Disconnected {
                            host: self.config.host.clone(),
                            step: tracker.last().map(StepRecord::step_ref),
                            cause: "the build stream ended without a result".into(),
                        });
                    }
                };
                for e in events {
                    if matches!(e, BuildEvent::StepStarted { .. }) {
                        finish_upload(&mut upload_done, on_event);
                    }
                    tracker.observe(&e, started.elapsed());
                    on_event(&e);
                    if let BuildEvent::Error { message, code } = e {
                        let last = tracker.last();
                        return Err(EngineError::BuildFailed {
                            step: last.map(StepRecord::step_ref),
                            message,
                            code,
                            tail: last
                                .map(|s| s.tail.iter().cloned().collect())
                                .unwrap_or_default(),
                        });
                    }
                }
            }
        });

        if let Err(err) = result {
            // The request (and so the body) is gone; the daemon cancels the step.
            let cleanup = self.remove_leftovers(tracker.leftover_containers());
            if matches!(err, EngineError::Interrupted) {
                // The producer stops at its next write; do not wait for a slow disk.
                return Err(err);
            }
            // A failing producer aborts the request: report its error, not the abort.
            if let Ok(Err(cause)) = up.producer.join() {
                if !matches!(err, EngineError::BuildFailed { .. }) {
                    return Err(EngineError::Context { cause });
                }
            }
            cleanup?;
            return Err(err);
        }

        let upload_bytes = match up.producer.join() {
            Ok(Ok(n)) => n,
            Ok(Err(cause)) => return Err(EngineError::Context { cause }),
            Err(_) => {
                return Err(EngineError::Context {
                    cause: "the context producer panicked".into(),
                })
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let (steps, image_id, mut tags, warnings) = tracker.finish(started.elapsed());
        let image_id = image_id.unwrap_or_default();
        for extra in opts.tags.iter().skip(1) {
            self.tag(&image_id, extra)?;
            tags.push(extra.clone());
        }
        Ok(BuildOutcome {
            image_id,
            steps,
            tags,
            warnings,
            upload_bytes,
            upload_seconds: upload_done.map_or(seconds, |(_, s)| s),
            seconds,
        })
    }

    /// A transport error mid-build: the engine went away, or never answered.
    fn broken(&self, tracker: &StepTracker, e: BoxError) -> EngineError {
        if tracker.steps().is_empty() {
            let (host, from) = (self.config.host.clone(), self.config.source);
            match connect_problem(&*e) {
                Some(ConnectProblem::PermissionDenied) => {
                    return EngineError::PermissionDenied {
                        host,
                        from,
                        cause: e,
                    }
                }
                Some(ConnectProblem::Unreachable) => {
                    return EngineError::Unreachable {
                        host,
                        from,
                        cause: e,
                    }
                }
                None => {}
            }
        }
        EngineError::Disconnected {
            host: self.config.host.clone(),
            step: tracker.last().map(StepRecord::step_ref),
            cause: e,
        }
    }

    /// Force-removes intermediate containers; the engine may be removing them already.
    fn remove_leftovers(&self, containers: &[String]) -> Result<(), EngineError> {
        if containers.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + CLEANUP_PATIENCE;
        self.rt.block_on(async {
            for id in containers {
                loop {
                    let opts = RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    };
                    match self.docker.remove_container(id, Some(opts)).await {
                        Ok(())
                        | Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }) => break,
                        // 409: "removal already in progress" — wait until it is gone.
                        Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 409,
                            ..
                        }) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => {
                            return Err(EngineError::Other {
                                host: self.config.host.clone(),
                                message: format!(
                                    "cannot remove intermediate container {id}: {e} (remove it with `docker rm -f {id}`)"
                                ),
                            })
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Adds `name:tag` to an image.
    pub fn tag(&self, image_id: &str, reference: &str) -> Result<(), EngineError> {
        let (repo, tag) = split_tag(reference);
        let opts = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.rt
            .block_on(self.docker.tag_image(image_id, Some(opts)))
            .map_err(|e| self.api_error(&format!("POST /images/{image_id}/tag"), e))
    }

    /// The layers of an image, newest first, with their sizes.
    pub fn history(&self, image: &str) -> Result<Vec<HistoryLayer>, EngineError> {
        let items = self
            .rt
            .block_on(self.docker.image_history(image))
            .map_err(|e| self.api_error(&format!("GET /images/{image}/history"), e))?;
        Ok(items
            .into_iter()
            .map(|h| HistoryLayer {
                id: h.id,
                size: u64::try_from(h.size).unwrap_or(0),
                created_by: h.created_by,
            })
            .collect())
    }

    /// The image's total size as the engine reports it.
    pub fn image_size(&self, image: &str) -> Result<u64, EngineError> {
        let info = self
            .rt
            .block_on(self.docker.inspect_image(image))
            .map_err(|e| self.api_error(&format!("GET /images/{image}/json"), e))?;
        Ok(info.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }

    /// The ids of all containers (for tests that check nothing was left behind).
    pub fn container_ids(&self) -> Result<Vec<String>, EngineError> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(|e| self.api_error("GET /containers/json", e))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

/// One item of the build answer.
enum Msg {
    Info(Box<BuildInfo>),
    /// The engine refused the request with an HTTP error.
    Rejected {
        status: u16,
        message: String,
    },
    /// Not the engine's JSON message stream; the stream ends here.
    Malformed(String),
    /// The connection failed; the stream ends here.
    Broken(BoxError),
}

/// Where [`own_answer`] is.
enum Reading {
    Start,
    /// The answer (gone once it ended), its line splitter and the messages not yet handed on.
    Body(Option<ConnBody>, LineSplitter, VecDeque<Msg>),
    Done,
}

/// `POST /build` on our own connection: the context streams out as the request body and the
/// answer is split into lines of at most [`super::lines::MAX_LINE`] bytes, each decoded on its own, so
/// memory stays bounded whatever the engine sends.
fn own_answer<'a, S>(
    transport: &'a Transport,
    path: &'a str,
    body: S,
) -> impl Stream<Item = Msg> + Send + 'a
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let mut body = Some(body);
    futures_util::stream::unfold(Reading::Start, move |state| {
        let context = body.take();
        async move {
            let (mut answer, mut lines, mut queue) = match state {
                Reading::Start => {
                    let context = context?;
                    let req = ::http::Request::post(path)
                        .header("Host", "docker")
                        .header("Content-Type", "application/x-tar")
                        .body(StreamBody::new(context.map(|r| r.map(Frame::data))));
                    let req = match req {
                        Ok(r) => r,
                        Err(e) => return Some((Msg::Broken(Box::new(e)), Reading::Done)),
                    };
                    let res = match http::request(transport, req).await {
                        Ok(r) => r,
                        Err(e) => return Some((Msg::Broken(e), Reading::Done)),
                    };
                    if !res.status().is_success() {
                        let msg = match http::error_message(res).await {
                            Ok((status, message)) => Msg::Rejected { status, message },
                            Err(e) => Msg::Broken(e),
                        };
                        return Some((msg, Reading::Done));
                    }
                    (
                        Some(res.into_body()),
                        LineSplitter::default(),
                        VecDeque::new(),
                    )
                }
                Reading::Body(answer, lines, queue) => (answer, lines, queue),
                Reading::Done => return None,
            };
            loop {
                if let Some(msg) = queue.pop_front() {
                    let next = match msg {
                        Msg::Malformed(_) | Msg::Broken(_) => Reading::Done,
                        _ => Reading::Body(answer, lines, queue),
                    };
                    return Some((msg, next));
                }
                // The answer ended and every message went out.
                let a = answer.as_mut()?;
                let mut parse = |line: &[u8]| decode_line(line, &mut queue);
                match a.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if let Err(e) = lines.push(&data, &mut parse) {
                                queue.push_back(Msg::Malformed(e.0));
                            }
                        }
                    }
                    Some(Err(e)) => queue.push_back(Msg::Broken(Box::new(e))),
                    None => {
                        answer = None;
                        if let Err(e) = lines.finish(&mut parse) {
                            queue.push_back(Msg::Malformed(e.0));
                        }
                    }
                }
            }
        }
    })
}

/// One NDJSON line of the classic builder's answer.
fn decode_line(line: &[u8], queue: &mut VecDeque<Msg>) -> Result<(), Malformed> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<BuildInfo>(line) {
        Ok(info) => {
            queue.push_back(Msg::Info(Box::new(info)));
            Ok(())
        }
        Err(e) => Err(Malformed(format!(
            "a line of the build stream is not one of the engine's JSON messages ({e})"
        ))),
    }
}

/// The classic `/build` query, as `docker build` sends it.
fn classic_query(opts: &BuildOptions) -> String {
    let json_map = |pairs: &[(String, String)]| {
        let m: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(m).to_string()
    };
    let mut pairs: Vec<(&str, String)> = vec![
        (
            "dockerfile",
            opts.dockerfile
                .clone()
                .unwrap_or_else(|| "Dockerfile".into()),
        ),
        ("version", "1".into()),
        ("rm", "1".into()),
        // Remove intermediate containers on failure too: nothing is left behind.
        ("forcerm", "1".into()),
    ];
    if let Some(t) = opts.tags.first() {
        pairs.push(("t", t.clone()));
    }
    if opts.no_cache {
        pairs.push(("nocache", "1".into()));
    }
    if opts.pull {
        pairs.push(("pull", "1".into()));
    }
    if !opts.build_args.is_empty() {
        pairs.push(("buildargs", json_map(&opts.build_args)));
    }
    if !opts.labels.is_empty() {
        pairs.push(("labels", json_map(&opts.labels)));
    }
    for (k, v) in [("target", &opts.target), ("platform", &opts.platform)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_string()));
        }
    }
    if !opts.cache_from.is_empty() {
        pairs.push((
            "cachefrom",
            serde_json::to_string(&opts.cache_from).unwrap_or_default(),
        ));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::form_urlencoded(&pairs)
}

/// `host:5000/app:1` → (`host:5000/app`, `1`); no tag → `latest`.
pub(crate) fn split_tag(reference: &str) -> (&str, &str) {
    let name_end = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_end..].rfind(':') {
        Some(i) => (&reference[..name_end + i], &reference[name_end + i + 1..]),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(
            split_tag("127.0.0.1:5000/app:1"),
            ("127.0.0.1:5000/app", "1")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "latest")
        );
        assert_eq!(split_tag("app"), ("app", "latest"));
        assert_eq!(split_tag("acme/app:v2.1"), ("acme/app", "v2.1"));
    }

    #[test]
    fn classic_query_asks_for_the_classic_builder_and_cleans_up() {
        let opts = BuildOptions {
            tags: vec!["app:1".into(), "app:latest".into()],
            build_args: vec![("A".into(), "x y".into())],
            cache_from: vec!["app:0".into()],
            no_cache: true,
            ..Default::default()
        };
        let q = classic_query(&opts);
        for part in [
            "dockerfile=Dockerfile",
            "version=1",
            "rm=1",
            "forcerm=1",
            "t=app%3A1",
            "nocache=1",
            "buildargs=%7B%22A%22%3A%22x%20y%22%7D",
            "cachefrom=%5B%22app%3A0%22%5D",
        ] {
            assert!(q.split('&').any(|p| p == part), "{part} in {q}");
        }
        // Only the first tag goes to the build; the rest are tagged afterwards.
        assert!(!q.contains("latest"), "{q}");
        assert!(!q.contains("pull="), "{q}");
        assert!(!q.contains("target="), "{q}");
    }

    #[test]
    fn undecodable_lines_are_malformed_and_blank_ones_skipped() {
        let mut q = VecDeque::new();
        decode_line(b"  \r", &mut q).unwrap();
        assert!(q.is_empty());
        decode_line(br#"{"stream":"Step 1/1 : FROM x\n"}"#, &mut q).unwrap();
        assert!(matches!(q.pop_front(), Some(Msg::Info(i)) if i.stream.is_some()));
        let e = decode_line(br#"{"stream":12}"#, &mut q).unwrap_err();
        assert!(e.0.contains("not one of the engine's JSON messages"), "{e}");
        assert!(decode_line(b"<html>", &mut q).is_err());
    }
}
