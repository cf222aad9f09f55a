//! The no-op build: when nothing the classic builder hashes changed since the last successful
//! build of a service, the image that build produced is what a new build would produce, every
//! step from the cache — so no context is uploaded and no build runs; the tags are re-applied
//! and the saved report comes back marked up to date.
//!
//! The fast path is taken only when all of these hold, compared with the record written after
//! the last successful build of the same (context, Dockerfile, service, first tag):
//! - every step key of the plan equals the recorded one (the keys are what
//!   `tests/cache_prediction.rs` checks against the engine: content, mode, structure, symlinks,
//!   `.dockerignore`, build args as the steps consume them);
//! - the Dockerfile as sent, its name in the tar, the API labels, `--target` and `--platform`
//!   are the same (a comment-only edit of a Dockerfile outside the context rebuilds although
//!   Docker would hit: conservative on purpose);
//! - every image a step reads (`FROM`, `COPY --from` an image) still resolves to the recorded
//!   id: step keys name references, the builder keys by the id a reference resolves to;
//! - the recorded image still exists in the engine;
//! - the engine is the same one. Identity is the engine's persistent `docker info` ID, not
//!   the `DOCKER_HOST` spelling: two spellings (or a symlinked socket, or ssh and tcp) that
//!   reach the same daemon see the same image store, so Docker would hit there too; another
//!   daemon has another ID even when reached through the same `DOCKER_HOST` value.
//!
//! Never with `--force`, `--no-cache`, `--pull` (a pull may bring a new base the record
//! cannot know) or a step that downloads (`ADD <url>`). Any doubt (no record, an engine error
//! while asking) means building: the fast path may only ever be a build Docker would have
//! served entirely from its cache.
//!
//! Boundary: reads and writes its own record files; asks the engine through [`Engine`] only;
//! returns data (a [`Report`]), never prints.

use crate::engine::{BuildOutcome, Engine, StepStatus};
use crate::fsutil;
use crate::key::store::{PlanKey, PlanStore};
use crate::key::Plan;
use crate::report::{ContextSummary, Report, StepRow, Totals};
use std::path::{Path, PathBuf};

/// The record format version; another one counts as no record.
const VERSION: u32 = 1;

/// The most a record may weigh (one row per step).
const LIMIT: u64 = 16 << 20;

/// Everything a build sends besides the context, which the step keys do not cover.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The Dockerfile text as sent (with the injected LABEL line, if any).
    pub text: &'a str,
    /// Its name in the tar.
    pub dockerfile_in_tar: &'a str,
    /// Labels sent through the API (the engine appends a LABEL step for them).
    pub api_labels: &'a [(String, String)],
    pub target: Option<&'a str>,
    pub platform: Option<&'a str>,
    /// The builder: an image the classic builder made is not up to date for a BuildKit request.
    pub builder: crate::builder::Builder,
}

impl Inputs<'_> {
    fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        let mut part = |b: &[u8]| {
            // Length-prefixed: ("ab", "c") and ("a", "bc") differ.
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(self.text.as_bytes());
        part(self.dockerfile_in_tar.as_bytes());
        for (k, v) in self.api_labels {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        part(self.target.unwrap_or("\0none").as_bytes());
        part(self.platform.unwrap_or("\0none").as_bytes());
        if self.builder != crate::builder::Builder::Classic {
            // Classic records made before the builder was recorded stay valid.
            part(format!("{:?}", self.builder).as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}

/// One step of the recorded report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SavedStep {
    number: usize,
    total: usize,
    instruction: String,
    layer_size: Option<u64>,
    image_id: Option<String>,
}

/// What the last successful build of a service left behind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    version: u32,
    key: PlanKey,
    /// `docker info` ID of the engine that built it.
    engine_id: String,
    /// The host as configured then (for people reading the file; not compared).
    engine_host: String,
    inputs: String,
    keys: Vec<String>,
    /// (reference, image id) for every image a step reads.
    images: Vec<(String, String)>,
    image_id: String,
    steps: Vec<SavedStep>,
    image_size: u64,
}

/// Whether the request allows the fast path at all.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub force: bool,
    pub no_cache: bool,
    pub pull: bool,
}

impl Allowed {
    fn allowed(self) -> bool {
        !(self.force || self.no_cache || self.pull)
    }
}

/// The record file for `key` (named like the saved plan, in its own directory).
pub fn record_path(cache_dir: &Path, key: &PlanKey) -> PathBuf {
    let plan_path = PlanStore::new(cache_dir).path(key);
    let name = plan_path.file_name().map(PathBuf::from).unwrap_or_default();
    cache_dir.join("noop").join(name)
}

fn load(cache_dir: &Path, key: &PlanKey) -> Option<Record> {
    let path = record_path(cache_dir, key);
    let bytes = fsutil::read_limited(&path, LIMIT).ok()?;
    let r: Record = serde_json::from_slice(&bytes).ok()?;
    (r.version == VERSION && &r.key == key).then(|| {
        // Used (a no-op build rewrites nothing): kept among the newest when pruned, and so
        // is the plan it stands for.
        fsutil::touch(&path);
        fsutil::touch(&PlanStore::new(cache_dir).path(key));
        r
    })
}

/// The (reference, step index) of every image the plan's steps read, in step order.
fn images(plan: &Plan) -> Vec<(String, usize)> {
    plan.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.image.clone().map(|r| (r, i)))
        .collect()
}

fn keys(plan: &Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.key.clone()).collect()
}

/// The up-to-date report when the fast path may be taken, `None` when the build must run.
/// Engine errors count as "build": the build will report them properly.
pub fn check(
    engine: &Engine,
    cache_dir: &Path,
    key: &PlanKey,
    plan: &Plan,
    inputs: &Inputs,
    allowed: Allowed,
) -> Option<Report> {
    if !allowed.allowed() || plan.steps.iter().any(|s| s.remote) {
        return None;
    }
    let rec = load(cache_dir, key)?;
    if rec.inputs != inputs.digest() || rec.keys != keys(plan) {
        return None;
    }
    let refs: Vec<String> = images(plan).into_iter().map(|(r, _)| r).collect();
    let recorded_refs: Vec<&String> = rec.images.iter().map(|(r, _)| r).collect();
    if recorded_refs != refs.iter().collect::<Vec<_>>() {
        return None;
    }
    let facts = engine.facts(&rec.image_id, &refs).ok()?;
    let same_images = rec
        .images
        .iter()
        .zip(&facts.resolved)
        .all(|((_, id), now)| now.as_deref() == Some(id.as_str()));
    if facts.engine_id.is_empty()
        || facts.engine_id != rec.engine_id
        || !facts.image_exists
        || !same_images
    {
        return None;
    }
    Some(report(&rec))
}

/// The recorded build's report, every step served from the cache.
fn report(rec: &Record) -> Report {
    let steps: Vec<StepRow> = rec
        .steps
        .iter()
        .map(|s| StepRow {
            number: s.number,
            total: s.total,
            instruction: s.instruction.clone(),
            status: StepStatus::Cached,
            seconds: 0.0,
            layer_size: s.layer_size,
            image_id: s.image_id.clone(),
            cache: None,
        })
        .collect();
    Report {
        service: Some(rec.key.service.clone()),
        image_id: rec.image_id.clone(),
        tags: Vec::new(),
        totals: Totals {
            build_seconds: 0.0,
            steps: steps.len(),
            cached_steps: steps.len(),
            cached_share: if steps.is_empty() { 0.0 } else { 1.0 },
            image_size: rec.image_size,
        },
        steps,
        rebuild_reason: None,
        context: ContextSummary::default(),
        pushed: Vec::new(),
        warnings: Vec::new(),
        up_to_date: true,
        cache_from: Vec::new(),
        dockerfile: None,
        builder: Default::default(),
    }
}

/// Why a finished build left no record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot ask the engine about the built image: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("base image {reference} resolves to {now}, not {used} the build used: it changed during the build")]
    Moved {
        reference: String,
        used: String,
        now: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Records a successful build so the next one can be skipped when nothing changed.
#[allow(clippy::too_many_arguments)]
pub fn remember(
    engine: &Engine,
    cache_dir: &Path,
    key: &PlanKey,
    plan: &Plan,
    inputs: &Inputs,
    built: &BuildOutcome,
    report: &Report,
) -> Result<(), RecordError> {
    let path = record_path(cache_dir, key);
    let imgs = images(plan);
    let refs: Vec<String> = imgs.iter().map(|(r, _)| r.clone()).collect();
    let facts = engine.facts(&built.image_id, &refs)?;
    let mut images = Vec::with_capacity(imgs.len());
    for ((reference, i), now) in imgs.into_iter().zip(facts.resolved) {
        let now = now.unwrap_or_default();
        // The FROM step printed the id it used: a base re-tagged since then must not be
        // recorded as the one this image was built from.
        let used = built.steps.get(i).and_then(|s| {
            plan.steps[i]
                .instruction
                .split_whitespace()
                .next()
                .filter(|w| w.eq_ignore_ascii_case("FROM"))
                .and(s.image_id.clone())
        });
        if let Some(used) = used {
            let full = now.strip_prefix("sha256:").unwrap_or(&now);
            if now.is_empty() || !full.starts_with(&used) {
                let _ = std::fs::remove_file(&path);
                return Err(RecordError::Moved {
                    reference,
                    used,
                    now,
                });
            }
        }
        images.push((reference, now));
    }
    let rec = Record {
        version: VERSION,
        key: key.clone(),
        engine_id: facts.engine_id,
        engine_host: engine.host().to_string(),
        inputs: inputs.digest(),
        keys: keys(plan),
        images,
        image_id: built.image_id.clone(),
        steps: report
            .steps
            .iter()
            .map(|s| SavedStep {
                number: s.number,
                total: s.total,
                instruction: s.instruction.clone(),
                layer_size: s.layer_size,
                image_id: s.image_id.clone(),
            })
            .collect(),
        image_size: report.totals.image_size,
    };
    let write = |path: &Path| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        fsutil::write_private_with(path, |f| std::io::Write::write_all(f, &bytes))?;
        // One record per saved plan, pruned like the plans (a failure to prune fails nothing).
        if let Some(dir) = path.parent() {
            let _ =
                fsutil::prune_cache_dir(dir, ".json", crate::key::store::KEPT, path.file_name());
        }
        Ok(())
    };
    write(&path).map_err(|source| RecordError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(text: &'a str, labels: &'a [(String, String)]) -> Inputs<'a> {
        Inputs {
            text,
            dockerfile_in_tar: "Dockerfile",
            api_labels: labels,
            target: None,
            platform: None,
            builder: crate::builder::Builder::Classic,
        }
    }

    #[test]
    fn every_input_outside_the_keys_changes_the_digest() {
        let none: Vec<(String, String)> = Vec::new();
        let base = inputs("FROM x\n", &none).digest();
        assert_eq!(base, inputs("FROM x\n", &none).digest());
        assert_ne!(base, inputs("FROM x\n# c\n", &none).digest());
        let l = vec![("k".to_string(), "v".to_string())];
        assert_ne!(base, inputs("FROM x\n", &l).digest());
        let mut i = inputs("FROM x\n", &none);
        i.dockerfile_in_tar = "other";
        assert_ne!(base, i.digest());
        let mut i = inputs("FROM x\n", &none);
        i.target = Some("");
        assert_ne!(base, i.digest(), "an empty target is not no target");
        let mut i = inputs("FROM x\n", &none);
        i.platform = Some("linux/amd64");
        assert_ne!(base, i.digest());
        let mut i = inputs("FROM x\n", &none);
        i.builder = crate::builder::Builder::BuildKit;
        assert_ne!(
            base,
            i.digest(),
            "a classic image is not up to date for BuildKit"
        );
    }

    #[test]
    fn the_record_lives_beside_the_plan_but_apart_from_it() {
        let dir = Path::new("/cache");
        let k = PlanKey {
            context: "/p".into(),
            dockerfile: "/p/Dockerfile".into(),
            service: "s".into(),
            tag: "t".into(),
        };
        let plan = PlanStore::new(dir).path(&k);
        let rec = record_path(dir, &k);
        assert_eq!(plan.file_name(), rec.file_name());
        assert_eq!(rec.parent(), Some(Path::new("/cache/noop")));
    }

    #[test]
    fn force_no_cache_and_pull_each_forbid_the_fast_path() {
        let a = |force, no_cache, pull| {
            Allowed {
                force,
                no_cache,
                pull,
            }
            .allowed()
        };
        assert!(a(false, false, false));
        assert!(!a(true, false, false));
        assert!(!a(false, true, false));
        assert!(!a(false, false, true));
    }
}
