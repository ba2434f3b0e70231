//! What every router of the API gets the same way: errors for unknown routes and methods, a
//! bound on bodies, and a span per request that every log line of it carries.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tracing::Instrument;

use crate::error::ApiError;

/// JSON bodies of this API are small; anything larger is refused before it is read whole.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The API's common layers around a router of merged route crates.
pub fn finish(router: Router) -> Router {
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn(request_span))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
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
    next.run(request).instrument(span).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
