//! Explaining cache misses: compare a plan saved earlier with the current one, say which steps
//! hit and miss, and for the first miss which files (added, removed, content, mode, type, link)
//! or which instruction, build arg or base image changed — as data plus one sentence.
//!
//! Used by `ctxbuild explain` and by the build report (against the plan saved at the previous
//! build). Boundary: pure functions over [`Plan`]s and [`Manifest`]s; no I/O, no printing.

use super::manifest::{Manifest, ManifestEntry, Records};
use super::plan::{select, Plan, PlanStep};
use crate::builder::Builder;
use crate::context::EntryKind;
use crate::pollution;

/// What Docker will do with one step, as far as ctxbuild can know offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Docker never consults its cache for this step (`FROM`, meta `ARG`).
    NotCached,
    /// "Using cache".
    Hit,
    /// Will rebuild.
    Miss,
    /// Depends on content ctxbuild cannot see: what `ADD <url>` downloads, what a stage's `RUN`
    /// steps produced for `COPY --from`, or a step after such a one.
    MayMiss,
}

/// Hit or miss of one step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepVerdict {
    pub index: usize,
    pub total: usize,
    pub instruction: String,
    /// `false` for steps Docker never caches (`FROM`, meta `ARG`).
    pub cacheable: bool,
    /// The step's key was in the saved plan and Docker consults its cache for it (never for
    /// a `not-cached` step such as `FROM`, so `hit` and `verdict` agree).
    pub hit: bool,
    /// The prediction: a known key is a hit only when nothing unseen feeds the step.
    pub verdict: Verdict,
}

/// One changed mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModeChange {
    pub path: String,
    pub before: u32,
    pub after: u32,
}

/// What changed among the files a `COPY`/`ADD` selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub content_changed: Vec<String>,
    pub mode_changed: Vec<ModeChange>,
    /// File became directory, link became file, …
    pub type_changed: Vec<String>,
    pub link_changed: Vec<String>,
}

impl FileDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.content_changed.is_empty()
            && self.mode_changed.is_empty()
            && self.type_changed.is_empty()
            && self.link_changed.is_empty()
    }
}

/// One file-level change (for callers that want a flat list).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "change", content = "path")]
pub enum FileChange {
    Added(String),
    Removed(String),
    Content(String),
    Mode(String),
    Type(String),
    Link(String),
}

/// Why the first missing step misses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MissReason {
    /// The saved plan has no step at this position.
    NewStep,
    /// The instruction text changed.
    Instruction { before: String },
    /// The files selected by `COPY`/`ADD` changed.
    Files(FileDiff),
    /// The build args a `RUN` sees changed.
    BuildArgs {
        before: Vec<String>,
        after: Vec<String>,
    },
    /// BuildKit: the `ENV` values in a `RUN`'s exec env changed (`K=V`).
    Env {
        before: Vec<String>,
        after: Vec<String>,
    },
    /// The base (`FROM`) of the stage changed.
    Base { before: String },
    /// `COPY --from` a stage that rebuilds (a "may rebuild": Docker hits when the copied files
    /// come out identical).
    SourceStage { stage: String },
    /// `ADD <url>`: the cache depends on the downloaded content.
    Remote,
    /// BuildKit: a line that makes no vertex (`USER`, `SHELL`, …) changed; BuildKit carries
    /// it into this step.
    Earlier {
        line: usize,
        before: String,
        after: String,
    },
    /// A variable or earlier state changed (e.g. an `ARG` value used in an expansion).
    Other,
}

/// The first step that will rebuild, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Miss {
    pub index: usize,
    pub total: usize,
    pub instruction: String,
    pub reason: MissReason,
    /// The sentence a user needs, e.g. "Step 3/9 COPY app/ /app/ will rebuild: app/main.py
    /// content changed, 212 app/**/__pycache__/*.pyc added — run `ctxbuild clean` or add
    /// `**/__pycache__` to .dockerignore".
    pub sentence: String,
}

/// Hit/miss per step plus the first miss explained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    pub steps: Vec<StepVerdict>,
    /// The first step that will certainly rebuild.
    pub first_miss: Option<Miss>,
    /// The first step that may rebuild ([`Verdict::MayMiss`]), when it comes before the first
    /// definite miss.
    pub first_may_miss: Option<Miss>,
}

/// How far a stage's steps are known to hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// Every step so far hits.
    Clean,
    /// A step may have rebuilt: later steps with a changed key but unchanged inputs may too.
    Uncertain,
    /// A step rebuilt: every later step of the stage rebuilds.
    Missed,
}

/// `FROM [--flags] image [AS name]` → (image, name), lower-cased.
fn from_parts(instruction: &str) -> Option<(String, Option<String>)> {
    let mut words = instruction.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("from") {
        return None;
    }
    let mut rest = words.filter(|w| !w.starts_with("--"));
    let image = rest.next()?.to_ascii_lowercase();
    let name = match (rest.next(), rest.next()) {
        (Some(kw), Some(n)) if kw.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
        _ => None,
    };
    Some((image, name))
}

/// Compares the current plan with one saved earlier. The manifests are those the plans were
/// computed from (`old.manifest` for a saved plan); without them file lists stay empty.
pub fn explain<O: Records + ?Sized>(
    old: &Plan,
    old_m: &O,
    new: &Plan,
    new_m: &Manifest,
) -> Explanation {
    let known: std::collections::HashSet<&str> = old.steps.iter().map(|s| s.key.as_str()).collect();
    // Per stage (by name when it has one): how its chain stands after its last step.
    let mut stages: Vec<(Option<String>, Chain)> = Vec::new();
    let mut steps = Vec::with_capacity(new.steps.len());
    let mut reasons: Vec<Option<MissReason>> = Vec::with_capacity(new.steps.len());
    for (i, s) in new.steps.iter().enumerate() {
        let hit = known.contains(s.key.as_str());
        let mut why = None;
        let verdict = if !s.cacheable {
            if let Some((image, name)) = from_parts(&s.instruction) {
                let parent = stages
                    .iter()
                    .rev()
                    .find(|(n, _)| n.as_deref() == Some(image.as_str()))
                    .map(|(_, c)| *c);
                stages.push((name, parent.unwrap_or(Chain::Clean)));
            }
            Verdict::NotCached
        } else {
            let chain = stages.last().map(|(_, c)| *c).unwrap_or(Chain::Clean);
            let (verdict, next) = match (chain, hit) {
                (Chain::Missed, _) => (Verdict::Miss, Chain::Missed),
                (_, true) if s.remote => {
                    why = Some(MissReason::Remote);
                    (Verdict::MayMiss, Chain::Uncertain)
                }
                // After a step that may rebuild, a known key only promises a hit if it did not.
                (Chain::Uncertain, true) => (Verdict::MayMiss, Chain::Uncertain),
                (c, true) => (Verdict::Hit, c),
                (c, false) => {
                    let r = reason(old, old_m, new, new_m, i);
                    let inherited = matches!(r, MissReason::Other | MissReason::Base { .. });
                    let v = match &r {
                        MissReason::SourceStage { .. } => Verdict::MayMiss,
                        _ if c == Chain::Uncertain && inherited => Verdict::MayMiss,
                        _ => Verdict::Miss,
                    };
                    why = Some(r);
                    match v {
                        Verdict::Miss => (v, Chain::Missed),
                        _ => (v, Chain::Uncertain),
                    }
                }
            };
            if let Some(last) = stages.last_mut() {
                last.1 = next;
            }
            verdict
        };
        reasons.push(why);
        steps.push(StepVerdict {
            index: s.index,
            total: s.total,
            instruction: s.instruction.clone(),
            cacheable: s.cacheable,
            hit: hit && s.cacheable,
            verdict,
        });
    }
    let first = |want: Verdict| {
        steps.iter().position(|v| v.verdict == want).map(|i| {
            let step = &new.steps[i];
            let reason = reasons[i]
                .clone()
                .unwrap_or_else(|| reason(old, old_m, new, new_m, i));
            let sentence = sentence(step, &reason, want == Verdict::Miss);
            Miss {
                index: step.index,
                total: step.total,
                instruction: step.instruction.clone(),
                reason,
                sentence,
            }
        })
    };
    let first_miss = first(Verdict::Miss);
    let first_may_miss =
        first(Verdict::MayMiss).filter(|m| first_miss.as_ref().is_none_or(|f| m.index < f.index));
    Explanation {
        steps,
        first_miss,
        first_may_miss,
    }
}

fn is_from(instruction: &str) -> bool {
    instruction
        .get(..4)
        .is_some_and(|k| k.eq_ignore_ascii_case("from"))
}

fn reason<O: Records + ?Sized>(
    old: &Plan,
    old_m: &O,
    new: &Plan,
    new_m: &Manifest,
    i: usize,
) -> MissReason {
    let step = &new.steps[i];
    let Some(before) = old.steps.get(i) else {
        return MissReason::NewStep;
    };
    if before.instruction != step.instruction {
        return MissReason::Instruction {
            before: before.instruction.clone(),
        };
    }
    // The step's own inputs are unchanged: did the step before it (its parent) change?
    if i > 0 {
        let (p_old, p_new) = (&old.steps[i - 1], &new.steps[i - 1]);
        let is_from = is_from(&p_new.instruction);
        if p_old.key != p_new.key && !p_new.cacheable && is_from {
            return MissReason::Base {
                before: p_old.instruction.clone(),
            };
        }
    }
    if let Some(stage) = &step.from {
        return MissReason::SourceStage {
            stage: stage.clone(),
        };
    }
    if !step.sources.is_empty() {
        let d = file_diff_for(new.builder, old_m, &before.sources, new_m, &step.sources);
        if !d.is_empty() {
            return MissReason::Files(d);
        }
    }
    if before.build_args != step.build_args {
        return MissReason::BuildArgs {
            before: before.build_args.clone(),
            after: step.build_args.clone(),
        };
    }
    if before.env != step.env {
        return MissReason::Env {
            before: before.env.clone(),
            after: step.env.clone(),
        };
    }
    if new.builder == Builder::BuildKit {
        // The nearest earlier line of the stage that makes no vertex but whose state (user,
        // shell, …) the stage's later steps carry.
        let earlier = (0..i)
            .rev()
            .take_while(|&j| !is_from(&new.steps[j].instruction))
            .filter(|&j| !new.steps[j].cacheable)
            .find(|&j| {
                old.steps
                    .get(j)
                    .is_some_and(|o| o.instruction != new.steps[j].instruction)
            });
        if let Some(j) = earlier {
            return MissReason::Earlier {
                line: new.steps[j].line,
                before: old.steps[j].instruction.clone(),
                after: new.steps[j].instruction.clone(),
            };
        }
    }
    MissReason::Other
}

/// The entries `sources` select in `m`, as (path, entry) sorted by path.
fn selected<'m, M: Records + ?Sized>(
    m: &'m M,
    sources: &[String],
    builder: Builder,
) -> Vec<&'m ManifestEntry> {
    let sel = match builder {
        Builder::Classic => select(m, sources),
        Builder::BuildKit => super::buildkit::select(m, sources),
    };
    match sel {
        Ok(sel) => sel.entries.iter().map(|&i| m.at(i)).collect(),
        Err(_) => Vec::new(),
    }
}

/// File-level differences between what `old_sources` selected in `old` and what `new_sources`
/// select in `new`, as the classic builder sees them.
pub fn file_diff(
    old: &Manifest,
    old_sources: &[String],
    new: &Manifest,
    new_sources: &[String],
) -> FileDiff {
    file_diff_for(Builder::Classic, old, old_sources, new, new_sources)
}

/// [`file_diff`] as `builder` sees the files: BuildKit's keys leave out directory modes, so
/// a directory's mode change is no reason there.
pub fn file_diff_for<O: Records + ?Sized>(
    builder: Builder,
    old: &O,
    old_sources: &[String],
    new: &Manifest,
    new_sources: &[String],
) -> FileDiff {
    let a = selected(old, old_sources, builder);
    let b = selected(new, new_sources, builder);
    let mut d = FileDiff::default();
    let (mut i, mut j) = (0, 0);
    let name = |e: &ManifestEntry| e.path.to_string_lossy().into_owned();
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.path_bytes().cmp(y.path_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                d.removed.push(name(a[i]));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                d.added.push(name(b[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (a[i], b[j]);
                if x.kind != y.kind {
                    d.type_changed.push(name(y));
                } else {
                    // A device node's number is all the content it has.
                    // BuildKit keys a link by its text alone: no content of its own.
                    let has_content = builder == Builder::Classic || y.kind != EntryKind::Symlink;
                    if has_content && (x.hash != y.hash || x.size != y.size || x.rdev != y.rdev) {
                        d.content_changed.push(name(y));
                    }
                    if x.link_target != y.link_target {
                        d.link_changed.push(name(y));
                    }
                    let mode_counts = match builder {
                        Builder::Classic => y.kind != EntryKind::Symlink,
                        Builder::BuildKit => !matches!(y.kind, EntryKind::Symlink | EntryKind::Dir),
                    };
                    if x.mode != y.mode && mode_counts {
                        d.mode_changed.push(ModeChange {
                            path: name(y),
                            before: x.mode,
                            after: y.mode,
                        });
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    // Directories that merely hold added pollution are noise in a message; keep them in the
    // data only when they are not __pycache__.
    d
}

impl FileDiff {
    /// The changes as a flat list.
    pub fn changes(&self) -> Vec<FileChange> {
        let mut v = Vec::new();
        v.extend(
            self.content_changed
                .iter()
                .cloned()
                .map(FileChange::Content),
        );
        v.extend(
            self.mode_changed
                .iter()
                .map(|m| FileChange::Mode(m.path.clone())),
        );
        v.extend(self.type_changed.iter().cloned().map(FileChange::Type));
        v.extend(self.link_changed.iter().cloned().map(FileChange::Link));
        v.extend(self.added.iter().cloned().map(FileChange::Added));
        v.extend(self.removed.iter().cloned().map(FileChange::Removed));
        v
    }
}

fn is_pollution(path: &str) -> bool {
    let p = std::path::Path::new(path);
    let name = p.file_name().unwrap_or(p.as_os_str());
    pollution::classify(name, false).is_some()
        || pollution::classify(name, true).is_some()
        || path.split('/').any(|c| c == "__pycache__")
}

/// `N dir/**/__pycache__/*.pyc` for a group of bytecode paths.
fn pollution_group(paths: &[&String]) -> String {
    if paths.len() == 1 {
        return paths[0].clone();
    }
    let dirs: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            let cut = parts
                .iter()
                .position(|c| *c == "__pycache__")
                .unwrap_or(parts.len().saturating_sub(1));
            parts[..cut].to_vec()
        })
        .collect();
    let mut common: Vec<&str> = dirs[0].clone();
    for d in &dirs[1..] {
        let n = common.iter().zip(d).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    let in_cache = paths
        .iter()
        .all(|p| p.split('/').any(|c| c == "__pycache__"));
    let tail = if in_cache {
        "**/__pycache__/*.pyc"
    } else {
        "**/*.pyc"
    };
    let prefix = if common.is_empty() {
        String::new()
    } else {
        format!("{}/", common.join("/"))
    };
    format!("{} {prefix}{tail}", paths.len())
}

/// Up to `max` names, then "and N more".
fn some(names: &[String], verb: &str, max: usize) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .take(max)
        .map(|n| format!("{n} {verb}"))
        .collect();
    if names.len() > max {
        v.push(format!("{} more {verb}", names.len() - max));
    }
    v
}

/// The words that differ between two spellings of an instruction with the same keyword, so a
/// long `LABEL` or `RUN` line that changed in one value names just that value. `None` when the
/// keyword changed or most of the line did (then the whole old line says more).
fn changed_words(before: &str, after: &str) -> Option<(String, String)> {
    let (b, a): (Vec<&str>, Vec<&str>) = (
        before.split_whitespace().collect(),
        after.split_whitespace().collect(),
    );
    if !b.first()?.eq_ignore_ascii_case(a.first()?) {
        return None;
    }
    let prefix = b.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let suffix = b[prefix..]
        .iter()
        .rev()
        .zip(a[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let was = b[prefix..b.len() - suffix].join(" ");
    let now = a[prefix..a.len() - suffix].join(" ");
    if was.is_empty() || now.is_empty() || 2 * (b.len() - prefix - suffix) > b.len() - 1 {
        return None;
    }
    Some((was, now))
}

/// `K=V` lists compared by key: "build arg V changed: 1 → 2", "ENV E=1 added", ….
fn changed_pairs(what: &str, before: &[String], after: &[String]) -> String {
    let split = |a: &'_ String| -> (String, String) {
        match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), String::new()),
        }
    };
    let (old, new): (Vec<_>, Vec<_>) = (
        before.iter().map(split).collect(),
        after.iter().map(split).collect(),
    );
    let mut parts = Vec::new();
    for (k, v) in &new {
        match old.iter().find(|(ok, _)| ok == k) {
            Some((_, ov)) if ov == v => {}
            Some((_, ov)) => parts.push(format!("{what} {k} changed: {ov} → {v}")),
            None => parts.push(format!("{what} {k}={v} added")),
        }
    }
    for (k, v) in &old {
        if !new.iter().any(|(nk, _)| nk == k) {
            parts.push(format!("{what} {k} removed (was {v})"));
        }
    }
    if parts.is_empty() {
        // Same values in another order: BuildKit's env is ordered.
        parts.push(format!("the order of {what}s changed"));
    }
    parts.join(", ")
}

fn sentence(step: &PlanStep, reason: &MissReason, definite: bool) -> String {
    format!(
        "Step {}/{} {} {} rebuild: {}",
        step.index,
        step.total,
        step.instruction,
        if definite { "will" } else { "may" },
        reason_text(&step.instruction, reason)
    )
}

/// Why a step misses, as the clause after "will rebuild: ", from the structured reason
/// (`instruction` is the step's current instruction). The report and `explain` both use it.
pub fn reason_text(instruction: &str, reason: &MissReason) -> String {
    match reason {
        MissReason::NewStep => "it is new since the saved plan".to_string(),
        MissReason::Instruction { before } => match changed_words(before, instruction) {
            Some((was, now)) => format!("the instruction changed: `{was}` → `{now}`"),
            None => format!("the instruction changed (was `{before}`)"),
        },
        MissReason::Base { before } => format!("the base changed (was `{before}`)"),
        MissReason::SourceStage { stage } => format!(
            "it depends on the output of stage `{stage}`, which rebuilds \
             (Docker hits if the copied files come out identical)"
        ),
        MissReason::Remote => {
            "ADD fetches a remote source (the cache depends on the downloaded content)".to_string()
        }
        MissReason::Env { before, after } => changed_pairs("ENV", before, after),
        MissReason::BuildArgs { before, after } => changed_pairs("build arg", before, after),
        MissReason::Earlier {
            line,
            before,
            after,
        } => format!(
            "line {line} changed: `{before}` → `{after}` (BuildKit carries it into this step)"
        ),
        MissReason::Other => "a variable or an earlier step changed".to_string(),
        MissReason::Files(d) => {
            let mut parts = Vec::new();
            parts.extend(some(&d.content_changed, "content changed", 3));
            for m in d.mode_changed.iter().take(3) {
                parts.push(format!("{} mode {:o}→{:o}", m.path, m.before, m.after));
            }
            if d.mode_changed.len() > 3 {
                parts.push(format!("{} more mode changed", d.mode_changed.len() - 3));
            }
            parts.extend(some(&d.type_changed, "type changed", 3));
            parts.extend(some(&d.link_changed, "link target changed", 3));
            let (poll, plain): (Vec<&String>, Vec<&String>) =
                d.added.iter().partition(|p| is_pollution(p));
            // __pycache__ directories come with their files; count the files.
            let poll_files: Vec<&String> = poll
                .iter()
                .copied()
                .filter(|p| !p.ends_with("__pycache__"))
                .collect();
            let plain: Vec<String> = plain.into_iter().cloned().collect();
            parts.extend(some(&plain, "added", 3));
            if !poll_files.is_empty() {
                parts.push(format!("{} added", pollution_group(&poll_files)));
            } else if !poll.is_empty() {
                parts.push(format!("{} added", pollution_group(&poll)));
            }
            parts.extend(some(&d.removed, "removed", 3));
            let mut s = parts.join(", ");
            if !poll.is_empty() {
                let in_cache = poll
                    .iter()
                    .all(|p| p.split('/').any(|c| c == "__pycache__"));
                let rule = if in_cache {
                    "**/__pycache__"
                } else {
                    "**/*.pyc"
                };
                s.push_str(&format!(
                    " — run `ctxbuild clean` or add `{rule}` to .dockerignore"
                ));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_words_name_only_what_moved() {
        assert_eq!(
            changed_words(
                r#"LABEL "a"="1" "rev"="c0708b5" "z"="9""#,
                r#"LABEL "a"="1" "rev"="053f7b1" "z"="9""#
            ),
            Some((r#""rev"="c0708b5""#.into(), r#""rev"="053f7b1""#.into()))
        );
        // A different keyword or a mostly rewritten line keeps the whole old line.
        assert_eq!(changed_words("RUN make", "CMD make"), None);
        assert_eq!(changed_words("RUN a b c", "RUN x y c"), None);
        assert_eq!(changed_words("RUN a", "RUN a"), None);
    }
    use crate::dockerfile::parse;
    use crate::key::plan::{plan, PlanOptions};
    use crate::key::testutil::{dir as d, manifest as m};

    fn f(p: &str, content: &str, mode: u32) -> ManifestEntry {
        crate::key::testutil::file(p, mode, content)
    }

    const DF: &str = "FROM img\nCOPY req.txt /r/\nRUN pip install\nCOPY app/ /app/\nRUN true\n";

    fn pl(df: &str, man: &Manifest, args: &[(&str, &str)]) -> Plan {
        let opts = PlanOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: None,
            builder: Builder::Classic,
        };
        plan(&parse(df, "Dockerfile").unwrap(), man, &opts).unwrap()
    }

    fn base() -> Vec<ManifestEntry> {
        vec![
            d("app"),
            f("app/main.py", "a", 0o644),
            f("app/util.py", "u", 0o644),
            f("req.txt", "r", 0o644),
        ]
    }

    #[test]
    fn the_sentence_users_need() {
        let m0 = m(base());
        let mut v = base();
        v[1] = f("app/main.py", "b", 0o644);
        for i in 0..212 {
            let dir = if i % 2 == 0 {
                "app/__pycache__"
            } else {
                "app/sub/__pycache__"
            };
            v.push(f(&format!("{dir}/m{i}.cpython-311.pyc"), "x", 0o644));
        }
        v.push(d("app/__pycache__"));
        v.push(d("app/sub"));
        v.push(d("app/sub/__pycache__"));
        let m1 = m(v);
        let e = explain(&pl(DF, &m0, &[]), &m0, &pl(DF, &m1, &[]), &m1);
        let hits: Vec<bool> = e.steps.iter().map(|s| s.hit).collect();
        // FROM is never looked up in the cache: `not-cached`, so not a hit either.
        assert_eq!(hits, vec![false, true, true, false, false]);
        assert_eq!(e.steps[0].verdict, Verdict::NotCached);
        let miss = e.first_miss.unwrap();
        assert_eq!(miss.index, 4);
        assert_eq!(
            miss.sentence,
            "Step 4/5 COPY app/ /app/ will rebuild: app/main.py content changed, app/sub added, \
212 app/**/__pycache__/*.pyc added — run `ctxbuild clean` or add `**/__pycache__` to .dockerignore"
        );
        let MissReason::Files(fd) = miss.reason else {
            panic!()
        };
        assert_eq!(fd.content_changed, vec!["app/main.py"]);
        assert_eq!(fd.added.len(), 212 + 3);
    }

    #[test]
    fn mode_removed_instruction_and_build_args() {
        let m0 = m(base());
        let mut v = base();
        v[2].mode = 0o755;
        v.remove(1);
        let m1 = m(v);
        let e = explain(&pl(DF, &m0, &[]), &m0, &pl(DF, &m1, &[]), &m1);
        let s = e.first_miss.unwrap().sentence;
        assert!(
            s.contains("app/util.py mode 644→755") && s.contains("app/main.py removed"),
            "{s}"
        );

        let df2 = DF.replace("RUN pip install", "RUN pip install -r /r/req.txt");
        let e = explain(&pl(DF, &m0, &[]), &m0, &pl(&df2, &m0, &[]), &m0);
        let miss = e.first_miss.unwrap();
        assert_eq!(miss.index, 3);
        assert_eq!(
            miss.reason,
            MissReason::Instruction {
                before: "RUN pip install".into()
            }
        );

        let dfa = "FROM img\nARG V=1\nRUN true\n";
        let e = explain(&pl(dfa, &m0, &[]), &m0, &pl(dfa, &m0, &[("V", "2")]), &m0);
        let miss = e.first_miss.unwrap();
        assert_eq!(miss.index, 3);
        assert!(
            miss.sentence
                .ends_with("will rebuild: build arg V changed: 1 → 2"),
            "{}",
            miss.sentence
        );
        let dfb = "FROM img\nARG V\nARG W\nRUN true\n";
        let e = explain(
            &pl(dfb, &m0, &[("W", "1")]),
            &m0,
            &pl(dfb, &m0, &[("V", "2")]),
            &m0,
        );
        let s = e.first_miss.unwrap().sentence;
        assert!(
            s.ends_with("will rebuild: build arg V=2 added, build arg W removed (was 1)"),
            "{s}"
        );
    }

    fn bk(df: &str, man: &Manifest) -> Plan {
        let opts = PlanOptions {
            builder: Builder::BuildKit,
            ..PlanOptions::default()
        };
        plan(&parse(df, "Dockerfile").unwrap(), man, &opts).unwrap()
    }

    #[test]
    fn buildkit_reasons_name_env_user_lines_and_skip_directory_modes() {
        let m0 = m(base());
        let df = "FROM img\nENV E=1\nUSER 0\nCOPY app/ /app/\nRUN true\n";
        let e = explain(&bk(df, &m0), &m0, &bk(&df.replace("E=1", "E=2"), &m0), &m0);
        let miss = e.first_miss.unwrap();
        assert_eq!(
            miss.index, 5,
            "the COPY hits: BuildKit's copy op has no env"
        );
        assert!(
            miss.sentence
                .ends_with("will rebuild: ENV E changed: 1 → 2"),
            "{}",
            miss.sentence
        );
        let e = explain(
            &bk(df, &m0),
            &m0,
            &bk(&df.replace("USER 0", "USER 1"), &m0),
            &m0,
        );
        let s = e.first_miss.unwrap().sentence;
        assert!(s.contains("line 3 changed: `USER 0` → `USER 1`"), "{s}");
        // A directory's mode is no reason under BuildKit, a file's is; a link has no content.
        let mut v = base();
        v[0].mode = 0o700;
        v[2].mode = 0o755;
        v.push(crate::key::testutil::link("app/l", "main.py"));
        let m1 = m(v.clone());
        let n = v.len() - 1;
        v[n].link_target = Some("util.py".into());
        let m2 = m(v);
        let e = explain(&bk(DF, &m1), &m1, &bk(DF, &m2), &m2);
        assert_eq!(
            e.first_miss.unwrap().sentence,
            "Step 4/5 COPY app/ /app/ will rebuild: app/l link target changed"
        );
        let e = explain(&bk(DF, &m0), &m0, &bk(DF, &m1), &m1);
        let s = e.first_miss.unwrap().sentence;
        assert!(
            s.contains("app/util.py mode 644→755") && !s.contains("app mode"),
            "{s}"
        );
    }

    #[test]
    fn nothing_changed_means_all_hit() {
        let m0 = m(base());
        let e = explain(&pl(DF, &m0, &[]), &m0, &pl(DF, &m0, &[]), &m0);
        assert!(e.first_miss.is_none());
        assert!(e.steps.iter().filter(|s| s.cacheable).all(|s| s.hit));
    }

    #[test]
    fn base_change_is_named() {
        let m0 = m(base());
        let e = explain(
            &pl(DF, &m0, &[]),
            &m0,
            &pl(&DF.replace("img", "img:2"), &m0, &[]),
            &m0,
        );
        let miss = e.first_miss.unwrap();
        assert_eq!(miss.index, 2);
        assert_eq!(
            miss.reason,
            MissReason::Base {
                before: "FROM img".into()
            }
        );
    }

    #[test]
    fn add_url_may_rebuild_even_with_a_known_key() {
        let m0 = m(base());
        let df = "FROM img\nADD https://example.invalid/x.tgz /x/\nCOPY app/ /app/\nRUN true\n";
        let p = pl(df, &m0, &[]);
        assert!(p.steps[1].remote && !p.steps[2].remote);
        let e = explain(&p, &m0, &p, &m0);
        let v: Vec<Verdict> = e.steps.iter().map(|s| s.verdict).collect();
        assert_eq!(
            v,
            vec![
                Verdict::NotCached,
                Verdict::MayMiss,
                Verdict::MayMiss,
                Verdict::MayMiss
            ]
        );
        assert!(e.steps[1].hit, "the key itself is known");
        assert!(e.first_miss.is_none());
        let may = e.first_may_miss.unwrap();
        assert_eq!(may.index, 2);
        assert_eq!(may.reason, MissReason::Remote);
        assert_eq!(
            may.sentence,
            "Step 2/4 ADD https://example.invalid/x.tgz /x/ may rebuild: ADD fetches a remote \
source (the cache depends on the downloaded content)"
        );
        // A local ADD stays a plain hit.
        let local = "FROM img\nADD req.txt /r/\n";
        let p = pl(local, &m0, &[]);
        let e = explain(&p, &m0, &p, &m0);
        assert_eq!(e.steps[1].verdict, Verdict::Hit);
        assert!(e.first_may_miss.is_none());
    }

    #[test]
    fn copy_from_a_rebuilt_stage_may_rebuild_and_own_changes_still_miss() {
        let df = "FROM img AS build\nCOPY req.txt /r/\nRUN make\n\
FROM img\nCOPY --from=build /out /out\nRUN true\nCOPY app/ /app/\n";
        let m0 = m(base());
        let mut v = base();
        v[3] = f("req.txt", "r2", 0o644);
        let m1 = m(v.clone());
        let e = explain(&pl(df, &m0, &[]), &m0, &pl(df, &m1, &[]), &m1);
        let verdicts: Vec<Verdict> = e.steps.iter().map(|s| s.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::NotCached,
                Verdict::Miss,
                Verdict::Miss,
                Verdict::NotCached,
                Verdict::MayMiss,
                Verdict::MayMiss,
                Verdict::MayMiss
            ]
        );
        // The definite miss is the stage's own COPY; the COPY --from is only a "maybe", and it
        // comes after, so it is not reported as the first may-miss.
        assert_eq!(e.first_miss.as_ref().unwrap().index, 2);
        assert!(e.first_may_miss.is_none());

        // A later COPY whose own files changed is a definite miss even after the "maybe".
        v[1] = f("app/main.py", "b", 0o644);
        let m2 = m(v);
        let e = explain(&pl(df, &m0, &[]), &m0, &pl(df, &m2, &[]), &m2);
        assert!(!e.steps[4].hit);
        assert_eq!(e.steps[4].verdict, Verdict::MayMiss);
        assert_eq!(e.steps[5].verdict, Verdict::MayMiss);
        assert_eq!(e.steps[6].verdict, Verdict::Miss, "its own files changed");
        let sentence = sentence(
            &pl(df, &m2, &[]).steps[4],
            &MissReason::SourceStage {
                stage: "build".into(),
            },
            false,
        );
        assert!(
            sentence.starts_with("Step 5/7 COPY --from=build /out /out may rebuild: it depends on the output of stage `build`"),
            "{sentence}"
        );
    }
}
