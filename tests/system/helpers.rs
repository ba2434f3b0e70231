//! `spawn_app`: the system on a random port with its own data folder, spoken to over HTTP only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_api::DevClaims;
use phoenix_domain::Limits;
use phoenix_domain::jobs::{Backoff, JobSettings, Lane};
use phoenix_local::{LocalConfig, RunningSystem};
use serde_json::{Value, json};

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata").join(rel)
}

pub struct TestApp {
    pub system: RunningSystem,
    pub client: reqwest::Client,
    pub url: String,
    _data: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Limits::default()).await
}

pub async fn spawn_app_with(limits: Limits) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_in(data.path(), limits).await;
    app._data = Some(data);
    app
}

/// Starts the system on an existing data folder (to test restarts).
pub async fn spawn_in(dir: &Path, limits: Limits) -> TestApp {
    spawn_with_config(test_config(dir, limits)).await
}

/// Job settings for tests: fault injection on, three attempts, short backoffs.
pub fn test_job_settings() -> JobSettings {
    JobSettings {
        max_attempts: 3,
        lease: Duration::from_secs(10),
        backoff: Backoff { base: Duration::from_millis(200), max: Duration::from_secs(2) },
        fault_injection: true,
        ..JobSettings::default()
    }
}

/// The trash for tests: the default grace period (a test that waits it out sets a short one on
/// both `api` and `worker`), and purges queued 1 s after the sweep.
pub fn test_trash_settings() -> phoenix_domain::config::TrashSettings {
    phoenix_domain::config::TrashSettings {
        purge_delay: Duration::from_secs(1),
        ..phoenix_domain::config::TrashSettings::default()
    }
}

pub fn test_config(dir: &Path, limits: Limits) -> LocalConfig {
    let ingest =
        phoenix_ingest::Config { limits: limits.clone(), max_receives: 3, ..phoenix_ingest::Config::default() };
    LocalConfig {
        data_dir: dir.to_owned(),
        addr: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: "test-secret".into(),
        api: phoenix_api::Config {
            limits,
            trash: test_trash_settings(),
            jobs: test_job_settings(),
            ..phoenix_api::Config::default()
        },
        worker: phoenix_image_worker::WorkerConfig {
            imaging: ingest.clone(),
            jobs: test_job_settings(),
            trash: test_trash_settings(),
            cpu_permits: 1,
        },
        batches: phoenix_batch_worker::BatchWorkerConfig {
            trash_grace: test_trash_settings().grace,
            ..phoenix_batch_worker::BatchWorkerConfig::default()
        },
        ingest,
        lane_concurrency: [(Lane::High, 2), (Lane::Normal, 2)],
        reaper_interval: Duration::from_secs(1),
        cors_origin: Default::default(),
        cdn_warm: false,
    }
}

/// The local stack of a deployment that keeps GPS positions (admins see them; nothing public may).
pub async fn spawn_app_keeping_gps() -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data.path(), Limits::default());
    config.ingest.keep_gps = true;
    config.worker.imaging.keep_gps = true;
    let mut app = spawn_with_config(config).await;
    app._data = Some(data);
    app
}

pub async fn spawn_with_config(config: LocalConfig) -> TestApp {
    let system = phoenix_local::spawn(config).await.expect("system starts");
    let url = system.base_url.clone();
    TestApp { system, client: reqwest::Client::new(), url, _data: None }
}

pub fn exp() -> u64 {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp() as u64
}

impl TestApp {
    pub fn admin_token(&self) -> String {
        self.system.token(&DevClaims {
            sub: "admin-1".into(),
            groups: vec!["admin".into()],
            model_id: None,
            exp: exp(),
        })
    }

    pub fn model_token(&self, model: &str) -> String {
        self.system.token(&DevClaims {
            sub: format!("user-{model}"),
            groups: vec!["model".into()],
            model_id: Some(model.into()),
            exp: exp(),
        })
    }

    pub async fn create_upload(&self, token: &str, model: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/models/{model}/media/uploads", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates an upload and PUTs the bytes with the presigned request; returns the media id.
    pub async fn upload(&self, token: &str, model: &str, bytes: Vec<u8>, content_type: &str) -> String {
        let response = self
            .create_upload(
                token,
                model,
                &json!({"filename": "photo", "content_type": content_type, "bytes": bytes.len()}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let created: Value = response.json().await.unwrap();
        let put = self.put_presigned(&created["upload"], bytes).await;
        assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
        created["media_id"].as_str().unwrap().to_owned()
    }

    pub async fn put_presigned(&self, upload: &Value, bytes: Vec<u8>) -> reqwest::Response {
        assert_eq!(upload["method"], "PUT");
        let mut request = self.client.put(upload["url"].as_str().unwrap()).body(bytes);
        for (name, value) in upload["headers"].as_object().unwrap() {
            if !name.eq_ignore_ascii_case("content-length") {
                request = request.header(name, value.as_str().unwrap());
            }
        }
        request.send().await.expect("PUT")
    }

    pub async fn get_media(&self, token: &str, model: &str, media: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/v1/models/{model}/media/{media}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Polls until the media leaves `uploading`/`processing`; returns the record.
    pub async fn wait_processed(&self, token: &str, model: &str, media: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let response = self.get_media(token, model, media).await;
            assert_eq!(response.status(), 200);
            let record: Value = response.json().await.unwrap();
            let status = record["status"].as_str().unwrap().to_owned();
            if status != "uploading" && status != "processing" {
                return record;
            }
            assert!(tokio::time::Instant::now() < deadline, "media {media} still {status} after 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl TestApp {
    /// `POST /v1/jobs` with `body`, under `key` when given.
    pub async fn submit_job(&self, token: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/v1/jobs", self.url)).bearer_auth(token).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("request")
    }

    /// Submits and expects 202; returns the job.
    pub async fn submit_ok(&self, token: &str, body: &Value) -> Value {
        let response = self.submit_job(token, body, None).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    pub async fn job(&self, token: &str, id: &str) -> Value {
        let response =
            self.client.get(format!("{}/v1/jobs/{id}", self.url)).bearer_auth(token).send().await.expect("request");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Polls a job until it ends (succeeded, failed, cancelled); returns it.
    pub async fn wait_job(&self, token: &str, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let job = self.job(token, id).await;
            if matches!(job["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job {id} has not ended after 180 s: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads a photo from the test data and waits until it is processed; returns the record.
    pub async fn processed_photo(&self, token: &str, model: &str, photo: &str) -> Value {
        let bytes = std::fs::read(testdata(&format!("photos/{photo}"))).unwrap();
        let content_type = if photo.ends_with(".png") { "image/png" } else { "image/jpeg" };
        let media = self.upload(token, model, bytes, content_type).await;
        let record = self.wait_processed(token, model, &media).await;
        assert_eq!(record["status"], "pending_review", "{record}");
        record
    }

    /// The bytes at a URL.
    pub async fn fetch(&self, url: &str) -> Vec<u8> {
        let response = self.client.get(url).send().await.expect("request");
        assert_eq!(response.status(), 200, "GET {url}");
        response.bytes().await.unwrap().to_vec()
    }
}

/// The URL of a record's (or a version's) derivative of `preset` in `format`.
pub fn derivative_url(record: &Value, preset: &str, format: &str) -> String {
    record["derivatives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["preset"] == preset && d["format"] == format)
        .unwrap_or_else(|| panic!("no {preset} {format} derivative in {record}"))["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts the standard error body and returns its code.
pub async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].as_object().unwrap_or_else(|| panic!("no error object in {body}"));
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {body}");
    error["code"].as_str().unwrap().to_owned()
}

/// A queue's ARN on the emulator.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes =
        sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await.unwrap();
    attributes.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// A queue and its dead-letter queue on the emulator, with the template's redrive policy
/// (`max_receive` deliveries, then the DLQ): their URLs, queue first.
pub async fn queue_with_dead_letter(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter: &str,
    max_receive: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = sqs.create_queue().queue_name(dead_letter).send().await.unwrap().queue_url.unwrap();
    let redrive = json!({"maxReceiveCount": max_receive, "deadLetterTargetArn": queue_arn(sqs, &dlq).await});
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// The media ids a document (a published one, or a share link's `gallery`) shows, in order.
pub fn shown(document: &Value) -> Vec<String> {
    document["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["items"].as_array().into_iter().flatten())
        .map(|i| i["media_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A response header as text (empty when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}
