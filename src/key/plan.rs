//! Per-step cache keys that change exactly when the classic builder's layer cache would miss.
//!
//! The classic builder (moby `builder/dockerfile`) finds a cached layer by its parent image and
//! the container config the step would commit; the config carries a "#(nop)" comment per step.
//! So a step's key here is the parent key chained with what Docker records for it:
//! - `RUN`: the command (shell form: the shell + the raw text, never expanded by the builder)
//!   plus every declared build arg with a value that no `ENV` shadows (`|N k=v …`, sorted);
//! - `COPY`/`ADD`: "--chown=…", the source hash and the destination; the source hash follows
//!   `builder/dockerfile/copy.go`: a file's tarsum (name, mode, size, type, content — not mtime),
//!   a directory's sorted list of its entries' sums, several sources as an ordered "multi" list.
//!   Symlinks are hashed as what they point to inside the context; a link that resolves to
//!   nothing is hashed by its own path (so retargeting a dangling link hits the cache: Docker's
//!   behaviour, verified on the engine);
//! - `ENV`, `LABEL`, `ARG` (with its declared default, not the `--build-arg` value), `WORKDIR`
//!   (normalised), `USER`, `EXPOSE`, … : their expanded values, as in the commit comment;
//! - `FROM`: the expanded image reference (or the key of the stage it names).
//!
//! With [`Builder::BuildKit`] the keys follow what the engine's BuildKit hashes instead (see
//! [`super::buildkit`] and the README's "Classic vs BuildKit" table): only `RUN`, `COPY`,
//! `ADD` and `WORKDIR` (not `/`) make a vertex and are cacheable; `ENV`, `ARG`, `USER`,
//! `LABEL`, … change no vertex but `ENV`/`ARG` values and the user enter the key of every
//! later `RUN` (BuildKit's exec env), never that of a `COPY`; a `COPY` source is keyed by its
//! content checksum (no directory modes, links by their text); `RUN --mount=type=bind` keys
//! its context source the same way; stages the target does not read are never built.
//!
//! Boundary: data in (parsed Dockerfile, manifest, options), data out ([`Plan`]). No I/O.

use super::buildkit;
use super::manifest::{feed_bytes, Hash, Manifest, ManifestEntry, Records};
use super::sources::{resolve_in, Resolved};
pub use super::sources::{SelectError, Selection};
use crate::builder::Builder;
use crate::context::EntryKind;
use crate::dockerfile::shell::{self, ExpandError, Lookup, MAX_TOTAL_EXPANDED};
use crate::dockerfile::{Dockerfile, Instruction, Keyword};
use crate::pathrules;
use rayon::prelude::*;
use std::path::PathBuf;

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--build-arg K=V` values (resolved by the caller).
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// Whose cache the keys predict.
    pub builder: Builder,
}

fn is_classic(b: &Builder) -> bool {
    *b == Builder::Classic
}

/// The keys of every step of a build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Root digest of the whole context manifest.
    pub context_digest: String,
    /// The Dockerfile name as given.
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The builder whose cache the keys predict (absent in JSON: classic).
    #[serde(default, skip_serializing_if = "is_classic")]
    pub builder: Builder,
    pub steps: Vec<PlanStep>,
    /// The manifest, kept in saved plans so `explain` can name the files that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// One step ("Step N/M").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanStep {
    /// 1-based step number, as Docker prints it.
    pub index: usize,
    pub total: usize,
    /// Dockerfile line where the instruction starts.
    pub line: usize,
    /// The instruction as Docker prints it after "Step N/M : ".
    pub instruction: String,
    /// The cache key (hex). BuildKit: a step that makes no vertex carries the key of the
    /// vertex before it (the state it leaves is that state).
    pub key: String,
    /// Whether Docker consults its layer cache for this step (`FROM` and meta `ARG`s: no).
    pub cacheable: bool,
    /// `COPY`/`ADD` sources after variable expansion, as given.
    #[serde(default)]
    pub sources: Vec<String>,
    /// `COPY --from` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Context files (not directories) the sources select: `plan`'s FILES column.
    #[serde(default)]
    pub files: usize,
    /// `RUN`: the build args that take part in its key (`K=V`, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_args: Vec<String>,
    /// BuildKit `RUN`: the `ENV` values of the Dockerfile in its exec env (`K=V`, BuildKit's
    /// order), so a miss can name the variable that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// BuildKit: the step belongs to a stage the target does not read, so it is never built.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// `ADD <url>`: Docker downloads the source on every build and keys the layer by the
    /// downloaded content, which cannot be known offline; a known key is no promise of a hit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
    /// The engine image this step reads, expanded (`FROM` an image other than a stage or
    /// `scratch`, `COPY --from` an image): its key names the reference, not the image id it
    /// resolves to, so the no-op build checks the id separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Whether an `ADD` source is fetched from the network rather than read from the context.
pub fn is_remote(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Parse(#[from] crate::dockerfile::ParseError),
    #[error("{name}:{line}: {message}")]
    Expand {
        name: String,
        line: usize,
        message: String,
    },
    #[error("{name}:{line}: {keyword} {source_path}: file not found in build context or excluded by .dockerignore")]
    NotFound {
        name: String,
        line: usize,
        keyword: Keyword,
        source_path: String,
    },
    #[error("{name}:{line}: {keyword} {source_path}: forbidden path outside the build context")]
    Outside {
        name: String,
        line: usize,
        keyword: Keyword,
        source_path: String,
    },
    #[error("{name}:{line}: {keyword} {pattern}: no source files were specified")]
    NoMatch {
        name: String,
        line: usize,
        keyword: Keyword,
        pattern: String,
    },
    #[error(
        "{name}:{line}: the --{flag} option requires BuildKit (the classic builder refuses it)"
    )]
    NeedsBuildKit {
        name: String,
        line: usize,
        flag: String,
    },
    #[error("{name}:{line}: Unknown flag: {flag}")]
    UnknownFlag {
        name: String,
        line: usize,
        flag: String,
    },
}

impl crate::diagnostics::Diagnose for PlanError {
    fn hint(&self) -> Option<String> {
        match self {
            PlanError::Parse(e) => e.hint(),
            PlanError::NotFound { .. } | PlanError::NoMatch { .. } => {
                Some("check the path against `ctxbuild ls`: .dockerignore may exclude it".into())
            }
            PlanError::NeedsBuildKit { flag, .. } if flag == "chmod" => {
                Some("drop the flag (use RUN chmod) or pass --builder buildkit".into())
            }
            PlanError::NeedsBuildKit { .. } => {
                Some("drop the mount (COPY what the step needs) or pass --builder buildkit".into())
            }
            _ => None,
        }
    }
}

fn chain(parent: &Hash, parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"ctxbuild-step-v1");
    h.update(parent);
    for p in parts {
        feed_bytes(&mut h, p);
    }
    *h.finalize().as_bytes()
}

fn hex(h: &Hash) -> String {
    blake3::Hash::from(*h).to_hex().to_string()
}

const ZERO: Hash = [0; 32];

/// Per-stage builder state that takes part in keys.
#[derive(Debug, Clone)]
struct State {
    key: Hash,
    env: Vec<(String, String)>,
    /// Declared ARGs in this stage: name → value in effect (None: declared, no value).
    args: Vec<(String, Option<String>)>,
    shell: Vec<String>,
    workdir: String,
    /// BuildKit: the env its `RUN`s get from the Dockerfile (`ARG` values and `ENV`).
    llb_env: Vec<(String, String)>,
    /// BuildKit: `USER`, which its `RUN`s (and `WORKDIR`'s mkdir) carry.
    user: String,
}

impl State {
    fn new(key: Hash) -> State {
        State {
            key,
            env: Vec::new(),
            args: Vec::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            workdir: String::new(),
            llb_env: Vec::new(),
            user: String::new(),
        }
    }

    /// Variables for expansion: build args with values, then ENV (which wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        v.extend(self.env.iter().cloned());
        v
    }

    /// The build args a `RUN` sees, as Docker prepends them to the cached command.
    fn run_args(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .args
            .iter()
            .filter(|(k, _)| !self.env.iter().any(|(e, _)| e == k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        out.sort();
        out
    }

    fn set_env(&mut self, k: String, v: String) {
        match self.env.iter_mut().find(|(e, _)| *e == k) {
            Some(slot) => slot.1 = v,
            None => self.env.push((k, v)),
        }
    }
}

/// Flags Docker 20.10 parses, per instruction and builder (`--chmod` is parsed by the classic
/// builder only to be refused; the embedded BuildKit 0.8 frontend knows no `--link`).
fn allowed_flags(k: Keyword, builder: Builder) -> &'static [&'static str] {
    match (k, builder) {
        (Keyword::From, _) => &["platform"],
        (Keyword::Copy, _) => &["from", "chown", "chmod"],
        (Keyword::Add, _) => &["chown", "chmod"],
        (Keyword::Run, Builder::BuildKit) => &["mount", "network", "security"],
        (Keyword::Healthcheck, _) => &["interval", "timeout", "start-period", "retries"],
        _ => &[],
    }
}

/// Computes the plan of `df` over the context `manifest`.
pub fn plan(df: &Dockerfile, manifest: &Manifest, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let steps = df.steps(opts.target.as_deref())?;
    let esc = df.directives.escape;
    let name = df.name.as_str();
    let xerr = |ins: &Instruction, e: crate::dockerfile::shell::ExpandError| PlanError::Expand {
        name: name.into(),
        line: ins.line,
        message: e.to_string(),
    };
    // Every expansion is counted: values are kept for later steps, so each capped one could
    // still add up without bound.
    let produced = std::cell::Cell::new(0usize);
    let account = |n: usize| {
        produced.set(produced.get().saturating_add(n));
        if produced.get() > MAX_TOTAL_EXPANDED {
            Err(ExpandError::TotalTooLong)
        } else {
            Ok(())
        }
    };
    let expand = |w: &str, env: &dyn Lookup, esc: char| -> Result<String, ExpandError> {
        let s = shell::expand(w, env, esc)?;
        account(s.len())?;
        Ok(s)
    };
    let expand_words = |w: &str, env: &dyn Lookup, esc: char| -> Result<Vec<String>, ExpandError> {
        let words = shell::expand_words(w, env, esc)?;
        account(words.iter().map(String::len).sum())?;
        Ok(words)
    };
    let override_of = |k: &str| {
        opts.build_args
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };

    // Flags are checked up front: Docker rejects the whole Dockerfile before any step runs.
    for s in &steps {
        let ins = s.instruction;
        for f in &ins.flags {
            // The classic builder of 20.10 knows these two only to refuse them by name.
            let refused = opts.builder == Builder::Classic
                && (f.name == "chmod" || (ins.keyword == Keyword::Run && f.name == "mount"));
            if refused {
                return Err(PlanError::NeedsBuildKit {
                    name: name.into(),
                    line: ins.line,
                    flag: f.name.clone(),
                });
            }
            if !allowed_flags(ins.keyword, opts.builder).contains(&f.name.as_str()) {
                return Err(PlanError::UnknownFlag {
                    name: name.into(),
                    line: ins.line,
                    flag: f.name.clone(),
                });
            }
        }
    }

    // Meta args: name → value (override, else expanded default).
    let mut meta: Vec<(String, String)> = Vec::new();
    let mut meta_declared: Vec<(String, Option<String>)> = Vec::new();
    let mut stage_states: Vec<(Option<String>, State)> = Vec::new();
    let mut state = State::new(ZERO);
    let mut out = Vec::with_capacity(steps.len());
    let bk = opts.builder == Builder::BuildKit;
    // BuildKit: per stage (in `stage_states` order), the stages it reads.
    let mut stage_deps: Vec<Vec<usize>> = Vec::new();
    let stage_index = |states: &[(Option<String>, State)], from: &str| -> Option<usize> {
        let lower = from.to_ascii_lowercase();
        states
            .iter()
            .rposition(|(n, _)| n.as_deref() == Some(&lower))
            .or_else(|| from.parse::<usize>().ok().filter(|&i| i + 1 < states.len()))
    };

    for s in &steps {
        let ins = s.instruction;
        let mut step = PlanStep {
            index: s.number,
            total: s.total,
            line: ins.line,
            instruction: ins.original.clone(),
            key: String::new(),
            cacheable: true,
            sources: Vec::new(),
            from: None,
            files: 0,
            build_args: Vec::new(),
            remote: false,
            image: None,
            env: Vec::new(),
            skipped: false,
        };
        let kw = ins.keyword.as_str().as_bytes();
        // The key before this step: BuildKit keeps it for instructions that make no vertex.
        let prev_key = state.key;

        if s.stage.is_none() {
            // A meta ARG: no layer, no cache; it only feeds FROM lines.
            for (k, v) in ins.key_values(esc).unwrap_or_default() {
                let k = expand(&k, &meta, esc).map_err(|e| xerr(ins, e))?;
                let dflt = match v {
                    Some(v) => Some(expand(&v, &meta, esc).map_err(|e| xerr(ins, e))?),
                    None => None,
                };
                meta_declared.push((k.clone(), dflt.clone()));
                if let Some(v) = override_of(&k).or(dflt) {
                    meta.push((k, v));
                }
            }
            step.cacheable = false;
            step.key = hex(&chain(&ZERO, &[b"meta-arg", ins.args.as_bytes()]));
            out.push(step);
            continue;
        }

        match ins.keyword {
            Keyword::From => {
                let (image, stage_name) = ins.from_parts().unwrap_or_default();
                let raw = image;
                let image = expand(&raw, &meta, esc).map_err(|e| xerr(ins, e))?;
                if image.is_empty() {
                    return Err(PlanError::Expand {
                        name: name.into(),
                        line: ins.line,
                        message: format!("base name ({raw}) should not be blank"),
                    });
                }
                let lower = image.to_ascii_lowercase();
                let parent_index = stage_states
                    .iter()
                    .rposition(|(n, _)| n.as_deref() == Some(&lower));
                let parent = parent_index.map(|i| stage_states[i].1.clone());
                stage_deps.push(parent_index.into_iter().collect());
                state = match parent {
                    Some(mut st) => {
                        st.key = chain(&st.key, &[b"FROM-stage"]);
                        st.args.clear();
                        st
                    }
                    None => {
                        if !lower.eq("scratch") {
                            step.image = Some(image.clone());
                        }
                        State::new(chain(
                            &ZERO,
                            &[
                                b"FROM",
                                image.as_bytes(),
                                ins.flag("platform").unwrap_or("").as_bytes(),
                            ],
                        ))
                    }
                };
                stage_states.push((stage_name, state.clone()));
                step.cacheable = false;
            }
            Keyword::Arg => {
                let vars = state.vars();
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec()];
                for (k, v) in ins.key_values(esc).unwrap_or_default() {
                    let k = expand(&k, &vars, esc).map_err(|e| xerr(ins, e))?;
                    let dflt = match v {
                        Some(v) => Some(expand(&v, &vars, esc).map_err(|e| xerr(ins, e))?),
                        None => None,
                    };
                    parts.push(match &dflt {
                        Some(d) => format!("{k}={d}").into_bytes(),
                        None => k.clone().into_bytes(),
                    });
                    let value = override_of(&k).or(dflt.clone()).or_else(|| {
                        meta_declared
                            .iter()
                            .rev()
                            .find(|(n, _)| *n == k)
                            .and_then(|_| meta.iter().rev().find(|(n, _)| *n == k))
                            .map(|(_, v)| v.clone())
                    });
                    if let Some(v) = &value {
                        buildkit::add_or_replace(&mut state.llb_env, k.clone(), v.clone());
                    }
                    match state.args.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 = value,
                        None => state.args.push((k, value)),
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
            }
            Keyword::Env | Keyword::Label => {
                let vars = state.vars();
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec()];
                let mut updates = Vec::new();
                for (k, v) in ins.key_values(esc).unwrap_or_default() {
                    let k = expand(&k, &vars, esc).map_err(|e| xerr(ins, e))?;
                    let v =
                        expand(v.as_deref().unwrap_or(""), &vars, esc).map_err(|e| xerr(ins, e))?;
                    parts.push(k.clone().into_bytes());
                    parts.push(v.clone().into_bytes());
                    updates.push((k, v));
                }
                if ins.keyword == Keyword::Env {
                    for (k, v) in updates {
                        buildkit::add_or_replace(&mut state.llb_env, k.clone(), v.clone());
                        state.set_env(k, v);
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
            }
            Keyword::Run if bk => {
                let deps = stage_deps.last_mut();
                let mut parts = run_parts_buildkit(&state, ins, manifest, &mut step, |from| {
                    stage_index(&stage_states, from).map(|i| (i, stage_states[i].1.key))
                })
                .map_err(|e| select_error(name, ins, e))?;
                if let Some(d) = deps {
                    d.append(&mut parts.1);
                }
                let refs: Vec<&[u8]> = parts.0.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
                step.build_args = state.run_args();
            }
            Keyword::Run => {
                let cmd = command(&state, ins);
                let args = state.run_args();
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec(), format!("|{}", args.len()).into()];
                parts.extend(args.iter().map(|a| a.clone().into_bytes()));
                parts.extend(cmd.into_iter().map(String::into_bytes));
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
                step.build_args = args;
            }
            Keyword::Cmd | Keyword::Entrypoint => {
                let cmd = command(&state, ins);
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec()];
                parts.extend(cmd.into_iter().map(String::into_bytes));
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
            }
            Keyword::Shell => {
                state.shell = ins.json.clone().unwrap_or_default();
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec()];
                parts.extend(state.shell.iter().map(|s| s.clone().into_bytes()));
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
            }
            Keyword::Workdir => {
                let vars = state.vars();
                let p = expand(&ins.args, &vars, esc).map_err(|e| xerr(ins, e))?;
                state.workdir = normalize_workdir(&state.workdir, &p);
                state.key = chain(&state.key, &[kw, state.workdir.as_bytes()]);
            }
            Keyword::Expose => {
                let vars = state.vars();
                let mut ports = Vec::new();
                for w in ins.words() {
                    ports.extend(expand_words(&w, &vars, esc).map_err(|e| xerr(ins, e))?);
                }
                state.key = chain(&state.key, &[kw, ports.join(" ").as_bytes()]);
            }
            Keyword::User if bk => {
                let vars = state.vars();
                state.user = expand(&ins.args, &vars, esc).map_err(|e| xerr(ins, e))?;
            }
            Keyword::User | Keyword::Stopsignal | Keyword::Volume => {
                let vars = state.vars();
                let mut parts: Vec<Vec<u8>> = vec![kw.to_vec()];
                let words = if ins.keyword == Keyword::Volume {
                    ins.words()
                } else {
                    vec![ins.args.clone()]
                };
                for w in words {
                    parts.push(
                        expand(&w, &vars, esc)
                            .map_err(|e| xerr(ins, e))?
                            .into_bytes(),
                    );
                }
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                state.key = chain(&state.key, &refs);
            }
            Keyword::Maintainer | Keyword::Onbuild | Keyword::Healthcheck => {
                let flags: Vec<String> = ins
                    .flags
                    .iter()
                    .map(|f| format!("{}={}", f.name, f.value.as_deref().unwrap_or("")))
                    .collect();
                state.key = chain(
                    &state.key,
                    &[kw, flags.join(" ").as_bytes(), ins.args.as_bytes()],
                );
            }
            Keyword::Copy | Keyword::Add => {
                let vars = state.vars();
                let mut words = ins.words();
                let dest_raw = words.pop().unwrap_or_default();
                let dest = expand(&dest_raw, &vars, esc).map_err(|e| xerr(ins, e))?;
                let mut sources = Vec::with_capacity(words.len());
                for w in &words {
                    sources.push(expand(w, &vars, esc).map_err(|e| xerr(ins, e))?);
                }
                let chown = match ins.flag("chown") {
                    Some(c) => format!(
                        "--chown={}",
                        expand(c, &vars, esc).map_err(|e| xerr(ins, e))?
                    ),
                    None => String::new(),
                };
                let src_hash = match ins.flag("from") {
                    Some(from) => {
                        step.from = Some(from.to_string());
                        let found = stage_index(&stage_states, from);
                        if let (Some(i), Some(d)) = (found, stage_deps.last_mut()) {
                            d.push(i);
                        }
                        // The stage's final key stands for its filesystem: content we cannot
                        // see offline changes only when one of its steps misses.
                        let base = match found.map(|i| &stage_states[i]) {
                            Some((_, st)) => chain(&st.key, &[b"from-stage"]),
                            None => {
                                step.image = Some(from.to_string());
                                chain(&ZERO, &[b"from-image", from.as_bytes()])
                            }
                        };
                        let refs: Vec<&[u8]> = sources.iter().map(|s| s.as_bytes()).collect();
                        chain(&base, &refs)
                    }
                    None => {
                        step.remote =
                            ins.keyword == Keyword::Add && sources.iter().any(|s| is_remote(s));
                        let sel = match (ins.keyword, bk) {
                            (Keyword::Add, _) => select_add(manifest, &sources, opts.builder),
                            (_, true) => buildkit::select(manifest, &sources),
                            (_, false) => select(manifest, &sources),
                        };
                        let sel = sel.map_err(|e| select_error(name, ins, e))?;
                        step.files = sel
                            .entries
                            .iter()
                            .filter(|&&i| manifest.entries[i].kind != EntryKind::Dir)
                            .count();
                        sel.hash
                    }
                };
                state.key = if bk {
                    // The copy op: the resolved destination and --chmod; not the env.
                    let chmod = ins.flag("chmod").unwrap_or("");
                    let dest = resolve_dest(&state.workdir, &dest);
                    chain(
                        &prev_key,
                        &[
                            b"bk-copy",
                            kw,
                            chown.as_bytes(),
                            chmod.as_bytes(),
                            &src_hash,
                            dest.as_bytes(),
                        ],
                    )
                } else {
                    chain(
                        &state.key,
                        &[kw, chown.as_bytes(), &src_hash, dest.as_bytes()],
                    )
                };
                step.sources = sources;
            }
        }
        if bk {
            match ins.keyword {
                Keyword::Run | Keyword::Copy | Keyword::Add | Keyword::From => {}
                // WORKDIR makes a mkdir vertex (with the user), except for `/`.
                Keyword::Workdir if state.workdir != "/" => {
                    state.key = chain(
                        &prev_key,
                        &[b"bk-mkdir", state.workdir.as_bytes(), state.user.as_bytes()],
                    );
                }
                _ => {
                    state.key = prev_key;
                    step.cacheable = false;
                }
            }
            if ins.keyword == Keyword::Run {
                step.env = state
                    .llb_env
                    .iter()
                    .filter(|(k, _)| state.env.iter().any(|(e, _)| e == k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
            }
        }
        if let Some(last) = stage_states.last_mut() {
            last.1 = state.clone();
        }
        step.key = hex(&state.key);
        out.push(step);
    }

    if bk && !stage_deps.is_empty() {
        let needed = buildkit::needed_stages(&stage_deps, stage_deps.len() - 1);
        for (step, s) in out.iter_mut().zip(&steps) {
            if s.stage
                .is_some_and(|i| !needed.get(i).copied().unwrap_or(true))
            {
                step.skipped = true;
                step.cacheable = false;
            }
        }
    }

    Ok(Plan {
        context_digest: manifest.digest(),
        dockerfile: df.name.clone(),
        target: opts.target.clone(),
        builder: opts.builder,
        steps: out,
        manifest: None,
    })
}

/// The key parts of a BuildKit `RUN` (its exec op: command, env, cwd, user, mounts and the
/// `--network`/`--security` flags), and the stages its mounts read. A bind mount of the
/// context is keyed by its source's content checksum; its sources go to `step.sources`.
fn run_parts_buildkit(
    state: &State,
    ins: &Instruction,
    manifest: &Manifest,
    step: &mut PlanStep,
    stage: impl Fn(&str) -> Option<(usize, Hash)>,
) -> Result<(Vec<Vec<u8>>, Vec<usize>), SelectError> {
    let mut parts: Vec<Vec<u8>> = vec![b"bk-run".to_vec()];
    let cmd = command(state, ins);
    parts.push(format!("|{}", cmd.len()).into_bytes());
    parts.extend(cmd.into_iter().map(String::into_bytes));
    parts.push(format!("env|{}", state.llb_env.len()).into_bytes());
    for (k, v) in &state.llb_env {
        parts.push(format!("{k}={v}").into_bytes());
    }
    let cwd = if state.workdir.is_empty() {
        "/"
    } else {
        state.workdir.as_str()
    };
    parts.push(cwd.as_bytes().to_vec());
    parts.push(state.user.as_bytes().to_vec());
    let mut deps = Vec::new();
    for f in &ins.flags {
        let value = f.value.as_deref().unwrap_or("");
        parts.push(format!("--{}={value}", f.name).into_bytes());
        if f.name != "mount" {
            continue;
        }
        let m = buildkit::Mount::parse(value);
        if m.reads_context() {
            let sel = buildkit::select(manifest, std::slice::from_ref(&m.source))?;
            step.files += sel
                .entries
                .iter()
                .filter(|&&i| manifest.entries[i].kind != EntryKind::Dir)
                .count();
            parts.push(sel.hash.to_vec());
            step.sources.push(m.source);
        } else if let Some(from) = &m.from {
            match stage(from) {
                Some((i, key)) => {
                    deps.push(i);
                    parts.push(key.to_vec());
                }
                None => step.image = Some(from.clone()),
            }
        }
    }
    Ok((parts, deps))
}

/// A `COPY` destination as BuildKit's copy op holds it: relative to the `WORKDIR`.
fn resolve_dest(workdir: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let base = if workdir.is_empty() { "/" } else { workdir };
    format!("{}/{dest}", base.trim_end_matches('/'))
}

fn select_error(name: &str, ins: &Instruction, e: SelectError) -> PlanError {
    let (name, line, keyword) = (name.to_string(), ins.line, ins.keyword);
    match e {
        SelectError::NotFound(p) => PlanError::NotFound {
            name,
            line,
            keyword,
            source_path: p,
        },
        SelectError::Outside(p) => PlanError::Outside {
            name,
            line,
            keyword,
            source_path: p,
        },
        SelectError::NoMatch(p) => PlanError::NoMatch {
            name,
            line,
            keyword,
            pattern: p,
        },
    }
}

/// The command Docker records: exec form as is, shell form as `shell + [text]`.
fn command(state: &State, ins: &Instruction) -> Vec<String> {
    match &ins.json {
        Some(v) => v.clone(),
        None => {
            let mut c = state.shell.clone();
            c.push(ins.args.clone());
            c
        }
    }
}

fn normalize_workdir(current: &str, requested: &str) -> String {
    let joined = if requested.starts_with('/') {
        requested.to_string()
    } else {
        format!("/{current}/{requested}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `ADD` sources: URLs cannot be hashed offline; they enter the key by their text (Docker
/// downloads them on every build, so the step is marked [`PlanStep::remote`] and `explain`
/// reports it as "may rebuild"). Only http(s) counts: the classic builder treats anything else,
/// `git@…` included, as a path in the context.
fn select_add(
    m: &Manifest,
    sources: &[String],
    builder: Builder,
) -> Result<Selection, SelectError> {
    let select = |m: &Manifest, s: &[String]| match builder {
        Builder::Classic => select(m, s),
        Builder::BuildKit => buildkit::select(m, s),
    };
    let (urls, local): (Vec<&String>, Vec<&String>) = sources.iter().partition(|s| is_remote(s));
    if urls.is_empty() {
        return select(m, sources);
    }
    let local: Vec<String> = local.into_iter().cloned().collect();
    let sel = if local.is_empty() {
        Selection {
            hash: ZERO,
            entries: Vec::new(),
        }
    } else {
        select(m, &local)?
    };
    let mut parts: Vec<&[u8]> = urls.iter().map(|u| u.as_bytes()).collect();
    parts.push(&sel.hash);
    Ok(Selection {
        hash: chain(&ZERO, &parts),
        entries: sel.entries,
    })
}

/// Selects `COPY` sources in the manifest and computes what Docker's source hash depends on.
pub fn select<M: Records + ?Sized>(m: &M, sources: &[String]) -> Result<Selection, SelectError> {
    let mut infos: Vec<Hash> = Vec::new();
    let mut entries: Vec<usize> = Vec::new();
    for src in sources {
        let p = pathrules::trim_copy_source(src.as_bytes());
        if pathrules::has_wildcards(p) {
            // Docker ignores a malformed pattern here: it matches nothing.
            let glob = pathrules::Glob::new(p).map_err(|_| SelectError::NoMatch(src.clone()))?;
            let mut matched: Vec<usize> = (0..m.len())
                .filter(|&i| glob.matches(m.at(i).path_bytes()))
                .collect();
            if matched.is_empty() {
                return Err(SelectError::NoMatch(src.clone()));
            }
            // Docker walks the tree (filepath.WalkDir: per-directory name order).
            matched.sort_by(|&a, &b| walk_order(m.at(a).path_bytes(), m.at(b).path_bytes()));
            for i in matched {
                let rel = m.at(i).path.to_string_lossy().into_owned();
                infos.push(
                    copy_info(m, &rel, &mut entries).map_err(|_| SelectError::NotFound(rel))?,
                );
            }
        } else {
            let p = String::from_utf8_lossy(p);
            infos.push(copy_info(m, &p, &mut entries).map_err(|e| match e {
                SelectError::NotFound(_) => SelectError::NotFound(src.clone()),
                SelectError::Outside(_) => SelectError::Outside(src.clone()),
                e => e,
            })?);
        }
    }
    entries.sort_unstable();
    entries.dedup();
    let hash = if infos.len() == 1 {
        infos[0]
    } else {
        let refs: Vec<&[u8]> = infos.iter().map(|h| h.as_slice()).collect();
        chain(&ZERO, &[&[b"multi".as_slice()], refs.as_slice()].concat())
    };
    Ok(Selection { hash, entries })
}

/// Compares paths in `filepath.WalkDir` order: component by component.
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// The sum Docker uses for the entry at `rel` (`archiveContext.Hash`): that of what it resolves
/// to, or the path itself when it resolves to nothing. `None` when Docker skips it (link loop).
fn entry_sum<M: Records + ?Sized>(m: &M, rel: &[u8]) -> Option<Hash> {
    entry_sum_at(m, rel, None)
}

/// [`entry_sum`] for an entry already looked up: a walk never passes through a symlink, so
/// only a symlink itself needs resolving (the common case is one hash, no lookups).
fn entry_sum_at<M: Records + ?Sized>(
    m: &M,
    rel: &[u8],
    known: Option<&ManifestEntry>,
) -> Option<Hash> {
    if let Some(e) = known.filter(|e| e.kind != EntryKind::Symlink) {
        return Some(record(e));
    }
    match resolve_in(m, rel) {
        Resolved::Loop => None,
        Resolved::Path(p) => match m.lookup(&p) {
            Some(t) => Some(record(t)),
            None => Some(chain(&ZERO, &[b"unresolved", rel])),
        },
    }
}

fn record(e: &ManifestEntry) -> Hash {
    // One `blake3::hash` of the whole record: the same bytes as feeding it piecewise, without
    // a `Hasher` per entry (this runs once per file of a `COPY .`).
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.clear();
        buf.extend_from_slice(b"entry");
        e.encode_into(&mut buf);
        *blake3::hash(&buf).as_bytes()
    })
}

/// One copy source (no wildcards): `file:` sum, or `dir:` sorted sums of everything below.
fn copy_info<M: Records + ?Sized>(
    m: &M,
    rel: &str,
    entries: &mut Vec<usize>,
) -> Result<Hash, SelectError> {
    // Docker joins the source with the context root, which cleans it lexically: `a/../b` is
    // `b` whether or not `a` exists.
    let cleaned = pathrules::clean(rel.as_bytes());
    if pathrules::escapes_root(&cleaned) {
        return Err(SelectError::Outside(rel.into()));
    }
    let rel_b = if cleaned == b"." { Vec::new() } else { cleaned };
    let Resolved::Path(target) = resolve_in(m, &rel_b) else {
        return Err(SelectError::NotFound(rel.into()));
    };
    let is_dir = target.is_empty() || m.lookup(&target).is_some_and(|e| e.kind == EntryKind::Dir);
    if !is_dir {
        let i = m
            .find(&target)
            .map_err(|_| SelectError::NotFound(rel.into()))?;
        entries.push(i);
        if let Ok(j) = m.find(&rel_b) {
            entries.push(j);
        }
        let sum = entry_sum(m, &rel_b).unwrap_or(ZERO);
        return Ok(chain(&ZERO, &[b"file", &sum]));
    }
    // A directory: itself (unless the root) and everything below, as filepath.WalkDir sees it.
    let (lo, hi) = if target.is_empty() {
        (0, m.len())
    } else {
        let lo = m.lower_bound(&target);
        let mut prefix = target.clone();
        prefix.push(b'/');
        // Children sort after "target/" and before "target0" ('/' + 1).
        let mut end = target.clone();
        end.push(b'/' + 1);
        let hi = m.lower_bound(&end);
        (lo, hi)
    };
    let first = entries.len();
    entries.extend((lo..hi).filter(|&i| {
        let p = m.at(i).path_bytes();
        target.is_empty()
            || p == target.as_slice()
            || (p.len() > target.len() && p.starts_with(&target) && p[target.len()] == b'/')
    }));
    // One hash per entry below: spread over the current rayon pool (their order is sorted
    // away anyway).
    // Collected in place (an indexed map, not a filter: no list of chunks copied together);
    // `None`s sort first and are skipped, the rest in the order of their sums.
    let mut sums: Vec<Option<Hash>> = entries[first..]
        .par_iter()
        .with_min_len(1024)
        .map(|&i| entry_sum_at(m, m.at(i).path_bytes(), Some(m.at(i))))
        .collect();
    sums.par_sort_unstable();
    let mut h = blake3::Hasher::new();
    h.update(b"dir");
    for s in sums.iter().flatten() {
        h.update(s);
    }
    Ok(*h.finalize().as_bytes())
}

/// Paths (relative) of manifest entries, for messages.
pub fn paths(m: &Manifest, idx: &[usize]) -> Vec<PathBuf> {
    idx.iter().map(|&i| m.entries[i].path.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use crate::key::testutil::{dir, file, link, manifest as man};

    fn base() -> Vec<ManifestEntry> {
        vec![
            file("Dockerfile", 0o644, "x"),
            dir("app"),
            file("app/main.py", 0o644, "print(1)"),
            dir("app/empty"),
            file("req.txt", 0o644, "flask"),
        ]
    }
    const DF: &str =
        "FROM img\nENV A=1\nCOPY req.txt /r/\nRUN pip install\nCOPY app/ /app/\nRUN true\n";

    fn keys(df: &str, m: &Manifest, args: &[(&str, &str)]) -> Vec<String> {
        let df = parse(df, "Dockerfile").unwrap();
        let opts = PlanOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: None,
            builder: Builder::Classic,
        };
        plan(&df, m, &opts)
            .unwrap()
            .steps
            .into_iter()
            .map(|s| s.key)
            .collect()
    }

    /// Index (0-based) of the first step whose key differs.
    fn first_diff(a: &[String], b: &[String]) -> Option<usize> {
        a.iter().zip(b).position(|(x, y)| x != y)
    }

    #[test]
    fn content_mode_and_structure_changes_hit_the_right_step() {
        let k0 = keys(DF, &man(base()), &[]);
        assert_eq!(k0.len(), 6);
        let mut m = base();
        m[2].hash = Some([9; 32]);
        assert_eq!(first_diff(&k0, &keys(DF, &man(m), &[])), Some(4));
        let mut m = base();
        m[2].mode = 0o755;
        assert_eq!(first_diff(&k0, &keys(DF, &man(m), &[])), Some(4));
        let mut m = base();
        m.push(dir("app/empty/new"));
        assert_eq!(
            first_diff(&k0, &keys(DF, &man(m), &[])),
            Some(4),
            "empty dirs count"
        );
        let mut m = base();
        m[4].hash = Some([1; 32]);
        assert_eq!(first_diff(&k0, &keys(DF, &man(m), &[])), Some(2));
        // A file outside every COPY source changes nothing.
        let mut m = base();
        m.push(file("notes.md", 0o644, "x"));
        assert_eq!(first_diff(&k0, &keys(DF, &man(m), &[])), None);
        // Renaming inside a copied dir changes it.
        let mut m = base();
        m[2].path = "app/main2.py".into();
        assert_eq!(first_diff(&k0, &keys(DF, &man(m), &[])), Some(4));
    }

    #[test]
    fn build_args_hit_run_not_arg() {
        let df = "FROM img\nARG V=1\nCOPY app/ /app/\nRUN true\n";
        let k0 = keys(df, &man(base()), &[]);
        let k1 = keys(df, &man(base()), &[("V", "2")]);
        assert_eq!(first_diff(&k0, &k1), Some(3));
        // An undeclared build arg changes nothing; ENV shadows an ARG in RUN.
        assert_eq!(
            first_diff(&k0, &keys(df, &man(base()), &[("OTHER", "2")])),
            None
        );
        let df2 = "FROM img\nARG V=1\nENV V=fixed\nRUN true\n";
        assert_eq!(
            first_diff(
                &keys(df2, &man(base()), &[]),
                &keys(df2, &man(base()), &[("V", "2")])
            ),
            None
        );
        // ...but ENV that uses the ARG changes at the ENV.
        let df3 = "FROM img\nARG V=1\nENV W=$V\nRUN true\n";
        assert_eq!(
            first_diff(
                &keys(df3, &man(base()), &[]),
                &keys(df3, &man(base()), &[("V", "2")])
            ),
            Some(2)
        );
    }

    #[test]
    fn equivalent_spellings_share_keys() {
        let m = man(base());
        let a = keys("FROM img\nENV A=1\nCOPY app/ /app/\nRUN true\n", &m, &[]);
        let b = keys(
            "FROM img\nENV A=\"1\"\nCOPY  ./app/  /app/\nRUN  true \n",
            &m,
            &[],
        );
        assert_eq!(a, b);
        let c = keys(
            "FROM img\nENV A=1\nCOPY app/ /app/\nRUN  true && true\n",
            &m,
            &[],
        );
        assert_eq!(first_diff(&a, &c), Some(3));
        let w1 = keys("FROM img\nWORKDIR /srv\nWORKDIR app\n", &m, &[]);
        let w2 = keys("FROM img\nWORKDIR /srv/\nWORKDIR ./app/\n", &m, &[]);
        assert_eq!(w1, w2);
    }

    #[test]
    fn symlinks_hash_as_their_target_dangling_by_path() {
        let mut v = base();
        v.push(link("app/lnk", "main.py"));
        v.push(link("app/dang", "nowhere1"));
        let k0 = keys(DF, &man(v.clone()), &[]);
        let mut w = v.clone();
        let n = w.len() - 1;
        w[n].link_target = Some("nowhere2".into());
        assert_eq!(
            first_diff(&k0, &keys(DF, &man(w), &[])),
            None,
            "Docker hits on a dangling retarget"
        );
        let mut w = v.clone();
        w.push(file("app/other.py", 0o644, "print(1)"));
        let k1 = keys(DF, &man(w.clone()), &[]);
        let n = w
            .iter()
            .position(|e| e.path == std::path::Path::new("app/lnk"))
            .unwrap();
        w[n].link_target = Some("other.py".into());
        assert_eq!(first_diff(&k1, &keys(DF, &man(w), &[])), Some(4));
    }

    #[test]
    fn files_column_counts_files_not_directories() {
        // `app/` selects app, app/main.py and app/empty: one file.
        let p = plan(
            &parse(DF, "Dockerfile").unwrap(),
            &man(base()),
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.steps[4].instruction, "COPY app/ /app/");
        assert_eq!(p.steps[4].files, 1);
    }

    #[test]
    fn wildcards_missing_sources_and_flags() {
        let m = man(base());
        let df = parse("FROM img\nCOPY *.txt /r/\n", "Dockerfile").unwrap();
        let p = plan(&df, &m, &PlanOptions::default()).unwrap();
        assert_eq!(p.steps[1].files, 1);
        let df = parse("FROM img\nCOPY nope.txt /r/\n", "Dockerfile").unwrap();
        let e = plan(&df, &m, &PlanOptions::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("Dockerfile:2: COPY nope.txt"),
            "{e}"
        );
        let df = parse("FROM img\nCOPY *.md /r/\n", "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::NoMatch { .. })
        ));
        let df = parse("FROM img\nCOPY ../x /r/\n", "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::Outside { .. })
        ));
        let df = parse("FROM img\nCOPY --chmod=755 app /r/\n", "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::NeedsBuildKit { .. })
        ));
        let df = parse("FROM img\nCOPY --link app /r/\n", "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::UnknownFlag { .. })
        ));
        // Source order matters for several sources.
        let a = keys("FROM img\nCOPY req.txt app /d/\n", &m, &[]);
        let b = keys("FROM img\nCOPY app req.txt /d/\n", &m, &[]);
        assert_ne!(a[1], b[1]);
    }

    #[test]
    fn sources_are_cleaned_as_docker_joins_them() {
        let m = man(base());
        let plain = keys("FROM img\nCOPY req.txt /r/\n", &m, &[]);
        // `nope` does not exist: the join with the root removes it before any lookup.
        for spelled in [
            "./nope/../req.txt",
            "/req.txt",
            "app/../req.txt",
            "./req.txt/",
        ] {
            let k = keys(&format!("FROM img\nCOPY {spelled} /r/\n"), &m, &[]);
            assert_eq!(k[1], plain[1], "{spelled}");
        }
        // A wildcard source is matched as written: `..` never matches a context path.
        let df = parse("FROM img\nCOPY ./nope/../*.txt /r/\n", "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::NoMatch { .. })
        ));
    }

    /// Issue 12 §2: a backtracking glob took minutes on these; 300,000 `*` overflowed.
    #[test]
    fn hostile_wildcard_sources_finish_at_once() {
        let m = man(base());
        let start = std::time::Instant::now();
        let df = format!("FROM img\nCOPY {}b /r/\n", "*a".repeat(20_000));
        let df = parse(&df, "Dockerfile").unwrap();
        assert!(matches!(
            plan(&df, &m, &PlanOptions::default()),
            Err(PlanError::NoMatch { .. })
        ));
        let df = format!("FROM img\nCOPY {}.txt /r/\n", "*".repeat(60_000));
        let p = plan(
            &parse(&df, "Dockerfile").unwrap(),
            &m,
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.steps[1].files, 1);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    /// Issue 12 §2: these aborted `plan` (stack overflow) or took 2 GB.
    #[test]
    fn hostile_expansions_fail_with_their_line() {
        let m = man(base());
        let err = |df: &str| {
            plan(
                &parse(df, "Dockerfile").unwrap(),
                &m,
                &PlanOptions::default(),
            )
            .unwrap_err()
            .to_string()
        };
        let deep = format!("{}x{}", "${a:-".repeat(5_000), "}".repeat(5_000));
        let e = err(&format!("FROM img\nENV A={deep}\n"));
        assert!(
            e.starts_with("Dockerfile:2: substitutions nested more than"),
            "{e}"
        );
        let mut df = String::from("FROM img\nARG B=bb\n");
        for _ in 0..28 {
            df.push_str("ARG B=$B$B\n");
        }
        let e = err(&df);
        assert!(
            e.starts_with("Dockerfile:2") && e.contains("larger than 1 MiB"),
            "{e}"
        );
        // Many values under the cap still add up: 150 copies of a 512 KiB value.
        let mut df = String::from("FROM img\nARG B=bb\n");
        for _ in 0..18 {
            df.push_str("ARG B=$B$B\n");
        }
        for i in 0..150 {
            df.push_str(&format!("ENV C{i}=$B\n"));
        }
        let e = err(&df);
        assert!(e.contains("in total"), "{e}");
        // Docker: "base name (${UNSET}) should not be blank".
        let e = err("FROM ${UNSET}\nRUN true\n");
        assert_eq!(e, "Dockerfile:1: base name (${UNSET}) should not be blank");
        let e = err("ARG E=\nFROM $E\n");
        assert_eq!(e, "Dockerfile:2: base name ($E) should not be blank");
    }

    #[test]
    fn multi_stage_from_and_copy_from() {
        let m = man(base());
        let df = "ARG TAG=1\nFROM img:$TAG AS build\nRUN make\nFROM img2\nCOPY --from=build /out /out\nCMD [\"run\"]\n";
        let k0 = keys(df, &m, &[]);
        assert_eq!(k0.len(), 6);
        let k1 = keys(&df.replace("RUN make", "RUN make all"), &m, &[]);
        assert_eq!(first_diff(&k0, &k1), Some(2));
        assert_ne!(k0[4], k1[4], "COPY --from follows the source stage");
        assert_eq!(k0[3], k1[3]);
        let k2 = keys(df, &m, &[("TAG", "2")]);
        assert_eq!(first_diff(&k0, &k2), Some(1), "meta arg changes FROM");
        let dfp = parse(df, "Dockerfile").unwrap();
        let p = plan(&dfp, &m, &PlanOptions::default()).unwrap();
        assert!(!p.steps[0].cacheable && !p.steps[1].cacheable && p.steps[2].cacheable);
        assert_eq!(p.steps[4].from.as_deref(), Some("build"));
        // The images the engine resolves (for the no-op build's id check): expanded, and
        // never a stage or scratch.
        let images: Vec<Option<&str>> = p.steps.iter().map(|s| s.image.as_deref()).collect();
        assert_eq!(
            images,
            [None, Some("img:1"), None, Some("img2"), None, None]
        );
        let df = "FROM scratch\nCOPY --from=other:2 /x /x\n";
        let p = plan(
            &parse(df, "Dockerfile").unwrap(),
            &m,
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.steps[0].image, None);
        assert_eq!(p.steps[1].image.as_deref(), Some("other:2"));
    }

    fn bk(df: &str, m: &Manifest, args: &[(&str, &str)]) -> Plan {
        let opts = PlanOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: None,
            builder: Builder::BuildKit,
        };
        plan(&parse(df, "Dockerfile").unwrap(), m, &opts).unwrap()
    }

    /// The first cacheable step (1-based) whose key `b` does not share with `a`.
    fn first_bk_miss(a: &Plan, b: &Plan) -> Option<usize> {
        let known: Vec<&str> = a.steps.iter().map(|s| s.key.as_str()).collect();
        b.steps
            .iter()
            .find(|s| s.cacheable && !known.contains(&s.key.as_str()))
            .map(|s| s.index)
    }

    /// Each case is a row of the README's "Classic vs BuildKit" table, verified on the engine.
    #[test]
    fn buildkit_metadata_makes_no_vertex_but_feeds_later_runs() {
        let m = man(base());
        let df = "FROM img\nARG U=1\nENV E=1\nLABEL l=1\nEXPOSE 1\nUSER 1\nCOPY app/ /app/\nRUN echo one\n";
        let p0 = bk(df, &m, &[]);
        let cacheable: Vec<bool> = p0.steps.iter().map(|s| s.cacheable).collect();
        assert_eq!(
            cacheable,
            [false, false, false, false, false, false, true, true]
        );
        assert_eq!(p0.steps[7].env, ["E=1"]);
        assert_eq!(p0.steps[7].build_args, ["U=1"]);
        let edit = |a: &str, b: &str| first_bk_miss(&p0, &bk(&df.replace(a, b), &m, &[]));
        // ENV, ARG and USER miss at the RUN, never at the COPY; LABEL and EXPOSE nowhere.
        assert_eq!(edit("ENV E=1", "ENV E=2"), Some(8));
        assert_eq!(edit("ARG U=1", "ARG U=2"), Some(8));
        assert_eq!(edit("USER 1", "USER 2"), Some(8));
        assert_eq!(edit("LABEL l=1", "LABEL l=2"), None);
        assert_eq!(edit("EXPOSE 1", "EXPOSE 2"), None);
        assert_eq!(first_bk_miss(&p0, &bk(df, &m, &[("U", "2")])), Some(8));
        assert_eq!(first_bk_miss(&p0, &bk(df, &m, &[("Z", "2")])), None);
        // ENV shadowing an ARG: the build arg no longer reaches the RUN.
        let shadow = "FROM img\nARG V=1\nENV V=fixed\nRUN echo one\n";
        let s0 = bk(shadow, &m, &[]);
        assert_eq!(first_bk_miss(&s0, &bk(shadow, &m, &[("V", "2")])), None);
        // A meta ARG reaches a RUN only when the stage declares it again.
        let meta = "ARG M=1\nFROM img\nRUN echo one\n";
        let m0 = bk(meta, &m, &[]);
        assert_eq!(first_bk_miss(&m0, &bk(meta, &m, &[("M", "2")])), None);
        let meta = "ARG M=1\nFROM img\nARG M\nRUN echo one\n";
        let m0 = bk(meta, &m, &[]);
        assert_eq!(first_bk_miss(&m0, &bk(meta, &m, &[("M", "2")])), Some(4));
        // The classic builder misses at the metadata lines themselves.
        let classic = keys(df, &m, &[]);
        let changed = keys(&df.replace("LABEL l=1", "LABEL l=2"), &m, &[]);
        assert_eq!(
            first_diff(&classic, &changed),
            Some(3),
            "0-based: the LABEL"
        );
    }

    #[test]
    fn buildkit_workdir_is_a_vertex_except_the_root() {
        let m = man(base());
        let df = "FROM img\nWORKDIR /w1\nCOPY app/ app/\nRUN echo one\n";
        let p0 = bk(df, &m, &[]);
        assert!(p0.steps[1].cacheable);
        assert_eq!(
            first_bk_miss(&p0, &bk(&df.replace("/w1", "/w2"), &m, &[])),
            Some(2)
        );
        let root = bk("FROM img\nWORKDIR /\nRUN echo one\n", &m, &[]);
        assert!(!root.steps[1].cacheable);
    }

    #[test]
    fn buildkit_copy_keys_follow_the_content_checksum() {
        let df = "FROM img\nCOPY app/ /app/\nRUN echo one\nCOPY . /src/\n";
        let mut v = base();
        v.push(link("app/dang", "nowhere"));
        v.push(dir("app/pkg"));
        v.push(file("app/pkg/mod.py", 0o644, "m"));
        let p0 = bk(df, &man(v.clone()), &[]);
        let with = |f: &dyn Fn(&mut Vec<ManifestEntry>)| {
            let mut w = v.clone();
            f(&mut w);
            first_bk_miss(&p0, &bk(df, &man(w), &[]))
        };
        let at = |w: &mut Vec<ManifestEntry>, p: &str| {
            w.iter()
                .position(|e| e.path == std::path::Path::new(p))
                .unwrap()
        };
        assert_eq!(
            with(&|w| {
                let i = at(w, "app/pkg");
                w[i].mode = 0o700
            }),
            None,
            "directory modes do not count"
        );
        assert_eq!(
            with(&|w| {
                let i = at(w, "app/main.py");
                w[i].mode = 0o4644
            }),
            Some(2)
        );
        assert_eq!(
            with(&|w| {
                let i = at(w, "app/dang");
                w[i].link_target = Some("nowhere2".into())
            }),
            Some(2),
            "a dangling link is hashed by its text"
        );
        assert_eq!(with(&|w| w.push(file("notes.txt", 0o644, "n"))), Some(4));
        // --chmod is accepted and keyed; --link is not known to this engine's frontend.
        let m = man(v);
        let c0 = bk("FROM img\nCOPY --chmod=644 app/ /app/\n", &m, &[]);
        let c1 = bk("FROM img\nCOPY --chmod=600 app/ /app/\n", &m, &[]);
        assert_eq!(first_bk_miss(&c0, &c1), Some(2));
        let link_df = parse("FROM img\nCOPY --link app/ /app/\n", "Dockerfile").unwrap();
        let opts = PlanOptions {
            builder: Builder::BuildKit,
            ..PlanOptions::default()
        };
        assert!(matches!(
            plan(&link_df, &m, &opts),
            Err(PlanError::UnknownFlag { .. })
        ));
    }

    #[test]
    fn buildkit_bind_mounts_key_their_source() {
        let df =
            "FROM img\nRUN --mount=type=bind,source=req.txt,target=/r cat /r\nRUN echo after\n";
        let p0 = bk(df, &man(base()), &[]);
        assert_eq!(p0.steps[1].sources, ["req.txt"]);
        assert_eq!(p0.steps[1].files, 1);
        let mut v = base();
        v.push(file("other.txt", 0o644, "o"));
        assert_eq!(first_bk_miss(&p0, &bk(df, &man(v), &[])), None);
        let mut v = base();
        let i = v.len() - 1;
        v[i] = file("req.txt", 0o644, "django");
        assert_eq!(first_bk_miss(&p0, &bk(df, &man(v), &[])), Some(2));
        let cache = "FROM img\nRUN --mount=type=cache,target=/c echo\n";
        let k0 = bk(cache, &man(base()), &[]);
        let k1 = bk(&cache.replace("/c", "/d"), &man(base()), &[]);
        assert_eq!(first_bk_miss(&k0, &k1), Some(2));
        // The classic builder refuses the flag, as dockerd 20.10 words it.
        let e = plan(
            &parse(df, "Dockerfile").unwrap(),
            &man(base()),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: the --mount option requires BuildKit (the classic builder refuses it)"
        );
    }

    #[test]
    fn buildkit_never_builds_stages_the_target_does_not_read() {
        let df = "FROM img AS build\nCOPY req.txt /req.txt\nRUN make\n\
FROM img AS unused\nCOPY app/ /a\nRUN echo unused\n\
FROM img\nRUN echo final\nCOPY --from=build /out /out\n";
        let p0 = bk(df, &man(base()), &[]);
        let skipped: Vec<bool> = p0.steps.iter().map(|s| s.skipped).collect();
        assert_eq!(
            skipped,
            [false, false, false, true, true, true, false, false, false]
        );
        assert!(p0.steps[3..6].iter().all(|s| !s.cacheable));
        let mut v = base();
        v[2] = file("app/main.py", 0o644, "print(2)");
        assert_eq!(first_bk_miss(&p0, &bk(df, &man(v), &[])), None);
        let mut v = base();
        let i = v.len() - 1;
        v[i] = file("req.txt", 0o644, "django");
        assert_eq!(first_bk_miss(&p0, &bk(df, &man(v), &[])), Some(2));
        // Read through FROM <stage> and RUN --mount=from: built.
        let df = "FROM img AS a\nRUN echo a\nFROM img AS b\nRUN echo b\nFROM a\nRUN --mount=from=b,target=/b ls /b\n";
        let p = bk(df, &man(base()), &[]);
        assert!(p.steps.iter().all(|s| !s.skipped));
    }

    #[test]
    fn walk_order_is_per_component() {
        assert_eq!(walk_order(b"a/b", b"a.txt"), std::cmp::Ordering::Less);
        assert_eq!(walk_order(b"a", b"a/b"), std::cmp::Ordering::Less);
    }
}
