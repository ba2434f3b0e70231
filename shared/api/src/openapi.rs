//! The OpenAPI 3.1 document, generated from the handlers and view types. `docs/openapi.json` is a
//! checked-in copy; a test fails when they differ (regenerate with `UPDATE_OPENAPI=1 cargo test -p phoenix-api`).

use phoenix_batch_routes::BatchesApi;
use phoenix_gallery_routes::GalleriesApi;
use phoenix_http::openapi::{BearerAuth, GatewayError, RefusedToken};
use phoenix_job_routes::JobsApi;
use phoenix_media_routes::MediaApi;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "phoenix4ge media API",
        version = "1",
        description = "Media library for model portfolios. Errors are `{\"error\":{\"code\",\"message\",\"details\"?}}`."
    ),
    servers(
        (url = "http://127.0.0.1:8080", description = "The local server (`infra/run.sh`; `PHOENIX_ADDR` moves it)"),
        (
            url = "https://{api_id}.execute-api.{region}.amazonaws.com",
            description = "A deployment: the stack's `ApiUrl` output",
            variables(
                ("api_id" = (default = "abc123defg", description = "The HttpApi id")),
                ("region" = (default = "eu-west-1", description = "The stack's region"))
            )
        )
    ),
    paths(crate::health),
    components(schemas(RefusedToken, GatewayError)),
    modifiers(&BearerAuth),
    tags((name = "system"))
)]
struct SystemApi;

/// One document for the whole API: the system routes and every route crate's part.
pub fn api() -> utoipa::openapi::OpenApi {
    let mut doc = SystemApi::openapi();
    doc.merge(MediaApi::openapi());
    doc.merge(JobsApi::openapi());
    doc.merge(BatchesApi::openapi());
    doc.merge(GalleriesApi::openapi());
    doc
}

/// The document as served and checked in: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = api().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    #[test]
    fn checked_in_document_matches_the_code() {
        let generated = document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p phoenix-api` and commit it"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        // Every reference resolves: schemas only named by shared responses are registered too.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for reference in generated.match_indices("#/components/schemas/").map(|(i, _)| &generated[i..]) {
            let name = &reference["#/components/schemas/".len()..reference.find('"').unwrap()];
            assert!(schemas.contains_key(name), "{name} is referenced but not in components.schemas");
        }
        // Clients and tools find where to send requests: the local server and a deployment.
        let servers: Vec<&str> =
            doc["servers"].as_array().unwrap().iter().map(|s| s["url"].as_str().unwrap()).collect();
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert!(servers[0].starts_with("http://127.0.0.1:") && servers[1].contains("execute-api"));
    }
}
