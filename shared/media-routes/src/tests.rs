//! The versions routes through HTTP, behind the API's common layers, on the local adapters in a
//! temporary folder.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use phoenix_domain::media::{NewVersion, VersionOrigin};
use phoenix_domain::ports::{MediaStore, QueueName};
use phoenix_domain::{JobId, MediaId, MediaRecord, MediaStatus, ModelId, ObjectKey};
use phoenix_http::{AuthMode, DevClaims};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Config, DerivativeLinks, MediaPorts, routes};

/// Where the local object store says it serves objects (presigned URLs start with it).
const OBJECTS_URL: &str = "http://127.0.0.1:9/storage";

struct App {
    router: Router,
    metadata: Arc<LocalMetadataStore>,
    auth: AuthMode,
    _data: tempfile::TempDir,
}

impl App {
    fn new(links: DerivativeLinks) -> Self {
        let data = tempfile::tempdir().unwrap();
        let metadata = Arc::new(LocalMetadataStore::open(&data.path().join("metadata.sqlite")).unwrap());
        let objects = Arc::new(
            LocalObjectStore::open(&data.path().join("objects"), OBJECTS_URL.into(), b"test-signing-key".to_vec())
                .unwrap(),
        );
        let settings = QueueSettings { max_receive: 5, dead_letter: None };
        let queues = [QueueName::INGEST, QueueName::PUBLISH].map(|name| (name, settings.clone())).to_vec();
        let queue = Arc::new(LocalQueue::open(&data.path().join("queues.sqlite"), queues).unwrap());
        let auth = AuthMode::local(b"test-secret");
        let ports = MediaPorts { objects, metadata: metadata.clone(), queue };
        let config = Config { links, ..Config::default() };
        Self { router: phoenix_http::finish(routes(config, ports, auth.clone())), metadata, auth, _data: data }
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
    async fn edited_media(&self) -> MediaRecord {
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
        self.metadata.create_media(&record).await.unwrap();
        record
    }
}

#[tokio::test]
async fn versions_are_listed_newest_first_with_their_links_and_etag() {
    let app = App::new(DerivativeLinks::PublicBase("http://cdn.example/".into()));
    let record = app.edited_media().await;
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
    let record = app.edited_media().await;
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
    assert!(
        url.starts_with(&format!("{OBJECTS_URL}/_objects/derived/m1/")) && url.contains("/v1/small.webp?"),
        "{url}"
    );
    // Presigned for the configured ten minutes.
    let expires: i64 = url.split("X-Phoenix-Expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    assert!((expires - OffsetDateTime::now_utc().unix_timestamp() - 600).abs() <= 5, "{url}");
    assert_eq!(app.metadata.get_media(&record.model_id, &record.media_id).await.unwrap().image_version, 4);

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
    let record = app.edited_media().await;
    let (status, _, body) =
        app.call(Method::GET, &format!("/v1/models/m1/media/{}", record.media_id), &app.token(None), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["image_version"], 3);
}
