//! The HTTP API of phoenix4ge media as deployed: every route crate merged into one axum router
//! that `lambda_http::run` serves in AWS and the local server mounts unchanged, behind the
//! common layers of `phoenix-http`, plus health and the one OpenAPI document of the whole API.
//! [`build`] is the wiring that the Lambda's `main.rs`, the local server and the tests all call.

pub mod openapi;

use axum::Router;
use axum::routing::get;
pub use phoenix_http::{ApiError, AuthMode, Caller, DevClaims, Role};
pub use phoenix_media_routes::{Config, DerivativeLinks, MediaPorts as Ports};
use serde::Serialize;
use utoipa::ToSchema;

/// The whole API on these ports, authenticating callers by `auth`.
pub fn build(config: Config, ports: Ports, auth: AuthMode) -> Router {
    let system = Router::new().route("/v1/health", get(health)).route("/openapi.json", get(openapi_json));
    phoenix_http::finish(system.merge(phoenix_media_routes::routes(config, ports, auth)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: answers without auth.
#[utoipa::path(get, path = "/v1/health", tag = "system", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// The OpenAPI document of this API (no auth).
async fn openapi_json() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi::document())
}
