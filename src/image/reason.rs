//! Why the first rebuilt step rebuilt, from ctxbuild's key diff against the plan saved at the
//! previous build — as the structured [`RebuildCause`], never parsed back out of a sentence.

use crate::key::{self, Manifest, Plan};
use crate::report::{RebuildCause, RebuildReason, Report};

/// The reason for the report's first rebuilt step, or `None` when nothing rebuilt or there is
/// no previous plan to compare with.
pub fn rebuild_reason(
    report: &Report,
    previous: Option<&Plan>,
    plan: &Plan,
    manifest: &Manifest,
) -> Option<RebuildReason> {
    let first = report.first_built_step()?;
    let previous = previous?;
    if first.number > plan.steps.len() {
        // Past the Dockerfile: the LABEL steps the engine appends for API labels.
        return Some(RebuildReason::new(
            first.number,
            first.instruction.clone(),
            RebuildCause::Label,
        ));
    }
    let empty = Manifest::default();
    let old_m = previous.manifest.as_ref().unwrap_or(&empty);
    let miss = key::explain(previous, old_m, plan, manifest).first_miss?;
    Some(RebuildReason::new(
        miss.index,
        miss.instruction,
        RebuildCause::KeyDiff {
            reason: miss.reason,
        },
    ))
}
