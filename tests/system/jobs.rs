//! Background image jobs on the local stack, black-box over HTTP with real photos: edits as new
//! versions (crop, rotate, flip, watermark), versions and restore, idempotency, retries with
//! backoff, dead-lettering and redrive, permanent failures, cancel and retry, lanes and priority,
//! fan-out with progress, uploads never starved by bulk work, and the lifecycle events.

use std::time::Duration;

use image::{GenericImageView, RgbaImage};
use serde_json::{Value, json};

use crate::helpers::{TestApp, derivative_url, error_code, spawn_app};

const MODEL: &str = "model-jobs";

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("a derivative decodes")
}

fn version_of(job: &Value) -> u64 {
    job["result"]["image_version"].as_u64().unwrap_or_else(|| panic!("no image_version in {job}"))
}

async fn media(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get_media(token, MODEL, id).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Mean absolute difference per channel between two images of one size (0..255).
fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_make_new_versions_and_one_call_restores_an_old_one() {
    // A second in the trash, so the purge at the end comes soon after the delete.
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(data.path(), phoenix_domain::Limits::default());
    config.api.trash.grace = Duration::from_secs(1);
    let app = crate::helpers::spawn_with_config(config).await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "adobe-rgb.jpg").await;
    let id = record["media_id"].as_str().unwrap().to_owned();
    let (w, h) = (record["source"]["width"].as_u64().unwrap(), record["source"]["height"].as_u64().unwrap());
    assert_eq!((w, h), (2112, 1584));
    let target = json!({"model_id": MODEL, "media_id": id});

    // Rotation: the dimensions swap, in the source and in every width-bound derivative.
    let job = app
        .submit_ok(
            &token,
            &json!({"operation": "rotate", "params": {"degrees": 90}, "target": target, "priority": "high"}),
        )
        .await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["priority"], "high");
    let job = app.wait_job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(version_of(&job), 2);
    let rotated = media(&app, &token, &id).await;
    assert_eq!(rotated["image_version"], 2);
    assert_eq!((rotated["source"]["width"].as_u64().unwrap(), rotated["source"]["height"].as_u64().unwrap()), (h, w));
    let medium = decode(&app.fetch(&derivative_url(&rotated, "medium", "jpeg")).await);
    assert_eq!(medium.dimensions(), (640, (640 * w / h) as u32), "a portrait now");
    // The job's result links the new version's derivatives.
    let linked = job["result"]["derivatives"].as_array().unwrap();
    assert!(linked.iter().any(|d| d["preset"] == "medium" && d["url"].as_str().is_some_and(|u| u.starts_with("http"))));

    // A crop of a rectangle in the displayed (now portrait) image's pixels.
    let job = app
        .submit_ok(&token, &json!({"operation": "crop", "params": {"rect": {"x": 100, "y": 200, "width": 800, "height": 600}}, "target": target}))
        .await;
    let job = app.wait_job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let cropped = media(&app, &token, &id).await;
    assert_eq!(cropped["image_version"], 3);
    assert_eq!((cropped["source"]["width"].as_u64(), cropped["source"]["height"].as_u64()), (Some(800), Some(600)));
    assert_eq!(decode(&app.fetch(&derivative_url(&cropped, "medium", "jpeg")).await).dimensions(), (640, 480));

    // A flip mirrors the pixels: the new derivative is the old one mirrored.
    let before = decode(&app.fetch(&derivative_url(&cropped, "medium", "jpeg")).await).to_rgb8();
    let job =
        app.submit_ok(&token, &json!({"operation": "flip", "params": {"axis": "horizontal"}, "target": target})).await;
    let job = app.wait_job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let flipped = media(&app, &token, &id).await;
    let after = decode(&app.fetch(&derivative_url(&flipped, "medium", "jpeg")).await).to_rgb8();
    let mirrored = image::imageops::flip_horizontal(&before);
    let (same, unflipped) = (mean_difference(&after, &mirrored), mean_difference(&after, &before));
    assert!(same < 3.0 && unflipped > 3.0 * same, "flipped vs mirrored {same:.2}, vs unflipped {unflipped:.2}");

    // Every version is listed, newest first, and the first comes back as a new version.
    let versions: Value = app
        .client
        .get(format!("{}/v1/models/{MODEL}/media/{id}/versions", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let numbers: Vec<u64> =
        versions["items"].as_array().unwrap().iter().map(|v| v["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [4, 3, 2, 1], "{versions}");
    assert_eq!(versions["items"][0]["current"], true);
    assert_eq!(versions["items"][1]["origin"]["operation"], "crop");
    let restored = app
        .client
        .post(format!("{}/v1/models/{MODEL}/media/{id}/versions/1/restore", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200, "{}", restored.text().await.unwrap());
    let restored = media(&app, &token, &id).await;
    assert_eq!(restored["image_version"], 5);
    assert_eq!((restored["source"]["width"].as_u64(), restored["source"]["height"].as_u64()), (Some(w), Some(h)));
    assert_eq!(restored["derivatives"], record["derivatives"], "version 1's derivatives, as they were");
    // The original was never touched: the first version's objects still serve.
    assert_eq!(
        app.fetch(&derivative_url(&restored, "small", "webp")).await,
        app.fetch(&derivative_url(&record, "small", "webp")).await
    );
    let missing = app
        .client
        .post(format!("{}/v1/models/{MODEL}/media/{id}/versions/42/restore", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 404).await, "not_found");

    // Deleting the media (once its second in the trash is over) removes every version's objects:
    // sources and derivatives.
    let (model, media_id) =
        (phoenix_domain::ModelId::parse(MODEL).unwrap(), phoenix_domain::MediaId::parse(&id).unwrap());
    let prefixes = [
        phoenix_domain::keys::versions_prefix(&model, &media_id),
        phoenix_domain::keys::derived_prefix(&model, &media_id),
    ];
    let objects = app.system.objects.clone();
    let count = |prefix: String| {
        let objects = objects.clone();
        async move { objects.list(&prefix, None, 1000).await.unwrap().keys.len() }
    };
    assert_eq!(count(prefixes[0].clone()).await, 3, "the sources of the crop, rotation and flip");
    assert!(count(prefixes[1].clone()).await >= 4 * 14);
    let deleted = app
        .client
        .delete(format!("{}/v1/models/{MODEL}/media/{id}", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(prefixes[0].clone()).await + count(prefixes[1].clone()).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the versions' objects were not purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        app.system.objects.head(&phoenix_domain::keys::original(&model, &media_id)).await.is_err(),
        "the original too"
    );
}

/// A logo: an opaque red square with a transparent border, as a PNG with alpha.
fn logo_png() -> (Vec<u8>, RgbaImage) {
    let logo = RgbaImage::from_fn(200, 100, |x, y| {
        if (10..190).contains(&x) && (10..90).contains(&y) {
            image::Rgba([230, 20, 20, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(logo.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    (png, logo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_is_drawn_where_its_profile_says_and_nowhere_else() {
    use base64::Engine;
    let app = spawn_app().await;
    let (admin, token) = (app.admin_token(), app.model_token(MODEL));
    let record = app.processed_photo(&token, MODEL, "adobe-rgb.jpg").await;
    let id = record["media_id"].as_str().unwrap().to_owned();
    let (png, logo) = logo_png();
    let profile = json!({
        "logo_png_base64": base64::engine::general_purpose::STANDARD.encode(&png),
        "position": "bottom_right", "margin": 0.02, "scale": 0.25, "opacity": 1.0, "presets": ["large"],
    });
    let put = |token: String, body: Value| {
        let app = &app;
        async move {
            app.client
                .put(format!("{}/v1/watermarks/agency", app.url))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(put(token.clone(), profile.clone()).await.status(), 403, "profiles are the agency's (admins)");
    let saved = put(admin.clone(), profile.clone()).await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());

    let job = app
        .submit_ok(&token, &json!({"operation": "watermark", "params": {"profile": "agency"}, "target": {"model_id": MODEL, "media_id": id}}))
        .await;
    let job = app.wait_job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let marked = media(&app, &token, &id).await;
    assert_eq!(marked["image_version"], 2);

    // `large` (webp: near-lossless enough to compare) carries the logo in its place...
    let before = decode(&app.fetch(&derivative_url(&record, "large", "jpeg")).await).to_rgb8();
    let after = decode(&app.fetch(&derivative_url(&marked, "large", "jpeg")).await).to_rgb8();
    assert_eq!(before.dimensions(), after.dimensions());
    let (iw, ih) = after.dimensions();
    let mark = phoenix_imaging::Watermark {
        logo: std::sync::Arc::new(logo.clone()),
        position: phoenix_imaging::WatermarkPosition::BottomRight,
        margin: 0.02,
        scale: 0.25,
        opacity: 1.0,
        presets: vec!["large".into()],
    };
    let (x, y, w, h) = phoenix_imaging::placement(iw, ih, logo.width(), logo.height(), &mark);
    // The logo's opaque middle, well inside its border, is red.
    let (mut red, mut checked) = (0, 0);
    for py in (y + h / 5)..(y + h * 4 / 5) {
        for px in (x + w / 10)..(x + w * 9 / 10) {
            let p = after.get_pixel(px, py).0;
            checked += 1;
            if p[0] > 180 && p[1] < 80 && p[2] < 80 {
                red += 1;
            }
        }
    }
    assert!(red as f64 > 0.95 * checked as f64, "{red} of {checked} pixels of the logo's place are red");
    // ...and nowhere else: outside its box (with a small fringe for resampling and JPEG), the
    // image is the unmarked one.
    let fringe = 8;
    let (mut diff, mut n) = (0u64, 0u64);
    for (px, py, p) in after.enumerate_pixels() {
        let near = px + fringe >= x && px < x + w + fringe && py + fringe >= y && py < y + h + fringe;
        if !near {
            let q = before.get_pixel(px, py).0;
            diff += p.0.iter().zip(q).map(|(a, b)| u64::from(a.abs_diff(b))).sum::<u64>();
            n += 3;
        }
    }
    let mean = diff as f64 / n as f64;
    assert!(mean < 2.5, "outside the logo the image changed by {mean:.2} on average");
    // Presets the profile does not name are the same objects as before.
    assert_eq!(derivative_url(&marked, "small", "webp"), derivative_url(&record, "small", "webp"));
    assert_ne!(derivative_url(&marked, "large", "webp"), derivative_url(&record, "large", "webp"));

    // A logo that is not a PNG with alpha is refused, clearly.
    let mut bad = profile.clone();
    bad["logo_png_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(b"not a png"));
    let refused = put(admin.clone(), bad).await;
    let status = refused.status().as_u16();
    assert!(matches!(status, 400 | 422), "{status}");
    // A job naming an unknown profile is refused at submission.
    let unknown = app
        .submit_job(&token, &json!({"operation": "watermark", "params": {"profile": "nope"}, "target": {"model_id": MODEL, "media_id": id}}), None)
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_same_job_and_refuses_another_body() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let body = json!({"operation": "rotate", "params": {"degrees": 180}, "target": {"model_id": MODEL, "media_id": record["media_id"]}});
    let first = app.submit_job(&token, &body, Some("key-1")).await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    assert_eq!(location, format!("/v1/jobs/{}", first["job_id"].as_str().unwrap()));
    // The same body, formatted differently, is the same request.
    let again = app
        .submit_job(
            &token,
            &json!({"target": body["target"], "params": {"degrees": 180}, "operation": "rotate"}),
            Some("key-1"),
        )
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["job_id"], first["job_id"]);
    let other = app
        .submit_job(
            &token,
            &json!({"operation": "rotate", "params": {"degrees": 90}, "target": body["target"]}),
            Some("key-1"),
        )
        .await;
    assert_eq!(error_code(other, 422).await, "idempotency_key_reused");
    let done = app.wait_job(&token, first["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(
        media(&app, &token, record["media_id"].as_str().unwrap()).await["image_version"],
        2,
        "one job, one version"
    );
    // Another key is another job.
    let second = app.submit_job(&token, &body, Some("key-2")).await;
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["job_id"], first["job_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_growing_backoff_then_succeed() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let body = json!({
        "operation": "regenerate", "params": {"presets": ["small"]},
        "target": {"model_id": MODEL, "media_id": record["media_id"]},
        "fault": {"transient_failures": 2},
    });
    let job = app.submit_ok(&token, &body).await;
    let job = app.wait_job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "N + 1 attempts: {job}");
    let caps: Vec<u64> = attempts[..2].iter().map(|a| a["backoff_cap_ms"].as_u64().unwrap()).collect();
    assert_eq!(caps, [200, 400], "the backoff's ceiling doubles");
    for a in &attempts[..2] {
        assert!(a["error"].as_str().unwrap().contains("injected transient failure"), "{a}");
        let (finished, retry) = (ts(&a["finished_at"]), ts(&a["retry_at"]));
        let delay = (retry - finished).whole_milliseconds();
        assert!((0..=i128::from(a["backoff_cap_ms"].as_u64().unwrap()) + 1).contains(&delay), "delay {delay} ms: {a}");
    }
    // Each retry started after its backoff.
    for pair in attempts.windows(2) {
        assert!(ts(&pair[1]["started_at"]) >= ts(&pair[0]["retry_at"]) - time::Duration::milliseconds(5), "{pair:?}");
    }
    assert!(attempts[2]["error"].is_null());
    // Every step went to the event bus.
    let kinds: Vec<String> = app
        .system
        .events
        .events()
        .iter()
        .filter(|e| e.detail["job_id"] == job["job_id"])
        .map(|e| e.detail_type.clone())
        .collect();
    assert_eq!(kinds, ["job.queued", "job.started", "job.started", "job.started", "job.succeeded"]);
}

fn ts(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

async fn stats(app: &TestApp) -> Value {
    let response =
        app.client.get(format!("{}/v1/queues/stats", app.url)).bearer_auth(app.admin_token()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn lane<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["lanes"].as_array().unwrap().iter().find(|l| l["lane"] == name).unwrap()
}

async fn lane_control(app: &TestApp, lane: &str, action: &str) -> Value {
    let response = app
        .client
        .post(format!("{}/v1/queues/{lane}/{action}", app.url))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_is_dead_lettered_failed_and_redriven() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let body = json!({
        "operation": "regenerate", "target": {"model_id": MODEL, "media_id": record["media_id"]},
        "fault": {"transient_failures": u32::MAX},
    });
    let job = app.submit_ok(&token, &body).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let job = app.wait_job(&token, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "attempts_exhausted");
    assert!(job["error"]["message"].as_str().unwrap().contains("injected transient failure 3"), "{job}");
    assert_eq!(job["attempts"].as_array().unwrap().len(), 3);
    // The message reaches the lane's dead-letter queue.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lane(&stats(&app).await, "normal")["dead_letter"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "not dead-lettered: {}", stats(&app).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = stats(&app).await;
    assert!(s["jobs"]["failed"].as_u64().unwrap() >= 1, "{s}");
    // Redrive moves it back: the job runs again (and, still failing, ends in the DLQ again).
    let moved = lane_control(&app, "normal", "redrive").await;
    assert_eq!(moved["moved"], 1, "{moved}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = app.job(&token, &id).await;
        if job["attempts"].as_array().unwrap().len() == 6 && job["status"] == "failed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the redriven job did not run again: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Models may not touch the lanes.
    let refused =
        app.client.post(format!("{}/v1/queues/normal/redrive", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_fails_at_once_and_a_retry_runs_it_again() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let body = json!({
        "operation": "rotate", "params": {"degrees": 90},
        "target": {"model_id": MODEL, "media_id": record["media_id"]}, "fault": {"permanent": true},
    });
    let job = app.submit_ok(&token, &body).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let job = app.wait_job(&token, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"].as_array().unwrap().len(), 1, "one attempt: {job}");
    assert_eq!(job["error"]["code"], "invalid_params");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lane(&stats(&app).await, "normal")["dead_letter"], 0, "a judged failure is not dead-lettered");

    // A crop outside the image is a permanent failure the worker finds, with the image's size.
    let outside = app
        .submit_ok(&token, &json!({"operation": "crop", "params": {"rect": {"x": 5000, "y": 0, "width": 10, "height": 10}}, "target": body["target"]}))
        .await;
    let outside = app.wait_job(&token, outside["job_id"].as_str().unwrap()).await;
    assert_eq!(outside["status"], "failed");
    assert_eq!(outside["error"]["code"], "invalid_params");
    assert!(outside["error"]["message"].as_str().unwrap().contains("2411"), "{outside}");

    // A retry re-submits the failed job (still faulty, it fails again, with its history kept).
    let retried = app.client.post(format!("{}/v1/jobs/{id}/retry", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(retried.status(), 202);
    let job = app.wait_job(&token, &id).await;
    assert_eq!(job["attempts"].as_array().unwrap().len(), 2, "{job}");
    let not_failed = app
        .client
        .post(format!("{}/v1/jobs/{}/retry", app.url, outside["job_id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_failed.status(), 202, "a failed job can be retried");
    let done = app
        .submit_ok(&token, &json!({"operation": "rotate", "params": {"degrees": 90}, "target": body["target"]}))
        .await;
    let done = app.wait_job(&token, done["job_id"].as_str().unwrap()).await;
    let again = app
        .client
        .post(format!("{}/v1/jobs/{}/retry", app.url, done["job_id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again, 409).await, "invalid_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_job_behind_a_thousand_normal_ones_starts_first_and_paused_lanes_keep_their_jobs() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let target = json!({"model_id": MODEL, "media_id": record["media_id"]});
    lane_control(&app, "normal", "pause").await;
    let mut normal = Vec::new();
    for _ in 0..1000 {
        // Each holds its slot a little while, as real work would.
        let job = app
            .submit_ok(&token, &json!({"operation": "regenerate", "target": target, "fault": {"stall_ms": 10}}))
            .await;
        normal.push(job["job_id"].as_str().unwrap().to_owned());
    }
    // Paused: all 1,000 stay queued, their messages kept.
    let s = stats(&app).await;
    assert_eq!(lane(&s, "normal")["paused"], true);
    assert_eq!(lane(&s, "normal")["visible"], 1000, "{s}");
    assert_eq!(app.job(&token, &normal[0]).await["status"], "queued");
    // A queued job can be cancelled; a cancelled job is not run.
    let cancelled =
        app.client.delete(format!("{}/v1/jobs/{}", app.url, normal[999])).bearer_auth(&token).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);

    let high = app.submit_ok(&token, &json!({"operation": "regenerate", "target": target, "priority": "high"})).await;
    lane_control(&app, "normal", "resume").await;
    let high = app.wait_job(&token, high["job_id"].as_str().unwrap()).await;
    assert_eq!(high["status"], "succeeded");
    let high_started = ts(&high["started_at"]);
    for id in &normal[..999] {
        let job = app.wait_job(&token, id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let mut started_before = 0;
    for id in &normal[..999] {
        if ts(&app.job(&token, id).await["started_at"]) < high_started {
            started_before += 1;
        }
    }
    assert!(started_before <= 10, "{started_before} of the 999 normal jobs started before the high one");
    assert_eq!(app.job(&token, &normal[999]).await["status"], "cancelled");
    assert!(app.job(&token, &normal[999]).await["started_at"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_wide_regenerate_fans_out_reports_progress_and_never_starves_uploads() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let photos = ["adobe-rgb.jpg", "grayscale.jpg", "portrait-6mp.jpg", "cmyk.jpg", "exif-orientation6-gps.jpg"];
    let mut media = Vec::new();
    for photo in photos.iter().cycle().take(12) {
        media.push(app.processed_photo(&token, MODEL, photo).await["media_id"].as_str().unwrap().to_owned());
    }
    // Every preset rebuilt for every media: real work for each child.
    let presets = ["tiny", "small", "medium", "large", "xlarge", "cover-square", "cover-portrait"];
    let parent = app
        .submit_ok(
            &token,
            &json!({"operation": "regenerate", "params": {"presets": presets}, "target": {"model_id": MODEL}}),
        )
        .await;
    let parent_id = parent["job_id"].as_str().unwrap().to_owned();
    // Wait until the fan-out is done and the children are under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = app.job(&token, &parent_id).await;
        if p["progress"]["total"] == 12 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no fan-out: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An upload made now is processed while the regenerate is still running.
    let bytes = std::fs::read(crate::helpers::testdata("photos/portrait-6mp.jpg")).unwrap();
    let fresh = app.upload(&token, MODEL, bytes, "image/jpeg").await;
    let processed = app.wait_processed(&token, MODEL, &fresh).await;
    assert_eq!(processed["status"], "pending_review");
    let during = app.job(&token, &parent_id).await;
    assert_eq!(during["status"], "running", "{during}");
    assert!(during["progress"]["done"].as_u64().unwrap() < 12, "the upload waited for the whole regenerate: {during}");

    let done = app.wait_job(&token, &parent_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], json!({"done": 12, "failed": 0, "total": 12}));
    // The children are jobs of their own, listed with the model's jobs.
    let listed: Value = app
        .client
        .get(format!("{}/v1/jobs?model_id={MODEL}&status=succeeded&limit=100", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let children = listed["items"].as_array().unwrap().iter().filter(|j| j["parent_id"] == parent_id).count();
    assert_eq!(children, 12);
    // Regenerating again finds everything current: 12 children, each "up to date".
    let stale =
        app.submit_ok(&token, &json!({"operation": "regenerate", "target": {"model_id": MODEL, "stale": true}})).await;
    let stale = app.wait_job(&token, stale["job_id"].as_str().unwrap()).await;
    assert_eq!(stale["status"], "succeeded");
    assert_eq!(stale["progress"]["total"], 0, "nothing is stale: {stale}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_see_and_submit_only_their_own_jobs() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let record = app.processed_photo(&token, MODEL, "grayscale.jpg").await;
    let body = json!({"operation": "rotate", "params": {"degrees": 90}, "target": {"model_id": MODEL, "media_id": record["media_id"]}});
    let job = app.submit_ok(&token, &body).await;
    let other = app.model_token("someone-else");
    assert_eq!(error_code(app.submit_job(&other, &body, None).await, 403).await, "forbidden");
    let seen = app
        .client
        .get(format!("{}/v1/jobs/{}", app.url, job["job_id"].as_str().unwrap()))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 404);
    let admin_sees = app.job(&app.admin_token(), job["job_id"].as_str().unwrap()).await;
    assert_eq!(admin_sees["job_id"], job["job_id"]);
    // Bad input is a clear 400 naming the field.
    let bad = app
        .submit_job(&token, &json!({"operation": "rotate", "params": {"degrees": 45}, "target": body["target"]}), None)
        .await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["details"]["field"], "params.degrees", "{bad}");
    // Polling is cheap: the ETag answers 304 until the job changes.
    let id = job["job_id"].as_str().unwrap();
    app.wait_job(&token, id).await;
    let first = app.client.get(format!("{}/v1/jobs/{id}", app.url)).bearer_auth(&token).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(format!("{}/v1/jobs/{id}", app.url))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}
