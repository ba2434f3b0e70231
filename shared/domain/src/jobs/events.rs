//! Job lifecycle events on the bus (schema: docs/events.md).

use serde::Serialize;
use time::OffsetDateTime;

use super::{Job, JobFailure, JobResult};
use crate::ids::{JobId, ModelId};
use crate::ports::{BusEvent, EventBus};

/// The bus `source` of job events.
pub const SOURCE: &str = "phoenix.jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEventKind {
    Queued,
    Started,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobEventKind {
    /// EventBridge's `detail-type`: `job.queued`, ...
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Queued => "job.queued",
            Self::Started => "job.started",
            Self::Succeeded => "job.succeeded",
            Self::Failed => "job.failed",
            Self::Cancelled => "job.cancelled",
        }
    }
}

/// The `detail` of a job event: enough to act on without reading the job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    /// Unique per event: listeners dedupe on it (delivery is at least once).
    pub event_id: String,
    pub schema_version: u32,
    pub kind: JobEventKind,
    pub job_id: JobId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<JobId>,
    pub model_id: ModelId,
    pub operation: &'static str,
    pub lane: super::Lane,
    pub status: super::JobStatus,
    /// The attempt this event belongs to (0 before the first).
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl JobEvent {
    pub fn of(job: &Job, kind: JobEventKind, at: OffsetDateTime) -> Self {
        Self {
            event_id: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            schema_version: 1,
            kind,
            job_id: job.job_id,
            parent_id: job.parent_id,
            model_id: job.model_id.clone(),
            operation: job.operation.name(),
            lane: job.lane,
            status: job.status,
            attempt: job.attempts.last().map_or(0, |a| a.number),
            error: job.error.clone(),
            result: job.result.clone().map(|mut r| {
                // Keys, not the derivative list: events stay small (EventBridge takes 256 KB).
                r.derivatives.clear();
                r
            }),
            at,
        }
    }

    pub fn to_bus(&self) -> BusEvent {
        BusEvent {
            source: SOURCE,
            detail_type: self.kind.detail_type().to_owned(),
            detail: serde_json::to_value(self).unwrap_or_default(),
            time: self.at,
        }
    }
}

/// Publishes a job's event. A bus that is down does not undo the change it reports: the failure
/// is logged and the job goes on (its record is the truth; events are notifications).
pub async fn emit(bus: &dyn EventBus, job: &Job, kind: JobEventKind, at: OffsetDateTime) {
    if let Err(e) = bus.publish(&JobEvent::of(job, kind, at).to_bus()).await {
        tracing::warn!(error = %e, job_id = %job.job_id, kind = kind.detail_type(), "could not publish a job event");
    }
}
