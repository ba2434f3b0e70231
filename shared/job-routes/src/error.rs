//! What a job route answers when it fails: every error of the toolkit ([`ApiError`]), plus the two
//! only `Idempotency-Key` submissions give. The domain's job and watermark errors are mapped here,
//! once, to a status and a stable code; the body is the API's one error shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_domain::StoreError;
use phoenix_domain::jobs::JobError;
use phoenix_domain::watermarks::WatermarkError;
use phoenix_http::{ApiError, ErrorBody, ErrorDetail};

/// Seconds a caller waits before it retries a submission still in flight.
const IN_FLIGHT_RETRY_AFTER: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum JobApiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 422 `idempotency_key_reused`: the key came before with another body.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// 409 `idempotency_in_flight` (with `Retry-After`): a submission under the key is still being made.
    #[error("{0}")]
    IdempotencyInFlight(String),
}

impl JobApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status(),
            Self::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInFlight(_) => StatusCode::CONFLICT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(e) => e.code(),
            Self::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Self::IdempotencyInFlight(_) => "idempotency_in_flight",
        }
    }
}

impl IntoResponse for JobApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let message = match self {
            Self::Api(e) => return e.into_response(),
            Self::IdempotencyKeyReused(m) | Self::IdempotencyInFlight(m) => m,
        };
        tracing::info!(code, message = %message, "request refused");
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details: None } };
        let mut response = (status, Json(body)).into_response();
        if code == "idempotency_in_flight" {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(IN_FLIGHT_RETRY_AFTER));
        }
        response
    }
}

impl From<JobError> for JobApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Invalid { field, message } => ApiError::InvalidField { field, message }.into(),
            JobError::NotFound(m) => ApiError::NotFound(m).into(),
            JobError::InvalidState(m) => ApiError::InvalidState(m).into(),
            e @ JobError::IdempotencyMismatch => Self::IdempotencyKeyReused(e.to_string()),
            e @ JobError::IdempotencyInFlight => Self::IdempotencyInFlight(e.to_string()),
            e @ JobError::Conflict => {
                ApiError::VersionConflict { message: e.to_string(), current_version: None }.into()
            }
            JobError::Store(e) => ApiError::from(e).into(),
        }
    }
}

impl From<WatermarkError> for JobApiError {
    fn from(e: WatermarkError) -> Self {
        match e {
            WatermarkError::Invalid { field, message } => ApiError::InvalidField { field, message }.into(),
            WatermarkError::NotFound(m) => ApiError::NotFound(m).into(),
            WatermarkError::Store(e) => ApiError::from(e).into(),
        }
    }
}

impl From<StoreError> for JobApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_error_has_its_status_and_code() {
        let cases: Vec<(JobError, u16, &str)> = vec![
            (JobError::invalid("params.degrees", "no"), 400, "invalid_request"),
            (JobError::NotFound("job x not found".into()), 404, "not_found"),
            (JobError::InvalidState("running".into()), 409, "invalid_state"),
            (JobError::IdempotencyMismatch, 422, "idempotency_key_reused"),
            (JobError::IdempotencyInFlight, 409, "idempotency_in_flight"),
            (JobError::Conflict, 409, "version_conflict"),
            (JobError::Store(StoreError::unavailable(anyhow::anyhow!("down"))), 503, "unavailable"),
            (JobError::Store(StoreError::Invalid("foreign cursor".into())), 400, "invalid_request"),
        ];
        for (error, status, code) in cases {
            let mapped = JobApiError::from(error);
            assert_eq!((mapped.status().as_u16(), mapped.code()), (status, code), "{mapped:?}");
        }
        let response = JobApiError::from(JobError::IdempotencyInFlight).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], IN_FLIGHT_RETRY_AFTER);
    }
}
