//! Media endpoints: uploads, reads (one, a page, a batch), edits, moderation and deletion.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use phoenix_domain::library::{MediaCommand, MediaPatch, ReviewRequest, apply_patch, apply_review, likely_duplicates};
use phoenix_domain::ports::MediaQuery;
use phoenix_domain::upload::{UploadRequest, create_upload as create};
use phoenix_domain::{
    Category, Credit, FocalPoint, GalleryId, MediaId, MediaRecord, MediaStatus, ModelId, QueueName, ReviewDecision,
    StoreError, Tag, Violation,
};
use serde::Deserialize;
use sha2::Digest;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;
use utoipa::IntoParams;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    BatchGetBody, BatchGetResult, CreateUploadBody, DecisionView, ErrorBody, MediaKeyView, MediaPage, MediaPatchBody,
    MediaView, ReviewBody, UploadCreated,
};

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;
/// As DynamoDB's BatchGetItem: one round trip.
pub const MAX_BATCH_GET: usize = 100;

fn model_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|e| ApiError::InvalidId(e.to_string()))
}

fn media_id(raw: &str) -> Result<MediaId, ApiError> {
    MediaId::parse(raw).map_err(|e| ApiError::InvalidId(e.to_string()))
}

/// Creates the media record and returns a presigned PUT for its bytes.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/uploads",
    tag = "media",
    params(("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = CreateUploadBody,
    responses(
        (status = 201, description = "Record created (`uploading`); PUT the bytes with `upload`", body = UploadCreated),
        (status = 400, description = "Invalid body, filename or id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not this caller's model", body = ErrorBody),
        (status = 413, description = "`bytes` over the upload limit, or the body too large", body = ErrorBody),
        (status = 415, description = "Content type not accepted", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_model): ApiPath<String>,
    ApiJson(body): ApiJson<CreateUploadBody>,
) -> Result<(StatusCode, Json<UploadCreated>), ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let request = UploadRequest { filename: body.filename, content_type: body.content_type, bytes: body.bytes };
    let span = tracing::info_span!("create_upload", model_id = %model);
    let (record, upload) = create(
        state.objects.as_ref(),
        state.metadata.as_ref(),
        &state.limits,
        &model,
        request,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .instrument(span)
    .await?;
    tracing::info!(model_id = %model, media_id = %record.media_id, "upload created");
    let created = UploadCreated {
        media_id: record.media_id.to_string(),
        status: record.status.as_str().to_owned(),
        upload: upload.into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

fn not_found(media: &MediaId) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("media {media} not found")),
        other => other.into(),
    }
}

/// A strong validator of one representation: the record's version (so `If-Match` can name the
/// version it read) and a hash of the exact bytes sent (what a caller may see differs by role).
fn etag_for(version: u64, body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    format!("\"{version}-{}\"", hex::encode(&digest[..8]))
}

/// The version an `If-Match` header names: `"{version}-…"` as sent in `ETag`, or `"{version}"`.
fn if_match_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = headers.get(IF_MATCH) else { return Ok(None) };
    let bad =
        || ApiError::InvalidRequest("If-Match must be the ETag of the media as read (\"{version}-{hash}\")".into());
    let text = raw.to_str().map_err(|_| bad())?.trim();
    let quoted = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(bad)?;
    let version = quoted.split('-').next().unwrap_or_default();
    version.parse::<u64>().map(Some).map_err(|_| bad())
}

/// The version a write is based on, from `If-Match` or the body; both must agree if both come.
fn precondition(headers: &HeaderMap, body_version: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (if_match_version(headers)?, body_version) {
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::InvalidRequest(format!("If-Match names version {a} but the body says version {b}")))
        }
        (header, body) => Ok(header.or(body)),
    }
}

fn check_version(record: &MediaRecord, expected: Option<u64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != record.version => Err(ApiError::VersionConflict {
            message: format!("the media is at version {}, not {v}; read it again and retry", record.version),
            current_version: Some(record.version),
        }),
        _ => Ok(()),
    }
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::VersionConflict { current } => ApiError::VersionConflict {
            message: "the media changed while this request was applied; read it again and retry".into(),
            current_version: current,
        },
        StoreError::NotFound => ApiError::NotFound("the media was deleted meanwhile".into()),
        other => other.into(),
    }
}

/// A media as JSON with its `ETag`.
fn with_etag(view: &MediaView, version: u64) -> Result<(String, Vec<u8>), ApiError> {
    let body = serde_json::to_vec(view).map_err(|e| ApiError::Unexpected(e.into()))?;
    Ok((etag_for(version, &body), body))
}

fn json_response(status: StatusCode, etag: Option<&str>, body: Vec<u8>) -> Response {
    let mut response = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// One media in full: its metadata, derivatives' URLs, review, history and likely duplicates.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(
        ("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("media_id" = String, Path, description = "The media id (26-character ULID, lower case)", pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = MediaView, headers(("ETag" = String, description = "Strong validator; send as If-Match to edit"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not this caller's model", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_media(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let media = media_id(&raw_media)?;
    let (record, fingerprints) =
        state.metadata.get_media_with_fingerprints(&model, &media).await.map_err(not_found(&media))?;
    let duplicates = likely_duplicates(&record, &fingerprints);
    let view = render(&state, &caller, &record).await?.with_detail(&record, duplicates);
    let (etag, body) = with_etag(&view, record.version)?;
    let matches = headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        },
    );
    if matches {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(ETAG, value);
        }
        return Ok(response);
    }
    Ok(json_response(StatusCode::OK, Some(&etag), body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only media in this status.
    #[param(pattern = "^(uploading|processing|pending_review|approved|rejected)$")]
    pub status: Option<String>,
    /// Only media of this category.
    #[param(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub category: Option<String>,
    /// Only media with this tag.
    #[param(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub tag: Option<String>,
    /// Only media in this gallery.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub gallery: Option<String>,
    /// Created at or after this instant (RFC 3339).
    pub created_from: Option<String>,
    /// Created before this instant (RFC 3339, exclusive).
    pub created_to: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`, with the same filters.
    pub cursor: Option<String>,
}

fn instant(name: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| ApiError::InvalidRequest(format!("{name} must be an RFC 3339 instant, e.g. 2026-11-24T09:30:00Z")))
}

fn label<T>(
    name: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Result<T, phoenix_domain::IdError>,
) -> Result<Option<T>, ApiError> {
    raw.map(|r| parse(r).map_err(|e| ApiError::InvalidRequest(format!("{name}: {e}")))).transpose()
}

/// A model's media, newest first, a page at a time. Filters combine; with more than one, a page
/// may hold fewer than `limit` items and still have a `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media",
    tag = "media",
    params(("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$"), ListParams),
    responses(
        (status = 200, body = MediaPage),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not this caller's model", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_media(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_model): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<MediaPage>, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let status = params
        .status
        .as_deref()
        .map(|s| MediaStatus::parse(s).ok_or_else(|| ApiError::InvalidRequest(format!("unknown status {s:?}"))))
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let query = MediaQuery {
        status,
        category: label("category", params.category.as_deref(), Category::parse)?,
        tag: label("tag", params.tag.as_deref(), Tag::parse)?,
        gallery: label("gallery", params.gallery.as_deref(), GalleryId::parse)?,
        created_from: params.created_from.as_deref().map(|t| instant("created_from", t)).transpose()?,
        created_before: params.created_to.as_deref().map(|t| instant("created_to", t)).transpose()?,
        limit,
        cursor: params.cursor,
    };
    let page = state.metadata.list_media(&model, &query).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for record in &page.items {
        items.push(render(&state, &caller, record).await?);
    }
    Ok(Json(MediaPage { items, next_cursor: page.next_cursor }))
}

/// Up to 100 media of any models in one call; what the caller may not see counts as missing.
#[utoipa::path(
    post,
    path = "/v1/media/batch-get",
    tag = "media",
    request_body = BatchGetBody,
    responses(
        (status = 200, body = BatchGetResult),
        (status = 400, description = "Malformed body or id, or not 1 to 100 items", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn batch_get(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchGetBody>,
) -> Result<Json<BatchGetResult>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_BATCH_GET {
        return Err(ApiError::InvalidRequest(format!("items must hold 1 to {MAX_BATCH_GET} pairs")));
    }
    let mut asked = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.iter().enumerate() {
        let model = ModelId::parse(&item.model_id).map_err(|e| ApiError::InvalidId(format!("items[{i}]: {e}")))?;
        let media = MediaId::parse(&item.media_id).map_err(|e| ApiError::InvalidId(format!("items[{i}]: {e}")))?;
        asked.push((model, media));
    }
    let mut seen = HashSet::new();
    let fetch: Vec<(ModelId, MediaId)> = asked
        .iter()
        .filter(|(model, _)| caller.authorize(model).is_ok())
        .filter(|k| seen.insert((*k).clone()))
        .cloned()
        .collect();
    let found = if fetch.is_empty() { Vec::new() } else { state.metadata.batch_get_media(&fetch).await? };
    let mut items = Vec::with_capacity(found.len());
    let mut missing = Vec::new();
    let mut answered = HashSet::new();
    for (model, media) in &asked {
        if !answered.insert((model.clone(), *media)) {
            continue;
        }
        match found.iter().find(|r| &r.model_id == model && &r.media_id == media) {
            Some(record) if caller.authorize(model).is_ok() => items.push(render(&state, &caller, record).await?),
            _ => missing.push(MediaKeyView { model_id: model.to_string(), media_id: media.to_string() }),
        }
    }
    Ok(Json(BatchGetResult { items, missing }))
}

fn to_patch(body: MediaPatchBody) -> Result<MediaPatch, ApiError> {
    let invalid = |field: &str, e: phoenix_domain::IdError| ApiError::InvalidRequest(format!("{field}: {e}"));
    Ok(MediaPatch {
        caption: body.caption,
        alt_text: body.alt_text,
        category: body
            .category
            .map(|c| c.map(|c| Category::parse(&c).map_err(|e| invalid("category", e))).transpose())
            .transpose()?,
        tags: body
            .tags
            .map(|tags| {
                tags.unwrap_or_default().iter().map(|t| Tag::parse(t).map_err(|e| invalid("tags", e))).collect()
            })
            .transpose()?,
        credits: body
            .credits
            .map(|cs| cs.unwrap_or_default().into_iter().map(|c| Credit { role: c.role, name: c.name }).collect()),
        focal_point: body.focal_point.map(|p| p.map(|p| FocalPoint { x: p.x, y: p.y })),
        usage_rights_expires_at: body
            .usage_rights_expires_at
            .map(|t| t.map(|t| instant("usage_rights_expires_at", &t)).transpose())
            .transpose()?,
    })
}

/// Edits caption, alt text, category, tags, credits, focal point or usage-rights expiry.
/// Requires the version read (`If-Match` with the ETag, or `version`); a stale one is a 409.
#[utoipa::path(
    patch,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(
        ("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("media_id" = String, Path, description = "The media id (26-character ULID, lower case)", pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; or send `version` in the body"),
    ),
    request_body = MediaPatchBody,
    responses(
        (status = 200, body = MediaView, headers(("ETag" = String))),
        (status = 400, description = "Invalid body, field or id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not this caller's model", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        (status = 409, description = "Stale version; `details.current_version` is the current one", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 428, description = "Neither If-Match nor version was sent", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch_media(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MediaPatchBody>,
) -> Result<Response, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let media = media_id(&raw_media)?;
    let expected = precondition(&headers, body.version)?.ok_or_else(|| {
        ApiError::PreconditionRequired("send If-Match with the ETag you read, or the version in the body".into())
    })?;
    let patch = to_patch(body)?;
    if patch.is_empty() {
        return Err(ApiError::InvalidRequest("name at least one field to change".into()));
    }
    let mut record = state.metadata.get_media(&model, &media).await.map_err(not_found(&media))?;
    check_version(&record, Some(expected))?;
    let now = OffsetDateTime::now_utc();
    let changes = apply_patch(&mut record, patch, &caller.subject, now)?;
    if !changes.is_empty() {
        state.metadata.update_media(&record).await.map_err(conflict)?;
        tracing::info!(fields = ?changes.fields, version = record.version, "media edited");
        if changes.contains("focal_point") && record.source.is_some() {
            // The crops follow the focal point. The edit is saved either way; if the queue is
            // down the crops stay as they were until the next regeneration.
            let command =
                MediaCommand::Regenerate { model_id: model.clone(), media_id: media, presets: Vec::new(), crops: true };
            if let Err(e) = send(&state, &command, std::time::Duration::ZERO).await {
                tracing::error!(error = %format!("{e:#}"), "could not queue the crop regeneration");
            }
        }
    }
    let view = render(&state, &caller, &record).await?;
    let (etag, bytes) = with_etag(&view, record.version)?;
    Ok(json_response(StatusCode::OK, Some(&etag), bytes))
}

async fn send(state: &AppState, command: &MediaCommand, delay: std::time::Duration) -> Result<String, StoreError> {
    let body = serde_json::to_string(command).map_err(|e| StoreError::Invalid(e.to_string()))?;
    state.queue.send(&QueueName::INGEST, &body, delay).await
}

/// Approves or rejects a media (admins only). Rejection names violations, and takes a
/// published media out of its published galleries.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/{media_id}/review",
    tag = "media",
    params(
        ("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("media_id" = String, Path, description = "The media id (26-character ULID, lower case)", pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$"),
        ("If-Match" = Option<String>, Header, description = "Optional: the ETag reviewed"),
    ),
    request_body = ReviewBody,
    responses(
        (status = 200, body = MediaView, headers(("ETag" = String))),
        (status = 400, description = "Invalid body or id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Only admins review", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        (status = 409, description = "Stale version, or the media is not in a reviewable state", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn review_media(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Response, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    if caller.role != Role::Admin {
        return Err(ApiError::Forbidden("only the agency's reviewers (admins) may approve or reject".into()));
    }
    let media = media_id(&raw_media)?;
    let expected = precondition(&headers, body.version)?;
    let mut record = state.metadata.get_media(&model, &media).await.map_err(not_found(&media))?;
    check_version(&record, expected)?;
    let request = ReviewRequest {
        decision: match body.decision {
            DecisionView::Approve => ReviewDecision::Approve,
            DecisionView::Reject => ReviewDecision::Reject,
        },
        violations: body
            .violations
            .into_iter()
            .map(|v| Violation { code: v.code, severity: v.severity.into(), note: v.note })
            .collect(),
        note: body.note,
    };
    let outcome = apply_review(&mut record, request, &caller.subject, OffsetDateTime::now_utc())?;
    state.metadata.update_media(&record).await.map_err(conflict)?;
    tracing::info!(status = record.status.as_str(), withdrawn_from = ?outcome.withdrawn_from, "media reviewed");
    let view = render(&state, &caller, &record).await?;
    let (etag, bytes) = with_etag(&view, record.version)?;
    Ok(json_response(StatusCode::OK, Some(&etag), bytes))
}

/// Deletes a media: it is gone at once (404 afterwards, out of every listing and gallery); its
/// original and derivatives are removed in the background, with retries.
#[utoipa::path(
    delete,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(
        ("model_id" = String, Path, description = "The model (tenant)", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("media_id" = String, Path, description = "The media id (26-character ULID, lower case)", pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$"),
        ("If-Match" = Option<String>, Header, description = "Optional: delete only if still this ETag's version"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id or If-Match", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not this caller's model", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        (status = 409, description = "Stale version", body = ErrorBody),
        (status = 503, description = "A dependency is unavailable; nothing was deleted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_media(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let media = media_id(&raw_media)?;
    let expected = if_match_version(&headers)?;
    let record = state.metadata.get_media(&model, &media).await.map_err(not_found(&media))?;
    check_version(&record, expected)?;
    // The purge is queued first, delayed: if the delete below fails, the purge finds the record
    // alive and does nothing; if it succeeds, nothing is lost even if this process dies now.
    send(&state, &MediaCommand::Purge { model_id: model.clone(), media_id: media }, state.purge_delay).await?;
    state.metadata.delete_media(&record).await.map_err(conflict)?;
    tracing::info!(galleries = record.galleries.len(), "media deleted; purge queued");
    Ok(StatusCode::NO_CONTENT)
}

async fn render(state: &AppState, caller: &Caller, record: &MediaRecord) -> Result<MediaView, ApiError> {
    let mut urls = Vec::with_capacity(record.derivatives.len());
    for d in &record.derivatives {
        urls.push(state.derivative_url(&d.key).await?);
    }
    // A model's whereabouts are for the agency's eyes only (and only kept when configured).
    Ok(MediaView::new(record, urls, caller.role == Role::Admin))
}
