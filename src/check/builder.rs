//! Syntax the chosen builder rejects. ctxbuild builds with the classic builder (`POST /build`
//! without BuildKit), whose Dockerfile front end knows only `COPY --from/--chown`,
//! `ADD --chown` and no `RUN` flags at all: a BuildKit-only flag passes `docker buildx` and
//! fails the image build after the whole context was uploaded. Heredocs are already a parse
//! error (`dockerfile-invalid`).
//!
//! What the classic builder of dockerd 20.10 says, verified with
//! `DOCKER_BUILDKIT=0 docker build`: `RUN --mount`, `COPY/ADD --chmod` → "the --mount option
//! requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ …"; every other unknown flag
//! (`RUN --network`, `RUN --security`, `COPY/ADD --link`, `ADD --checksum`, `ADD
//! --keep-git-dir`, `COPY --parents`, `COPY --exclude`) → "dockerfile parse error line N:
//! Unknown flag: link". The rule is a function of the [`Builder`], so a BuildKit build
//! (later) accepts them.

use super::dockerfile::Parsed;
use super::{Finding, RuleId, ServiceCtx};
use crate::dockerfile::Keyword;

use crate::builder::classic_flags;
pub use crate::builder::Builder;

/// The classic builder's own words for a flag it rejects.
fn classic_message(flag: &str, line: usize) -> String {
    match flag {
        "mount" | "chmod" => format!(
            "the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
        ),
        _ => format!("dockerfile parse error line {line}: Unknown flag: {flag}"),
    }
}

pub fn check(cx: &ServiceCtx, p: &Parsed, builder: Builder) -> Vec<Finding> {
    if builder == Builder::BuildKit {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ins in &p.df.instructions {
        let Some(allowed) = classic_flags(ins.keyword) else {
            continue;
        };
        // One finding per instruction: the builder stops at its first unknown flag.
        let Some(flag) = ins
            .flags
            .iter()
            .find(|f| !allowed.contains(&f.name.as_str()))
        else {
            continue;
        };
        let written = match &flag.value {
            Some(v) => format!("--{}={v}", flag.name),
            None => format!("--{}", flag.name),
        };
        let fix = match (ins.keyword, flag.name.as_str()) {
            (Keyword::Run, "mount") => "drop the mount: COPY what the step needs and clean caches in the same RUN (`pip install --no-cache-dir`)".to_string(),
            (_, "chmod") => format!("drop `--chmod` and set the mode in a RUN after the {} (`RUN chmod …`), or keep the file's mode in the context", ins.keyword),
            (_, "link") => "drop `--link`; the classic builder's layers are always rebased on the previous step".to_string(),
            (Keyword::Add, "checksum") => "download in a RUN and verify it there (`sha256sum -c`), or COPY a vendored file".to_string(),
            _ => format!("remove `{written}`; the classic builder `ctxbuild image` uses knows only {}", known(allowed)),
        };
        out.push(cx.finding(
            RuleId::BuilderSyntax,
            p.loc(cx, ins.line, None),
            format!(
                "{} {written} is BuildKit-only; the classic builder `ctxbuild image` uses rejects it: \"{}\"",
                ins.keyword,
                classic_message(&flag.name, ins.line)
            ),
            fix,
        ));
    }
    out
}

fn known(allowed: &[&str]) -> String {
    if allowed.is_empty() {
        return "no flags here".into();
    }
    allowed
        .iter()
        .map(|f| format!("`--{f}`"))
        .collect::<Vec<_>>()
        .join(" and ")
}
