//! Generated Dockerfiles must stay what their template renders: a file whose first line says
//! ctxbuild made it but whose text differs from a fresh render was edited by hand or left
//! behind by a config or template change.
//!
//! The fresh render uses the variant named in the header and the file's own first `FROM`
//! image, so a render made with `--base-image` compares equal.

use super::dockerfile::Parsed;
use super::{Finding, RuleId, ServiceCtx};
use crate::service::render::{self, TEMPLATE_VERSION};

pub fn check(cx: &ServiceCtx, p: &Parsed) -> Vec<Finding> {
    if p.text.rendered {
        return Vec::new();
    }
    let Some((kind, variant, version)) = render::generated_by(&p.text.text) else {
        return Vec::new();
    };
    let base = p.df.stages().first().map(|s| s.base.clone());
    let fix = |base: &Option<String>| {
        let mut cmd = format!("ctxbuild render {} --{}", cx.service.name, variant.as_str());
        if let Some(b) = base {
            if *b != render::default_base_image(kind, variant)
                && cx.service.base_image.alpine.as_deref() != Some(b)
                && cx.service.base_image.slim.as_deref() != Some(b)
            {
                cmd.push_str(&format!(" --base-image {b}"));
            }
        }
        format!("re-render it: `{cmd} -o {}`", p.text.display)
    };
    if kind != cx.service.kind {
        return vec![cx.finding(
            RuleId::GeneratedStale,
            (p.text.display.clone(), Some(1)),
            format!(
                "generated from a {} template, but service `{}` is {}",
                kind.as_str(),
                cx.service.name,
                cx.service.kind.as_str()
            ),
            fix(&base),
        )];
    }
    let Ok(fresh) = render::render_for(
        cx.config,
        cx.service,
        variant,
        base.as_deref(),
        render::generated_for_buildkit(&p.text.text),
    ) else {
        return Vec::new(); // requirements-missing and friends say why.
    };
    if fresh.dockerfile == p.text.text {
        return Vec::new();
    }
    let line = p
        .text
        .text
        .lines()
        .zip(fresh.dockerfile.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| {
            p.text
                .text
                .lines()
                .count()
                .min(fresh.dockerfile.lines().count())
        })
        + 1;
    let why = if version < TEMPLATE_VERSION {
        format!("it was rendered from template v{version}, ctxbuild now has v{TEMPLATE_VERSION}")
    } else {
        format!(
            "line {line} differs from a fresh render (edited by hand, or ctxbuild.toml changed)"
        )
    };
    vec![cx.finding(
        RuleId::GeneratedStale,
        (p.text.display.clone(), Some(line as u32)),
        format!("{} says ctxbuild generated it, but {why}", p.text.display),
        fix(&base),
    )]
}
