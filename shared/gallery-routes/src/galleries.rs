//! A model's galleries: create, list, read (with its ETag), patch (operations under `If-Match`),
//! delete, publish, roll back. Models act on their own galleries, admins on any; another model's
//! gallery is "not found".

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_domain::galleries::republish::{self, Reason};
use phoenix_domain::galleries::{self, CreateGallery, SectionId, Slug, Visibility};
use phoenix_domain::ports::bounds;
use phoenix_domain::{GalleryId, ModelId};
use phoenix_http::conditional::{Tagged, if_match_version, required_precondition};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, ModelPath};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::error::GalleryApiError;
use crate::state::GalleryState;
use crate::views::{CreateGalleryBody, GalleryPage, GalleryView, PatchGalleryBody};

/// `/v1/models/{model_id}/galleries/{gallery_id}…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GalleryPath {
    /// The model (tenant)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    /// The gallery id (26-character ULID, lower case)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub gallery_id: String,
}

impl GalleryPath {
    /// The model and the gallery, if `caller` may act on the model: the model's id (400), the
    /// caller's access (403), the gallery's id (400).
    pub(crate) fn authorized(&self, caller: &Caller) -> Result<(ModelId, GalleryId), ApiError> {
        let model = ModelId::parse(&self.model_id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
        caller.authorize(&model)?;
        let gallery = GalleryId::parse(&self.gallery_id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
        Ok((model, gallery))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 100 (default 50)
    pub limit: Option<usize>,
    /// From the previous page's `next_cursor`
    pub cursor: Option<String>,
}

fn field<T, E: ToString>(name: &str, result: Result<T, E>) -> Result<T, ApiError> {
    result.map_err(|e| ApiError::InvalidField { field: name.to_owned(), message: e.to_string() })
}

fn visibility(raw: Option<&str>) -> Result<Visibility, ApiError> {
    match raw {
        None | Some("private") => Ok(Visibility::Private),
        Some("unlisted") => Ok(Visibility::Unlisted),
        Some("public") => Ok(Visibility::Public),
        Some(_) => field("visibility", Err("must be private, unlisted or public")),
    }
}

fn tagged(gallery: &phoenix_domain::galleries::Gallery, status: StatusCode) -> Result<Response, GalleryApiError> {
    Ok(Tagged::new(&GalleryView::new(gallery), gallery.version)?.with_status(status))
}

/// Creates an empty gallery (items are added with `PATCH`).
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/galleries",
    tag = "galleries",
    params(ModelPath),
    request_body = CreateGalleryBody,
    responses(
        (status = 201, description = "Created", body = GalleryView, headers(
            ("Location" = String, description = "The gallery's URL"),
            ("ETag" = String, description = "Send as `If-Match` to PATCH it"),
        )),
        (status = 400, description = "A field out of bounds (`invalid_request`, `details.field` names it), a malformed body", body = ErrorBody),
        (status = 409, description = "Another gallery has this slug (`slug_taken`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    prefix: Option<Extension<PathPrefix>>,
    ApiPath(path): ApiPath<ModelPath>,
    ApiJson(body): ApiJson<CreateGalleryBody>,
) -> Result<Response, GalleryApiError> {
    let model = path.model()?;
    caller.authorize(&model)?;
    let mut sections = Vec::new();
    for (i, s) in body.sections.unwrap_or_default().into_iter().enumerate() {
        sections.push((field(&format!("sections[{i}].section_id"), SectionId::parse(&s.section_id))?, s.title));
    }
    let request = CreateGallery {
        title: body.title,
        slug: field("slug", Slug::parse(&body.slug))?,
        description: body.description,
        visibility: visibility(body.visibility.as_deref())?,
        sections,
    };
    let gallery = galleries::create(state.ports.metadata.as_ref(), &model, request, OffsetDateTime::now_utc()).await?;
    let mut response = tagged(&gallery, StatusCode::CREATED)?;
    let url =
        PathPrefix::url(prefix.as_ref().map(|p| &p.0), &format!("/v1/models/{model}/galleries/{}", gallery.gallery_id));
    let location = HeaderValue::try_from(url).map_err(|e| ApiError::Unexpected(anyhow::anyhow!("{e}")))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// A model's galleries, newest first.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/galleries",
    tag = "galleries",
    params(ModelPath, ListQuery),
    responses(
        (status = 200, body = GalleryPage),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_galleries(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<ModelPath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<GalleryPage>, GalleryApiError> {
    let model = path.model()?;
    caller.authorize(&model)?;
    let limit = query.limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE);
    let page = galleries::list(state.ports.metadata.as_ref(), &model, limit, query.cursor).await?;
    Ok(axum::Json(GalleryPage {
        items: page.items.iter().map(GalleryView::new).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One gallery: its fields, sections and items in order, its publication.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/galleries/{gallery_id}",
    tag = "galleries",
    params(
        GalleryPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = GalleryView, headers(("ETag" = String, description = "Send as `If-Match` to PATCH it"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<GalleryPath>,
) -> Result<Response, GalleryApiError> {
    let (model, id) = path.authorized(&caller)?;
    let gallery = galleries::get(state.ports.metadata.as_ref(), &model, &id).await?;
    Ok(Tagged::new(&GalleryView::new(&gallery), gallery.version)?.respond_to(&headers))
}

/// Applies operations in order, all or nothing: `set_fields` (title, slug, description,
/// visibility, cover), `insert_items`, `remove_items`, `move_items`, `insert_section`,
/// `remove_section` (with its items), `move_section`, `rename_section`. Requires `If-Match` with
/// the ETag (or `"{version}"`) read; a stale one is 409. Only approved media of the model join
/// (else 422 `media_not_addable`, naming them); each joining media's record is linked to the
/// gallery, each leaving one's unlinked.
#[utoipa::path(
    patch,
    path = "/v1/models/{model_id}/galleries/{gallery_id}",
    tag = "galleries",
    params(
        GalleryPath,
        ("If-Match" = String, Header, description = "The ETag (or `\"{version}\"`) read"),
    ),
    request_body = PatchGalleryBody,
    responses(
        (status = 200, body = GalleryView, headers(("ETag" = String))),
        (status = 400, description = "A bad operation (`invalid_request`, `details.field` names it: `operations[2].position`)", body = ErrorBody),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        (status = 409, description = "The gallery changed since it was read (`version_conflict`, `details.current_version`), or the new slug is taken (`slug_taken`)", body = ErrorBody),
        (status = 422, description = "Media that cannot join: not approved, in the trash, absent, or in 25 galleries already (`media_not_addable`, `details.media_ids`)", body = ErrorBody),
        (status = 428, description = "No `If-Match`", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn patch_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<GalleryPath>,
    ApiJson(body): ApiJson<PatchGalleryBody>,
) -> Result<Response, GalleryApiError> {
    let (model, id) = path.authorized(&caller)?;
    let expected = required_precondition(&headers, None)?;
    let now = OffsetDateTime::now_utc();
    let before = galleries::get(state.ports.metadata.as_ref(), &model, &id).await?;
    let gallery =
        galleries::patch(state.domain(), &model, &id, expected, body.operations, &caller.subject, now).await?;
    republish::request_after_gallery_change(state.ports.queue.as_ref(), &before, Some(&gallery), Reason::Gallery).await;
    tagged(&gallery, StatusCode::OK)
}

/// Deletes the gallery: its published versions leave the public routes at once, and its media
/// lose their link to it (the media themselves stay). `If-Match` is optional.
#[utoipa::path(
    delete,
    path = "/v1/models/{model_id}/galleries/{gallery_id}",
    tag = "galleries",
    params(
        GalleryPath,
        ("If-Match" = Option<String>, Header, description = "Delete only if still at this ETag (or `\"{version}\"`)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        (status = 409, description = "The gallery changed since the ETag sent (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<GalleryPath>,
) -> Result<Response, GalleryApiError> {
    let (model, id) = path.authorized(&caller)?;
    let expected = if_match_version(&headers)?;
    let before = galleries::get(state.ports.metadata.as_ref(), &model, &id).await?;
    galleries::delete(state.domain(), &model, &id, expected, &caller.subject, OffsetDateTime::now_utc()).await?;
    state.ports.cache.forget(&id);
    republish::request_after_gallery_change(state.ports.queue.as_ref(), &before, None, Reason::Gallery).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Publishes the gallery as its next version: an immutable document of what may be public now
/// (approved media within their usage rights; captions, alt text, credits, sizes, WebP and JPEG
/// `srcset`s, placeholders, dominant colours; never GPS, moderation data, original keys or
/// history), then moves the public pointer to it, at once.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/publish",
    tag = "galleries",
    params(GalleryPath),
    responses(
        (status = 200, description = "Published; `publication.current_version` is the new version", body = GalleryView, headers(("ETag" = String))),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        (status = 409, description = "The gallery changed while it was published (`version_conflict`): publish again", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn publish_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<GalleryPath>,
) -> Result<Response, GalleryApiError> {
    let (model, id) = path.authorized(&caller)?;
    let now = OffsetDateTime::now_utc();
    let gallery =
        galleries::publish(state.domain(), &model, &id, &caller.subject, &state.config.media_base, now).await?;
    // The CDN may hold the previous version (or a miss): only invalidated, not published again.
    republish::request_for(state.ports.queue.as_ref(), &model, [&id], Reason::Published).await;
    tagged(&gallery, StatusCode::OK)
}

/// Moves the public pointer back to the version published before the current one (each call
/// goes one further back); the versions stay stored. The next publish takes a new number.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/publish/rollback",
    tag = "galleries",
    params(
        GalleryPath,
        ("If-Match" = Option<String>, Header, description = "Roll back only if still at this ETag (or `\"{version}\"`)"),
    ),
    responses(
        (status = 200, description = "Rolled back; `publication.current_version` is the version now public", body = GalleryView, headers(("ETag" = String))),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        (status = 409, description = "Never published, or no earlier version (`invalid_state`); a stale `If-Match` (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn rollback_gallery(
    State(state): State<GalleryState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<GalleryPath>,
) -> Result<Response, GalleryApiError> {
    let (model, id) = path.authorized(&caller)?;
    let expected = if_match_version(&headers)?;
    let gallery = galleries::rollback(state.domain(), &model, &id, expected, OffsetDateTime::now_utc()).await?;
    republish::request_for(state.ports.queue.as_ref(), &model, [&id], Reason::Published).await;
    tagged(&gallery, StatusCode::OK)
}
