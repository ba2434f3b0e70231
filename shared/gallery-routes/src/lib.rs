//! The galleries' HTTP routes: create, read, list, patch (a list of operations under `If-Match`),
//! delete, publish and roll back a publication (models their own galleries, admins any); and the
//! public reads, without auth, of published public and unlisted galleries: the document as JSON
//! (`/v1/public/galleries/{gallery_id}`) and as an HTML page (`/g/{slug}`), with cache headers, a
//! strong ETag and 304s, served from an in-memory copy of the stored document keyed by version
//! ([`PublicCache`], which also counts hits, renders and 304s per route). Handlers parse,
//! authorize, call `phoenix_domain::galleries` and render.

mod error;
mod galleries;
mod page;
mod public;
mod shared;
mod shares;
mod state;
mod stats;
pub mod views;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::{delete, get, post};
use phoenix_http::AuthMode;
use utoipa::OpenApi;

pub use error::GalleryApiError;
pub use public::{CacheStats, PublicCache, RouteStats};
pub use shared::{SHARED_CACHE_CONTROL, client_address};
pub use state::{ClientAddressSource, Config, GalleryRoutePorts, GalleryState};

/// The gallery routes on their state, ready to merge into an API router.
pub fn routes(config: Config, ports: GalleryRoutePorts, auth: AuthMode) -> Router {
    let state = GalleryState { ports, config: std::sync::Arc::new(config), auth };
    Router::new()
        .route("/v1/models/{model_id}/galleries", post(galleries::create_gallery).get(galleries::list_galleries))
        .route(
            "/v1/models/{model_id}/galleries/{gallery_id}",
            get(galleries::get_gallery).patch(galleries::patch_gallery).delete(galleries::delete_gallery),
        )
        .route("/v1/models/{model_id}/galleries/{gallery_id}/publish", post(galleries::publish_gallery))
        .route("/v1/models/{model_id}/galleries/{gallery_id}/publish/rollback", post(galleries::rollback_gallery))
        .route("/v1/public/galleries/{gallery_id}", get(public::public_document))
        .route("/g/{slug}", get(public::public_page))
        .route("/v1/models/{model_id}/galleries/{gallery_id}/links", post(shares::create_link).get(shares::list_links))
        .route("/v1/models/{model_id}/galleries/{gallery_id}/links/{link_id}", delete(shares::revoke_link))
        .route("/v1/models/{model_id}/galleries/{gallery_id}/links/{link_id}/accesses", get(shares::list_accesses))
        .route("/v1/models/{model_id}/links/revoke", post(shares::revoke_model_links))
        .route("/s/{token}", get(shared::open_shared))
        .route("/v1/cache/stats", get(stats::cache_stats))
        .with_state(state)
}

/// The gallery routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        galleries::create_gallery,
        galleries::list_galleries,
        galleries::get_gallery,
        galleries::patch_gallery,
        galleries::delete_gallery,
        galleries::publish_gallery,
        galleries::rollback_gallery,
        public::public_document,
        public::public_page,
        shares::create_link,
        shares::list_links,
        shares::revoke_link,
        shares::list_accesses,
        shares::revoke_model_links,
        shared::open_shared,
        stats::cache_stats
    ),
    tags(
        (name = "galleries", description = "A model's galleries: sections and items in order, publishing as immutable versions, rollback"),
        (name = "public", description = "Published public and unlisted galleries, without auth, cached by the CDN; share links; cache statistics"),
        (name = "share links", description = "Signed, expiring, revocable links to a gallery (private ones too), with an access log")
    )
)]
pub struct GalleriesApi;
