//! What every router of the API gets the same way: errors for unknown routes and methods, a
//! bound on bodies, responses compressed for clients that accept it, and a span per request that
//! every log line of it carries. CORS is not among them: API Gateway answers it in AWS, and the
//! local server adds [`crate::cors::CorsPolicy::layer`] around the whole API.

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawPathParams};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tracing::Instrument;

use crate::error::ApiError;

/// JSON bodies of this API are small; anything larger is refused before it is read whole.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// gzip or brotli, as `Accept-Encoding` asks (with `Vary: Accept-Encoding`); tiny bodies and
/// images are left alone. Level 5 for both: tower-http's default brotli level (4) makes a list
/// bigger than gzip does, and 5 costs about a millisecond for 170 KB of JSON (docs/performance.md).
/// In Lambda, lambda_http returns an encoded body as binary (base64), as API Gateway expects.
const COMPRESSION: CompressionLevel = CompressionLevel::Precise(5);

/// The API's common layers around a router of merged route crates.
pub fn finish(router: Router) -> Router {
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn(request_span))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(CompressionLayer::new().quality(COMPRESSION))
}

/// Every log line of a request carries its route and the model and media ids the route's path
/// parameters name (`POST …/media/uploads` has no media id); in Lambda the runtime's span adds
/// the request id.
async fn request_span(
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let param = |name: &str| {
        params.as_ref().ok().and_then(|p| p.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned()))
    };
    let (model_id, media_id) = (param("model_id"), param("media_id"));
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Request, header};
    use axum::routing::{get, post};
    use tower::ServiceExt;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// The fields of every `request` span opened.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::span::Id, _: Context<'_, S>) {
            if attrs.metadata().name() == "request" {
                let mut fields = BTreeMap::new();
                attrs.record(&mut Fields(&mut fields));
                self.0.lock().unwrap().push(fields);
            }
        }
    }

    fn app() -> Router {
        finish(
            Router::new()
                .route("/v1/models/{model_id}/media/uploads", post(|| async { "created" }))
                .route("/v1/models/{model_id}/media/{media_id}", get(|| async { "one" })),
        )
    }

    /// Tests that go through `finish` take turns: tracing caches per call site whether anyone
    /// listens, and a request on another test thread (no subscriber there) could otherwise
    /// settle that for the span under test while this thread's subscriber is being set.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    async fn span_of(method: &str, uri: &str) -> BTreeMap<String, String> {
        let _turn = ONE_AT_A_TIME.lock().await;
        let spans = Spans::default();
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        tracing::callsite::rebuild_interest_cache();
        let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        app().oneshot(request).await.unwrap();
        let mut all = spans.0.lock().unwrap().clone();
        assert_eq!(all.len(), 1, "one request span: {all:?}");
        all.remove(0)
    }

    #[tokio::test]
    async fn the_request_span_names_ids_from_the_matched_route() {
        let upload = span_of("POST", "/v1/models/model-a/media/uploads").await;
        assert_eq!(upload.get("route").map(String::as_str), Some("/v1/models/{model_id}/media/uploads"));
        assert_eq!(upload.get("model_id").map(String::as_str), Some("model-a"));
        assert_eq!(upload.get("media_id"), None, "`uploads` is not a media id: {upload:?}");

        let one = span_of("GET", "/v1/models/model-a/media/01HZX3K6Q2V5W8Y9ZABCDEFGHJ").await;
        assert_eq!(one.get("model_id").map(String::as_str), Some("model-a"));
        assert_eq!(one.get("media_id").map(String::as_str), Some("01HZX3K6Q2V5W8Y9ZABCDEFGHJ"));

        let unknown = span_of("GET", "/v1/models/model-a/media/x/y/z").await;
        assert_eq!(unknown.get("route").map(String::as_str), Some("unmatched"));
        assert_eq!((unknown.get("model_id"), unknown.get("media_id")), (None, None));
    }

    #[tokio::test]
    async fn responses_are_compressed_when_the_client_accepts_it() {
        let _turn = ONE_AT_A_TIME.lock().await;
        let big = "x".repeat(4096);
        let app = finish(Router::new().route("/big", get(move || async move { big })));
        for (accept, expected) in [(Some("gzip"), Some("gzip")), (Some("br"), Some("br")), (None, None)] {
            let mut request = Request::builder().uri("/big");
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT_ENCODING, accept);
            }
            let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            let encoding = response.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(encoding.as_deref(), expected, "Accept-Encoding: {accept:?}");
        }
    }
}
