//! Media endpoints: create an upload, read one record, list a model's media.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use phoenix_domain::ports::MediaQuery;
use phoenix_domain::upload::{UploadRequest, create_upload as create};
use phoenix_domain::{MediaId, MediaRecord, MediaStatus, ModelId};
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::Instrument;
use utoipa::IntoParams;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{CreateUploadBody, ErrorBody, MediaPage, MediaView, UploadCreated};

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

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
    params(("model_id" = String, Path, description = "The model (tenant)")),
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

/// One media record with its derivatives' URLs.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(
        ("model_id" = String, Path, description = "The model (tenant)"),
        ("media_id" = String, Path, description = "The media id (26-character ULID, lower case)"),
    ),
    responses(
        (status = 200, body = MediaView),
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
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
) -> Result<Json<MediaView>, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let media = media_id(&raw_media)?;
    let record = state.metadata.get_media(&model, &media).await.map_err(|e| match e {
        phoenix_domain::StoreError::NotFound => ApiError::NotFound(format!("media {media} not found")),
        other => other.into(),
    })?;
    Ok(Json(render(&state, &caller, &record).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only media in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A model's media, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media",
    tag = "media",
    params(("model_id" = String, Path, description = "The model (tenant)"), ListParams),
    responses(
        (status = 200, body = MediaPage),
        (status = 400, description = "Bad status, limit or cursor", body = ErrorBody),
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
    let page = state.metadata.list_media(&model, &MediaQuery { status, limit, cursor: params.cursor }).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for record in &page.items {
        items.push(render(&state, &caller, record).await?);
    }
    Ok(Json(MediaPage { items, next_cursor: page.next_cursor }))
}

async fn render(state: &AppState, caller: &Caller, record: &MediaRecord) -> Result<MediaView, ApiError> {
    let mut urls = Vec::with_capacity(record.derivatives.len());
    for d in &record.derivatives {
        urls.push(state.derivative_url(&d.key).await?);
    }
    // A model's whereabouts are for the agency's eyes only (and only kept when configured).
    Ok(MediaView::new(record, urls, caller.role == Role::Admin))
}
