//! Image versions: an edit job (crop, rotate, flip, watermark) makes a new current version and
//! keeps the one it replaces; these routes list a media's versions and make an earlier one current
//! again (as a new version, so nothing is ever overwritten).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use phoenix_domain::library::likely_duplicates;
use phoenix_domain::media::{self, MediaError};
use phoenix_domain::{MediaId, ModelId};
use phoenix_http::conditional::{Tagged, if_match_version};
use phoenix_http::openapi::{AuthenticatedErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiPath, Caller, ErrorBody, MediaPath};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::read::render;
use crate::state::MediaState;
use crate::views::{MediaView, VersionView, VersionsView};

/// `/v1/models/{model_id}/media/{media_id}/versions/{version}/…`: one version of one media.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The model (tenant)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    /// The media id (26-character ULID, lower case)
    #[param(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub media_id: String,
    /// The version's number (`number` in the listing)
    #[param(pattern = "^[1-9][0-9]{0,8}$")]
    pub version: String,
}

impl VersionPath {
    fn parse(&self) -> Result<(ModelId, MediaId, u32), ApiError> {
        let media = MediaPath { model_id: self.model_id.clone(), media_id: self.media_id.clone() };
        let number = self.version.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::InvalidId(format!("version must be a version number (1, 2, …), not {:?}", self.version))
        })?;
        Ok((media.model()?, media.media()?, number))
    }
}

/// A media's image versions, newest first: each with its source, derivatives (with URLs), the
/// watermark it carries and how it was made. `ETag` and `If-None-Match` work as for the media.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media/{media_id}/versions",
    tag = "media",
    params(
        MediaPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = VersionsView, headers(("ETag" = String, description = "Changes with the media"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_versions(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
) -> Result<Response, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let record = media::read_live(state.ports.metadata.as_ref(), &model, &media).await?;
    let mut items = Vec::new();
    for version in record.versions() {
        let mut urls = Vec::with_capacity(version.derivatives.len());
        for d in &version.derivatives {
            urls.push(state.derivative_url(&d.key).await?);
        }
        items.push(VersionView::new(&version, record.image_version, urls));
    }
    let view = VersionsView { current: record.image_version, items };
    Ok(Tagged::new(&view, record.version)?.respond_to(&headers))
}

/// Makes an earlier version current again, as a new version (its source and derivatives are
/// reused, nothing is re-rendered); the version it replaces stays restorable. Answers the media
/// as `GET` does, with its new `ETag`.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/{media_id}/versions/{version}/restore",
    tag = "media",
    params(
        VersionPath,
        ("If-Match" = Option<String>, Header, description = "Optional: restore only if the media is still at this ETag's version"),
    ),
    responses(
        (status = 200, description = "The media, now showing the restored image as a new version", body = MediaView,
            headers(("ETag" = String, description = "The media's new ETag"))),
        (status = 400, description = "Malformed id, version number or If-Match", body = ErrorBody),
        (status = 404, description = "No such media, or no such version (the message lists the versions kept)", body = ErrorBody),
        (status = 409, description = "The version is already the current one (`invalid_state`), or a stale If-Match (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn restore_version(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<VersionPath>,
) -> Result<Response, ApiError> {
    let (model, media, number) = path.parse()?;
    caller.authorize(&model)?;
    let expected = if_match_version(&headers)?;
    let ports = &state.ports;
    // Read before the write: a failure here changes nothing, so the request can simply be retried.
    let (_, fingerprints) =
        ports.metadata.get_media_with_fingerprints(&model, &media).await.map_err(MediaError::reading(media))?;
    let request = media::RestoreRequest {
        model: &model,
        media: &media,
        number,
        expected_version: expected,
        actor: &caller.subject,
        now: OffsetDateTime::now_utc(),
    };
    let record =
        media::restore_version(ports.metadata.as_ref(), ports.objects.as_ref(), ports.queue.as_ref(), request).await?;
    tracing::info!(
        model_id = %model,
        media_id = %media,
        restored = number,
        image_version = record.image_version,
        "version restored"
    );
    let duplicates = likely_duplicates(&record, &fingerprints);
    let view = render(&state, &caller, &record).await?.with_detail(&record, duplicates);
    Ok(Tagged::new(&view, record.version)?.with_status(StatusCode::OK))
}
