//! Reading media: one in full (with its ETag), a filtered page, a batch across models.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use phoenix_domain::library::likely_duplicates;
use phoenix_domain::ports::{MediaQuery, bounds};
use phoenix_domain::{Category, GalleryId, MediaId, MediaRecord, MediaStatus, ModelId, Tag};
use phoenix_http::conditional::Tagged;
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, MediaPath, ModelPath};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, PartialSchema};

use crate::state::MediaState;
use crate::views::{BatchGetBody, BatchGetResult, ListItem, MediaKeyView, MediaPage, MediaView};

/// One media in full: its metadata, derivatives' URLs, review, history and likely duplicates.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media/{media_id}",
    tag = "media",
    params(
        MediaPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = MediaView, headers(("ETag" = String, description = "Strong validator; send as If-Match to edit"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such media", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_media(
    State(state): State<MediaState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<MediaPath>,
) -> Result<Response, ApiError> {
    let (model, media) = path.authorized(&caller)?;
    let (record, fingerprints) = state
        .ports
        .metadata
        .get_media_with_fingerprints(&model, &media)
        .await
        .map_err(phoenix_domain::MediaError::reading(media))?;
    // A media in the trash is gone for readers: the trash's listing is where it shows.
    let record = phoenix_domain::media::unless_trashed(record)?;
    let duplicates = likely_duplicates(&record, &fingerprints);
    let view = render(&state, &caller, &record).await?.with_detail(&record, duplicates);
    Ok(Tagged::new(&view, record.version)?.respond_to(&headers))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only media in this status; `deleted` lists the trash (alone, or with a creation range).
    #[param(pattern = "^(uploading|processing|pending_review|approved|rejected|deleted)$")]
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
    /// Only these fields of each item (comma-separated names of the media's fields, e.g.
    /// `media_id,status,caption,placeholder`); `media_id` always comes. Leaner pages for grids.
    #[param(pattern = "^[a-z_]+(,[a-z_]+)*$")]
    pub fields: Option<String>,
}

/// The fields a list item may be cut down to: the media's own, as documented.
fn list_fields(raw: &str) -> Result<Vec<String>, ApiError> {
    // The documented fields, read off the view's schema once, not per request.
    static KNOWN: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| match MediaView::schema() {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object)) => {
            object.properties.keys().cloned().collect()
        }
        _ => Vec::new(),
    });
    let known = &*KNOWN;
    raw.split(',')
        .map(|name| {
            let name = name.trim();
            if known.iter().any(|k| k == name) {
                Ok(name.to_owned())
            } else {
                Err(ApiError::InvalidField {
                    field: "fields".into(),
                    message: format!("{name:?} is not a field of a media; use some of {}", known.join(", ")),
                })
            }
        })
        .collect()
}

/// A list item with only `fields` (and `media_id`), or whole (serialised once, as it is).
fn item(view: MediaView, fields: Option<&[String]>) -> Result<ListItem, ApiError> {
    let Some(fields) = fields else { return Ok(ListItem::Whole(Box::new(view))) };
    match serde_json::to_value(view).map_err(|e| ApiError::Unexpected(e.into()))? {
        serde_json::Value::Object(mut map) => {
            map.retain(|name, _| name == "media_id" || fields.iter().any(|f| f == name));
            Ok(ListItem::Fields(map))
        }
        _ => Err(ApiError::Unexpected(anyhow::anyhow!("a media view is a JSON object"))),
    }
}

pub(crate) fn instant(name: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
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
/// may hold fewer than `limit` items and still have a `next_cursor`. Media in the trash are in
/// no listing but `status=deleted` (the trash, with `deleted_at` and `purge_after`), which
/// takes no category, tag or gallery.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/media",
    tag = "media",
    params(ModelPath, ListParams),
    responses(
        (status = 200, body = MediaPage),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_media(
    State(state): State<MediaState>,
    caller: Caller,
    ApiPath(path): ApiPath<ModelPath>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<MediaPage>, ApiError> {
    let model = path.model()?;
    caller.authorize(&model)?;
    let status = params
        .status
        .as_deref()
        .map(|s| MediaStatus::parse(s).ok_or_else(|| ApiError::InvalidRequest(format!("unknown status {s:?}"))))
        .transpose()?;
    let limit = bounds::page_size(params.limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE)).map_err(|_| {
        ApiError::InvalidRequest(format!(
            "limit must be between {} and {}",
            bounds::PAGE_SIZE.start(),
            bounds::PAGE_SIZE.end()
        ))
    })?;
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
    query.check()?;
    let fields = params.fields.as_deref().map(list_fields).transpose()?;
    let page = state.ports.metadata.list_media(&model, &query).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for record in &page.items {
        items.push(item(render(&state, &caller, record).await?, fields.as_deref())?);
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
        AuthenticatedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn batch_get(
    State(state): State<MediaState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchGetBody>,
) -> Result<Json<BatchGetResult>, ApiError> {
    if body.items.is_empty() || body.items.len() > bounds::MAX_BATCH_GET {
        return Err(ApiError::InvalidRequest(format!("items must hold 1 to {} pairs", bounds::MAX_BATCH_GET)));
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
    let found = if fetch.is_empty() { Vec::new() } else { state.ports.metadata.batch_get_media(&fetch).await? };
    let mut items = Vec::with_capacity(found.len());
    let mut missing = Vec::new();
    let mut answered = HashSet::new();
    for (model, media) in &asked {
        if !answered.insert((model.clone(), *media)) {
            continue;
        }
        match found.iter().find(|r| &r.model_id == model && &r.media_id == media) {
            // A media in the trash is missing, exactly like one that does not exist.
            Some(record) if caller.authorize(model).is_ok() && !record.is_trashed() => {
                items.push(render(&state, &caller, record).await?)
            }
            _ => missing.push(MediaKeyView { model_id: model.to_string(), media_id: media.to_string() }),
        }
    }
    Ok(Json(BatchGetResult { items, missing }))
}

/// A record as the caller may see it, with its derivatives' URLs.
pub(crate) async fn render(state: &MediaState, caller: &Caller, record: &MediaRecord) -> Result<MediaView, ApiError> {
    let mut urls = Vec::with_capacity(record.derivatives.len());
    for d in &record.derivatives {
        urls.push(state.derivative_url(&d.key).await?);
    }
    // A model's whereabouts are for the agency's eyes only (and only kept when configured).
    Ok(MediaView::new(record, urls, caller.is_admin()))
}
