//! BuildKit's `/build` answer, decoded into our own [`BuildEvent`]s and [`StepRecord`]s.
//!
//! The daemon answers a `version=2` build with NDJSON whose progress is `{"id":
//! "moby.buildkit.trace","aux":"<base64 protobuf StatusResponse>"}`: vertexes (one per LLB
//! operation, sent again whenever one of their fields changes, so they are merged by digest),
//! per-vertex statuses and log chunks. The final image id comes as `{"id":"moby.image.id",
//! "aux":{"ID":…}}`, a failure as `{"errorDetail":…}`.
//!
//! Pure and bounded: lines come from [`crate::engine::lines::LineSplitter`] (capped); each
//! vertex keeps at most [`TAIL_LINES`] lines and a partial line of at most [`LINE_LIMIT`].
//! It knows nothing of connections: the caller feeds it bytes and maps its errors.
//!
//! Vertex names carry the Dockerfile step: `[2/5] COPY . /app` (one stage) or `[build 2/5] RUN
//! …` (named or `stage-N` stages). `[internal] …`, `exporting to image` and other vertexes
//! without a step prefix are not steps. BuildKit numbers only the instructions that make a
//! filesystem operation (FROM, RUN, COPY, ADD, WORKDIR), per stage; a [`Numbering`] made from the
//! parsed Dockerfile maps them back to the classic builder's global step numbers so the report
//! rows, the rebuild reason and the plan agree with the classic path.

use crate::engine::events::{exit_code_in, strip_ansi, BuildEvent, LINE_LIMIT, MESSAGE_LIMIT};
use crate::engine::lines::Malformed;
use crate::engine::steps::{self, StepRecord, StepStatus, TAIL_LINES};
use base64::Engine as _;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;
use prost::Message as _;
use std::collections::{HashMap, VecDeque};

/// The most vertexes one build may announce (a Dockerfile has at most a few hundred steps;
/// BuildKit adds a handful of internal ones).
const MAX_VERTEXES: usize = 100_000;

/// A step's classic number and its Dockerfile text.
pub type NumberedStep = (usize, String);

/// Classic step numbers of BuildKit's per-stage steps.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    /// Per stage in Dockerfile order: its name (`AS name`, lowercased) and the classic numbers
    /// and text of its FROM, RUN, COPY, ADD and WORKDIR instructions in order.
    pub stages: Vec<(Option<String>, Vec<NumberedStep>)>,
    /// The classic builder's step count.
    pub total: usize,
}

impl Numbering {
    /// The classic number of step `index` (1-based) of the stage BuildKit labels `label`
    /// (`None` for a one-stage Dockerfile).
    fn classic(&self, label: Option<&str>, index: usize) -> Option<&NumberedStep> {
        let k = match label {
            None if self.stages.len() == 1 => 0,
            None => return None,
            Some(l) => {
                let by_name = self
                    .stages
                    .iter()
                    .position(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(l)));
                match by_name {
                    Some(k) => k,
                    None => l.strip_prefix("stage-")?.parse().ok()?,
                }
            }
        };
        let stage = &self.stages.get(k)?.1;
        // A stage built on `scratch` or on an earlier stage has no FROM vertex, and BuildKit
        // numbers its steps without the FROM: `[1/1] COPY …` is the stage's second instruction.
        let skip = usize::from(!self.base_is_image(k));
        stage.get(index.checked_sub(1)? + skip)
    }

    /// Whether stage `k`'s FROM names an image (BuildKit gives it a vertex), not `scratch` or
    /// an earlier stage.
    fn base_is_image(&self, k: usize) -> bool {
        let Some((_, from)) = self.stages[k].1.first() else {
            return true;
        };
        let mut words = from.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            return true;
        }
        let Some(base) = words.find(|w| !w.starts_with("--")) else {
            return true;
        };
        if base.eq_ignore_ascii_case("scratch") {
            return false;
        }
        !self.stages[..k]
            .iter()
            .any(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(base)))
    }
}

/// A vertex name split into its step prefix and instruction.
#[derive(Debug, PartialEq, Eq)]
struct StepName<'a> {
    label: Option<&'a str>,
    index: usize,
    of: usize,
    instruction: &'a str,
}

fn step_name(name: &str) -> Option<StepName<'_>> {
    let rest = name.strip_prefix('[')?;
    let (inside, instruction) = rest.split_once(']')?;
    let (label, count) = match inside.rsplit_once(' ') {
        Some((l, c)) => (Some(l.trim()), c),
        None => (None, inside),
    };
    let (i, n) = count.split_once('/')?;
    Some(StepName {
        label,
        index: i.parse().ok()?,
        of: n.parse().ok()?,
        instruction: instruction.trim(),
    })
}

#[derive(Debug, Default)]
struct Vertex {
    name: String,
    /// Set when the vertex is a Dockerfile step.
    number: Option<usize>,
    total: usize,
    instruction: String,
    started: Option<bollard_buildkit_proto::google::protobuf::Timestamp>,
    completed: Option<bollard_buildkit_proto::google::protobuf::Timestamp>,
    cached: bool,
    /// A FROM that had to be pulled did work.
    pulled: bool,
    error: String,
    announced: bool,
    cache_told: bool,
    done: bool,
    output_lines: usize,
    tail: VecDeque<String>,
    partial: Vec<u8>,
}

impl Vertex {
    fn is_from(&self) -> bool {
        steps::is_from(&self.instruction)
    }

    fn status(&self) -> StepStatus {
        steps::step_status(&self.instruction, self.cached, self.pulled)
    }

    fn seconds(&self) -> f64 {
        match (&self.started, &self.completed) {
            (Some(s), Some(c)) => {
                let ns = (c.seconds - s.seconds) as f64 + f64::from(c.nanos - s.nanos) / 1e9;
                ns.max(0.0)
            }
            _ => 0.0,
        }
    }

    fn push_line(&mut self, line: String) {
        self.output_lines += 1;
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// What the stream said the build ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `moby.image.id`: the image, `sha256:…`.
    Image(String),
    /// `errorDetail`: the daemon's message.
    Failed(String),
}

/// Decodes the `/build` messages of one BuildKit build.
#[derive(Debug, Default)]
pub struct Trace {
    numbering: Numbering,
    vertexes: HashMap<String, Vertex>,
    /// Step vertexes in the order they were announced.
    order: Vec<String>,
    /// Numbers handed to steps the numbering did not know.
    next_free: usize,
    /// The first vertex that reported an error.
    failed: Option<String>,
    pub ending: Option<Ending>,
    pub warnings: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Message {
    id: Option<String>,
    aux: Option<serde_json::Value>,
    stream: Option<String>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl Trace {
    pub fn new(numbering: Numbering) -> Trace {
        let next_free = numbering.total;
        Trace {
            numbering,
            next_free,
            ..Trace::default()
        }
    }

    /// Decodes one NDJSON line into events.
    pub fn feed_line(&mut self, line: &[u8]) -> Result<Vec<BuildEvent>, Malformed> {
        let mut out = Vec::new();
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(out);
        }
        let msg: Message = serde_json::from_slice(line)
            .map_err(|e| Malformed(format!("not a JSON message ({e})")))?;
        if let Some(detail) = msg.error_detail {
            let message = detail.message.or(msg.error).unwrap_or_default();
            self.ending = Some(Ending::Failed(cut(&message)));
            return Ok(out);
        }
        if let Some(error) = msg.error {
            self.ending = Some(Ending::Failed(cut(&error)));
            return Ok(out);
        }
        match (msg.id.as_deref(), msg.aux) {
            (Some("moby.buildkit.trace"), Some(serde_json::Value::String(b64))) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| Malformed(format!("a trace message is not base64 ({e})")))?;
                let status = StatusResponse::decode(bytes.as_slice()).map_err(|e| {
                    Malformed(format!("a trace message is not a StatusResponse ({e})"))
                })?;
                self.status(status, &mut out)?;
            }
            (Some("moby.image.id"), Some(aux)) => {
                if let Some(id) = aux.get("ID").and_then(|v| v.as_str()) {
                    self.ending = Some(Ending::Image(id.to_string()));
                    out.push(BuildEvent::Built {
                        image_id: id.to_string(),
                    });
                }
            }
            _ => {}
        }
        if let Some(text) = msg.stream {
            for l in text.lines().filter(|l| !l.trim().is_empty()) {
                out.push(BuildEvent::Status {
                    id: None,
                    status: cut(l),
                });
            }
        }
        Ok(out)
    }

    fn status(&mut self, st: StatusResponse, out: &mut Vec<BuildEvent>) -> Result<(), Malformed> {
        for v in st.vertexes {
            if !self.vertexes.contains_key(&v.digest) && self.vertexes.len() >= MAX_VERTEXES {
                return Err(Malformed(format!(
                    "the build announced more than {MAX_VERTEXES} operations"
                )));
            }
            let entry = self.vertexes.entry(v.digest.clone()).or_default();
            if entry.name.is_empty() && !v.name.is_empty() {
                entry.name = cut(&v.name);
                if let Some(s) = step_name(&v.name) {
                    // The Dockerfile's own text, as the classic builder prints it (BuildKit
                    // spells FROM with the normalised reference).
                    let numbered = match self.numbering.classic(s.label, s.index) {
                        Some((n, text)) => Some((*n, text.clone())),
                        // BuildKit shares a vertex between concurrent builds and names it
                        // after the build that made it first: a name our Dockerfile does not
                        // have is another build's step (its FROM of the same base), not a
                        // row of ours. Its errors still count.
                        None if self.numbering.total > 0 => None,
                        None => {
                            self.next_free += 1;
                            Some((self.next_free, s.instruction.to_string()))
                        }
                    };
                    if let Some((number, instruction)) = numbered {
                        entry.number = Some(number);
                        entry.total = if self.numbering.total > 0 {
                            self.numbering.total
                        } else {
                            s.of
                        };
                        entry.instruction = instruction;
                    }
                }
            }
            if v.started.is_some() {
                entry.started = v.started;
            }
            if v.completed.is_some() {
                entry.completed = v.completed;
            }
            entry.cached |= v.cached;
            if !v.error.is_empty() && entry.error.is_empty() {
                entry.error = cut(&v.error);
                if self.failed.is_none() {
                    self.failed = Some(v.digest.clone());
                }
            }
            let digest = v.digest;
            self.announce(&digest, out);
        }
        for s in st.statuses {
            // A base from the docker image store resolves silently; a FROM with statuses
            // (`resolve …`, layer downloads) went to a registry, as a classic pull does.
            if let Some(v) = self.vertexes.get_mut(&s.vertex) {
                if v.is_from() {
                    v.pulled = true;
                }
            }
        }
        for log in st.logs {
            let Some(v) = self.vertexes.get_mut(&log.vertex) else {
                continue;
            };
            let Some(number) = v.number else { continue };
            let mut data = log.msg.as_slice();
            while !data.is_empty() {
                let nl = memchr::memchr(b'\n', data);
                let end = nl.unwrap_or(data.len());
                let room = LINE_LIMIT.saturating_sub(v.partial.len());
                if end > room {
                    // The line outgrows the limit: emit a full piece, go on with the rest.
                    v.partial.extend_from_slice(&data[..room]);
                    data = &data[room..];
                } else {
                    v.partial.extend_from_slice(&data[..end]);
                    match nl {
                        Some(_) => data = &data[end + 1..],
                        None => break,
                    }
                }
                let raw = std::mem::take(&mut v.partial);
                let line = strip_ansi(String::from_utf8_lossy(&raw).trim_end_matches('\r'));
                v.push_line(line.clone());
                out.push(BuildEvent::Output { number, line });
            }
        }
        for w in st.warnings {
            if self.warnings.len() < 100 {
                self.warnings.push(cut(&String::from_utf8_lossy(&w.short)));
            }
        }
        Ok(())
    }

    /// Emits what changed about a step vertex: started, served from the cache, done.
    fn announce(&mut self, digest: &str, out: &mut Vec<BuildEvent>) {
        let Some(v) = self.vertexes.get_mut(digest) else {
            return;
        };
        let Some(number) = v.number else { return };
        if !v.announced && (v.started.is_some() || v.cached || v.completed.is_some()) {
            v.announced = true;
            self.order.push(digest.to_string());
            out.push(BuildEvent::StepStarted {
                number,
                total: v.total,
                instruction: v.instruction.clone(),
            });
        }
        if v.announced && v.cached && !v.cache_told {
            v.cache_told = true;
            out.push(BuildEvent::UsingCache { number });
        }
        if v.announced && v.completed.is_some() && !v.done && v.error.is_empty() {
            v.done = true;
            out.push(BuildEvent::StepDone {
                number,
                image_id: String::new(),
            });
        }
    }

    /// The step that failed (or the last one announced), for error messages; `None` when an
    /// operation that is no step failed (e.g. `[internal] load build context`).
    pub fn failing(&self) -> Option<StepRecord> {
        let digest = self.failed.as_ref().or(self.order.last())?;
        let v = self.vertexes.get(digest)?;
        if v.number.is_some() {
            return Some(record(v));
        }
        // A base that cannot be resolved fails BuildKit's metadata lookup before its FROM
        // starts: blame the FROM, as the classic builder does.
        let image = v.name.strip_prefix("[internal] load metadata for ")?;
        self.numbering
            .stages
            .iter()
            .filter_map(|(_, s)| s.first())
            .find(|(_, text)| from_names(text, image))
            .map(|(n, text)| {
                StepRecord::from_parts(
                    *n,
                    self.numbering.total,
                    text.clone(),
                    StepStatus::Built,
                    0.0,
                    0,
                    VecDeque::new(),
                )
            })
    }

    /// The failure as the classic path reports it: the daemon's message and the exit code in
    /// it (`… exit code: 3`). An operation that is no step is named in the message.
    pub fn failure(&self, message: &str) -> (String, Option<i64>) {
        let failed = self.failed.as_ref().and_then(|d| self.vertexes.get(d));
        let message = match failed {
            Some(v) if v.number.is_none() && !v.error.is_empty() => {
                format!("{}: {}", v.name, v.error)
            }
            Some(v) if !v.error.is_empty() => v.error.clone(),
            _ => message.to_string(),
        };
        let code = exit_code_in(&message).or_else(|| {
            let (_, rest) = message.rsplit_once("exit code: ")?;
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        });
        (message, code)
    }

    /// The steps in number order (the order the classic builder lists them).
    pub fn steps(&self) -> Vec<StepRecord> {
        let mut steps: Vec<StepRecord> = self
            .order
            .iter()
            .filter_map(|d| self.vertexes.get(d))
            .map(record)
            .collect();
        // Two stages FROM the same image share one vertex, named after the first: the later
        // stage's FROM gets its row too (served from the image, as the classic path says).
        for (_, stage) in &self.numbering.stages {
            let Some(((from, text), rest)) = stage.split_first() else {
                continue;
            };
            let has = |n: usize| steps.iter().any(|s| s.number == n);
            if !has(*from) && rest.iter().any(|(n, _)| has(*n)) {
                steps.push(StepRecord::from_parts(
                    *from,
                    self.numbering.total,
                    text.clone(),
                    StepStatus::Cached,
                    0.0,
                    0,
                    VecDeque::new(),
                ));
            }
        }
        steps.sort_by_key(|s| s.number);
        // The same instruction can show up as two vertexes (a stage used twice); keep one row.
        steps.dedup_by_key(|s| s.number);
        steps
    }
}

/// Whether `FROM …` names `normalized` (BuildKit's spelling: `docker.io/library/x:latest`).
fn from_names(from: &str, normalized: &str) -> bool {
    let Some(image) = from
        .split_whitespace()
        .skip(1)
        .find(|t| !t.starts_with("--"))
    else {
        return false;
    };
    let tagged = if image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
        || image.contains('@')
    {
        image.to_string()
    } else {
        format!("{image}:latest")
    };
    normalized == tagged || normalized.ends_with(&format!("/{tagged}"))
}

fn record(v: &Vertex) -> StepRecord {
    StepRecord::from_parts(
        v.number.unwrap_or(0),
        v.total,
        v.instruction.clone(),
        v.status(),
        v.seconds(),
        v.output_lines,
        v.tail.clone(),
    )
}

fn cut(s: &str) -> String {
    if s.len() <= MESSAGE_LIMIT {
        return s.to_string();
    }
    let mut end = MESSAGE_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::moby::buildkit::v1::{Vertex as PbVertex, VertexLog};

    fn ts(s: i64) -> Option<bollard_buildkit_proto::google::protobuf::Timestamp> {
        Some(bollard_buildkit_proto::google::protobuf::Timestamp {
            seconds: s,
            nanos: 0,
        })
    }

    fn trace_line(st: &StatusResponse) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(st.encode_to_vec());
        format!(r#"{{"id":"moby.buildkit.trace","aux":"{b64}"}}"#).into_bytes()
    }

    fn vertex(digest: &str, name: &str) -> PbVertex {
        PbVertex {
            digest: digest.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn step_names_parse_with_and_without_a_stage() {
        assert_eq!(
            step_name("[2/5] COPY . /app"),
            Some(StepName {
                label: None,
                index: 2,
                of: 5,
                instruction: "COPY . /app"
            })
        );
        let s = step_name("[stage-1 3/4] RUN echo hi").unwrap();
        assert_eq!((s.label, s.index, s.of), (Some("stage-1"), 3, 4));
        assert_eq!(step_name("[internal] load build context"), None);
        assert_eq!(step_name("exporting to image"), None);
    }

    #[test]
    fn vertexes_merge_by_digest_into_classic_numbered_steps() {
        let numbering = Numbering {
            stages: vec![(
                None,
                vec![
                    (1, "FROM busybox:1".into()),
                    (3, "COPY a /a".into()),
                    (4, "RUN echo hi".into()),
                ],
            )],
            total: 5,
        };
        let mut t = Trace::new(numbering);
        let mut first = StatusResponse::default();
        first
            .vertexes
            .push(vertex("sha256:i", "[internal] load build context"));
        let mut from = vertex("sha256:a", "[1/3] FROM docker.io/library/busybox:1");
        from.started = ts(10);
        from.completed = ts(10);
        first.vertexes.push(from);
        let mut copy = vertex("sha256:b", "[2/3] COPY a /a");
        copy.cached = true;
        copy.started = ts(10);
        copy.completed = ts(10);
        first.vertexes.push(copy);
        let mut run = vertex("sha256:c", "[3/3] RUN echo hi");
        run.started = ts(11);
        first.vertexes.push(run);
        let ev = t.feed_line(&trace_line(&first)).unwrap();
        assert!(ev.contains(&BuildEvent::StepStarted {
            number: 3,
            total: 5,
            instruction: "COPY a /a".into()
        }));
        assert!(ev.contains(&BuildEvent::UsingCache { number: 3 }));
        assert!(!ev
            .iter()
            .any(|e| matches!(e, BuildEvent::StepDone { number: 4, .. })));

        // Later messages repeat the vertex with only what changed.
        let mut second = StatusResponse::default();
        let mut run = vertex("sha256:c", "[3/3] RUN echo hi");
        run.started = ts(11);
        run.completed = ts(14);
        second.vertexes.push(run);
        second.logs.push(VertexLog {
            vertex: "sha256:c".into(),
            msg: b"hi\nthere\x1b[0m\n".to_vec(),
            ..Default::default()
        });
        let ev = t.feed_line(&trace_line(&second)).unwrap();
        assert!(ev.contains(&BuildEvent::StepDone {
            number: 4,
            image_id: String::new()
        }));
        assert!(ev.contains(&BuildEvent::Output {
            number: 4,
            line: "there".into()
        }));
        t.feed_line(br#"{"id":"moby.image.id","aux":{"ID":"sha256:abc"}}"#)
            .unwrap();
        assert_eq!(t.ending, Some(Ending::Image("sha256:abc".into())));

        let steps = t.steps();
        let rows: Vec<(usize, &str, StepStatus)> = steps
            .iter()
            .map(|s| (s.number, s.instruction.as_str(), s.status))
            .collect();
        assert_eq!(
            rows,
            [
                (1, "FROM busybox:1", StepStatus::Cached),
                (3, "COPY a /a", StepStatus::Cached),
                (4, "RUN echo hi", StepStatus::Built),
            ]
        );
        assert_eq!(steps[2].seconds, 3.0);
        assert_eq!(steps[2].output_lines, 2);
    }

    #[test]
    fn a_failing_vertex_gives_the_message_code_and_tail() {
        let mut t = Trace::new(Numbering::default());
        let mut st = StatusResponse::default();
        let mut run = vertex("sha256:c", "[2/2] RUN exit 3");
        run.started = ts(1);
        run.completed = ts(2);
        run.error = "executor failed running [/bin/sh -c exit 3]: exit code: 3".into();
        st.vertexes.push(run);
        st.logs.push(VertexLog {
            vertex: "sha256:c".into(),
            msg: b"about to fail\n".to_vec(),
            ..Default::default()
        });
        let ev = t.feed_line(&trace_line(&st)).unwrap();
        assert!(!ev.iter().any(|e| matches!(e, BuildEvent::StepDone { .. })));
        t.feed_line(br#"{"errorDetail":{"message":"executor failed running [/bin/sh -c exit 3]: exit code: 3"},"error":"x"}"#)
            .unwrap();
        let Some(Ending::Failed(msg)) = t.ending.clone() else {
            panic!("{:?}", t.ending)
        };
        let (message, code) = t.failure(&msg);
        assert_eq!(code, Some(3), "{message}");
        let step = t.failing().unwrap();
        assert_eq!(step.instruction, "RUN exit 3");
        assert_eq!(step.tail, ["about to fail"]);
    }

    #[test]
    fn a_failing_internal_operation_names_no_step() {
        let mut t = Trace::new(Numbering::default());
        let mut st = StatusResponse::default();
        let mut from = vertex("sha256:a", "[1/2] FROM busybox");
        from.started = ts(1);
        from.completed = ts(1);
        st.vertexes.push(from);
        let mut load = vertex("sha256:l", "[internal] load build context");
        load.error = "changes out of order".into();
        st.vertexes.push(load);
        t.feed_line(&trace_line(&st)).unwrap();
        assert!(t.failing().is_none(), "not the FROM: {:?}", t.failing());
        let (message, code) = t.failure("changes out of order");
        assert_eq!(
            message,
            "[internal] load build context: changes out of order"
        );
        assert_eq!(code, None);
    }

    #[test]
    fn stages_on_scratch_or_an_earlier_stage_are_numbered_without_their_from() {
        // Vertex names as dockerd 20.10's BuildKit printed them for this Dockerfile.
        let numbering = Numbering {
            stages: vec![
                (
                    Some("a".into()),
                    vec![
                        (1, "FROM busybox:1 AS a".into()),
                        (2, "COPY a.txt /".into()),
                    ],
                ),
                (
                    Some("b".into()),
                    vec![
                        (3, "FROM A AS b".into()),
                        (4, "COPY a.txt /b".into()),
                        (5, "RUN true".into()),
                    ],
                ),
                (
                    None,
                    vec![
                        (6, "FROM --platform=linux/amd64 scratch".into()),
                        (7, "COPY --from=b /b /c".into()),
                    ],
                ),
            ],
            total: 7,
        };
        let mut t = Trace::new(numbering);
        let mut st = StatusResponse::default();
        for (d, name) in [
            ("sha256:1", "[a 1/2] FROM docker.io/library/busybox:1"),
            ("sha256:2", "[a 2/2] COPY a.txt /"),
            ("sha256:3", "[b 1/2] COPY a.txt /b"),
            ("sha256:4", "[b 2/2] RUN true"),
            ("sha256:5", "[stage-2 1/1] COPY --from=b /b /c"),
            // A concurrent build's vertex, shared with this one and named by that build.
            ("sha256:6", "[1/3] FROM docker.io/library/busybox:1"),
        ] {
            let mut v = vertex(d, name);
            v.started = ts(1);
            v.completed = ts(2);
            st.vertexes.push(v);
        }
        t.feed_line(&trace_line(&st)).unwrap();
        let rows: Vec<(usize, String)> = t
            .steps()
            .into_iter()
            .map(|s| (s.number, s.instruction))
            .collect();
        assert_eq!(
            rows,
            [
                (1, "FROM busybox:1 AS a".to_string()),
                (2, "COPY a.txt /".into()),
                (3, "FROM A AS b".into()),
                (4, "COPY a.txt /b".into()),
                (5, "RUN true".into()),
                (6, "FROM --platform=linux/amd64 scratch".into()),
                (7, "COPY --from=b /b /c".into()),
            ]
        );
    }

    #[test]
    fn a_stage_sharing_its_base_vertex_still_gets_its_from_row() {
        let numbering = Numbering {
            stages: vec![
                (
                    Some("build".into()),
                    vec![(1, "FROM b AS build".into()), (2, "RUN x".into())],
                ),
                (
                    None,
                    vec![(3, "FROM b".into()), (4, "COPY --from=build /x /x".into())],
                ),
            ],
            total: 4,
        };
        let mut t = Trace::new(numbering);
        let mut st = StatusResponse::default();
        for (d, name) in [
            ("sha256:f", "[build 1/2] FROM docker.io/library/b"),
            ("sha256:r", "[build 2/2] RUN x"),
            ("sha256:c", "[stage-1 2/2] COPY --from=build /x /x"),
        ] {
            let mut v = vertex(d, name);
            v.started = ts(1);
            v.completed = ts(2);
            st.vertexes.push(v);
        }
        t.feed_line(&trace_line(&st)).unwrap();
        let rows: Vec<(usize, String)> = t
            .steps()
            .into_iter()
            .map(|s| (s.number, s.instruction))
            .collect();
        assert_eq!(
            rows,
            [
                (1, "FROM b AS build".to_string()),
                (2, "RUN x".into()),
                (3, "FROM b".into()),
                (4, "COPY --from=build /x /x".into())
            ]
        );
    }

    #[test]
    fn an_unresolvable_base_is_blamed_on_its_from() {
        let numbering = Numbering {
            stages: vec![(None, vec![(1, "FROM python:3.12-alpine".into())])],
            total: 3,
        };
        let mut t = Trace::new(numbering);
        let mut st = StatusResponse::default();
        let mut meta = vertex(
            "sha256:m",
            "[internal] load metadata for docker.io/library/python:3.12-alpine",
        );
        meta.error = "no such host".into();
        st.vertexes.push(meta);
        t.feed_line(&trace_line(&st)).unwrap();
        let step = t.failing().expect("the FROM");
        assert_eq!(
            (step.number, step.instruction.as_str()),
            (1, "FROM python:3.12-alpine")
        );
        assert!(from_names(
            "FROM --platform=x busybox",
            "docker.io/library/busybox:latest"
        ));
        assert!(!from_names(
            "FROM busybox:1",
            "docker.io/library/busybox:latest"
        ));
    }

    #[test]
    fn a_from_that_resolves_in_a_registry_is_built_one_from_the_store_cached() {
        let numbering = Numbering {
            stages: vec![(None, vec![(1, "FROM r/b:1".into())])],
            total: 1,
        };
        let mut t = Trace::new(numbering.clone());
        let mut st = StatusResponse::default();
        let mut from = vertex("sha256:f", "[1/1] FROM r/b:1");
        from.started = ts(1);
        from.completed = ts(2);
        st.vertexes.push(from);
        t.feed_line(&trace_line(&st)).unwrap();
        assert_eq!(t.steps()[0].status, StepStatus::Cached);
        st.statuses
            .push(bollard_buildkit_proto::moby::buildkit::v1::VertexStatus {
                id: "resolve r/b:1".into(),
                vertex: "sha256:f".into(),
                ..Default::default()
            });
        let mut t = Trace::new(numbering);
        t.feed_line(&trace_line(&st)).unwrap();
        assert_eq!(t.steps()[0].status, StepStatus::Built);
    }

    #[test]
    fn junk_is_a_malformed_stream() {
        let mut t = Trace::new(Numbering::default());
        assert!(t.feed_line(b"<html>502</html>").is_err());
        assert!(t
            .feed_line(br#"{"id":"moby.buildkit.trace","aux":"!!!"}"#)
            .is_err());
        assert!(t
            .feed_line(br#"{"id":"moby.buildkit.trace","aux":"AAEC"}"#)
            .is_err());
    }
}
