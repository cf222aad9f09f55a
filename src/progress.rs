//! Live display of an image build and push, in the printer's domain: it writes only to stderr.
//!
//! Driven by the resolved [`ProgressMode`] — it never asks whether stderr is a terminal:
//! - `Bars`: indicatif, one line per step with a spinner and its elapsed time, the current
//!   step's last output line under it, and the context upload with bytes and rate;
//! - `Plain`: one line per event with the time since the start and the step number, and every
//!   line of step output kept (CI and Cloud Build logs);
//! - `Off`: nothing.

use crate::config::{GlobalConfig, ProgressMode};
use crate::engine::{BuildEvent, PushEvent};
use crate::report::human_bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Renders build and push events as they happen.
pub struct Progress {
    mode: ProgressMode,
    color: bool,
    started: Instant,
    bars: Option<Bars>,
    /// Per step: when it started and its instruction (for the plain "done" line).
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
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a bad one falls back to the default style.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

impl Progress {
    pub fn new(config: &GlobalConfig) -> Progress {
        let bars = (config.progress == ProgressMode::Bars).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            upload: None,
            step: HashMap::new(),
            tail: None,
            push: None,
        });
        Progress {
            mode: config.progress,
            color: config.color,
            started: Instant::now(),
            bars,
            steps: HashMap::new(),
            current: None,
            last_push_status: HashMap::new(),
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f64())
    }

    fn paint(&self, s: &str, st: console::Style) -> String {
        if self.color {
            st.force_styling(true).apply_to(s).to_string()
        } else {
            s.to_string()
        }
    }

    /// A line above the live display (or a plain line).
    pub fn println(&self, line: &str) {
        match (&self.bars, self.mode) {
            (Some(b), _) => {
                let _ = b.multi.println(line);
            }
            (None, ProgressMode::Plain) => eprintln!("{} {line}", self.stamp()),
            _ => {}
        }
    }

    /// Shows one build event.
    pub fn build_event(&mut self, e: &BuildEvent) {
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Plain => self.plain_build(e),
            ProgressMode::Bars => self.bars_build(e),
        }
    }

    fn plain_build(&mut self, e: &BuildEvent) {
        let t = self.stamp();
        match e {
            // Byte counts every 100 ms would flood a CI log; the total is enough.
            BuildEvent::Upload { .. } => {}
            BuildEvent::UploadDone { bytes, seconds } => eprintln!(
                "{t} context: {} sent in {seconds:.1}s ({}/s)",
                human_bytes(*bytes),
                human_bytes(rate(*bytes, *seconds))
            ),
            BuildEvent::StepStarted {
                number,
                total,
                instruction,
            } => {
                self.steps.insert(
                    *number,
                    (Instant::now(), instruction.clone(), is_from(instruction)),
                );
                self.current = Some(*number);
                eprintln!("{t} Step {number}/{total} : {instruction}");
            }
            BuildEvent::UsingCache { number } => {
                if let Some(s) = self.steps.get_mut(number) {
                    s.2 = true;
                }
            }
            BuildEvent::RunningIn { number, container } => {
                eprintln!("{t} #{number} running in {container}")
            }
            BuildEvent::Output { number, line } => eprintln!("{t} #{number} | {line}"),
            BuildEvent::StepDone { number, image_id } => {
                if let Some((at, _, cached)) = self.steps.get(number) {
                    eprintln!(
                        "{t} #{number} {} in {:.1}s ---> {image_id}",
                        if *cached { "CACHED" } else { "BUILT" },
                        at.elapsed().as_secs_f64()
                    );
                }
            }
            BuildEvent::Built { image_id } => eprintln!("{t} built {image_id}"),
            BuildEvent::Status { id, status } => {
                // A pull: the base was not local, so the step did work.
                if let Some(s) = self.current.and_then(|n| self.steps.get_mut(&n)) {
                    s.2 = false;
                }
                match id {
                    Some(id) => eprintln!("{t} {id}: {status}"),
                    None => eprintln!("{t} {status}"),
                }
            }
            BuildEvent::Warning { message } => eprintln!("{t} warning: {message}"),
            BuildEvent::Error { message, .. } => eprintln!("{t} error: {message}"),
            BuildEvent::ContainerRemoved { .. } | BuildEvent::Tagged { .. } => {}
        }
    }

    fn bars_build(&mut self, e: &BuildEvent) {
        let color = self.color;
        let paint = |s: &str, st: console::Style| {
            if color {
                st.force_styling(true).apply_to(s).to_string()
            } else {
                s.to_string()
            }
        };
        let Some(b) = self.bars.as_mut() else { return };
        match e {
            BuildEvent::Upload { bytes } => {
                let bar = b.upload.get_or_insert_with(|| {
                    let bar = b.multi.add(ProgressBar::new_spinner());
                    bar.set_style(style(
                        "{spinner:.cyan} sending context {bytes} ({bytes_per_sec}) {elapsed:>4}",
                    ));
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                bar.set_position(*bytes);
            }
            BuildEvent::UploadDone { bytes, seconds } => {
                if let Some(bar) = b.upload.take() {
                    bar.finish_and_clear();
                }
                // Finished lines are printed above the live area, so the terminal is left on a
                // clean line for the report.
                let _ = b.multi.println(format!(
                    "{} context {} sent in {seconds:.1}s ({}/s)",
                    paint("✓", console::Style::new().green()),
                    human_bytes(*bytes),
                    human_bytes(rate(*bytes, *seconds))
                ));
            }
            BuildEvent::StepStarted {
                number,
                total,
                instruction,
            } => {
                if let Some(t) = b.tail.take() {
                    t.finish_and_clear();
                }
                let bar = b.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner:.cyan} {prefix:>9} {wide_msg} {elapsed:>4}"));
                bar.set_prefix(format!("Step {number}/{total}"));
                bar.set_message(instruction.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                b.step.insert(*number, bar);
                self.steps.insert(
                    *number,
                    (Instant::now(), instruction.clone(), is_from(instruction)),
                );
                self.current = Some(*number);
            }
            BuildEvent::UsingCache { number } => {
                if let Some(s) = self.steps.get_mut(number) {
                    s.2 = true;
                }
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
            BuildEvent::StepDone { number, .. } => {
                if let Some(t) = b.tail.take() {
                    t.finish_and_clear();
                }
                if let (Some(bar), Some((at, instr, cached))) =
                    (b.step.remove(number), self.steps.get(number))
                {
                    let status = if *cached {
                        paint("CACHED", console::Style::new().green())
                    } else {
                        paint("BUILT ", console::Style::new().yellow())
                    };
                    let prefix = bar.prefix();
                    bar.finish_and_clear();
                    let _ = b.multi.println(format!(
                        "  {prefix:>9} {status} {:>5.1}s  {}",
                        at.elapsed().as_secs_f64(),
                        // Printed lines are not cut to the terminal like live bars are.
                        console::truncate_str(instr, 56, "…")
                    ));
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
            BuildEvent::Warning { message } => {
                let _ = b.multi.println(format!("warning: {message}"));
            }
            BuildEvent::Status { id, status } => {
                // A pull: the base was not local, so the step did work.
                if let Some(s) = self.current.and_then(|n| self.steps.get_mut(&n)) {
                    s.2 = false;
                }
                if let Some(bar) = self.current.and_then(|n| b.step.get(&n)) {
                    let id = id.as_deref().map(|i| format!("{i}: ")).unwrap_or_default();
                    bar.set_message(format!("{id}{status}"));
                }
            }
            BuildEvent::RunningIn { .. }
            | BuildEvent::ContainerRemoved { .. }
            | BuildEvent::Built { .. }
            | BuildEvent::Tagged { .. } => {}
        }
    }

    /// Shows one push event for `tag`.
    pub fn push_event(&mut self, tag: &str, e: &PushEvent) {
        match (self.mode, e) {
            (ProgressMode::Off, _) => {}
            (ProgressMode::Plain, PushEvent::Status { status }) => {
                // The engine repeats "Pushing" per layer many times; say each change once.
                if self.last_push_status.get(tag) != Some(status) {
                    self.last_push_status
                        .insert(tag.to_string(), status.clone());
                    eprintln!("{} push {tag}: {status}", self.stamp());
                }
            }
            (ProgressMode::Plain, PushEvent::Progress { .. }) => {}
            (ProgressMode::Bars, _) => {
                let Some(b) = self.bars.as_mut() else { return };
                let bar = b.push.get_or_insert_with(|| {
                    let bar = b.multi.add(ProgressBar::new_spinner());
                    bar.set_style(style(
                        "{spinner:.cyan} push {prefix} {wide_msg} {elapsed:>4}",
                    ));
                    bar.set_prefix(tag.to_string());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                match e {
                    PushEvent::Status { status } => bar.set_message(status.clone()),
                    PushEvent::Progress { current, total } => bar.set_message(format!(
                        "{} / {}",
                        human_bytes(*current),
                        human_bytes(*total)
                    )),
                }
            }
        }
    }

    /// Ends the display of a push.
    pub fn push_done(&mut self, tag: &str, digest: Option<&str>) {
        let line = format!("pushed {tag} {}", digest.unwrap_or(""));
        let tick = self.paint("✓", console::Style::new().green());
        match self.bars.as_mut() {
            Some(b) => {
                if let Some(bar) = b.push.take() {
                    bar.finish_and_clear();
                }
                let _ = b.multi.println(format!("{tick} {line}"));
            }
            None if self.mode == ProgressMode::Plain => eprintln!("{} {line}", self.stamp()),
            None => {}
        }
    }

    /// Stops every live line (before the report is printed).
    pub fn finish(&mut self) {
        if let Some(b) = self.bars.as_mut() {
            if let Some(t) = b.tail.take() {
                t.finish_and_clear();
            }
            if let Some(u) = b.upload.take() {
                u.finish_and_clear();
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
