//! Gallery membership by batch, end to end on the local stack (the media are seeded straight into
//! the store, approved, with a web rendition): 160 items added to a published gallery by batch,
//! 40 removed, the removal rolled back. After each step the gallery's order, the records' links
//! (the `?gallery=` listing) and the public document (republished through the publish queue,
//! without anyone publishing by hand) agree.

use std::time::Duration;

use phoenix_domain::media::MediaRecord;
use phoenix_domain::{MediaId, MediaStatus, ModelId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, shown, spawn_app};

/// `n` approved media of `model` with one 400 x 300 JPEG rendition, written straight into the store.
async fn seed_approved(app: &TestApp, model: &str, n: usize) -> Vec<String> {
    let model = ModelId::parse(model).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut template =
        MediaRecord::new_upload(model.clone(), MediaId::new(), "p.jpg".into(), "image/jpeg".into(), 10, now, None);
    template.status = MediaStatus::Approved;
    template.expires_at = None;
    template.source = Some(
        serde_json::from_value(json!({
            "etag": "e", "bytes": 10, "format": "jpeg", "width": 400, "height": 300, "orientation": 1,
            "sha256": "00".repeat(32)
        }))
        .unwrap(),
    );
    template.derivatives = vec![
        serde_json::from_value(json!({
            "preset": "small", "preset_version": 1, "format": "jpeg", "width": 400, "height": 300, "bytes": 1,
            "key": "derived/x/y/small.jpg", "source_etag": "e"
        }))
        .unwrap(),
    ];
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

async fn run_batch(app: &TestApp, token: &str, body: Option<Value>, path: &str) -> Value {
    let response = app.gallery_call(Method::POST, path, Some(token), body, None).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["batch_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let b: Value = app
            .gallery_call(Method::GET, &format!("/v1/batches/{id}"), Some(token), None, None)
            .await
            .json()
            .await
            .unwrap();
        if !matches!(b["status"].as_str(), Some("queued" | "running")) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "batch {id} still {}", b["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn gallery_items(gallery: &Value) -> Vec<String> {
    gallery["sections"][0]["items"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect()
}

/// The media whose records link the gallery (the `?gallery=` listing), sorted.
async fn linked(app: &TestApp, token: &str, model: &str, gallery: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/models/{model}/media?gallery={gallery}&limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.gallery_call(Method::GET, &path, Some(token), None, None).await.json().await.unwrap();
        out.extend(page["items"].as_array().unwrap().iter().map(|r| r["media_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.sort();
    out
}

/// The public document once it shows exactly `want`, in order (the publisher works off a queue).
async fn public_shows(app: &TestApp, gallery: &str, want: &[String]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = app.gallery_call(Method::GET, &format!("/v1/public/galleries/{gallery}"), None, None, None).await;
        let document: Value = if r.status() == 200 { r.json().await.unwrap() } else { Value::Null };
        if shown(&document) == want {
            return document;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the public document shows {} items, not the {} expected",
            shown(&document).len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gallery_filled_thinned_and_restored_by_batches_keeps_its_order_links_and_public_document() {
    let app = spawn_app().await;
    let model = "gallery-batch-model";
    let owner = app.model_token(model);
    let media = seed_approved(&app, model, 160).await;

    let created = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries"),
            Some(&owner),
            Some(json!({"title": "By batch", "slug": "by-batch", "visibility": "public"})),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    let gallery = created.json::<Value>().await.unwrap()["gallery_id"].as_str().unwrap().to_owned();
    let url = format!("/v1/models/{model}/galleries/{gallery}");
    let published = app.gallery_call(Method::POST, &format!("{url}/publish"), Some(&owner), None, None).await;
    assert_eq!(published.status(), 200, "{}", published.text().await.unwrap());
    public_shows(&app, &gallery, &[]).await;

    // 1. Add 160 items (two chunks): every item applied, linked, in the gallery and public.
    let refs: Vec<Value> = media.iter().map(|m| json!({"model_id": model, "media_id": m})).collect();
    let add = run_batch(
        &app,
        &owner,
        Some(
            json!({"model_id": model, "operation": "add_to_gallery", "params": {"gallery_id": gallery}, "items": refs}),
        ),
        "/v1/batches",
    )
    .await;
    assert_eq!((add["status"].as_str(), add["counts"]["applied"].as_u64()), (Some("completed"), Some(160)), "{add}");
    let g: Value = app.gallery_call(Method::GET, &url, Some(&owner), None, None).await.json().await.unwrap();
    let full = gallery_items(&g);
    assert_eq!(sorted(&full), sorted(&media), "each item once");
    for chunk in media.chunks(100) {
        // Chunks may run side by side; within one the batch's order holds.
        let order: Vec<&String> = full.iter().filter(|m| chunk.contains(m)).collect();
        assert_eq!(order, chunk.iter().collect::<Vec<_>>());
    }
    assert_eq!(linked(&app, &owner, model, &gallery).await, sorted(&media), "every record links the gallery");
    public_shows(&app, &gallery, &full).await;

    // 2. Remove every fourth: gone from the gallery, the links and the public document.
    let leaving: Vec<String> = full.iter().step_by(4).cloned().collect();
    let refs: Vec<Value> = leaving.iter().map(|m| json!({"model_id": model, "media_id": m})).collect();
    let remove = run_batch(
        &app,
        &owner,
        Some(json!({"model_id": model, "operation": "remove_from_gallery", "params": {"gallery_id": gallery}, "items": refs})),
        "/v1/batches",
    )
    .await;
    assert_eq!(remove["counts"]["applied"].as_u64(), Some(40), "{remove}");
    let g: Value = app.gallery_call(Method::GET, &url, Some(&owner), None, None).await.json().await.unwrap();
    let thinned: Vec<String> = full.iter().filter(|m| !leaving.contains(m)).cloned().collect();
    assert_eq!(gallery_items(&g), thinned, "the rest keep their order");
    assert_eq!(linked(&app, &owner, model, &gallery).await, sorted(&thinned));
    public_shows(&app, &gallery, &thinned).await;

    // 3. Roll the removal back: every item back in its place, linked, and public again.
    let remove_id = remove["batch_id"].as_str().unwrap();
    let undo = run_batch(&app, &owner, None, &format!("/v1/batches/{remove_id}/rollback")).await;
    assert_eq!(undo["counts"]["applied"].as_u64(), Some(40), "{undo}");
    let g: Value = app.gallery_call(Method::GET, &url, Some(&owner), None, None).await.json().await.unwrap();
    assert_eq!(gallery_items(&g), full, "the order before the removal");
    assert_eq!(linked(&app, &owner, model, &gallery).await, sorted(&media));
    public_shows(&app, &gallery, &full).await;

    // Each republish asked the CDN to drop the gallery's paths.
    let invalidations =
        app.system.cdn.invalidations().into_iter().filter(|i| i.caller_reference.contains(&gallery)).count();
    assert!(invalidations >= 3, "{invalidations} invalidations");
}
