//! Conditional requests: strong ETags over the exact bytes sent, `If-None-Match` for cheap
//! polling, `If-Match` (or a body `version`) for writes that must not lose updates.

use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::Digest;

use crate::error::ApiError;

/// A strong validator of one representation: the resource's version (so `If-Match` can name the
/// version it read) and a hash of the exact bytes sent (what a caller may see differs by role).
pub fn etag_for(version: u64, body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    format!("\"{version}-{}\"", hex::encode(&digest[..8]))
}

/// The version an `If-Match` header names: `"{version}-…"` as sent in `ETag`, or `"{version}"`.
pub fn if_match_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = headers.get(IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::InvalidRequest("If-Match must be the ETag as read (\"{version}-{hash}\")".into());
    let text = raw.to_str().map_err(|_| bad())?.trim();
    let quoted = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(bad)?;
    let version = quoted.split('-').next().unwrap_or_default();
    version.parse::<u64>().map(Some).map_err(|_| bad())
}

/// The version a write is based on, from `If-Match` or the body; both must agree if both come.
pub fn precondition(headers: &HeaderMap, body_version: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (if_match_version(headers)?, body_version) {
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::InvalidRequest(format!("If-Match names version {a} but the body says version {b}")))
        }
        (header, body) => Ok(header.or(body)),
    }
}

/// Like [`precondition`], but a write without one is refused (428).
pub fn required_precondition(headers: &HeaderMap, body_version: Option<u64>) -> Result<u64, ApiError> {
    precondition(headers, body_version)?.ok_or_else(|| {
        ApiError::PreconditionRequired("send If-Match with the ETag you read, or the version in the body".into())
    })
}

/// Whether `If-None-Match` names `etag` (or `*`); weak forms compare by their opaque part.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|candidate| {
        let candidate = candidate.trim();
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// A JSON representation of a versioned resource, with its ETag.
pub struct Tagged {
    pub etag: String,
    pub body: Vec<u8>,
}

impl Tagged {
    pub fn new<T: Serialize>(view: &T, version: u64) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(view).map_err(|e| ApiError::Unexpected(e.into()))?;
        Ok(Self { etag: etag_for(version, &body), body })
    }

    /// 200 with the body, or 304 when the caller already holds this representation.
    pub fn respond_to(self, headers: &HeaderMap) -> Response {
        if none_match(headers, &self.etag) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            insert_etag(&mut response, &self.etag);
            return response;
        }
        self.with_status(StatusCode::OK)
    }

    pub fn with_status(self, status: StatusCode) -> Response {
        let mut response = (status, [(CONTENT_TYPE, "application/json")], self.body).into_response();
        insert_etag(&mut response, &self.etag);
        response
    }
}

fn insert_etag(response: &mut Response, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(ETAG, value);
    }
}
