//! Why the first rebuilt step rebuilt, from ctxbuild's key diff against the plan saved at the
//! previous build — as the structured [`RebuildCause`], never parsed back out of a sentence.

use crate::engine::StepStatus;
use crate::key::manifest::Records;
use crate::key::{self, Manifest, Plan};
use crate::report::{RebuildCause, RebuildReason, Report};

/// The reason for the report's first rebuilt step, or `None` when nothing rebuilt or there is
/// no previous plan to compare with. `previous` comes with its manifest: its own, or the saved
/// one read against this build's ([`crate::key::manifest::Overlay`]).
pub fn rebuild_reason<R: Records + ?Sized>(
    report: &Report,
    previous: Option<(&Plan, &R)>,
    plan: &Plan,
    manifest: &Manifest,
) -> Option<RebuildReason> {
    let first = report.first_built_step()?;
    let (previous, old_m) = previous?;
    if first.number > plan.steps.len() {
        // Past the Dockerfile: the LABEL steps the engine appends for API labels.
        return Some(RebuildReason::new(
            first.number,
            first.instruction.clone(),
            RebuildCause::Label,
        ));
    }
    let miss = key::explain(previous, old_m, plan, manifest).first_miss?;
    // A saved plan that is not this build's past (another project's, or the engine's cache
    // kept what ctxbuild thought changed): never blame a step the table shows as CACHED.
    let cached = report
        .steps
        .iter()
        .any(|s| s.number == miss.index && s.status == StepStatus::Cached);
    if cached {
        return None;
    }
    Some(RebuildReason::new(
        miss.index,
        miss.instruction,
        RebuildCause::KeyDiff {
            reason: miss.reason,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepRow;

    fn plan(text: &str) -> Plan {
        let df = crate::dockerfile::parse(text, "Dockerfile").unwrap();
        key::plan(&df, &Manifest::default(), &Default::default()).unwrap()
    }

    fn report(statuses: &[StepStatus], plan: &Plan) -> Report {
        let outcome = crate::engine::BuildOutcome {
            image_id: "sha256:0".into(),
            steps: Vec::new(),
            tags: Vec::new(),
            warnings: Vec::new(),
            upload_bytes: 0,
            upload_seconds: 0.0,
            seconds: 0.0,
        };
        let mut r = Report::new(None, &outcome, &[], 0);
        r.steps = plan
            .steps
            .iter()
            .zip(statuses)
            .map(|(s, st)| StepRow {
                number: s.index,
                total: s.total,
                instruction: s.instruction.clone(),
                status: *st,
                seconds: 0.0,
                layer_size: None,
                image_id: None,
                cache: None,
            })
            .collect();
        r
    }

    #[test]
    fn the_reason_never_names_a_step_the_table_shows_cached() {
        let old = plan("FROM x\nRUN a\nRUN b\n");
        let new = plan("FROM x\nRUN changed\nRUN b\n");
        let m = Manifest::default();
        use StepStatus::{Built, Cached};
        // The key diff says step 2 misses, and the engine rebuilt it: named.
        let r = report(&[Built, Built, Built], &new);
        let reason = rebuild_reason(&r, Some((&old, &m)), &new, &m).unwrap();
        assert_eq!(reason.step, 2);
        // The engine served step 2 from its cache (the saved plan was not this build's past):
        // no reason rather than a wrong one.
        let r = report(&[Built, Cached, Built], &new);
        assert_eq!(rebuild_reason(&r, Some((&old, &m)), &new, &m), None);
    }
}
