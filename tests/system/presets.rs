//! Preset changes and privacy switches, end to end on the local stack.

use std::time::Duration;

use phoenix_domain::{Limits, QueueName};
use phoenix_imaging::PresetSet;
use serde_json::{Value, json};

use crate::helpers::{spawn_with_config, test_config, testdata};

#[tokio::test]
async fn regenerate_rebuilds_exactly_the_stale_presets_and_deletes_the_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_config(test_config(dir.path(), Limits::default())).await;
    let token = app.admin_token();
    let bytes = std::fs::read(testdata("photos/portrait-6mp.jpg")).unwrap();
    let media = app.upload(&token, "model-r", bytes, "image/jpeg").await;
    let before = app.wait_processed(&token, "model-r", &media).await;
    app.system.shutdown().await;

    // A new preset configuration: `small` changes (version bump), `tiny` is retired.
    let mut presets = PresetSet::default();
    presets.presets.retain(|p| p.name != "tiny");
    let small = presets.presets.iter_mut().find(|p| p.name == "small").unwrap();
    small.version += 1;
    let small_version = small.version;
    let mut config = test_config(dir.path(), Limits::default());
    config.ingest.presets = presets;
    let app = spawn_with_config(config).await;

    let command = json!({"action": "regenerate", "model_id": "model-r", "media_id": media});
    app.system.queue.send(&QueueName::INGEST, &command.to_string(), Duration::ZERO).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let record: Value = app.get_media(&token, "model-r", &media).await.json().await.unwrap();
        if record["version"] != before["version"] {
            break record;
        }
        assert!(tokio::time::Instant::now() < deadline, "not regenerated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The new record is written before the superseded objects go (never the other way round):
    // wait until the message is done with, not just until the record changed.
    while app.system.queue.depth(&QueueName::INGEST).await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "regeneration never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let by_key = |r: &Value, preset: &str| -> Vec<String> {
        r["derivatives"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["preset"] == preset)
            .map(|d| d["url"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(by_key(&after, "tiny").is_empty(), "retired preset dropped");
    for url in by_key(&before, "tiny").iter().chain(&by_key(&before, "small")) {
        let status = app.client.get(url.replace(&before_base(&before), &app.url)).send().await.unwrap().status();
        assert_eq!(status, 404, "superseded derivative deleted: {url}");
    }
    for d in after["derivatives"].as_array().unwrap().iter().filter(|d| d["preset"] == "small") {
        assert_eq!(d["preset_version"], small_version);
        assert_eq!(app.client.get(d["url"].as_str().unwrap()).send().await.unwrap().status(), 200);
    }
    for preset in ["medium", "large", "xlarge"] {
        let old: Vec<String> = by_key(&before, preset).iter().map(|u| u.replace(&before_base(&before), "")).collect();
        let new: Vec<String> = by_key(&after, preset).iter().map(|u| u.replace(&app.url, "")).collect();
        assert_eq!(old, new, "{preset} was current: untouched");
    }

    // Everything is current now: a second regeneration does no work.
    app.system.queue.send(&QueueName::INGEST, &command.to_string(), Duration::ZERO).await.unwrap();
    while app.system.queue.depth(&QueueName::INGEST).await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again: Value = app.get_media(&token, "model-r", &media).await.json().await.unwrap();
    assert_eq!(again["version"], after["version"]);
}

/// The base URL the derivative links of a record were made with.
fn before_base(record: &Value) -> String {
    let url = record["derivatives"][0]["url"].as_str().unwrap();
    url[..url.find("/derived/").unwrap()].to_owned()
}

#[tokio::test]
async fn gps_is_dropped_by_default_and_when_kept_shown_to_admins_only() {
    let photo = std::fs::read(testdata("photos/exif-orientation6-gps.jpg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), Limits::default());
    config.ingest.keep_gps = true;
    let app = spawn_with_config(config).await;
    let media = app.upload(&app.model_token("model-g"), "model-g", photo, "image/jpeg").await;
    let as_admin = app.wait_processed(&app.admin_token(), "model-g", &media).await;
    let gps = &as_admin["source"]["gps"];
    assert!(gps["latitude"].is_f64() && gps["longitude"].is_f64(), "{as_admin}");
    let as_model: Value = app.get_media(&app.model_token("model-g"), "model-g", &media).await.json().await.unwrap();
    assert!(!as_model.to_string().contains("gps"), "{as_model}");
}
