//! The job, queue and watermark routes through HTTP, behind the API's common layers, on the
//! local adapters in a temporary folder: who may do what, the Idempotency-Key's answers, ETags,
//! state errors and validation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use phoenix_domain::jobs::{
    FaultPlan, Job, JobFailure, JobLease, JobSettings, JobStatus, Lane, Operation, SubmitRequest, Target, new_job,
};
use phoenix_domain::ports::{
    JobStore, MediaStore, Queue, QueueName, QueueStats, ReceivedMessage, StoreError, StoreResult,
};
use phoenix_domain::{JobId, MediaId, MediaRecord, MediaStatus, ModelId};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::{AuthMode, DevClaims};
use phoenix_media_routes::DerivativeLinks;
use phoenix_storage::local::{
    LocalLanes, LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings, RecordingEventBus,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Config, JobPorts, routes};

/// The local queue, whose next send can fail as an outage would (a submission dying midway):
/// the one thing the real adapter cannot be made to do.
struct OutageQueue {
    inner: LocalQueue,
    fail_next_send: AtomicBool,
}

#[async_trait]
impl Queue for OutageQueue {
    async fn send(&self, queue: &QueueName, body: &str, delay: Duration) -> StoreResult<String> {
        if self.fail_next_send.swap(false, Ordering::SeqCst) {
            return Err(StoreError::unavailable(anyhow::anyhow!("the queue is down")));
        }
        self.inner.send(queue, body, delay).await
    }
    async fn receive(&self, q: &QueueName, n: usize, v: Duration, w: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        self.inner.receive(q, n, v, w).await
    }
    async fn delete(&self, queue: &QueueName, receipt: &str) -> StoreResult<()> {
        self.inner.delete(queue, receipt).await
    }
    async fn change_visibility(&self, queue: &QueueName, receipt: &str, visibility: Duration) -> StoreResult<()> {
        self.inner.change_visibility(queue, receipt, visibility).await
    }
    async fn depth(&self, queue: &QueueName) -> StoreResult<u64> {
        self.inner.depth(queue).await
    }
    async fn stats(&self, queue: &QueueName) -> StoreResult<QueueStats> {
        self.inner.stats(queue).await
    }
}

/// The ingest queue and the job lanes, each with its dead-letter queue, as the local server
/// opens them.
fn queues() -> Vec<(QueueName, QueueSettings)> {
    let dead_letter = QueueSettings { max_receive: u32::MAX, dead_letter: None };
    [(QueueName::INGEST, QueueName::INGEST_DLQ)]
        .into_iter()
        .chain(Lane::ALL.map(|lane| (lane.queue(), lane.dead_letter_queue())))
        .flat_map(|(queue, dlq)| {
            let settings = QueueSettings { max_receive: 5, dead_letter: Some(dlq.clone()) };
            [(queue, settings), (dlq, dead_letter.clone())]
        })
        .collect()
}

struct App {
    router: Router,
    metadata: Arc<LocalMetadataStore>,
    queue: Arc<OutageQueue>,
    events: Arc<RecordingEventBus>,
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
}

fn app_with(settings: JobSettings) -> App {
    let data = tempfile::tempdir().unwrap();
    let queues = data.path().join("queues.sqlite");
    let metadata = Arc::new(LocalMetadataStore::open(&data.path().join("metadata.sqlite")).unwrap());
    let inner = LocalQueue::open(&queues, self::queues()).unwrap();
    let queue = Arc::new(OutageQueue { inner, fail_next_send: AtomicBool::new(false) });
    let events = Arc::new(RecordingEventBus::in_memory());
    let auth = AuthMode::local(b"test-secret");
    let ports = JobPorts {
        objects: Arc::new(
            LocalObjectStore::open(&data.path().join("objects"), "http://x".into(), b"k".to_vec()).unwrap(),
        ),
        metadata: metadata.clone(),
        queue: queue.clone(),
        events: events.clone(),
        lanes: Arc::new(LocalLanes::open(&queues).unwrap()),
    };
    let config = Config { jobs: settings, links: DerivativeLinks::PublicBase("http://cdn.example".into()) };
    let router = phoenix_http::finish(routes(config, ports, auth.clone()));
    App { router, metadata, queue, events, auth, _data: data }
}

fn app() -> App {
    app_with(JobSettings::default())
}

fn m1() -> ModelId {
    ModelId::parse("m1").unwrap()
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

    async fn raw(&self, method: Method, uri: &str, token: &str, body: impl Into<Body>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// A processed media of `model`.
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

    /// A media still waiting for its bytes.
    async fn uploading_media(&self) -> MediaId {
        let record = MediaRecord::new_upload(
            m1(),
            MediaId::new(),
            "a.jpg".into(),
            "image/jpeg".into(),
            10,
            OffsetDateTime::now_utc(),
            None,
        );
        self.metadata.create_media(&record).await.unwrap();
        record.media_id
    }

    /// A job of `model` stored as `shape` makes it. Job ids order by millisecond only, so each
    /// job gets a millisecond of its own, to list in a known order.
    async fn job(&self, model: &str, shape: impl FnOnce(&mut Job)) -> Job {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let request = SubmitRequest {
            operation: Operation::Rotate { degrees: 90 },
            target: Target::media(ModelId::parse(model).unwrap(), MediaId::new()),
            lane: Lane::Normal,
            fault: None,
        };
        let mut job = new_job(JobId::new(), &request, "someone", &JobSettings::default(), OffsetDateTime::now_utc());
        shape(&mut job);
        self.metadata.create_job(&job).await.unwrap();
        job
    }

    async fn stored(&self, id: &str) -> Job {
        self.metadata.get_job(&JobId::parse(id).unwrap()).await.unwrap()
    }

    /// The jobs stored, of every status.
    async fn job_count(&self) -> u64 {
        let mut count = 0;
        for status in JobStatus::ALL {
            count += self.metadata.count_jobs(status).await.unwrap();
        }
        count
    }

    /// The bodies of the messages waiting in `queue`, oldest first (left visible).
    async fn sent(&self, queue: &QueueName) -> Vec<String> {
        let waiting = self.queue.receive(queue, 10, Duration::ZERO, Duration::ZERO).await.unwrap();
        waiting.into_iter().map(|m| m.body).collect()
    }

    fn event_types(&self) -> Vec<String> {
        self.events.events().into_iter().map(|e| e.detail_type).collect()
    }
}

fn rotate(model: &str, media: MediaId, degrees: u16) -> Value {
    json!({"operation": "rotate", "target": {"model_id": model, "media_id": media.to_string()}, "params": {"degrees": degrees}})
}

fn failed(job: &mut Job) {
    job.status = JobStatus::Failed;
    job.error = Some(JobFailure { code: "attempts_exhausted".into(), message: "5 attempts failed".into() });
    job.finished_at = Some(OffsetDateTime::now_utc());
}

#[tokio::test]
async fn a_model_submits_for_itself_and_is_told_where_the_job_is() {
    let app = app();
    let media = app.media("m1").await;
    let mut body = rotate("m1", media, 90);
    body["priority"] = json!("high");
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m1"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("location"), Some(format!("/v1/jobs/{id}").as_str()));
    assert!(reply.header("etag").unwrap().starts_with("\"1-"), "{:?}", reply.header("etag"));
    assert_eq!(reply.header("idempotent-replayed"), None);
    let job = &reply.body;
    assert_eq!((job["status"].as_str(), job["priority"].as_str()), (Some("queued"), Some("high")));
    assert_eq!((job["operation"].as_str(), &job["params"]), (Some("rotate"), &json!({"degrees": 90})));
    assert_eq!(job["target"], json!({"model_id": "m1", "media_id": media.to_string(), "stale": false}));
    assert_eq!(job["max_attempts"], 5);
    assert!(job.get("lease").is_none() && job.get("fault").is_none());
    assert_eq!(app.sent(&QueueName::JOBS_HIGH).await, vec![format!("{{\"job_id\":\"{id}\"}}")]);
    assert_eq!(app.event_types(), ["job.queued"]);

    // Behind a named stage, the Location carries the stage.
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(rotate("m1", media, 180).to_string()))
        .unwrap();
    request.extensions_mut().insert(PathPrefix("/prod".into()));
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.header("location").unwrap().starts_with("/prod/v1/jobs/"), "{:?}", reply.header("location"));
    assert_eq!(reply.body["priority"], "normal", "the default lane");
}

#[tokio::test]
async fn a_model_submits_only_for_itself_and_an_admin_for_anyone() {
    let app = app();
    let media = app.media("m1").await;
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m2"), Some(rotate("m1", media, 90))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(app.job_count().await, 0);
    let reply = app.call(Method::POST, "/v1/jobs", &app.admin(), Some(rotate("m1", media, 90))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["submitted_by"], "user-admin");
}

#[tokio::test]
async fn an_idempotency_key_answers_the_same_job_refuses_another_body_and_says_in_flight() {
    let app = app();
    let media = app.media("m1").await;
    let token = app.model("m1");
    let key = [("Idempotency-Key", "order-42")];
    let first = app.call_with(Method::POST, "/v1/jobs", &token, Some(rotate("m1", media, 90)), &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same body (formatted differently) under the same key: the same job, said to be replayed.
    let same = json!({
        "target": {"media_id": media.to_string(), "model_id": "m1"},
        "params": {"degrees": 90},
        "operation": "rotate",
        "priority": "normal"
    });
    let again = app.call_with(Method::POST, "/v1/jobs", &token, Some(same), &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["job_id"], first.body["job_id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(app.job_count().await, 1, "one job");
    assert_eq!(app.sent(&QueueName::JOBS_NORMAL).await.len(), 1, "one message");

    let other = app.call_with(Method::POST, "/v1/jobs", &token, Some(rotate("m1", media, 180)), &key).await;
    assert_eq!((other.status, other.code()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert!(other.message().contains("different request body"), "{}", other.message());

    // Another caller's same key is its own key.
    let admin = app.call_with(Method::POST, "/v1/jobs", &app.admin(), Some(rotate("m1", media, 180)), &key).await;
    assert_eq!(admin.status, StatusCode::ACCEPTED);
    assert_ne!(admin.body["job_id"], first.body["job_id"]);

    // A submission that died after taking its key leaves it in flight for a while.
    app.queue.fail_next_send.store(true, Ordering::SeqCst);
    let key = [("Idempotency-Key", "order-43")];
    let died = app.call_with(Method::POST, "/v1/jobs", &token, Some(rotate("m1", media, 270)), &key).await;
    assert_eq!((died.status, died.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    let busy = app.call_with(Method::POST, "/v1/jobs", &token, Some(rotate("m1", media, 270)), &key).await;
    assert_eq!((busy.status, busy.code()), (StatusCode::CONFLICT, "idempotency_in_flight"));
    assert_eq!(busy.header("retry-after"), Some("1"));

    let bad = app
        .call_with(Method::POST, "/v1/jobs", &token, Some(rotate("m1", media, 90)), &[("Idempotency-Key", "")])
        .await;
    assert_eq!((bad.status, bad.field()), (StatusCode::BAD_REQUEST, "Idempotency-Key"));
}

#[tokio::test]
async fn a_bad_submission_names_what_is_wrong() {
    let app = app();
    let media = app.media("m1").await;
    let token = app.model("m1");
    let reply = app.raw(Method::POST, "/v1/jobs", &token, "{\"operation\": ").await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "malformed_json"));

    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = rotate("m1", media, 90);
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| b["priority"] = json!(5)), "priority"),
        (with(&|b| b["priority"] = json!("urgent")), "priority"),
        (with(&|b| b["params"] = json!({"degrees": 45})), "params.degrees"),
        (with(&|b| b["params"] = json!({"degrees": 90, "extra": 1})), "params"),
        (with(&|b| b["params"] = json!([90])), "params"),
        (with(&|b| b["operation"] = json!("explode")), "operation"),
        (with(&|b| b["target"]["model_id"] = json!("a/b")), "target.model_id"),
        (with(&|b| b["target"]["media_id"] = json!("NOT-A-ULID")), "target.media_id"),
        (with(&|b| b["extra"] = json!(true)), "extra"),
        (with(&|b| b["fault"] = json!({"transient_failures": 2})), "fault"),
        (with(&|b| b["target"].as_object_mut().unwrap().remove("media_id").map(drop).unwrap()), "target.media_id"),
        (with(&|b| b["target"]["stale"] = json!(true)), "target.stale"),
    ];
    for (body, field) in cases {
        let reply = app.call(Method::POST, "/v1/jobs", &token, Some(body.clone())).await;
        assert_eq!(
            (reply.status, reply.code(), reply.field()),
            (StatusCode::BAD_REQUEST, "invalid_request", field),
            "{body}: {}",
            reply.body
        );
    }
    let reply = app.call(Method::POST, "/v1/jobs", &token, Some(rotate("m1", MediaId::new(), 90))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"));
    let reply = app.call(Method::POST, "/v1/jobs", &token, Some(rotate("m1", app.uploading_media().await, 90))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let reply = app.raw(Method::POST, "/v1/jobs", &token, format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024))).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "the API's limit holds here"
    );
    assert_eq!(app.job_count().await, 0, "nothing was written");

    // With fault injection on, a fault plan is taken (and shown to admins only).
    let app = app_with(JobSettings { fault_injection: true, ..JobSettings::default() });
    let media = app.media("m1").await;
    let mut body = rotate("m1", media, 90);
    body["fault"] = json!({"transient_failures": 2});
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m1"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(reply.body.get("fault").is_none());
    let id = reply.body["job_id"].as_str().unwrap();
    let reply = app.call(Method::GET, &format!("/v1/jobs/{id}"), &app.admin(), None).await;
    assert_eq!(reply.body["fault"], json!({"transient_failures": 2, "permanent": false, "stall_ms": 0}));
}

#[tokio::test]
async fn a_watermark_job_needs_a_profile_that_exists() {
    let app = app();
    let media = app.media("m1").await;
    let body = json!({"operation": "watermark", "target": {"model_id": "m1", "media_id": media.to_string()}, "params": {"profile": "nope"}});
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m1"), Some(body.clone())).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert!(reply.message().contains("no watermark profile named nope"), "{}", reply.message());
    let put = app.call(Method::PUT, "/v1/watermarks/nope", &app.admin(), Some(watermark_body(&png(8, 8, true)))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m1"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["params"], json!({"profile": "nope"}));
    // A whole-model watermark is a parent job.
    let whole = json!({"operation": "watermark", "target": {"model_id": "m1"}, "params": {"profile": "nope"}});
    let reply = app.call(Method::POST, "/v1/jobs", &app.model("m1"), Some(whole)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(reply.body["target"].get("media_id").is_none());
}

#[tokio::test]
async fn a_job_is_polled_with_its_etag_and_hidden_from_other_models() {
    let app = app();
    let job = app.job("m1", |_| {}).await;
    let uri = format!("/v1/jobs/{}", job.job_id);
    let reply = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["job_id"], job.job_id.to_string());
    let etag = reply.header("etag").unwrap().to_owned();
    let unchanged = app.call_with(Method::GET, &uri, &app.model("m1"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!((unchanged.status, unchanged.header("etag")), (StatusCode::NOT_MODIFIED, Some(etag.as_str())));
    assert_eq!(unchanged.body, Value::Null);

    // Once the job changes, the old ETag no longer matches.
    let mut bumped = app.stored(&job.job_id.to_string()).await;
    bumped.version += 1;
    app.metadata.update_job(&bumped).await.unwrap();
    let changed = app.call_with(Method::GET, &uri, &app.model("m1"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert!(changed.header("etag").unwrap().starts_with("\"2-"));

    let theirs = app.call(Method::GET, &uri, &app.model("m2"), None).await;
    let missing = app.call(Method::GET, &format!("/v1/jobs/{}", JobId::new()), &app.model("m2"), None).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(theirs.message(), format!("job {} not found", job.job_id), "said as of a job that does not exist");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, &uri, &app.admin(), None).await.status, StatusCode::OK);
    let bad = app.call(Method::GET, "/v1/jobs/not-a-job", &app.admin(), None).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_id"));
    let anonymous = app.send(Request::get(&uri).body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn leases_and_fault_plans_are_for_admins_only() {
    let app = app();
    let job = app
        .job("m1", |j| {
            j.status = JobStatus::Running;
            j.lease = Some(JobLease { until: OffsetDateTime::now_utc(), holder: "message-7".into() });
            j.fault = Some(FaultPlan { transient_failures: 1, ..FaultPlan::default() });
        })
        .await;
    let uri = format!("/v1/jobs/{}", job.job_id);
    let model = app.call(Method::GET, &uri, &app.model("m1"), None).await;
    assert!(model.body.get("lease").is_none() && model.body.get("fault").is_none(), "{}", model.body);
    assert!(!model.body.to_string().contains("message-7"));
    let admin = app.call(Method::GET, &uri, &app.admin(), None).await;
    assert_eq!(admin.body["lease"]["holder"], "message-7");
    assert_eq!(admin.body["fault"]["transient_failures"], 1);
}

#[tokio::test]
async fn a_finished_job_links_the_derivatives_it_made() {
    let app = app();
    let media = MediaId::new();
    let job = app
        .job("m1", |j| {
            j.status = JobStatus::Succeeded;
            j.result = Some(
            serde_json::from_value(json!({
                "media_id": media.to_string(), "image_version": 2, "summary": "rotated 90°",
                "derivatives": [{"preset": "small", "preset_version": 1, "format": "webp", "width": 30, "height": 40,
                                 "bytes": 99, "key": format!("derived/m1/{media}/abc/small-v1.webp")}]
            }))
            .unwrap(),
        );
        })
        .await;
    let reply = app.call(Method::GET, &format!("/v1/jobs/{}", job.job_id), &app.model("m1"), None).await;
    let result = &reply.body["result"];
    assert_eq!((result["image_version"].as_u64(), result["summary"].as_str()), (Some(2), Some("rotated 90°")));
    assert_eq!(result["derivatives"][0]["url"], format!("http://cdn.example/derived/m1/{media}/abc/small-v1.webp"));
    assert!(result["derivatives"][0].get("key").is_none(), "no storage keys");
}

#[tokio::test]
async fn only_a_queued_job_is_cancelled_and_only_a_failed_one_retried() {
    let app = app();
    let queued = app.job("m1", |_| {}).await;
    let uri = format!("/v1/jobs/{}", queued.job_id);
    let other = app.call(Method::DELETE, &uri, &app.model("m2"), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another model's job is not found");
    let cancelled = app.call(Method::DELETE, &uri, &app.model("m1"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.header("etag").is_some());
    let again = app.call(Method::DELETE, &uri, &app.model("m1"), None).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "invalid_state"));
    assert!(again.message().contains("cancelled"), "{}", again.message());
    let retry = app.call(Method::POST, &format!("{uri}/retry"), &app.model("m1"), None).await;
    assert_eq!((retry.status, retry.code()), (StatusCode::CONFLICT, "invalid_state"));

    let running = app.job("m1", |j| j.status = JobStatus::Running).await;
    let reply = app.call(Method::DELETE, &format!("/v1/jobs/{}", running.job_id), &app.admin(), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));

    let failed = app.job("m1", failed).await;
    let reply = app.call(Method::POST, &format!("/v1/jobs/{}/retry", failed.job_id), &app.model("m1"), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["status"], "queued");
    assert!(reply.body.get("error").is_none(), "{}", reply.body);
    assert_eq!(app.stored(&failed.job_id.to_string()).await.status, JobStatus::Queued);
    assert_eq!(app.sent(&QueueName::JOBS_NORMAL).await.len(), 1);
    assert_eq!(app.event_types(), ["job.cancelled", "job.queued"]);
}

#[tokio::test]
async fn jobs_are_listed_newest_first_for_a_model_or_by_status_for_admins() {
    let app = app();
    let a = app.job("m1", |_| {}).await;
    let b = app.job("m1", failed).await;
    let c = app.job("m1", |_| {}).await;
    let theirs = app.job("m2", failed).await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["items"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
    };
    let own = app.call(Method::GET, "/v1/jobs", &app.model("m1"), None).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(ids(&own), [c.job_id, b.job_id, a.job_id].map(|j| j.to_string()));
    let failed_own = app.call(Method::GET, "/v1/jobs?model_id=m1&status=failed", &app.model("m1"), None).await;
    assert_eq!(ids(&failed_own), [b.job_id.to_string()]);
    let other = app.call(Method::GET, "/v1/jobs?model_id=m2", &app.model("m1"), None).await;
    assert_eq!((other.status, other.code()), (StatusCode::FORBIDDEN, "forbidden"));

    let neither = app.call(Method::GET, "/v1/jobs", &app.admin(), None).await;
    assert_eq!((neither.status, neither.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let all_failed = app.call(Method::GET, "/v1/jobs?status=failed", &app.admin(), None).await;
    assert_eq!(ids(&all_failed), [theirs.job_id, b.job_id].map(|j| j.to_string()));
    let m2 = app.call(Method::GET, "/v1/jobs?model_id=m2", &app.admin(), None).await;
    assert_eq!(ids(&m2), [theirs.job_id.to_string()]);

    let first = app.call(Method::GET, "/v1/jobs?model_id=m1&limit=2", &app.admin(), None).await;
    assert_eq!(ids(&first).len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let next =
        app.call(Method::GET, &format!("/v1/jobs?model_id=m1&limit=2&cursor={cursor}"), &app.admin(), None).await;
    assert_eq!(ids(&next), [a.job_id.to_string()]);
    assert!(next.body.get("next_cursor").is_none());
    let foreign = app.call(Method::GET, &format!("/v1/jobs?model_id=m2&cursor={cursor}"), &app.admin(), None).await;
    assert_eq!((foreign.status, foreign.code()), (StatusCode::BAD_REQUEST, "invalid_request"));

    for (query, field) in [("status=done", "status"), ("model_id=m1&limit=0", "limit"), ("model_id=a%2Fb", "model_id")]
    {
        let reply = app.call(Method::GET, &format!("/v1/jobs?{query}"), &app.admin(), None).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::BAD_REQUEST, field), "{query}: {}", reply.body);
    }
    let unknown = app.call(Method::GET, "/v1/jobs?colour=red", &app.admin(), None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
}

#[tokio::test]
async fn the_lanes_are_the_admins_to_read_pause_resume_and_redrive() {
    let app = app();
    app.job("m1", |_| {}).await;
    let failed = app.job("m1", failed).await;
    for (method, uri) in [
        (Method::GET, "/v1/queues/stats"),
        (Method::POST, "/v1/queues/high/pause"),
        (Method::POST, "/v1/queues/high/resume"),
        (Method::POST, "/v1/queues/high/redrive"),
    ] {
        let reply = app.call(method, uri, &app.model("m1"), None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"), "{uri}");
    }

    let stats = app.call(Method::GET, "/v1/queues/stats", &app.admin(), None).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["lanes"][0]["lane"], "high");
    assert_eq!(stats.body["lanes"][1]["lane"], "normal");
    assert_eq!(stats.body["jobs"]["queued"], 1);
    assert_eq!(stats.body["jobs"]["failed"], 1);
    assert!(stats.body["oldest_queued_age_secs"].is_u64());

    let paused = app.call(Method::POST, "/v1/queues/high/pause", &app.admin(), None).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!((paused.body["lane"].as_str(), paused.body["paused"].as_bool()), (Some("high"), Some(true)));
    let stats = app.call(Method::GET, "/v1/queues/stats", &app.admin(), None).await;
    assert_eq!(stats.body["lanes"][0]["paused"], true);
    let resumed = app.call(Method::POST, "/v1/queues/high/resume", &app.admin(), None).await;
    assert_eq!(resumed.body["paused"], false);
    let unknown = app.call(Method::POST, "/v1/queues/urgent/pause", &app.admin(), None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "not_found"));

    // Two dead letters: one names a failed job (queued again), one is not a job message at all.
    let dlq = QueueName::JOBS_NORMAL_DLQ;
    for body in [failed.message().to_json(), "not a job".to_owned()] {
        app.queue.send(&dlq, &body, Duration::ZERO).await.unwrap();
    }
    let stats = app.call(Method::GET, "/v1/queues/stats", &app.admin(), None).await;
    assert_eq!(stats.body["lanes"][1]["dead_letter"], 2);
    let moved = app.call(Method::POST, "/v1/queues/normal/redrive", &app.admin(), None).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body, json!({"lane": "normal", "moved": 2}));
    assert_eq!(app.sent(&QueueName::JOBS_NORMAL).await.len(), 2);
    assert_eq!(app.stored(&failed.job_id.to_string()).await.status, JobStatus::Queued);
    let again = app.call(Method::POST, "/v1/queues/normal/redrive", &app.admin(), None).await;
    assert_eq!(again.body["moved"], 0);
}

/// A PNG of `width`x`height`, with or without alpha, of noise (so that it does not compress).
fn png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed & 0xff) as u8
    };
    let mut out = std::io::Cursor::new(Vec::new());
    if alpha {
        let image = image::RgbaImage::from_fn(width, height, |_, _| image::Rgba([next(), next(), next(), next()]));
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    } else {
        let image = image::RgbImage::from_fn(width, height, |_, _| image::Rgb([next(), next(), next()]));
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    }
    out.into_inner()
}

fn watermark_body(logo: &[u8]) -> Value {
    json!({
        "logo_png_base64": base64::engine::general_purpose::STANDARD.encode(logo),
        "position": "bottom_right", "margin": 0.03, "scale": 0.2, "opacity": 0.6, "presets": ["large"]
    })
}

#[tokio::test]
async fn a_watermark_profile_is_put_by_admins_with_a_checked_logo() {
    let app = app();
    let uri = "/v1/watermarks/agency-logo";
    let good = watermark_body(&png(64, 32, true));
    let reply = app.call(Method::PUT, uri, &app.model("m1"), Some(good.clone())).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));

    let refusals: Vec<(Value, &str, &str)> = vec![
        (watermark_body(b"GIF89a not a png"), "logo_png_base64", "PNG"),
        (watermark_body(&png(16, 16, false)), "logo_png_base64", "transparency"),
        (watermark_body(&png(4097, 1, true)), "logo_png_base64", "4096"),
        (json!({"logo_png_base64": "%%% not base64"}), "logo_png_base64", "base64"),
        (json!({"margin": 0.5}), "margin", "margin"),
        (json!({"opacity": 0}), "opacity", "opacity"),
        (json!({"presets": []}), "presets", "presets"),
        (json!({"position": "middle"}), "position", "unknown position \"middle\"; one of `top_left`"),
    ];
    for (change, field, words) in refusals {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = app.call(Method::PUT, uri, &app.admin(), Some(body)).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::BAD_REQUEST, field), "{field}: {}", reply.body);
        assert!(reply.message().contains(words), "{field}: {}", reply.message());
    }

    let put = app.call(Method::PUT, uri, &app.admin(), Some(good)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!((put.body["logo_width"].as_u64(), put.body["logo_height"].as_u64()), (Some(64), Some(32)));
    assert_eq!((put.body["name"].as_str(), put.body["position"].as_str()), (Some("agency-logo"), Some("bottom_right")));
    assert_eq!(put.body["logo_sha256"].as_str().unwrap().len(), 64);
    assert!(put.body.get("logo_png_base64").is_none() && put.body.get("logo_key").is_none(), "{}", put.body);

    let read = app.call(Method::GET, uri, &app.model("m1"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["logo_sha256"], put.body["logo_sha256"]);
    assert!(read.body.get("updated_by").is_none(), "the admin's subject is for admins");
    assert_eq!(app.call(Method::GET, uri, &app.admin(), None).await.body["updated_by"], "user-admin");
    let list = app.call(Method::GET, "/v1/watermarks", &app.model("m1"), None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let missing = app.call(Method::GET, "/v1/watermarks/other", &app.model("m1"), None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "not_found"));
    let bad = app.call(Method::GET, "/v1/watermarks/a%20b", &app.model("m1"), None).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_id"));
}

#[tokio::test]
async fn a_logo_may_be_larger_than_other_bodies_but_not_without_bound() {
    let app = app();
    let logo = png(400, 400, true);
    assert!(logo.len() > 512 * 1024, "{} bytes: over the API's 64 KiB limit", logo.len());
    let reply = app.call(Method::PUT, "/v1/watermarks/big", &app.admin(), Some(watermark_body(&logo))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["logo_width"], 400);

    let huge = format!("{{\"logo_png_base64\": \"{}\"}}", "A".repeat(crate::WATERMARK_MAX_BODY));
    let reply = app.raw(Method::PUT, "/v1/watermarks/huge", &app.admin(), huge).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert!(reply.message().contains(&crate::WATERMARK_MAX_BODY.to_string()), "{}", reply.message());
}
