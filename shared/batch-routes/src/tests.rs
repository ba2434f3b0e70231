//! The batch routes through HTTP, behind the API's common layers, on the local adapters in a
//! temporary folder: who may do what, the Idempotency-Key's answers, the running-batch limits,
//! ETags, state errors and validation. (The worker is not running: batches stay queued unless a
//! test writes them as the worker would.)

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use phoenix_domain::batches::{
    BATCH_RETENTION, Batch, BatchChunk, BatchItem, BatchLimits, BatchOperation, BatchStatus, ItemOutcome,
    OutcomeCounts, UndoValues,
};
use phoenix_domain::ports::{BatchStore, ItemWrite, MediaStore, Queue, QueueName};
use phoenix_domain::{BatchId, MediaId, MediaRecord, MediaStatus, ModelId, Tag};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::{AuthMode, DevClaims};
use phoenix_storage::local::{LocalMetadataStore, LocalQueue, QueueSettings};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{BatchRoutePorts, Config, routes};

struct App {
    router: Router,
    metadata: Arc<LocalMetadataStore>,
    queue: Arc<LocalQueue>,
    auth: AuthMode,
    /// The adapters' files, removed with the app.
    _data: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn field(&self) -> &str {
        self.body["error"]["details"]["field"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn id(&self) -> String {
        self.body["batch_id"].as_str().unwrap_or_default().to_owned()
    }
}

fn app_with(limits: BatchLimits) -> App {
    let data = tempfile::tempdir().unwrap();
    let metadata = Arc::new(LocalMetadataStore::open(&data.path().join("metadata.sqlite")).unwrap());
    let settings = QueueSettings { max_receive: 5, dead_letter: Some(QueueName::BATCHES_DLQ) };
    let dead_letter = QueueSettings { max_receive: u32::MAX, dead_letter: None };
    let queue = Arc::new(
        LocalQueue::open(
            &data.path().join("queues.sqlite"),
            vec![(QueueName::BATCHES, settings), (QueueName::BATCHES_DLQ, dead_letter)],
        )
        .unwrap(),
    );
    let auth = AuthMode::local(b"test-secret");
    let events = Arc::new(phoenix_storage::local::RecordingEventBus::in_memory());
    let ports = BatchRoutePorts { metadata: metadata.clone(), queue: queue.clone(), events };
    let router = phoenix_http::finish(routes(Config { limits }, ports, auth.clone()));
    App { router, metadata, queue, auth, _data: data }
}

fn app() -> App {
    app_with(BatchLimits::default())
}

impl App {
    fn token(&self, groups: &[&str], model: Option<&str>) -> String {
        let AuthMode::LocalJwt(keys) = &self.auth else { unreachable!() };
        let claims = DevClaims {
            sub: format!("user-{}", model.unwrap_or("admin")),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            model_id: model.map(str::to_owned),
            exp: 4_102_444_800,
        };
        claims.sign(keys)
    }

    fn admin(&self) -> String {
        self.token(&["admin"], None)
    }

    fn model(&self, model: &str) -> String {
        self.token(&["model"], Some(model))
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, headers, body }
    }

    async fn call(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Reply {
        self.call_with(method, uri, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request =
            Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => {
                request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
            }
            None => request.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    async fn raw(&self, uri: &str, token: &str, body: &'static str) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// A processed media of `model`, pending review.
    async fn media(&self, model: &str) -> MediaId {
        let now = OffsetDateTime::now_utc();
        let model = ModelId::parse(model).unwrap();
        let mut record =
            MediaRecord::new_upload(model.clone(), MediaId::new(), "a.jpg".into(), "image/jpeg".into(), 10, now, None);
        record.status = MediaStatus::PendingReview;
        record.source = Some(
            serde_json::from_value(json!({
                "etag": "e", "bytes": 10, "format": "jpeg", "width": 40, "height": 30, "orientation": 1,
                "sha256": "00".repeat(32)
            }))
            .unwrap(),
        );
        self.metadata.create_media(&record).await.unwrap();
        record.media_id
    }

    /// A batch of `model` that ended as the worker leaves it: each of `outcomes` recorded for a
    /// media of its own (applied ones with their undo values).
    async fn ended(&self, model: &str, outcomes: &[ItemOutcome]) -> Batch {
        std::thread::sleep(Duration::from_millis(2));
        let now = OffsetDateTime::now_utc();
        let model = ModelId::parse(model).unwrap();
        let media: Vec<MediaId> = outcomes.iter().map(|_| MediaId::new()).collect();
        let mut counts = OutcomeCounts::default();
        outcomes.iter().for_each(|o| counts.add(*o));
        let id = BatchId::new();
        let mut batch = Batch {
            batch_id: id,
            model_id: model.clone(),
            operation: BatchOperation::Tag { add: vec![Tag::parse("ss27").unwrap()], remove: vec![] },
            status: BatchStatus::Queued,
            dry_run: false,
            total: outcomes.len() as u64,
            chunks: 1,
            chunks_done: 1,
            counts,
            submitted_by: "user-admin".into(),
            submitted_as_admin: true,
            rollback_of: None,
            rolled_back_by: None,
            queued_at: now - time::Duration::seconds(4),
            started_at: Some(now - time::Duration::seconds(2)),
            finished_at: Some(now),
            updated_at: now,
            version: 1,
            expires_at: now + BATCH_RETENTION,
        };
        batch.status = batch.final_status();
        let chunk =
            BatchChunk { batch_id: id, chunk: 0, media_ids: media.clone(), origin_seqs: vec![], counts: Some(counts) };
        self.metadata.create_batch(&batch, &[chunk]).await.unwrap();
        let writes: Vec<ItemWrite> = outcomes
            .iter()
            .zip(&media)
            .enumerate()
            .map(|(seq, (outcome, media_id))| ItemWrite {
                record: None,
                item: BatchItem {
                    batch_id: id,
                    seq: seq as u32,
                    model_id: model.clone(),
                    media_id: *media_id,
                    outcome: *outcome,
                    message: (*outcome != ItemOutcome::Applied).then(|| "no".to_owned()),
                    before: (*outcome == ItemOutcome::Applied).then(|| UndoValues {
                        status: MediaStatus::PendingReview,
                        review: None,
                        category: None,
                        tags: vec![],
                        usage_rights_expires_at: None,
                        trashed: None,
                        gallery: None,
                    }),
                    written_version: (*outcome == ItemOutcome::Applied).then_some(2),
                    predicted: false,
                    galleries: vec![],
                    at: now,
                },
            })
            .collect();
        for result in self.metadata.write_items(&writes).await {
            result.unwrap();
        }
        batch
    }

    /// The chunk messages waiting on the batches queue (left visible).
    async fn sent(&self) -> Vec<String> {
        let waiting = self.queue.receive(&QueueName::BATCHES, 10, Duration::ZERO, Duration::ZERO).await.unwrap();
        waiting.into_iter().map(|m| m.body).collect()
    }

    async fn stored(&self, id: &str) -> Batch {
        self.metadata.get_batch(&BatchId::parse(id).unwrap()).await.unwrap()
    }
}

fn tag(model: &str, media: &[MediaId]) -> Value {
    let items: Vec<Value> = media.iter().map(|m| json!({"model_id": model, "media_id": m.to_string()})).collect();
    json!({"model_id": model, "operation": "tag", "params": {"add": ["ss27"]}, "items": items})
}

#[tokio::test]
async fn a_model_submits_for_itself_and_is_told_where_the_batch_is() {
    let app = app();
    let (a, b) = (app.media("m1").await, app.media("m1").await);
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m1"), Some(tag("m1", &[a, b, a]))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.id();
    assert_eq!(reply.header("location"), Some(format!("/v1/batches/{id}").as_str()));
    assert!(reply.header("etag").unwrap().starts_with("\"1-"), "{:?}", reply.header("etag"));
    assert_eq!(reply.header("idempotent-replayed"), None);
    let batch = &reply.body;
    assert_eq!((batch["status"].as_str(), batch["operation"].as_str()), (Some("queued"), Some("tag")));
    assert_eq!(batch["params"], json!({"add": ["ss27"], "remove": []}));
    assert_eq!((batch["total"].as_u64(), batch["chunks"].as_u64()), (Some(2), Some(1)), "repeats dropped");
    assert_eq!(batch["counts"]["applied"], 0);
    assert_eq!(batch["dry_run"], false);
    assert!(batch.get("submitted_by").is_none(), "for admins only: {batch}");
    assert_eq!(app.sent().await, vec![format!("{{\"batch_id\":\"{id}\",\"chunk\":0}}")]);

    // Polled with its ETag: 304 until it changes.
    let uri = format!("/v1/batches/{id}");
    let etag = reply.header("etag").unwrap().to_owned();
    let read = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert_eq!((read.status, read.header("etag")), (StatusCode::OK, Some(etag.as_str())));
    let unchanged = app.call_with(Method::GET, &uri, &app.model("m1"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!((unchanged.status, unchanged.header("etag")), (StatusCode::NOT_MODIFIED, Some(etag.as_str())));
    assert_eq!(unchanged.body, Value::Null);
    let mut running = app.stored(&id).await;
    running.status = BatchStatus::Running;
    running.version += 1;
    app.metadata.update_batch(&running).await.unwrap();
    let changed = app.call_with(Method::GET, &uri, &app.model("m1"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!((changed.status, changed.body["status"].as_str()), (StatusCode::OK, Some("running")));
    assert!(changed.header("etag").unwrap().starts_with("\"2-"));

    // Behind a named stage, the Location carries the stage.
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/batches")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(tag("m1", &[a]).to_string()))
        .unwrap();
    request.extensions_mut().insert(PathPrefix("/prod".into()));
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(reply.header("location").unwrap().starts_with("/prod/v1/batches/"), "{:?}", reply.header("location"));
}

#[tokio::test]
async fn a_filter_is_resolved_at_submission_and_an_empty_one_ends_at_once() {
    let app = app();
    app.media("m1").await;
    app.media("m1").await;
    app.media("m2").await;
    let body = json!({"model_id": "m1", "operation": "categorize", "params": {"category": "editorial"},
                      "filter": {"status": "pending_review"}, "dry_run": true});
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m1"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!((reply.body["total"].as_u64(), reply.body["dry_run"].as_bool()), (Some(2), Some(true)));
    let none = json!({"model_id": "m1", "operation": "delete", "filter": {"status": "approved"}});
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m1"), Some(none)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!((reply.body["status"].as_str(), reply.body["total"].as_u64()), (Some("completed"), Some(0)));
    assert_eq!(app.sent().await.len(), 1, "one chunk, for the first batch only");
}

#[tokio::test]
async fn a_model_batches_only_its_own_media_and_reviews_are_for_admins() {
    let app = app();
    let media = app.media("m1").await;
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m2"), Some(tag("m1", &[media]))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let approve =
        json!({"model_id": "m1", "operation": "approve", "items": [{"model_id": "m1", "media_id": media.to_string()}]});
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m1"), Some(approve.clone())).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(reply.message().contains("admins only"), "{}", reply.message());
    assert!(app.sent().await.is_empty(), "nothing was queued");

    let reply = app.call(Method::POST, "/v1/batches", &app.admin(), Some(approve)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["submitted_by"], "user-admin", "admins see who submitted");
    let uri = format!("/v1/batches/{}", reply.id());
    let own = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.body.get("submitted_by").is_none(), "{}", own.body);
    let theirs = app.call(Method::GET, &uri, &app.model("m2"), None).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(theirs.message(), format!("batch {} not found", reply.id()), "said as of a batch that does not exist");
    let missing = app.call(Method::GET, &format!("/v1/batches/{}", BatchId::new()), &app.admin(), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = app.call(Method::GET, "/v1/batches/not-a-batch", &app.admin(), None).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_id"));
    let anonymous = app.send(Request::get(&uri).body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bad_submission_names_what_is_wrong() {
    let app = app();
    let media = app.media("m1").await;
    let token = app.admin();
    let reply = app.raw("/v1/batches", &token, "{\"operation\": ").await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "malformed_json"));

    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = tag("m1", &[media]);
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| b["operation"] = json!("explode")), "operation"),
        (with(&|b| b["operation"] = json!(5)), "operation"),
        (with(&|b| b["operation"] = json!("rollback")), "operation"),
        (with(&|b| b["params"] = json!({"add": "ss27"})), "params"),
        (with(&|b| b["params"] = json!([1])), "params"),
        (with(&|b| b["params"] = json!({})), "params"),
        (with(&|b| b["model_id"] = json!("a/b")), "model_id"),
        (with(&|b| b["items"][0]["media_id"] = json!("NOT-A-ULID")), "items[0].media_id"),
        (with(&|b| b["items"][0]["model_id"] = json!("m2")), "items"),
        (with(&|b| b["items"] = json!([])), "items"),
        (with(&|b| b["filter"] = json!({"status": "approved"})), "items"),
        (with(&|b| b.as_object_mut().unwrap().remove("items").map(drop).unwrap()), "items"),
        (with(&|b| b["dry_run"] = json!("yes")), "dry_run"),
        (with(&|b| b["extra"] = json!(true)), "extra"),
        (
            json!({"model_id": "m1", "operation": "reject", "params": {"violations": []}, "filter": {}}),
            "params.violations",
        ),
        (
            json!({"model_id": "m1", "operation": "add_to_gallery", "params": {"gallery_id": "g1"}, "filter": {}}),
            "params.gallery_id",
        ),
    ];
    for (body, field) in cases {
        let reply = app.call(Method::POST, "/v1/batches", &token, Some(body.clone())).await;
        assert_eq!(
            (reply.status, reply.code(), reply.field()),
            (StatusCode::BAD_REQUEST, "invalid_request", field),
            "{body}: {}",
            reply.body
        );
    }
    assert!(app.sent().await.is_empty(), "nothing was queued");
}

#[tokio::test]
async fn an_idempotency_key_answers_the_same_batch_and_refuses_another_body() {
    let app = app();
    let media = app.media("m1").await;
    let token = app.model("m1");
    let key = [("Idempotency-Key", "tags-ss27")];
    let first = app.call_with(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media])), &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same request, written differently: the same batch, said to be replayed.
    let same = json!({"items": [{"media_id": media.to_string(), "model_id": "m1"}], "dry_run": false,
                      "params": {"remove": [], "add": ["ss27"]}, "operation": "tag", "model_id": "m1"});
    let again = app.call_with(Method::POST, "/v1/batches", &token, Some(same), &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.id(), first.id());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(app.sent().await.len(), 1, "one batch, one message");

    let mut other = tag("m1", &[media]);
    other["params"]["add"] = json!(["fw27"]);
    let other = app.call_with(Method::POST, "/v1/batches", &token, Some(other), &key).await;
    assert_eq!((other.status, other.code()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert!(other.message().contains("different request body"), "{}", other.message());

    // Another caller's same key is its own key.
    let admin = app.call_with(Method::POST, "/v1/batches", &app.admin(), Some(tag("m1", &[media])), &key).await;
    assert_eq!(admin.status, StatusCode::ACCEPTED);
    assert_ne!(admin.id(), first.id());

    let bad =
        app.call_with(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media])), &[("Idempotency-Key", "")]).await;
    assert_eq!((bad.status, bad.field()), (StatusCode::BAD_REQUEST, "Idempotency-Key"));
}

#[tokio::test]
async fn the_running_batch_limit_says_when_to_try_again() {
    let app = app_with(BatchLimits { per_model: 1, total: 20 });
    let media = app.media("m1").await;
    let token = app.model("m1");
    let first = app.call(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media]))).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let key = [("Idempotency-Key", "retry-me")];
    let limited = app.call_with(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media])), &key).await;
    assert_eq!((limited.status, limited.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert_eq!(limited.header("retry-after"), Some("30"));
    assert!(limited.message().contains("at most 1"), "{}", limited.message());
    // Another model has its own allowance.
    let theirs = app.media("m2").await;
    let reply = app.call(Method::POST, "/v1/batches", &app.model("m2"), Some(tag("m2", &[theirs]))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    // Once the first ends, the refused request goes through under the same key (not "in flight").
    let cancelled = app.call(Method::DELETE, &format!("/v1/batches/{}", first.id()), &token, None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let retried = app.call_with(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media])), &key).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    assert_eq!(retried.header("idempotent-replayed"), None);
    let replayed = app.call_with(Method::POST, "/v1/batches", &token, Some(tag("m1", &[media])), &key).await;
    assert_eq!((replayed.id(), replayed.header("idempotent-replayed")), (retried.id(), Some("true")));
}

#[tokio::test]
async fn only_an_active_batch_is_cancelled_and_only_an_ended_one_rolled_back() {
    let app = app();
    let media = app.media("m1").await;
    let queued = app.call(Method::POST, "/v1/batches", &app.model("m1"), Some(tag("m1", &[media]))).await;
    let uri = format!("/v1/batches/{}", queued.id());
    let early = app.call(Method::POST, &format!("{uri}/rollback"), &app.model("m1"), None).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "invalid_state"));
    let other = app.call(Method::DELETE, &uri, &app.model("m2"), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another model's batch is not found");
    let cancelled = app.call(Method::DELETE, &uri, &app.model("m1"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["finished_at"].is_string() && cancelled.header("etag").is_some());
    let again = app.call(Method::DELETE, &uri, &app.model("m1"), None).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "invalid_state"));
    assert!(again.message().contains("cancelled"), "{}", again.message());
    let undo = app.call(Method::POST, &format!("{uri}/rollback"), &app.model("m1"), None).await;
    assert_eq!((undo.status, undo.code()), (StatusCode::CONFLICT, "invalid_state"));

    // An ended batch: its applied items are rolled back by a new batch.
    let ended = app.ended("m1", &[ItemOutcome::Applied, ItemOutcome::SkippedNotFound, ItemOutcome::Applied]).await;
    let uri = format!("/v1/batches/{}", ended.batch_id);
    let theirs = app.call(Method::POST, &format!("{uri}/rollback"), &app.model("m2"), None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let done = app.call(Method::DELETE, &uri, &app.model("m1"), None).await;
    assert_eq!((done.status, done.code()), (StatusCode::CONFLICT, "invalid_state"), "nothing left to cancel");
    let rollback = app.call(Method::POST, &format!("{uri}/rollback"), &app.model("m1"), None).await;
    assert_eq!(rollback.status, StatusCode::ACCEPTED, "{}", rollback.body);
    let id = rollback.id();
    assert_eq!(rollback.header("location"), Some(format!("/v1/batches/{id}").as_str()));
    assert!(rollback.header("etag").is_some());
    assert_eq!((rollback.body["operation"].as_str(), rollback.body["total"].as_u64()), (Some("rollback"), Some(2)));
    assert_eq!(rollback.body["rollback_of"], ended.batch_id.to_string());
    assert_eq!(rollback.body["params"], json!({"of": ended.batch_id.to_string()}));
    let original = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert_eq!(original.body["rolled_back_by"], id.as_str());
    let twice = app.call(Method::POST, &format!("{uri}/rollback"), &app.admin(), None).await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "invalid_state"));
    let of_rollback = app.call(Method::POST, &format!("/v1/batches/{id}/rollback"), &app.admin(), None).await;
    assert_eq!((of_rollback.status, of_rollback.code()), (StatusCode::CONFLICT, "invalid_state"));
}

#[tokio::test]
async fn the_items_say_what_became_of_each_media() {
    let app = app();
    let outcomes = [ItemOutcome::Applied, ItemOutcome::SkippedConflict, ItemOutcome::Applied, ItemOutcome::Failed];
    let batch = app.ended("m1", &outcomes).await;
    let uri = format!("/v1/batches/{}/items", batch.batch_id);
    let all = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let items = all.body["items"].as_array().unwrap();
    let seen: Vec<&str> = items.iter().map(|i| i["outcome"].as_str().unwrap()).collect();
    assert_eq!(seen, ["applied", "skipped_conflict", "applied", "failed"]);
    assert_eq!(items[0]["seq"], 0);
    assert_eq!(items[0]["before"]["status"], "pending_review");
    assert_eq!(items[0]["written_version"], 2);
    assert!(items[0].get("message").is_none() && items[0].get("predicted").is_none(), "{}", items[0]);
    assert_eq!(items[1]["message"], "no");
    assert!(items[1].get("before").is_none());

    let applied = app.call(Method::GET, &format!("{uri}?outcome=applied&limit=1"), &app.model("m1"), None).await;
    assert_eq!(applied.body["items"].as_array().unwrap().len(), 1, "{}", applied.body);
    let cursor = applied.body["next_cursor"].as_str().unwrap().to_owned();
    let next =
        app.call(Method::GET, &format!("{uri}?outcome=applied&limit=1&cursor={cursor}"), &app.admin(), None).await;
    let rest: Vec<u64> = next.body["items"].as_array().unwrap().iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(rest, [2]);

    for (query, field) in [("outcome=done", "outcome"), ("limit=0", "limit"), ("limit=101", "limit")] {
        let reply = app.call(Method::GET, &format!("{uri}?{query}"), &app.admin(), None).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::BAD_REQUEST, field), "{query}: {}", reply.body);
    }
    let theirs = app.call(Method::GET, &uri, &app.model("m2"), None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);

    // The batch shows its rate and counts.
    let read = app.call(Method::GET, &format!("/v1/batches/{}", batch.batch_id), &app.admin(), None).await;
    assert_eq!(read.body["status"], "completed_with_errors");
    assert_eq!(
        read.body["counts"],
        json!({"applied": 2, "skipped_conflict": 1, "skipped_not_found": 0,
        "skipped_not_allowed": 0, "skipped_invalid_state": 0, "failed": 1})
    );
    assert!(read.body["items_per_second"].as_f64().unwrap() > 0.0, "{}", read.body);
    assert!(read.body.get("eta").is_none(), "an ended batch has no ETA");
}

#[tokio::test]
async fn batches_are_listed_newest_first_for_a_model_or_all_for_admins() {
    let app = app();
    let a = app.ended("m1", &[ItemOutcome::Applied]).await;
    let b = app.ended("m2", &[ItemOutcome::Applied]).await;
    let c = app.ended("m1", &[ItemOutcome::Failed]).await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["items"].as_array().unwrap().iter().map(|j| j["batch_id"].as_str().unwrap().to_owned()).collect()
    };
    let own = app.call(Method::GET, "/v1/batches", &app.model("m1"), None).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(ids(&own), [c.batch_id, a.batch_id].map(|j| j.to_string()));
    let other = app.call(Method::GET, "/v1/batches?model_id=m2", &app.model("m1"), None).await;
    assert_eq!((other.status, other.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let all = app.call(Method::GET, "/v1/batches", &app.admin(), None).await;
    assert_eq!(ids(&all), [c.batch_id, b.batch_id, a.batch_id].map(|j| j.to_string()));
    let m2 = app.call(Method::GET, "/v1/batches?model_id=m2", &app.admin(), None).await;
    assert_eq!(ids(&m2), [b.batch_id.to_string()]);

    let first = app.call(Method::GET, "/v1/batches?limit=2", &app.admin(), None).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let next = app.call(Method::GET, &format!("/v1/batches?limit=2&cursor={cursor}"), &app.admin(), None).await;
    assert_eq!(ids(&next), [a.batch_id.to_string()]);
    assert!(next.body.get("next_cursor").is_none());
    for (query, field) in [("limit=0", "limit"), ("model_id=a%2Fb", "model_id")] {
        let reply = app.call(Method::GET, &format!("/v1/batches?{query}"), &app.admin(), None).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::BAD_REQUEST, field), "{query}: {}", reply.body);
    }
    let unknown = app.call(Method::GET, "/v1/batches?colour=red", &app.admin(), None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
}

#[tokio::test]
async fn statistics_are_for_admins_per_operation() {
    let app = app();
    app.ended("m1", &[ItemOutcome::Applied, ItemOutcome::Applied, ItemOutcome::Failed, ItemOutcome::SkippedNotFound])
        .await;
    app.ended("m2", &[ItemOutcome::Applied, ItemOutcome::Applied, ItemOutcome::Applied, ItemOutcome::Applied]).await;
    let media = app.media("m1").await;
    let dry = json!({"model_id": "m1", "operation": "delete", "dry_run": true,
                     "items": [{"model_id": "m1", "media_id": media.to_string()}]});
    assert_eq!(app.call(Method::POST, "/v1/batches", &app.admin(), Some(dry)).await.status, StatusCode::ACCEPTED);

    let refused = app.call(Method::GET, "/v1/batches/stats", &app.model("m1"), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let stats = app.call(Method::GET, "/v1/batches/stats", &app.admin(), None).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!((stats.body["batches_read"].as_u64(), stats.body["truncated"].as_bool()), (Some(3), Some(false)));
    let operations = stats.body["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "the dry run is not counted: {}", stats.body);
    let tag = &operations[0];
    assert_eq!((tag["operation"].as_str(), tag["batches"].as_u64()), (Some("tag"), Some(2)));
    assert_eq!(tag["items_applied"], 6);
    assert_eq!(tag["failure_rate"], 0.25);
    assert!(tag["mean_items_per_second"].as_f64().unwrap() > 0.0, "{tag}");
}
