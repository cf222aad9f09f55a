//! `--cache-from` for the classic builder: make the cache images present (pulling them with the
//! push credentials), tell a step served from a cache image from a local hit, and carry the
//! build's plan inside the image as a label so a fresh builder can still say why a step rebuilt.
//!
//! A cache image that is missing or cannot be pulled is reported as an event and left out;
//! it never fails the build. Nothing here prints.
//!
//! How a `--cache-from` hit is told from a local one (dockerd 20.10, `daemon/images/cache.go`):
//! with cache images given, the classic builder accepts a local hit only when it is an ancestor
//! of a cache image; otherwise it rebuilds the step's image from the cache image's history
//! (`restoreCachedImage`), which creates an image id the engine did not hold before, or, at the
//! last step, returns the cache image itself. So a cached step whose image id was not on the
//! engine before the cache images were pulled came from them.

use super::labels;
use crate::diagnostics::diagnose;
use crate::engine::StepStatus;
use crate::engine::{self, DockerConfig, Engine};
use crate::events::{Event, Sink};
use crate::key::Plan;
use crate::report::{CacheOrigin, Report};
use base64::Engine as _;
use std::collections::HashSet;
use std::io::{Read, Write};

/// The most the plan label may weigh: the injected Dockerfile carries it on one `LABEL` line
/// and the engine's Dockerfile scanner refuses lines over 64 KiB.
pub const PLAN_LABEL_LIMIT: usize = 48 << 10;

/// The most a decoded plan may weigh (a label is small; this bounds a hostile one).
const PLAN_DECODED_LIMIT: u64 = 16 << 20;

/// Format prefix of the plan label's value.
const PLAN_LABEL_PREFIX: &str = "v1.";

/// The cache images a build may use, and what was on the engine before they were pulled.
#[derive(Debug, Default)]
pub struct CacheFrom {
    /// What the engine gets as `cachefrom`, in order.
    pub sources: Vec<String>,
    /// The given references that are usable (a subset of `sources`), with their image ids.
    pub images: Vec<(String, String)>,
    /// Image ids the engine held before any pull; `None` when they could not be listed (then
    /// every hit counts as local).
    before: Option<HashSet<String>>,
    /// The plans the cache images carry in their label, in the order given.
    pub plans: Vec<Plan>,
}

/// Makes the `--cache-from` images present. `own_tags` are the build's own tags: when one is
/// on the engine already it is added as a cache source too, because with cache images given the
/// classic builder ignores local hits that are not their ancestors.
pub fn prepare(
    engine: &Engine,
    refs: &[String],
    own_tags: &[String],
    service: &str,
    sink: &dyn Sink,
) -> anyhow::Result<CacheFrom> {
    let mut out = CacheFrom::default();
    if refs.is_empty() {
        return Ok(out);
    }
    out.before = engine.image_ids().ok();
    let mut docker_config: Option<DockerConfig> = None;
    for reference in refs {
        let found = match engine.inspect_image(reference) {
            Ok(Some(info)) => Ok((info, false)),
            Ok(None) => {
                sink.event(&Event::CacheFromPulling { reference });
                pull(engine, reference, &mut docker_config).and_then(|()| {
                    engine
                        .inspect_image(reference)
                        .map_err(diagnose)?
                        .map(|i| (i, true))
                        .ok_or_else(|| {
                            anyhow::anyhow!("the engine has no {reference} after the pull")
                        })
                })
            }
            Err(e) => Err(diagnose(e)),
        };
        match found {
            Ok((info, pulled)) => {
                sink.event(&Event::CacheFromReady {
                    reference,
                    image_id: &info.id,
                    pulled,
                });
                if let Some(plan) = plan_of(&info.labels, service) {
                    out.plans.push(plan);
                }
                out.sources.push(reference.clone());
                out.images.push((reference.clone(), info.id));
            }
            Err(e)
                if e.is::<engine::EngineError>()
                    && matches!(e.downcast_ref(), Some(engine::EngineError::Interrupted)) =>
            {
                return Err(e)
            }
            Err(error) => sink.event(&Event::CacheFromUnavailable {
                reference,
                error: &error,
            }),
        }
    }
    for tag in own_tags {
        if !out.sources.contains(tag) && matches!(engine.inspect_image(tag), Ok(Some(_))) {
            out.sources.push(tag.clone());
        }
    }
    Ok(out)
}

fn pull(
    engine: &Engine,
    reference: &str,
    docker_config: &mut Option<DockerConfig>,
) -> anyhow::Result<()> {
    if docker_config.is_none() {
        let dir = engine::auth::config_dir(&|k| std::env::var(k).ok());
        *docker_config = Some(DockerConfig::load(dir.as_deref()).map_err(diagnose)?);
    }
    let config = docker_config.as_ref().expect("loaded above");
    let creds = config.credentials_for(reference).map_err(diagnose)?;
    engine
        .pull(reference, creds.as_ref(), &mut |_| {})
        .map_err(diagnose)
}

impl CacheFrom {
    /// Marks each cached step of `report` as a local or a `--cache-from` hit, and lists the
    /// cache images in it.
    pub fn mark(&self, report: &mut Report) {
        report.cache_from = self
            .images
            .iter()
            .map(|(reference, id)| crate::report::CacheFromImage {
                reference: reference.clone(),
                image_id: id.clone(),
            })
            .collect();
        for step in &mut report.steps {
            if step.status != StepStatus::Cached || is_from(&step.instruction) {
                continue;
            }
            let from_cache_image = match (&self.before, &step.image_id) {
                (Some(before), Some(short)) if !self.images.is_empty() => {
                    let full = format!("sha256:{short}");
                    !before.iter().any(|id| id.starts_with(&full))
                }
                _ => false,
            };
            step.cache = Some(if from_cache_image {
                CacheOrigin::CacheFrom
            } else {
                CacheOrigin::Local
            });
        }
    }
}

fn is_from(instruction: &str) -> bool {
    instruction
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
}

/// The plan label's value: the plan (with its manifest) as deflated, base64'd JSON, or `None`
/// when it would exceed [`PLAN_LABEL_LIMIT`]. The JSON is compressed as it is written and the
/// writing stops as soon as the compressed bytes outgrow the limit: a large context's manifest
/// is never held whole, as JSON or compressed.
pub fn plan_label(plan: &Plan) -> Option<String> {
    let packed = pack(plan, &mut 0)?;
    let value = format!(
        "{PLAN_LABEL_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(packed)
    );
    (value.len() <= PLAN_LABEL_LIMIT).then_some(value)
}

/// Deflated JSON of `plan`, if its base64 fits the label; `fed` counts the JSON bytes written
/// before it was done or gave up.
fn pack(plan: &Plan, fed: &mut u64) -> Option<Vec<u8>> {
    // base64 makes 4 bytes of every 3.
    let room = (PLAN_LABEL_LIMIT - PLAN_LABEL_PREFIX.len()) / 4 * 3;
    let z = flate2::write::DeflateEncoder::new(
        Bounded {
            out: Vec::new(),
            room,
        },
        flate2::Compression::best(),
    );
    let mut w = std::io::BufWriter::with_capacity(8 << 10, Counted { inner: z, fed });
    serde_json::to_writer(&mut w, plan).ok()?;
    let Counted { inner: z, .. } = w.into_inner().ok()?;
    Some(z.finish().ok()?.out)
}

/// A buffer that refuses to grow past `room` bytes (the error stops the writer feeding it).
struct Bounded {
    out: Vec<u8>,
    room: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.room {
            return Err(std::io::Error::other("the plan label would be too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes passed on.
struct Counted<'a, W> {
    inner: W,
    fed: &'a mut u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.fed += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The plan a label value holds, or `None` when it is not one ctxbuild wrote (or too large).
pub fn decode_plan_label(value: &str) -> Option<Plan> {
    let b64 = value.strip_prefix(PLAN_LABEL_PREFIX)?;
    if b64.len() > 4 * PLAN_LABEL_LIMIT {
        return None;
    }
    let packed = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(&packed[..])
        .take(PLAN_DECODED_LIMIT + 1)
        .read_to_end(&mut json)
        .ok()?;
    if json.len() as u64 > PLAN_DECODED_LIMIT {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// The plan an image carries, when it is an image of `service` built by ctxbuild.
fn plan_of(labels: &std::collections::BTreeMap<String, String>, service: &str) -> Option<Plan> {
    if labels.get(labels::SERVICE).map(String::as_str) != Some(service) {
        return None;
    }
    decode_plan_label(labels.get(labels::PLAN)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Manifest, ManifestEntry};

    fn plan_with(files: usize) -> Plan {
        let df = crate::dockerfile::parse("FROM x\nCOPY . /app\n", "Dockerfile").unwrap();
        let mut p = crate::key::plan(&df, &Manifest::default(), &Default::default()).unwrap();
        let entries = (0..files)
            .map(|i| ManifestEntry {
                path: format!("app/module_{i}.py").into(),
                kind: crate::context::EntryKind::File,
                mode: 0o644,
                size: i as u64,
                link_target: None,
                rdev: 0,
                hash: Some(*blake3::hash(format!("{i}").as_bytes()).as_bytes()),
            })
            .collect();
        p.manifest = Some(Manifest { entries });
        p
    }

    #[test]
    fn the_plan_label_round_trips_with_its_manifest() {
        let plan = plan_with(20);
        let value = plan_label(&plan).unwrap();
        assert!(value.starts_with("v1."));
        assert_eq!(decode_plan_label(&value).unwrap(), plan);
        // Deterministic: an unchanged plan gives an unchanged label, so the LABEL step stays cached.
        assert_eq!(plan_label(&plan).unwrap(), value);
    }

    #[test]
    fn a_plan_too_large_for_a_label_is_left_out() {
        // Hashes do not compress: a few thousand files exceed the bound.
        assert!(plan_label(&plan_with(5000)).is_none());
    }

    #[test]
    fn a_large_manifest_is_given_up_on_early_not_serialized_whole() {
        let plan = plan_with(100_000);
        let whole = serde_json::to_vec(&plan).unwrap().len() as u64;
        let mut fed = 0;
        assert!(pack(&plan, &mut fed).is_none());
        // The limit is reached within the first few thousand records (hashes do not
        // compress): what was serialized is a small share of the whole.
        assert!(fed > 0 && fed < whole / 20, "fed {fed} of {whole} bytes");
        // A plan that fits is serialized whole.
        let small = plan_with(20);
        let mut fed = 0;
        assert!(pack(&small, &mut fed).is_some());
        assert_eq!(fed, serde_json::to_vec(&small).unwrap().len() as u64);
    }

    #[test]
    fn foreign_or_broken_labels_are_no_plan() {
        assert!(decode_plan_label("hello").is_none());
        assert!(decode_plan_label("v1.!!!").is_none());
        let other = base64::engine::general_purpose::STANDARD.encode(b"not deflate");
        assert!(decode_plan_label(&format!("v1.{other}")).is_none());
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(labels::PLAN.to_string(), plan_label(&plan_with(1)).unwrap());
        labels.insert(labels::SERVICE.to_string(), "worker".to_string());
        assert!(
            plan_of(&labels, "backend").is_none(),
            "another service's plan"
        );
        assert!(plan_of(&labels, "worker").is_some());
    }
}
