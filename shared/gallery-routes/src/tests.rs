//! The gallery routes through HTTP, behind the API's common layers, on the local adapters in a
//! temporary folder: who may do what, ETags and preconditions, the errors' codes, the public
//! routes' headers, 304s and counts.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use phoenix_domain::ports::MediaStore;
use phoenix_domain::{MediaId, MediaRecord, MediaStatus, ModelId};
use phoenix_http::{AuthMode, DevClaims};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, RememberedPointers};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Config, GalleryRoutePorts, PublicCache, routes};

struct App {
    router: Router,
    metadata: Arc<LocalMetadataStore>,
    cache: Arc<PublicCache>,
    auth: AuthMode,
    _data: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
    }
}

fn app() -> App {
    let data = tempfile::tempdir().unwrap();
    let metadata = Arc::new(LocalMetadataStore::open(&data.path().join("metadata.sqlite")).unwrap());
    // As the local runtime has it: pointers kept in memory.
    let objects = Arc::new(RememberedPointers::new(
        LocalObjectStore::open(&data.path().join("objects"), "http://127.0.0.1:1".into(), b"k".to_vec()).unwrap(),
    ));
    let cache = Arc::new(PublicCache::default());
    let auth = AuthMode::local(b"test-secret");
    let queue = Arc::new(phoenix_storage::local::LocalQueue::open(&data.path().join("queues.sqlite"), vec![]).unwrap());
    let ports =
        GalleryRoutePorts { metadata: metadata.clone(), objects, cache: cache.clone(), queue, cdn_metrics: None };
    let share_keys = phoenix_domain::shares::ShareKeys::parse(&format!("k1:{}", "A".repeat(44))).unwrap();
    let config = Config { media_base: "https://cdn.example".into(), share_keys: Some(share_keys), ..Config::default() };
    let router = phoenix_http::finish(routes(config, ports, auth.clone()));
    App { router, metadata, cache, auth, _data: data }
}

impl App {
    fn token(&self, groups: &[&str], model: Option<&str>) -> String {
        let AuthMode::LocalJwt(keys) = &self.auth else { unreachable!() };
        DevClaims {
            sub: format!("user-{}", model.unwrap_or("admin")),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            model_id: model.map(str::to_owned),
            exp: 4_102_444_800,
        }
        .sign(keys)
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    /// An approved photo of `model` with a small rendition set.
    async fn approved(&self, model: &str) -> MediaId {
        let mut record = MediaRecord::new_upload(
            ModelId::parse(model).unwrap(),
            MediaId::new(),
            "a.jpg".into(),
            "image/jpeg".into(),
            10,
            OffsetDateTime::now_utc(),
            None,
        );
        let id = record.media_id;
        record.status = MediaStatus::Approved;
        record.source = Some(
            serde_json::from_value(json!({
                "etag": "e", "bytes": 10, "format": "jpeg", "width": 800, "height": 600, "orientation": 1,
                "sha256": "00".repeat(32), "dominant_color": "#102030",
                "gps": {"latitude": 48.8566, "longitude": 2.3522}
            }))
            .unwrap(),
        );
        record.derivatives = ["webp", "jpeg"]
            .iter()
            .map(|f| {
                serde_json::from_value(json!({
                    "preset": "small", "format": f, "width": 320, "height": 240, "bytes": 1,
                    "key": format!("derived/{model}/{id}/small.{f}")
                }))
                .unwrap()
            })
            .collect();
        self.metadata.create_media(&record).await.unwrap();
        id
    }
}

#[tokio::test]
async fn a_gallery_is_created_patched_under_if_match_published_and_read_publicly() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let (a, b) = (app.approved("m1").await, app.approved("m1").await);

    let created = app
        .call(
            Method::POST,
            "/v1/models/m1/galleries",
            Some(&owner),
            Some(json!({"title": "Summer", "slug": "Summer-27", "visibility": "public"})),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["gallery_id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["slug"], "summer-27");
    assert_eq!(created.header("location"), format!("/v1/models/m1/galleries/{id}"));
    let etag = created.header("etag").to_owned();
    let url = format!("/v1/models/m1/galleries/{id}");

    let taken = app
        .call(
            Method::POST,
            "/v1/models/m1/galleries",
            Some(&owner),
            Some(json!({"title": "x", "slug": "summer-27"})),
            &[],
        )
        .await;
    assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "slug_taken"));

    let ops = json!({"operations": [{"op": "insert_items", "media_ids": [a, b]}]});
    let unconditional = app.call(Method::PATCH, &url, Some(&owner), Some(ops.clone()), &[]).await;
    assert_eq!(
        (unconditional.status, unconditional.code()),
        (StatusCode::PRECONDITION_REQUIRED, "precondition_required")
    );
    let patched = app.call(Method::PATCH, &url, Some(&owner), Some(ops.clone()), &[("if-match", &etag)]).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["sections"][0]["items"], json!([a, b]));
    let stale = app.call(Method::PATCH, &url, Some(&owner), Some(ops), &[("if-match", &etag)]).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "version_conflict"));
    assert_eq!(stale.body["error"]["details"]["current_version"], 2);
    let bad = app
        .call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "move_items", "media_ids": [a], "position": 9}]})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("operations[0].position"))
    );

    // Not published yet: the public routes know nothing.
    let public = format!("/v1/public/galleries/{id}");
    assert_eq!(app.call(Method::GET, &public, None, None, &[]).await.status, StatusCode::NOT_FOUND);

    let published = app.call(Method::POST, &format!("{url}/publish"), Some(&owner), None, &[]).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    assert_eq!(published.body["publication"]["current_version"], 1);
    assert_eq!(published.body["publication"]["page"], "/g/summer-27");

    let read = app.call(Method::GET, &public, None, None, &[]).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(
        read.header("cache-control"),
        "public, max-age=60, s-maxage=86400, stale-while-revalidate=600, stale-if-error=86400"
    );
    assert!(!read.text.contains("48.85"), "no GPS in public");
    assert_eq!(
        read.body["sections"][0]["items"][0]["sources"][0]["srcset"][0]["url"],
        format!("https://cdn.example/derived/m1/{a}/small.webp")
    );
    let etag = read.header("etag").to_owned();
    assert!(etag.starts_with("\"1-j") && !etag.starts_with("W/"), "{etag}");
    let again = app.call(Method::GET, &public, None, None, &[("if-none-match", &etag)]).await;
    assert_eq!((again.status, again.header("etag")), (StatusCode::NOT_MODIFIED, etag.as_str()));
    let from_memory = app.call(Method::GET, &public, None, None, &[]).await;
    assert_eq!((from_memory.text.as_str(), from_memory.header("etag")), (read.text.as_str(), etag.as_str()));

    let page = app.call(Method::GET, "/g/summer-27", None, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(page.text.contains("<picture>") && page.text.contains("image/webp"));
    let page_etag = page.header("etag").to_owned();
    assert_ne!(page_etag, etag);
    assert_eq!(
        app.call(Method::GET, "/g/summer-27", None, None, &[("if-none-match", &page_etag)]).await.status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(app.call(Method::GET, "/g/Summer-27", None, None, &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, "/g/nothing-here", None, None, &[]).await.status, StatusCode::NOT_FOUND);

    let stats = app.cache.stats();
    assert_eq!((stats[0].renders, stats[0].hits, stats[0].not_modified), (1, 1, 1), "{stats:?}");
    assert_eq!((stats[1].renders, stats[1].not_modified), (1, 1), "{stats:?}");
}

#[tokio::test]
async fn other_models_are_refused_and_pending_media_cannot_join() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let stranger = app.token(&["model"], Some("m2"));
    let admin = app.token(&["admin"], None);
    let created = app
        .call(Method::POST, "/v1/models/m1/galleries", Some(&owner), Some(json!({"title": "T", "slug": "tee"})), &[])
        .await;
    let id = created.body["gallery_id"].as_str().unwrap().to_owned();
    let url = format!("/v1/models/m1/galleries/{id}");
    assert_eq!(app.call(Method::GET, &url, Some(&stranger), None, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call(Method::GET, &format!("/v1/models/m2/galleries/{id}"), Some(&stranger), None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.call(Method::GET, &url, Some(&admin), None, &[]).await.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, &url, None, None, &[]).await.status, StatusCode::UNAUTHORIZED);

    let foreign = app.approved("m2").await;
    let refused = app
        .call(
            Method::PATCH,
            &url,
            Some(&owner),
            Some(json!({"operations": [{"op": "insert_items", "media_ids": [foreign]}]})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "media_not_addable"));
    assert_eq!(refused.body["error"]["details"]["media_ids"], json!([foreign]));

    // A private gallery, even published, is not public.
    app.call(Method::POST, &format!("{url}/publish"), Some(&owner), None, &[]).await;
    assert_eq!(
        app.call(Method::GET, &format!("/v1/public/galleries/{id}"), None, None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.call(Method::GET, "/g/tee", None, None, &[]).await.status, StatusCode::NOT_FOUND);

    let listed = app.call(Method::GET, "/v1/models/m1/galleries?limit=10", Some(&owner), None, &[]).await;
    assert_eq!(listed.body["items"][0]["gallery_id"], id.as_str());
    let deleted = app.call(Method::DELETE, &url, Some(&owner), None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::GET, &url, Some(&owner), None, &[]).await.status, StatusCode::NOT_FOUND);
}

/// Sets `fields` on gallery `url` at its current version.
async fn set_fields(app: &App, token: &str, url: &str, fields: Value) {
    let current = app.call(Method::GET, url, Some(token), None, &[]).await;
    let etag = current.header("etag").to_owned();
    let mut operation = json!({"op": "set_fields"});
    operation.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    let ops = json!({"operations": [operation]});
    let patched = app.call(Method::PATCH, url, Some(token), Some(ops), &[("if-match", &etag)]).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
}

#[tokio::test]
async fn a_slug_names_whichever_gallery_holds_it_now() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let media = [app.approved("m1").await];
    let page = |slug: &'static str| {
        let app = &app;
        async move { app.call(Method::GET, &format!("/g/{slug}"), None, None, &[]).await }
    };
    let first = format!("/v1/models/m1/galleries/{}", private_gallery(&app, &owner, "m1", "spring", &media).await);
    set_fields(&app, &owner, &first, json!({"visibility": "public", "title": "First"})).await;
    app.call(Method::POST, &format!("{first}/publish"), Some(&owner), None, &[]).await;
    assert!(page("spring").await.text.contains("First"));

    // Renamed: the old slug names nothing, the new one the same gallery.
    set_fields(&app, &owner, &first, json!({"slug": "spring-old"})).await;
    assert_eq!(page("spring").await.status, StatusCode::NOT_FOUND);
    assert!(page("spring-old").await.text.contains("First"));

    // Another gallery takes the slug: it is what the slug shows.
    let second = format!("/v1/models/m1/galleries/{}", private_gallery(&app, &owner, "m1", "spring", &media).await);
    set_fields(&app, &owner, &second, json!({"visibility": "public", "title": "Second"})).await;
    assert_eq!(page("spring").await.status, StatusCode::NOT_FOUND, "not published yet");
    app.call(Method::POST, &format!("{second}/publish"), Some(&owner), None, &[]).await;
    let shown = page("spring").await;
    assert!(shown.text.contains("Second") && !shown.text.contains("First"), "{}", shown.text);

    // Made private: gone from the public at once.
    set_fields(&app, &owner, &second, json!({"visibility": "private"})).await;
    assert_eq!(page("spring").await.status, StatusCode::NOT_FOUND);
    assert!(page("spring-old").await.text.contains("First"));
}

#[tokio::test]
async fn an_unlisted_gallery_is_read_publicly_by_its_id_and_slug() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let media = [app.approved("m1").await];
    let url = format!("/v1/models/m1/galleries/{}", private_gallery(&app, &owner, "m1", "by-link", &media).await);
    let id = url.rsplit('/').next().unwrap().to_owned();
    set_fields(&app, &owner, &url, json!({"visibility": "unlisted"})).await;
    let published = app.call(Method::POST, &format!("{url}/publish"), Some(&owner), None, &[]).await;
    assert_eq!(published.body["publication"]["page"], "/g/by-link", "{}", published.text);
    for path in [format!("/v1/public/galleries/{id}"), "/g/by-link".to_owned()] {
        let read = app.call(Method::GET, &path, None, None, &[]).await;
        assert_eq!(read.status, StatusCode::OK, "{path}");
        assert!(read.header("cache-control").starts_with("public, "), "{path}");
    }
}

/// A private gallery of `model` holding `media`, made by `token`; its id.
async fn private_gallery(app: &App, token: &str, model: &str, slug: &str, media: &[MediaId]) -> String {
    let url = format!("/v1/models/{model}/galleries");
    let created = app.call(Method::POST, &url, Some(token), Some(json!({"title": "Casting", "slug": slug})), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["gallery_id"].as_str().unwrap().to_owned();
    let ops = json!({"operations": [{"op": "insert_items", "media_ids": media}]});
    let patched =
        app.call(Method::PATCH, &format!("{url}/{id}"), Some(token), Some(ops), &[("if-match", "\"1\"")]).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    id
}

#[tokio::test]
async fn a_share_link_opens_a_private_gallery_until_revoked_and_logs_each_opening() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let other = app.token(&["model"], Some("m2"));
    let admin = app.token(&["admin"], None);
    let (a, b) = (app.approved("m1").await, app.approved("m1").await);
    let id = private_gallery(&app, &owner, "m1", "casting-one", &[a, b]).await;
    let links = format!("/v1/models/m1/galleries/{id}/links");
    let expires = (OffsetDateTime::now_utc() + time::Duration::days(7))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();

    let refused = app.call(Method::POST, &links, Some(&other), Some(json!({"expires_at": expires})), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let past =
        app.call(Method::POST, &links, Some(&owner), Some(json!({"expires_at": "2001-01-01T00:00:00Z"})), &[]).await;
    assert_eq!(
        (past.status, past.body["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expires_at"))
    );
    let made = app
        .call(Method::POST, &links, Some(&owner), Some(json!({"expires_at": expires, "recipient": "Casting Co"})), &[])
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(made.body["state"], "active");
    let link_id = made.body["link_id"].as_str().unwrap().to_owned();
    let url = made.body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/s/"), "{url}");

    // Never published: the link shows the gallery as a publish would render it now.
    let page = app.call(Method::GET, &url, None, None, &[("user-agent", "TestBrowser/1")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.header("cache-control"), "private, no-store");
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text.contains("noindex") && !page.text.contains("Download"), "no downloads unless allowed");
    let json = app.call(Method::GET, &url, None, None, &[("accept", "application/json")]).await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.body["gallery"]["item_count"], 2);
    assert_eq!(json.body["downloads"], json!([]));
    assert!(!json.text.contains("48.85") && !json.text.contains("originals/"), "no GPS, no original keys");

    // Private: still not public.
    assert_eq!(
        app.call(Method::GET, &format!("/v1/public/galleries/{id}"), None, None, &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // Rights expired since: dropped at once from the link.
    let mut record = app.metadata.get_media(&ModelId::parse("m1").unwrap(), &a).await.unwrap();
    record.metadata.usage_rights_expires_at = Some(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    record.version += 1;
    app.metadata.update_media(&record).await.unwrap();
    let json = app.call(Method::GET, &url, None, None, &[("accept", "application/json")]).await;
    assert_eq!(json.body["gallery"]["item_count"], 1, "{}", json.text);

    // Tampered and unknown: 404, the bare error.
    let mut tampered = url.clone();
    tampered.pop();
    tampered.push(if url.ends_with('A') { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "/s/nonsense", "/s/01jd3k6v2q8m3y7x9t0b5n4c2a.k1.AAAA"] {
        let r = app.call(Method::GET, bad, None, None, &[]).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"), "{bad}");
        assert_eq!(r.header("cache-control"), "private, no-store");
    }

    // The owner lists the links and the accesses; another model cannot.
    let listed = app.call(Method::GET, &links, Some(&owner), None, &[]).await;
    assert_eq!(listed.body["items"][0]["link_id"], link_id.as_str());
    let accesses = format!("{links}/{link_id}/accesses");
    let log = app.call(Method::GET, &accesses, Some(&owner), None, &[]).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert_eq!(log.body["items"].as_array().unwrap().len(), 3, "each opening: {}", log.text);
    assert!(log.text.contains("TestBrowser/1"));
    assert!(!log.text.contains("127.0.0.1"), "only a hash of the address");
    assert_eq!(app.call(Method::GET, &accesses, Some(&other), None, &[]).await.status, StatusCode::FORBIDDEN);
    let foreign = format!("/v1/models/m2/galleries/{id}/links/{link_id}/accesses");
    assert_eq!(app.call(Method::GET, &foreign, Some(&other), None, &[]).await.status, StatusCode::NOT_FOUND);

    // Revoked: 410 at once.
    let revoked = app.call(Method::DELETE, &format!("{links}/{link_id}"), Some(&owner), None, &[]).await;
    assert_eq!((revoked.status, revoked.body["state"].as_str()), (StatusCode::OK, Some("revoked")));
    let gone = app.call(Method::GET, &url, None, None, &[]).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::GONE, "gone"));
    assert_eq!(gone.header("cache-control"), "private, no-store");

    // Revoke-all: admins only, counting what it revoked.
    let second = app
        .call(Method::POST, &links, Some(&owner), Some(json!({"expires_at": expires, "allow_download": true})), &[])
        .await;
    let second_url = second.body["url"].as_str().unwrap().to_owned();
    let page = app.call(Method::GET, &second_url, None, None, &[]).await;
    assert!(page.text.contains("Download"), "downloads when allowed");
    let revoke_all = "/v1/models/m1/links/revoke";
    assert_eq!(app.call(Method::POST, revoke_all, Some(&owner), None, &[]).await.status, StatusCode::FORBIDDEN);
    let all = app.call(Method::POST, revoke_all, Some(&admin), None, &[]).await;
    assert_eq!((all.status, all.body["revoked"].as_u64()), (StatusCode::OK, Some(1)), "{}", all.text);
    assert_eq!(app.call(Method::GET, &second_url, None, None, &[]).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn cache_stats_are_for_admins_and_count_the_public_routes() {
    let app = app();
    let owner = app.token(&["model"], Some("m1"));
    let admin = app.token(&["admin"], None);
    assert_eq!(app.call(Method::GET, "/v1/cache/stats", Some(&owner), None, &[]).await.status, StatusCode::FORBIDDEN);
    // A published gallery read three times: from the store, from memory, then revalidated.
    let media = [app.approved("m1").await];
    let url = format!("/v1/models/m1/galleries/{}", private_gallery(&app, &owner, "m1", "counted", &media).await);
    set_fields(&app, &owner, &url, json!({"visibility": "public"})).await;
    app.call(Method::POST, &format!("{url}/publish"), Some(&owner), None, &[]).await;
    let public = format!("/v1/public/galleries/{}", url.rsplit('/').next().unwrap());
    let first = app.call(Method::GET, &public, None, None, &[]).await;
    app.call(Method::GET, &public, None, None, &[]).await;
    let revalidated = app.call(Method::GET, &public, None, None, &[("if-none-match", first.header("etag"))]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);

    let stats = app.call(Method::GET, "/v1/cache/stats", Some(&admin), None, &[]).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.body["routes"].as_array().unwrap().len(), 2);
    let document = &stats.body["routes"][0];
    assert_eq!(document["route"], "/v1/public/galleries/{gallery_id}");
    assert_eq!(
        (document["renders"].as_u64(), document["hits"].as_u64(), document["not_modified"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let ratio = document["hit_ratio"].as_f64().unwrap();
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{ratio}");
    assert_eq!(stats.body["routes"][1]["hit_ratio"], 0.0, "the page was not read");
    assert!(stats.body.get("cdn").is_none(), "no CDN here");
}
