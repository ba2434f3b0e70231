//! The HTTP API of phoenix4ge media: one axum router that `lambda_http::run` serves in AWS and the
//! local server mounts unchanged. Errors leave as `{"error":{"code","message"}}` with the right
//! status; callers are authenticated by JWT claims (verified by API Gateway in AWS, by
//! [`auth::AuthMode::LocalJwt`] locally) and authorised per model.

pub mod auth;
pub mod error;
pub mod extract;
mod media;
pub mod openapi;
pub mod state;
pub mod views;

pub use auth::{AuthMode, Caller, DevClaims, Role};
pub use error::ApiError;
pub use state::{AppState, DerivativeLinks};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// JSON bodies of this API are small; anything larger is refused before it is read whole.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/models/{model_id}/media/uploads", post(media::create_upload))
        .route("/v1/models/{model_id}/media", get(media::list_media))
        .route(
            "/v1/models/{model_id}/media/{media_id}",
            get(media::get_media).patch(media::patch_media).delete(media::delete_media),
        )
        .route("/v1/models/{model_id}/media/{media_id}/review", post(media::review_media))
        .route("/v1/media/batch-get", post(media::batch_get))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(request_span))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
}

/// Every log line of a request carries its route and, where the path names them, the model and
/// media ids (in Lambda the runtime's span adds the request id).
async fn request_span(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut segments = request.uri().path().split('/').skip(1);
    let (model_id, media_id) =
        match (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()) {
            (Some("v1"), Some("models"), Some(model), Some("media"), media) => {
                (Some(model.to_owned()), media.map(str::to_owned))
            }
            _ => (None, None),
        };
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = route.as_deref().unwrap_or("unmatched"),
        model_id = model_id.as_deref(),
        media_id = media_id.as_deref(),
    );
    use tracing::Instrument;
    next.run(request).instrument(span).await
}

/// Liveness: answers without auth.
#[utoipa::path(get, path = "/v1/health", tag = "system", responses((status = 200, body = views::Health)))]
pub async fn health() -> axum::Json<views::Health> {
    axum::Json(views::Health { status: "ok".into() })
}

/// The OpenAPI document of this API (no auth).
async fn openapi_json() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
