//! The classic builder's NDJSON stream, decoded into our own [`BuildEvent`]s.
//!
//! The decoder is pure: it takes the messages the engine sent (already split into JSON objects
//! by bollard) and returns events, so it is unit-tested with canned NDJSON captured from a real
//! engine. It knows nothing about connections: a broken connection is an [`EngineError`], never
//! an event. Text arrives in arbitrary chunks ("Step 1/4 : FROM x" and its newline come
//! separately), so it is re-assembled into lines here.
//!
//! Memory is bounded whatever a step prints: a line longer than [`LINE_LIMIT`] is cut into
//! [`BuildEvent::Output`] pieces of at most that size as it arrives (a `RUN` printing 100 MB
//! without a newline streams through in 64 KiB pieces instead of being held whole), and each
//! chunk is searched for newlines once, not the whole pending line again.
//!
//! [`EngineError`]: super::EngineError

use bollard::models::BuildInfo;

/// One thing that happened during a build, in the order it happened.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum BuildEvent {
    /// Bytes of the context sent to the engine so far.
    Upload { bytes: u64 },
    /// The whole context has been sent.
    UploadDone { bytes: u64, seconds: f64 },
    /// "Step 3/9 : COPY . /app".
    StepStarted {
        number: usize,
        total: usize,
        instruction: String,
    },
    /// " ---> Using cache": the step's layer came from the cache.
    UsingCache { number: usize },
    /// " ---> Running in 1a2b3c4d5e6f": the intermediate container of a step.
    RunningIn { number: usize, container: String },
    /// A line the step printed (ANSI colour removed; stderr lines included).
    Output { number: usize, line: String },
    /// "Removing intermediate container 1a2b3c4d5e6f".
    ContainerRemoved { container: String },
    /// " ---> 3f4e5d6c7b8a": the step's resulting image.
    StepDone { number: usize, image_id: String },
    /// The final image (full `sha256:` id from the aux message, else the short id).
    Built { image_id: String },
    /// "Successfully tagged NAME:TAG".
    Tagged { tag: String },
    /// A status message, e.g. while pulling a base image.
    Status { id: Option<String>, status: String },
    /// "[Warning] One or more build-args [X] were not consumed".
    Warning { message: String },
    /// The build failed; the stream ends here.
    Error { message: String, code: Option<i64> },
}

/// The longest line kept whole; longer ones are emitted in pieces of this size.
pub const LINE_LIMIT: usize = 64 * 1024;
/// The longest status or error message kept; the rest is cut (a hostile engine can send any).
pub const MESSAGE_LIMIT: usize = 64 * 1024;

/// Turns engine messages into [`BuildEvent`]s.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Text of the current, unfinished line.
    pending: String,
    /// The step whose output we are reading (0 before the first step).
    step: usize,
    /// The aux message already gave the full image id.
    built: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one NDJSON line as the engine sends it (for tests and raw streams).
    pub fn feed_json(&mut self, line: &str) -> Result<Vec<BuildEvent>, serde_json::Error> {
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        let info: BuildInfo = serde_json::from_str(line)?;
        Ok(self.feed(&info))
    }

    /// Decodes one message of the build stream.
    pub fn feed(&mut self, info: &BuildInfo) -> Vec<BuildEvent> {
        let mut out = Vec::new();
        if let Some(text) = &info.stream {
            self.push_text(text, &mut out);
        }
        if let Some(status) = &info.status {
            out.push(BuildEvent::Status {
                id: info.id.as_deref().map(|s| cut(s, MESSAGE_LIMIT)),
                status: cut(status, MESSAGE_LIMIT),
            });
        }
        if let Some(aux) = &info.aux {
            if let Some(id) = &aux.id {
                self.built = true;
                out.push(BuildEvent::Built {
                    image_id: id.clone(),
                });
            }
        }
        if let Some(detail) = &info.error_detail {
            self.flush(&mut out);
            let message = cut(detail.message.as_deref().unwrap_or_default(), MESSAGE_LIMIT);
            let code = detail.code.or_else(|| exit_code_in(&message));
            out.push(BuildEvent::Error { message, code });
        }
        out
    }

    /// Splits stream text into lines; `pending` never holds more than [`LINE_LIMIT`] bytes.
    fn push_text(&mut self, mut text: &str, out: &mut Vec<BuildEvent>) {
        while !text.is_empty() {
            match text.find('\n') {
                Some(nl) if self.pending.len() + nl <= LINE_LIMIT => {
                    self.pending.push_str(&text[..nl]);
                    text = &text[nl + 1..];
                    let line = std::mem::take(&mut self.pending);
                    self.line(&line, out);
                }
                _ if self.pending.len() >= LINE_LIMIT => {
                    let piece = std::mem::take(&mut self.pending);
                    self.line(&piece, out);
                }
                found => {
                    let room = LINE_LIMIT - self.pending.len();
                    let want = found.unwrap_or(text.len());
                    if want <= room {
                        // No newline in this chunk and it fits: wait for the rest of the line.
                        self.pending.push_str(text);
                        return;
                    }
                    // The line outgrows the limit: emit a full piece and go on with the rest.
                    let take = floor_char_boundary(text, room);
                    self.pending.push_str(&text[..take]);
                    text = &text[take..];
                    let piece = std::mem::take(&mut self.pending);
                    self.line(&piece, out);
                }
            }
        }
    }

    /// An error the stream reported without its detail (bollard keeps only the message).
    pub fn feed_error(&mut self, message: &str) -> Vec<BuildEvent> {
        let mut out = Vec::new();
        self.flush(&mut out);
        out.push(BuildEvent::Error {
            message: cut(message, MESSAGE_LIMIT),
            code: exit_code_in(message),
        });
        out
    }

    /// The stream ended: emit the unfinished line, if any.
    pub fn finish(&mut self) -> Vec<BuildEvent> {
        let mut out = Vec::new();
        self.flush(&mut out);
        out
    }

    fn flush(&mut self, out: &mut Vec<BuildEvent>) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            // A lone colour reset after the last stderr line is not output.
            if !strip_ansi(&line).trim().is_empty() {
                self.line(&line, out);
            }
        }
    }

    fn line(&mut self, raw: &str, out: &mut Vec<BuildEvent>) {
        let had_escape = raw.contains('\x1b');
        let clean = strip_ansi(raw);
        // A progress bar redraws with \r: keep what a terminal would finally show.
        let clean = match clean.rsplit_once('\r') {
            Some((_, last)) => last.to_string(),
            None => clean,
        };
        if had_escape && clean.is_empty() {
            return;
        }
        if let Some(rest) = clean.strip_prefix("Step ") {
            if let Some((counts, instruction)) = rest.split_once(" : ") {
                if let Some((n, m)) = counts.split_once('/') {
                    if let (Ok(number), Ok(total)) = (n.parse(), m.parse()) {
                        self.step = number;
                        out.push(BuildEvent::StepStarted {
                            number,
                            total,
                            instruction: instruction.trim_end().to_string(),
                        });
                        return;
                    }
                }
            }
        }
        if let Some(rest) = clean.strip_prefix(" ---> ") {
            let rest = rest.trim_end();
            if rest == "Using cache" {
                out.push(BuildEvent::UsingCache { number: self.step });
                return;
            }
            if let Some(id) = rest.strip_prefix("Running in ") {
                out.push(BuildEvent::RunningIn {
                    number: self.step,
                    container: id.trim().to_string(),
                });
                return;
            }
            if let Some(w) = rest.strip_prefix("[Warning] ") {
                out.push(BuildEvent::Warning {
                    message: w.to_string(),
                });
                return;
            }
            if is_short_id(rest) {
                out.push(BuildEvent::StepDone {
                    number: self.step,
                    image_id: rest.to_string(),
                });
                return;
            }
        }
        if let Some(id) = clean.strip_prefix("Removing intermediate container ") {
            out.push(BuildEvent::ContainerRemoved {
                container: id.trim().to_string(),
            });
            return;
        }
        if let Some(id) = clean.strip_prefix("Successfully built ") {
            if !self.built {
                self.built = true;
                out.push(BuildEvent::Built {
                    image_id: id.trim().to_string(),
                });
            }
            return;
        }
        if let Some(tag) = clean.strip_prefix("Successfully tagged ") {
            out.push(BuildEvent::Tagged {
                tag: tag.trim().to_string(),
            });
            return;
        }
        if let Some(w) = clean.strip_prefix("[Warning] ") {
            out.push(BuildEvent::Warning {
                message: w.to_string(),
            });
            return;
        }
        out.push(BuildEvent::Output {
            number: self.step,
            line: clean,
        });
    }
}

/// The largest index `<= i` on a char boundary of `s` (at least one char when `i` is 0 and `s`
/// is not empty, so a piece always makes progress).
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut j = i;
    while j > 0 && !s.is_char_boundary(j) {
        j -= 1;
    }
    if j == 0 {
        s.char_indices().nth(1).map_or(s.len(), |(k, _)| k)
    } else {
        j
    }
}

/// `s`, cut to at most `limit` bytes (on a char boundary) with a note of what was left out.
fn cut(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let end = floor_char_boundary(s, limit);
    format!("{} … ({} more bytes)", &s[..end], s.len() - end)
}

/// A 12-character (or longer) lowercase hex image id.
fn is_short_id(s: &str) -> bool {
    s.len() >= 12
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The exit code in "The command '/bin/sh -c exit 3' returned a non-zero code: 3".
pub fn exit_code_in(message: &str) -> Option<i64> {
    let (_, rest) = message.rsplit_once("returned a non-zero code: ")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Removes ANSI escape sequences (the daemon colours a step's stderr red).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(ndjson: &str) -> Vec<BuildEvent> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for line in ndjson.lines() {
            out.extend(d.feed_json(line).unwrap());
        }
        out.extend(d.finish());
        out
    }

    // Captured from dockerd 20.10 (API 1.41), classic builder, first build.
    const FIRST_BUILD_FAILING: &str = r#"{"stream":"Step 1/4 : FROM ctxbuild-test/busybox:1"}
{"stream":"\n"}
{"stream":" ---\u003e 2d9959c04eba\n"}
{"stream":"Step 2/4 : COPY a.txt /a.txt"}
{"stream":"\n"}
{"stream":" ---\u003e eb39d5b6b9bc\n"}
{"stream":"Step 3/4 : RUN echo hello \u0026\u0026 echo err \u003e\u00262"}
{"stream":"\n"}
{"stream":" ---\u003e Running in fc3436fbd508\n"}
{"stream":"hello\n"}
{"stream":"\u001b[91merr\n\u001b[0m"}
{"stream":"Removing intermediate container fc3436fbd508\n"}
{"stream":" ---\u003e f66e5a6f5794\n"}
{"stream":"Step 4/4 : RUN exit 3"}
{"stream":"\n"}
{"stream":" ---\u003e Running in 8ffaf9f60961\n"}
{"stream":"Removing intermediate container 8ffaf9f60961\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
"#;

    // The same context rebuilt with the last step changed: two cache hits.
    const REBUILD: &str = r#"{"stream":"Step 1/4 : FROM ctxbuild-test/busybox:1"}
{"stream":"\n"}
{"stream":" ---\u003e 2d9959c04eba\n"}
{"stream":"Step 2/4 : COPY a.txt /a.txt"}
{"stream":"\n"}
{"stream":" ---\u003e Using cache\n"}
{"stream":" ---\u003e eb39d5b6b9bc\n"}
{"stream":"Step 3/4 : RUN echo hello \u0026\u0026 echo err \u003e\u00262"}
{"stream":"\n"}
{"stream":" ---\u003e Using cache\n"}
{"stream":" ---\u003e f66e5a6f5794\n"}
{"stream":"Step 4/4 : LABEL x=y"}
{"stream":"\n"}
{"stream":" ---\u003e Running in 097f770c0443\n"}
{"stream":"Removing intermediate container 097f770c0443\n"}
{"stream":" ---\u003e cbc2550db3d7\n"}
{"aux":{"ID":"sha256:cbc2550db3d71f63b5862aba282ce65f062446e25beecd55b826cf61528cb423"}}
{"stream":"Successfully built cbc2550db3d7\n"}
{"stream":"Successfully tagged eng-probe:1\n"}
"#;

    fn step(number: usize, total: usize, instruction: &str) -> BuildEvent {
        BuildEvent::StepStarted {
            number,
            total,
            instruction: instruction.into(),
        }
    }

    #[test]
    fn failing_run_yields_steps_output_and_the_exit_code() {
        let ev = decode(FIRST_BUILD_FAILING);
        assert_eq!(
            ev,
            vec![
                step(1, 4, "FROM ctxbuild-test/busybox:1"),
                BuildEvent::StepDone {
                    number: 1,
                    image_id: "2d9959c04eba".into()
                },
                step(2, 4, "COPY a.txt /a.txt"),
                BuildEvent::StepDone {
                    number: 2,
                    image_id: "eb39d5b6b9bc".into()
                },
                step(3, 4, "RUN echo hello && echo err >&2"),
                BuildEvent::RunningIn {
                    number: 3,
                    container: "fc3436fbd508".into()
                },
                BuildEvent::Output {
                    number: 3,
                    line: "hello".into()
                },
                BuildEvent::Output {
                    number: 3,
                    line: "err".into()
                },
                BuildEvent::ContainerRemoved {
                    container: "fc3436fbd508".into()
                },
                BuildEvent::StepDone {
                    number: 3,
                    image_id: "f66e5a6f5794".into()
                },
                step(4, 4, "RUN exit 3"),
                BuildEvent::RunningIn {
                    number: 4,
                    container: "8ffaf9f60961".into()
                },
                BuildEvent::ContainerRemoved {
                    container: "8ffaf9f60961".into()
                },
                BuildEvent::Error {
                    message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
                    code: Some(3)
                },
            ]
        );
    }

    #[test]
    fn rebuild_sees_cache_hits_and_the_full_image_id_once() {
        let ev = decode(REBUILD);
        let hits: Vec<usize> = ev
            .iter()
            .filter_map(|e| match e {
                BuildEvent::UsingCache { number } => Some(*number),
                _ => None,
            })
            .collect();
        assert_eq!(hits, vec![2, 3]);
        let built: Vec<&BuildEvent> = ev
            .iter()
            .filter(|e| matches!(e, BuildEvent::Built { .. }))
            .collect();
        assert_eq!(
            built,
            vec![&BuildEvent::Built {
                image_id: "sha256:cbc2550db3d71f63b5862aba282ce65f062446e25beecd55b826cf61528cb423"
                    .into()
            }]
        );
        assert!(ev.contains(&BuildEvent::Tagged {
            tag: "eng-probe:1".into()
        }));
    }

    #[test]
    fn chunks_split_anywhere_still_make_lines() {
        let mut d = Decoder::new();
        let mut ev = Vec::new();
        for chunk in [
            "Ste",
            "p 1/2 : FROM x\n ---> 0123456789ab\nStep 2/2 : RUN a",
            "\nline one\nline t",
            "wo",
        ] {
            let msg = format!("{{\"stream\":{}}}", serde_json::to_string(chunk).unwrap());
            ev.extend(d.feed_json(&msg).unwrap());
        }
        ev.extend(d.finish());
        assert_eq!(
            ev,
            vec![
                step(1, 2, "FROM x"),
                BuildEvent::StepDone {
                    number: 1,
                    image_id: "0123456789ab".into()
                },
                step(2, 2, "RUN a"),
                BuildEvent::Output {
                    number: 2,
                    line: "line one".into()
                },
                BuildEvent::Output {
                    number: 2,
                    line: "line two".into()
                },
            ]
        );
    }

    #[test]
    fn warnings_status_and_stream_errors() {
        let ev = decode(
            r#"{"stream":"[Warning] One or more build-args [NOPE] were not consumed\n"}
{"status":"Pulling from library/x","id":"1"}
{"stream":"Step 1/1 : RUN pip install\n"}
{"stream":"Downloading 10%\rDownloading 100%\n"}
{"stream":"\n"}"#,
        );
        assert_eq!(
            ev,
            vec![
                BuildEvent::Warning {
                    message: "One or more build-args [NOPE] were not consumed".into()
                },
                BuildEvent::Status {
                    id: Some("1".into()),
                    status: "Pulling from library/x".into()
                },
                step(1, 1, "RUN pip install"),
                BuildEvent::Output {
                    number: 1,
                    line: "Downloading 100%".into()
                },
                BuildEvent::Output {
                    number: 1,
                    line: "".into()
                },
            ]
        );
        let mut d = Decoder::new();
        assert_eq!(
            d.feed_error("COPY failed: file not found in build context"),
            vec![BuildEvent::Error {
                message: "COPY failed: file not found in build context".into(),
                code: None
            }]
        );
        assert_eq!(
            exit_code_in("The command '/bin/sh -c false' returned a non-zero code: 1"),
            Some(1)
        );
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\x1b[91merr\x1b[0m"), "err");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("\x1b[1;32mok"), "ok");
    }

    fn stream_msg(text: &str) -> BuildInfo {
        BuildInfo {
            stream: Some(text.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn a_line_without_end_streams_out_in_bounded_pieces() {
        let mut d = Decoder::new();
        let mut pieces = Vec::new();
        d.feed(&stream_msg("Step 1/1 : RUN yes\n"));
        // 1 MiB of output in 3000-byte chunks with a 3-byte char straddling piece boundaries.
        let chunk = "x€".repeat(600);
        let mut sent = 0;
        while sent < 1 << 20 {
            for e in d.feed(&stream_msg(&chunk)) {
                pieces.push(e);
            }
            sent += chunk.len();
            assert!(
                d.pending.len() <= LINE_LIMIT + 4,
                "pending grew to {}",
                d.pending.len()
            );
        }
        pieces.extend(d.feed(&stream_msg("\ndone\n")));
        let lines: Vec<&str> = pieces
            .iter()
            .map(|e| match e {
                BuildEvent::Output { number: 1, line } => line.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(lines.len() > 16, "{} pieces", lines.len());
        assert!(lines.iter().all(|l| l.len() <= LINE_LIMIT));
        assert_eq!(lines.last(), Some(&"done"));
        let total: usize = lines[..lines.len() - 1].iter().map(|l| l.len()).sum();
        assert_eq!(total, sent, "nothing lost or duplicated");
    }

    #[test]
    fn huge_messages_are_cut() {
        let mut d = Decoder::new();
        let long = "e".repeat(MESSAGE_LIMIT * 3);
        let ev = d.feed_error(&long);
        match &ev[..] {
            [BuildEvent::Error { message, .. }] => {
                assert!(message.len() < MESSAGE_LIMIT + 64);
                assert!(
                    message.ends_with("more bytes)"),
                    "{}",
                    &message[message.len() - 40..]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
