//! The `Idempotency-Key` headers of the submissions that take one (jobs, batches); the rules are
//! the domain's ([`phoenix_domain::idempotency`]).

use axum::http::{HeaderMap, HeaderName};

use crate::ApiError;

/// The request header that makes a submission idempotent.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header that says a submission was answered from its `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, if it sent one (the domain checks its length and alphabet).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(raw) = headers.get(&IDEMPOTENCY_KEY) else { return Ok(None) };
    raw.to_str().map(Some).map_err(|_| ApiError::InvalidField {
        field: "Idempotency-Key".into(),
        message: "Idempotency-Key must be visible ASCII characters".into(),
    })
}
