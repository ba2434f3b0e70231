//! The router as API Gateway invokes it, from the exact event an HTTP API sends: a named stage
//! or a custom domain's mapping in front of the path must not hide the routes.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, Ports};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue};
use tower::ServiceExt;

async fn status_of(event: &str, base_path: Option<&str>) -> u16 {
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
    router.oneshot(request).await.unwrap().status().as_u16()
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
