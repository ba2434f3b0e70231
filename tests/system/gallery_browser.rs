//! The public gallery page in headless Chromium, at a phone's and a desktop's width: every image
//! loads, the rendition the browser picks from `srcset` fits the width it is shown at (sharp,
//! not needlessly large), and the page reports no error; a page on another origin reads the JSON
//! document with fetch() (its ETag, then a 304). A screenshot of each is written to
//! `PHOENIX_SCREENSHOTS` when set (docs/screenshots holds the committed ones), else to a
//! temporary folder.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cdp::{Browser, DESKTOP, PHONE, Viewport};
use crate::helpers::{TestApp, spawn_app};

/// Scrolls every image into view (they load lazily), waits until each has loaded or failed, and
/// answers what each shows: the URL picked, its natural width, the CSS width it is shown at, and
/// the candidates it was picked from.
const INSPECT: &str = r#"(async () => {
  const imgs = [...document.querySelectorAll("main img")];
  for (const img of imgs) {
    img.scrollIntoView({ block: "center" });
    await new Promise((r) => setTimeout(r, 30));
  }
  const settled = (img) => img.complete && img.currentSrc
    ? Promise.resolve()
    : new Promise((r) => { img.addEventListener("load", r, { once: true }); img.addEventListener("error", r, { once: true }); });
  await Promise.race([Promise.all(imgs.map(settled)), new Promise((r) => setTimeout(r, 20000))]);
  // Decoded and painted before the screenshot (the page decodes asynchronously).
  await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
  window.scrollTo(0, 0);
  await new Promise((r) => setTimeout(r, 500));
  const candidates = (img) => {
    const sets = [...img.closest("picture").querySelectorAll("source"), img].map((e) => e.getAttribute("srcset") || "");
    return sets.join(",").split(",").map((c) => c.trim()).filter(Boolean).map((c) => {
      const [url, w] = c.split(/\s+/);
      return { url: new URL(url, location.href).href, width: parseInt(w, 10) };
    });
  };
  return imgs.map((img) => ({
    picked: img.currentSrc,
    natural: img.naturalWidth,
    shown: img.getBoundingClientRect().width,
    alt: img.alt,
    candidates: candidates(img),
  }));
})()"#;

fn screenshots_dir(scratch: &std::path::Path) -> PathBuf {
    std::env::var_os("PHOENIX_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| scratch.to_path_buf())
}

/// Opens `url` at `viewport` and checks every image and the page's errors; writes the screenshot
/// as `{name}-{viewport}.png`.
pub(crate) async fn check_page(
    browser: &mut Browser,
    url: &str,
    viewport: Viewport,
    shots: &std::path::Path,
    name: &str,
) {
    let tab = browser.tab(viewport).await;
    browser.navigate(&tab, url).await;
    let images = browser.evaluate(&tab, INSPECT).await;
    let images = images.as_array().expect("the images").clone();
    assert!(!images.is_empty(), "no images on {url}");
    for image in &images {
        let (picked, natural, shown) = (
            image["picked"].as_str().unwrap_or_default(),
            image["natural"].as_u64().unwrap_or(0),
            image["shown"].as_f64().unwrap_or(0.0),
        );
        assert!(natural > 0, "{name} at {}: an image did not load: {image}", viewport.name);
        assert!(!image["alt"].as_str().unwrap_or_default().is_empty(), "an image without alt text: {image}");
        let candidates = image["candidates"].as_array().unwrap();
        let widths: Vec<u64> = candidates.iter().filter_map(|c| c["width"].as_u64()).collect();
        let chosen =
            candidates.iter().find(|c| c["url"] == picked).and_then(|c| c["width"].as_u64()).unwrap_or_else(|| {
                panic!("{name} at {}: {picked} is none of its srcset candidates: {image}", viewport.name)
            });
        let needed = shown * viewport.scale;
        let largest = *widths.iter().max().unwrap();
        let smallest = *widths.iter().min().unwrap();
        // Sharp: at least what the shown width needs at this pixel ratio (or the largest there is) ...
        assert!(
            chosen as f64 >= needed.min(largest as f64) * 0.9,
            "{name} at {}: picked {chosen} px for {shown:.0} CSS px × {}: too small ({widths:?})",
            viewport.name,
            viewport.scale
        );
        // ... and not needlessly large: no candidate between what is needed and what was picked.
        let better = widths.iter().any(|w| (*w as f64) >= needed && *w < chosen && chosen > smallest);
        assert!(
            !better || chosen as f64 <= needed * 2.5,
            "{name} at {}: picked {chosen} px for {shown:.0} CSS px × {} ({widths:?})",
            viewport.name,
            viewport.scale
        );
    }
    let errors = browser.errors(&tab);
    assert!(errors.is_empty(), "{name} at {} reported errors:\n{}", viewport.name, errors.join("\n"));
    let shot = browser.screenshot(&tab).await;
    std::fs::create_dir_all(shots).unwrap();
    std::fs::write(shots.join(format!("{name}-{}.png", viewport.name)), shot).unwrap();
}

/// A published public gallery of four real photos (one in portrait orientation from EXIF).
pub(crate) async fn published_gallery(app: &TestApp, model: &str, slug: &str, visibility: &str) -> Value {
    let owner = app.model_token(model);
    let mut ids = Vec::new();
    for photo in ["portrait-6mp.jpg", "exif-orientation6-gps.jpg", "grayscale.jpg", "portrait-6mp.jpg"] {
        ids.push(app.approved_photo(&owner, model, photo).await);
    }
    let created = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries"),
            Some(&owner),
            Some(json!({"title": "Spring looks", "slug": slug, "visibility": visibility,
                        "description": "Four photos, shown as a browser sees them."})),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    let gallery: Value = created.json().await.unwrap();
    let path = format!("/v1/models/{model}/galleries/{}", gallery["gallery_id"].as_str().unwrap());
    let etag = format!("\"{}\"", gallery["version"]);
    let filled = app
        .gallery_call(
            Method::PATCH,
            &path,
            Some(&owner),
            Some(json!({"operations": [{"op": "insert_items", "media_ids": ids}]})),
            Some(&etag),
        )
        .await;
    assert_eq!(filled.status(), 200, "{}", filled.text().await.unwrap());
    let published = app.gallery_call(Method::POST, &format!("{path}/publish"), Some(&owner), None, None).await;
    assert_eq!(published.status(), 200, "{}", published.text().await.unwrap());
    gallery
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_loads_fitting_images_without_errors_on_a_phone_and_a_desktop() {
    let app = spawn_app().await;
    let gallery = published_gallery(&app, "browser-gallery", "spring-looks", "public").await;
    let scratch = tempfile::tempdir().unwrap();
    let shots = screenshots_dir(scratch.path());
    let mut browser = Browser::launch(scratch.path()).await;
    let url = format!("{}/g/spring-looks", app.url);
    for viewport in [PHONE, DESKTOP] {
        check_page(&mut browser, &url, viewport, &shots, "gallery").await;
    }

    // A frontend on another origin reads the JSON document with fetch(), its ETag, and a 304.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frontend = format!("http://{}", listener.local_addr().unwrap());
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>frontend</title><link rel=\"icon\" href=\"data:,\">")
        }),
    );
    tokio::spawn(async move { axum::serve(listener, page).await });
    assert_ne!(frontend, app.url);
    let tab = browser.tab(DESKTOP).await;
    browser.navigate(&tab, &format!("{frontend}/")).await;
    let script = format!(
        r#"(async () => {{
          const url = "{}/v1/public/galleries/{}";
          const first = await fetch(url);
          const body = await first.json();
          const etag = first.headers.get("ETag");
          const again = await fetch(url, {{ headers: {{ "If-None-Match": etag }} }});
          return {{ status: first.status, etag, items: body.item_count, again: again.status }};
        }})()"#,
        app.url,
        gallery["gallery_id"].as_str().unwrap()
    );
    let read = browser.evaluate(&tab, &script).await;
    assert_eq!((read["status"].as_u64(), read["items"].as_u64()), (Some(200), Some(4)), "{read}");
    assert!(read["etag"].as_str().is_some_and(|e| e.starts_with('"')), "the ETag is readable: {read}");
    assert_eq!(read["again"], 304, "{read}");
    assert!(browser.errors(&tab).is_empty(), "{:?}", browser.errors(&tab));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_to_a_private_gallery_opens_in_the_browser_with_fitting_images() {
    let app = spawn_app().await;
    let model = "browser-share";
    let gallery = published_gallery(&app, model, "private-looks", "private").await;
    let owner = app.model_token(model);
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(7))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let made = app
        .gallery_call(
            Method::POST,
            &format!("/v1/models/{model}/galleries/{}/links", gallery["gallery_id"].as_str().unwrap()),
            Some(&owner),
            Some(json!({"expires_at": expires, "recipient": "Casting, Ltd.", "allow_download": true})),
            None,
        )
        .await;
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    let link: Value = made.json().await.unwrap();
    let path = link["url"].as_str().unwrap();
    assert!(path.starts_with("/s/"), "{link}");
    // Private: not on the public routes.
    let public = app.client.get(format!("{}/g/private-looks", app.url)).send().await.unwrap();
    assert_eq!(public.status(), 404);

    let scratch = tempfile::tempdir().unwrap();
    let shots = screenshots_dir(scratch.path());
    let mut browser = Browser::launch(scratch.path()).await;
    for viewport in [PHONE, DESKTOP] {
        check_page(&mut browser, &format!("{}{path}", app.url), viewport, &shots, "share-link").await;
    }
}
