//! Galleries end to end on the local stack, over HTTP only, with real photos: upload and approve,
//! create a gallery, reorder it with PATCH under If-Match, publish, read it publicly (JSON and the
//! HTML page) with 304s on revalidation, keep a private gallery off the public routes, roll a
//! publication back, and find the published derivatives where the document says they are.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, header, spawn_app, spawn_app_keeping_gps};

const CACHE_CONTROL: &str = "public, max-age=60, s-maxage=86400, stale-while-revalidate=600, stale-if-error=86400";

impl TestApp {
    pub(crate) async fn gallery_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(etag) = if_match {
            request = request.header("If-Match", etag);
        }
        request.send().await.expect("request")
    }

    /// Uploads a photo, waits for it, approves it (as an admin); returns its id.
    pub(crate) async fn approved_photo(&self, owner: &str, model: &str, photo: &str) -> String {
        let record = self.processed_photo(owner, model, photo).await;
        let media = record["media_id"].as_str().unwrap().to_owned();
        let reviewed = self
            .gallery_call(
                Method::POST,
                &format!("/v1/models/{model}/media/{media}/review"),
                Some(&self.admin_token()),
                Some(json!({"decision": "approve"})),
                None,
            )
            .await;
        assert_eq!(reviewed.status(), 200, "{}", reviewed.text().await.unwrap());
        media
    }
}

#[tokio::test]
async fn a_gallery_of_real_photos_is_ordered_published_read_publicly_and_rolled_back() {
    // A deployment that keeps GPS: the photo's position is stored, and must still never be public.
    let app = spawn_app_keeping_gps().await;
    let model = "gallery-model";
    let owner = app.model_token(model);
    let a = app.approved_photo(&owner, model, "portrait-6mp.jpg").await;
    let b = app.approved_photo(&owner, model, "exif-orientation6-gps.jpg").await;
    let kept: Value = app.get_media(&app.admin_token(), model, &b).await.json().await.unwrap();
    let latitude = kept["source"]["gps"]["latitude"].as_f64().expect("the admin sees the kept position");
    // Its full digits: a prefix such as "40.712" also turns up in timestamps' fractions.
    let latitude = format!("{latitude}");
    let latitude = latitude.as_str();
    assert!(latitude.len() >= 8, "a position with its digits: {latitude}");
    let pending = app.processed_photo(&owner, model, "grayscale.jpg").await["media_id"].as_str().unwrap().to_owned();

    // Create, then fill it: only approved media join.
    let created = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries"),
            Some(&owner),
            Some(json!({
                "title": "Summer <2027>", "slug": "summer-2027", "visibility": "public",
                "description": "Beach days & city nights",
                "sections": [{"section_id": "beach", "title": "Beach"}, {"section_id": "city", "title": "City"}]
            })),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    let etag = header(&created, "etag");
    let gallery: Value = created.json().await.unwrap();
    let id = gallery["gallery_id"].as_str().unwrap().to_owned();
    let url = format!("/v1/models/{model}/galleries/{id}");

    let refused = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "insert_items", "media_ids": [a, pending]}]})),
            Some(&etag),
        )
        .await;
    assert_eq!(error_code(refused, 422).await, "media_not_addable");
    let filled = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [
                {"op": "insert_items", "media_ids": [a, b], "section_id": "beach"},
                {"op": "set_fields", "cover": b}
            ]})),
            Some(&etag),
        )
        .await;
    assert_eq!(filled.status(), 200);
    let etag2 = header(&filled, "etag");
    // Reorder: b first, then move a to the city section; a stale If-Match is refused.
    let stale = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "move_items", "media_ids": [b], "position": 0}]})),
            Some(&etag),
        )
        .await;
    assert_eq!(error_code(stale, 409).await, "version_conflict");
    let reordered = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [
                {"op": "move_items", "media_ids": [a], "section_id": "city"},
                {"op": "move_section", "section_id": "city", "position": 0}
            ]})),
            Some(&etag2),
        )
        .await;
    assert_eq!(reordered.status(), 200);
    let reordered: Value = reordered.json().await.unwrap();
    assert_eq!(reordered["sections"][0]["items"], json!([a]));
    assert_eq!(reordered["sections"][1]["items"], json!([b]));
    // The media records know their gallery.
    let record: Value = app.get_media(&owner, model, &a).await.json().await.unwrap();
    assert_eq!(record["galleries"][0]["gallery_id"], id.as_str());

    // Publish: version 1, readable publicly as JSON, with cache headers and 304s.
    let published = app.gallery_call(Method::POST, &format!("{url}/publish"), Some(&owner), None, None).await;
    assert_eq!(published.status(), 200);
    let public = format!("/v1/public/galleries/{id}");
    let read = app.gallery_call(Method::GET, &public, None, None, None).await;
    assert_eq!(read.status(), 200);
    assert_eq!(header(&read, "cache-control"), CACHE_CONTROL);
    let json_etag = header(&read, "etag");
    let text = read.text().await.unwrap();
    for never in ["latitude", "gps", latitude, "originals/", "review", "history", "pending_review", "admin"] {
        assert!(!text.contains(never), "{never} in the public document: {text}");
    }
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["version"], 1);
    assert_eq!(document["sections"][0]["items"][0]["media_id"], a.as_str());
    let item = &document["sections"][1]["items"][0];
    assert_eq!(item["media_id"], b.as_str());
    assert_eq!(item["sources"][0]["format"], "webp");
    assert_eq!(item["sources"][1]["format"], "jpeg");
    assert!(item["sources"][0]["srcset"].as_array().unwrap().len() >= 3, "{item}");
    assert!(item["dominant_color"].as_str().unwrap().starts_with('#'));
    assert!(item["placeholder"].is_string());
    assert!(item["width"].as_u64().unwrap() < item["height"].as_u64().unwrap(), "orientation applied: {item}");
    assert_eq!(document["cover"]["media_id"], b.as_str());
    // The srcset's URLs serve the images.
    let first = item["sources"][0]["srcset"][0]["url"].as_str().unwrap();
    assert!(first.starts_with(&app.url), "{first}");
    assert!(!app.fetch(first).await.is_empty());

    let revalidated =
        app.client.get(format!("{}{public}", app.url)).header("If-None-Match", &json_etag).send().await.unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag"), json_etag);

    // The page for people.
    let page = app.client.get(format!("{}/g/summer-2027", app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), CACHE_CONTROL);
    let page_etag = header(&page, "etag");
    let html = page.text().await.unwrap();
    assert!(html.contains("Summer &lt;2027&gt;") && html.contains("Beach days &amp; city nights"));
    assert!(html.contains("<picture>") && html.contains("type=\"image/webp\"") && html.contains("loading=\"lazy\""));
    assert!(html.contains("sizes=\"") && html.contains("aspect-ratio:"));
    assert!(!html.contains("<script"), "no JavaScript");
    for never in [latitude, "originals/", "pending_review"] {
        assert!(!html.contains(never), "{never} in the public page");
    }
    let page_304 =
        app.client.get(format!("{}/g/summer-2027", app.url)).header("If-None-Match", &page_etag).send().await.unwrap();
    assert_eq!(page_304.status(), 304);

    // A reorder of a published gallery republishes it by itself (through the publish queue):
    // version 2 shows the new order; rollback brings 1 back.
    let current: Value = app.gallery_call(Method::GET, &url, Some(&owner), None, None).await.json().await.unwrap();
    let version = current["version"].to_string();
    let swapped = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "move_section", "section_id": "beach", "position": 0}]})),
            Some(&format!("\"{version}\"")),
        )
        .await;
    assert_eq!(swapped.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let v2: Value = loop {
        let read: Value = app.gallery_call(Method::GET, &public, None, None, None).await.json().await.unwrap();
        if read["version"].as_u64() != Some(1) {
            break read;
        }
        assert!(std::time::Instant::now() < deadline, "the reorder was not republished: {read}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (v2["version"].as_u64(), v2["sections"][0]["items"][0]["media_id"].as_str()),
        (Some(2), Some(b.as_str()))
    );
    let stale_copy =
        app.client.get(format!("{}{public}", app.url)).header("If-None-Match", &json_etag).send().await.unwrap();
    assert_eq!(stale_copy.status(), 200, "a new version is a new ETag");

    let rolled = app.gallery_call(Method::POST, &format!("{url}/publish/rollback"), Some(&owner), None, None).await;
    assert_eq!(rolled.status(), 200);
    let rolled: Value = rolled.json().await.unwrap();
    assert_eq!(rolled["publication"]["current_version"], 1);
    let back = app.gallery_call(Method::GET, &public, None, None, None).await;
    assert_eq!(header(&back, "etag"), json_etag, "version 1 again, byte for byte");
    let again = app.gallery_call(Method::POST, &format!("{url}/publish/rollback"), Some(&owner), None, None).await;
    assert_eq!(error_code(again, 409).await, "invalid_state");

    // Private: off the public routes at once, even though published.
    let current: Value = app.gallery_call(Method::GET, &url, Some(&owner), None, None).await.json().await.unwrap();
    let private = app
        .gallery_call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "set_fields", "visibility": "private"}]})),
            Some(&format!("\"{}\"", current["version"])),
        )
        .await;
    assert_eq!(private.status(), 200);
    assert_eq!(error_code(app.gallery_call(Method::GET, &public, None, None, None).await, 404).await, "not_found");
    assert_eq!(app.client.get(format!("{}/g/summer-2027", app.url)).send().await.unwrap().status(), 404);

    // Another model cannot touch it; an anonymous caller cannot either.
    let stranger = app.model_token("someone-else");
    assert_eq!(app.gallery_call(Method::GET, &url, Some(&stranger), None, None).await.status(), 403);
    assert_eq!(app.gallery_call(Method::GET, &url, None, None, None).await.status(), 401);
}

#[tokio::test]
async fn a_private_gallery_is_never_public() {
    let app = spawn_app().await;
    let model = "private-model";
    let owner = app.model_token(model);
    let a = app.approved_photo(&owner, model, "grayscale.jpg").await;
    let created = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries"),
            Some(&owner),
            Some(json!({"title": "Hidden", "slug": "hidden-one"})),
            None,
        )
        .await;
    let etag = header(&created, "etag");
    let gallery: Value = created.json().await.unwrap();
    assert_eq!(gallery["visibility"], "private");
    let id = gallery["gallery_id"].as_str().unwrap();
    let url = format!("/v1/models/{model}/galleries/{id}");
    app.gallery_call(
        Method::PATCH,
        &url,
        Some(&owner),
        Some(json!({"operations": [{"op": "insert_items", "media_ids": [a]}]})),
        Some(&etag),
    )
    .await;
    let published = app.gallery_call(Method::POST, &format!("{url}/publish"), Some(&owner), None, None).await;
    assert_eq!(published.status(), 200);
    let published: Value = published.json().await.unwrap();
    assert!(published["publication"]["page"].is_null(), "no public URL for a private gallery");
    assert_eq!(
        app.gallery_call(Method::GET, &format!("/v1/public/galleries/{id}"), None, None, None).await.status(),
        404
    );
    assert_eq!(app.client.get(format!("{}/g/hidden-one", app.url)).send().await.unwrap().status(), 404);
}
