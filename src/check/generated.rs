//! (pending the Dockerfile parser)

use super::{Finding, ServiceCtx, DockerfileText};

pub fn check(_cx: &ServiceCtx, _d: &DockerfileText) -> Vec<Finding> {
    Vec::new()
}
