//! The local stand-in for S3's HTTP face: presigned PUTs and GETs under `/_objects/`, verified
//! and refused as S3 refuses them, and public derivative GETs under `/derived/` with the cache
//! headers the CDN will use.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use phoenix_domain::ObjectKey;
use phoenix_domain::ports::{ObjectStore, PutOptions, StoreError};
use phoenix_storage::local::{LocalObjectStore, PresignError};
use time::OffsetDateTime;

#[derive(Clone)]
struct ObjectState {
    store: LocalObjectStore,
    max_upload_bytes: u64,
}

pub fn router(store: LocalObjectStore, max_upload_bytes: u64) -> Router {
    Router::new()
        .route("/_objects/{*key}", get(presigned_get).put(presigned_put))
        .route("/derived/{*rest}", get(public_derivative))
        // S3 reads any length; ours stops just past the largest upload a URL can be signed for.
        .layer(DefaultBodyLimit::max(max_upload_bytes as usize + 1))
        .with_state(ObjectState { store, max_upload_bytes })
}

/// An S3-style XML error.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn presign_error(e: PresignError) -> Response {
    s3_error(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN), e.code(), &e.to_string())
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound => s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist."),
        other => {
            tracing::error!(error = %other, "object store failed");
            s3_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Please reduce your request rate.")
        }
    }
}

fn bad_key() -> Response {
    s3_error(StatusCode::BAD_REQUEST, "InvalidArgument", "Invalid object key")
}

async fn presigned_put(
    State(state): State<ObjectState>,
    Path(raw_key): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(key) = ObjectKey::parse(&raw_key) else {
        return bad_key();
    };
    let Some(length) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    else {
        return s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        );
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Err(e) =
        state.store.verify_presigned("PUT", &key, &query, content_type, Some(length), OffsetDateTime::now_utc())
    {
        return presign_error(e);
    }
    if body.len() as u64 != length || length > state.max_upload_bytes {
        return presign_error(PresignError::BadContentLength);
    }
    let options = PutOptions { content_type: content_type.map(str::to_owned), cache_control: None };
    match state.store.put(&key, body, options).await {
        Ok(info) => (StatusCode::OK, [(header::ETAG, format!("\"{}\"", info.etag))]).into_response(),
        Err(e) => store_error(e),
    }
}

async fn presigned_get(
    State(state): State<ObjectState>,
    Path(raw_key): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Ok(key) = ObjectKey::parse(&raw_key) else {
        return bad_key();
    };
    if let Err(e) = state.store.verify_presigned("GET", &key, &query, None, None, OffsetDateTime::now_utc()) {
        return presign_error(e);
    }
    serve(&state.store, &key, &headers, None).await
}

async fn public_derivative(State(state): State<ObjectState>, Path(rest): Path<String>, headers: HeaderMap) -> Response {
    let Some(key) = phoenix_domain::keys::derived_from_path(&rest) else {
        return bad_key();
    };
    serve(&state.store, &key, &headers, Some(phoenix_domain::keys::DERIVATIVE_CACHE_CONTROL)).await
}

async fn serve(
    store: &LocalObjectStore,
    key: &ObjectKey,
    headers: &HeaderMap,
    cache_control: Option<&str>,
) -> Response {
    let head = match store.head(key).await {
        Ok(h) => h,
        Err(e) => return store_error(e),
    };
    let etag = format!("\"{}\"", head.etag);
    let cache_control =
        head.cache_control.clone().or(cache_control.map(str::to_owned)).unwrap_or_else(|| "private, no-store".into());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)])
            .into_response();
    }
    let (info, bytes) = match store.get(key, u64::MAX).await {
        Ok(found) => found,
        Err(e) => return store_error(e),
    };
    let content_type = info.content_type.unwrap_or_else(|| "application/octet-stream".into());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache_control)
        // Never let a browser sniff an upload into something executable.
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
