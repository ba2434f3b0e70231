//! What a batch route answers when it fails: every error of the toolkit ([`ApiError`]), plus the
//! two only `Idempotency-Key` submissions give and the running-batch limits' 429. The domain's
//! batch errors are mapped here, once, to a status and a stable code; the body is the API's one
//! error shape.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_domain::StoreError;
use phoenix_domain::batches::BatchError;
use phoenix_domain::batches::wire::BodyError;
use phoenix_domain::idempotency::IdempotencyError;
use phoenix_http::{ApiError, ErrorBody, ErrorDetail};

/// Seconds a caller waits before it retries a submission still in flight (as for jobs).
const IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BatchApiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 422 `idempotency_key_reused`: the key came before with another body.
    #[error("this Idempotency-Key was used with a different request body; use a new key for a new request")]
    IdempotencyKeyReused,
    /// 409 `idempotency_in_flight` (with `Retry-After`): a submission under the key is still being made.
    #[error("a submission with this Idempotency-Key is still in progress; retry in a moment")]
    IdempotencyInFlight,
    /// 429 `rate_limited` (with `Retry-After`): too many batches running, for the model or in all.
    #[error("{message}")]
    RateLimited { message: String, retry_after: Duration },
}

impl From<IdempotencyError> for BatchApiError {
    fn from(e: IdempotencyError) -> Self {
        match e {
            e @ IdempotencyError::Malformed => {
                ApiError::InvalidField { field: "Idempotency-Key".into(), message: e.to_string() }.into()
            }
            IdempotencyError::Mismatch => Self::IdempotencyKeyReused,
            IdempotencyError::InFlight => Self::IdempotencyInFlight,
            IdempotencyError::Store(e) => e.into(),
        }
    }
}

impl BatchApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status(),
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInFlight => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(e) => e.code(),
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInFlight => "idempotency_in_flight",
            Self::RateLimited { .. } => "rate_limited",
        }
    }

    /// Seconds to wait before trying again, for the answers that say so.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::IdempotencyInFlight => Some(IN_FLIGHT_RETRY_AFTER),
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for BatchApiError {
    fn into_response(self) -> Response {
        let (status, code, retry_after) = (self.status(), self.code(), self.retry_after());
        let message = match self {
            Self::Api(e) => return e.into_response(),
            other => other.to_string(),
        };
        tracing::info!(code, message = %message, "request refused");
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details: None } };
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = retry_after {
            // Whole seconds, at least one: a client that waits 0 s only asks again too soon.
            let seconds = wait.as_secs().max(1);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<BatchError> for BatchApiError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Invalid { field, message } => ApiError::InvalidField { field, message }.into(),
            BatchError::NotAllowed(m) => ApiError::Forbidden(m).into(),
            BatchError::NotFound(m) => ApiError::NotFound(m).into(),
            BatchError::InvalidState(m) => ApiError::InvalidState(m).into(),
            BatchError::Limited { message, retry_after } => Self::RateLimited { message, retry_after },
            BatchError::Store(e) => ApiError::from(e).into(),
        }
    }
}

impl From<BodyError> for BatchApiError {
    fn from(e: BodyError) -> Self {
        ApiError::InvalidField { field: e.field, message: e.message }.into()
    }
}

impl From<StoreError> for BatchApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_batch_error_has_its_status_and_code() {
        let cases: Vec<(BatchError, u16, &str)> = vec![
            (BatchError::Invalid { field: "items".into(), message: "no".into() }, 400, "invalid_request"),
            (BatchError::NotAllowed("reviews are for admins".into()), 403, "forbidden"),
            (BatchError::NotFound("batch x not found".into()), 404, "not_found"),
            (BatchError::InvalidState("running".into()), 409, "invalid_state"),
            (
                BatchError::Limited { message: "3 running".into(), retry_after: Duration::from_secs(30) },
                429,
                "rate_limited",
            ),
            (BatchError::Store(StoreError::unavailable(anyhow::anyhow!("down"))), 503, "unavailable"),
            (BatchError::Store(StoreError::Invalid("foreign cursor".into())), 400, "invalid_request"),
        ];
        for (error, status, code) in cases {
            let mapped = BatchApiError::from(error);
            assert_eq!((mapped.status().as_u16(), mapped.code()), (status, code), "{mapped:?}");
        }
        let limited = BatchError::Limited { message: "busy".into(), retry_after: Duration::from_secs(30) };
        let response = BatchApiError::from(limited).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        let response = BatchApiError::IdempotencyInFlight.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
