//! What a long-running use case reports while it works: one [`Event`] type and one [`Sink`]
//! trait for clean, build and push progress alike.
//!
//! The library emits events as data and never formats them; the binary's `ui` implements
//! [`Sink`] (live bars, plain CI lines, or nothing). Events carry structured facts (counts,
//! bytes, paths), never sentences.

use crate::engine::{BuildEvent, PushEvent};

/// Something that happened, in the order it happened.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// `clean`: entries walked so far.
    CleanWalking { entries: u64 },
    /// `clean`: removals attempted so far, of `total`.
    CleanRemoving { done: u64, total: u64 },
    /// `image --clean` removed the context's bytecode before scanning.
    ContextCleaned { files: u64, dirs: u64, bytes: u64 },
    /// The Dockerfile the build uses, as messages name it, and why that one.
    DockerfileChosen {
        service: &'a str,
        dockerfile: &'a str,
        reason: &'a str,
    },
    /// The builder this build uses, and why (`--builder`, or the `auto` rule).
    BuilderChosen { choice: &'a crate::builder::Choice },
    /// ctxbuild keyed the context's `files`, hashing on `threads` threads (`-j`).
    ContextKeyed { files: usize, threads: usize },
    /// The engine answered.
    EngineConnected { host: &'a str, api_version: &'a str },
    /// Bytecode a COPY/ADD names on purpose, sent although it is pollution.
    BytecodeNamed { paths: &'a [String] },
    /// Bytecode left out of the context although `.dockerignore` lets it in.
    BytecodeKeptOut {
        entries: u64,
        bytes: u64,
        /// The `.dockerignore` lines that would keep it out.
        rules: &'a [&'a str],
    },
    /// A step of the work could not be done; the run goes on without it (e.g. the context
    /// could not be keyed, so the report cannot say why a step rebuilt).
    Degraded {
        what: Degraded,
        error: &'a anyhow::Error,
    },
    /// `--cache-from`: pulling a cache image the engine does not have.
    CacheFromPulling { reference: &'a str },
    /// `--cache-from`: a cache image the build may take steps from.
    CacheFromReady {
        reference: &'a str,
        image_id: &'a str,
        /// Pulled by this run (it was not on the engine before).
        pulled: bool,
    },
    /// `--cache-from`: a cache image that is missing or cannot be pulled; the build goes on
    /// without it.
    CacheFromUnavailable {
        reference: &'a str,
        error: &'a anyhow::Error,
    },
    /// One event of the engine's build stream.
    Build(&'a BuildEvent),
    /// One event of a push of `tag`.
    Push { tag: &'a str, event: &'a PushEvent },
    /// A tag was pushed.
    Pushed {
        tag: &'a str,
        digest: Option<&'a str>,
    },
    /// The live part of the work is over (the report follows).
    Finished,
}

/// Which optional part of a build could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degraded {
    /// The context could not be keyed.
    KeyContext,
    /// The Dockerfile's per-step keys could not be computed.
    PlanSteps,
    /// This build's plan could not be saved for the next report.
    SavePlan,
    /// This build's plan is too large for the image label, so a builder that only has the
    /// image cannot say why a step rebuilt.
    PlanLabel,
}

/// Receives events. `Sync` because `clean` reports from its worker threads.
pub trait Sink: Sync {
    fn event(&self, event: &Event<'_>);
}

/// A sink that drops everything.
pub struct Discard;

impl Sink for Discard {
    fn event(&self, _: &Event<'_>) {}
}

/// `clean`'s progress callbacks, forwarded into a [`Sink`].
pub struct CleanProgress<'a>(pub &'a dyn Sink);

impl crate::clean::Progress for CleanProgress<'_> {
    fn walking(&self, entries: u64) {
        self.0.event(&Event::CleanWalking { entries });
    }

    fn removing(&self, done: u64, total: u64) {
        self.0.event(&Event::CleanRemoving { done, total });
    }
}
