//! What the no-op build must know about the engine before it may skip a build: which engine
//! this is, which image id each base reference resolves to, and whether an image still exists.
//! Asked in one round of concurrent requests so the no-op path stays a few milliseconds.

use super::{Engine, EngineError};

/// The answers, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The engine's persistent ID (`docker info` ID), empty when the engine gives none.
    pub engine_id: String,
    /// Whether the image asked about exists.
    pub image_exists: bool,
    /// The image id (`sha256:…`) each reference resolves to, `None` when it does not exist.
    pub resolved: Vec<Option<String>>,
}

impl Engine {
    /// The engine's persistent ID (`docker info` ID).
    pub fn engine_id(&self) -> Result<String, EngineError> {
        let info = self
            .rt
            .block_on(self.docker.info())
            .map_err(|e| self.api_error("GET /info", e))?;
        Ok(info.id.unwrap_or_default())
    }

    /// The image id `reference` resolves to, `None` when there is no such image.
    pub fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.rt.block_on(self.resolve(reference))
    }

    async fn resolve(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(i.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.api_error(&format!("GET /images/{reference}/json"), e)),
        }
    }

    /// The engine's ID, whether `image` exists and what each of `references` resolves to.
    pub fn facts(&self, image: &str, references: &[String]) -> Result<Facts, EngineError> {
        self.rt.block_on(async {
            let info = async {
                self.docker
                    .info()
                    .await
                    .map_err(|e| self.api_error("GET /info", e))
            };
            let refs = futures_util::future::join_all(references.iter().map(|r| self.resolve(r)));
            let (info, exists, resolved) = tokio::join!(info, self.resolve(image), refs);
            Ok(Facts {
                engine_id: info?.id.unwrap_or_default(),
                image_exists: exists?.is_some(),
                resolved: resolved.into_iter().collect::<Result<_, _>>()?,
            })
        })
    }
}
