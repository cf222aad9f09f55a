//! Builds with the engine's embedded BuildKit: a session that serves the context, a
//! `POST /build?version=2` whose trace is decoded into the same [`BuildEvent`]s and
//! [`StepRecord`]s as the classic path, so the display and the report need no special case.
//!
//! The context is never tarred: the daemon pulls what it needs over the session's FileSync
//! ([`filesync`]), from the entries the caller scanned. On failure or Ctrl-C the build request
//! and the session are dropped, which makes the daemon cancel the solve; BuildKit leaves no
//! containers behind. Layer sizes come from the final image's history, matched to the steps of
//! the last stage (BuildKit images have no per-step image ids).

pub mod filesync;
pub mod session;
pub mod trace;

pub use filesync::Sources;
pub use trace::Numbering;

use super::build::{BuildOptions, BuildOutcome, HistoryLayer};
use super::error::EngineError;
use super::events::BuildEvent;
use super::http::{error_message, form_urlencoded};
use super::lines::{LineSplitter, Malformed};
use super::steps::StepRecord;
use super::Engine;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use trace::{Ending, Trace};

/// What a BuildKit build needs beyond [`BuildOptions`].
#[derive(Debug)]
pub struct BuildKitInput {
    pub sources: Sources,
    /// Maps BuildKit's per-stage step numbers onto the classic builder's.
    pub numbering: Numbering,
    /// Registry credentials BuildKit may ask for over the session (pulling a base image).
    pub credentials: Option<super::DockerConfig>,
}

impl Engine {
    /// Builds with BuildKit, calling `on_event` for every event as it happens.
    pub fn build_buildkit(
        &self,
        opts: &BuildOptions,
        input: BuildKitInput,
        on_event: &mut dyn FnMut(&BuildEvent),
    ) -> Result<BuildOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        let started = Instant::now();
        let host = self.config.host.clone();
        let transport = self.config.transport.clone();
        let shared_key = blake3::hash(
            format!(
                "ctxbuild:{}",
                input.sources.root.as_os_str().to_string_lossy()
            )
            .as_bytes(),
        )
        .to_hex()
        .to_string();
        let dockerfile_name = input.sources.dockerfile_name.clone();
        let sources = Arc::new(input.sources);
        let sent = Arc::new(filesync::Transfer::new(started));
        let credentials = input.credentials.map(Arc::new);
        let numbering = input.numbering.clone();
        let mut trace = Trace::new(input.numbering);

        let result: Result<(), EngineError> = self.rt.block_on(async {
            let broken = |cause: session::IoError| EngineError::Disconnected {
                host: host.clone(),
                step: None,
                cause,
            };
            let session = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                s = session::start(&transport, &self.api_version, sources, Arc::clone(&sent), credentials, &shared_key) => match s {
                    Ok(s) => s,
                    Err(e) => return Err(match e.downcast::<session::Refused>() {
                        Ok(r) => EngineError::Api {
                            host: host.clone(),
                            request: "POST /session".into(),
                            status: r.status,
                            message: r.message,
                        },
                        Err(e) if super::error::connect_problem(&*e).is_some() => {
                            EngineError::Unreachable {
                                host: host.clone(),
                                from: self.config.source,
                                cause: e,
                            }
                        }
                        Err(e) => broken(e),
                    }),
                },
            };
            let query = build_query(opts, &session.id, &dockerfile_name);
            let path = format!("/v{}/build?{query}", self.api_version);
            let res = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                r = session::build(&transport, &path) => r.map_err(broken)?,
            };
            if !res.status().is_success() {
                let (status, message) = error_message(res).await.map_err(broken)?;
                return Err(EngineError::BuildRejected { status, message });
            }
            let mut body = res.into_body();
            let mut lines = LineSplitter::default();
            let malformed = |trace: &Trace, message: String| EngineError::MalformedStream {
                host: host.clone(),
                step: trace.failing().map(|s| s.step_ref()),
                message,
            };
            let mut handle = |trace: &mut Trace, line: &[u8]| -> Result<(), Malformed> {
                for e in trace.feed_line(line)? {
                    on_event(&e);
                }
                Ok(())
            };
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                    f = body.frame() => f,
                };
                match frame {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            lines
                                .push(&data, &mut |l| handle(&mut trace, l))
                                .map_err(|e| malformed(&trace, e.0))?;
                        }
                    }
                    Some(Err(e)) => {
                        return Err(EngineError::Disconnected {
                            host: host.clone(),
                            step: trace.failing().map(|s| s.step_ref()),
                            cause: Box::new(e),
                        })
                    }
                    None => {
                        lines
                            .finish(&mut |l| handle(&mut trace, l))
                            .map_err(|e| malformed(&trace, e.0))?;
                        break;
                    }
                }
            }
            drop(session);
            Ok(())
        });
        result?;

        match trace.ending.clone() {
            Some(Ending::Image(image_id)) => {
                let steps = trace.steps();
                let history = self.history(&image_id)?;
                let steps = with_layer_sizes(steps, &history, &numbering);
                let mut tags = Vec::new();
                for tag in &opts.tags {
                    self.tag(&image_id, tag)?;
                    tags.push(tag.clone());
                    on_event(&BuildEvent::Tagged { tag: tag.clone() });
                }
                Ok(BuildOutcome {
                    image_id,
                    steps,
                    tags,
                    warnings: trace.warnings.clone(),
                    // BuildKit pulls files as steps need them: the bytes are what it asked for
                    // (the files it already held are not sent again), over the whole build.
                    upload_bytes: sent.bytes(),
                    upload_seconds: sent.seconds(),
                    seconds: started.elapsed().as_secs_f64(),
                })
            }
            Some(Ending::Failed(message)) => {
                let (message, code) = trace.failure(&message);
                on_event(&BuildEvent::Error {
                    message: message.clone(),
                    code,
                });
                let failing = trace.failing();
                Err(EngineError::BuildFailed {
                    step: failing.as_ref().map(StepRecord::step_ref),
                    message,
                    code,
                    tail: failing
                        .map(|s| s.tail.into_iter().collect())
                        .unwrap_or_default(),
                })
            }
            None => Err(EngineError::Disconnected {
                host: self.config.host.clone(),
                step: trace.failing().map(|s| s.step_ref()),
                cause: "the build stream ended without a result".into(),
            }),
        }
    }
}

/// The `/build` query of a session build (`remote=client-session`: the context comes over the
/// session, the body is empty). Tags are applied afterwards, as the classic path does for all
/// but the first.
fn build_query(opts: &BuildOptions, session: &str, dockerfile: &str) -> String {
    let mut q = form_urlencoded(&[
        ("version", "2"),
        ("session", session),
        ("remote", "client-session"),
        ("dockerfile", dockerfile),
        ("rm", "1"),
        ("forcerm", "1"),
    ]);
    let json_map = |pairs: &[(String, String)]| {
        let m: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(m).to_string()
    };
    if !opts.build_args.is_empty() {
        q.push('&');
        q.push_str(&form_urlencoded(&[(
            "buildargs",
            &json_map(&opts.build_args),
        )]));
    }
    if !opts.labels.is_empty() {
        q.push('&');
        q.push_str(&form_urlencoded(&[("labels", &json_map(&opts.labels))]));
    }
    for (k, v) in [
        ("target", opts.target.as_deref()),
        ("platform", opts.platform.as_deref()),
        ("nocache", opts.no_cache.then_some("1")),
        ("pull", opts.pull.then_some("1")),
    ] {
        if let Some(v) = v {
            q.push('&');
            q.push_str(&form_urlencoded(&[(k, v)]));
        }
    }
    if !opts.cache_from.is_empty() {
        q.push('&');
        let list = serde_json::to_string(&opts.cache_from).unwrap_or_default();
        q.push_str(&form_urlencoded(&[("cachefrom", &list)]));
    }
    q
}

/// Gives each step of the final stage the size of its history entry. BuildKit writes one
/// history entry per instruction of the final stage after its FROM, like the classic builder,
/// so the newest `total - from` entries are those instructions in reverse; the FROM gets the
/// base image's total. Without a numbering nothing is matched.
fn with_layer_sizes(
    mut steps: Vec<StepRecord>,
    history: &[HistoryLayer],
    numbering: &Numbering,
) -> Vec<StepRecord> {
    let Some(from) = numbering
        .stages
        .last()
        .and_then(|(_, s)| s.first())
        .map(|(n, _)| *n)
    else {
        return steps;
    };
    let total = numbering.total;
    let own = total.saturating_sub(from);
    if history.len() < own {
        return steps;
    }
    for s in steps.iter_mut() {
        if s.number > from && s.number <= total {
            s.layer_size = history.get(total - s.number).map(|h| h.size);
        } else if s.number == from {
            s.layer_size = Some(history[own..].iter().map(|l| l.size).sum());
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_sizes_follow_the_final_stage_in_the_history() {
        use crate::engine::steps::StepStatus;
        use std::collections::VecDeque;
        // FROM b (1) / RUN (2) // FROM b (3) / ENV (4) / COPY (5) / CMD (6)
        let numbering = Numbering {
            stages: vec![
                (None, vec![(1, "FROM b".into()), (2, "RUN x".into())]),
                (None, vec![(3, "FROM b".into()), (5, "COPY a /a".into())]),
            ],
            total: 6,
        };
        let row = |n: usize, text: &str| {
            StepRecord::from_parts(
                n,
                6,
                text.into(),
                StepStatus::Built,
                0.0,
                0,
                VecDeque::new(),
            )
        };
        let steps = vec![
            row(1, "FROM b"),
            row(2, "RUN x"),
            row(3, "FROM b"),
            row(5, "COPY a /a"),
        ];
        let layer = |size: u64, by: &str| HistoryLayer {
            id: "<missing>".into(),
            size,
            created_by: by.into(),
        };
        // Newest first: CMD, COPY, ENV, then the base's two entries.
        let history = [
            layer(0, "CMD"),
            layer(7, "COPY a /a # buildkit"),
            layer(0, "ENV"),
            layer(100, "base 2"),
            layer(1000, "base 1"),
        ];
        let sized = with_layer_sizes(steps, &history, &numbering);
        let sizes: Vec<(usize, Option<u64>)> =
            sized.iter().map(|s| (s.number, s.layer_size)).collect();
        assert_eq!(sizes, [(1, None), (2, None), (3, Some(1100)), (5, Some(7))]);
    }

    #[test]
    fn the_query_carries_the_session_and_encodes_values() {
        let opts = BuildOptions {
            build_args: vec![("A".into(), "x y&z".into())],
            target: Some("prod".into()),
            no_cache: true,
            ..Default::default()
        };
        let q = build_query(&opts, "abc", "Dockerfile");
        assert!(
            q.starts_with("version=2&session=abc&remote=client-session&dockerfile=Dockerfile"),
            "{q}"
        );
        assert!(
            q.contains("buildargs=%7B%22A%22%3A%22x%20y%26z%22%7D"),
            "{q}"
        );
        assert!(
            q.contains("&target=prod") && q.contains("&nocache=1"),
            "{q}"
        );
    }
}
