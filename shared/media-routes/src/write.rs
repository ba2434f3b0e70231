//! Changing media: edits, moderation and deletion. Each parses and authorizes, then calls the
//! domain's use case — the same one a batch or a job calls — and renders what it returns.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use phoenix_domain::library::{MediaPatch, ReviewRequest};
use phoenix_domain::media;
use phoenix_domain::{Category, Credit, FocalPoint, ReviewDecision, Tag, Violation};
use phoenix_http::conditional::{Tagged, if_match_version, precondition, required_precondition};
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, Caller, ErrorBody, MediaPath};
use time::OffsetDateTime;
use utoipa::IntoResponses;

use crate::read::{instant, render};
use crate::state::MediaState;
use crate::views::{DecisionView, MediaPatchBody, MediaView, ReviewBody};

/// What a change to one media answers when it applied, and when there is no such media.
#[derive(IntoResponses)]
#[allow(dead_code, clippy::large_enum_variant)] // documentation only: handlers answer through `Tagged` and `ApiError`
enum MediaChanged {
    /// The media as changed; its `ETag` names the new version
    #[response(status = 200, headers(("ETag" = String)))]
    Changed(MediaView),
    /// No such media
    #[response(status = 404)]
    NotFound(ErrorBody),
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
    params(MediaPath, ("If-Match" = Option<String>, Header, description = "The ETag read; or send `version` in the body")),
    request_body = MediaPatchBody,
    responses(
        MediaChanged,
        (status = 400, description = "Invalid body, field or id", body = ErrorBody),
        (status = 409, description = "Stale version; `details.current_version` is the current one", body = ErrorBody),
        (status = 428, description = "Neither If-Match nor version was sent", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn patch_media(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
    ApiJson(body): ApiJson<MediaPatchBody>,
) -> Result<Response, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let expected = required_precondition(&headers, body.version)?;
    let patch = to_patch(body)?;
    let ports = &state.ports;
    let outcome = media::edit(
        ports.metadata.as_ref(),
        ports.queue.as_ref(),
        &model,
        &media,
        expected,
        patch,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let view = render(&state, &caller, &outcome.record).await?;
    Ok(Tagged::new(&view, outcome.record.version)?.with_status(StatusCode::OK))
}

/// Approves or rejects a media (admins only). Rejection names violations, and takes a
/// published media out of its published galleries.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/{media_id}/review",
    tag = "media",
    params(MediaPath, ("If-Match" = Option<String>, Header, description = "Optional: the ETag reviewed")),
    request_body = ReviewBody,
    responses(
        MediaChanged,
        (status = 400, description = "Invalid body or id", body = ErrorBody),
        (status = 403, description = "Only admins review", body = ErrorBody),
        (status = 409, description = "Stale version, or the media is not in a reviewable state", body = ErrorBody),
        AuthenticatedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn review_media(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Response, ApiError> {
    let model = path.model()?;
    caller.authorize(&model)?;
    caller.require_admin("approve or reject")?;
    let media = path.media()?;
    let expected = precondition(&headers, body.version)?;
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
    let (record, _) = media::review(
        state.ports.metadata.as_ref(),
        state.ports.queue.as_ref(),
        &model,
        &media,
        expected,
        request,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let view = render(&state, &caller, &record).await?;
    Ok(Tagged::new(&view, record.version)?.with_status(StatusCode::OK))
}

/// Moves a media to the trash: it is gone at once for readers (404 afterwards, out of every
/// listing, gallery and batch get) and restorable with `POST …/restore` for the grace period
/// (`PHOENIX_TRASH_GRACE_SECS`); after it, its record and every object it owns are purged.
#[utoipa::path(
    delete,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(MediaPath, ("If-Match" = Option<String>, Header, description = "Optional: delete only if still this ETag's version")),
    responses(
        (status = 204, description = "In the trash"),
        (status = 400, description = "Malformed id or If-Match", body = ErrorBody),
        (status = 404, description = "No such media (or it is in the trash already)", body = ErrorBody),
        (status = 409, description = "Stale version", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_media(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
) -> Result<StatusCode, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let expected = if_match_version(&headers)?;
    let now = OffsetDateTime::now_utc();
    media::delete(
        state.ports.metadata.as_ref(),
        state.ports.queue.as_ref(),
        &model,
        &media,
        expected,
        &caller.subject,
        now,
        state.config.trash.grace,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a restore answers.
#[derive(IntoResponses)]
#[allow(dead_code, clippy::large_enum_variant)] // documentation only: the handler answers through `Tagged` and `ApiError`
enum MediaRestored {
    /// The media as it was before the delete (a new version); its `ETag` names that version
    #[response(status = 200, headers(("ETag" = String)))]
    Restored(MediaView),
    /// Not in the trash: never deleted, or already purged
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// Brings a media back from the trash within its grace period: the status it had, its metadata,
/// galleries and derivatives, as before the delete (a new version, a history line `restored`).
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/media/{media_id}/restore",
    tag = "media",
    params(MediaPath, ("If-Match" = Option<String>, Header, description = "Optional: restore only if the trashed media is still at this version")),
    responses(
        MediaRestored,
        (status = 400, description = "Malformed id or If-Match", body = ErrorBody),
        (status = 409, description = "The grace period has passed and the media is being purged (`invalid_state`), or a stale If-Match (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn restore_media(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
) -> Result<Response, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let expected = if_match_version(&headers)?;
    let now = OffsetDateTime::now_utc();
    let record = media::restore(
        state.ports.metadata.as_ref(),
        state.ports.queue.as_ref(),
        &model,
        &media,
        expected,
        &caller.subject,
        now,
    )
    .await?;
    let view = render(&state, &caller, &record).await?;
    Ok(Tagged::new(&view, record.version)?.with_status(StatusCode::OK))
}
