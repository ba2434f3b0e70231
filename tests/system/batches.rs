//! Batches on the local stack, black-box over HTTP (the media are seeded straight into the store:
//! 10,000 uploads would test the image pipeline, not batches): a 10,000-item approve, concurrent
//! PATCHes while a batch runs, a crash between applying a chunk and acknowledging it, rollback,
//! dry run, limits, and back-office submissions on the queue (a malformed one dead-lettered at once).

use std::time::Duration;

use phoenix_domain::media::MediaRecord;
use phoenix_domain::{MediaId, MediaStatus, ModelId, QueueName};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_with_config, test_config};

/// `n` processed media of `model`, written straight into the store, pending review.
async fn seed(app: &TestApp, model: &str, n: usize) -> Vec<String> {
    let model = ModelId::parse(model).unwrap();
    let template: MediaRecord = {
        let now = time::OffsetDateTime::now_utc();
        let mut r =
            MediaRecord::new_upload(model.clone(), MediaId::new(), "p.jpg".into(), "image/jpeg".into(), 10, now, None);
        r.status = MediaStatus::PendingReview;
        r.source = Some(serde_json::from_value(json!({
            "etag": "e", "bytes": 10, "format": "jpeg", "width": 4, "height": 3, "orientation": 1, "sha256": "00".repeat(32)
        })).unwrap());
        r.derivatives = vec![
            serde_json::from_value(json!({
                "preset": "small", "preset_version": 1, "format": "webp", "width": 4, "height": 3, "bytes": 1,
                "key": "derived/x/y/small.webp", "source_etag": "e"
            }))
            .unwrap(),
        ];
        r
    };
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let mut record = template.clone();
        record.media_id = MediaId::new();
        record.created_at = record.media_id.created_at();
        record.original_key = phoenix_domain::keys::original(&model, &record.media_id);
        app.system.metadata.create_media(&record).await.unwrap();
        ids.push(record.media_id.to_string());
    }
    ids
}

async fn submit(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client.post(format!("{}/v1/batches", app.url)).bearer_auth(token).json(body).send().await.unwrap()
}

async fn batch(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.client.get(format!("{}/v1/batches/{id}", app.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_batch(app: &TestApp, token: &str, id: &str) -> Value {
    wait_batch_every(app, token, id, Duration::from_millis(100)).await
}

/// As [`wait_batch`], polling every `every` (the benchmark polls tightly, so that its figures
/// are the batch's time, not the polling's).
async fn wait_batch_every(app: &TestApp, token: &str, id: &str, every: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let b = batch(app, token, id).await;
        if !matches!(b["status"].as_str(), Some("queued" | "running")) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "batch {id} still {}: {b}", b["status"]);
        tokio::time::sleep(every).await;
    }
}

async fn items(app: &TestApp, token: &str, id: &str, outcome: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/batches/{id}/items?limit=100", app.url);
        if let Some(o) = outcome {
            url.push_str(&format!("&outcome={o}"));
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn refs(model: &str, ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|m| json!({"model_id": model, "media_id": m})).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_items_are_approved_exactly_once_each() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let ids = seed(&app, "model-10k", 10_000).await;
    let started = std::time::Instant::now();
    let submitted = submit(
        &app,
        &admin,
        &json!({"model_id": "model-10k", "operation": "approve", "items": refs("model-10k", &ids)}),
    )
    .await;
    assert_eq!(submitted.status(), 202, "{}", submitted.text().await.unwrap());
    let location = submitted.headers()["location"].to_str().unwrap().to_owned();
    let submitted: Value = submitted.json().await.unwrap();
    assert_eq!(location, format!("/v1/batches/{}", submitted["batch_id"].as_str().unwrap()));
    assert_eq!(submitted["total"], 10_000);
    let done = wait_batch(&app, &admin, submitted["batch_id"].as_str().unwrap()).await;
    let elapsed = started.elapsed();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["applied"], 10_000);
    println!(
        "10,000-item approve: {:.1} s end to end, {} items/s as the batch reports",
        elapsed.as_secs_f64(),
        done["items_per_second"]
    );
    // Every item approved, once: one write each.
    let listed: Value = app
        .client
        .get(format!("{}/v1/models/model-10k/media?status=approved&limit=100", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for item in listed["items"].as_array().unwrap() {
        assert_eq!(item["version"], 2, "{item}");
    }
    let pending: Value = app
        .client
        .get(format!("{}/v1/models/model-10k/media?status=pending_review&limit=10", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(pending["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_during_a_batch_are_never_lost_and_each_item_says_what_happened() {
    let app = spawn_app().await;
    let token = app.model_token("model-race");
    let ids = seed(&app, "model-race", 600).await;
    let submitted: Value = submit(
        &app,
        &token,
        &json!({
            "model_id": "model-race", "operation": "tag", "params": {"add": ["ss27"]}, "items": refs("model-race", &ids)
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let batch_id = submitted["batch_id"].as_str().unwrap().to_owned();
    // Meanwhile every item gets a caption through a PATCH on the version it read.
    for id in &ids {
        loop {
            let got = app.get_media(&token, "model-race", id).await;
            let etag = got.headers()["etag"].to_str().unwrap().to_owned();
            let patched = app
                .client
                .patch(format!("{}/v1/models/model-race/media/{id}", app.url))
                .bearer_auth(&token)
                .header("If-Match", etag)
                .json(&json!({"caption": format!("caption of {id}")}))
                .send()
                .await
                .unwrap();
            match patched.status().as_u16() {
                200 => break,
                409 => continue, // the batch wrote first: read again and retry, as a client would
                other => panic!("PATCH answered {other}"),
            }
        }
    }
    let done = wait_batch(&app, &token, &batch_id).await;
    let outcomes: std::collections::HashMap<String, String> = items(&app, &token, &batch_id, None)
        .await
        .into_iter()
        .map(|i| (i["media_id"].as_str().unwrap().to_owned(), i["outcome"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(outcomes.len(), 600);
    for id in &ids {
        let record: Value = app.get_media(&token, "model-race", id).await.json().await.unwrap();
        assert_eq!(record["caption"], format!("caption of {id}"), "a PATCH was lost: {record}");
        let tagged = record["tags"].as_array().unwrap().iter().any(|t| t == "ss27");
        match outcomes[id].as_str() {
            "applied" => assert!(tagged, "{id} applied but not tagged"),
            "skipped_conflict" => assert!(!tagged, "{id} reported a conflict but was changed"),
            other => panic!("{id}: {other}"),
        }
    }
    let counts = &done["counts"];
    assert_eq!(counts["applied"].as_u64().unwrap() + counts["skipped_conflict"].as_u64().unwrap(), 600, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_redelivered_after_a_crash_applies_nothing_twice_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), Default::default());
    config.batches.crash_after_apply = true;
    let app = spawn_with_config(config).await;
    let token = app.model_token("model-crash-batch");
    let ids = seed(&app, "model-crash-batch", 250).await;
    let submitted: Value = submit(
        &app,
        &token,
        &json!({
            "model_id": "model-crash-batch", "operation": "categorize", "params": {"category": "runway"},
            "items": refs("model-crash-batch", &ids)
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let done = wait_batch(&app, &token, submitted["batch_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["applied"], 250, "{done}");
    assert_eq!(done["counts"]["skipped_conflict"], 0);
    for id in &ids {
        let record: Value = app.get_media(&token, "model-crash-batch", id).await.json().await.unwrap();
        assert_eq!((record["category"].as_str(), record["version"].as_u64()), (Some("runway"), Some(2)), "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_exactly_the_previous_values_and_reports_what_changed_since() {
    let app = spawn_app().await;
    let token = app.model_token("model-undo");
    let ids = seed(&app, "model-undo", 120).await;
    let submitted: Value = submit(&app, &token, &json!({
        "model_id": "model-undo", "operation": "categorize", "params": {"category": "editorial"}, "items": refs("model-undo", &ids)
    })).await.json().await.unwrap();
    let id = submitted["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(wait_batch(&app, &token, &id).await["counts"]["applied"], 120);
    // One item is edited after the batch: the rollback must not clobber it.
    let edited = &ids[7];
    let got = app.get_media(&token, "model-undo", edited).await;
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    let patched = app
        .client
        .patch(format!("{}/v1/models/model-undo/media/{edited}", app.url))
        .bearer_auth(&token)
        .header("If-Match", etag)
        .json(&json!({"category": "runway"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let rollback =
        app.client.post(format!("{}/v1/batches/{id}/rollback", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(rollback.status(), 202, "{}", rollback.text().await.unwrap());
    let rollback: Value = rollback.json().await.unwrap();
    let undone = wait_batch(&app, &token, rollback["batch_id"].as_str().unwrap()).await;
    assert_eq!(undone["counts"]["applied"], 119, "{undone}");
    assert_eq!(undone["counts"]["skipped_conflict"], 1);
    let conflicts = items(&app, &token, rollback["batch_id"].as_str().unwrap(), Some("skipped_conflict")).await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["media_id"], edited.as_str());
    for media in &ids {
        let record: Value = app.get_media(&token, "model-undo", media).await.json().await.unwrap();
        if media == edited {
            assert_eq!(record["category"], "runway", "the later edit is kept");
        } else {
            assert!(record["category"].is_null(), "not restored: {record}");
        }
    }
    assert_eq!(batch(&app, &token, &id).await["status"], "rolled_back");
    let again =
        app.client.post(format!("{}/v1/batches/{id}/rollback", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_predicts_and_changes_nothing_and_reviews_are_for_admins() {
    let app = spawn_app().await;
    let token = app.model_token("model-dry");
    let ids = seed(&app, "model-dry", 30).await;
    let refused = submit(
        &app,
        &token,
        &json!({"model_id": "model-dry", "operation": "approve", "items": refs("model-dry", &ids)}),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let admin = app.admin_token();
    let dry: Value = submit(
        &app,
        &admin,
        &json!({
            "model_id": "model-dry", "operation": "approve", "filter": {"status": "pending_review"}, "dry_run": true
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let dry = wait_batch(&app, &admin, dry["batch_id"].as_str().unwrap()).await;
    assert_eq!((dry["total"].as_u64(), dry["counts"]["applied"].as_u64()), (Some(30), Some(30)), "{dry}");
    let predicted = items(&app, &admin, dry["batch_id"].as_str().unwrap(), None).await;
    assert!(predicted.iter().all(|i| i["predicted"] == true && i["outcome"] == "applied"));
    let record: Value = app.get_media(&admin, "model-dry", &ids[0]).await.json().await.unwrap();
    assert_eq!((record["status"].as_str(), record["version"].as_u64()), (Some("pending_review"), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_office_submissions_run_and_a_malformed_one_is_dead_lettered_at_once() {
    let app = spawn_app().await;
    let ids = seed(&app, "model-crm", 20).await;
    let queue = app.system.queue.clone();
    let submission = json!({
        "schema_version": 1,
        "submitter": {"sub": "crm-service", "groups": ["model"], "model_id": "model-crm"},
        "batch": {"model_id": "model-crm", "operation": "tag", "params": {"add": ["crm"]}, "items": refs("model-crm", &ids)},
    });
    queue.send(&QueueName::BATCHES, &submission.to_string(), Duration::ZERO).await.unwrap();
    // Another model's submitter may not touch these media; garbage is garbage.
    let foreign = json!({
        "schema_version": 1,
        "submitter": {"sub": "other", "groups": ["model"], "model_id": "someone-else"},
        "batch": {"model_id": "model-crm", "operation": "delete", "items": refs("model-crm", &ids)},
    });
    queue.send(&QueueName::BATCHES, &foreign.to_string(), Duration::ZERO).await.unwrap();
    queue.send(&QueueName::BATCHES, "{not json", Duration::ZERO).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let dead = queue.depth(&QueueName::BATCHES_DLQ).await.unwrap();
        let tagged = {
            let record: Value = app.get_media(&app.admin_token(), "model-crm", &ids[19]).await.json().await.unwrap();
            record["tags"].as_array().unwrap().iter().any(|t| t == "crm")
        };
        if dead == 2 && tagged && queue.depth(&QueueName::BATCHES).await.unwrap() == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "dead-lettered {dead}, tagged {tagged}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dead-lettered after one receive each, not retried: they come back received once.
    let parked = queue.receive(&QueueName::BATCHES_DLQ, 10, Duration::from_secs(5), Duration::ZERO).await.unwrap();
    assert_eq!(parked.len(), 2);
    assert!(parked.iter().all(|m| m.receive_count == 1), "{parked:?}");
    // Nothing was deleted by the foreign submitter.
    let record = app.get_media(&app.admin_token(), "model-crm", &ids[0]).await;
    assert_eq!(record.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_delete_trashes_and_a_restore_batch_brings_everything_back() {
    let app = spawn_app().await;
    let token = app.model_token("model-bin");
    let ids = seed(&app, "model-bin", 40).await;
    let deleted: Value = submit(
        &app,
        &token,
        &json!({"model_id": "model-bin", "operation": "delete", "items": refs("model-bin", &ids)}),
    )
    .await
    .json()
    .await
    .unwrap();
    let deleted = wait_batch(&app, &token, deleted["batch_id"].as_str().unwrap()).await;
    assert_eq!(deleted["counts"]["applied"], 40, "{deleted}");
    // Gone at once from reads and the list; all in the trash.
    assert_eq!(app.get_media(&token, "model-bin", &ids[0]).await.status(), 404);
    let listed: Value = app
        .client
        .get(format!("{}/v1/models/model-bin/media?limit=100", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    let restored: Value = submit(
        &app,
        &token,
        &json!({
            "model_id": "model-bin", "operation": "restore", "filter": {"status": "deleted"}
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let restored = wait_batch(&app, &token, restored["batch_id"].as_str().unwrap()).await;
    assert_eq!(
        (restored["total"].as_u64(), restored["counts"]["applied"].as_u64()),
        (Some(40), Some(40)),
        "{restored}"
    );
    for id in &ids {
        let record: Value = app.get_media(&token, "model-bin", id).await.json().await.unwrap();
        assert_eq!(
            (record["status"].as_str(), record["derivatives"].as_array().map(Vec::len)),
            (Some("pending_review"), Some(1))
        );
    }
}

/// Figures for docs/performance.md (`bench/batches-load.sh` runs it in release): a 10,000-item
/// batch's rate, and the same 1,000 changes as one batch and as 1,000 single PATCH requests.
/// Prints; asserts only that the work was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/batches-load.sh runs it in release"]
async fn throughput() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let ids = seed(&app, "model-bench", 10_000).await;
    let started = std::time::Instant::now();
    let big: Value = submit(
        &app,
        &admin,
        &json!({"model_id": "model-bench", "operation": "approve", "items": refs("model-bench", &ids)}),
    )
    .await
    .json()
    .await
    .unwrap();
    let big = wait_batch_every(&app, &admin, big["batch_id"].as_str().unwrap(), Duration::from_millis(2)).await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(big["counts"]["applied"], 10_000);

    let thousand = &ids[..1000];
    let started = std::time::Instant::now();
    let small: Value = submit(&app, &admin, &json!({
        "model_id": "model-bench", "operation": "categorize", "params": {"category": "runway"}, "items": refs("model-bench", thousand)
    }))
    .await
    .json()
    .await
    .unwrap();
    let small = wait_batch_every(&app, &admin, small["batch_id"].as_str().unwrap(), Duration::from_millis(2)).await;
    let batch_secs = started.elapsed().as_secs_f64();
    assert_eq!(small["counts"]["applied"], 1000);

    let started = std::time::Instant::now();
    for id in thousand {
        let patched = app
            .client
            .patch(format!("{}/v1/models/model-bench/media/{id}", app.url))
            .bearer_auth(&admin)
            .header("If-Match", "\"3\"")
            .json(&json!({"category": "editorial"}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
    }
    let patch_secs = started.elapsed().as_secs_f64();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| 10,000-item approve, submit to completed | {wall:.2} s, {:.0} items/s |", 10_000.0 / wall);
    println!(
        "| 10,000-item approve, as the batch reports (first to last chunk) | {} items/s |",
        big["items_per_second"]
    );
    println!("| 1,000 changes as one batch (submit to completed) | {batch_secs:.2} s |");
    println!("| the same 1,000 changes as 1,000 PATCH requests, one after another | {patch_secs:.2} s |");
    println!("| batch vs PATCHes | {:.0}x faster |", patch_secs / batch_secs);
}
