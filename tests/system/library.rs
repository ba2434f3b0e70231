//! The media library over HTTP: conditional reads and edits, moderation, filters, batch reads,
//! deletion to the trash, restore and the purge after the grace period, likely duplicates, and
//! who may do what.

use std::time::Duration;

use phoenix_domain::{GalleryId, GalleryLink, MediaId, ModelId, StoreError};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, testdata};

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name)).unwrap()
}

/// Uploads a photo and waits until it is processed; returns its id.
async fn processed(app: &TestApp, model: &str, name: &str) -> String {
    let token = app.model_token(model);
    let content_type = if name.ends_with(".png") { "image/png" } else { "image/jpeg" };
    let media = app.upload(&token, model, photo(name), content_type).await;
    let record = app.wait_processed(&token, model, &media).await;
    assert_eq!(record["status"], "pending_review", "{record}");
    media
}

impl TestApp {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    async fn patch(
        &self,
        token: &str,
        model: &str,
        media: &str,
        if_match: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request =
            self.client.patch(format!("{}/v1/models/{model}/media/{media}", self.url)).bearer_auth(token).json(&body);
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        request.send().await.expect("request")
    }

    async fn review(&self, token: &str, model: &str, media: &str, body: Value) -> reqwest::Response {
        self.call(Method::POST, &format!("/v1/models/{model}/media/{media}/review"), Some(token), Some(body)).await
    }

    async fn list(&self, token: &str, model: &str, query: &str) -> reqwest::Response {
        self.call(Method::GET, &format!("/v1/models/{model}/media?{query}"), Some(token), None).await
    }

    /// Every page of a listing; returns the ids in order.
    async fn list_ids(&self, token: &str, model: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let mut q = format!("{query}&limit=2");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let response = self.list(token, model, &q).await;
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            let page: Value = response.json().await.unwrap();
            ids.extend(page["items"].as_array().unwrap().iter().map(|i| i["media_id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return ids,
            }
        }
        panic!("listing {query} did not end");
    }
}

fn etag(response: &reqwest::Response) -> String {
    response.headers().get("etag").expect("an ETag").to_str().unwrap().to_owned()
}

#[tokio::test]
async fn conditional_reads_and_edits_with_history() {
    let app = spawn_app().await;
    let token = app.model_token("model-e");
    let media = processed(&app, "model-e", "photos/rgb16.png").await;

    let first = app.get_media(&token, "model-e", &media).await;
    assert_eq!(first.status(), 200);
    let tag = etag(&first);
    let record: Value = first.json().await.unwrap();
    assert!(tag.starts_with(&format!("\"{}-", record["version"])), "{tag}");
    assert_eq!(record["history"][0]["action"], "processed");
    assert_eq!(record["history"][1]["action"], "uploaded");
    let again = app
        .client
        .get(format!("{}/v1/models/model-e/media/{media}", app.url))
        .bearer_auth(&token)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(etag(&again), tag);
    assert!(again.bytes().await.unwrap().is_empty());

    // No precondition: refused before anything is read or written.
    let bare = app.patch(&token, "model-e", &media, None, json!({"caption": "x"})).await;
    assert_eq!(error_code(bare, 428).await, "precondition_required");

    let edit = json!({
        "caption": "Backstage at the spring show",
        "alt_text": "A model in a red coat on a runway",
        "category": "Runway",
        "tags": ["spring", "Backstage", "spring"],
        "credits": [{"role": "photographer", "name": "Ada Lovelace"}],
        "focal_point": {"x": 0.5, "y": 0.3},
        "usage_rights_expires_at": "2028-06-30T00:00:00Z"
    });
    let edited = app.patch(&token, "model-e", &media, Some(&tag), edit.clone()).await;
    assert_eq!(edited.status(), 200);
    let new_tag = etag(&edited);
    assert_ne!(new_tag, tag);
    let after: Value = edited.json().await.unwrap();
    assert_eq!(after["version"], record["version"].as_u64().unwrap() + 1);
    assert_eq!(after["category"], "runway");
    assert_eq!(after["tags"], json!(["spring", "backstage"]));
    assert_eq!(after["credits"][0]["name"], "Ada Lovelace");
    assert_eq!(after["usage_rights_expires_at"], "2028-06-30T00:00:00Z");
    assert_eq!(after["focal_point"]["y"].as_f64().unwrap() as f32, 0.3);

    // The old ETag is stale now: 409 with the current version, and nothing changes.
    let stale = app.patch(&token, "model-e", &media, Some(&tag), json!({"caption": "lost update"})).await;
    assert_eq!(stale.status(), 409);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "version_conflict");
    assert_eq!(body["error"]["details"]["current_version"], after["version"]);

    // `version` in the body works as well; `null` clears a field.
    let cleared = app
        .patch(&token, "model-e", &media, None, json!({"caption": null, "credits": null, "version": after["version"]}))
        .await;
    assert_eq!(cleared.status(), 200);
    let cleared: Value = cleared.json().await.unwrap();
    assert!(cleared.get("caption").is_none(), "{cleared}");
    assert_eq!(cleared["credits"], json!([]));
    assert_eq!(cleared["alt_text"], after["alt_text"]);

    // Bad edits: each a 400, none half-applied.
    let version = cleared["version"].clone();
    for (body, code) in [
        (json!({"tags": ["ok", "not ok"], "caption": "half", "version": version}), "invalid_request"),
        (json!({"caption": "x".repeat(2001), "version": version}), "invalid_request"),
        (json!({"focal_point": {"x": 2.0, "y": 0.5}, "version": version}), "invalid_request"),
        (json!({"tags": "beach", "version": version}), "invalid_request"),
        (json!({"colour": "red", "version": version}), "invalid_request"),
        (json!({"version": version}), "invalid_request"),
        (json!({"usage_rights_expires_at": "next tuesday", "version": version}), "invalid_request"),
        (json!({"credits": [{"role": "", "name": "x"}], "version": version}), "invalid_request"),
    ] {
        let response = app.patch(&token, "model-e", &media, None, body.clone()).await;
        assert_eq!(error_code(response, 400).await, code, "{body}");
    }
    let malformed = app
        .client
        .patch(format!("{}/v1/models/model-e/media/{media}", app.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("if-match", "\"1-x\"")
        .body("{\"caption\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed, 400).await, "malformed_json");
    let oversized =
        app.patch(&token, "model-e", &media, None, json!({"caption": "x".repeat(70_000), "version": version})).await;
    assert_eq!(error_code(oversized, 413).await, "payload_too_large");
    let garbage_if_match = app.patch(&token, "model-e", &media, Some("yesterday"), json!({"caption": "x"})).await;
    assert_eq!(error_code(garbage_if_match, 400).await, "invalid_request");
    let unchanged: Value = app.get_media(&token, "model-e", &media).await.json().await.unwrap();
    assert_eq!(unchanged["version"], version, "no bad edit was written");
    assert!(unchanged.get("caption").is_none());

    let history: Vec<&str> =
        unchanged["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(history[..4], ["edited", "edited", "processed", "uploaded"]);
    assert_eq!(unchanged["history"][0]["actor"], "user-model-e");
    assert_eq!(unchanged["history"][0]["summary"], "changed caption, credits");
}

#[tokio::test]
async fn moving_the_focal_point_rebuilds_the_crops_under_new_keys() {
    let app = spawn_app().await;
    let token = app.model_token("model-f");
    let media = processed(&app, "model-f", "photos/landscape.webp").await;
    let before: Value = app.get_media(&token, "model-f", &media).await.json().await.unwrap();
    let url_of = |record: &Value, preset: &str| -> String {
        record["derivatives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["preset"] == preset && d["format"] == "webp")
            .map(|d| d["url"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (old_cover, old_medium) = (url_of(&before, "cover-square"), url_of(&before, "medium"));
    let moved = app
        .patch(
            &token,
            "model-f",
            &media,
            None,
            json!({"focal_point": {"x": 0.1, "y": 0.9}, "version": before["version"]}),
        )
        .await;
    assert_eq!(moved.status(), 200);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        let record: Value = app.get_media(&token, "model-f", &media).await.json().await.unwrap();
        if url_of(&record, "cover-square") != old_cover {
            break record;
        }
        assert!(tokio::time::Instant::now() < deadline, "the crops were not rebuilt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new_cover = url_of(&after, "cover-square");
    assert!(new_cover.contains("-f100x900."), "{new_cover}");
    assert_eq!(url_of(&after, "medium"), old_medium, "presets that do not crop are untouched");
    assert_eq!(app.client.get(&new_cover).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(&old_cover).send().await.unwrap().status(), 404, "the old crop is removed");
    assert_eq!(after["history"][0]["action"], "regenerated");
}

#[tokio::test]
async fn moderation_with_violations_and_gallery_withdrawal() {
    let app = spawn_app().await;
    let (admin, owner) = (app.admin_token(), app.model_token("model-r"));
    let media = processed(&app, "model-r", "photos/rgb16.png").await;

    let by_model = app.review(&owner, "model-r", &media, json!({"decision": "approve"})).await;
    assert_eq!(error_code(by_model, 403).await, "forbidden");

    let approved = app.review(&admin, "model-r", &media, json!({"decision": "approve", "note": "lovely"})).await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["review"]["reviewer"], "admin-1");
    assert_eq!(approved["review"]["decision"], "approve");
    assert!(approved["review"]["at"].as_str().unwrap().starts_with("20"));
    let twice = app.review(&admin, "model-r", &media, json!({"decision": "approve"})).await;
    assert_eq!(error_code(twice, 409).await, "invalid_state");
    let stale = app.review(&admin, "model-r", &media, json!({"decision": "approve", "version": 1})).await;
    assert_eq!(error_code(stale, 409).await, "version_conflict");

    for bad in [
        json!({"decision": "reject"}),
        json!({"decision": "maybe"}),
        json!({"decision": "reject", "violations": [{"code": "x", "severity": "apocalyptic"}]}),
        json!({"decision": "reject", "violations": [{"code": "has space", "severity": "low"}]}),
        json!({"decision": "approve", "violations": [{"code": "x", "severity": "low"}]}),
    ] {
        let response = app.review(&admin, "model-r", &media, bad.clone()).await;
        assert_eq!(error_code(response, 400).await, "invalid_request", "{bad}");
    }

    // Published in one gallery, drafted in another (the galleries API makes these links).
    let (model, id) = (ModelId::parse("model-r").unwrap(), MediaId::parse(&media).unwrap());
    let mut record = app.system.metadata.get_media(&model, &id).await.unwrap();
    record.galleries = vec![
        GalleryLink { gallery_id: GalleryId::parse("summer-book").unwrap(), published: true },
        GalleryLink { gallery_id: GalleryId::parse("drafts").unwrap(), published: false },
    ];
    record.version += 1;
    app.system.metadata.update_media(&record).await.unwrap();
    assert_eq!(app.list_ids(&admin, "model-r", "gallery=summer-book").await, [media.as_str()]);

    let rejected = app
        .review(
            &admin,
            "model-r",
            &media,
            json!({"decision": "reject", "violations": [
                {"code": "missing_model_release", "severity": "high", "note": "no signed release"},
                {"code": "watermark", "severity": "low"}
            ]}),
        )
        .await;
    assert_eq!(rejected.status(), 200);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["violations"][0]["code"], "missing_model_release");
    assert_eq!(rejected["violations"][0]["severity"], "high");
    // Withdrawn from the published gallery, still a member of both (an approval brings it back).
    assert_eq!(
        rejected["galleries"],
        json!([{"gallery_id": "summer-book", "published": false}, {"gallery_id": "drafts", "published": false}])
    );
    assert_eq!(app.list_ids(&admin, "model-r", "gallery=summer-book").await, [media.as_str()]);
    assert_eq!(app.list_ids(&admin, "model-r", "gallery=drafts").await, [media.as_str()]);
    let detail: Value = app.get_media(&admin, "model-r", &media).await.json().await.unwrap();
    assert!(
        detail["history"][0]["summary"].as_str().unwrap().contains("withdrawn from published galleries summer-book")
    );

    // A change of mind: rejected media can be approved again.
    let back = app.review(&admin, "model-r", &media, json!({"decision": "approve"})).await;
    assert_eq!(back.status(), 200);
    assert_eq!(back.json::<Value>().await.unwrap()["violations"], json!([]));

    // A file the processor refused cannot be approved.
    let refused = app.upload(&owner, "model-r", photo("hostile/truncated.jpg"), "image/jpeg").await;
    assert_eq!(app.wait_processed(&owner, "model-r", &refused).await["status"], "rejected");
    let approve_refused = app.review(&admin, "model-r", &refused, json!({"decision": "approve"})).await;
    assert_eq!(error_code(approve_refused, 409).await, "invalid_state");
}

#[tokio::test]
async fn listings_filter_by_status_category_tag_gallery_and_time() {
    let app = spawn_app().await;
    let (admin, token) = (app.admin_token(), app.model_token("model-l"));
    let mut ids = Vec::new();
    for name in ["photos/rgb16.png", "photos/alpha.png", "photos/landscape.webp", "photos/rgb16.png"] {
        ids.push(processed(&app, "model-l", name).await);
    }
    let edits = [
        json!({"category": "headshot", "tags": ["studio", "bw"]}),
        json!({"category": "runway", "tags": ["studio"]}),
        json!({"category": "headshot"}),
        json!({"tags": ["bw"]}),
    ];
    for (id, edit) in ids.iter().zip(edits) {
        let record: Value = app.get_media(&token, "model-l", id).await.json().await.unwrap();
        let mut body = edit.clone();
        body["version"] = record["version"].clone();
        assert_eq!(app.patch(&token, "model-l", id, None, body).await.status(), 200);
    }
    assert_eq!(app.review(&admin, "model-l", &ids[0], json!({"decision": "approve"})).await.status(), 200);
    assert_eq!(app.review(&admin, "model-l", &ids[2], json!({"decision": "approve"})).await.status(), 200);

    let newest_first = |picks: &[usize]| -> Vec<String> { picks.iter().rev().map(|&i| ids[i].clone()).collect() };
    assert_eq!(app.list_ids(&token, "model-l", "").await, newest_first(&[0, 1, 2, 3]));
    assert_eq!(app.list_ids(&token, "model-l", "tag=studio").await, newest_first(&[0, 1]));
    assert_eq!(app.list_ids(&token, "model-l", "tag=BW").await, newest_first(&[0, 3]));
    assert_eq!(app.list_ids(&token, "model-l", "category=headshot").await, newest_first(&[0, 2]));
    assert_eq!(app.list_ids(&token, "model-l", "status=approved").await, newest_first(&[0, 2]));
    assert_eq!(app.list_ids(&token, "model-l", "status=approved&category=headshot&tag=bw").await, newest_first(&[0]));
    assert_eq!(app.list_ids(&token, "model-l", "status=pending_review&tag=studio").await, newest_first(&[1]));
    assert!(app.list_ids(&token, "model-l", "tag=nobody").await.is_empty());

    let mut created = Vec::new();
    for id in &ids {
        let record: Value = app.get_media(&token, "model-l", id).await.json().await.unwrap();
        created.push(record["created_at"].as_str().unwrap().to_owned());
    }
    let (from, to) = (&created[1], &created[3]);
    let range = format!("created_from={from}&created_to={to}");
    assert_eq!(app.list_ids(&token, "model-l", &range).await, newest_first(&[1, 2]), "from inclusive, to exclusive");
    assert_eq!(app.list_ids(&token, "model-l", &format!("{range}&category=headshot")).await, newest_first(&[2]));

    // A cursor belongs to its listing; bad filters are 400s.
    let page: Value = app.list(&token, "model-l", "tag=studio&limit=1").await.json().await.unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let reused = app.list(&token, "model-l", &format!("tag=bw&limit=1&cursor={cursor}")).await;
    assert_eq!(error_code(reused, 400).await, "invalid_request");
    for bad in [
        "tag=not%20a%20tag",
        "category=%23",
        "gallery=a%2Fb",
        "created_from=yesterday",
        "created_to=2026-13-01T00:00:00Z",
        "status=lost",
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=garbage",
        "sort=oldest",
    ] {
        let response = app.list(&token, "model-l", bad).await;
        assert_eq!(error_code(response, 400).await, "invalid_request", "{bad}");
    }
}

#[tokio::test]
async fn batch_get_answers_what_the_caller_may_see() {
    let app = spawn_app().await;
    let (admin, token_a) = (app.admin_token(), app.model_token("model-ba"));
    let a1 = processed(&app, "model-ba", "photos/rgb16.png").await;
    let a2 = processed(&app, "model-ba", "photos/alpha.png").await;
    let b1 = processed(&app, "model-bb", "photos/rgb16.png").await;
    let absent = MediaId::new().to_string();
    let items = json!([
        {"model_id": "model-ba", "media_id": a2},
        {"model_id": "model-bb", "media_id": b1},
        {"model_id": "model-ba", "media_id": absent},
        {"model_id": "model-ba", "media_id": a1},
        {"model_id": "model-ba", "media_id": a2},
    ]);
    let batch = |token: String, items: Value| {
        let app = &app;
        async move { app.call(Method::POST, "/v1/media/batch-get", Some(&token), Some(json!({"items": items}))).await }
    };

    let as_owner: Value = batch(token_a.clone(), items.clone()).await.json().await.unwrap();
    let got: Vec<&str> =
        as_owner["items"].as_array().unwrap().iter().map(|i| i["media_id"].as_str().unwrap()).collect();
    assert_eq!(got, [a2.as_str(), a1.as_str()], "in the order asked, repeats once");
    let missing: Vec<&str> =
        as_owner["missing"].as_array().unwrap().iter().map(|i| i["media_id"].as_str().unwrap()).collect();
    assert_eq!(missing, [b1.as_str(), absent.as_str()], "another model's media counts as missing");

    let as_admin: Value = batch(admin.clone(), items.clone()).await.json().await.unwrap();
    assert_eq!(as_admin["items"].as_array().unwrap().len(), 3);
    assert_eq!(as_admin["missing"], json!([{"model_id": "model-ba", "media_id": absent}]));
    assert!(as_admin["items"][0]["derivatives"][0]["url"].as_str().unwrap().starts_with("http"));

    let hundred: Vec<Value> =
        (0..100).map(|_| json!({"model_id": "model-ba", "media_id": MediaId::new().to_string()})).collect();
    let full: Value = batch(admin.clone(), json!(hundred)).await.json().await.unwrap();
    assert_eq!(full["missing"].as_array().unwrap().len(), 100);

    let too_many: Vec<Value> =
        (0..101).map(|_| json!({"model_id": "m", "media_id": MediaId::new().to_string()})).collect();
    assert_eq!(error_code(batch(admin.clone(), json!(too_many)).await, 400).await, "invalid_request");
    assert_eq!(error_code(batch(admin.clone(), json!([])).await, 400).await, "invalid_request");
    let bad_id = json!([{"model_id": "model-ba", "media_id": "NOT-A-ULID"}]);
    assert_eq!(error_code(batch(admin.clone(), bad_id).await, 400).await, "invalid_id");
    let extra = json!([{"model_id": "model-ba", "media_id": a1, "x": 1}]);
    assert_eq!(error_code(batch(admin.clone(), extra).await, 400).await, "invalid_request");
    let anonymous = app.call(Method::POST, "/v1/media/batch-get", None, Some(json!({"items": items}))).await;
    assert_eq!(error_code(anonymous, 401).await, "unauthorized");
}

impl TestApp {
    async fn delete_media(&self, token: &str, model: &str, media: &str, version: Option<u64>) -> reqwest::Response {
        let mut request =
            self.client.delete(format!("{}/v1/models/{model}/media/{media}", self.url)).bearer_auth(token);
        if let Some(version) = version {
            request = request.header("if-match", format!("\"{version}-0\""));
        }
        request.send().await.expect("request")
    }

    async fn restore_media(&self, token: &str, model: &str, media: &str) -> reqwest::Response {
        self.call(Method::POST, &format!("/v1/models/{model}/media/{media}/restore"), Some(token), None).await
    }

    async fn batch_get(&self, token: &str, items: Value) -> Value {
        let response = self.call(Method::POST, "/v1/media/batch-get", Some(token), Some(json!({"items": items}))).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn a_deleted_media_goes_to_the_trash_at_once_and_comes_back_whole() {
    let app = spawn_app().await;
    let (token, admin) = (app.model_token("model-t"), app.admin_token());
    let media = processed(&app, "model-t", "photos/rgb16.png").await;
    let keep = processed(&app, "model-t", "photos/alpha.png").await;
    let record: Value = app.get_media(&token, "model-t", &media).await.json().await.unwrap();
    let edit = json!({"caption": "Backstage", "tags": ["gone"], "category": "runway", "version": record["version"]});
    let edited: Value = app.patch(&token, "model-t", &media, None, edit).await.json().await.unwrap();
    let version = edited["version"].as_u64().unwrap();
    let urls: Vec<String> =
        edited["derivatives"].as_array().unwrap().iter().map(|d| d["url"].as_str().unwrap().to_owned()).collect();
    assert!(!urls.is_empty());
    let items = json!([{"model_id": "model-t", "media_id": media}, {"model_id": "model-t", "media_id": keep}]);

    assert_eq!(
        error_code(app.delete_media(&token, "model-t", &media, Some(version - 1)).await, 409).await,
        "version_conflict"
    );
    assert_eq!(
        error_code(app.delete_media(&app.model_token("model-x"), "model-t", &media, None).await, 403).await,
        "forbidden"
    );
    assert_eq!(app.delete_media(&token, "model-t", &media, Some(version)).await.status(), 204);

    // Gone for readers at once: GET, every listing and filter, batch get; edits, reviews and
    // another delete are 404.
    assert_eq!(error_code(app.get_media(&token, "model-t", &media).await, 404).await, "not_found");
    assert_eq!(app.list_ids(&token, "model-t", "").await, [keep.as_str()]);
    for filter in ["tag=gone", "category=runway", "status=pending_review&tag=gone"] {
        assert!(app.list_ids(&token, "model-t", filter).await.is_empty(), "{filter}");
    }
    let got = app.batch_get(&admin, items.clone()).await;
    assert_eq!(got["items"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["missing"], json!([{"model_id": "model-t", "media_id": media}]));
    let again = app.patch(&token, "model-t", &media, None, json!({"caption": "x", "version": version + 1})).await;
    assert_eq!(error_code(again, 404).await, "not_found");
    let review = app.review(&admin, "model-t", &media, json!({"decision": "approve"})).await;
    assert_eq!(error_code(review, 404).await, "not_found");
    let versions =
        app.call(Method::GET, &format!("/v1/models/model-t/media/{media}/versions"), Some(&token), None).await;
    assert_eq!(error_code(versions, 404).await, "not_found");
    assert_eq!(error_code(app.delete_media(&token, "model-t", &media, None).await, 404).await, "not_found");
    // Nothing is removed meanwhile.
    for url in &urls {
        assert_eq!(app.client.get(url).send().await.unwrap().status(), 200, "{url}");
    }

    // The trash lists it, with when it was deleted and until when it may come back.
    let trash: Value = app.list(&token, "model-t", "status=deleted").await.json().await.unwrap();
    let items_in_trash = trash["items"].as_array().unwrap();
    assert_eq!(items_in_trash.len(), 1, "{trash}");
    assert_eq!(
        (items_in_trash[0]["media_id"].as_str(), items_in_trash[0]["status"].as_str()),
        (Some(media.as_str()), Some("deleted"))
    );
    let deleted_at = time::OffsetDateTime::parse(
        items_in_trash[0]["deleted_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let purge_after = time::OffsetDateTime::parse(
        items_in_trash[0]["purge_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(purge_after - deleted_at, time::Duration::days(7), "the default grace period");
    assert_eq!(error_code(app.list(&token, "model-t", "status=deleted&tag=gone").await, 400).await, "invalid_request");

    // Restored: everything as it was, in every listing again.
    assert_eq!(
        error_code(app.restore_media(&app.model_token("model-x"), "model-t", &media).await, 403).await,
        "forbidden"
    );
    let restored = app.restore_media(&token, "model-t", &media).await;
    assert_eq!(restored.status(), 200);
    let restored: Value = restored.json().await.unwrap();
    assert_eq!(restored["status"], "pending_review", "{restored}");
    assert_eq!((restored["caption"].as_str(), restored["category"].as_str()), (Some("Backstage"), Some("runway")));
    assert_eq!(restored["tags"], json!(["gone"]));
    assert!(restored.get("purge_after").is_none() && restored.get("deleted_at").is_none(), "{restored}");
    let detail: Value = app.get_media(&token, "model-t", &media).await.json().await.unwrap();
    let actions: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(&actions[..2], ["restored", "deleted"]);
    assert_eq!(detail["derivatives"], edited["derivatives"], "the same derivatives");
    for url in &urls {
        assert_eq!(app.client.get(url).send().await.unwrap().status(), 200, "{url}");
    }
    let mut all = app.list_ids(&token, "model-t", "").await;
    all.sort();
    let mut both = vec![media.clone(), keep.clone()];
    both.sort();
    assert_eq!(all, both);
    assert_eq!(app.list_ids(&token, "model-t", "tag=gone").await, [media.as_str()]);
    assert_eq!(app.list_ids(&token, "model-t", "category=runway").await, [media.as_str()]);
    assert!(app.list_ids(&token, "model-t", "status=deleted").await.is_empty());
    assert_eq!(app.batch_get(&admin, items).await["items"].as_array().unwrap().len(), 2);
    // Not in the trash any more: nothing to restore.
    assert_eq!(error_code(app.restore_media(&token, "model-t", &media).await, 404).await, "not_found");
    let absent = MediaId::new().to_string();
    assert_eq!(error_code(app.restore_media(&token, "model-t", &absent).await, 404).await, "not_found");
}

#[tokio::test]
async fn past_its_grace_period_a_deleted_media_is_purged() {
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(data.path(), phoenix_domain::Limits::default());
    // One second in the trash; the reaper (every second in tests) sweeps it then.
    config.api.trash.grace = Duration::from_secs(1);
    config.worker.trash.grace = Duration::from_secs(1);
    let app = crate::helpers::spawn_with_config(config).await;
    let token = app.model_token("model-d");
    let media = processed(&app, "model-d", "photos/rgb16.png").await;
    let keep = processed(&app, "model-d", "photos/alpha.png").await;
    let record: Value = app.get_media(&token, "model-d", &media).await.json().await.unwrap();
    let urls: Vec<String> =
        record["derivatives"].as_array().unwrap().iter().map(|d| d["url"].as_str().unwrap().to_owned()).collect();
    assert!(!urls.is_empty());
    assert_eq!(app.delete_media(&token, "model-d", &media, None).await.status(), 204);
    assert_eq!(error_code(app.get_media(&token, "model-d", &media).await, 404).await, "not_found");

    // The sweep deletes the record (a tombstone left) and the purge removes every object.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut alive = 0;
        for url in &urls {
            if app.client.get(url).send().await.unwrap().status() != 404 {
                alive += 1;
            }
        }
        if alive == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{alive} derivatives still served after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (model, id) = (ModelId::parse("model-d").unwrap(), MediaId::parse(&media).unwrap());
    assert!(matches!(
        app.system.objects.head(&phoenix_domain::keys::original(&model, &id)).await,
        Err(StoreError::NotFound)
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.system.metadata.get_tombstone(&model, &id).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the tombstone outlived the purge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(app.system.metadata.get_media(&model, &id).await, Err(StoreError::NotFound)));
    assert!(app.list_ids(&token, "model-d", "status=deleted").await.is_empty());
    assert_eq!(error_code(app.restore_media(&token, "model-d", &media).await, 404).await, "not_found");
    // The other media is untouched.
    let kept: Value = app.get_media(&token, "model-d", &keep).await.json().await.unwrap();
    let kept_url = kept["derivatives"][0]["url"].as_str().unwrap();
    assert_eq!(app.client.get(kept_url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_restore_past_the_grace_period_is_refused_while_the_sweep_has_not_run() {
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(data.path(), phoenix_domain::Limits::default());
    config.api.trash.grace = Duration::from_secs(1);
    // No sweep during this test.
    config.reaper_interval = Duration::from_secs(3600);
    let app = crate::helpers::spawn_with_config(config).await;
    let token = app.model_token("model-g");
    let media = processed(&app, "model-g", "photos/rgb16.png").await;
    assert_eq!(app.delete_media(&token, "model-g", &media, None).await.status(), 204);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(error_code(app.restore_media(&token, "model-g", &media).await, 409).await, "invalid_state");
}

#[tokio::test]
async fn the_same_photo_twice_is_a_likely_duplicate() {
    let app = spawn_app().await;
    let token = app.model_token("model-dup");
    let first = processed(&app, "model-dup", "photos/portrait-6mp.jpg").await;
    let second = processed(&app, "model-dup", "photos/portrait-6mp.jpg").await;
    let other = processed(&app, "model-dup", "photos/landscape.webp").await;
    let record: Value = app.get_media(&token, "model-dup", &first).await.json().await.unwrap();
    assert_eq!(record["likely_duplicates"], json!([{"media_id": second, "distance": 0}]));
    let record: Value = app.get_media(&token, "model-dup", &other).await.json().await.unwrap();
    assert_eq!(record["likely_duplicates"], json!([]));
    // Lists stay light: no history or duplicates per item.
    let page: Value = app.list(&token, "model-dup", "").await.json().await.unwrap();
    assert!(page["items"][0].get("history").is_none() && page["items"][0].get("likely_duplicates").is_none());
}

/// Every endpoint as the agency (admin), the owning model, another model and nobody.
#[tokio::test]
async fn every_endpoint_enforces_who_may_act() {
    let app = spawn_app().await;
    let callers = [
        ("admin", Some(app.admin_token())),
        ("owner", Some(app.model_token("model-o"))),
        ("other", Some(app.model_token("model-p"))),
        ("anonymous", None),
    ];
    let owner = app.model_token("model-o");
    let media = processed(&app, "model-o", "photos/rgb16.png").await;
    let upload = json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10});

    for (who, token) in &callers {
        let token = token.as_deref();
        let expect = |admin: u16, own: u16, other: u16| match *who {
            "admin" => admin,
            "owner" => own,
            "other" => other,
            _ => 401,
        };
        let version = app.get_media(&owner, "model-o", &media).await.json::<Value>().await.unwrap()["version"].clone();
        let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
            (Method::GET, "/v1/health".into(), None, 200),
            (Method::GET, "/openapi.json".into(), None, 200),
            (Method::POST, "/v1/models/model-o/media/uploads".into(), Some(upload.clone()), expect(201, 201, 403)),
            (Method::GET, "/v1/models/model-o/media".into(), None, expect(200, 200, 403)),
            (Method::GET, format!("/v1/models/model-o/media/{media}"), None, expect(200, 200, 403)),
            (
                Method::PATCH,
                format!("/v1/models/model-o/media/{media}"),
                Some(json!({"caption": format!("by {who}"), "version": version})),
                expect(200, 200, 403),
            ),
            (
                Method::POST,
                format!("/v1/models/model-o/media/{media}/review"),
                Some(json!({"decision": "reject", "violations": [{"code": "test", "severity": "low"}]})),
                expect(200, 403, 403),
            ),
            (
                Method::POST,
                "/v1/media/batch-get".into(),
                Some(json!({"items": [{"model_id": "model-o", "media_id": media}]})),
                expect(200, 200, 200),
            ),
            (Method::DELETE, format!("/v1/models/model-o/media/{}", MediaId::new()), None, expect(404, 404, 403)),
        ];
        for (method, path, body, status) in cases {
            let response = app.call(method.clone(), &path, token, body).await;
            let got = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(got, status, "{method} {path} as {who}: {text}");
            if got >= 400 {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert!(body["error"]["code"].is_string(), "{method} {path} as {who}: {text}");
            }
            if path == "/v1/media/batch-get" && got == 200 {
                let body: Value = serde_json::from_str(&text).unwrap();
                let seen = body["items"].as_array().unwrap().len();
                assert_eq!(seen, usize::from(*who != "other"), "batch-get as {who} sees {seen}");
            }
        }
    }
    // Deleting for real: the owner may, another model may not.
    let path = format!("/v1/models/model-o/media/{media}");
    assert_eq!(app.call(Method::DELETE, &path, Some(&app.model_token("model-p")), None).await.status(), 403);
    assert_eq!(app.call(Method::DELETE, &path, None, None).await.status(), 401);
    assert_eq!(app.call(Method::DELETE, &path, Some(&owner), None).await.status(), 204);
}
