//! The event bus: lifecycle events (jobs, batches, publishing) for whoever listens.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::StoreResult;

/// One event as the bus carries it: EventBridge's `source`, `detail-type` and `detail`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusEvent {
    /// `phoenix.jobs`.
    pub source: &'static str,
    /// `job.queued`, `job.started`, ...
    pub detail_type: String,
    /// The event's JSON document (docs/events.md).
    pub detail: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes one event. Delivery to listeners is at least once; listeners dedupe by the
    /// detail's `event_id`.
    async fn publish(&self, event: &BusEvent) -> StoreResult<()>;
}
