//! Path parameters shared by route crates, declared once for extraction and for the OpenAPI
//! document alike, and parsed into the domain's newtypes at the edge.

use phoenix_domain::{MediaId, ModelId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;

/// `/v1/models/{model_id}/…`: the path names a model.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model (tenant)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
}

/// `/v1/models/{model_id}/media/{media_id}/…`: the path names one media of a model.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MediaPath {
    /// The model (tenant)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    /// The media id (26-character ULID, lower case)
    #[param(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub media_id: String,
}

impl ModelPath {
    pub fn model(&self) -> Result<ModelId, ApiError> {
        parse_model(&self.model_id)
    }
}

impl MediaPath {
    pub fn model(&self) -> Result<ModelId, ApiError> {
        parse_model(&self.model_id)
    }

    pub fn media(&self) -> Result<MediaId, ApiError> {
        MediaId::parse(&self.media_id).map_err(|e| ApiError::InvalidId(e.to_string()))
    }

    /// The model and the media, if `caller` may act on the model. Checked in the order every
    /// media route answers: the model's id (400), the caller's access to it (403), the media's id
    /// (400).
    pub fn authorized(&self, caller: &Caller) -> Result<(ModelId, MediaId), ApiError> {
        let model = self.model()?;
        caller.authorize(&model)?;
        Ok((model, self.media()?))
    }
}

fn parse_model(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|e| ApiError::InvalidId(e.to_string()))
}
