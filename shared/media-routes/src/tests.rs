//! The versions routes through HTTP, behind the API's common layers, on an in-memory store of one
//! model's media (the ports these routes do not touch are unreachable).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use phoenix_domain::batches::{Batch, BatchChunk, BatchItem, BatchStatus, ItemOutcome};
use phoenix_domain::jobs::{Job, JobStatus};
use phoenix_domain::media::{NewVersion, VersionOrigin};
use phoenix_domain::ports::{
    Fingerprint, FingerprintStore, IdempotencyRecord, IdempotencyStore, JobQuery, JobStore, ListPage, MediaQuery,
    MediaStore, ObjectInfo, ObjectStore, Page, PresignedRequest, Presigner, PutOptions, Queue, QueueName, QueueStats,
    ReceivedMessage, StoreError, StoreResult, TombstoneStore,
};
use phoenix_domain::{BatchId, JobId, MediaId, MediaRecord, MediaStatus, ModelId, ObjectKey};
use phoenix_http::{AuthMode, DevClaims};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Config, DerivativeLinks, MediaPorts, routes};

/// Media records with conditional writes; objects only deleted (a restore's dropped versions).
#[derive(Default)]
struct Store {
    media: Mutex<BTreeMap<MediaId, MediaRecord>>,
    deleted: Mutex<Vec<String>>,
}

#[async_trait]
impl MediaStore for Store {
    async fn create_media(&self, _: &MediaRecord) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        self.media.lock().unwrap().get(media).filter(|r| &r.model_id == model).cloned().ok_or(StoreError::NotFound)
    }
    async fn batch_get_media(&self, _: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        unreachable!()
    }
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let mut media = self.media.lock().unwrap();
        match media.get(&record.media_id).map(|r| r.version) {
            None => Err(StoreError::NotFound),
            Some(v) if v + 1 != record.version => Err(StoreError::VersionConflict { current: Some(v) }),
            Some(_) => {
                media.insert(record.media_id, record.clone());
                Ok(())
            }
        }
    }
    async fn list_media(&self, _: &ModelId, _: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        unreachable!()
    }
    async fn list_trash_due(&self, _: time::OffsetDateTime, _: usize) -> StoreResult<Vec<MediaRecord>> {
        unreachable!()
    }
}

#[async_trait]
impl FingerprintStore for Store {
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        Ok((self.get_media(model, media).await?, Vec::new()))
    }
    async fn put_fingerprint(&self, _: &ModelId, _: &Fingerprint) -> StoreResult<()> {
        unreachable!()
    }
    async fn remove_fingerprint(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        unreachable!()
    }
}

#[async_trait]
impl TombstoneStore for Store {
    async fn delete_media(&self, _: &MediaRecord) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<Option<MediaRecord>> {
        unreachable!()
    }
    async fn remove_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        unreachable!()
    }
}

#[async_trait]
impl JobStore for Store {
    async fn create_job(&self, _: &Job) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_job(&self, _: &JobId) -> StoreResult<Job> {
        unreachable!()
    }
    async fn update_job(&self, _: &Job) -> StoreResult<()> {
        unreachable!()
    }
    async fn finish_child(&self, _: &Job, _: bool) -> StoreResult<()> {
        unreachable!()
    }
    async fn list_jobs(&self, _: &JobQuery) -> StoreResult<Page<Job>> {
        unreachable!()
    }
    async fn count_jobs(&self, _: JobStatus) -> StoreResult<u64> {
        unreachable!()
    }
}

#[async_trait]
impl IdempotencyStore for Store {
    async fn create_idempotency(&self, _: &IdempotencyRecord) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_idempotency(&self, _: &str, _: &str) -> StoreResult<IdempotencyRecord> {
        unreachable!()
    }
    async fn update_idempotency(&self, _: &IdempotencyRecord) -> StoreResult<()> {
        unreachable!()
    }
}

/// The versions routes never touch batches.
#[async_trait]
impl phoenix_domain::ports::BatchStore for Store {
    async fn create_batch(&self, _: &Batch, _: &[BatchChunk]) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_batch(&self, _: &BatchId) -> StoreResult<Batch> {
        unreachable!()
    }
    async fn update_batch(&self, _: &Batch) -> StoreResult<()> {
        unreachable!()
    }
    async fn get_chunk(&self, _: &BatchId, _: u32) -> StoreResult<BatchChunk> {
        unreachable!()
    }
    async fn put_chunk_counts(&self, _: &BatchChunk) -> StoreResult<()> {
        unreachable!()
    }
    async fn list_chunks(&self, _: &BatchId) -> StoreResult<Vec<BatchChunk>> {
        unreachable!()
    }
    async fn get_items(&self, _: &BatchId, _: u32, _: u32) -> StoreResult<Vec<BatchItem>> {
        unreachable!()
    }
    async fn get_item(&self, _: &BatchId, _: u32) -> StoreResult<BatchItem> {
        unreachable!()
    }
    async fn write_items(&self, _: &[phoenix_domain::ports::ItemWrite]) -> Vec<StoreResult<()>> {
        unreachable!()
    }
    async fn list_items(
        &self,
        _: &BatchId,
        _: Option<ItemOutcome>,
        _: usize,
        _: Option<String>,
    ) -> StoreResult<Page<BatchItem>> {
        unreachable!()
    }
    async fn list_batches(&self, _: &phoenix_domain::ports::BatchQuery) -> StoreResult<Page<Batch>> {
        unreachable!()
    }
    async fn count_batches(&self, _: Option<&ModelId>, _: BatchStatus) -> StoreResult<u64> {
        unreachable!()
    }
}

#[async_trait]
impl Presigner for Store {
    async fn presign_put(&self, _: &ObjectKey, _: &str, _: u64, _: Duration) -> StoreResult<PresignedRequest> {
        unreachable!()
    }
    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> StoreResult<PresignedRequest> {
        Ok(PresignedRequest {
            method: "GET".into(),
            url: format!("https://bucket.example/{key}?ttl={}", ttl.as_secs()),
            headers: BTreeMap::new(),
            expires_at: OffsetDateTime::now_utc() + ttl,
        })
    }
}

#[async_trait]
impl ObjectStore for Store {
    async fn put(&self, _: &ObjectKey, _: Bytes, _: PutOptions) -> StoreResult<ObjectInfo> {
        unreachable!()
    }
    async fn get(&self, _: &ObjectKey, _: u64) -> StoreResult<(ObjectInfo, Bytes)> {
        unreachable!()
    }
    async fn head(&self, _: &ObjectKey) -> StoreResult<ObjectInfo> {
        unreachable!()
    }
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.deleted.lock().unwrap().push(key.to_string());
        Ok(())
    }
    async fn list(&self, _: &str, _: Option<String>, _: usize) -> StoreResult<ListPage> {
        unreachable!()
    }
}

#[async_trait]
impl Queue for Store {
    async fn send(&self, _: &QueueName, _: &str, _: Duration) -> StoreResult<String> {
        unreachable!()
    }
    async fn receive(&self, _: &QueueName, _: usize, _: Duration, _: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        unreachable!()
    }
    async fn delete(&self, _: &QueueName, _: &str) -> StoreResult<()> {
        unreachable!()
    }
    async fn change_visibility(&self, _: &QueueName, _: &str, _: Duration) -> StoreResult<()> {
        unreachable!()
    }
    async fn depth(&self, _: &QueueName) -> StoreResult<u64> {
        unreachable!()
    }
    async fn stats(&self, _: &QueueName) -> StoreResult<QueueStats> {
        unreachable!()
    }
}

struct App {
    router: Router,
    store: Arc<Store>,
    auth: AuthMode,
}

impl App {
    fn new(links: DerivativeLinks) -> Self {
        let store = Arc::new(Store::default());
        let auth = AuthMode::local(b"test-secret");
        let ports = MediaPorts { objects: store.clone(), metadata: store.clone(), queue: store.clone() };
        let config = Config { links, ..Config::default() };
        Self { router: phoenix_http::finish(routes(config, ports, auth.clone())), store, auth }
    }

    fn token(&self, model: Option<&str>) -> String {
        let AuthMode::LocalJwt(keys) = &self.auth else { unreachable!() };
        let groups = vec![if model.is_some() { "model" } else { "admin" }.to_owned()];
        DevClaims { sub: "someone".into(), groups, model_id: model.map(str::to_owned), exp: 4_102_444_800 }.sign(keys)
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, Value) {
        let mut request =
            Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let etag = response.headers().get(header::ETAG).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, etag, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
    }

    /// A processed media of model `m1` at image version 3: the upload, a rotation (job-made) and
    /// a watermark.
    fn edited_media(&self) -> MediaRecord {
        let now = OffsetDateTime::now_utc();
        let model = ModelId::parse("m1").unwrap();
        let mut record =
            MediaRecord::new_upload(model.clone(), MediaId::new(), "a.jpg".into(), "image/jpeg".into(), 10, now, None);
        let media = record.media_id;
        record.status = MediaStatus::Approved;
        let source = |width: u32, height: u32| {
            serde_json::from_value(json!({
                "etag": "e", "bytes": 1000, "format": "jpeg", "width": width, "height": height,
                "orientation": 1, "sha256": "ab".repeat(32)
            }))
            .unwrap()
        };
        let derivative = |key: String| {
            serde_json::from_value(json!({
                "preset": "small", "preset_version": 2, "format": "webp", "width": 40, "height": 30, "bytes": 99, "key": key
            }))
            .unwrap()
        };
        record.source = Some(source(400, 300));
        record.derivatives = vec![derivative(format!("derived/m1/{media}/v1/small.webp"))];
        let job = JobId::new();
        let rotated = NewVersion {
            source_key: ObjectKey::parse(&format!("versions/m1/{media}/2.jpg")).unwrap(),
            source: source(300, 400),
            derivatives: vec![derivative(format!("derived/m1/{media}/v2/small.webp"))],
            watermark: None,
            origin: VersionOrigin {
                operation: "rotate".into(),
                summary: "rotated 90°".into(),
                job_id: Some(job),
                at: now,
            },
        };
        record.push_version(rotated).unwrap();
        let mut marked = NewVersion {
            source_key: ObjectKey::parse(&format!("versions/m1/{media}/2.jpg")).unwrap(),
            source: source(300, 400),
            derivatives: vec![derivative(format!("derived/m1/{media}/v3/small-wabcd.webp"))],
            watermark: None,
            origin: VersionOrigin {
                operation: "watermark".into(),
                summary: "watermarked small".into(),
                job_id: None,
                at: now,
            },
        };
        marked.watermark = Some(
            serde_json::from_value(json!({
                "profile": "agency-logo", "logo_key": "assets/watermarks/agency-logo/0123456789abcdef.png",
                "position": "bottom_right", "margin": 0.03, "scale": 0.2, "opacity": 0.6, "presets": ["small"]
            }))
            .unwrap(),
        );
        record.push_version(marked).unwrap();
        record.version = 7;
        self.store.media.lock().unwrap().insert(media, record.clone());
        record
    }
}

#[tokio::test]
async fn versions_are_listed_newest_first_with_their_links_and_etag() {
    let app = App::new(DerivativeLinks::PublicBase("http://cdn.example/".into()));
    let record = app.edited_media();
    let uri = format!("/v1/models/m1/media/{}/versions", record.media_id);
    let (status, etag, body) = app.call(Method::GET, &uri, &app.token(Some("m1")), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"], 3);
    let items = body["items"].as_array().unwrap();
    let numbers: Vec<u64> = items.iter().map(|v| v["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    let current: Vec<bool> = items.iter().map(|v| v["current"].as_bool().unwrap()).collect();
    assert_eq!(current, [true, false, false]);
    assert_eq!(items[0]["watermark"], json!({"profile": "agency-logo", "presets": ["small"]}));
    assert_eq!(items[1]["origin"]["operation"], "rotate");
    assert!(items[1]["origin"]["job_id"].is_string());
    assert!(items[2].get("origin").is_none() && items[2].get("watermark").is_none(), "the upload: {}", items[2]);
    assert_eq!(items[1]["source"], json!({"width": 300, "height": 400, "format": "jpeg", "bytes": 1000}));
    assert_eq!(
        items[2]["derivatives"][0]["url"],
        format!("http://cdn.example/derived/m1/{}/v1/small.webp", record.media_id)
    );
    assert!(!body.to_string().contains("versions/m1"), "no storage keys: {body}");

    let etag = etag.expect("an ETag");
    let (status, _, _) = app.call(Method::GET, &uri, &app.token(Some("m1")), &[("If-None-Match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, body) = app.call(Method::GET, &uri, &app.token(Some("m2")), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _, _) = app.call(Method::GET, &uri, &app.token(None), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let missing = format!("/v1/models/m1/media/{}/versions", MediaId::new());
    assert_eq!(app.call(Method::GET, &missing, &app.token(None), &[]).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restore_makes_a_new_current_version_and_answers_the_media() {
    let app = App::new(DerivativeLinks::Presigned(Duration::from_secs(600)));
    let record = app.edited_media();
    let base = format!("/v1/models/m1/media/{}/versions", record.media_id);
    let token = app.token(Some("m1"));

    let (status, _, body) = app.call(Method::POST, &format!("{base}/1/restore"), &app.token(Some("m2")), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let stale = [("If-Match", "\"6-0000000000000000\"")];
    let (status, _, body) = app.call(Method::POST, &format!("{base}/1/restore"), &token, &stale).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("version_conflict")));
    assert_eq!(body["error"]["details"]["current_version"], 7);

    let current = [("If-Match", "\"7\"")];
    let (status, etag, body) = app.call(Method::POST, &format!("{base}/1/restore"), &token, &current).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(etag.unwrap().starts_with("\"8-"));
    assert_eq!((body["version"].as_u64(), body["image_version"].as_u64()), (Some(8), Some(4)));
    assert_eq!(body["media_id"], record.media_id.to_string());
    assert_eq!(body["history"][0]["action"], "version_restored");
    assert!(body["likely_duplicates"].is_array(), "as GET answers: {body}");
    let url = body["derivatives"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("https://bucket.example/derived/m1/") && url.contains("/v1/small.webp?ttl=600"), "{url}");
    assert_eq!(app.store.media.lock().unwrap()[&record.media_id].image_version, 4);

    let (_, _, body) = app.call(Method::GET, &base, &token, &[]).await;
    assert_eq!(body["current"], 4);
    assert_eq!(body["items"][0]["origin"]["summary"], "restored version 1");

    let (status, _, body) = app.call(Method::POST, &format!("{base}/4/restore"), &token, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_state")));
    let (status, _, body) = app.call(Method::POST, &format!("{base}/9/restore"), &token, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert!(body["error"]["message"].as_str().unwrap().contains("no version 9"), "{body}");
    for bad in ["0", "two", "-1"] {
        let (status, _, body) = app.call(Method::POST, &format!("{base}/{bad}/restore"), &token, &[]).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_id")), "{bad}");
    }
}

#[tokio::test]
async fn the_media_shows_its_current_image_version() {
    let app = App::new(DerivativeLinks::PublicBase("http://cdn.example".into()));
    let record = app.edited_media();
    let (status, _, body) =
        app.call(Method::GET, &format!("/v1/models/m1/media/{}", record.media_id), &app.token(None), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["image_version"], 3);
}
