//! A web page on another origin drives the local server in headless Chromium, as a frontend
//! would: create an upload, PUT the photo to the presigned URL, poll until it is processed, read
//! the `ETag` from JavaScript, show a derivative with `crossorigin` on a canvas and `fetch` it,
//! and PATCH the caption with the ETag as `If-Match`. Every step needs the CORS answers API
//! Gateway and the bucket give in AWS.
//!
//! Chromium comes from the system's packages: `infra/test.sh` installs it where missing and sets
//! `PHOENIX_CHROMIUM`. Without it this test fails; it never skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::helpers::{spawn_app, testdata};

const MODEL: &str = "browser-model";
/// The whole flow, Chromium's start included, on a slow machine.
const DEADLINE: Duration = Duration::from_secs(240);

/// The steps the page runs, in order; each must report `ok`.
const STEPS: [&str; 7] = [
    "create upload (POST, JSON, Authorization)",
    "PUT the photo to the presigned URL",
    "poll until pending_review, ETag readable",
    "derivative in <img crossorigin> on a canvas (getImageData)",
    "fetch() a derivative",
    "PATCH the caption with If-Match",
    "the caption is saved",
];

/// The page: reads the API's URL, a token and the model from its query string, runs the steps
/// and POSTs `{steps: {name: "ok" | "failed: …"}, log: […]}` back to its own origin.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>running</title></head>
<body><pre id="log"></pre>
<script>
const STEPS = __STEPS__;
const q = new URLSearchParams(location.search);
const api = q.get("api"), token = q.get("token"), model = q.get("model");
const auth = { "Authorization": "Bearer " + token };
const results = { steps: {}, log: [] };
const log = (line) => { results.log.push(line); document.getElementById("log").textContent += line + "\n"; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let next = 0;
async function step(f) {
  const name = STEPS[next++];
  try {
    const value = await f();
    results.steps[name] = "ok";
    log(name + ": ok" + (typeof value === "string" ? " (" + value + ")" : ""));
    return value;
  } catch (e) {
    results.steps[name] = "failed: " + e;
    throw e;
  }
}
async function expectStatus(response, status, what) {
  if (response.status !== status) {
    throw what + " answered " + response.status + ": " + (await response.text()).slice(0, 500);
  }
}
async function run() {
  const photo = new Uint8Array(await (await fetch("/photo.jpg")).arrayBuffer());
  log("photo: " + photo.length + " bytes");
  const media = api + "/v1/models/" + model + "/media";

  const created = await step(async () => {
    const r = await fetch(media + "/uploads", {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ filename: "portrait.jpg", content_type: "image/jpeg", bytes: photo.length }),
    });
    await expectStatus(r, 201, "POST uploads");
    const body = await r.json();
    log("media " + body.media_id + ", Location: " + r.headers.get("Location"));
    return body;
  });
  const id = created.media_id;

  await step(async () => {
    const headers = {};
    for (const [name, value] of Object.entries(created.upload.headers)) {
      // The browser sets Content-Length itself (and refuses to be told).
      if (name.toLowerCase() !== "content-length") headers[name] = value;
    }
    const r = await fetch(created.upload.url, { method: created.upload.method, headers, body: photo });
    await expectStatus(r, 200, "PUT");
    const etag = r.headers.get("ETag");
    if (!etag) throw "the PUT's ETag is not readable from JavaScript";
    return "ETag " + etag;
  });

  const [record, etag] = await step(async () => {
    for (let i = 0; i < 600; i++) {
      const r = await fetch(media + "/" + id, { headers: auth });
      await expectStatus(r, 200, "GET media");
      const record = await r.json();
      if (record.status === "pending_review") {
        const etag = r.headers.get("ETag");
        if (!etag) throw "the media's ETag is not readable from JavaScript";
        return [record, etag];
      }
      if (record.status !== "uploading" && record.status !== "processing") throw "status " + record.status;
      await sleep(200);
    }
    throw "still not processed";
  });
  log("ETag: " + etag + ", " + record.derivatives.length + " derivatives");
  const derivative = record.derivatives.find((d) => d.format === "jpeg") || record.derivatives[0];

  await step(() => new Promise((resolve, reject) => {
    const img = new Image();
    img.crossOrigin = "anonymous";
    img.onload = () => {
      try {
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(img, 0, 0);
        const pixel = context.getImageData(0, 0, 1, 1).data;
        resolve(img.naturalWidth + "x" + img.naturalHeight + ", first pixel " + Array.from(pixel).join(","));
      } catch (e) {
        reject("canvas: " + e);
      }
    };
    img.onerror = () => reject("the derivative did not load with crossorigin (no CORS answer?): " + derivative.url);
    img.src = derivative.url;
    document.body.appendChild(img);
  }));

  await step(async () => {
    const r = await fetch(derivative.url);
    await expectStatus(r, 200, "GET derivative");
    const blob = await r.blob();
    return blob.size + " bytes of " + blob.type + ", ETag " + r.headers.get("ETag");
  });

  const patched = await step(async () => {
    const r = await fetch(media + "/" + id, {
      method: "PATCH",
      headers: { ...auth, "Content-Type": "application/json", "If-Match": etag },
      body: JSON.stringify({ caption: "From the browser" }),
    });
    await expectStatus(r, 200, "PATCH");
    return r.json();
  });

  await step(async () => {
    if (patched.caption !== "From the browser") throw "caption is " + JSON.stringify(patched.caption);
  });
}
run()
  .catch((e) => log("stopped: " + e))
  .finally(async () => {
    document.title = "done";
    await fetch("/report", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(results) });
  });
</script></body></html>
"#;

/// Chromium from `PHOENIX_CHROMIUM`, else from the `PATH`; a failure that says how to get it.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("PHOENIX_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "PHOENIX_CHROMIUM={} does not exist; run infra/test.sh", path.display());
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser test needs Chromium and found none: run infra/test.sh (it installs the `chromium` \
                 package and sets PHOENIX_CHROMIUM), or `sudo apt-get install -y chromium`"
            )
        })
}

#[derive(Clone)]
struct PageState {
    photo: Vec<u8>,
    reports: mpsc::Sender<Value>,
}

/// The page's own origin: another port of 127.0.0.1, serving the page, the photo and the report.
async fn serve_page(photo: Vec<u8>) -> (String, mpsc::Receiver<Value>) {
    let (reports, received) = mpsc::channel(1);
    let page = PAGE.replace("__STEPS__", &serde_json::to_string(&STEPS).unwrap());
    let router = Router::new()
        .route("/page.html", get(move || async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page) }))
        .route(
            "/photo.jpg",
            get(|State(state): State<PageState>| async move { ([(header::CONTENT_TYPE, "image/jpeg")], state.photo) }),
        )
        .route(
            "/report",
            post(|State(state): State<PageState>, axum::Json(report): axum::Json<Value>| async move {
                let _ = state.reports.send(report).await;
            }),
        )
        .with_state(PageState { photo, reports });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// Headless Chromium on `url`, as root needs it (`--no-sandbox`), with a profile of its own.
fn start_chromium(url: &str, profile: &std::path::Path) -> Child {
    start_chromium_with(&[], url, profile)
}

/// [`start_chromium`] with `extra` arguments (a DevTools port, say).
pub(crate) fn start_chromium_with(extra: &[&str], url: &str, profile: &std::path::Path) -> Child {
    let chromium = chromium();
    Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.join("profile").display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(profile.join("chromium.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}; run infra/test.sh", chromium.display()))
}

/// Asks Chromium to quit (SIGTERM, so it ends its own helper processes), then kills it.
pub(crate) fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    for _ in 0..50 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_uploads_shows_and_edits_a_photo() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let photo = std::fs::read(testdata("photos/portrait-6mp.jpg")).expect("the sample photo");
    let (page_origin, mut reports) = serve_page(photo).await;
    assert_ne!(page_origin, app.url, "the page must be on another origin");
    let url = format!("{page_origin}/page.html?api={}&token={token}&model={MODEL}", app.url);

    let scratch = tempfile::tempdir().unwrap();
    let child = start_chromium(&url, scratch.path());
    let report = tokio::time::timeout(DEADLINE, reports.recv()).await;
    stop(child);
    let chromium_log = std::fs::read_to_string(scratch.path().join("chromium.log")).unwrap_or_default();
    let report = match report {
        Ok(Some(report)) => report,
        _ => panic!(
            "the page reported nothing within {DEADLINE:?}; Chromium's output:\n{}",
            chromium_log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    };

    let log = report["log"].as_array().map(|lines| {
        lines.iter().map(|l| format!("  {}", l.as_str().unwrap_or_default())).collect::<Vec<_>>().join("\n")
    });
    let log = log.unwrap_or_default();
    for name in STEPS {
        let outcome = report["steps"][name].as_str().unwrap_or("not reached");
        assert_eq!(outcome, "ok", "step {name:?} of the page on {page_origin} (API on {}); its log:\n{log}", app.url);
    }
    println!("the page's log:\n{log}");
}
