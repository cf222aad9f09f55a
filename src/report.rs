//! The per-layer cache report of an image build: one row per Dockerfile step (CACHED or BUILT,
//! seconds, layer size, image id), totals, why the first rebuilt step rebuilt, what the context
//! sent and kept out, and what was pushed.
//!
//! One data structure, two renderings: [`Report::human`] for people and serde JSON for
//! `--report FILE`. It computes nothing from the engine or the disk itself: callers give it the
//! build outcome, the image history and the key diff's words.

use crate::engine::{BuildOutcome, HistoryLayer, PushOutcome, StepStatus};
use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The service from ctxbuild.toml, when built by name.
    pub service: Option<String>,
    /// The final image, `sha256:…`.
    pub image_id: String,
    pub tags: Vec<String>,
    pub steps: Vec<StepRow>,
    pub totals: Totals,
    /// Why the first BUILT step (after FROM) was not served from the cache.
    pub rebuild_reason: Option<RebuildReason>,
    pub context: ContextSummary,
    pub pushed: Vec<PushOutcome>,
    pub warnings: Vec<String>,
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

/// The reason ctxbuild's own key diff gives for the first rebuilt step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebuildReason {
    pub step: usize,
    pub instruction: String,
    /// One sentence, e.g. "app/main.py content changed".
    pub summary: String,
    /// The individual changes (files added/removed/changed, mode changes, Dockerfile line
    /// changed, build-arg changed, base image changed).
    pub changes: Vec<String>,
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
                layer_size: s.image_id.as_deref().and_then(|id| {
                    let is_from = s
                        .instruction
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case("FROM"));
                    layer_size(history, id, is_from)
                }),
                image_id: s.image_id.clone(),
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
            warnings: outcome.warnings.clone(),
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
        Some(RebuildReason {
            step: first.number,
            instruction: first.instruction.clone(),
            summary: "--no-cache: every step rebuilt".into(),
            changes: Vec::new(),
        })
    }

    /// The report for people: a table, then the totals and the reason.
    pub fn human(&self, paint: &dyn Fn(&str, console::Style) -> String) -> String {
        const INSTR_WIDTH: usize = 64;
        let mut out = String::new();
        let num_w = self
            .steps
            .iter()
            .map(|s| format!("{}/{}", s.number, s.total).len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "{:<num_w$}  {:<6}  {:>7}  {:>9}  {:<12}  {}\n",
            "Step", "Cache", "Time", "Size", "Image", "Instruction"
        ));
        for s in &self.steps {
            // Padded before painting: escape codes would break the column width.
            let status = match s.status {
                StepStatus::Cached => paint("CACHED", console::Style::new().green()),
                StepStatus::Built => paint("BUILT ", console::Style::new().yellow().bold()),
            };
            out.push_str(&format!(
                "{:<num_w$}  {}  {:>7}  {:>9}  {:<12}  {}\n",
                format!("{}/{}", s.number, s.total),
                status,
                format!("{:.1}s", s.seconds),
                s.layer_size.map_or_else(|| "-".to_string(), human_bytes),
                s.image_id.as_deref().map_or("-", |i| &i[..i.len().min(12)]),
                truncate(&s.instruction, INSTR_WIDTH),
            ));
        }
        let t = &self.totals;
        out.push_str(&format!(
            "\nBuilt {} in {:.1}s: {}/{} steps cached ({:.0}%), image {}\n",
            short_id(&self.image_id),
            t.build_seconds,
            t.cached_steps,
            t.steps,
            t.cached_share * 100.0,
            human_bytes(t.image_size)
        ));
        if let Some(r) = &self.rebuild_reason {
            out.push_str(&format!(
                "Step {} `{}` rebuilt: {}\n",
                r.step,
                truncate(&r.instruction, INSTR_WIDTH),
                r.summary
            ));
            for c in r.changes.iter().take(10) {
                out.push_str(&format!("  {c}\n"));
            }
            if r.changes.len() > 10 {
                out.push_str(&format!("  … and {} more\n", r.changes.len() - 10));
            }
        } else if let Some(first) = self.first_built_step() {
            out.push_str(&format!(
                "Step {} `{}` rebuilt (no earlier build of this service to compare with)\n",
                first.number,
                truncate(&first.instruction, INSTR_WIDTH)
            ));
        }
        let c = &self.context;
        out.push_str(&format!(
            "Context: {} sent in {:.1}s",
            human_bytes(c.bytes_sent),
            c.upload_seconds
        ));
        if c.pollution_excluded_entries > 0 {
            out.push_str(&format!(
                "; {} bytecode entries ({}) kept out",
                c.pollution_excluded_entries,
                human_bytes(c.pollution_excluded_bytes)
            ));
        }
        out.push('\n');
        for tag in &self.tags {
            out.push_str(&format!("Tagged {tag}\n"));
        }
        for p in &self.pushed {
            out.push_str(&format!(
                "Pushed {} {}\n",
                p.tag,
                p.digest.as_deref().unwrap_or("(no digest reported)")
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
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

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

/// Bytes for people: 1000-based like the docker CLI ("191MB" there, "191 MB" here).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[u])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
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
    fn human_and_json_come_from_the_same_data() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        r.rebuild_reason = Some(RebuildReason {
            step: 3,
            instruction: "COPY . /app/".into(),
            summary: "app/main.py content changed".into(),
            changes: vec!["app/main.py content changed".into()],
        });
        r.context.pollution_excluded_entries = 212;
        r.context.pollution_excluded_bytes = 3_400_000;
        let text = r.human(&|s, _| s.to_string());
        assert!(text.contains("3/3   BUILT "), "{text}");
        assert!(text.contains("2/3   CACHED"), "{text}");
        assert!(text.contains("2/3 steps cached (67%)"), "{text}");
        assert!(
            text.contains("Step 3 `COPY . /app/` rebuilt: app/main.py content changed"),
            "{text}"
        );
        assert!(
            text.contains("212 bytecode entries (3.40 MB) kept out"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["steps"][2]["status"], "BUILT");
        assert_eq!(json["steps"][0]["layer_size"], 7_000_000);
        assert_eq!(
            json["rebuild_reason"]["summary"],
            "app/main.py content changed"
        );
        assert_eq!(json["context"]["pollution_excluded_entries"], 212);
        assert_eq!(json["totals"]["cached_steps"], 2);
    }

    #[test]
    fn no_cache_says_so_instead_of_a_missing_comparison() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        r.rebuild_reason = r.no_cache_reason();
        let text = r.human(&|s, _| s.to_string());
        assert!(
            text.contains("Step 3 `COPY . /app/` rebuilt: --no-cache: every step rebuilt"),
            "{text}"
        );
        assert!(!text.contains("no earlier build"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["rebuild_reason"]["summary"],
            "--no-cache: every step rebuilt"
        );
    }

    #[test]
    fn bytes_read_like_the_cli() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1_982_485), "1.98 MB");
        assert_eq!(human_bytes(191_000_000), "191 MB");
        assert_eq!(human_bytes(12_345), "12.3 kB");
    }
}
