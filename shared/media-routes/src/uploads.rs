//! Creating an upload: the record in `uploading` and a presigned PUT for its bytes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use phoenix_domain::media::{UploadRequest, create_upload as create};
use phoenix_http::openapi::{AuthenticatedErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, Caller, ErrorBody, ModelPath};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::state::MediaState;
use crate::views::{CreateUploadBody, UploadCreated};

/// Creates the media record and returns a presigned PUT for its bytes.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/uploads",
    tag = "media",
    params(ModelPath),
    request_body = CreateUploadBody,
    responses(
        (status = 201, description = "Record created (`uploading`); PUT the bytes with `upload`", body = UploadCreated),
        (status = 400, description = "Invalid body, filename or id", body = ErrorBody),
        (status = 413, description = "`bytes` over the upload limit, or the body too large", body = ErrorBody),
        (status = 415, description = "Content type not accepted, or the body is not JSON", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_upload(
    State(state): State<MediaState>,
    caller: Caller,
    ApiPath(path): ApiPath<ModelPath>,
    ApiJson(body): ApiJson<CreateUploadBody>,
) -> Result<(StatusCode, Json<UploadCreated>), ApiError> {
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
    let created = UploadCreated {
        media_id: record.media_id.to_string(),
        status: record.status.as_str().to_owned(),
        upload: upload.into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}
