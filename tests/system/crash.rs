//! Crash safety, black-box: the local server runs as a child process, is killed with SIGKILL
//! while it processes uploads, and is started again on the same data folder; every media must
//! then end `pending_review` within a bounded time — none may stay `processing`.
//!
//! The child is this test binary itself, run again as `system --exact crash::server_process
//! --ignored` with `PHOENIX_CRASH_CHILD` set: that "test" starts the system exactly as the
//! `phoenix-local` binary does (`LocalConfig::from_env()` then `phoenix_local::spawn`), prints its
//! URL and serves until it is killed (or until this process goes away and closes its stdin).
//! Not the `phoenix-local` executable itself: cargo builds a binary for the integration tests of
//! its own package only (`CARGO_BIN_EXE_…`), so from this package `target/…/phoenix-local` may be
//! missing or older than the code under test; this binary is always the code under test, and
//! `cargo test --workspace` (`infra/test.sh`) needs nothing more.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use phoenix_api::{AuthMode, DevClaims};
use serde_json::{Value, json};

use crate::helpers::{exp, testdata};

/// Set in the child's environment: only then does [`server_process`] start a server.
const CHILD: &str = "PHOENIX_CRASH_CHILD";
/// The line the child prints once it listens.
const READY: &str = "phoenix-crash-child listening on ";
const SECRET: &str = "crash-test-secret";
/// The processing lease, and (docs/architecture.md, "Claims and redelivery") the local
/// drain's visibility timeout: how long a message received by the killed server stays hidden.
const LEASE_SECS: u64 = 10;
/// How long after the restart every media must be `pending_review`: the visibility timeout
/// plus processing, with room for a slow machine.
const RECOVERY: Duration = Duration::from_secs(150);
const MODEL: &str = "model-crash";
/// The job lease in the child: the reaper re-queues a killed worker's job this long after.
const JOB_LEASE_SECS: u64 = 4;
const PHOTOS: [&str; 5] =
    ["landscape-20mp.jpg", "progressive-13mp.jpg", "macro-13mp.jpg", "portrait-10mp.jpg", "cmyk.jpg"];

/// The server process of [`a_server_killed_mid_processing_leaves_no_media_stuck`]; inert unless
/// that test starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the crash test's server process: runs only when that test starts it"]
async fn server_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    phoenix_local::init_logging();
    let config = phoenix_local::LocalConfig::from_env().expect("configuration from the environment");
    let system = phoenix_local::spawn(config).await.expect("the system starts");
    println!("{READY}{}", system.base_url);
    std::io::stdout().flush().unwrap();
    // Serves until killed; if the parent is gone first, its end of our stdin closes.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    system.shutdown().await;
}

/// The child process; killed (and reaped) when dropped.
struct Server {
    child: Child,
    url: String,
    /// Log lines the server wrote to its standard output (a pipe), as they come.
    logs: mpsc::Receiver<String>,
}

impl Server {
    fn start(data: &Path) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", "crash::server_process", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("PHOENIX_DATA_DIR", data)
            .env("PHOENIX_ADDR", "127.0.0.1:0")
            .env("PHOENIX_JWT_SECRET", SECRET)
            .env("PHOENIX_PROCESSING_LEASE_SECS", LEASE_SECS.to_string())
            // Jobs: a short lease and a fast reaper, so a killed worker's job is found soon; the
            // fault plans' stall keeps a job running long enough to be killed mid-way.
            .env("PHOENIX_JOB_LEASE_SECS", JOB_LEASE_SECS.to_string())
            .env("PHOENIX_REAPER_INTERVAL_SECS", "1")
            .env("PHOENIX_FAULT_INJECTION", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server process starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let (log_tx, logs) = mpsc::channel();
        // Reads the banner, then keeps draining so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may print its own words before ours on the same line.
                if let Some(at) = line.find(READY) {
                    let _ = tx.send(line[at + READY.len()..].trim().to_owned());
                } else {
                    let _ = log_tx.send(line);
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the server process printed no URL within 60 s (exit: {:?})", child.try_wait());
            }
        };
        Self { child, url, logs }
    }

    /// SIGKILL: no shutdown, no flushing, mid-write if it so happens.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token() -> String {
    let AuthMode::LocalJwt(keys) = AuthMode::local(SECRET.as_bytes()) else { unreachable!("a local key") };
    DevClaims { sub: "crash-tester".into(), groups: vec!["model".into()], model_id: Some(MODEL.into()), exp: exp() }
        .sign(&keys)
}

fn admin_token() -> String {
    let AuthMode::LocalJwt(keys) = AuthMode::local(SECRET.as_bytes()) else { unreachable!("a local key") };
    DevClaims { sub: "crash-admin".into(), groups: vec!["admin".into()], model_id: None, exp: exp() }.sign(&keys)
}

async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A worker killed while it runs a job (SIGKILL, lease held): after the restart the reaper finds
/// the lapsed lease and re-queues the job, which then finishes — exactly once: one new version,
/// and the killed delivery's message, when it comes back, does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_reaped_and_the_job_finishes_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let (client, token) = (reqwest::Client::new(), token());
    let server = Server::start(data.path());
    let media = upload(&client, &server, &token, "grayscale.jpg").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while statuses(&client, &server, &token, std::slice::from_ref(&media)).await != ["pending_review"] {
        assert!(tokio::time::Instant::now() < deadline, "the upload was not processed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = json!({
        "operation": "rotate", "params": {"degrees": 90},
        "target": {"model_id": MODEL, "media_id": media}, "fault": {"stall_ms": 3000},
    });
    let submitted =
        client.post(format!("{}/v1/jobs", server.url)).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(submitted.status(), 202, "{}", submitted.text().await.unwrap());
    let job: Value = submitted.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while get_json(&client, format!("{}/v1/jobs/{id}", server.url), &token).await["status"] != "running" {
        assert!(tokio::time::Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();

    let server = Server::start(data.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = get_json(&client, format!("{}/v1/jobs/{id}", server.url), &token).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "the killed job was not finished: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{job}");
    assert!(attempts[0]["error"].as_str().unwrap().contains("lease"), "{job}");
    // The killed delivery's message comes back after its visibility timeout (6 leases) and finds
    // the job done: the lane drains with no further attempt.
    let admin = admin_token();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = get_json(&client, format!("{}/v1/queues/stats", server.url), &admin).await;
        let normal = stats["lanes"].as_array().unwrap().iter().find(|l| l["lane"] == "normal").unwrap().clone();
        if normal["visible"] == 0 && normal["in_flight"] == 0 && normal["delayed"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lane never drained: {stats}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let job = get_json(&client, format!("{}/v1/jobs/{id}", server.url), &token).await;
    assert_eq!(job["attempts"].as_array().unwrap().len(), 2, "no work after the job ended: {job}");
    let record = get_json(&client, format!("{}/v1/models/{MODEL}/media/{media}", server.url), &token).await;
    assert_eq!(record["image_version"], 2, "one new version: {record}");
    let versions = get_json(&client, format!("{}/v1/models/{MODEL}/media/{media}/versions", server.url), &token).await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 2, "{versions}");
}

/// Creates an upload and PUTs the photo through its presigned URL; returns the media id.
async fn upload(client: &reqwest::Client, server: &Server, token: &str, photo: &str) -> String {
    let bytes = std::fs::read(testdata(&format!("photos/{photo}"))).unwrap();
    let body = json!({"filename": photo, "content_type": "image/jpeg", "bytes": bytes.len()});
    let response = client
        .post(format!("{}/v1/models/{MODEL}/media/uploads", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let upload = &created["upload"];
    let mut put = client.put(upload["url"].as_str().unwrap()).body(bytes);
    for (name, value) in upload["headers"].as_object().unwrap() {
        if !name.eq_ignore_ascii_case("content-length") {
            put = put.header(name, value.as_str().unwrap());
        }
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    created["media_id"].as_str().unwrap().to_owned()
}

async fn statuses(client: &reqwest::Client, server: &Server, token: &str, media: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(media.len());
    for id in media {
        let response =
            client.get(format!("{}/v1/models/{MODEL}/media/{id}", server.url)).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let record: Value = response.json().await.unwrap();
        out.push(record["status"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_processing_leaves_no_media_stuck() {
    let data = tempfile::tempdir().unwrap();
    let (client, token) = (reqwest::Client::new(), token());

    let server = Server::start(data.path());
    let mut media = Vec::new();
    for photo in PHOTOS {
        media.push(upload(&client, &server, &token, photo).await);
    }
    // Kill it while it processes: as soon as a media is `processing`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let now = statuses(&client, &server, &token, &media).await;
        if now.iter().any(|s| s == "processing") {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing was ever seen processing: {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    server.kill9();

    let server = Server::start(data.path());
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        let now = statuses(&client, &server, &token, &media).await;
        if now.iter().all(|s| s == "pending_review") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{RECOVERY:?} after the restart: {now:?} (at the kill: {at_kill:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Logs written to a pipe (or a file) are plain text: no terminal colour codes in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let client = reqwest::Client::new();
    upload(&client, &server, &token(), "grayscale.jpg").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = server.logs.recv_timeout(left).expect("the server logged the upload within 30 s");
        if line.contains("upload created") {
            break line;
        }
    };
    assert!(line.contains("INFO"), "{line:?}");
    assert!(!line.contains('\u{1b}'), "a colour code in a piped log line: {line:?}");
}
