//! Uploads as a frontend meets them: the media's URL on 201, a fresh URL for an upload whose URL
//! expired, one upload per URL, a content type that follows the bytes, and file names that display
//! as what they are.

use std::time::Duration;

use phoenix_domain::{Limits, ObjectKey, StoreError};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with, testdata};

#[tokio::test]
async fn a_created_upload_says_where_its_media_is() {
    let app = spawn_app().await;
    let token = app.model_token("model-l");
    let body = json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10});
    let response = app.create_upload(&token, "model-l", &body).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/v1/models/model-l/media/{}", created["media_id"].as_str().unwrap()));

    let media = app.client.get(format!("{}{location}", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(media.status(), 200);
    let view: Value = media.json().await.unwrap();
    assert_eq!(view["status"], "uploading");
    assert_eq!(view["upload_expires_at"], created["upload"]["expires_at"], "the view says when the URL expires");
}

#[tokio::test]
async fn an_upload_whose_url_expired_gets_a_fresh_one() {
    let app = spawn_app_with(Limits { upload_url_ttl: Duration::from_secs(3), ..Limits::default() }).await;
    let token = app.model_token("model-r");
    let bytes = std::fs::read(testdata("photos/portrait-6mp.jpg")).unwrap();
    let body = json!({"filename": "late.jpg", "content_type": "image/jpeg", "bytes": bytes.len()});
    let created: Value = app.create_upload(&token, "model-r", &body).await.json().await.unwrap();
    let media = created["media_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(app.put_presigned(&created["upload"], bytes.clone()).await.status(), 403, "the first URL expired");

    let renew = |token: String| {
        let request = app.client.post(format!("{}/v1/models/model-r/media/{media}/upload-url", app.url));
        async move { request.bearer_auth(token).send().await.unwrap() }
    };
    let response = renew(token.clone()).await;
    assert_eq!(response.status(), 200);
    let fresh: Value = response.json().await.unwrap();
    assert_eq!(fresh["media_id"], media);
    assert_eq!(fresh["status"], "uploading");
    assert!(fresh["upload"]["expires_at"].as_str() > created["upload"]["expires_at"].as_str());
    let view: Value = app.get_media(&token, "model-r", media).await.json().await.unwrap();
    assert_eq!(view["upload_expires_at"], fresh["upload"]["expires_at"]);
    assert_eq!(view["history"][0]["action"], "upload_url_renewed");
    // Another model's user may not ask for it.
    assert_eq!(error_code(renew(app.model_token("model-x")).await, 403).await, "forbidden");

    assert_eq!(app.put_presigned(&fresh["upload"], bytes).await.status(), 200);
    let record = app.wait_processed(&token, "model-r", media).await;
    assert_eq!(record["status"], "pending_review", "{record}");
    assert!(record.get("upload_expires_at").is_none(), "only shown while uploading: {record}");
    // Only a media still uploading gets a new URL.
    assert_eq!(error_code(renew(token.clone()).await, 409).await, "invalid_state");
    let missing = app
        .client
        .post(format!("{}/v1/models/model-r/media/01jd3k6v2q8m3y7x9t0b5n4c2a/upload-url", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 404).await, "not_found");
}

/// Polls until the media's history holds `n` lines of `action`; returns the media.
async fn wait_for_history(app: &TestApp, token: &str, model: &str, media: &str, action: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let record: Value = app.get_media(token, model, media).await.json().await.unwrap();
        let lines = record["history"].as_array().unwrap().iter().filter(|h| h["action"] == action).count();
        if lines >= n {
            return record;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {n} {action} lines after 60 s: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_upload_url_is_for_one_upload() {
    let app = spawn_app().await;
    let (token, admin) = (app.model_token("model-o"), app.admin_token());
    let first = std::fs::read(testdata("photos/portrait-6mp.jpg")).unwrap();
    let body = json!({"filename": "one.jpg", "content_type": "image/jpeg", "bytes": first.len()});
    let created: Value = app.create_upload(&token, "model-o", &body).await.json().await.unwrap();
    let media = created["media_id"].as_str().unwrap();
    assert_eq!(app.put_presigned(&created["upload"], first).await.status(), 200);
    app.wait_processed(&token, "model-o", media).await;
    let review = app
        .client
        .post(format!("{}/v1/models/model-o/media/{media}/review", app.url))
        .bearer_auth(&admin)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), 200);
    let approved: Value = app.get_media(&token, "model-o", media).await.json().await.unwrap();
    assert_eq!(approved["status"], "approved");

    // Another photo of the same length, then corrupt bytes, through the same (still valid) URL.
    let mut other = std::fs::read(testdata("photos/portrait-10mp.jpg")).unwrap();
    let length = approved["declared_bytes"].as_u64().unwrap() as usize;
    assert!(other.len() < length);
    other.resize(length, 0);
    let key = ObjectKey::parse(&format!("originals/model-o/{media}")).unwrap();
    for (n, bytes) in [other, vec![0x42; length]].into_iter().enumerate() {
        assert_eq!(app.put_presigned(&created["upload"], bytes).await.status(), 200, "S3 takes the bytes");
        let after = wait_for_history(&app, &token, "model-o", media, "upload_refused", n + 1).await;
        for field in ["status", "review", "derivatives", "source", "placeholder", "content_type"] {
            assert_eq!(after[field], approved[field], "{field} changed after a second upload");
        }
        assert!(matches!(app.system.objects.head(&key).await, Err(StoreError::NotFound)), "the stray is removed");
        for d in approved["derivatives"].as_array().unwrap() {
            let response = app.client.get(d["url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(response.status(), 200, "the approved derivatives still stand");
        }
    }
    // Nothing is left to retry or to inspect.
    assert_eq!(app.system.queue.depth(&phoenix_domain::QueueName::INGEST_DLQ).await.unwrap(), 0);
}

#[tokio::test]
async fn the_content_type_follows_the_bytes() {
    let app = spawn_app().await;
    let token = app.model_token("model-t");
    let bytes = std::fs::read(testdata("photos/portrait-6mp.jpg")).unwrap();
    let media = app.upload(&token, "model-t", bytes, "image/png").await;
    let record = app.wait_processed(&token, "model-t", &media).await;
    assert_eq!(record["status"], "pending_review", "{record}");
    assert_eq!(
        (record["content_type"].as_str(), record["source"]["format"].as_str()),
        (Some("image/jpeg"), Some("jpeg"))
    );
    let line = record["history"].as_array().unwrap().iter().find(|h| h["action"] == "content_type_corrected");
    assert_eq!(line.expect("a history line")["summary"], "declared image/png, the bytes are image/jpeg");
}

#[tokio::test]
async fn a_filename_that_displays_as_something_else_is_refused() {
    let app = spawn_app().await;
    let token = app.model_token("model-n");
    for name in ["invoice\u{202E}gpj.exe", "a\u{2066}b.jpg", "photo\u{200F}.jpg", "zero\u{200B}width.png"] {
        let body = json!({"filename": name, "content_type": "image/jpeg", "bytes": 10});
        let response = app.create_upload(&token, "model-n", &body).await;
        assert_eq!(response.status(), 400, "{name:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("filename") && message.contains("bidirectional"), "{message}");
    }
    let fine = json!({"filename": "\u{00e9}t\u{00e9} \u{0645}\u{06CC}\u{200C}\u{062E}.jpg", "content_type": "image/jpeg", "bytes": 10});
    assert_eq!(app.create_upload(&token, "model-n", &fine).await.status(), 201);
}
