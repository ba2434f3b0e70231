//! The media library's HTTP routes: uploads, reads (one, a page, a batch), edits, moderation,
//! deletion (the trash) and restore, and image versions. Handlers parse, authorize, call the domain's use cases and
//! render; everything HTTP-generic comes from `phoenix-http`.

mod read;
mod state;
mod uploads;
mod versions;
pub mod views;
mod write;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::{get, post};
use phoenix_http::AuthMode;
pub use state::{Config, DerivativeLinks, MediaPorts, MediaState};
use utoipa::OpenApi;

/// The media routes on their state, ready to merge into an API router.
pub fn routes(config: Config, ports: MediaPorts, auth: AuthMode) -> Router {
    let state = MediaState { ports, config: std::sync::Arc::new(config), auth };
    Router::new()
        .route("/v1/models/{model_id}/media/uploads", post(uploads::create_upload))
        .route("/v1/models/{model_id}/media/{media_id}/upload-url", post(uploads::renew_upload))
        .route("/v1/models/{model_id}/media", get(read::list_media))
        .route(
            "/v1/models/{model_id}/media/{media_id}",
            get(read::get_media).patch(write::patch_media).delete(write::delete_media),
        )
        .route("/v1/models/{model_id}/media/{media_id}/review", post(write::review_media))
        .route("/v1/models/{model_id}/media/{media_id}/restore", post(write::restore_media))
        .route("/v1/models/{model_id}/media/{media_id}/versions", get(versions::list_versions))
        .route("/v1/models/{model_id}/media/{media_id}/versions/{version}/restore", post(versions::restore_version))
        .route("/v1/media/batch-get", post(read::batch_get))
        .with_state(state)
}

/// The media routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        uploads::create_upload,
        uploads::renew_upload,
        read::get_media,
        read::list_media,
        read::batch_get,
        write::patch_media,
        write::review_media,
        write::delete_media,
        write::restore_media,
        versions::list_versions,
        versions::restore_version
    ),
    tags((name = "media", description = "Uploads and the media library"))
)]
pub struct MediaApi;
