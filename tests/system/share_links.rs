//! Share links and usage-rights expiry end to end on the local stack, over HTTP, with real photos:
//! a private gallery opened by a link (HTML and JSON, never cached), kept off the public routes;
//! tampered, revoked and expired links; the access log; another model kept out; the admin's
//! revoke-all for a model; downloads only when allowed. Then a media whose usage rights expire
//! drops out of a link at once and, after the rights sweep (the local reaper's timer, every
//! second in the tests), out of the public document, with the gallery's CDN paths invalidated.

use std::time::Duration;

use phoenix_domain::ShareLinkId;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{TestApp, header, shown, spawn_app};

const PRIVATE: &str = "private, no-store";

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

impl TestApp {
    /// A gallery of `media` (in one section), made with `visibility` and published; its id.
    async fn published_gallery(
        &self,
        owner: &str,
        model: &str,
        slug: &str,
        visibility: &str,
        media: &[&str],
    ) -> String {
        let created = self
            .gallery_call(
                Method::POST,
                &format!("/v1/models/{model}/galleries"),
                Some(owner),
                Some(json!({"title": format!("Gallery {slug}"), "slug": slug, "visibility": visibility})),
                None,
            )
            .await;
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
        let etag = header(&created, "etag");
        let id = created.json::<Value>().await.unwrap()["gallery_id"].as_str().unwrap().to_owned();
        let url = format!("/v1/models/{model}/galleries/{id}");
        let filled = self
            .gallery_call(
                Method::PATCH,
                &url,
                Some(owner),
                Some(json!({"operations": [{"op": "insert_items", "media_ids": media}]})),
                Some(&etag),
            )
            .await;
        assert_eq!(filled.status(), 200, "{}", filled.text().await.unwrap());
        let published = self.gallery_call(Method::POST, &format!("{url}/publish"), Some(owner), None, None).await;
        assert_eq!(published.status(), 200, "{}", published.text().await.unwrap());
        id
    }

    /// `POST …/links`; the answer.
    async fn make_link(&self, owner: &str, model: &str, gallery: &str, body: Value) -> Value {
        let made = self
            .gallery_call(
                Method::POST,
                &format!("/v1/models/{model}/galleries/{gallery}/links"),
                Some(owner),
                Some(body),
                None,
            )
            .await;
        assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
        made.json().await.unwrap()
    }

    /// Opens a link's URL (`/s/{token}`) with a user agent, as JSON when `json`.
    async fn open(&self, url: &str, json: bool, user_agent: &str) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{url}", self.url)).header("User-Agent", user_agent);
        if json {
            request = request.header("Accept", "application/json");
        }
        request.send().await.expect("request")
    }

    /// The link's JSON view once `done` holds for the media it shows.
    async fn shared_until(&self, url: &str, what: &str, done: impl Fn(&[String]) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let opened = self.open(url, true, "poller").await;
            assert_eq!(opened.status(), 200, "{what}");
            let view: Value = opened.json().await.unwrap();
            if done(&shown(&view["gallery"])) {
                return view;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: the link still shows {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A bare error: the standard body with `code`, and nothing of the gallery behind the link.
async fn bare_error(response: reqwest::Response, status: u16, code: &str, never: &[&str]) {
    assert_eq!(header(&response, "cache-control"), PRIVATE, "errors are not cached either");
    let text = {
        assert_eq!(response.status(), status);
        response.text().await.unwrap()
    };
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["error"]["code"], code, "{body}");
    for word in never {
        assert!(!text.contains(word), "{word} in an error: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_opens_a_private_gallery_until_it_is_revoked_or_expires() {
    let app = spawn_app().await;
    let model = "share-model";
    let owner = app.model_token(model);
    let admin = app.admin_token();
    let a = app.approved_photo(&owner, model, "portrait-6mp.jpg").await;
    let b = app.approved_photo(&owner, model, "exif-orientation6-gps.jpg").await;
    let id = app.published_gallery(&owner, model, "casting-private", "private", &[&a, &b]).await;
    let links = format!("/v1/models/{model}/galleries/{id}/links");

    // Published but private: off the public routes.
    assert_eq!(
        app.gallery_call(Method::GET, &format!("/v1/public/galleries/{id}"), None, None, None).await.status(),
        404
    );
    assert_eq!(app.client.get(format!("{}/g/casting-private", app.url)).send().await.unwrap().status(), 404);

    // Out of bounds expiries are refused.
    for too_soon in [OffsetDateTime::now_utc() - time::Duration::hours(1), OffsetDateTime::now_utc()] {
        let refused = app
            .gallery_call(Method::POST, &links, Some(&owner), Some(json!({"expires_at": rfc3339(too_soon)})), None)
            .await;
        assert_eq!(refused.status(), 400);
    }

    let expires = OffsetDateTime::now_utc() + time::Duration::days(7);
    let link =
        app.make_link(&owner, model, &id, json!({"expires_at": rfc3339(expires), "recipient": "Casting Co"})).await;
    assert_eq!(link["state"], "active");
    assert_eq!(link["allow_download"], false);
    let url = link["url"].as_str().unwrap().to_owned();
    let link_id = link["link_id"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/s/"), "{url}");

    // HTML for people: the photos, no downloads, never cached.
    let page = app.open(&url, false, "Mozilla/5.0 (casting phone)").await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), PRIVATE);
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert!(header(&page, "x-robots-tag").contains("noindex"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Gallery casting-private"));
    assert!(html.contains("<picture>") && html.contains("type=\"image/webp\""), "the photos: {html}");
    assert!(!html.contains("class=\"download\""), "no downloads unless allowed");
    for never in ["originals/", "latitude", "gps"] {
        assert!(!html.contains(never), "{never} in a shared page");
    }

    // JSON by Accept: the gallery, the link's expiry, no downloads.
    let opened = app.open(&url, true, "casting-tool/2.0").await;
    assert_eq!(opened.status(), 200);
    assert!(header(&opened, "content-type").starts_with("application/json"));
    assert_eq!(header(&opened, "cache-control"), PRIVATE);
    let text = opened.text().await.unwrap();
    for never in ["originals/", "latitude", "gps", "review", "history"] {
        assert!(!text.contains(never), "{never} in a shared document: {text}");
    }
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown(&view["gallery"]), [a.clone(), b.clone()]);
    assert_eq!(view["allow_download"], false);
    assert_eq!(view["downloads"], json!([]));
    let first = view["gallery"]["sections"][0]["items"][0]["sources"][0]["srcset"][0]["url"].as_str().unwrap();
    assert!(!app.fetch(first).await.is_empty(), "the link's images load");
    // The link does not make the gallery public.
    assert_eq!(
        app.gallery_call(Method::GET, &format!("/v1/public/galleries/{id}"), None, None, None).await.status(),
        404
    );

    // A tampered token: 404, a bare error.
    let (rest, last) = url.split_at(url.len() - 1);
    let tampered = format!("{rest}{}", if last == "A" { "B" } else { "A" });
    let never = [id.as_str(), "casting-private", model, link_id.as_str()];
    bare_error(app.open(&tampered, true, "prober").await, 404, "not_found", &never).await;
    bare_error(app.open(&tampered, false, "prober").await, 404, "not_found", &never).await;
    bare_error(app.open("/s/not-a-token", true, "prober").await, 404, "not_found", &never).await;

    // Another model can neither list nor revoke it: 403 on this model's paths, 404 on its own.
    let stranger = app.model_token("someone-else");
    let link_url = format!("{links}/{link_id}");
    assert_eq!(app.gallery_call(Method::GET, &links, Some(&stranger), None, None).await.status(), 403);
    assert_eq!(app.gallery_call(Method::DELETE, &link_url, Some(&stranger), None, None).await.status(), 403);
    assert_eq!(
        app.gallery_call(Method::GET, &format!("{link_url}/accesses"), Some(&stranger), None, None).await.status(),
        403
    );
    let theirs = format!("/v1/models/someone-else/galleries/{id}/links/{link_id}");
    assert_eq!(app.gallery_call(Method::DELETE, &theirs, Some(&stranger), None, None).await.status(), 404);
    assert_eq!(app.gallery_call(Method::DELETE, &link_url, None, None, None).await.status(), 401);
    let listed: Value = app.gallery_call(Method::GET, &links, Some(&owner), None, None).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["link_id"], link_id.as_str());
    assert_eq!(listed["items"][0]["state"], "active", "the stranger changed nothing");

    // The access log: each opening (not the refused ones), with its user agent and a hash of
    // the address, never the address.
    let accesses = app.gallery_call(Method::GET, &format!("{link_url}/accesses"), Some(&owner), None, None).await;
    assert_eq!(accesses.status(), 200);
    let text = accesses.text().await.unwrap();
    assert!(!text.contains("127.0.0.1"), "the address is never kept: {text}");
    let log: Value = serde_json::from_str(&text).unwrap();
    let items = log["items"].as_array().unwrap();
    let agents: Vec<&str> = items.iter().map(|i| i["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["casting-tool/2.0", "Mozilla/5.0 (casting phone)"], "newest first: {log}");
    let hash = items[0]["client_hash"].as_str().unwrap();
    assert!(hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    assert_eq!(items[1]["client_hash"], hash, "one address, one hash");
    assert!(OffsetDateTime::parse(items[0]["at"].as_str().unwrap(), &Rfc3339).is_ok());

    // Revoked: 410 at once, a bare error; revoking again changes nothing.
    let revoked = app.gallery_call(Method::DELETE, &link_url, Some(&owner), None, None).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(revoked.json::<Value>().await.unwrap()["state"], "revoked");
    bare_error(app.open(&url, true, "late").await, 410, "gone", &never).await;
    bare_error(app.open(&url, false, "late").await, 410, "gone", &never).await;
    assert_eq!(app.gallery_call(Method::DELETE, &link_url, Some(&owner), None, None).await.status(), 200);

    // Expired: 410. A link lives at least a minute (the domain refuses less) and the system has
    // no clock to move, so the test makes a link and then moves its expiry through the store —
    // a fixture, as a minute's wait would be the only other way.
    let short = app
        .make_link(
            &owner,
            model,
            &id,
            json!({"expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::minutes(2))}),
        )
        .await;
    let short_url = short["url"].as_str().unwrap().to_owned();
    let short_id = ShareLinkId::parse(short["link_id"].as_str().unwrap()).unwrap();
    let mut record = app.system.metadata.get_link(&short_id).await.unwrap();
    record.expires_at = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    record.version += 1;
    app.system.metadata.update_link(&record).await.unwrap();
    assert_eq!(app.open(&short_url, true, "before").await.status(), 200, "valid until it expires");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    bare_error(app.open(&short_url, true, "after").await, 410, "gone", &never).await;
    let listed: Value = app.gallery_call(Method::GET, &links, Some(&owner), None, None).await.json().await.unwrap();
    let states: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["expired", "revoked"], "newest first");

    // Downloads only when allowed: each photo's largest rendition, never an original.
    let downloading =
        app.make_link(&owner, model, &id, json!({"expires_at": rfc3339(expires), "allow_download": true})).await;
    let downloading_url = downloading["url"].as_str().unwrap().to_owned();
    let view: Value = app.open(&downloading_url, true, "client").await.json().await.unwrap();
    assert_eq!(view["allow_download"], true);
    let downloads = view["downloads"].as_array().unwrap();
    assert_eq!(downloads.len(), 2, "{view}");
    for download in downloads {
        let href = download["url"].as_str().unwrap();
        assert!(href.contains("/derived/") && !href.contains("originals/"), "{href}");
        assert!(!app.fetch(href).await.is_empty());
    }
    let html = app.open(&downloading_url, false, "client").await.text().await.unwrap();
    assert!(html.contains("class=\"download\""), "the page offers downloads");
    assert!(!html.contains("originals/"));

    // The admin's revoke-all ends every link of the model and leaves another model's working.
    let other = "share-other";
    let other_owner = app.model_token(other);
    let c = app.approved_photo(&other_owner, other, "grayscale.jpg").await;
    let other_gallery = app.published_gallery(&other_owner, other, "other-private", "private", &[&c]).await;
    let other_link = app.make_link(&other_owner, other, &other_gallery, json!({"expires_at": rfc3339(expires)})).await;
    let other_url = other_link["url"].as_str().unwrap().to_owned();
    let revoke_all = format!("/v1/models/{model}/links/revoke");
    assert_eq!(
        app.gallery_call(Method::POST, &revoke_all, Some(&owner), None, None).await.status(),
        403,
        "admins only"
    );
    let ended = app.gallery_call(Method::POST, &revoke_all, Some(&admin), None, None).await;
    assert_eq!(ended.status(), 200);
    assert_eq!(ended.json::<Value>().await.unwrap(), json!({"model_id": model, "revoked": 1}), "only the active one");
    bare_error(app.open(&downloading_url, true, "after revoke-all").await, 410, "gone", &never).await;
    let still: Value = app.open(&other_url, true, "other").await.json().await.unwrap();
    assert_eq!(shown(&still["gallery"]), [c]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_past_its_usage_rights_leaves_links_at_once_and_the_public_document_after_the_sweep() {
    let app = spawn_app().await;
    let model = "rights-model";
    let owner = app.model_token(model);
    let a = app.approved_photo(&owner, model, "portrait-6mp.jpg").await;
    let b = app.approved_photo(&owner, model, "grayscale.jpg").await;
    let id = app.published_gallery(&owner, model, "rights-public", "public", &[&a, &b]).await;
    let link = app
        .make_link(
            &owner,
            model,
            &id,
            json!({"expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::days(1))}),
        )
        .await;
    let url = link["url"].as_str().unwrap().to_owned();
    let public = format!("/v1/public/galleries/{id}");
    let document: Value = app.gallery_call(Method::GET, &public, None, None, None).await.json().await.unwrap();
    assert_eq!(shown(&document), [a.clone(), b.clone()]);

    // a's usage rights end in a few seconds (an edit: it republishes the gallery, which
    // records when it is due again).
    // (Far enough ahead that the edit and the first opening come before it on a loaded machine:
    // with 8 s, a full parallel run once opened the link after it.)
    let expiry = OffsetDateTime::now_utc() + time::Duration::seconds(15);
    let media_url = format!("{}/v1/models/{model}/media/{a}", app.url);
    let read = app.client.get(&media_url).bearer_auth(&owner).send().await.unwrap();
    let media_etag = header(&read, "etag");
    let edited = app
        .client
        .patch(&media_url)
        .bearer_auth(&owner)
        .header("If-Match", media_etag)
        .json(&json!({"usage_rights_expires_at": rfc3339(expiry)}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200, "{}", edited.text().await.unwrap());
    assert_eq!(
        shown(&app.open(&url, true, "before").await.json::<Value>().await.unwrap()["gallery"]),
        [a.clone(), b.clone()]
    );

    // The moment it expires, the link leaves it out (it re-reads the records on every request).
    let left = app.shared_until(&url, "rights expiry on the link", |shown| shown == [b.clone()]).await;
    let noticed = OffsetDateTime::now_utc();
    assert!(noticed >= expiry && noticed - expiry < time::Duration::seconds(2), "at once: {noticed} vs {expiry}");
    assert_eq!(left["gallery"]["item_count"], 1);

    // The sweep (every second on the local timer) republishes without it, and the CDN is
    // asked to drop the gallery's paths.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let document = loop {
        let document: Value = app.gallery_call(Method::GET, &public, None, None, None).await.json().await.unwrap();
        if shown(&document) == [b.clone()] {
            break document;
        }
        assert!(tokio::time::Instant::now() < deadline, "the public document still shows {document}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(document["item_count"], 1);
    let gallery: Value = app
        .gallery_call(Method::GET, &format!("/v1/models/{model}/galleries/{id}"), Some(&owner), None, None)
        .await
        .json()
        .await
        .unwrap();
    let versions = gallery["publication"]["versions"].as_array().unwrap();
    assert_eq!(versions.last().unwrap()["published_by"], "rights-sweep", "{gallery}");
    // Its invalidation names the sweep's version (the edit's came before).
    let swept = versions.last().unwrap()["version"].as_u64().unwrap();
    let reference = format!("gallery-{id}-v{swept}-");
    let paths = ["/g/rights-public".to_owned(), public.clone()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = app.system.cdn.invalidations();
        let invalidated = seen
            .iter()
            .any(|i| i.caller_reference.starts_with(&reference) && paths.iter().all(|p| i.paths.contains(p)));
        if invalidated {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no invalidation after the sweep: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_media_approved_again_returns_to_its_place_in_the_published_gallery() {
    let app = spawn_app().await;
    let model = "reapprove-model";
    let owner = app.model_token(model);
    let admin = app.admin_token();
    let a = app.approved_photo(&owner, model, "portrait-6mp.jpg").await;
    let b = app.approved_photo(&owner, model, "grayscale.jpg").await;
    let id = app.published_gallery(&owner, model, "reapproved", "public", &[&a, &b]).await;
    let public = format!("/v1/public/galleries/{id}");
    let review_url = format!("/v1/models/{model}/media/{a}/review");
    let review = |decision: Value| app.gallery_call(Method::POST, &review_url, Some(&admin), Some(decision), None);
    let document_until = |want: Vec<String>, what: &'static str| {
        let app = &app;
        let public = public.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let document: Value =
                    app.gallery_call(Method::GET, &public, None, None, None).await.json().await.unwrap();
                if shown(&document) == want {
                    return document;
                }
                assert!(tokio::time::Instant::now() < deadline, "{what}: the public document still shows {document}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    let rejected =
        review(json!({"decision": "reject", "violations": [{"code": "no_release", "severity": "high"}]})).await;
    assert_eq!(rejected.status(), 200, "{}", rejected.text().await.unwrap());
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["galleries"], json!([{"gallery_id": id, "published": false}]), "still a member");
    document_until(vec![b.clone()], "rejection").await;

    // A change of mind: the same gallery is republished with it, where it was.
    let approved = review(json!({"decision": "approve"})).await;
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    document_until(vec![a.clone(), b.clone()], "re-approval").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record: Value = app.get_media(&owner, model, &a).await.json().await.unwrap();
        if record["galleries"] == json!([{"gallery_id": id, "published": true}]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the link is not marked published: {record}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
