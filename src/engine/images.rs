//! Local image queries and pulls for `--cache-from`: which image ids the engine holds, what an
//! image's id and labels are, and `POST /images/create` with registry credentials.
//!
//! Returns our own data; a missing image is `Ok(None)`, not an error, because callers treat an
//! absent cache image as a warning.

use super::auth::Credentials;
use super::build::split_tag;
use super::error::EngineError;
use super::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, ListImagesOptions};
use std::collections::{BTreeMap, HashSet};

/// What `GET /images/{name}/json` says about an image, as far as ctxbuild needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…` (the config digest).
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// `repo@sha256:…` for images pulled from or pushed to a registry.
    pub repo_digests: Vec<String>,
}

impl Engine {
    /// Every image id the engine holds, intermediate ones included (`sha256:…`).
    pub fn image_ids(&self) -> Result<HashSet<String>, EngineError> {
        let opts = ListImagesOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .rt
            .block_on(self.docker.list_images(Some(opts)))
            .map_err(|e| self.api_error("GET /images/json", e))?;
        Ok(list.into_iter().map(|i| i.id).collect())
    }

    /// The image `reference` names, or `None` when the engine has no such image.
    pub fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.rt.block_on(self.docker.inspect_image(reference)) {
            Ok(info) => Ok(Some(ImageInfo {
                id: info.id.unwrap_or_default(),
                labels: info
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
                repo_digests: info.repo_digests.unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.api_error(&format!("GET /images/{reference}/json"), e)),
        }
    }

    /// Pulls `reference` (`registry/repo:tag`), calling `on_status` with each status line.
    pub fn pull(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
        on_status: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        let (name, tag) = split_tag(reference);
        let opts = CreateImageOptions {
            from_image: Some(name.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let creds = credentials.map(|c| DockerCredentials {
            username: c.username.clone(),
            password: c.password.clone(),
            serveraddress: Some(c.server.clone()),
            identitytoken: c.identity_token.clone(),
            ..Default::default()
        });
        let request = format!("POST /images/create?fromImage={name}&tag={tag}");
        self.rt.block_on(async {
            let mut stream = self.docker.create_image(Some(opts), None, creds);
            loop {
                let item = super::next_or_interrupted(&self.cancel, &mut stream).await?;
                match item {
                    None => return Ok(()),
                    Some(Ok(info)) => {
                        if let Some(status) = info.status {
                            on_status(&status);
                        }
                    }
                    Some(Err(bollard::errors::Error::DockerStreamError { error })) => {
                        return Err(EngineError::Other {
                            host: self.config.host.clone(),
                            message: format!("{request}: {error}"),
                        })
                    }
                    Some(Err(e)) => return Err(self.api_error(&request, e)),
                }
            }
        })
    }
}
