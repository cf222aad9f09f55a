//! Per-step bookkeeping of a build: what each step was, whether the cache served it, how long
//! it took, which intermediate containers it made and which image it left.
//!
//! Fed with [`BuildEvent`]s and the time since the build started, so it is deterministic in
//! tests. The build loop uses it to name the failing step, quote its last output lines, and
//! remove intermediate containers the engine did not.

use super::error::StepRef;
use super::events::BuildEvent;
use std::collections::VecDeque;
use std::time::Duration;

/// How many output lines of a step are kept for an error message.
pub const TAIL_LINES: usize = 20;

/// Whether a step's layer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StepStatus {
    /// Served from the layer cache (a FROM whose image was already local counts as cached).
    Cached,
    /// Executed by this build.
    Built,
}

/// One step of a finished (or failed) build.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    pub number: usize,
    pub total: usize,
    pub instruction: String,
    pub status: StepStatus,
    /// Wall time from "Step N/M" to its resulting image.
    pub seconds: f64,
    /// Intermediate containers the step ran in.
    pub containers: Vec<String>,
    /// The image the step produced (short id as the daemon prints it).
    pub image_id: Option<String>,
    /// The layer's size when the builder gave no per-step image to look it up by (BuildKit).
    #[serde(skip)]
    pub layer_size: Option<u64>,
    /// How many lines the step printed.
    pub output_lines: usize,
    /// The last [`TAIL_LINES`] lines it printed.
    #[serde(skip)]
    pub tail: VecDeque<String>,
    #[serde(skip)]
    started: Duration,
    #[serde(skip)]
    cache_hit: bool,
    #[serde(skip)]
    pulled: bool,
    #[serde(skip)]
    done: bool,
}

impl StepRecord {
    pub fn step_ref(&self) -> StepRef {
        StepRef {
            number: self.number,
            total: self.total,
            instruction: self.instruction.clone(),
        }
    }

    /// A finished step assembled elsewhere (BuildKit's trace, which has no per-step events in
    /// order).
    pub fn from_parts(
        number: usize,
        total: usize,
        instruction: String,
        status: StepStatus,
        seconds: f64,
        output_lines: usize,
        tail: VecDeque<String>,
    ) -> StepRecord {
        StepRecord {
            number,
            total,
            instruction,
            status,
            seconds,
            containers: Vec::new(),
            image_id: None,
            layer_size: None,
            output_lines,
            tail,
            started: Duration::ZERO,
            cache_hit: status == StepStatus::Cached,
            pulled: false,
            done: true,
        }
    }

    fn status(&self) -> StepStatus {
        step_status(&self.instruction, self.cache_hit, self.pulled)
    }
}

/// Whether `instruction` is a `FROM`.
pub(crate) fn is_from(instruction: &str) -> bool {
    instruction
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
}

/// A step is CACHED when the builder said so, or when it is a `FROM` of an image the engine
/// already had (nothing pulled); otherwise BUILT. One rule for both builders' streams.
pub(crate) fn step_status(instruction: &str, cache_hit: bool, pulled: bool) -> StepStatus {
    if cache_hit || (is_from(instruction) && !pulled) {
        StepStatus::Cached
    } else {
        StepStatus::Built
    }
}

/// Accumulates [`StepRecord`]s from events.
#[derive(Debug, Default)]
pub struct StepTracker {
    steps: Vec<StepRecord>,
    /// Containers seen in "Running in" and not yet in "Removing intermediate container".
    live: Vec<String>,
    pub image_id: Option<String>,
    pub tags: Vec<String>,
    pub warnings: Vec<String>,
}

impl StepTracker {
    pub fn new() -> StepTracker {
        StepTracker::default()
    }

    /// Records one event that happened `at` after the build started.
    pub fn observe(&mut self, event: &BuildEvent, at: Duration) {
        match event {
            BuildEvent::StepStarted {
                number,
                total,
                instruction,
            } => {
                self.close_current(at);
                self.steps.push(StepRecord {
                    number: *number,
                    total: *total,
                    instruction: instruction.clone(),
                    status: StepStatus::Built,
                    seconds: 0.0,
                    containers: Vec::new(),
                    image_id: None,
                    layer_size: None,
                    output_lines: 0,
                    tail: VecDeque::new(),
                    started: at,
                    cache_hit: false,
                    pulled: false,
                    done: false,
                });
            }
            BuildEvent::UsingCache { .. } => {
                if let Some(s) = self.current() {
                    s.cache_hit = true;
                    s.status = s.status();
                }
            }
            BuildEvent::RunningIn { container, .. } => {
                self.live.push(container.clone());
                if let Some(s) = self.current() {
                    s.containers.push(container.clone());
                }
            }
            BuildEvent::ContainerRemoved { container } => {
                self.live.retain(|c| c != container);
            }
            BuildEvent::Output { line, .. } => {
                if let Some(s) = self.current() {
                    s.output_lines += 1;
                    if s.tail.len() == TAIL_LINES {
                        s.tail.pop_front();
                    }
                    s.tail.push_back(line.clone());
                }
            }
            BuildEvent::Status { .. } => {
                if let Some(s) = self.current() {
                    s.pulled = true;
                    s.status = s.status();
                }
            }
            BuildEvent::StepDone { image_id, .. } => {
                if let Some(s) = self.current() {
                    s.image_id = Some(image_id.clone());
                }
                self.close_current(at);
            }
            BuildEvent::Built { image_id } => {
                self.close_current(at);
                // The classic builder sends one aux id per stage, the image's last; prefer a
                // full id over the short one of "Successfully built".
                if self
                    .image_id
                    .as_ref()
                    .is_none_or(|old| image_id.len() >= old.len())
                {
                    self.image_id = Some(image_id.clone());
                }
            }
            BuildEvent::Tagged { tag } => self.tags.push(tag.clone()),
            BuildEvent::Warning { message } => self.warnings.push(message.clone()),
            BuildEvent::Error { .. } => self.close_current(at),
            BuildEvent::Upload { .. } | BuildEvent::UploadDone { .. } => {}
        }
    }

    fn current(&mut self) -> Option<&mut StepRecord> {
        self.steps.last_mut().filter(|s| !s.done)
    }

    fn close_current(&mut self, at: Duration) {
        if let Some(s) = self.current() {
            s.done = true;
            s.seconds = at.saturating_sub(s.started).as_secs_f64();
            s.status = s.status();
        }
    }

    /// The step running now or the last one seen (the failing one after an error).
    pub fn last(&self) -> Option<&StepRecord> {
        self.steps.last()
    }

    /// Intermediate containers the engine has not said it removed.
    pub fn leftover_containers(&self) -> &[String] {
        &self.live
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    /// Finishes the record (closing a step still open at `at`).
    pub fn finish(
        mut self,
        at: Duration,
    ) -> (Vec<StepRecord>, Option<String>, Vec<String>, Vec<String>) {
        self.close_current(at);
        (self.steps, self.image_id, self.tags, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Decoder;

    fn track(ndjson: &str) -> StepTracker {
        let mut d = Decoder::new();
        let mut t = StepTracker::new();
        for (i, line) in ndjson.lines().enumerate() {
            for e in d.feed_json(line).unwrap() {
                t.observe(&e, Duration::from_secs(i as u64));
            }
        }
        t
    }

    #[test]
    fn records_status_time_containers_and_images() {
        let t = track(
            r#"{"stream":"Step 1/3 : FROM base\n"}
{"stream":" ---> 2d9959c04eba\n"}
{"stream":"Step 2/3 : COPY a /a\n"}
{"stream":" ---> Using cache\n"}
{"stream":" ---> eb39d5b6b9bc\n"}
{"stream":"Step 3/3 : RUN echo hi\n"}
{"stream":" ---> Running in fc3436fbd508\n"}
{"stream":"hi\n"}
{"stream":"Removing intermediate container fc3436fbd508\n"}
{"stream":" ---> f66e5a6f5794\n"}
{"aux":{"ID":"sha256:f66e5a6f5794aaaa"}}
{"stream":"Successfully built f66e5a6f5794\n"}"#,
        );
        let s = t.steps();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].status, StepStatus::Cached, "FROM of a local image");
        assert_eq!(s[1].status, StepStatus::Cached);
        assert_eq!(s[2].status, StepStatus::Built);
        assert_eq!(s[2].containers, vec!["fc3436fbd508"]);
        assert_eq!(s[2].image_id.as_deref(), Some("f66e5a6f5794"));
        assert_eq!(s[2].seconds, 4.0, "from line 5 to line 9");
        assert_eq!(s[2].tail, ["hi"]);
        assert!(t.leftover_containers().is_empty());
        assert_eq!(t.image_id.as_deref(), Some("sha256:f66e5a6f5794aaaa"));
    }

    #[test]
    fn a_multi_stage_build_is_the_last_stage_s_image() {
        // dockerd 20.10's classic stream for two stages: an aux id closes each stage.
        let t = track(
            r#"{"stream":"Step 1/4 : FROM base AS a\n"}
{"stream":" ---> 2d9959c04eba\n"}
{"stream":"Step 2/4 : COPY a.txt /\n"}
{"stream":" ---> fb3727a55ca9\n"}
{"aux":{"ID":"sha256:fb3727a55ca9aaaa"}}
{"stream":"Step 3/4 : FROM base\n"}
{"stream":" ---> 2d9959c04eba\n"}
{"stream":"Step 4/4 : COPY --from=a /a.txt /b\n"}
{"stream":" ---> d0d5b1fcd053\n"}
{"aux":{"ID":"sha256:d0d5b1fcd053bbbb"}}
{"stream":"Successfully built d0d5b1fcd053\n"}"#,
        );
        assert_eq!(t.steps().len(), 4);
        assert_eq!(t.image_id.as_deref(), Some("sha256:d0d5b1fcd053bbbb"));
    }

    #[test]
    fn a_container_never_removed_is_left_over() {
        let t = track(
            r#"{"stream":"Step 1/2 : FROM base\n"}
{"stream":" ---> 2d9959c04eba\n"}
{"stream":"Step 2/2 : RUN sleep 30\n"}
{"stream":" ---> Running in 8ffaf9f60961\n"}"#,
        );
        assert_eq!(t.leftover_containers(), ["8ffaf9f60961"]);
        assert_eq!(t.last().unwrap().step_ref().number, 2);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut t = StepTracker::new();
        let z = Duration::ZERO;
        t.observe(
            &BuildEvent::StepStarted {
                number: 1,
                total: 1,
                instruction: "RUN seq 100".into(),
            },
            z,
        );
        for i in 1..=100 {
            t.observe(
                &BuildEvent::Output {
                    number: 1,
                    line: i.to_string(),
                },
                z,
            );
        }
        let last = t.last().unwrap();
        assert_eq!(last.output_lines, 100);
        assert_eq!(last.tail.len(), TAIL_LINES);
        assert_eq!(last.tail.front().map(String::as_str), Some("81"));
        assert_eq!(last.tail.back().map(String::as_str), Some("100"));
    }
}
