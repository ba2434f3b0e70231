//! Hostile files are refused cleanly: at upload when the declaration alone is enough, otherwise
//! by the processor with a stated reason — no crash, no retry loop, no derivative.

use serde_json::json;

use crate::helpers::{error_code, spawn_app, testdata};

#[tokio::test]
async fn hostile_files_end_rejected_with_a_reason() {
    let app = spawn_app().await;
    let token = app.model_token("model-h");
    // (file, declared type, expected rejection code)
    let cases = [
        ("bomb-50000x50000.png", "image/png", &["dimensions_too_large", "too_many_pixels"][..]),
        ("huge-dimensions-header.jpg", "image/jpeg", &["dimensions_too_large", "too_many_pixels"][..]),
        ("truncated.jpg", "image/jpeg", &["corrupt_image"][..]),
        ("html-named.jpg", "image/jpeg", &["unsupported_format"][..]),
        ("random-bytes.jpg", "image/jpeg", &["unsupported_format"][..]),
        // Declared as something we accept, but the bytes say otherwise.
        ("animated.gif", "image/jpeg", &["unsupported_format"][..]),
        ("script.svg", "image/png", &["unsupported_format"][..]),
    ];
    let mut uploads = Vec::new();
    for (file, content_type, codes) in cases {
        let bytes = std::fs::read(testdata(&format!("hostile/{file}"))).unwrap();
        uploads.push((file, codes, app.upload(&token, "model-h", bytes, content_type).await));
    }
    for (file, codes, media) in uploads {
        let record = app.wait_processed(&token, "model-h", &media).await;
        assert_eq!(record["status"], "rejected", "{file}: {record}");
        let code = record["rejection"]["code"].as_str().unwrap();
        assert!(codes.contains(&code), "{file}: rejected as {code}, expected one of {codes:?}");
        assert!(record["rejection"]["message"].as_str().is_some_and(|m| m.len() > 10), "{file}: {record}");
        assert_eq!(record["derivatives"], json!([]), "{file}");
    }
    // Nothing was left to retry.
    assert_eq!(app.system.queue.depth(&phoenix_domain::QueueName::INGEST).await.unwrap(), 0);
    assert_eq!(app.system.queue.depth(&phoenix_domain::QueueName::INGEST_DLQ).await.unwrap(), 0);
}

#[tokio::test]
async fn gif_svg_and_empty_files_are_refused_at_upload() {
    let app = spawn_app().await;
    let token = app.model_token("model-h");
    for (content_type, bytes) in [("image/gif", 1000), ("image/svg+xml", 1000), ("text/html", 10)] {
        let response = app
            .create_upload(&token, "model-h", &json!({"filename": "x", "content_type": content_type, "bytes": bytes}))
            .await;
        assert_eq!(error_code(response, 415).await, "unsupported_media_type", "{content_type}");
    }
    let empty = std::fs::read(testdata("hostile/empty.jpg")).unwrap();
    let response = app
        .create_upload(
            &token,
            "model-h",
            &json!({"filename": "empty.jpg", "content_type": "image/jpeg", "bytes": empty.len()}),
        )
        .await;
    assert_eq!(error_code(response, 400).await, "invalid_request");
}
