//! The per-layer cache report for people: a table, the totals, why the first rebuilt step
//! rebuilt (said once), what the context sent and kept out, what was pushed. `--report` JSON
//! is the same [`Report`] serialized.

use super::theme::{bytes, paint};
use ctxbuild::engine::StepStatus;
use ctxbuild::report::{CacheOrigin, Report};

/// The report for people: a table, then the totals and the reason.
pub fn human(report: &Report, color: bool) -> String {
    let paint = |s: &str, st: console::Style| paint(color, s, st);
    const INSTR_WIDTH: usize = 64;
    let mut out = String::new();
    let num_w = report
        .steps
        .iter()
        .map(|s| format!("{}/{}", s.number, s.total).len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<num_w$}  {:<10}  {:>7}  {:>9}  {:<12}  {}\n",
        "Step", "Cache", "Time", "Size", "Image", "Instruction"
    ));
    for s in &report.steps {
        // Padded before painting: escape codes would break the column width.
        let status = match (s.status, s.cache) {
            (StepStatus::Cached, Some(CacheOrigin::CacheFrom)) => {
                paint("CACHE-FROM", console::Style::new().cyan())
            }
            (StepStatus::Cached, _) => paint("CACHED    ", console::Style::new().green()),
            (StepStatus::Built, _) => paint("BUILT     ", console::Style::new().yellow().bold()),
        };
        out.push_str(&format!(
            "{:<num_w$}  {}  {:>7}  {:>9}  {:<12}  {}\n",
            format!("{}/{}", s.number, s.total),
            status,
            format!("{:.1}s", s.seconds),
            s.layer_size.map_or_else(|| "-".to_string(), bytes),
            s.image_id.as_deref().map_or("-", |i| &i[..i.len().min(12)]),
            truncate(&s.instruction, INSTR_WIDTH),
        ));
    }
    let t = &report.totals;
    let from_cache_images = report
        .steps
        .iter()
        .filter(|s| s.cache == Some(CacheOrigin::CacheFrom))
        .count();
    let remote = if from_cache_images > 0 {
        format!(", {from_cache_images} from --cache-from")
    } else {
        String::new()
    };
    if report.up_to_date {
        out.push_str(&format!(
            "\nUp to date: {} (nothing changed since its build; no upload, no build), image {}\n",
            short_id(&report.image_id),
            bytes(t.image_size)
        ));
    } else {
        out.push_str(&format!(
            "\nBuilt {} in {:.1}s: {}/{} steps cached ({:.0}%{remote}), image {}\n",
            short_id(&report.image_id),
            t.build_seconds,
            t.cached_steps,
            t.steps,
            t.cached_share * 100.0,
            bytes(t.image_size)
        ));
    }
    for c in &report.cache_from {
        out.push_str(&format!(
            "Cache from {} ({})\n",
            c.reference,
            short_id(&c.image_id)
        ));
    }
    if let Some(r) = &report.rebuild_reason {
        out.push_str(&format!(
            "Step {} `{}` rebuilt: {}\n",
            r.step,
            truncate(&r.instruction, INSTR_WIDTH),
            r.summary
        ));
        // The summary already names the first few changes: list only the others, once.
        let rest: Vec<&String> = r
            .changes
            .iter()
            .filter(|c| !r.summary.contains(c.as_str()))
            .collect();
        for c in rest.iter().take(10) {
            out.push_str(&format!("  {c}\n"));
        }
        if rest.len() > 10 {
            out.push_str(&format!("  … and {} more\n", rest.len() - 10));
        }
    } else if let Some(first) = report.first_built_step() {
        out.push_str(&format!(
            "Step {} `{}` rebuilt (no earlier build of this service to compare with)\n",
            first.number,
            truncate(&first.instruction, INSTR_WIDTH)
        ));
    }
    let c = &report.context;
    if report.up_to_date {
        out.push_str("Context: not sent (every step key matches the last build)");
    } else {
        out.push_str(&format!(
            "Context: {} sent in {:.1}s",
            bytes(c.bytes_sent),
            c.upload_seconds
        ));
    }
    if c.pollution_excluded_entries > 0 {
        out.push_str(&format!(
            "; {} ({}) kept out",
            super::theme::plural(c.pollution_excluded_entries, "bytecode entry"),
            bytes(c.pollution_excluded_bytes)
        ));
    }
    out.push('\n');
    for tag in &report.tags {
        out.push_str(&format!("Tagged {tag}\n"));
    }
    for p in &report.pushed {
        out.push_str(&format!(
            "Pushed {} {}\n",
            p.tag,
            p.digest.as_deref().unwrap_or("(no digest reported)")
        ));
    }
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use ctxbuild::engine::events::BuildEvent;
    use ctxbuild::engine::steps::StepTracker;
    use ctxbuild::engine::{BuildOutcome, HistoryLayer};
    use ctxbuild::key::{FileDiff, MissReason};
    use ctxbuild::report::{RebuildCause, RebuildReason};
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
    fn human_and_json_come_from_the_same_data() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        let mut files = FileDiff::default();
        files.content_changed.push("app/main.py".into());
        r.rebuild_reason = Some(RebuildReason::new(
            3,
            "COPY . /app/".into(),
            RebuildCause::KeyDiff {
                reason: MissReason::Files(files),
            },
        ));
        r.context.pollution_excluded_entries = 212;
        r.context.pollution_excluded_bytes = 3_400_000;
        let text = human(&r, false);
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
    fn one_kept_out_entry_is_singular_and_the_dockerfile_is_in_the_json() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        r.context.pollution_excluded_entries = 1;
        r.context.pollution_excluded_bytes = 120;
        r.dockerfile = Some(ctxbuild::report::DockerfileUsed {
            path: "backend/Dockerfile".into(),
            reason: "`dockerfile` in ctxbuild.toml".into(),
        });
        let text = human(&r, false);
        assert!(
            text.contains("; 1 bytecode entry (120 B) kept out"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["dockerfile"]["path"], "backend/Dockerfile");
        assert_eq!(
            json["dockerfile"]["reason"],
            "`dockerfile` in ctxbuild.toml"
        );
    }

    #[test]
    fn no_cache_says_so_instead_of_a_missing_comparison() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        r.rebuild_reason = r.no_cache_reason();
        let text = human(&r, false);
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
    fn the_reason_is_printed_once() {
        let mut r = Report::new(Some("backend".into()), &outcome(), &history(), 7_004_320);
        let mut files = FileDiff::default();
        files.content_changed.push("main.py".into());
        r.rebuild_reason = Some(RebuildReason::new(
            3,
            "COPY . /app/".into(),
            RebuildCause::KeyDiff {
                reason: MissReason::Files(files),
            },
        ));
        let text = human(&r, false);
        assert_eq!(text.matches("main.py content changed").count(), 1, "{text}");
        // Changes past the summary's first few are listed below it.
        let mut files = FileDiff::default();
        for i in 0..5 {
            files.added.push(format!("f{i}.py"));
        }
        r.rebuild_reason = Some(RebuildReason::new(
            3,
            "COPY . /app/".into(),
            RebuildCause::KeyDiff {
                reason: MissReason::Files(files),
            },
        ));
        let text = human(&r, false);
        for i in 0..5 {
            assert_eq!(text.matches(&format!("f{i}.py added")).count(), 1, "{text}");
        }
    }
}
