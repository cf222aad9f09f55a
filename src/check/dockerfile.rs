//! The Dockerfile rule families, run over one parsed Dockerfile.

use super::{DockerfileText, Finding, ServiceCtx};

pub fn check(cx: &ServiceCtx, d: &DockerfileText) -> Vec<Finding> {
    let mut out = super::runtime::check(cx, d);
    out.extend(super::copy::check(cx, d));
    out.extend(super::base_image::check(cx, d));
    out.extend(super::generated::check(cx, d));
    out
}
