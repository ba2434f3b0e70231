//! The public gallery routes under load (ignored: `bench/galleries-load.sh` runs it in release and
//! prints the table for docs/performance.md). A 200-item gallery, published, then read by 64
//! concurrent clients: the first read after a publish (the document loaded and the page
//! rendered), the served stored document, and revalidations answered 304.

use std::time::{Duration, Instant};

use phoenix_domain::{MediaId, MediaRecord, MediaStatus, ModelId};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const ITEMS: usize = 200;
const CLIENTS: usize = 64;
const WINDOW: Duration = Duration::from_secs(5);
const COLD_ROUNDS: usize = 40;

/// 200 approved copies of one really processed photo (its derivatives, placeholder and colour),
/// straight into the store: 200 uploads would measure the image pipeline.
async fn seed(app: &TestApp, model: &str) -> Vec<String> {
    let owner = app.model_token(model);
    let processed = app.processed_photo(&owner, model, "portrait-6mp.jpg").await;
    let model_id = ModelId::parse(model).unwrap();
    let media = MediaId::parse(processed["media_id"].as_str().unwrap()).unwrap();
    let template: MediaRecord = app.system.metadata.get_media(&model_id, &media).await.unwrap();
    let mut ids = Vec::with_capacity(ITEMS);
    for n in 0..ITEMS {
        let mut record = template.clone();
        record.media_id = MediaId::new();
        record.created_at = record.media_id.created_at();
        // Each copy's renditions under its own keys, as a real upload's would be (the same URLs
        // 200 times would compress to nothing).
        let (from, to) = (media.to_string(), record.media_id.to_string());
        for derivative in &mut record.derivatives {
            derivative.key = phoenix_domain::ObjectKey::parse(&derivative.key.as_str().replace(&from, &to)).unwrap();
        }
        record.original_key = phoenix_domain::keys::original(&model_id, &record.media_id);
        record.status = MediaStatus::Approved;
        record.metadata.caption = Some(format!("Look {n}: linen & light"));
        record.metadata.alt_text = Some(format!("A portrait, look {n}"));
        record.version = 1;
        app.system.metadata.create_media(&record).await.unwrap();
        ids.push(record.media_id.to_string());
    }
    ids
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// `CLIENTS` clients reading `path` (with `If-None-Match: etag` and `Accept-Encoding` when given)
/// for `WINDOW`: every latency, and requests per second.
async fn hammer(
    app: &TestApp,
    path: &str,
    etag: Option<&str>,
    encoding: Option<&'static str>,
    expected: u16,
) -> (Vec<Duration>, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, etag) = (app.client.clone(), format!("{}{path}", app.url), etag.map(str::to_owned));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < WINDOW {
                    let sent = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(etag) = &etag {
                        request = request.header("If-None-Match", etag);
                    }
                    if let Some(encoding) = encoding {
                        request = request.header("Accept-Encoding", encoding);
                    }
                    let mut response = request.send().await.unwrap();
                    assert_eq!(response.status().as_u16(), expected);
                    // Read the whole body, as a load generator does, without gathering it.
                    while response.chunk().await.unwrap().is_some() {}
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (all, rate)
}

fn row(what: &str, latencies: &[Duration], rate: Option<f64>) {
    let rate = rate.map_or_else(|| "—".to_owned(), |r| format!("{r:.0}"));
    println!(
        "| {what} | {} | {:.2} | {:.2} | {rate} |",
        latencies.len(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/galleries-load.sh runs it in release"]
async fn public_reads() {
    let app = spawn_app().await;
    let model = "bench-gallery";
    let owner = app.model_token(model);
    let ids = seed(&app, model).await;

    let created = call(
        &app,
        reqwest::Method::POST,
        &format!("/v1/models/{model}/galleries"),
        &owner,
        Some(json!({"title": "Two hundred looks", "slug": "bench-200", "visibility": "public"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let gallery: Value = created.json().await.unwrap();
    let base = format!("/v1/models/{model}/galleries/{}", gallery["gallery_id"].as_str().unwrap());
    let filled = app
        .client
        .patch(format!("{}{base}", app.url))
        .bearer_auth(&owner)
        .header("If-Match", format!("\"{}\"", gallery["version"]))
        .json(&json!({"operations": [{"op": "insert_items", "media_ids": ids}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(filled.status(), 200, "{}", filled.text().await.unwrap());

    // The first read of each new version: the pointer, the document, and (for the page) a render.
    let public_json = format!("/v1/public/galleries/{}", gallery["gallery_id"].as_str().unwrap());
    let (mut cold_html, mut cold_json) = (Vec::new(), Vec::new());
    for _ in 0..COLD_ROUNDS {
        let published = call(&app, reqwest::Method::POST, &format!("{base}/publish"), &owner, None).await;
        assert_eq!(published.status(), 200);
        for (path, into) in [("/g/bench-200", &mut cold_html), (public_json.as_str(), &mut cold_json)] {
            let sent = Instant::now();
            let response = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            into.push(sent.elapsed());
        }
    }
    cold_html.sort();
    cold_json.sort();

    let page = app.client.get(format!("{}/g/bench-200", app.url)).send().await.unwrap();
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let page_bytes = page.bytes().await.unwrap().len();
    let document = app.client.get(format!("{}{public_json}", app.url)).send().await.unwrap();
    let document_etag = document.headers()["etag"].to_str().unwrap().to_owned();
    let document_bytes = document.bytes().await.unwrap().len();

    let (served_html, html_rate) = hammer(&app, "/g/bench-200", None, None, 200).await;
    let (served_json, json_rate) = hammer(&app, &public_json, None, None, 200).await;
    let (served_html_br, html_br_rate) = hammer(&app, "/g/bench-200", None, Some("gzip, deflate, br"), 200).await;
    let (served_json_br, json_br_rate) = hammer(&app, &public_json, None, Some("gzip, deflate, br"), 200).await;
    let (revalidated, not_modified_rate) = hammer(&app, "/g/bench-200", Some(&etag), None, 304).await;
    let (revalidated_json, json_304_rate) = hammer(&app, &public_json, Some(&document_etag), None, 304).await;
    let compressed = app
        .client
        .get(format!("{}/g/bench-200", app.url))
        .header("Accept-Encoding", "br")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();

    println!(
        "A {ITEMS}-item gallery: the page is {page_bytes} bytes ({compressed} with brotli), the JSON document {document_bytes} bytes."
    );
    println!("| request | requests | p50 ms | p99 ms | requests/s ({CLIENTS} clients) |");
    println!("|---|---|---|---|---|");
    row("first read after a publish: page (document loaded, page rendered)", &cold_html, None);
    row("first read after a publish: JSON (document loaded)", &cold_json, None);
    row("served stored page (`GET /g/{slug}`)", &served_html, Some(html_rate));
    row("served stored document (`GET /v1/public/galleries/{id}`)", &served_json, Some(json_rate));
    row("served stored page, brotli (`Accept-Encoding: gzip, deflate, br`)", &served_html_br, Some(html_br_rate));
    row("served stored document, brotli", &served_json_br, Some(json_br_rate));
    row("revalidation, page (`If-None-Match` → 304)", &revalidated, Some(not_modified_rate));
    row("revalidation, JSON (`If-None-Match` → 304)", &revalidated_json, Some(json_304_rate));
}
