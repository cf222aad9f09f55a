//! The library's event [`Sink`] for people: live bars on a terminal, one plain line per event
//! for CI and Cloud Build logs, or nothing — decided by the resolved [`ProgressMode`], never by
//! asking whether stderr is a terminal. Writes only to stderr.
//!
//! Both renderers take an event's words from one formatter ([`Renderer::text`]): plain mode
//! prints them with the time since the start; bars print the lasting ones above the live area
//! and show the others in the spinner of the current step.

use super::theme::{bytes, paint};
use super::{ProgressMode, UiConfig, Verbosity};
use ctxbuild::engine::{BuildEvent, PushEvent};
use ctxbuild::events::{Degraded, Event, Sink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Renders events as they happen.
pub struct Renderer {
    ui: UiConfig,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bars: Option<Bars>,
    /// Per step: when it started, its instruction, and whether it counts as cached so far.
    steps: HashMap<usize, (Instant, String, bool)>,
    current: Option<usize>,
    last_push_status: HashMap<String, String>,
}

struct Bars {
    multi: MultiProgress,
    upload: Option<ProgressBar>,
    step: HashMap<usize, ProgressBar>,
    tail: Option<ProgressBar>,
    push: Option<ProgressBar>,
    clean: Option<ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a bad one falls back to the default style.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

fn spinner(multi: &MultiProgress, template: &str) -> ProgressBar {
    let bar = multi.add(ProgressBar::new_spinner());
    bar.set_style(style(template));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

impl Renderer {
    pub fn new(ui: UiConfig) -> Renderer {
        let bars = (ui.progress == ProgressMode::Bars).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            upload: None,
            step: HashMap::new(),
            tail: None,
            push: None,
            clean: None,
        });
        Renderer {
            ui,
            started: Instant::now(),
            state: Mutex::new(State {
                bars,
                ..Default::default()
            }),
        }
    }

    fn paint(&self, s: &str, st: console::Style) -> String {
        paint(self.ui.color, s, st)
    }

    /// The words of a build event, the same for both renderers; `None` for events with none.
    fn text(&self, e: &BuildEvent, st: &State) -> Option<String> {
        Some(match e {
            BuildEvent::Upload { .. }
            | BuildEvent::UsingCache { .. }
            | BuildEvent::ContainerRemoved { .. }
            | BuildEvent::Tagged { .. } => return None,
            BuildEvent::UploadDone { bytes: n, seconds } => format!(
                "context: {} sent in {seconds:.1}s ({}/s)",
                bytes(*n),
                bytes(rate(*n, *seconds))
            ),
            BuildEvent::StepStarted {
                number,
                total,
                instruction,
            } => format!("Step {number}/{total} : {}", shorten(instruction)),
            BuildEvent::RunningIn { number, container } => {
                format!("#{number} running in {container}")
            }
            BuildEvent::Output { number, line } => format!("#{number} | {line}"),
            BuildEvent::StepDone { number, image_id } => {
                let (at, instr, cached) = st.steps.get(number)?;
                let status = if *cached {
                    self.paint("CACHED", console::Style::new().green())
                } else {
                    self.paint("BUILT ", console::Style::new().yellow())
                };
                // BuildKit makes no image per step: then there is no id to show.
                let arrow = if image_id.is_empty() {
                    String::new()
                } else {
                    format!(" ---> {image_id}")
                };
                format!(
                    "#{number} {status} {:>5.1}s  {}{arrow}",
                    at.elapsed().as_secs_f64(),
                    // Printed lines are not cut to the terminal like live bars are.
                    console::truncate_str(instr, 56, "…")
                )
            }
            BuildEvent::Built { image_id } => format!("built {image_id}"),
            BuildEvent::Status {
                id: Some(id),
                status,
            } => format!("{id}: {status}"),
            BuildEvent::Status { id: None, status } => status.clone(),
            BuildEvent::Warning { message } => format!("warning: {message}"),
            BuildEvent::Error { message, .. } => format!("error: {message}"),
        })
    }

    /// Prints a lasting line: above the live area, or stamped in plain mode.
    fn println(&self, st: &State, line: &str) {
        match (&st.bars, self.ui.progress) {
            (Some(b), _) => {
                let _ = b.multi.println(line);
            }
            (None, ProgressMode::Plain) => {
                eprintln!("[{:>6.1}s] {line}", self.started.elapsed().as_secs_f64())
            }
            _ => {}
        }
    }

    fn track(st: &mut State, e: &BuildEvent) {
        match e {
            BuildEvent::StepStarted {
                number,
                instruction,
                ..
            } => {
                st.steps.insert(
                    *number,
                    (Instant::now(), instruction.clone(), is_from(instruction)),
                );
                st.current = Some(*number);
            }
            BuildEvent::UsingCache { number } => {
                if let Some(s) = st.steps.get_mut(number) {
                    s.2 = true;
                }
            }
            BuildEvent::Status { .. } => {
                // A pull: the base was not local, so the step did work.
                if let Some(s) = st.current.and_then(|n| st.steps.get_mut(&n)) {
                    s.2 = false;
                }
            }
            _ => {}
        }
    }

    fn build(&self, st: &mut State, e: &BuildEvent) {
        Self::track(st, e);
        let text = self.text(e, st);
        if st.bars.is_none() {
            if let Some(t) = text {
                self.println(st, &t);
            }
            return;
        }
        let current = st.current;
        let Some(b) = st.bars.as_mut() else { return };
        match e {
            BuildEvent::Upload { bytes } => {
                let bar = b.upload.get_or_insert_with(|| {
                    spinner(
                        &b.multi,
                        "{spinner:.cyan} sending context {bytes} ({bytes_per_sec}) {elapsed:>4}",
                    )
                });
                bar.set_position(*bytes);
            }
            BuildEvent::StepStarted {
                number,
                total,
                instruction,
            } => {
                if let Some(t) = b.tail.take() {
                    t.finish_and_clear();
                }
                let bar = spinner(
                    &b.multi,
                    "{spinner:.cyan} {prefix:>9} {wide_msg} {elapsed:>4}",
                );
                bar.set_prefix(format!("Step {number}/{total}"));
                bar.set_message(instruction.clone());
                b.step.insert(*number, bar);
            }
            BuildEvent::Output { number, line } => {
                if let Some(step) = b.step.get(number) {
                    let tail = b.tail.get_or_insert_with(|| {
                        let t = b.multi.insert_after(step, ProgressBar::new_spinner());
                        t.set_style(style("            {wide_msg:.dim}"));
                        t
                    });
                    tail.set_message(line.clone());
                }
            }
            BuildEvent::UploadDone { .. }
            | BuildEvent::StepDone { .. }
            | BuildEvent::Warning { .. } => {
                if let Some(t) = b.tail.take() {
                    t.finish_and_clear();
                }
                if let Some(u) = b
                    .upload
                    .take()
                    .filter(|_| matches!(e, BuildEvent::UploadDone { .. }))
                {
                    u.finish_and_clear();
                }
                if let BuildEvent::StepDone { number, .. } = e {
                    if let Some(bar) = b.step.remove(number) {
                        bar.finish_and_clear();
                    }
                }
                if let Some(t) = text {
                    let _ = b.multi.println(t);
                }
            }
            BuildEvent::Error { .. } => {
                if let Some(t) = b.tail.take() {
                    t.finish_and_clear();
                }
                for (_, bar) in b.step.drain() {
                    bar.abandon();
                }
            }
            BuildEvent::Status { .. } => {
                if let (Some(bar), Some(t)) = (current.and_then(|n| b.step.get(&n)), text) {
                    bar.set_message(t);
                }
            }
            _ => {}
        }
    }

    fn push(&self, st: &mut State, tag: &str, e: &PushEvent) {
        match (self.ui.progress, e) {
            (ProgressMode::Off, _) => {}
            (ProgressMode::Plain, PushEvent::Status { status }) => {
                // The engine repeats "Pushing" per layer many times; say each change once.
                if st.last_push_status.get(tag) != Some(status) {
                    st.last_push_status.insert(tag.to_string(), status.clone());
                    self.println(st, &format!("push {tag}: {status}"));
                }
            }
            (ProgressMode::Plain, PushEvent::Progress { .. }) => {}
            (ProgressMode::Bars, _) => {
                let Some(b) = st.bars.as_mut() else { return };
                let bar = b.push.get_or_insert_with(|| {
                    let bar = spinner(
                        &b.multi,
                        "{spinner:.cyan} push {prefix} {wide_msg} {elapsed:>4}",
                    );
                    bar.set_prefix(tag.to_string());
                    bar
                });
                match e {
                    PushEvent::Status { status } => bar.set_message(status.clone()),
                    PushEvent::Progress { current, total } => {
                        bar.set_message(format!("{} / {}", bytes(*current), bytes(*total)))
                    }
                }
            }
        }
    }

    fn clean(&self, st: &mut State, e: &Event) {
        let Some(b) = st.bars.as_mut() else { return };
        let bar = b.clean.get_or_insert_with(|| {
            let bar = b.multi.add(ProgressBar::no_length());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("scanning");
            bar
        });
        match e {
            Event::CleanWalking { entries } => {
                bar.set_message(format!("scanned {entries} entries"));
                bar.tick();
            }
            Event::CleanRemoving { done, total } => {
                if bar.length() != Some(*total) {
                    bar.set_length(*total);
                    bar.set_message("removing");
                }
                bar.set_position(*done);
            }
            _ => {}
        }
    }

    /// A message about the build (not a progress event): shown unless `--quiet`.
    fn info(&self, st: &State, s: &str) {
        if self.ui.verbosity >= Verbosity::Normal {
            match &st.bars {
                Some(b) => {
                    let _ = b.multi.println(s);
                }
                None => eprintln!("{s}"),
            }
        }
    }

    fn warn(&self, st: &State, s: &str) {
        let line = format!(
            "{} {s}",
            self.paint("warning:", console::Style::new().yellow().bold())
        );
        match &st.bars {
            Some(b) => {
                let _ = b.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Stops every live line (before the report is printed).
    fn finish(st: &mut State) {
        if let Some(b) = st.bars.as_mut() {
            for bar in [b.tail.take(), b.upload.take(), b.clean.take()]
                .into_iter()
                .flatten()
            {
                bar.finish_and_clear();
            }
            for (_, bar) in b.step.drain() {
                bar.abandon();
            }
            if let Some(p) = b.push.take() {
                p.abandon();
            }
        }
    }
}

impl Sink for Renderer {
    fn event(&self, e: &Event<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::CleanWalking { .. } | Event::CleanRemoving { .. } => self.clean(&mut st, e),
            Event::ContextCleaned {
                files,
                dirs,
                bytes: n,
            } => {
                if let Some(bar) = st.bars.as_mut().and_then(|b| b.clean.take()) {
                    bar.finish_and_clear();
                }
                self.info(
                    &st,
                    &format!(
                        "cleaned the context: {} and {} of bytecode removed ({})",
                        super::theme::plural(*files, "file"),
                        super::theme::plural(*dirs, "directory"),
                        bytes(*n)
                    ),
                )
            }
            Event::DockerfileChosen {
                service,
                dockerfile,
                reason,
            } => self.info(&st, &format!("{service}: building {dockerfile} ({reason})")),
            Event::BuilderChosen { choice } => {
                use ctxbuild::builder::ChoiceReason;
                let why = match &choice.reason {
                    ChoiceReason::Asked => "as asked".to_string(),
                    ChoiceReason::NotNeeded => {
                        "auto: nothing in the Dockerfile needs BuildKit".into()
                    }
                    ChoiceReason::Needed(n) => format!("auto: line {} uses {}", n.line, n.what),
                    ChoiceReason::EngineLacks(n) => format!(
                        "auto: line {} uses {} but the engine has no BuildKit",
                        n.line, n.what
                    ),
                };
                if choice.reason != ChoiceReason::NotNeeded
                    || self.ui.verbosity >= Verbosity::Verbose
                {
                    self.info(&st, &format!("builder: {} ({why})", choice.builder));
                }
            }
            Event::ContextKeyed { files, threads } => {
                if self.ui.verbosity >= Verbosity::Verbose {
                    eprintln!(
                        "keyed {} on {}",
                        super::theme::plural(*files as u64, "context entry"),
                        super::theme::plural(*threads as u64, "hashing thread")
                    );
                }
            }
            Event::EngineConnected { host, api_version } => {
                if self.ui.verbosity >= Verbosity::Verbose {
                    eprintln!("engine {host} (API {api_version})");
                }
            }
            Event::BytecodeNamed { paths } => self.info(
                &st,
                &format!(
                    "sending {} because the Dockerfile names them in COPY/ADD: {}",
                    super::theme::plural(paths.len() as u64, "bytecode entry"),
                    paths.join(", ")
                ),
            ),
            Event::BytecodeKeptOut {
                entries,
                bytes: n,
                rules,
            } => self.info(
                &st,
                &format!(
                    "leaving {} ({}) out of the context: .dockerignore lets them in (add {} to \
                     it, or run `ctxbuild clean`)",
                    super::theme::plural(*entries, "bytecode entry"),
                    bytes(*n),
                    rules.join(", ")
                ),
            ),
            Event::Degraded { what, error } => {
                let why = super::diagnostics::plain(error);
                let why = why.trim_end().trim_start_matches("error: ");
                let s = match what {
                    Degraded::KeyContext => format!(
                        "cannot key the context, so the report cannot say why a step rebuilt: {why}"
                    ),
                    Degraded::PlanSteps => format!(
                        "cannot compute cache keys, so the report cannot say why a step rebuilt: {why}"
                    ),
                    Degraded::SavePlan => {
                        format!("{why} (the next report cannot say why a step rebuilt)")
                    }
                    Degraded::PlanLabel => format!(
                        "{why}: a builder that only has this image cannot say why a step rebuilt"
                    ),
                };
                self.warn(&st, &s);
            }
            Event::CacheFromPulling { reference } => {
                self.info(&st, &format!("pulling cache image {reference}"))
            }
            Event::CacheFromReady {
                reference,
                image_id,
                pulled,
            } => {
                if self.ui.verbosity >= Verbosity::Verbose || *pulled {
                    let id = image_id.strip_prefix("sha256:").unwrap_or(image_id);
                    let id = &id[..id.len().min(12)];
                    self.info(&st, &format!("cache image {reference} ({id})"));
                }
            }
            Event::CacheFromUnavailable { reference, error } => {
                let why = super::diagnostics::plain(error);
                let why = why.trim_end().trim_start_matches("error: ");
                self.warn(
                    &st,
                    &format!("cache image {reference} unavailable, building without it: {why}"),
                );
            }
            Event::Build(b) => self.build(&mut st, b),
            Event::Push { tag, event } => self.push(&mut st, tag, event),
            Event::Pushed { tag, digest } => {
                if let Some(bar) = st.bars.as_mut().and_then(|b| b.push.take()) {
                    bar.finish_and_clear();
                }
                let tick = if st.bars.is_some() {
                    format!("{} ", self.paint("✓", console::Style::new().green()))
                } else {
                    String::new()
                };
                self.println(&st, &format!("{tick}pushed {tag} {}", digest.unwrap_or("")));
            }
            Event::Finished => Self::finish(&mut st),
        }
    }
}

/// A FROM step counts as cached unless the base had to be pulled (as in the report).
fn is_from(instruction: &str) -> bool {
    instruction
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
}

fn rate(bytes: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (bytes as f64 / seconds) as u64
    } else {
        bytes
    }
}

/// An instruction as a progress line shows it: whole up to [`SHOWN_INSTRUCTION`] characters,
/// then cut with the count of what was left out (ctxbuild's `LABEL` line carries the saved plan,
/// a few kilobytes of base64 nobody reads in a log). The report and `--report` keep it whole.
fn shorten(instruction: &str) -> std::borrow::Cow<'_, str> {
    match instruction.char_indices().nth(SHOWN_INSTRUCTION) {
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &instruction[..cut],
            instruction[cut..].chars().count()
        )
        .into(),
        None => instruction.into(),
    }
}

/// How many characters of an instruction a progress line shows.
const SHOWN_INSTRUCTION: usize = 300;

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn long_instructions_are_cut_with_a_count_short_ones_kept() {
        assert_eq!(shorten("RUN echo hi"), "RUN echo hi");
        let long = format!("LABEL \"plan\"=\"{}\"", "é".repeat(400));
        let shown = shorten(&long);
        assert!(shown.ends_with(&format!(
            "… ({} more characters)",
            long.chars().count() - 300
        )));
        assert_eq!(shown.chars().take_while(|c| *c != '…').count(), 300);
    }
}
