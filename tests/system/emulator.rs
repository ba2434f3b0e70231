//! The upload flow on the AWS adapters against the emulator (moto server, started by
//! `infra/test.sh`): the media-api router fed API Gateway v2 events with JWT-authorizer claims,
//! a PUT to the presigned S3 URL, the bucket's notification to SQS, the thumbnail processor's
//! handler on the received batch, and the record in DynamoDB.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use image::GenericImageView;
use phoenix_api::{AuthMode, DerivativeLinks, Ports};
use phoenix_domain::{Limits, Queue, QueueName};
use phoenix_storage::aws::{DynamoMetadataStore, S3ObjectStore, SqsQueue, create_table, load_sdk_config};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{queue_arn, queue_with_dead_letter, testdata};

fn require_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "emulator-backed tests need AWS_ENDPOINT_URL: run them with infra/test.sh, which starts moto server"
    );
}

/// An API Gateway HTTP API (v2) event as the JWT authorizer passes it on, for a model's user.
fn apigw_request(
    method: &str,
    route: &str,
    path: &str,
    params: Value,
    body: Option<Value>,
    model: &str,
) -> lambda_http::Request {
    apigw_request_as("[model]", method, route, path, params, body, model)
}

/// As [`apigw_request`], for callers in `groups` (`[admin]`, `[model]`); `path` may carry a query.
fn apigw_request_as(
    groups: &str,
    method: &str,
    route: &str,
    path: &str,
    params: Value,
    body: Option<Value>,
    model: &str,
) -> lambda_http::Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let event = include_str!("../fixtures/apigw-v2-request.json")
        .replace("$ROUTE_KEY", &format!("{method} {route}"))
        .replace("$PATH_PARAMETERS", &params.to_string())
        .replace("$PATH", path)
        .replace("$QUERY", query)
        .replace("$METHOD", method)
        .replace("$GROUPS", groups)
        .replace("$SUB", "7d0c3c1e-1111-4222-8333-944455556666")
        .replace("$CLAIM_MODEL", model)
        .replace("$BODY", &body.map(|b| Value::String(b.to_string())).unwrap_or(Value::Null).to_string());
    lambda_http::request::from_str(&event).expect("a valid API Gateway v2 event")
}

async fn call(router: &axum::Router, request: lambda_http::Request) -> (u16, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_flow_on_the_aws_adapters() {
    require_emulator();
    let sdk = load_sdk_config().await;
    let suffix = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let (bucket, table) = (format!("uploads-{suffix}"), format!("media-{suffix}"));

    // The deployment, as template.yaml declares it: bucket → notification → ingest queue (+DLQ), table.
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (ingest_url, dlq_url) =
        queue_with_dead_letter(&sqs, &format!("ingest-{suffix}"), &format!("ingest-dlq-{suffix}"), 5).await;
    let ingest_arn = queue_arn(&sqs, &ingest_url).await;
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(FilterRule::builder().name(FilterRuleName::Prefix).value("originals/").build())
                .build(),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(&ingest_arn)
                        .events(Event::S3ObjectCreated)
                        .filter(filter)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    create_table(&dynamo, &table).await.unwrap();

    let objects = Arc::new(S3ObjectStore::new(&sdk, bucket.clone(), true));
    let metadata = Arc::new(DynamoMetadataStore::new(&sdk, table.clone()));
    let queue = Arc::new(SqsQueue::new(
        &sdk,
        HashMap::from([(QueueName::INGEST, ingest_url.clone()), (QueueName::INGEST_DLQ, dlq_url.clone())]),
    ));
    let config = phoenix_api::Config {
        limits: Limits::default(),
        links: DerivativeLinks::Presigned(Duration::from_secs(600)),
        trash: phoenix_domain::config::TrashSettings { purge_delay: Duration::ZERO, ..Default::default() },
        jobs: phoenix_api::JobSettings::default(),
        batches: Default::default(),
        galleries: Default::default(),
    };
    let lanes_dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        objects: objects.clone(),
        metadata: metadata.clone(),
        queue: queue.clone(),
        events: Arc::new(phoenix_storage::local::RecordingEventBus::in_memory()),
        lanes: Arc::new(phoenix_storage::local::LocalLanes::open(&lanes_dir.path().join("lanes.sqlite")).unwrap()),
        cdn_metrics: None,
    };
    let router = phoenix_api::build(config, ports, AuthMode::ApiGateway);
    let processor = phoenix_ingest::build(phoenix_ingest::Config::default(), objects.clone(), metadata.clone());

    // 1. Create the upload through the API, as API Gateway invokes it.
    let photo = std::fs::read(testdata("photos/exif-orientation6-gps.jpg")).unwrap();
    let route = "/v1/models/{model_id}/media/uploads";
    let request = apigw_request(
        "POST",
        route,
        "/v1/models/model-aws/media/uploads",
        json!({"model_id": "model-aws"}),
        Some(json!({"filename": "portrait.jpg", "content_type": "image/jpeg", "bytes": photo.len()})),
        "model-aws",
    );
    let (status, created) = call(&router, request).await;
    assert_eq!(status, 201, "{created}");
    let media = created["media_id"].as_str().unwrap().to_owned();
    let upload = &created["upload"];
    assert!(upload["url"].as_str().unwrap().contains(&format!("originals/model-aws/{media}")));

    // Another model's claims may not read it.
    let path = format!("/v1/models/model-aws/media/{media}");
    let get_route = "/v1/models/{model_id}/media/{media_id}";
    let params = json!({"model_id": "model-aws", "media_id": media});
    let (status, body) =
        call(&router, apigw_request("GET", get_route, &path, params.clone(), None, "model-other")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    // 2. The browser's PUT to S3.
    let client = reqwest::Client::new();
    let mut put = client.put(upload["url"].as_str().unwrap()).body(photo);
    for (name, value) in upload["headers"].as_object().unwrap() {
        if !name.eq_ignore_ascii_case("content-length") {
            put = put.header(name, value.as_str().unwrap());
        }
    }
    let put = put.send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());

    // 3. S3 → SQS: the notification arrives; the processor handles the batch as Lambda would.
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !messages.iter().any(|m: &phoenix_domain::ports::ReceivedMessage| m.body.contains("ObjectCreated")) {
        assert!(tokio::time::Instant::now() < deadline, "no ObjectCreated notification reached the queue");
        messages.extend(
            queue.receive(&QueueName::INGEST, 10, Duration::from_secs(60), Duration::from_secs(1)).await.unwrap(),
        );
    }
    let event = phoenix_consumer::sqs_event(&messages);
    let response = phoenix_consumer::handle_sqs_batch(&processor, event.clone(), 2).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    for m in &messages {
        queue.delete(&QueueName::INGEST, &m.receipt).await.unwrap();
    }

    // 4. The record in DynamoDB, through the API: portrait, with loadable presigned derivatives.
    let (status, record) =
        call(&router, apigw_request("GET", get_route, &path, params.clone(), None, "model-aws")).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "pending_review", "{record}");
    assert_eq!((record["source"]["width"].as_u64(), record["source"]["height"].as_u64()), (Some(2056), Some(3088)));
    let derivatives = record["derivatives"].as_array().unwrap();
    let presets = phoenix_imaging::PresetSet::default();
    assert_eq!(derivatives.len(), presets.presets.iter().map(|p| p.formats.len()).sum::<usize>());
    for d in derivatives {
        let fit = &presets.get(d["preset"].as_str().unwrap()).unwrap().fit;
        let url = d["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Signature"), "a presigned GET: {url}");
        let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
        let (w, h) = image::load_from_memory(&bytes).unwrap().dimensions();
        assert_eq!((w as u64, h as u64), (d["width"].as_u64().unwrap(), d["height"].as_u64().unwrap()));
        if matches!(fit, phoenix_imaging::Fit::Width { .. }) {
            assert!(h > w, "portrait after EXIF orientation");
        }
    }

    // 5. A redelivered batch does no work twice.
    let again = phoenix_consumer::handle_sqs_batch(&processor, event, 2).await;
    assert!(again.batch_item_failures.is_empty());
    let (_, reread) = call(&router, apigw_request("GET", get_route, &path, params.clone(), None, "model-aws")).await;
    assert_eq!(reread["version"], record["version"]);
    assert_eq!(queue.depth(&QueueName::INGEST_DLQ).await.unwrap(), 0);

    // 6. The library on DynamoDB: a conditional GET (presigned links are stable, so is the ETag),
    //    an edit that writes tag entries, filtered listings, review, batch get.
    let get = || apigw_request("GET", get_route, &path, params.clone(), None, "model-aws");
    let response = router.clone().oneshot(get()).await.unwrap();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let mut conditional = get();
    conditional.headers_mut().insert("if-none-match", etag.parse().unwrap());
    assert_eq!(router.clone().oneshot(conditional).await.unwrap().status(), 304, "unchanged: 304");

    let edit =
        json!({"tags": ["aws"], "category": "editorial", "caption": "on the emulator", "version": record["version"]});
    let (status, edited) =
        call(&router, apigw_request("PATCH", get_route, &path, params.clone(), Some(edit.clone()), "model-aws")).await;
    assert_eq!(status, 200, "{edited}");
    let (status, stale) =
        call(&router, apigw_request("PATCH", get_route, &path, params.clone(), Some(edit), "model-aws")).await;
    assert_eq!((status, &stale["error"]["details"]["current_version"]), (409, &edited["version"]));
    let list_route = "/v1/models/{model_id}/media";
    let list = |query: &str| {
        let path = format!("/v1/models/model-aws/media?{query}");
        apigw_request("GET", list_route, &path, json!({"model_id": "model-aws"}), None, "model-aws")
    };
    for query in ["tag=aws", "category=editorial", "status=pending_review&tag=aws", ""] {
        let (status, page) = call(&router, list(query)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "?{query}: {page}");
        assert_eq!(page["items"][0]["caption"], "on the emulator");
    }
    let (_, none) = call(&router, list("tag=other")).await;
    assert!(none["items"].as_array().unwrap().is_empty());

    let review_route = "/v1/models/{model_id}/media/{media_id}/review";
    let review_path = format!("{path}/review");
    let approve = Some(json!({"decision": "approve"}));
    let (status, _) =
        call(&router, apigw_request("POST", review_route, &review_path, params.clone(), approve.clone(), "model-aws"))
            .await;
    assert_eq!(status, 403, "a model may not review");
    let (status, approved) = call(
        &router,
        apigw_request_as("[admin]", "POST", review_route, &review_path, params.clone(), approve, "model-aws"),
    )
    .await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");

    let batch = json!({"items": [{"model_id": "model-aws", "media_id": media}, {"model_id": "model-aws", "media_id": ulid::Ulid::new().to_string().to_ascii_lowercase()}]});
    let (status, got) = call(
        &router,
        apigw_request("POST", "/v1/media/batch-get", "/v1/media/batch-get", json!({}), Some(batch), "model-aws"),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!((got["items"].as_array().unwrap().len(), got["missing"].as_array().unwrap().len()), (1, 1));

    // 7. Delete: to the trash, gone for readers at once; a restore brings it back; deleted again,
    // the trash sweep (past the grace period) deletes the record and queues the purge, which
    // removes every object.
    let delete = || apigw_request("DELETE", get_route, &path, params.clone(), None, "model-aws");
    let (status, _) = call(&router, delete()).await;
    assert_eq!(status, 204);
    let (status, _) = call(&router, get()).await;
    assert_eq!(status, 404);
    let (_, page) = call(&router, list("tag=aws")).await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    let (_, trash) = call(&router, list("status=deleted")).await;
    assert_eq!(trash["items"][0]["media_id"], media, "{trash}");
    assert!(trash["items"][0]["purge_after"].is_string(), "{trash}");
    let restore_route = "/v1/models/{model_id}/media/{media_id}/restore";
    let restore_path = format!("{path}/restore");
    let (status, restored) =
        call(&router, apigw_request("POST", restore_route, &restore_path, params.clone(), None, "model-aws")).await;
    assert_eq!((status, restored["status"].as_str()), (200, Some("approved")), "{restored}");
    let (_, page) = call(&router, list("tag=aws")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "restored: back in its tag's listing: {page}");
    let (status, _) = call(&router, delete()).await;
    assert_eq!(status, 204);
    let past_grace = time::OffsetDateTime::now_utc() + phoenix_domain::config::TrashSettings::DEFAULT_GRACE;
    let swept = phoenix_domain::media::sweep_trash(metadata.as_ref(), queue.as_ref(), past_grace, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(swept.purged.len(), 1, "{swept:?}");
    let (status, _) =
        call(&router, apigw_request("POST", restore_route, &restore_path, params.clone(), None, "model-aws")).await;
    assert_eq!(status, 404, "purged: nothing to restore");
    let purge = queue.receive(&QueueName::INGEST, 10, Duration::from_secs(60), Duration::from_secs(2)).await.unwrap();
    assert!(purge.iter().any(|m| m.body.contains("\"purge\"")), "{purge:?}");
    let response = phoenix_consumer::handle_sqs_batch(&processor, phoenix_consumer::sqs_event(&purge), 2).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let left = s3.list_objects_v2().bucket(&bucket).prefix(format!("derived/model-aws/{media}/")).send().await.unwrap();
    assert_eq!(left.key_count(), Some(0), "derivatives left: {:?}", left.contents());
    let original = s3.head_object().bucket(&bucket).key(format!("originals/model-aws/{media}")).send().await;
    assert!(original.is_err(), "the original is gone");
}
