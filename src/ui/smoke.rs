//! The `smoke` outcome for people: one table row per run (profile, time to TCP, to HTTP, to
//! health_path 200, peak memory, result), then each run's findings with their hints and the
//! container's last log lines, then the sweep's answer. `--json` is the same [`SmokeOutcome`]
//! serialized.

use super::theme::paint;
use ctxbuild::smoke::{Severity, SmokeOutcome, SmokeRun};

const MIB: f64 = 1024.0 * 1024.0;

/// The outcome for people.
pub fn human(outcome: &SmokeOutcome, color: bool) -> String {
    let paint = |s: &str, st: console::Style| paint(color, s, st);
    let mut out = format!(
        "Smoke test of `{}`: image {} ({}), PORT {}, budget {} s\n\n",
        outcome.service,
        short(&outcome.image),
        outcome.platform,
        outcome.runs.first().map_or(0, |r| r.port),
        outcome.budget_secs
    );
    let health = outcome
        .runs
        .first()
        .and_then(|r| r.health_path.as_deref())
        .unwrap_or("health");
    let health_w = health.len().max(7);
    out.push_str(&format!(
        "{:<16}  {:>7}  {:>7}  {:>health_w$}  {:>18}  {}\n",
        "Profile", "TCP", "HTTP", health, "Peak memory", "Result"
    ));
    for r in &outcome.runs {
        // Padded before painting: escape codes would break the column width.
        let result = if !r.passed {
            paint("FAIL", console::Style::new().red().bold())
        } else if r.margin {
            paint("pass", console::Style::new().green())
        } else {
            paint("pass (tight)", console::Style::new().yellow())
        };
        out.push_str(&format!(
            "{:<16}  {:>7}  {:>7}  {:>health_w$}  {:>18}  {}\n",
            r.profile.label(),
            secs(r.tcp_ms),
            secs(r.http_ms),
            secs(r.health_ms),
            memory(r),
            result
        ));
    }
    for f in &outcome.findings {
        out.push_str(&format!("\nerror: {}\n  hint: {}\n", f.message, f.hint));
    }
    let many = outcome.runs.len() > 1;
    for r in &outcome.runs {
        if r.findings.is_empty() {
            continue;
        }
        out.push('\n');
        if many {
            out.push_str(&format!("{}:\n", r.profile.label()));
        }
        for f in &r.findings {
            let word = match f.severity {
                Severity::Error => paint("error", console::Style::new().red().bold()),
                Severity::Warning => paint("warning", console::Style::new().yellow().bold()),
            };
            out.push_str(&format!("{word}: {}\n  hint: {}\n", f.message, f.hint));
        }
        if !r.listeners.is_empty() && !r.passed {
            let shown: Vec<String> = r.listeners.iter().map(ToString::to_string).collect();
            out.push_str(&format!("  listening: {}\n", shown.join(", ")));
        }
        if !r.logs.is_empty() {
            out.push_str(&format!("  last {} log line(s):\n", r.logs.len()));
            for l in &r.logs {
                out.push_str(&format!("    | {l}\n"));
            }
        }
    }
    if many {
        match &outcome.smallest_passing {
            Some(p) => {
                out.push_str(&format!(
                    "\nSmallest profile that passes with margin: {} (deploy: cpu = {}, memory = \"{}\")\n",
                    p.label(),
                    p.cpu,
                    ctxbuild::service::config::format_memory(p.memory)
                ));
                if p.cpu < 1.0 {
                    out.push_str("Below 1 CPU Cloud Run requires concurrency = 1.\n");
                }
            }
            None => out.push_str("\nNo profile passed with margin.\n"),
        }
    }
    out
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0))
}

fn memory(r: &SmokeRun) -> String {
    if r.oom_killed {
        // The last sample before the kill says nothing about what it asked for.
        return "OOM-killed".into();
    }
    match r.peak_memory {
        Some(p) => format!(
            "{:.0} MiB ({:.0}%)",
            p as f64 / MIB,
            p as f64 * 100.0 / r.profile.memory as f64
        ),
        None => "-".into(),
    }
}

fn short(image: &str) -> &str {
    match image.strip_prefix("sha256:") {
        Some(hex) => &hex[..hex.len().min(12)],
        None => image,
    }
}
