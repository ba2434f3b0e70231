//! [`EventBus`] for one machine: nobody subscribes locally, so the bus records what it was asked
//! to publish — in memory, for tests to read ([`RecordingEventBus::events`]), and as one JSON
//! line per event in `events.jsonl` in the data folder, for operators to look at (`tail -f`).
//! Each line has EventBridge's field names (`source`, `detail-type`, `detail`, `time`), so it
//! reads like what a rule's target receives in AWS.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use phoenix_domain::ports::{BusEvent, EventBus, StoreError, StoreResult};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

/// Events kept in memory: the most recent this many (the file keeps every one), so a local
/// server that runs for weeks does not grow without bound.
const MEMORY_CAP: usize = 10_000;

#[derive(Clone)]
pub struct RecordingEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    file: Option<PathBuf>,
    /// Held while a line is appended and recorded, so the file and memory keep one order.
    events: Mutex<VecDeque<BusEvent>>,
}

/// One line of `events.jsonl`.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    source: &'a str,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    detail: &'a serde_json::Value,
}

impl RecordingEventBus {
    /// Records in memory and appends to `path` (created with its folder if missing; the data
    /// folder's `events.jsonl`).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::with_file(Some(path.to_owned())))
    }

    /// Records in memory only (tests of other crates).
    pub fn in_memory() -> Self {
        Self::with_file(None)
    }

    fn with_file(file: Option<PathBuf>) -> Self {
        Self { inner: Arc::new(Inner { file, events: Mutex::new(VecDeque::new()) }) }
    }

    /// What was published, oldest first (the most recent 10,000).
    pub fn events(&self) -> Vec<BusEvent> {
        self.inner.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
    }

    /// The file events are appended to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }
}

impl Inner {
    fn record(&self, event: BusEvent) -> StoreResult<()> {
        let mut events = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(path) = &self.file {
            let time = event.time.format(&Rfc3339).map_err(StoreError::internal)?;
            let line = Line { time, source: event.source, detail_type: &event.detail_type, detail: &event.detail };
            let mut text = serde_json::to_string(&line).map_err(StoreError::internal)?;
            text.push('\n');
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(text.as_bytes()))
                .with_context(|| format!("appending an event to {}", path.display()))
                .map_err(StoreError::Unavailable)?;
        }
        if events.len() == MEMORY_CAP {
            events.pop_front();
        }
        events.push_back(event);
        Ok(())
    }
}

#[async_trait]
impl EventBus for RecordingEventBus {
    async fn publish(&self, event: &BusEvent) -> StoreResult<()> {
        let (inner, event) = (self.inner.clone(), event.clone());
        if inner.file.is_none() {
            return inner.record(event);
        }
        // Disk work off the async runtime.
        tokio::task::spawn_blocking(move || inner.record(event)).await.map_err(StoreError::internal)?
    }
}
