//! Every accepted photo, uploaded through its presigned URL, ends `pending_review` with a
//! derivative set a browser can load.

use std::time::Duration;

use image::GenericImageView;
use phoenix_imaging::{Fit, PresetSet};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_in, testdata};

struct Expect {
    file: &'static str,
    content_type: &'static str,
    width: u32,
    height: u32,
}

const PHOTOS: &[Expect] = &[
    Expect { file: "landscape-20mp.jpg", content_type: "image/jpeg", width: 6028, height: 3391 },
    Expect { file: "macro-13mp.jpg", content_type: "image/jpeg", width: 4224, height: 3168 },
    Expect { file: "portrait-10mp.jpg", content_type: "image/jpeg", width: 2560, height: 3837 },
    Expect { file: "portrait-6mp.jpg", content_type: "image/jpeg", width: 2056, height: 3088 },
    Expect { file: "exif-orientation6-gps.jpg", content_type: "image/jpeg", width: 2056, height: 3088 },
    Expect { file: "progressive-13mp.jpg", content_type: "image/jpeg", width: 4224, height: 3168 },
    Expect { file: "cmyk.jpg", content_type: "image/jpeg", width: 1280, height: 1919 },
    Expect { file: "grayscale.jpg", content_type: "image/jpeg", width: 2411, height: 1356 },
    Expect { file: "adobe-rgb.jpg", content_type: "image/jpeg", width: 2112, height: 1584 },
    Expect { file: "alpha.png", content_type: "image/png", width: 1200, height: 1802 },
    Expect { file: "rgb16.png", content_type: "image/png", width: 904, height: 509 },
    Expect { file: "landscape.webp", content_type: "image/webp", width: 3000, height: 1688 },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_photo_gets_a_derivative_set() {
    let app = spawn_app().await;
    let token = app.model_token("model-a");
    let mut uploads = Vec::new();
    for photo in PHOTOS {
        let bytes = std::fs::read(testdata(&format!("photos/{}", photo.file))).unwrap();
        uploads.push((photo, app.upload(&token, "model-a", bytes, photo.content_type).await));
    }
    for (photo, media) in uploads {
        let record = app.wait_processed(&token, "model-a", &media).await;
        assert_eq!(record["status"], "pending_review", "{}: {record}", photo.file);
        assert_eq!(record["source"]["width"], photo.width, "{}", photo.file);
        assert_eq!(record["source"]["height"], photo.height, "{}", photo.file);
        assert!(record["placeholder"]["thumbhash"].as_str().is_some_and(|t| t.len() > 10), "{record}");
        assert!(record["placeholder"]["dominant_color"].as_str().is_some_and(|c| c.len() == 7 && c.starts_with('#')));
        check_derivatives(&app.client, photo, &record).await;
    }
}

/// The size a preset must produce from a `w`x`h` source: fit to width, or the largest crop of
/// the cover's aspect, and never larger than the source.
fn expected_size(fit: &Fit, w: u32, h: u32) -> (u32, u32) {
    match *fit {
        Fit::Width { width } => {
            let out_w = width.min(w);
            (out_w, (h as f64 * out_w as f64 / w as f64).round() as u32)
        }
        Fit::Cover { width, height } => {
            let scale = (w as f64 / width as f64).min(h as f64 / height as f64).min(1.0);
            ((width as f64 * scale).round() as u32, (height as f64 * scale).round() as u32)
        }
    }
}

async fn check_derivatives(client: &reqwest::Client, photo: &Expect, record: &Value) {
    let derivatives = record["derivatives"].as_array().unwrap();
    let presets = PresetSet::default();
    let expected_count: usize = presets.presets.iter().map(|p| p.formats.len()).sum();
    assert_eq!(derivatives.len(), expected_count, "{}: {record}", photo.file);
    for preset in &presets.presets {
        for format in &preset.formats {
            let d = derivatives
                .iter()
                .find(|d| d["preset"] == preset.name.as_str() && d["format"] == format.as_str())
                .unwrap_or_else(|| panic!("{}: no {} {}", photo.file, preset.name, format.as_str()));
            assert_eq!(d["preset_version"], preset.version);
            let response = client.get(d["url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
            assert_eq!(response.headers()["content-type"], format.mime());
            let bytes = response.bytes().await.unwrap();
            let decoded = image::load_from_memory(&bytes)
                .unwrap_or_else(|e| panic!("{} {} {}: {e}", photo.file, preset.name, format.as_str()));
            let (w, h) = decoded.dimensions();
            let (ew, eh) = expected_size(&preset.fit, photo.width, photo.height);
            let what = format!("{} {} {}: {w}x{h}, expected {ew}x{eh}", photo.file, preset.name, format.as_str());
            assert!(w.abs_diff(ew) <= 1 && h.abs_diff(eh) <= 1, "{what}");
            assert_eq!((d["width"].as_u64().unwrap(), d["height"].as_u64().unwrap()), (w as u64, h as u64));
            if photo.height > photo.width && matches!(preset.fit, Fit::Width { .. }) {
                assert!(h > w, "{what}: must be portrait");
            }
        }
    }
}

#[tokio::test]
async fn camera_and_capture_time_are_recorded_and_gps_is_not() {
    let app = spawn_app().await;
    let token = app.model_token("model-a");
    let bytes = std::fs::read(testdata("photos/exif-orientation6-gps.jpg")).unwrap();
    let media = app.upload(&token, "model-a", bytes, "image/jpeg").await;
    let record = app.wait_processed(&token, "model-a", &media).await;
    assert_eq!(record["source"]["orientation"], 6);
    assert!(record["source"]["camera_make"].as_str().is_some_and(|s| !s.is_empty()), "{record}");
    assert!(record["source"]["captured_at"].as_str().is_some_and(|s| s.len() >= 19), "{record}");
    let text = record.to_string().to_ascii_lowercase();
    assert!(!text.contains("gps") && !text.contains("latitude"), "{record}");
    let derivative = record["derivatives"][0]["url"].as_str().unwrap();
    let bytes = app.client.get(derivative).send().await.unwrap().bytes().await.unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"), "derivatives carry no EXIF");
}

#[tokio::test]
async fn a_replayed_notification_does_no_work_twice() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let bytes = std::fs::read(testdata("photos/portrait-6mp.jpg")).unwrap();
    let media = app.upload(&token, "model-b", bytes, "image/jpeg").await;
    let first = app.wait_processed(&token, "model-b", &media).await;
    assert_eq!(first["status"], "pending_review");

    // The same S3 notification again, as SQS may deliver it.
    let key = format!("originals/model-b/{media}");
    let head = app.system.objects.head(&phoenix_domain::ObjectKey::parse(&key).unwrap()).await.unwrap();
    let body = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "local"}, "object": {"key": key.replace('/', "%2F"), "size": head.size, "eTag": head.etag}}
    }]});
    for _ in 0..3 {
        app.system.queue.send(&phoenix_domain::QueueName::INGEST, &body.to_string(), Duration::ZERO).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.system.queue.depth(&phoenix_domain::QueueName::INGEST).await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "replays were not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after: Value = app.get_media(&token, "model-b", &media).await.json().await.unwrap();
    assert_eq!(after["version"], first["version"], "a replay must not write");
    assert_eq!(after["derivatives"], first["derivatives"]);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let limits = phoenix_domain::Limits::default();
    let app = spawn_in(dir.path(), limits.clone()).await;
    let token = app.model_token("model-c");
    let bytes = std::fs::read(testdata("photos/rgb16.png")).unwrap();
    let media = app.upload(&token, "model-c", bytes, "image/png").await;
    let record = app.wait_processed(&token, "model-c", &media).await;
    app.system.shutdown().await;

    let again = spawn_in(dir.path(), limits).await;
    let token = again.model_token("model-c");
    let response = again.get_media(&token, "model-c", &media).await;
    assert_eq!(response.status(), 200);
    let reread: Value = response.json().await.unwrap();
    assert_eq!(reread["version"], record["version"]);
    let url = reread["derivatives"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&again.url), "links follow the new address");
    assert_eq!(again.client.get(url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn derivatives_answer_conditional_gets_with_304() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let bytes = std::fs::read(testdata("photos/rgb16.png")).unwrap();
    let media = app.upload(&token, "model-d", bytes, "image/png").await;
    let record = app.wait_processed(&token, "model-d", &media).await;
    let url = record["derivatives"][0]["url"].as_str().unwrap();
    let first = app.client.get(url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let second = app.client.get(url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(second.status(), 304);
    assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);
}
