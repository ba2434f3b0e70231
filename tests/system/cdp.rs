//! A small DevTools-protocol client for headless Chromium: open a page with a viewport of our
//! choosing, evaluate a script in it, collect what the page reports as errors, and take a
//! screenshot. Pages that run no JavaScript of their own (the public gallery page) are tested
//! this way: from the outside, as a browser sees them.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::browser::{start_chromium_with, stop};

/// A viewport: CSS pixels, device pixel ratio, and whether it is a phone.
#[derive(Debug, Clone, Copy)]
pub struct Viewport {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub scale: f64,
    pub mobile: bool,
}

pub const PHONE: Viewport = Viewport { name: "phone", width: 390, height: 844, scale: 3.0, mobile: true };
pub const DESKTOP: Viewport = Viewport { name: "desktop", width: 1280, height: 800, scale: 1.0, mobile: false };

pub struct Browser {
    child: Option<Child>,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events received while waiting for answers, oldest first.
    events: Vec<Value>,
}

impl Browser {
    /// Headless Chromium with a DevTools endpoint on a free port, and a connection to it.
    pub async fn launch(scratch: &Path) -> Self {
        let child = start_chromium_with(&["--remote-debugging-port=0"], "about:blank", scratch);
        let active = scratch.join("profile").join("DevToolsActivePort");
        let mut endpoint = None;
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&active) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    endpoint = Some(format!("ws://127.0.0.1:{port}{path}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let endpoint = endpoint.unwrap_or_else(|| {
            let log = std::fs::read_to_string(scratch.join("chromium.log")).unwrap_or_default();
            panic!("Chromium opened no DevTools endpoint within 30 s; its output:\n{log}")
        });
        let (socket, _) = tokio_tungstenite::connect_async(&endpoint).await.expect("the DevTools WebSocket");
        Self { child: Some(child), socket, next_id: 0, events: Vec::new() }
    }

    /// Sends one command (to a page's session, or to the browser) and waits for its answer;
    /// events that arrive meanwhile are kept. A protocol error fails the test.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.socket.send(Message::text(command.to_string())).await.expect("send to Chromium");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("Chromium did not answer {method} within 60 s"))
                .expect("Chromium closed the DevTools connection")
                .expect("a DevTools message");
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// Waits for event `method` of `session` (one already received counts).
    pub async fn event(&mut self, session: &str, method: &str, timeout: Duration) -> Value {
        let matches = |e: &Value| e["method"] == method && e["sessionId"] == session;
        if let Some(at) = self.events.iter().position(matches) {
            return self.events.remove(at);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no {method} within {timeout:?}"))
                .expect("Chromium closed the DevTools connection")
                .expect("a DevTools message");
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if matches(&value) {
                return value;
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// A new tab with `viewport`, its page, runtime and log domains on: its session id.
    pub async fn tab(&mut self, viewport: Viewport) -> String {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"})).await;
        let attached =
            self.call(None, "Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
        let session = attached["sessionId"].as_str().expect("a session id").to_owned();
        let s = Some(session.as_str());
        self.call(s, "Page.enable", json!({})).await;
        self.call(s, "Runtime.enable", json!({})).await;
        self.call(s, "Log.enable", json!({})).await;
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": viewport.width, "height": viewport.height,
                "deviceScaleFactor": viewport.scale, "mobile": viewport.mobile
            }),
        )
        .await;
        session
    }

    /// Loads `url` in the tab and waits for its load event.
    pub async fn navigate(&mut self, session: &str, url: &str) {
        let answer = self.call(Some(session), "Page.navigate", json!({"url": url})).await;
        assert!(answer.get("errorText").is_none(), "navigating to {url}: {answer}");
        self.event(session, "Page.loadEventFired", Duration::from_secs(60)).await;
    }

    /// The value of `expression` (a promise is awaited), as JSON.
    pub async fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let answer = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("the script threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&mut self, session: &str) -> Vec<u8> {
        use base64::Engine;
        let shot = self.call(Some(session), "Page.captureScreenshot", json!({"format": "png"})).await;
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("PNG data")).expect("base64")
    }

    /// What the tab reported as errors: exceptions, `console.error`, and log entries of level
    /// `error` (failed loads, blocked resources, CSP refusals).
    pub fn errors(&self, session: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["sessionId"] == session)
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => Some(e["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if e["params"]["type"] == "error" => Some(e["params"].to_string()),
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => {
                    Some(e["params"]["entry"].to_string())
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}
