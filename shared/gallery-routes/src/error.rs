//! What a gallery route answers when it fails: every error of the toolkit ([`ApiError`]), plus
//! a taken slug (409 `slug_taken`) and media that cannot join a gallery (422
//! `media_not_addable`, `details.media_ids` naming them). The domain's gallery errors are mapped
//! here, once; the body is the API's one error shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phoenix_domain::StoreError;
use phoenix_domain::galleries::GalleryError;
use phoenix_domain::shares::ShareError;
use phoenix_http::{ApiError, ErrorBody, ErrorDetail};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum GalleryApiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the slug {0:?} is taken by another gallery; choose another")]
    SlugTaken(String),
    #[error("{message}")]
    MediaNotAddable { message: String, media_ids: Vec<String> },
    /// A share link that expired or was revoked (410 `gone`): nothing else is said.
    #[error("this link is no longer valid")]
    Gone,
}

impl GalleryApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status(),
            Self::SlugTaken(_) => StatusCode::CONFLICT,
            Self::MediaNotAddable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Gone => StatusCode::GONE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(e) => e.code(),
            Self::SlugTaken(_) => "slug_taken",
            Self::MediaNotAddable { .. } => "media_not_addable",
            Self::Gone => "gone",
        }
    }
}

impl IntoResponse for GalleryApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let details = match &self {
            Self::Api(_) | Self::Gone => None,
            Self::SlugTaken(slug) => Some(json!({"slug": slug})),
            Self::MediaNotAddable { media_ids, .. } => Some(json!({"media_ids": media_ids})),
        };
        let message = match self {
            Self::Api(e) => return e.into_response(),
            other => other.to_string(),
        };
        tracing::info!(code, message = %message, "request refused");
        (status, Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details } })).into_response()
    }
}

impl From<GalleryError> for GalleryApiError {
    fn from(e: GalleryError) -> Self {
        match e {
            GalleryError::Invalid { field, message } => ApiError::InvalidField { field, message }.into(),
            GalleryError::NotFound(m) => ApiError::NotFound(m).into(),
            GalleryError::VersionConflict { message, current_version } => {
                ApiError::VersionConflict { message, current_version }.into()
            }
            GalleryError::SlugTaken(slug) => Self::SlugTaken(slug),
            GalleryError::MediaNotAddable { message, media_ids } => {
                Self::MediaNotAddable { message, media_ids: media_ids.iter().map(ToString::to_string).collect() }
            }
            GalleryError::InvalidState(m) => ApiError::InvalidState(m).into(),
            GalleryError::Store(e) => ApiError::from(e).into(),
        }
    }
}

impl From<ShareError> for GalleryApiError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::Invalid { field, message } => {
                ApiError::InvalidField { field: field.to_owned(), message }.into()
            }
            ShareError::NotFound => ApiError::NotFound("no such share link".into()).into(),
            ShareError::Gone => Self::Gone,
            ShareError::Store(e) => ApiError::from(e).into(),
        }
    }
}

impl From<StoreError> for GalleryApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gallery_error_has_its_status_and_code() {
        let cases: Vec<(GalleryError, u16, &str)> = vec![
            (GalleryError::invalid("operations[0].position", "past the end"), 400, "invalid_request"),
            (GalleryError::NotFound("gallery x not found".into()), 404, "not_found"),
            (
                GalleryError::VersionConflict { message: "stale".into(), current_version: Some(3) },
                409,
                "version_conflict",
            ),
            (GalleryError::SlugTaken("summer".into()), 409, "slug_taken"),
            (GalleryError::MediaNotAddable { message: "pending".into(), media_ids: vec![] }, 422, "media_not_addable"),
            (GalleryError::InvalidState("never published".into()), 409, "invalid_state"),
            (GalleryError::Store(StoreError::unavailable(anyhow::anyhow!("down"))), 503, "unavailable"),
        ];
        for (error, status, code) in cases {
            let mapped = GalleryApiError::from(error);
            assert_eq!((mapped.status().as_u16(), mapped.code()), (status, code), "{mapped:?}");
        }
    }
}
