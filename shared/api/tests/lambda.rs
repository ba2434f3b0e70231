//! The router as API Gateway invokes it, from the exact event an HTTP API sends: a named stage
//! or a custom domain's mapping in front of the path must not hide the routes.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, Ports};
use phoenix_domain::ports::QueueName;
use phoenix_storage::local::{
    LocalLanes, LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings, RecordingEventBus,
};
use tower::ServiceExt;

/// The job lanes and their dead-letter queues, as the local server opens them.
fn lanes() -> Vec<(QueueName, QueueSettings)> {
    let lane = |dlq: QueueName| QueueSettings { max_receive: 5, dead_letter: Some(dlq) };
    let dlq = QueueSettings { max_receive: u32::MAX, dead_letter: None };
    vec![
        (QueueName::JOBS_HIGH, lane(QueueName::JOBS_HIGH_DLQ)),
        (QueueName::JOBS_HIGH_DLQ, dlq.clone()),
        (QueueName::JOBS_NORMAL, lane(QueueName::JOBS_NORMAL_DLQ)),
        (QueueName::JOBS_NORMAL_DLQ, dlq),
    ]
}

async fn answer(event: &str, base_path: Option<&str>) -> axum::response::Response {
    let data = tempfile::tempdir().unwrap();
    let queue = LocalQueue::open(&data.path().join("q.sqlite"), lanes()).unwrap();
    let ports = Ports {
        objects: Arc::new(LocalObjectStore::open(&data.path().join("o"), "http://x".into(), b"k".to_vec()).unwrap()),
        metadata: Arc::new(LocalMetadataStore::open(&data.path().join("m.sqlite")).unwrap()),
        queue: Arc::new(queue),
        events: Arc::new(RecordingEventBus::in_memory()),
        lanes: Arc::new(LocalLanes::open(&data.path().join("q.sqlite")).unwrap()),
        cdn_metrics: None,
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

/// The event with another method, route, path and body (JSON), behind the same stage.
fn event_for(method: &str, route: &str, path: &str, body: Option<serde_json::Value>) -> String {
    let body = body.map_or("null".to_owned(), |b| serde_json::Value::String(b.to_string()).to_string());
    NAMED_STAGE
        .replace("GET /v1/models/{model_id}/media", &format!("{method} {route}"))
        .replace("\"method\": \"GET\"", &format!("\"method\": \"{method}\""))
        .replace("/prod/v1/models/m1/media\"", &format!("/prod{path}\""))
        .replace("\"rawQueryString\": \"limit=2\"", "\"rawQueryString\": \"\"")
        .replace("\"body\": null", &format!("\"body\": {body}"))
}

#[tokio::test]
async fn the_job_routes_answer_behind_the_stage_too() {
    let stats = answer(&event_for("GET", "/v1/queues/stats", "/v1/queues/stats", None), None).await;
    assert_eq!(stats.status().as_u16(), 200);
    let bytes = axum::body::to_bytes(stats.into_body(), usize::MAX).await.unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stats["lanes"].as_array().map(Vec::len), Some(2), "{stats}");

    // A job for a media that does not exist: refused by the domain, through the whole stack.
    let body = serde_json::json!({
        "operation": "rotate", "target": {"model_id": "m1", "media_id": "01jd3k6v2q8m3y7x9t0b5n4c2a"}, "params": {"degrees": 90}
    });
    let refused = answer(&event_for("POST", "/v1/jobs", "/v1/jobs", Some(body)), None).await;
    assert_eq!(refused.status().as_u16(), 404);
}
