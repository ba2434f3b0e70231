//! What the batch routes send and accept, as types: the OpenAPI document is generated from these.
//! The request body itself is the domain's `BatchBody` (one shape for the API and back-office
//! messages); [`SubmitBatchBody`] describes it for the document.

use phoenix_domain::batches::{Batch, BatchItem, BatchOperation, BatchStatus, OutcomeCounts};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// One explicit item.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ItemRefBody {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "model-42")]
    pub model_id: String,
    #[schema(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub media_id: String,
}

/// The media list's filters, over `model_id`'s media, resolved once at submission.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct FilterBodyView {
    /// `uploading`, `processing`, `pending_review`, `approved`, `rejected`, or `deleted` (the
    /// trash: what a `restore` batch selects).
    #[schema(example = "pending_review")]
    pub status: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub gallery: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<String>,
    /// Created strictly before (RFC 3339).
    pub created_before: Option<String>,
}

/// `POST /v1/batches`: an operation over explicit `items` or the media a `filter` selects (exactly
/// one of the two; at most 10,000 media either way).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SubmitBatchBody {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "model-42")]
    pub model_id: String,
    /// `approve` (params `{note?}`, admins only), `reject` (`{violations: [{code, severity, note?}], note?}`,
    /// admins only), `categorize` (`{category}`; `null` clears it), `tag` (`{add?, remove?}`),
    /// `set_usage_rights` (`{expires_at}`, RFC 3339; `null` clears it), `delete` (to the trash),
    /// `restore` (from the trash), `add_to_gallery` and `remove_from_gallery` (`{gallery_id}`, a
    /// gallery of `model_id`).
    #[schema(example = "tag")]
    pub operation: String,
    /// The operation's parameters (see `operation`); an object, or absent when it takes none.
    #[schema(value_type = Option<Object>, example = json!({"add": ["ss27"]}))]
    pub params: Option<serde_json::Value>,
    /// 1 to 10,000 media, each of `model_id`.
    pub items: Option<Vec<ItemRefBody>>,
    pub filter: Option<FilterBodyView>,
    /// Predict each item's outcome without writing anything.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatusView {
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
    RolledBack,
}

impl From<BatchStatus> for BatchStatusView {
    fn from(s: BatchStatus) -> Self {
        match s {
            BatchStatus::Queued => Self::Queued,
            BatchStatus::Running => Self::Running,
            BatchStatus::Completed => Self::Completed,
            BatchStatus::CompletedWithErrors => Self::CompletedWithErrors,
            BatchStatus::Failed => Self::Failed,
            BatchStatus::Cancelled => Self::Cancelled,
            BatchStatus::RolledBack => Self::RolledBack,
        }
    }
}

/// Items by outcome, so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    pub applied: u64,
    /// Changed between the read and the write (or, for a rollback, since the batch): never clobbered.
    pub skipped_conflict: u64,
    pub skipped_not_found: u64,
    /// The submitter may not do this to this item.
    pub skipped_not_allowed: u64,
    /// The item's state does not allow the operation.
    pub skipped_invalid_state: u64,
    pub failed: u64,
}

impl From<&OutcomeCounts> for CountsView {
    fn from(c: &OutcomeCounts) -> Self {
        Self {
            applied: c.applied,
            skipped_conflict: c.skipped_conflict,
            skipped_not_found: c.skipped_not_found,
            skipped_not_allowed: c.skipped_not_allowed,
            skipped_invalid_state: c.skipped_invalid_state,
            failed: c.failed,
        }
    }
}

/// The operation's parameters as understood (its fields, without the operation's name).
fn params(operation: &BatchOperation) -> serde_json::Value {
    let mut value = serde_json::to_value(operation).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("op");
    }
    value
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    #[schema(example = "01jd3k6v2q8m3y7x9t0b5n4c2a")]
    pub batch_id: String,
    pub model_id: String,
    /// As submitted; `rollback` for a batch a rollback made.
    #[schema(example = "tag")]
    pub operation: String,
    /// The operation's parameters, as understood.
    #[schema(value_type = Object, example = json!({"add": ["ss27"], "remove": []}))]
    pub params: serde_json::Value,
    pub status: BatchStatusView,
    /// Outcomes are predictions; nothing is written.
    pub dry_run: bool,
    /// Items in the snapshot (repeats dropped).
    pub total: u64,
    /// Chunks of up to 100 items, each applied on its own.
    pub chunks: u32,
    pub chunks_done: u32,
    pub counts: CountsView,
    /// Items handled per second, as of the batch's last change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_per_second: Option<f64>,
    /// When a running batch should end at that rate (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    pub queued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// For a rollback: the batch it undoes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// The rollback that undoes (or undid) this batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<String>,
    /// The submitter's subject (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// Incremented by every change of the batch (the `ETag` names it).
    pub version: u64,
}

impl BatchView {
    /// The public shape of a batch; `admin` whether the caller may see who submitted it. The rate
    /// and the ETA are as of the batch's last change, so the view (and its ETag) only changes when
    /// the batch does.
    pub fn new(batch: &Batch, admin: bool) -> Self {
        Self {
            batch_id: batch.batch_id.to_string(),
            model_id: batch.model_id.to_string(),
            operation: batch.operation.name().to_owned(),
            params: params(&batch.operation),
            status: batch.status.into(),
            dry_run: batch.dry_run,
            total: batch.total,
            chunks: batch.chunks,
            chunks_done: batch.chunks_done,
            counts: (&batch.counts).into(),
            items_per_second: batch.items_per_second(batch.updated_at).map(|r| (r * 100.0).round() / 100.0),
            eta: batch.eta(batch.updated_at).map(rfc3339),
            queued_at: rfc3339(batch.queued_at),
            started_at: batch.started_at.map(rfc3339),
            finished_at: batch.finished_at.map(rfc3339),
            rollback_of: batch.rollback_of.map(|b| b.to_string()),
            rolled_back_by: batch.rolled_back_by.map(|b| b.to_string()),
            submitted_by: Some(batch.submitted_by.clone()).filter(|_| admin),
            version: batch.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchPage {
    /// Newest first.
    pub items: Vec<BatchView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What became of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// The item's place in the batch (0-based).
    pub seq: u32,
    pub model_id: String,
    pub media_id: String,
    /// `applied`, `skipped_conflict`, `skipped_not_found`, `skipped_not_allowed`,
    /// `skipped_invalid_state` or `failed`.
    #[schema(example = "applied")]
    pub outcome: String,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Applied items: the values the batch changed, as they were before (what a rollback puts back).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"status": "pending_review", "tags": ["ss26"]}))]
    pub before: Option<serde_json::Value>,
    /// The record version the change wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_version: Option<u64>,
    /// A dry run's outcome: a prediction, nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<bool>,
}

impl From<&BatchItem> for ItemView {
    fn from(i: &BatchItem) -> Self {
        Self {
            seq: i.seq,
            model_id: i.model_id.to_string(),
            media_id: i.media_id.to_string(),
            outcome: i.outcome.as_str().to_owned(),
            message: i.message.clone(),
            before: i.before.as_ref().and_then(|b| serde_json::to_value(b).ok()),
            written_version: i.written_version,
            predicted: i.predicted.then_some(true),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    /// In the batch's order.
    pub items: Vec<ItemView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One operation's numbers over the batches read.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationStatsView {
    #[schema(example = "tag")]
    pub operation: String,
    pub batches: u64,
    pub items_applied: u64,
    /// Items failed or skipped, over the items that have an outcome (0 when none has).
    #[schema(example = 0.02)]
    pub failure_rate: f64,
    /// The mean of the batches' items per second (absent when none has a rate yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_items_per_second: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatsView {
    /// By operation name.
    pub operations: Vec<OperationStatsView>,
    /// Batches read: every model's latest, at most 1,000 (dry runs are read but not counted).
    pub batches_read: u64,
    /// Whether older batches exist that were not read.
    pub truncated: bool,
}
