//! Batch lifecycle events on the bus (schema: docs/events.md).

use time::OffsetDateTime;

use super::Batch;
use crate::ports::{BusEvent, EventBus};

/// The bus `source` of batch events.
pub const SOURCE: &str = "phoenix.batches";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEventKind {
    Submitted,
    Progress,
    Finished,
    RolledBack,
}

impl BatchEventKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Submitted => "batch.submitted",
            Self::Progress => "batch.progress",
            Self::Finished => "batch.finished",
            Self::RolledBack => "batch.rolled_back",
        }
    }
}

/// The event for `batch` (its state as given).
pub fn event(batch: &Batch, kind: BatchEventKind, at: OffsetDateTime) -> BusEvent {
    BusEvent {
        source: SOURCE,
        detail_type: kind.detail_type().to_owned(),
        detail: serde_json::json!({
            "event_id": ulid::Ulid::new().to_string().to_ascii_lowercase(),
            "schema_version": 1,
            "batch_id": batch.batch_id,
            "model_id": batch.model_id,
            "operation": batch.operation.name(),
            "status": batch.status,
            "total": batch.total,
            "counts": batch.counts,
            "dry_run": batch.dry_run,
            "rollback_of": batch.rollback_of,
        }),
        time: at,
    }
}

/// Publishes a batch's event. A bus that is down is logged; the batch goes on (its record is the
/// truth, events are notifications).
pub async fn emit(bus: &dyn EventBus, batch: &Batch, kind: BatchEventKind) {
    if let Err(e) = bus.publish(&event(batch, kind, OffsetDateTime::now_utc())).await {
        tracing::warn!(error = %e, batch_id = %batch.batch_id, kind = kind.detail_type(), "could not publish a batch event");
    }
}
