//! Republish on change, end to end on the local stack with real photos: once a gallery is
//! published, an edited caption, a rejection, a delete and a restore, and a batch change the
//! public document without anyone calling publish again, and the (recording) CDN is asked to
//! invalidate the gallery's paths each time.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, shown, spawn_app};

impl TestApp {
    /// The public document once `done` holds for it (the publisher works off a queue).
    async fn public_document_until(&self, gallery: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response =
                self.gallery_call(Method::GET, &format!("/v1/public/galleries/{gallery}"), None, None, None).await;
            let document: Value = if response.status() == 200 { response.json().await.unwrap() } else { Value::Null };
            if done(&document) {
                return document;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: the public document is still {document}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Invalidations recorded for the gallery so far.
    fn invalidations_of(&self, gallery: &str) -> Vec<Vec<String>> {
        self.system
            .cdn
            .invalidations()
            .into_iter()
            .filter(|i| i.caller_reference.contains(gallery))
            .map(|i| i.paths)
            .collect()
    }
}

fn caption_of(document: &Value, media: &str) -> Option<String> {
    document["sections"]
        .as_array()?
        .iter()
        .flat_map(|s| s["items"].as_array().into_iter().flatten())
        .find(|i| i["media_id"] == media)
        .and_then(|i| i["caption"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_gallery_follows_its_media_and_its_cdn_paths_are_invalidated() {
    let app = spawn_app().await;
    let model = "republish-model";
    let owner = app.model_token(model);
    let admin = app.admin_token();
    let a = app.approved_photo(&owner, model, "portrait-6mp.jpg").await;
    let b = app.approved_photo(&owner, model, "exif-orientation6-gps.jpg").await;

    let created = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries"),
            Some(&owner),
            Some(json!({"title": "Live", "slug": "live-gallery", "visibility": "public"})),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let id = created.json::<Value>().await.unwrap()["gallery_id"].as_str().unwrap().to_owned();
    let url = format!("/v1/models/{model}/galleries/{id}");
    let filled = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "insert_items", "media_ids": [a, b]}]})),
            Some(&etag),
        )
        .await;
    assert_eq!(filled.status(), 200);
    let published = app.gallery_call(Method::POST, &format!("{url}/publish"), Some(&owner), None, None).await;
    assert_eq!(published.status(), 200);
    let first = app.public_document_until(&id, "published", |d| shown(d) == [a.clone(), b.clone()]).await;
    let paths = ["/g/live-gallery".to_owned(), format!("/v1/public/galleries/{id}")];
    let invalidated = |app: &TestApp, n: usize| {
        let seen = app.invalidations_of(&id);
        seen.len() >= n && seen.iter().all(|p| paths.iter().all(|want| p.contains(want)))
    };

    // 1. A caption edit.
    let media_url = format!("{}/v1/models/{model}/media/{a}", app.url);
    let read = app.client.get(&media_url).bearer_auth(&owner).send().await.unwrap();
    let media_etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let edited = app
        .client
        .patch(&media_url)
        .bearer_auth(&owner)
        .header("If-Match", media_etag)
        .json(&json!({"caption": "Golden hour"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200, "{}", edited.text().await.unwrap());
    let after_edit =
        app.public_document_until(&id, "caption edit", |d| caption_of(d, &a).as_deref() == Some("Golden hour")).await;
    assert!(after_edit["version"].as_u64() > first["version"].as_u64());
    let before = app.invalidations_of(&id).len();

    // 2. A rejection takes b out.
    let rejected = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/media/{b}/review"),
            Some(&admin),
            Some(json!({"decision": "reject", "violations": [{"code": "no_release", "severity": "high"}]})),
            None,
        )
        .await;
    assert_eq!(rejected.status(), 200, "{}", rejected.text().await.unwrap());
    app.public_document_until(&id, "rejection", |d| shown(d) == [a.clone()]).await;

    // 3. A delete (to the trash) and a restore.
    let deleted = app.client.delete(&media_url).bearer_auth(&owner).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    app.public_document_until(&id, "delete", |d| d.is_object() && shown(d).is_empty()).await;
    let restored = app.client.post(format!("{media_url}/restore")).bearer_auth(&owner).send().await.unwrap();
    assert!(restored.status().is_success(), "{}", restored.status());
    app.public_document_until(&id, "restore", |d| shown(d) == [a.clone()]).await;

    // 4. A batch that rejects a: one chunk, one republish request for the gallery.
    let submitted = app
        .client
        .post(format!("{}/v1/batches", app.url))
        .bearer_auth(&admin)
        .json(&json!({
            "model_id": model, "operation": "reject",
            "params": {"violations": [{"code": "expired_rights", "severity": "high"}]},
            "items": [{"model_id": model, "media_id": a}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202, "{}", submitted.text().await.unwrap());
    app.public_document_until(&id, "batch", |d| d.is_object() && shown(d).is_empty()).await;

    // Every change was followed by an invalidation of the gallery's paths (none of the last
    // four asked for a publish by hand).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !invalidated(&app, before + 4) {
        assert!(tokio::time::Instant::now() < deadline, "invalidations: {:?}", app.invalidations_of(&id));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Recorded on disk too, for whoever inspects the data folder.
    let recorded = std::fs::read_to_string(app.system.data_dir.join("cdn.jsonl")).unwrap();
    assert!(recorded.contains(&format!("/v1/public/galleries/{id}")));
}
