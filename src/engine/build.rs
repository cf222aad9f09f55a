//! `POST /build` with the classic builder and a streamed context.
//!
//! The context comes from a producer (anything that writes a tar into a `Write`) running on its
//! own thread (see [`super::upload`]). The NDJSON answer is decoded into [`BuildEvent`]s that go
//! to the caller's callback as they happen and into a [`StepTracker`]. On failure or Ctrl-C the
//! request is dropped — the classic builder then kills and, with `forcerm`, removes its
//! intermediate container — and any container it announced but never said it removed is removed
//! here too.

use super::error::{connect_problem, BoxError, EngineError};
use super::events::{BuildEvent, Decoder};
use super::steps::{StepRecord, StepTracker};
use super::{upload, Engine};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, RemoveContainerOptions, TagImageOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
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
        let options = BuildImageOptions {
            dockerfile: opts
                .dockerfile
                .clone()
                .unwrap_or_else(|| "Dockerfile".into()),
            t: opts.tags.first().cloned(),
            nocache: opts.no_cache,
            pull: opts.pull.then(|| "true".to_string()),
            rm: true,
            // Remove intermediate containers on failure too: nothing is left behind.
            forcerm: true,
            buildargs: (!opts.build_args.is_empty())
                .then(|| opts.build_args.iter().cloned().collect::<HashMap<_, _>>()),
            labels: (!opts.labels.is_empty())
                .then(|| opts.labels.iter().cloned().collect::<HashMap<_, _>>()),
            platform: opts.platform.clone().unwrap_or_default(),
            target: opts.target.clone().unwrap_or_default(),
            cachefrom: (!opts.cache_from.is_empty()).then(|| opts.cache_from.clone()),
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };

        let mut tracker = StepTracker::new();
        let mut decoder = Decoder::new();
        let mut upload_done: Option<(u64, f64)> = None;
        let mut last_sent = 0u64;

        let result: Result<(), EngineError> = self.rt.block_on(async {
            let mut stream =
                self.docker
                    .build_image(options, None, Some(bollard::body_try_stream(up.body)));
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
                    Some(Ok(info)) => decoder.feed(&info),
                    Some(Err(bollard::errors::Error::DockerStreamError { error })) => {
                        decoder.feed_error(&error)
                    }
                    Some(Err(bollard::errors::Error::DockerResponseServerError {
                        status_code,
                        message,
                    })) => {
                        return Err(EngineError::BuildRejected {
                            status: status_code,
                            message,
                        })
                    }
                    Some(Err(
                        e @ (bollard::errors::Error::JsonSerdeError { .. }
                        | bollard::errors::Error::JsonDataError { .. }),
                    )) => {
                        for ev in decoder.finish() {
                            tracker.observe(&ev, started.elapsed());
                            on_event(&ev);
                        }
                        return Err(EngineError::MalformedStream {
                            host: self.config.host.clone(),
                            step: tracker.last().map(StepRecord::step_ref),
                            message: e.to_string(),
                        });
                    }
                    Some(Err(e)) => {
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
    fn broken(&self, tracker: &StepTracker, e: bollard::errors::Error) -> EngineError {
        if tracker.steps().is_empty() && connect_problem(&e).is_some() {
            return super::classify_connect(&self.config, e);
        }
        EngineError::Disconnected {
            host: self.config.host.clone(),
            step: tracker.last().map(StepRecord::step_ref),
            cause: Box::new(e),
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
}
