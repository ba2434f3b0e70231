//! Uploads: creating one (the record in `uploading` and a presigned PUT for its bytes), and a
//! fresh presigned PUT for a media whose bytes never came.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_domain::media::{UploadRequest, create_upload as create, renew_upload as renew};
use phoenix_domain::{MediaId, ModelId};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::openapi::{AuthenticatedErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, Caller, ErrorBody, MediaPath, ModelPath};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::state::MediaState;
use crate::views::{CreateUploadBody, UploadCreated};

/// The media's own URL (absolute path, with whatever API Gateway's stage or mapping put in front
/// of the routes), for `Location`.
fn media_location(prefix: Option<&PathPrefix>, model: &ModelId, media: &MediaId) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(PathPrefix::url(prefix, &format!("/v1/models/{model}/media/{media}")))
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("a media URL is not a header value: {e}")))
}

/// Creates the media record and returns a presigned PUT for its bytes.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/uploads",
    tag = "media",
    params(ModelPath),
    request_body = CreateUploadBody,
    responses(
        (status = 201, description = "Record created (`uploading`); PUT the bytes with `upload`", body = UploadCreated,
            headers(("Location" = String, description = "The media's URL: `/v1/models/{model_id}/media/{media_id}`"))),
        (status = 400, description = "Invalid body, filename (a path, control or invisible formatting characters such as bidirectional overrides) or id", body = ErrorBody),
        (status = 413, description = "`bytes` over the upload limit, or the body too large", body = ErrorBody),
        (status = 415, description = "Content type not accepted, or the body is not JSON", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_upload(
    State(state): State<MediaState>,
    caller: Caller,
    prefix: Option<Extension<PathPrefix>>,
    ApiPath(path): ApiPath<ModelPath>,
    ApiJson(body): ApiJson<CreateUploadBody>,
) -> Result<Response, ApiError> {
    let model = path.model()?;
    caller.authorize(&model)?;
    let request = UploadRequest { filename: body.filename, content_type: body.content_type, bytes: body.bytes };
    let span = tracing::info_span!("create_upload", model_id = %model);
    let (record, upload) = create(
        state.ports.objects.as_ref(),
        state.ports.metadata.as_ref(),
        &state.config.limits,
        &model,
        request,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .instrument(span)
    .await?;
    tracing::info!(model_id = %model, media_id = %record.media_id, "upload created");
    let location = media_location(prefix.as_ref().map(|p| &p.0), &model, &record.media_id)?;
    let created = UploadCreated {
        media_id: record.media_id.to_string(),
        status: record.status.as_str().to_owned(),
        upload: upload.into(),
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(created)).into_response())
}

/// A fresh presigned PUT for a media still `uploading`: its URL expired, or its bytes never
/// arrived. Bound to the type and length announced at creation; the media's `upload_expires_at`
/// follows it. Earlier URLs stay valid until they expire.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/{media_id}/upload-url",
    tag = "media",
    params(MediaPath),
    responses(
        (status = 200, description = "A fresh presigned PUT; PUT the bytes with `upload`", body = UploadCreated),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such media (or its upload was abandoned and expired)", body = ErrorBody),
        (status = 409, description = "The media is no longer `uploading` (`invalid_state`), or changed meanwhile (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn renew_upload(
    State(state): State<MediaState>,
    caller: Caller,
    ApiPath(path): ApiPath<MediaPath>,
) -> Result<Json<UploadCreated>, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let (record, upload) = renew(
        state.ports.objects.as_ref(),
        state.ports.metadata.as_ref(),
        &state.config.limits,
        &model,
        &media,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(model_id = %model, media_id = %media, "upload URL renewed");
    Ok(Json(UploadCreated {
        media_id: record.media_id.to_string(),
        status: record.status.as_str().to_owned(),
        upload: upload.into(),
    }))
}
