//! A gallery's share links, for its model (admins any): make one (its URL `/s/{token}`), list
//! them, revoke one at once, read one's access log; and, for admins, revoke every link of a
//! model (when the model leaves the agency). Another model's link is "not found".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phoenix_domain::galleries;
use phoenix_domain::ports::{ShareLinkStore, bounds};
use phoenix_domain::shares::{self, LinkState, NewShareLink, ShareAccess, ShareKeys, ShareLink};
use phoenix_domain::{ModelId, ShareLinkId};
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors, ModelScopedErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, ModelPath};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::error::GalleryApiError;
use crate::galleries::{GalleryPath, ListQuery};
use crate::state::GalleryState;

/// `…/galleries/{gallery_id}/links/{link_id}…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LinkPath {
    /// The model (tenant)
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    /// The gallery id
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub gallery_id: String,
    /// The link id (26-character ULID, lower case)
    #[param(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub link_id: String,
}

/// What a new link is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkBody {
    /// RFC 3339; at least a minute and at most 365 days ahead
    #[schema(example = "2027-07-01T00:00:00Z")]
    pub expires_at: String,
    /// Who it is for (1 to 200 printable characters), for the owner's own records
    pub recipient: Option<String>,
    /// Whether the page offers each photo's largest rendition as a download (never the
    /// original); default false
    pub allow_download: Option<bool>,
}

/// A share link, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareLinkView {
    pub link_id: String,
    pub model_id: String,
    pub gallery_id: String,
    /// `/s/{token}`: give it to the recipient (on the CDN's domain in AWS, the server's locally)
    pub url: String,
    /// `active`, `expired` or `revoked`
    #[schema(example = "active")]
    pub state: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    pub allow_download: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl ShareLinkView {
    fn new(link: &ShareLink, keys: &ShareKeys, now: OffsetDateTime) -> Self {
        let state = match link.state(now) {
            LinkState::Active => "active",
            LinkState::Expired => "expired",
            LinkState::Revoked => "revoked",
        };
        Self {
            link_id: link.link_id.to_string(),
            model_id: link.model_id.to_string(),
            gallery_id: link.gallery_id.to_string(),
            url: format!("/s/{}", keys.sign(&link.link_id)),
            state: state.to_owned(),
            created_by: link.created_by.clone(),
            created_at: rfc3339(link.created_at),
            expires_at: rfc3339(link.expires_at),
            recipient: link.recipient.clone(),
            allow_download: link.allow_download,
            revoked_at: link.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareLinkPage {
    pub items: Vec<ShareLinkView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One opening of a link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareAccessView {
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A keyed hash of the visitor's address (32 hex digits): equal for visits from one address
    /// while the signing key stays, and never the address itself
    pub client_hash: String,
}

impl From<&ShareAccess> for ShareAccessView {
    fn from(a: &ShareAccess) -> Self {
        Self { at: rfc3339(a.at), user_agent: a.user_agent.clone(), client_hash: a.client_hash.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareAccessPage {
    pub items: Vec<ShareAccessView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What revoking a model's links did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedLinks {
    pub model_id: String,
    /// Links that were active and are now revoked (already ended ones are not counted)
    pub revoked: u64,
}

fn keys(state: &GalleryState) -> Result<&ShareKeys, GalleryApiError> {
    state.config.share_keys.as_ref().ok_or_else(|| {
        ApiError::Unavailable(anyhow::anyhow!("share links are not configured (PHOENIX_SHARE_KEYS)")).into()
    })
}

fn store(state: &GalleryState) -> &dyn ShareLinkStore {
    state.ports.metadata.as_ref()
}

impl LinkPath {
    fn authorized(&self, caller: &Caller) -> Result<(ModelId, phoenix_domain::GalleryId, ShareLinkId), ApiError> {
        let gallery = GalleryPath { model_id: self.model_id.clone(), gallery_id: self.gallery_id.clone() };
        let (model, gallery) = gallery.authorized(caller)?;
        let link = ShareLinkId::parse(&self.link_id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
        Ok((model, gallery, link))
    }
}

/// The link, if it is this gallery's (of this model).
async fn link_of(state: &GalleryState, path: &LinkPath, caller: &Caller) -> Result<ShareLink, GalleryApiError> {
    let (model, gallery, id) = path.authorized(caller)?;
    let link = shares::get_link(store(state), &model, &id).await?;
    if link.gallery_id != gallery {
        return Err(shares::ShareError::NotFound.into());
    }
    Ok(link)
}

/// Makes a share link to the gallery (private ones included): its `url` opens the gallery for
/// anyone holding it until `expires_at`, or until it is revoked.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/links",
    tag = "share links",
    params(GalleryPath),
    request_body = CreateLinkBody,
    responses(
        (status = 201, description = "Made", body = ShareLinkView),
        (status = 400, description = "An expiry out of bounds, a bad recipient (`details.field`)", body = ErrorBody),
        (status = 404, description = "No such gallery of this model", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_link(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<GalleryPath>,
    ApiJson(body): ApiJson<CreateLinkBody>,
) -> Result<Response, GalleryApiError> {
    let (model, gallery) = path.authorized(&caller)?;
    let keys = keys(&state)?;
    let expires_at = OffsetDateTime::parse(&body.expires_at, &Rfc3339).map_err(|_| ApiError::InvalidField {
        field: "expires_at".into(),
        message: "must be an RFC 3339 instant (2027-07-01T00:00:00Z)".into(),
    })?;
    // The gallery must be this model's.
    galleries::get(state.ports.metadata.as_ref(), &model, &gallery).await?;
    let now = OffsetDateTime::now_utc();
    let request =
        NewShareLink { expires_at, recipient: body.recipient, allow_download: body.allow_download.unwrap_or(false) };
    let (link, _token) =
        shares::create_link(store(&state), keys, &model, &gallery, request, &caller.subject, now).await?;
    tracing::info!(link_id = %link.link_id, gallery_id = %gallery, "share link made");
    Ok((StatusCode::CREATED, Json(ShareLinkView::new(&link, keys, now))).into_response())
}

/// The gallery's share links (active and ended, kept 90 days past their expiry), newest first.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/links",
    tag = "share links",
    params(GalleryPath, ListQuery),
    responses(
        (status = 200, body = ShareLinkPage),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_links(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<GalleryPath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ShareLinkPage>, GalleryApiError> {
    let (model, gallery) = path.authorized(&caller)?;
    let keys = keys(&state)?;
    let limit = query.limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE);
    let page = store(&state).list_links(&model, Some(&gallery), limit, query.cursor).await?;
    let now = OffsetDateTime::now_utc();
    Ok(Json(ShareLinkPage {
        items: page.items.iter().map(|l| ShareLinkView::new(l, keys, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revokes a link at once: its next opening is a 410. Revoking again changes nothing.
#[utoipa::path(
    delete,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/links/{link_id}",
    tag = "share links",
    params(LinkPath),
    responses(
        (status = 200, description = "Revoked", body = ShareLinkView),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 404, description = "No such link of this gallery", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn revoke_link(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<LinkPath>,
) -> Result<Json<ShareLinkView>, GalleryApiError> {
    let keys = keys(&state)?;
    let link = link_of(&state, &path, &caller).await?;
    let now = OffsetDateTime::now_utc();
    let revoked = shares::revoke_link(store(&state), &link.model_id, &link.link_id, &caller.subject, now).await?;
    tracing::info!(link_id = %revoked.link_id, "share link revoked");
    Ok(Json(ShareLinkView::new(&revoked, keys, now)))
}

/// A link's access log, newest first: when, which browser, and a keyed hash of the address.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/galleries/{gallery_id}/links/{link_id}/accesses",
    tag = "share links",
    params(LinkPath, ListQuery),
    responses(
        (status = 200, body = ShareAccessPage),
        (status = 400, description = "A malformed id, a bad limit or cursor", body = ErrorBody),
        (status = 404, description = "No such link of this gallery", body = ErrorBody),
        AuthenticatedErrors, ModelScopedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_accesses(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<LinkPath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ShareAccessPage>, GalleryApiError> {
    let link = link_of(&state, &path, &caller).await?;
    let limit = query.limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE);
    let page = shares::list_accesses(store(&state), &link.model_id, &link.link_id, limit, query.cursor).await?;
    Ok(Json(ShareAccessPage {
        items: page.items.iter().map(ShareAccessView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revokes every active share link of a model, whatever its gallery (when the model leaves the
/// agency), and says how many. Admins only.
#[utoipa::path(
    post,
    path = "/v1/models/{model_id}/links/revoke",
    tag = "share links",
    params(ModelPath),
    responses(
        (status = 200, body = RevokedLinks),
        (status = 400, description = "A malformed model id", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn revoke_model_links(
    State(state): State<GalleryState>,
    caller: Caller,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<Json<RevokedLinks>, GalleryApiError> {
    caller.require_admin("revoke every share link of a model")?;
    let model = path.model()?;
    let revoked = shares::revoke_model_links(store(&state), &model, &caller.subject, OffsetDateTime::now_utc()).await?;
    tracing::info!(model_id = %model, revoked, "every share link of the model revoked");
    Ok(Json(RevokedLinks { model_id: model.to_string(), revoked }))
}
