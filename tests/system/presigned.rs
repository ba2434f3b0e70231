//! The local object endpoint refuses what S3 would refuse for a presigned PUT.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with, testdata};

async fn new_upload(app: &crate::helpers::TestApp, bytes: usize) -> Value {
    let token = app.admin_token();
    let response = app
        .create_upload(&token, "model-p", &json!({"filename": "p.jpg", "content_type": "image/jpeg", "bytes": bytes}))
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn s3_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body = response.text().await.unwrap();
    let start = body.find("<Code>").expect("an S3 error document") + 6;
    body[start..start + body[start..].find("</Code>").unwrap()].to_owned()
}

#[tokio::test]
async fn put_is_bound_to_type_length_signature_and_key() {
    let app = spawn_app().await;
    let bytes = std::fs::read(testdata("photos/rgb16.png")).unwrap();
    let created = new_upload(&app, bytes.len()).await;
    let url = created["upload"]["url"].as_str().unwrap();

    let wrong_type = app.client.put(url).header("Content-Type", "image/png").body(bytes.clone()).send().await.unwrap();
    assert_eq!(s3_code(wrong_type, 403).await, "SignatureDoesNotMatch");

    let wrong_length =
        app.client.put(url).header("Content-Type", "image/jpeg").body(bytes[..100].to_vec()).send().await.unwrap();
    assert_eq!(s3_code(wrong_length, 403).await, "SignatureDoesNotMatch");

    let tampered = url.replace("X-Phoenix-Signature=", "X-Phoenix-Signature=00");
    let forged =
        app.client.put(&tampered).header("Content-Type", "image/jpeg").body(bytes.clone()).send().await.unwrap();
    assert_eq!(s3_code(forged, 403).await, "SignatureDoesNotMatch");

    let other_key = url.replace("/originals/model-p/", "/originals/model-q/");
    let moved =
        app.client.put(&other_key).header("Content-Type", "image/jpeg").body(bytes.clone()).send().await.unwrap();
    assert_eq!(s3_code(moved, 403).await, "SignatureDoesNotMatch");

    let unsigned = url.split('?').next().unwrap();
    let bare = app.client.put(unsigned).header("Content-Type", "image/jpeg").body(bytes.clone()).send().await.unwrap();
    assert_eq!(s3_code(bare, 403).await, "AccessDenied");

    // Nothing above stored anything; the record still waits for its bytes.
    let token = app.admin_token();
    let media = created["media_id"].as_str().unwrap();
    let record: Value = app.get_media(&token, "model-p", media).await.json().await.unwrap();
    assert_eq!(record["status"], "uploading");

    let ok = app.put_presigned(&created["upload"], bytes).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_expired_url_is_refused() {
    let limits = phoenix_domain::Limits { upload_url_ttl: Duration::from_secs(1), ..Default::default() };
    let app = spawn_app_with(limits).await;
    let bytes = std::fs::read(testdata("photos/rgb16.png")).unwrap();
    let created = new_upload(&app, bytes.len()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = app.put_presigned(&created["upload"], bytes).await;
    assert_eq!(s3_code(response, 403).await, "AccessDenied");
}
