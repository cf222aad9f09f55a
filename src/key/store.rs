//! The saved plan of the last build of each image, so the next build's report can say why a
//! step rebuilt.
//!
//! One file per (context, Dockerfile, service, tag): the name is a hash of the canonical context
//! root, the Dockerfile's identity, the service and the tag, so two projects with the same
//! service name and tag never read each other's plan. The file is versioned and names what it
//! belongs to; a file of another version or another key counts as no plan. Written atomically
//! (no-follow temporary file renamed into place), read with a size limit.

use super::manifest::Overlay;
use super::{Manifest, Plan};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The format version; a file with another one is ignored (and overwritten by the next save).
const VERSION: u32 = 1;

/// The most a saved plan may weigh (its manifest lists every file of the context).
pub const LIMIT: u64 = 512 << 20;

/// The saved plans kept: the 64 most recently saved, 2 GiB in all (a plan holds the manifest
/// of its context, ~150 MB for a million files; the newest is kept whatever its size).
pub const KEPT: fsutil::Keep = fsutil::Keep {
    files: 64,
    bytes: 2 << 30,
};

/// What a saved plan belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanKey {
    /// The canonical context root.
    pub context: PathBuf,
    /// The Dockerfile: its canonical path, or `<rendered TEMPLATE>`.
    pub dockerfile: String,
    pub service: String,
    pub tag: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    version: u32,
    key: PlanKey,
    plan: Plan,
}

/// [`Saved`] as written: the plan and its manifest borrowed, so that saving never copies a
/// manifest the size of the context. The manifest lands in the plan's own `manifest` field.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    version: u32,
    key: &'a PlanKey,
    plan: PlanWith<'a>,
}

#[derive(serde::Serialize)]
struct PlanWith<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    manifest: &'a Manifest,
}

/// The directory of saved plans.
#[derive(Debug, Clone)]
pub struct PlanStore {
    dir: PathBuf,
}

impl PlanStore {
    /// The store under ctxbuild's cache directory.
    pub fn new(cache_dir: &Path) -> PlanStore {
        PlanStore {
            dir: cache_dir.join("plans"),
        }
    }

    /// Where the plan for `key` lives.
    pub fn path(&self, key: &PlanKey) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let mut h = blake3::Hasher::new();
        for part in [
            key.context.as_os_str().as_bytes(),
            key.dockerfile.as_bytes(),
            key.service.as_bytes(),
            key.tag.as_bytes(),
        ] {
            // Length-prefixed: ("ab", "c") and ("a", "bc") differ.
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let hex = h.finalize().to_hex();
        self.dir.join(format!("{}.json", &hex[..32]))
    }

    /// The plan saved for `key` (with its manifest), or `None` when there is none, it cannot
    /// be read, or it is of another version or key.
    pub fn load(&self, key: &PlanKey) -> Option<Plan> {
        // Parsed as it is read: a million-file plan is ~150 MB of JSON, which should not be
        // held beside the plan it becomes.
        let path = self.path(key);
        let saved: Saved = serde_json::from_reader(open(&path).ok()?).ok()?;
        (saved.version == VERSION && &saved.key == key).then(|| {
            // Used: kept among the newest when the store is pruned (see `save`).
            fsutil::touch(&path);
            saved.plan
        })
    }

    /// The plan saved for `key` with its manifest read as an [`Overlay`] of `current` (the
    /// records equal to `current`'s are not held twice), or `None` as [`PlanStore::load`]. The
    /// file is parsed as it is read: one saved record at a time.
    pub fn load_against<'a>(
        &self,
        key: &PlanKey,
        current: &'a Manifest,
    ) -> Option<(Plan, Overlay<'a>)> {
        use serde::de::DeserializeSeed;
        let path = self.path(key);
        let mut de = serde_json::Deserializer::from_reader(open(&path).ok()?);
        let (version, saved_key, plan, overlay) = seed::Saved(current).deserialize(&mut de).ok()?;
        de.end().ok()?;
        (version == VERSION && saved_key.as_ref() == Some(key)).then(|| {
            fsutil::touch(&path);
            (plan, overlay)
        })
    }

    /// Saves `plan` with `manifest` for `key`, atomically (a manifest in `plan` is replaced).
    pub fn save(&self, key: &PlanKey, plan: &Plan, manifest: &Manifest) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let without;
        let plan = if plan.manifest.is_some() {
            without = Plan {
                manifest: None,
                ..plan.clone()
            };
            &without
        } else {
            plan
        };
        let saved = SavedRef {
            version: VERSION,
            key,
            plan: PlanWith { plan, manifest },
        };
        // Written as it is made, for the same reason.
        let path = self.path(key);
        fsutil::write_private_with(&path, |f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
            serde_json::to_writer(&mut w, &saved).map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut w)
        })?;
        // A plan per tag: a runner tagging each build with its commit would keep them all.
        // Pruning is housekeeping; a failure to prune fails nothing.
        let _ = fsutil::prune_cache_dir(&self.dir, ".json", KEPT, path.file_name());
        Ok(())
    }
}

/// A saved plan file to parse as it is read: a regular file (a FIFO or device is refused, not
/// read forever) of at most [`LIMIT`] bytes, buffered.
pub fn open(path: &Path) -> Result<impl std::io::Read, fsutil::ReadError> {
    use std::io::Read;
    let file = fsutil::open_regular(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > LIMIT {
        return Err(fsutil::ReadError::TooLarge {
            path: path.to_path_buf(),
            limit: LIMIT,
        });
    }
    Ok(std::io::BufReader::with_capacity(1 << 16, file.take(LIMIT)))
}

/// A plan file (`plan --save`) without its manifest, which is skipped as it is parsed (never
/// held): the plan, and whether the file has a manifest to read with [`read_plan_against`].
pub fn read_plan_head(r: impl std::io::Read) -> serde_json::Result<(Plan, bool)> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_reader(r);
    let (plan, _, has_manifest) = seed::PlanSeed(None).deserialize(&mut de)?;
    de.end()?;
    Ok((plan, has_manifest))
}

/// A plan file (`plan --save`) with its manifest read as an [`Overlay`] of `current`, one
/// record at a time: only the records that differ from `current`'s are held.
pub fn read_plan_against(
    r: impl std::io::Read,
    current: &Manifest,
) -> serde_json::Result<(Plan, Overlay<'_>)> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_reader(r);
    let (plan, overlay, _) = seed::PlanSeed(Some(current)).deserialize(&mut de)?;
    de.end()?;
    Ok((plan, overlay.unwrap_or_else(|| Overlay::new(current))))
}

/// Reading a saved plan with its manifest streamed into an [`Overlay`]: serde seeds that carry
/// the current manifest down to the `entries` array.
mod seed {
    use super::{Manifest, Overlay, Plan, PlanKey};
    use crate::key::ManifestEntry;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// The whole file: `{"version", "key", "plan"}`.
    pub struct Saved<'a>(pub &'a Manifest);

    impl<'de, 'a> DeserializeSeed<'de> for Saved<'a> {
        type Value = (u32, Option<PlanKey>, Plan, Overlay<'a>);
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, 'a> Visitor<'de> for Saved<'a> {
        type Value = (u32, Option<PlanKey>, Plan, Overlay<'a>);
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a saved plan")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut version, mut key, mut plan) = (None, None, None);
            while let Some(k) = map.next_key::<String>()? {
                match k.as_str() {
                    "version" => version = Some(map.next_value::<u32>()?),
                    "key" => key = Some(map.next_value::<PlanKey>()?),
                    "plan" => plan = Some(map.next_value_seed(PlanSeed(Some(self.0)))?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
            let (plan, overlay, _) = plan.ok_or_else(|| de::Error::missing_field("plan"))?;
            let overlay = overlay.unwrap_or_else(|| Overlay::new(self.0));
            Ok((version, key, plan, overlay))
        }
    }

    /// The plan: its small fields collected as JSON, its `manifest` streamed into an overlay of
    /// the given manifest, or skipped (`None`). Also says whether the plan has a manifest.
    pub struct PlanSeed<'a>(pub Option<&'a Manifest>);

    impl<'de, 'a> DeserializeSeed<'de> for PlanSeed<'a> {
        type Value = (Plan, Option<Overlay<'a>>, bool);
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, 'a> Visitor<'de> for PlanSeed<'a> {
        type Value = (Plan, Option<Overlay<'a>>, bool);
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a plan")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = serde_json::Map::new();
            let mut overlay = self.0.map(Overlay::new);
            let mut has_manifest = false;
            while let Some(k) = map.next_key::<String>()? {
                if k == "manifest" {
                    has_manifest = match overlay.as_mut() {
                        Some(o) => map.next_value_seed(ManifestSeed(Some(o)))?,
                        None => map.next_value_seed(ManifestSeed(None))?,
                    };
                } else {
                    let v = map.next_value::<serde_json::Value>()?;
                    fields.insert(k, v);
                }
            }
            let plan: Plan = serde_json::from_value(serde_json::Value::Object(fields))
                .map_err(de::Error::custom)?;
            Ok((plan, overlay, has_manifest))
        }
    }

    /// `{"entries": [...]}` (or `null`: `false`), each record pushed onto the overlay as it is
    /// parsed, or skipped without an overlay.
    struct ManifestSeed<'o, 'a>(Option<&'o mut Overlay<'a>>);

    impl<'de> DeserializeSeed<'de> for ManifestSeed<'_, '_> {
        type Value = bool;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for ManifestSeed<'_, '_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a manifest")
        }
        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut overlay = self.0;
            while let Some(k) = map.next_key::<String>()? {
                match (k.as_str(), overlay.as_deref_mut()) {
                    ("entries", Some(o)) => map.next_value_seed(EntriesSeed(o))?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(true)
        }
    }

    struct EntriesSeed<'o, 'a>(&'o mut Overlay<'a>);

    impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("manifest records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(e) = seq.next_element::<ManifestEntry>()? {
                self.0.push(e).map_err(de::Error::custom)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(context: &str, service: &str, tag: &str) -> PlanKey {
        PlanKey {
            context: PathBuf::from(context),
            dockerfile: "<rendered python-asgi/alpine>".into(),
            service: service.into(),
            tag: tag.into(),
        }
    }

    fn plan(digest: &str) -> Plan {
        let df = crate::dockerfile::parse("FROM x\nCOPY . /app\n", "Dockerfile").unwrap();
        let mut p = crate::key::plan(&df, &Manifest::default(), &Default::default()).unwrap();
        p.context_digest = digest.into();
        p
    }

    /// The manifest is saved from a borrow, inside the plan, replacing any the plan had.
    #[test]
    fn a_borrowed_manifest_is_saved_inside_the_plan() {
        use crate::context::EntryKind;
        use crate::key::manifest::ManifestEntry;
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        let k = key("/ctx", "svc", "t");
        let record = |p: &str| ManifestEntry {
            path: PathBuf::from(p),
            kind: EntryKind::File,
            mode: 0o644,
            size: 3,
            link_target: None,
            rdev: 0,
            hash: Some([7; 32]),
        };
        let m = Manifest {
            entries: vec![record("a.py"), record("b/c.py")],
        };
        let mut p = plan("x");
        p.manifest = Some(Manifest {
            entries: vec![record("old.py")],
        });
        store.save(&k, &p, &m).unwrap();
        let back = store.load(&k).unwrap();
        assert_eq!(back.manifest.as_ref(), Some(&m));
        assert_eq!(back.steps, p.steps);
        assert_eq!(back.context_digest, p.context_digest);
    }

    /// Read against the current manifest, the saved one is the same records in the same order,
    /// and only those that differ from the current ones are held.
    #[test]
    fn a_saved_manifest_read_against_the_current_one_holds_only_what_changed() {
        use crate::context::EntryKind;
        use crate::key::manifest::{ManifestEntry, Records};
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        let k = key("/ctx", "svc", "t");
        let record = |p: &str, mode: u32, h: u8| ManifestEntry {
            path: PathBuf::from(p),
            kind: EntryKind::File,
            mode,
            size: 3,
            link_target: None,
            rdev: 0,
            hash: Some([h; 32]),
        };
        let saved = Manifest {
            entries: vec![
                record("a.py", 0o644, 1),
                record("b.py", 0o644, 2),
                record("c.py", 0o644, 3),
                record("d.py", 0o644, 4),
                record("gone.py", 0o644, 5),
            ],
        };
        let current = Manifest {
            entries: vec![
                record("a.py", 0o644, 1),
                record("added.py", 0o644, 9),
                record("b.py", 0o644, 7),
                record("c.py", 0o755, 3),
                record("d.py", 0o644, 4),
            ],
        };
        let p = plan("x");
        store.save(&k, &p, &saved).unwrap();
        let (back, old) = store.load_against(&k, &current).unwrap();
        assert_eq!(back.steps, p.steps);
        assert_eq!(back.context_digest, p.context_digest);
        assert_eq!(back.manifest, None);
        assert_eq!(old.len(), saved.entries.len());
        for (i, e) in saved.entries.iter().enumerate() {
            assert_eq!(old.at(i), e, "record {i}");
        }
        // b.py (content), c.py (mode) and gone.py; a.py and d.py are the current records.
        assert_eq!(old.held(), 3);
        assert_eq!(old.lookup(b"gone.py"), Some(&saved.entries[4]));
        assert_eq!(old.lookup(b"added.py"), None);
        // Another key, or records out of order, read as no plan.
        assert!(store
            .load_against(&key("/ctx", "svc", "u"), &current)
            .is_none());
        let path = store.path(&k);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"d.py\"", "\"0.py\"", 1)).unwrap();
        assert!(store.load_against(&k, &current).is_none());
    }

    #[test]
    fn two_projects_with_the_same_service_and_tag_do_not_share_a_plan() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        let a = key("/src/project-a/backend", "backend", "app:1");
        let b = key("/src/project-b/backend", "backend", "app:1");
        assert_ne!(store.path(&a), store.path(&b));
        store.save(&a, &plan("aaa"), &Manifest::default()).unwrap();
        assert_eq!(store.load(&a).unwrap().context_digest, "aaa");
        assert!(store.load(&b).is_none());
        store.save(&b, &plan("bbb"), &Manifest::default()).unwrap();
        assert_eq!(store.load(&a).unwrap().context_digest, "aaa");
        assert_eq!(store.load(&b).unwrap().context_digest, "bbb");
        // The manifest travels with the plan, for the next diff.
        assert!(store.load(&a).unwrap().manifest.is_some());
    }

    #[test]
    fn a_tag_per_build_does_not_grow_the_store_forever() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        let count = || std::fs::read_dir(dir.path().join("plans")).unwrap().count();
        for i in 0..KEPT.files + 6 {
            let k = key("/src/app", "backend", &format!("app:{i:04}"));
            store
                .save(&k, &plan(&format!("d{i}")), &Manifest::default())
                .unwrap();
            assert_eq!(store.load(&k).unwrap().context_digest, format!("d{i}"));
        }
        assert_eq!(count(), KEPT.files);

        // A plan used (loaded) but not rewritten stays: make every plan old, the first kept
        // one the oldest, load it, save one more.
        let first = key("/src/app", "backend", "app:0006");
        for (i, e) in std::fs::read_dir(dir.path().join("plans"))
            .unwrap()
            .enumerate()
        {
            let age = if e.as_ref().unwrap().path() == store.path(&first) {
                9_000
            } else {
                1_000 + i as i64
            };
            crate::fsutil::set_mtime(&e.unwrap().path(), age);
        }
        assert!(store.load(&first).is_some());
        let last = key("/src/app", "backend", "app:9999");
        store
            .save(&last, &plan("last"), &Manifest::default())
            .unwrap();
        assert_eq!(count(), KEPT.files);
        assert!(
            store.load(&first).is_some(),
            "the plan just used was pruned"
        );
    }

    #[test]
    fn another_version_or_a_corrupt_file_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::new(dir.path());
        let k = key("/p", "s", "t");
        store.save(&k, &plan("x"), &Manifest::default()).unwrap();
        let path = store.path(&k);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"version\":1", "\"version\":0", 1)).unwrap();
        assert!(store.load(&k).is_none());
        std::fs::write(&path, "{not json").unwrap();
        assert!(store.load(&k).is_none());
        // The next save replaces it.
        store.save(&k, &plan("y"), &Manifest::default()).unwrap();
        assert_eq!(store.load(&k).unwrap().context_digest, "y");
    }
}
