//! [`Cdn`] for one machine: there is no CDN locally (the local server serves every path itself),
//! so the adapter records what it was asked to invalidate — in memory, for tests to read
//! ([`RecordingCdn::invalidations`]), and as one JSON line per invalidation in `cdn.jsonl` in the
//! data folder, for operators to look at (`tail -f`). It keeps CloudFront's contract: one
//! invalidation per request, idempotent on the caller reference (across restarts too: the file is
//! read back on open), the same reference with other paths refused. [`RecordingCdn::busy_for`]
//! makes it answer as CloudFront does when too many invalidations are in progress, so a caller's
//! retry can be tested.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use phoenix_domain::ports::{Cdn, CdnError, Invalidation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Invalidations kept in memory (and checked for a repeated reference): the most recent this
/// many. The file keeps every one.
const MEMORY_CAP: usize = 10_000;

/// One invalidation as the adapter recorded it; also one line of `cdn.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedInvalidation {
    /// The id returned to the caller (`I` + a ULID).
    pub id: String,
    pub caller_reference: String,
    /// Distinct, in order.
    pub paths: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

#[derive(Clone)]
pub struct RecordingCdn {
    inner: Arc<Inner>,
}

struct Inner {
    file: Option<PathBuf>,
    /// Held while a line is appended and recorded, so the file and memory keep one order.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recorded: VecDeque<RecordedInvalidation>,
    /// Requests still to refuse with `TooManyInProgress`.
    busy: usize,
}

impl RecordingCdn {
    /// Records in memory and appends to `path` (created with its folder if missing; the data
    /// folder's `cdn.jsonl`). What the file already holds is read back, so a reference asked for
    /// before a restart is still recognised.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut recorded = VecDeque::new();
        for (n, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            match serde_json::from_str::<RecordedInvalidation>(line) {
                Ok(invalidation) => {
                    if recorded.len() == MEMORY_CAP {
                        recorded.pop_front();
                    }
                    recorded.push_back(invalidation);
                }
                // A line torn by a crash while it was appended: that request was never answered.
                Err(e) => {
                    tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping an unreadable line")
                }
            }
        }
        Ok(Self::with(Some(path.to_owned()), recorded))
    }

    /// Records in memory only (tests of other crates).
    pub fn in_memory() -> Self {
        Self::with(None, VecDeque::new())
    }

    fn with(file: Option<PathBuf>, recorded: VecDeque<RecordedInvalidation>) -> Self {
        Self { inner: Arc::new(Inner { file, state: Mutex::new(State { recorded, busy: 0 }) }) }
    }

    /// What was invalidated, oldest first (the most recent 10,000), each request once.
    pub fn invalidations(&self) -> Vec<RecordedInvalidation> {
        self.inner.lock().recorded.iter().cloned().collect()
    }

    /// Every path invalidated so far, in the order asked (a path asked twice appears twice).
    pub fn paths(&self) -> Vec<String> {
        self.inner.lock().recorded.iter().flat_map(|i| i.paths.iter().cloned()).collect()
    }

    /// Refuses the next `requests` invalidations with [`CdnError::TooManyInProgress`], as
    /// CloudFront does while too many are in progress; the one after is accepted.
    pub fn busy_for(&self, requests: usize) {
        self.inner.lock().busy = requests;
    }

    /// The file invalidations are appended to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn invalidate(&self, invalidation: &Invalidation) -> Result<String, CdnError> {
        let mut state = self.lock();
        if state.busy > 0 {
            state.busy -= 1;
            return Err(CdnError::TooManyInProgress(anyhow::anyhow!(
                "the local CDN was told to answer TooManyInvalidationsInProgress"
            )));
        }
        let reference = invalidation.reference().as_str();
        let paths: Vec<String> = invalidation.paths().iter().map(|p| p.as_str().to_owned()).collect();
        if let Some(earlier) = state.recorded.iter().find(|i| i.caller_reference == reference) {
            return if earlier.paths == paths {
                Ok(earlier.id.clone())
            } else {
                Err(CdnError::Invalid(format!(
                    "caller reference {reference:?} was used for other paths (CloudFront: InvalidationBatchAlreadyExists)"
                )))
            };
        }
        let recorded = RecordedInvalidation {
            id: format!("I{}", ulid::Ulid::new()),
            caller_reference: reference.to_owned(),
            paths,
            time: OffsetDateTime::now_utc(),
        };
        if let Some(path) = &self.file {
            let mut line = serde_json::to_string(&recorded).map_err(|e| CdnError::Internal(e.into()))?;
            line.push('\n');
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(line.as_bytes()))
                .with_context(|| format!("appending an invalidation to {}", path.display()))
                .map_err(CdnError::Unavailable)?;
        }
        if state.recorded.len() == MEMORY_CAP {
            state.recorded.pop_front();
        }
        let id = recorded.id.clone();
        state.recorded.push_back(recorded);
        Ok(id)
    }
}

#[async_trait]
impl Cdn for RecordingCdn {
    async fn invalidate(&self, invalidation: &Invalidation) -> Result<String, CdnError> {
        if self.inner.file.is_none() {
            return self.inner.invalidate(invalidation);
        }
        // Disk work off the async runtime.
        let (inner, invalidation) = (self.inner.clone(), invalidation.clone());
        tokio::task::spawn_blocking(move || inner.invalidate(&invalidation))
            .await
            .map_err(|e| CdnError::Internal(e.into()))?
    }
}
