//! The router as API Gateway invokes it, from the exact event an HTTP API sends: a named stage
//! or a custom domain's mapping in front of the path must not hide the routes.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, Ports};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue};
use tower::ServiceExt;

async fn answer(event: &str, base_path: Option<&str>) -> axum::response::Response {
    let data = tempfile::tempdir().unwrap();
    let queue = LocalQueue::open(&data.path().join("q.sqlite"), vec![]).unwrap();
    let ports = Ports {
        objects: Arc::new(LocalObjectStore::open(&data.path().join("o"), "http://x".into(), b"k".to_vec()).unwrap()),
        metadata: Arc::new(LocalMetadataStore::open(&data.path().join("m.sqlite")).unwrap()),
        queue: Arc::new(queue),
    };
    let router = phoenix_api::build(Config::default(), ports, AuthMode::ApiGateway);
    let request = lambda_http::request::from_str(event).expect("an API Gateway v2 event");
    let request = phoenix_http::lambda::route_path(request, base_path);
    router.oneshot(request).await.unwrap()
}

async fn status_of(event: &str, base_path: Option<&str>) -> u16 {
    answer(event, base_path).await.status().as_u16()
}

const NAMED_STAGE: &str = include_str!("fixtures/apigw-v2-named-stage.json");

#[tokio::test]
async fn a_named_stage_in_the_path_reaches_the_route() {
    assert_eq!(status_of(NAMED_STAGE, None).await, 200);
}

#[tokio::test]
async fn a_custom_domain_mapping_is_removed_when_configured() {
    let mapped = NAMED_STAGE
        .replace("\"stage\": \"prod\"", "\"stage\": \"$default\"")
        .replace("/prod/v1/models/m1/media", "/media/v1/models/m1/media");
    assert_eq!(status_of(&mapped, Some("media")).await, 200);
    assert_eq!(status_of(&mapped, None).await, 404, "without the setting the mapping hides the route");
}

#[tokio::test]
async fn a_created_upload_says_where_its_media_is_behind_the_stage_too() {
    let body = serde_json::json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10}).to_string();
    let event = NAMED_STAGE
        .replace("GET /v1/models/{model_id}/media", "POST /v1/models/{model_id}/media/uploads")
        .replace("\"method\": \"GET\"", "\"method\": \"POST\"")
        .replace("/prod/v1/models/m1/media\"", "/prod/v1/models/m1/media/uploads\"")
        .replace("\"rawQueryString\": \"limit=2\"", "\"rawQueryString\": \"\"")
        .replace("\"body\": null", &format!("\"body\": {}", serde_json::Value::String(body)));
    let response = answer(&event, None).await;
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/prod/v1/models/m1/media/"), "{location}");
}
