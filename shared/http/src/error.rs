//! The API's one error type: every failure a caller can act on, each mapped once to a status and
//! a stable code. Messages are for people; codes are for programs. Internal detail is logged,
//! never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phoenix_domain::StoreError;
use phoenix_domain::media::{MediaError, UploadError};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    /// One field of the request is wrong; `details.field` names it (`items[2].media_id`).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{message}")]
    VersionConflict { message: String, current_version: Option<u64> },
    /// The request is well-formed but the media's state does not allow it (409).
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    PreconditionRequired(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("a dependency is unavailable; try again shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::InvalidField { .. } | Self::MalformedJson(_) | Self::InvalidId(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::VersionConflict { .. } | Self::InvalidState(_) => StatusCode::CONFLICT,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::InvalidField { .. } => "invalid_request",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidId(_) => "invalid_id",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::VersionConflict { .. } => "version_conflict",
            Self::InvalidState(_) => "invalid_state",
            Self::PreconditionRequired(_) => "precondition_required",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Unexpected(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Unavailable(e) | Self::Unexpected(e) => {
                tracing::error!(error = %format!("{e:#}"), code = self.code(), "request failed")
            }
            _ => tracing::info!(code = self.code(), message = %self, "request refused"),
        }
        let details = match &self {
            Self::VersionConflict { current_version: Some(v), .. } => Some(json!({"current_version": v})),
            Self::InvalidField { field, .. } => Some(json!({"field": field})),
            _ => None,
        };
        let body =
            ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message: self.to_string(), details } };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::AlreadyExists => {
                Self::VersionConflict { message: "it already exists".into(), current_version: None }
            }
            StoreError::VersionConflict { current } => Self::VersionConflict {
                message: "the resource changed since it was read; read it again and retry".into(),
                current_version: current,
            },
            StoreError::Invalid(message) => Self::InvalidRequest(message),
            StoreError::Internal(e) => Self::Unexpected(e),
            StoreError::Unavailable(e) => Self::Unavailable(e),
        }
    }
}

impl From<phoenix_domain::library::LibraryError> for ApiError {
    fn from(e: phoenix_domain::library::LibraryError) -> Self {
        use phoenix_domain::library::LibraryError;
        match e {
            LibraryError::Invalid(m) => Self::InvalidRequest(m),
            LibraryError::InvalidState(m) => Self::InvalidState(m),
        }
    }
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::NotFound(m) => Self::NotFound(m),
            MediaError::VersionConflict { message, current_version } => {
                Self::VersionConflict { message, current_version }
            }
            MediaError::Invalid(m) => Self::InvalidRequest(m),
            MediaError::InvalidState(m) => Self::InvalidState(m),
            MediaError::Store(s) => s.into(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::UnsupportedType(_) => Self::UnsupportedMediaType(e.to_string()),
            UploadError::TooLarge { .. } => Self::PayloadTooLarge(e.to_string()),
            UploadError::Invalid(m) => Self::InvalidRequest(m),
            UploadError::Store(s) => s.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_request`, `malformed_json`, `invalid_id`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `version_conflict`, `invalid_state`,
    /// `precondition_required`, `payload_too_large`, `unsupported_media_type`, `unavailable`,
    /// `internal`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// For people.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}
