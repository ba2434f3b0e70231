//! Media endpoints: create an upload, read one record, list a model's media.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use phoenix_domain::ports::MediaQuery;
use phoenix_domain::upload::{UploadRequest, create_upload as create};
use phoenix_domain::{MediaId, MediaRecord, MediaStatus, ModelId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

fn model_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|e| ApiError::InvalidId(e.to_string()))
}

fn media_id(raw: &str) -> Result<MediaId, ApiError> {
    MediaId::parse(raw).map_err(|e| ApiError::InvalidId(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadBody {
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
}

pub async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_model): ApiPath<String>,
    ApiJson(body): ApiJson<CreateUploadBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "media_id": record.media_id,
            "status": record.status,
            "upload": upload,
        })),
    ))
}

pub async fn get_media(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_model, raw_media)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let model = model_id(&raw_model)?;
    caller.authorize(&model)?;
    let media = media_id(&raw_media)?;
    let record = state.metadata.get_media(&model, &media).await.map_err(|e| match e {
        phoenix_domain::StoreError::NotFound => ApiError::NotFound(format!("media {media} not found")),
        other => other.into(),
    })?;
    Ok(Json(render(&state, &caller, &record).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub async fn list_media(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_model): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"items": items, "next_cursor": page.next_cursor})))
}

#[derive(Serialize)]
struct DerivativeView<'a> {
    preset: &'a str,
    preset_version: u32,
    format: &'a str,
    width: u32,
    height: u32,
    bytes: u64,
    url: String,
}

/// The public shape of a record: no storage keys, claims or hashes.
async fn render(state: &AppState, caller: &Caller, record: &MediaRecord) -> Result<Value, ApiError> {
    let mut derivatives = Vec::with_capacity(record.derivatives.len());
    for d in &record.derivatives {
        derivatives.push(DerivativeView {
            preset: &d.preset,
            preset_version: d.preset_version,
            format: &d.format,
            width: d.width,
            height: d.height,
            bytes: d.bytes,
            url: state.derivative_url(&d.key).await?,
        });
    }
    let mut body = json!({
        "media_id": record.media_id,
        "model_id": record.model_id,
        "status": record.status,
        "filename": record.filename,
        "content_type": record.content_type,
        "declared_bytes": record.declared_bytes,
        "created_at": record.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "updated_at": record.updated_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "version": record.version,
        "derivatives": derivatives,
    });
    if let Some(s) = &record.source {
        body["source"] = json!({
            "format": s.format,
            "width": s.width,
            "height": s.height,
            "bytes": s.bytes,
            "orientation": s.orientation,
            "camera_make": s.camera_make,
            "camera_model": s.camera_model,
            "lens": s.lens,
            "captured_at": s.captured_at,
            "artist": s.artist,
            "copyright": s.copyright,
        });
        body["placeholder"] = json!({"thumbhash": s.placeholder, "dominant_color": s.dominant_color});
        // A model's whereabouts are for the agency's eyes only (and only kept when configured).
        if let (Some(gps), Role::Admin) = (&s.gps, &caller.role) {
            body["source"]["gps"] = json!({"latitude": gps.latitude, "longitude": gps.longitude});
        }
    }
    if let Some(r) = &record.rejection {
        body["rejection"] = json!({"code": r.code, "message": r.message});
    }
    Ok(body)
}
