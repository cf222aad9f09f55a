//! Which builder an image is built with: the classic builder or BuildKit, and the `auto` rule
//! that picks one. A leaf: it knows the parsed Dockerfile and what the engine said, nothing
//! else. `check`, `plan`, `explain` and `image` all ask it, so they agree on the builder.
//!
//! The `auto` rule: BuildKit when the engine has it (API ≥ 1.39 on Linux, where `/session`
//! exists) *and* the Dockerfile uses syntax only BuildKit accepts (`RUN --mount`, `RUN
//! --network`/`--security`, `COPY`/`ADD --chmod`/`--link`/…); otherwise classic, whose cache
//! ctxbuild has predicted longest and whose context upload is a plain tar.

use crate::dockerfile::{Dockerfile, Keyword};
use std::fmt;
use std::str::FromStr;

/// The builder an image is built with.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// The classic builder (`POST /build`, version 1).
    #[default]
    Classic,
    /// The engine's embedded BuildKit (`POST /build` version 2 with a `/session`).
    #[serde(rename = "buildkit")]
    BuildKit,
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Builder::Classic => "classic",
            Builder::BuildKit => "buildkit",
        })
    }
}

/// What the user asked for: `--builder classic|buildkit|auto`, or `builder = "…"` in
/// `ctxbuild.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderChoice {
    Classic,
    #[serde(rename = "buildkit")]
    BuildKit,
    /// See the module docs.
    #[default]
    Auto,
}

impl BuilderChoice {
    pub const NAMES: [&'static str; 3] = ["classic", "buildkit", "auto"];
}

impl fmt::Display for BuilderChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuilderChoice::Classic => "classic",
            BuilderChoice::BuildKit => "buildkit",
            BuilderChoice::Auto => "auto",
        })
    }
}

impl FromStr for BuilderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(BuilderChoice::Classic),
            "buildkit" => Ok(BuilderChoice::BuildKit),
            "auto" => Ok(BuilderChoice::Auto),
            _ => Err(format!(
                "unknown builder `{s}`: expected one of {}",
                BuilderChoice::NAMES.join(", ")
            )),
        }
    }
}

/// The first instruction that only BuildKit accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildKitNeed {
    /// 1-based line of the instruction.
    pub line: usize,
    /// What it uses, as written: `RUN --mount`, `COPY --chmod`.
    pub what: String,
}

/// The flags the classic builder accepts on `keyword`; `None` when the keyword's flags are
/// the parser's business (FROM, HEALTHCHECK).
pub fn classic_flags(keyword: Keyword) -> Option<&'static [&'static str]> {
    match keyword {
        Keyword::Run => Some(&[]),
        Keyword::Copy => Some(&["from", "chown"]),
        Keyword::Add => Some(&["chown"]),
        _ => None,
    }
}

/// The first instruction (in file order) that the classic builder would reject for a flag
/// only BuildKit knows.
pub fn needs_buildkit(df: &Dockerfile) -> Option<BuildKitNeed> {
    first_unknown_flag(df, classic_flags)
}

/// The first instruction with a flag outside what `allowed` gives for its keyword.
fn first_unknown_flag(
    df: &Dockerfile,
    allowed: fn(Keyword) -> Option<&'static [&'static str]>,
) -> Option<BuildKitNeed> {
    df.instructions.iter().find_map(|ins| {
        let allowed = allowed(ins.keyword)?;
        let flag = ins
            .flags
            .iter()
            .find(|f| !allowed.contains(&f.name.as_str()))?;
        Some(BuildKitNeed {
            line: ins.line,
            what: format!("{} --{}", ins.keyword, flag.name),
        })
    })
}

/// `1.41` → `(1, 41)`; what does not parse counts as 0.
fn api_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    (
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    )
}

/// The flags the built-in Dockerfile frontend of Docker 20.10's embedded BuildKit (API ≤ 1.41)
/// accepts on `keyword`. Verified on dockerd 20.10.24 with `DOCKER_BUILDKIT=1 docker build`:
/// `RUN --mount` (cache, bind, secret) and `COPY`/`ADD --chmod` build; `RUN --network`,
/// `RUN --security`, `COPY`/`ADD --link`, `ADD --checksum`, `ADD --keep-git-dir`, `COPY
/// --parents` and `COPY --exclude` fail with "dockerfile parse error line N: Unknown flag: …".
fn buildkit_2010_flags(keyword: Keyword) -> Option<&'static [&'static str]> {
    match keyword {
        Keyword::Run => Some(&["mount"]),
        Keyword::Copy => Some(&["from", "chown", "chmod"]),
        Keyword::Add => Some(&["chown", "chmod"]),
        _ => None,
    }
}

/// The first instruction the engine's embedded BuildKit would reject for a flag its built-in
/// frontend does not know yet (engines of API ≤ 1.41, Docker 20.10 and older; newer engines
/// are not second-guessed). No `# syntax=` line can help offline: it pulls a frontend image.
pub fn buildkit_rejects(df: &Dockerfile, api: &str) -> Option<BuildKitNeed> {
    if api_version(api) > (1, 41) {
        return None;
    }
    first_unknown_flag(df, buildkit_2010_flags)
}

/// What the engine says about BuildKit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSupport {
    pub buildkit: bool,
}

impl EngineSupport {
    /// BuildKit through the Engine API needs `/session` (API 1.39, Docker 18.09) and a Linux
    /// daemon.
    pub fn from_version(api: &str, os_type: &str) -> EngineSupport {
        EngineSupport {
            buildkit: api_version(api) >= (1, 39) && (os_type.is_empty() || os_type == "linux"),
        }
    }
}

/// Why a builder was chosen, for the line `image` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum ChoiceReason {
    /// `--builder` or `builder =` named it.
    Asked,
    /// `auto`: the Dockerfile needs BuildKit at this line and the engine has it.
    Needed(BuildKitNeed),
    /// `auto`: nothing needs BuildKit.
    NotNeeded,
    /// `auto`: the Dockerfile needs BuildKit but the engine has none; classic will reject it.
    EngineLacks(BuildKitNeed),
}

/// The builder to use, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    pub builder: Builder,
    pub reason: ChoiceReason,
}

/// Applies the `auto` rule (see the module docs). `engine` is `None` when no engine was asked
/// (offline `check`/`plan`): `auto` then assumes the engine has BuildKit, as every current
/// Docker does.
pub fn choose(
    choice: BuilderChoice,
    df: Option<&Dockerfile>,
    engine: Option<EngineSupport>,
) -> Choice {
    let asked = |builder| Choice {
        builder,
        reason: ChoiceReason::Asked,
    };
    match choice {
        BuilderChoice::Classic => asked(Builder::Classic),
        BuilderChoice::BuildKit => asked(Builder::BuildKit),
        BuilderChoice::Auto => match df.and_then(needs_buildkit) {
            None => Choice {
                builder: Builder::Classic,
                reason: ChoiceReason::NotNeeded,
            },
            Some(need) if engine.is_none_or(|e| e.buildkit) => Choice {
                builder: Builder::BuildKit,
                reason: ChoiceReason::Needed(need),
            },
            Some(need) => Choice {
                builder: Builder::Classic,
                reason: ChoiceReason::EngineLacks(need),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dockerfile {
        crate::dockerfile::parse(text, "Dockerfile").unwrap()
    }

    #[test]
    fn auto_picks_buildkit_only_when_the_dockerfile_needs_it() {
        let plain = parse("FROM a\nCOPY --chown=1 . /app\nRUN make\n");
        let mount = parse("FROM a\nCOPY . /app\nRUN --mount=type=cache,target=/c make\n");
        let yes = Some(EngineSupport { buildkit: true });
        let no = Some(EngineSupport { buildkit: false });
        assert_eq!(
            choose(BuilderChoice::Auto, Some(&plain), yes).builder,
            Builder::Classic
        );
        let c = choose(BuilderChoice::Auto, Some(&mount), yes);
        assert_eq!(c.builder, Builder::BuildKit);
        assert_eq!(
            c.reason,
            ChoiceReason::Needed(BuildKitNeed {
                line: 3,
                what: "RUN --mount".into()
            })
        );
        let c = choose(BuilderChoice::Auto, Some(&mount), no);
        assert_eq!(c.builder, Builder::Classic);
        assert!(matches!(c.reason, ChoiceReason::EngineLacks(_)));
        assert_eq!(
            choose(BuilderChoice::Auto, Some(&mount), None).builder,
            Builder::BuildKit
        );
        assert_eq!(
            choose(BuilderChoice::Classic, Some(&mount), yes).builder,
            Builder::Classic
        );
        assert_eq!(
            choose(BuilderChoice::BuildKit, Some(&plain), no).builder,
            Builder::BuildKit
        );
    }

    #[test]
    fn chmod_and_link_need_buildkit_but_from_and_chown_do_not() {
        let df = parse("FROM a AS b\nCOPY --from=b --chown=1 /x /y\nADD --chmod=600 k /k\n");
        assert_eq!(
            needs_buildkit(&df),
            Some(BuildKitNeed {
                line: 3,
                what: "ADD --chmod".into()
            })
        );
        assert_eq!(
            needs_buildkit(&parse("FROM a\nCOPY --link . /\n")).map(|n| n.what),
            Some("COPY --link".into())
        );
    }

    #[test]
    fn docker_20_10_buildkit_rejects_what_its_frontend_does_not_know() {
        let ok = parse("FROM a\nRUN --mount=type=cache,target=/c true\nCOPY --chmod=600 --chown=1 a /a\nADD --chmod=600 b /b\n");
        assert_eq!(buildkit_rejects(&ok, "1.41"), None);
        let link = parse("FROM a\nCOPY a /a\nCOPY --link b /b\n");
        assert_eq!(
            buildkit_rejects(&link, "1.41"),
            Some(BuildKitNeed {
                line: 3,
                what: "COPY --link".into()
            })
        );
        assert_eq!(
            buildkit_rejects(&link, "1.43"),
            None,
            "Docker 24 knows --link"
        );
        let net = parse("FROM a\nRUN --network=none true\n");
        assert_eq!(
            buildkit_rejects(&net, "1.40").unwrap().what,
            "RUN --network"
        );
    }

    #[test]
    fn engine_support_follows_the_api_version() {
        assert!(EngineSupport::from_version("1.41", "linux").buildkit);
        assert!(EngineSupport::from_version("1.39", "").buildkit);
        assert!(!EngineSupport::from_version("1.38", "linux").buildkit);
        assert!(!EngineSupport::from_version("1.41", "windows").buildkit);
        assert!(!EngineSupport::from_version("junk", "linux").buildkit);
    }

    #[test]
    fn choice_parses_its_names_and_refuses_others() {
        for n in BuilderChoice::NAMES {
            assert_eq!(n.parse::<BuilderChoice>().unwrap().to_string(), n);
        }
        assert!("BuildKit2"
            .parse::<BuilderChoice>()
            .unwrap_err()
            .contains("classic, buildkit, auto"));
    }
}
