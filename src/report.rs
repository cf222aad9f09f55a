//! The per-layer cache report of an image build: one row per Dockerfile step (CACHED or BUILT,
//! seconds, layer size, image id), totals, why the first rebuilt step rebuilt, what the context
//! sent and kept out, and what was pushed.
//!
//! One data structure: the binary renders it for people and as serde JSON for `--report FILE`.
//! It computes nothing from the engine or the disk itself: callers give it the build outcome,
//! the image history and the key diff's structured reason.

use crate::engine::{BuildOutcome, HistoryLayer, PushOutcome, StepStatus};
use crate::key::{FileChange, MissReason};
use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The service from ctxbuild.toml, when built by name.
    pub service: Option<String>,
    /// The Dockerfile built and why that one (absent in reports made without a service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<DockerfileUsed>,
    /// The final image, `sha256:…`.
    pub image_id: String,
    pub tags: Vec<String>,
    pub steps: Vec<StepRow>,
    pub totals: Totals,
    /// Why the first BUILT step (after FROM) was not served from the cache.
    pub rebuild_reason: Option<RebuildReason>,
    pub context: ContextSummary,
    pub pushed: Vec<PushOutcome>,
    /// The `--cache-from` images the build could use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<CacheFromImage>,
    pub warnings: Vec<String>,
    /// Nothing Docker hashes changed since the last build: no upload, no build; the tags were
    /// re-applied to the recorded image and the steps are its saved report.
    pub up_to_date: bool,
    /// The builder that built it (`classic` or `buildkit`).
    pub builder: crate::builder::Builder,
}

/// A `--cache-from` image that was present for the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheFromImage {
    pub reference: String,
    /// Its image id, `sha256:…`.
    pub image_id: String,
}

/// Where a cached step came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOrigin {
    /// A layer this engine already held.
    Local,
    /// A layer of a `--cache-from` image.
    CacheFrom,
}

/// The Dockerfile a build used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerfileUsed {
    /// Relative to the configuration's directory, `-f` as given, or
    /// `<rendered python-asgi/alpine>`.
    pub path: String,
    /// Why this one: `-f`, `` `dockerfile` in ctxbuild.toml ``, or the rendered template.
    pub reason: String,
}

/// One Dockerfile step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub number: usize,
    pub total: usize,
    pub instruction: String,
    pub status: StepStatus,
    pub seconds: f64,
    /// Bytes the step's layer adds (for FROM: the whole base image).
    pub layer_size: Option<u64>,
    /// Short image id the step produced.
    pub image_id: Option<String>,
    /// For a CACHED step after FROM: whose cache served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheOrigin>,
}

/// Totals over the build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub build_seconds: f64,
    pub steps: usize,
    pub cached_steps: usize,
    /// cached_steps / steps, 0.0 ..= 1.0.
    pub cached_share: f64,
    pub image_size: u64,
}

/// Why the first rebuilt step rebuilt: the structured cause, and the words made from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebuildReason {
    pub step: usize,
    pub instruction: String,
    /// What made it rebuild, as data.
    pub cause: RebuildCause,
    /// The cause in words, e.g. "app/main.py content changed" (made from `cause`).
    pub summary: String,
    /// The individual file changes, e.g. "app/main.py content changed" (made from `cause`).
    pub changes: Vec<String>,
}

/// What made a step rebuild.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RebuildCause {
    /// ctxbuild's key diff against the plan saved at the previous build.
    KeyDiff { reason: MissReason },
    /// Past the Dockerfile: a label the engine applies as an extra LABEL step changed.
    Label,
    /// `--no-cache`: every step rebuilt because it was asked to.
    NoCache,
}

impl RebuildReason {
    /// The reason for `step` (running `instruction`) from its structured cause.
    pub fn new(step: usize, instruction: String, cause: RebuildCause) -> RebuildReason {
        let (summary, changes) = match &cause {
            RebuildCause::KeyDiff { reason } => {
                let changes = match reason {
                    MissReason::Files(d) => d.changes().iter().map(change_text).collect(),
                    _ => Vec::new(),
                };
                (crate::key::reason_text(&instruction, reason), changes)
            }
            RebuildCause::Label => (
                "an image label changed (e.g. the git revision): the engine applies labels as \
                 extra LABEL steps"
                    .to_string(),
                Vec::new(),
            ),
            RebuildCause::NoCache => ("--no-cache: every step rebuilt".to_string(), Vec::new()),
        };
        RebuildReason {
            step,
            instruction,
            cause,
            summary,
            changes,
        }
    }
}

fn change_text(c: &FileChange) -> String {
    match c {
        FileChange::Added(p) => format!("{p} added"),
        FileChange::Removed(p) => format!("{p} removed"),
        FileChange::Content(p) => format!("{p} content changed"),
        FileChange::Mode(p) => format!("{p} mode changed"),
        FileChange::Type(p) => format!("{p} type changed"),
        FileChange::Link(p) => format!("{p} link target changed"),
    }
}

/// What was sent to the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContextSummary {
    /// Bytes of the tar sent.
    pub bytes_sent: u64,
    pub upload_seconds: f64,
    /// Bytecode files and `__pycache__` directories kept out although `.dockerignore` let them in.
    pub pollution_excluded_entries: u64,
    /// Their bytes.
    pub pollution_excluded_bytes: u64,
}

/// `image --json`: the report under a versioned schema, with the keys of buildx's
/// `--metadata-file` so scripts written for it find the digests where they expect them.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult<'a> {
    /// `ctxbuild.image/v1`.
    pub schema: &'static str,
    /// The config digest: the image id, `sha256:…`.
    #[serde(rename = "containerimage.config.digest")]
    pub config_digest: &'a str,
    /// The manifest digest of the first pushed tag, when pushed.
    #[serde(
        rename = "containerimage.digest",
        skip_serializing_if = "Option::is_none"
    )]
    pub digest: Option<&'a str>,
    /// The tags, comma-separated as buildx writes them.
    #[serde(rename = "image.name")]
    pub name: String,
    pub report: &'a Report,
}

impl<'a> ImageResult<'a> {
    pub const SCHEMA: &'static str = "ctxbuild.image/v1";

    pub fn new(report: &'a Report) -> ImageResult<'a> {
        ImageResult {
            schema: Self::SCHEMA,
            config_digest: &report.image_id,
            digest: report.pushed.iter().find_map(|p| p.digest.as_deref()),
            name: report.tags.join(","),
            report,
        }
    }
}

impl Report {
    /// Builds the report from a finished build and the final image's history (newest first).
    pub fn new(
        service: Option<String>,
        outcome: &BuildOutcome,
        history: &[HistoryLayer],
        image_size: u64,
    ) -> Report {
        let steps: Vec<StepRow> = outcome
            .steps
            .iter()
            .map(|s| StepRow {
                number: s.number,
                total: s.total,
                instruction: s.instruction.clone(),
                status: s.status,
                seconds: s.seconds,
                layer_size: s.layer_size.or_else(|| {
                    let id = s.image_id.as_deref()?;
                    let is_from = s
                        .instruction
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case("FROM"));
                    layer_size(history, id, is_from)
                }),
                image_id: s.image_id.clone(),
                cache: (s.status == StepStatus::Cached
                    && !s
                        .instruction
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case("FROM")))
                .then_some(CacheOrigin::Local),
            })
            .collect();
        let cached = steps
            .iter()
            .filter(|s| s.status == StepStatus::Cached)
            .count();
        let totals = Totals {
            build_seconds: outcome.seconds,
            steps: steps.len(),
            cached_steps: cached,
            cached_share: if steps.is_empty() {
                0.0
            } else {
                cached as f64 / steps.len() as f64
            },
            image_size,
        };
        Report {
            service,
            dockerfile: None,
            image_id: outcome.image_id.clone(),
            tags: outcome.tags.clone(),
            steps,
            totals,
            rebuild_reason: None,
            context: ContextSummary {
                bytes_sent: outcome.upload_bytes,
                upload_seconds: outcome.upload_seconds,
                ..Default::default()
            },
            pushed: Vec::new(),
            cache_from: Vec::new(),
            warnings: outcome.warnings.clone(),
            up_to_date: false,
            builder: Default::default(),
        }
    }

    /// The first step the build executed, skipping FROM (a pulled base is not a cache miss).
    pub fn first_built_step(&self) -> Option<&StepRow> {
        self.steps.iter().find(|s| {
            s.status == StepStatus::Built
                && !s
                    .instruction
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        })
    }

    /// The reason of a `--no-cache` build: every step rebuilt because it was asked to, not
    /// because anything changed. `None` when nothing was built.
    pub fn no_cache_reason(&self) -> Option<RebuildReason> {
        let first = self.first_built_step()?;
        Some(RebuildReason::new(
            first.number,
            first.instruction.clone(),
            RebuildCause::NoCache,
        ))
    }
}

/// The size a step's image adds: its own history entry, or for FROM the whole base.
fn layer_size(history: &[HistoryLayer], short_id: &str, whole_image: bool) -> Option<u64> {
    let want = format!("sha256:{short_id}");
    let pos = history
        .iter()
        .position(|l| l.id.starts_with(&want) || l.id.starts_with(short_id))?;
    if whole_image {
        Some(history[pos..].iter().map(|l| l.size).sum())
    } else {
        Some(history[pos].size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::BuildEvent;
    use crate::engine::steps::StepTracker;
    use std::time::Duration;

    fn outcome() -> BuildOutcome {
        let mut t = StepTracker::new();
        let ev = [
            BuildEvent::StepStarted {
                number: 1,
                total: 3,
                instruction: "FROM base:1".into(),
            },
            BuildEvent::StepDone {
                number: 1,
                image_id: "aaaaaaaaaaaa".into(),
            },
            BuildEvent::StepStarted {
                number: 2,
                total: 3,
                instruction: "COPY requirements.txt /app/".into(),
            },
            BuildEvent::UsingCache { number: 2 },
            BuildEvent::StepDone {
                number: 2,
                image_id: "bbbbbbbbbbbb".into(),
            },
            BuildEvent::StepStarted {
                number: 3,
                total: 3,
                instruction: "COPY . /app/".into(),
            },
            BuildEvent::StepDone {
                number: 3,
                image_id: "cccccccccccc".into(),
            },
            BuildEvent::Built {
                image_id: "sha256:cccccccccccc0000".into(),
            },
        ];
        for (i, e) in ev.iter().enumerate() {
            t.observe(e, Duration::from_millis(500 * i as u64));
        }
        let (steps, image_id, _tags, warnings) = t.finish(Duration::from_secs(4));
        BuildOutcome {
            image_id: image_id.unwrap(),
            steps,
            tags: vec!["app:1".into()],
            warnings,
            upload_bytes: 2_500_000,
            upload_seconds: 0.2,
            seconds: 4.0,
        }
    }

    fn history() -> Vec<HistoryLayer> {
        let l = |id: &str, size| HistoryLayer {
            id: id.into(),
            size,
            created_by: String::new(),
        };
        vec![
            l("sha256:cccccccccccc0000", 4_200),
            l("sha256:bbbbbbbbbbbb0000", 120),
            l("sha256:aaaaaaaaaaaa0000", 0),
            l("<missing>", 7_000_000),
        ]
    }

    #[test]
    fn sizes_totals_and_first_rebuilt_step() {
        let r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        let sizes: Vec<Option<u64>> = r.steps.iter().map(|s| s.layer_size).collect();
        assert_eq!(sizes, vec![Some(7_000_000), Some(120), Some(4_200)]);
        assert_eq!(r.totals.cached_steps, 2);
        assert_eq!(r.totals.steps, 3);
        assert!((r.totals.cached_share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.first_built_step().unwrap().number, 3);
        assert_eq!(r.steps[2].seconds, 0.5);
    }

    #[test]
    fn the_reason_is_made_from_the_structured_cause() {
        // An instruction holding ": " once corrupted a reason parsed back out of the sentence.
        let reason = RebuildReason::new(
            3,
            "RUN echo step: two".into(),
            RebuildCause::KeyDiff {
                reason: MissReason::Instruction {
                    before: "RUN echo step: one".into(),
                },
            },
        );
        assert_eq!(reason.summary, "the instruction changed: `one` → `two`");
        let json = serde_json::to_value(&reason).unwrap();
        assert_eq!(json["cause"]["kind"], "key-diff");
        assert_eq!(json["cause"]["reason"]["kind"], "instruction");
        assert_eq!(json["cause"]["reason"]["before"], "RUN echo step: one");
        assert_eq!(json["instruction"], "RUN echo step: two");

        let mut files = crate::key::FileDiff::default();
        files.content_changed.push("app/main.py".into());
        files.added.push("app/new.py".into());
        let reason = RebuildReason::new(
            4,
            "COPY . /app/".into(),
            RebuildCause::KeyDiff {
                reason: MissReason::Files(files),
            },
        );
        assert_eq!(
            reason.changes,
            vec!["app/main.py content changed", "app/new.py added"]
        );
        assert_eq!(
            reason.summary,
            "app/main.py content changed, app/new.py added"
        );
    }

    #[test]
    fn no_cache_is_its_own_cause() {
        let r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        let reason = r.no_cache_reason().unwrap();
        assert_eq!(reason.cause, RebuildCause::NoCache);
        assert_eq!(reason.summary, "--no-cache: every step rebuilt");
        assert_eq!(reason.step, 3);
    }
}
