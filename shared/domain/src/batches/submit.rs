//! Submitting a batch (by the API or a back-office message), cancelling it, rolling it back.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BATCH_RETENTION, Batch, BatchChunk, BatchOperation, BatchStatus, CHUNK_SIZE, ItemOutcome, MAX_ITEMS};
use crate::ids::{BatchId, MediaId, ModelId};
use crate::media::MediaStatus;
use crate::ports::{BatchStore, GalleryStore, MediaQuery, MediaStore, Queue, QueueName, StoreError};

/// The batches queue: chunks to apply, and back-office submissions.
pub const QUEUE: QueueName = QueueName::BATCHES;

/// What may be wrong with a batch request or a request about a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidState(String),
    /// Too many batches running (for the model, or in all): try again after this long.
    #[error("{message}")]
    Limited { message: String, retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BatchError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

/// Which media: explicit items, or a filter of one model's media resolved at submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Items(Vec<MediaId>),
    /// A listing's filters (the media list's), resolved once into a snapshot.
    Filter(MediaQuery),
}

/// A batch as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub model_id: ModelId,
    pub operation: BatchOperation,
    pub selection: Selection,
    pub dry_run: bool,
}

/// Who submits, as the token's (or the message's) claims say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitter {
    pub subject: String,
    pub admin: bool,
    /// The model a model user acts for (`None` for admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<ModelId>,
}

/// How many batches may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Per model (`PHOENIX_BATCHES_PER_MODEL`, default 3).
    pub per_model: u64,
    /// In all (`PHOENIX_BATCHES_TOTAL`, default 20).
    pub total: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { per_model: 3, total: 20 }
    }
}

/// The queue message that asks the worker to apply one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub batch_id: BatchId,
    pub chunk: u32,
}

fn check(request: &BatchRequest, submitter: &Submitter) -> Result<(), BatchError> {
    if !submitter.admin && submitter.model_id.as_ref() != Some(&request.model_id) {
        return Err(BatchError::NotAllowed(format!(
            "a model user may batch only its own model's media, not {}",
            request.model_id
        )));
    }
    if request.operation.admin_only() && !submitter.admin {
        return Err(BatchError::NotAllowed(format!("{} is a review: admins only", request.operation.name())));
    }
    match &request.operation {
        BatchOperation::Reject { violations, .. } if violations.is_empty() => {
            return Err(BatchError::invalid("params.violations", "a rejection names at least one violation"));
        }
        BatchOperation::Tag { add, remove } if add.is_empty() && remove.is_empty() => {
            return Err(BatchError::invalid("params", "tag adds or removes at least one tag"));
        }
        BatchOperation::Rollback { .. } => {
            return Err(BatchError::invalid(
                "operation",
                "a rollback is made with POST /v1/batches/{batch_id}/rollback",
            ));
        }
        _ => {}
    }
    if let Selection::Items(items) = &request.selection
        && (items.is_empty() || items.len() > MAX_ITEMS)
    {
        return Err(BatchError::invalid("items", format!("1 to {MAX_ITEMS} items")));
    }
    Ok(())
}

/// The snapshot: explicit items (repeats dropped), or every media the filter selects now.
async fn resolve(media: &dyn MediaStore, request: &BatchRequest) -> Result<Vec<MediaId>, BatchError> {
    match &request.selection {
        Selection::Items(items) => {
            let mut seen = std::collections::HashSet::new();
            Ok(items.iter().filter(|m| seen.insert(**m)).copied().collect())
        }
        Selection::Filter(filter) => {
            let mut query = filter.clone();
            query.limit = 100;
            query.cursor = None;
            let mut out = Vec::new();
            loop {
                let page = media.list_media(&request.model_id, &query).await?;
                out.extend(page.items.iter().map(|r| r.media_id));
                if out.len() > MAX_ITEMS {
                    return Err(BatchError::invalid(
                        "filter",
                        format!(
                            "the filter selects more than {MAX_ITEMS} media; narrow it (status, tag, category, dates)"
                        ),
                    ));
                }
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => return Ok(out),
                }
            }
        }
    }
}

fn chunks_of(id: BatchId, items: &[MediaId], origin_seqs: &[u32]) -> Vec<BatchChunk> {
    items
        .chunks(CHUNK_SIZE)
        .enumerate()
        .map(|(n, part)| BatchChunk {
            batch_id: id,
            chunk: n as u32,
            media_ids: part.to_vec(),
            origin_seqs: origin_seqs
                .get(n * CHUNK_SIZE..(n * CHUNK_SIZE + part.len()))
                .map(<[u32]>::to_vec)
                .unwrap_or_default(),
            counts: None,
        })
        .collect()
}

async fn write_and_enqueue(
    batches: &dyn BatchStore,
    queue: &dyn Queue,
    batch: &Batch,
    chunks: &[BatchChunk],
) -> Result<(), BatchError> {
    batches.create_batch(batch, chunks).await?;
    for chunk in chunks {
        let message = ChunkMessage { batch_id: batch.batch_id, chunk: chunk.chunk };
        queue
            .send(&QUEUE, &serde_json::to_string(&message).expect("a chunk message serialises"), Duration::ZERO)
            .await?;
    }
    Ok(())
}

fn new_batch(id: BatchId, request: &BatchRequest, submitter: &Submitter, total: usize, now: OffsetDateTime) -> Batch {
    Batch {
        batch_id: id,
        model_id: request.model_id.clone(),
        operation: request.operation.clone(),
        status: BatchStatus::Queued,
        dry_run: request.dry_run,
        total: total as u64,
        chunks: total.div_ceil(CHUNK_SIZE) as u32,
        chunks_done: 0,
        counts: Default::default(),
        submitted_by: submitter.subject.clone(),
        submitted_as_admin: submitter.admin,
        rollback_of: None,
        rolled_back_by: None,
        queued_at: now,
        started_at: None,
        finished_at: if total == 0 { Some(now) } else { None },
        updated_at: now,
        version: 1,
        expires_at: now + BATCH_RETENTION,
    }
}

/// The ports a submission uses.
#[derive(Clone, Copy)]
pub struct BatchPorts<'a> {
    pub batches: &'a dyn BatchStore,
    pub media: &'a dyn MediaStore,
    /// A gallery batch's gallery must be the model's.
    pub galleries: &'a dyn GalleryStore,
    pub queue: &'a dyn Queue,
}

/// Submits a batch: checks who asks for what, the running-batch limits, resolves the selection
/// into a snapshot of at most 10,000 media, writes the batch with its chunks and queues one
/// message a chunk. A selection that is empty ends the batch at once (`completed`, 0 items).
pub async fn submit(
    ports: BatchPorts<'_>,
    limits: BatchLimits,
    submitter: &Submitter,
    request: BatchRequest,
    id: BatchId,
    now: OffsetDateTime,
) -> Result<Batch, BatchError> {
    let BatchPorts { batches, media, galleries, queue } = ports;
    check(&request, submitter)?;
    if let BatchOperation::AddToGallery { gallery_id } | BatchOperation::RemoveFromGallery { gallery_id } =
        &request.operation
    {
        match galleries.get_gallery(gallery_id).await {
            Ok(g) if g.model_id == request.model_id => {}
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(BatchError::invalid(
                    "params.gallery_id",
                    format!("no gallery {gallery_id} of model {}", request.model_id),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut active = 0;
    for status in [BatchStatus::Queued, BatchStatus::Running] {
        active += batches.count_batches(Some(&request.model_id), status).await?;
    }
    if active >= limits.per_model {
        return Err(BatchError::Limited {
            message: format!(
                "{active} batches of model {} are running (at most {})",
                request.model_id, limits.per_model
            ),
            retry_after: Duration::from_secs(30),
        });
    }
    let mut everyone = 0;
    for status in [BatchStatus::Queued, BatchStatus::Running] {
        everyone += batches.count_batches(None, status).await?;
    }
    if everyone >= limits.total {
        return Err(BatchError::Limited {
            message: format!("{everyone} batches are running (at most {})", limits.total),
            retry_after: Duration::from_secs(30),
        });
    }
    let items = resolve(media, &request).await?;
    let mut batch = new_batch(id, &request, submitter, items.len(), now);
    if items.is_empty() {
        batch.status = BatchStatus::Completed;
    }
    write_and_enqueue(batches, queue, &batch, &chunks_of(id, &items, &[])).await?;
    Ok(batch)
}

/// Cancels a batch that has not ended: chunks not yet applied are skipped (items already applied
/// stay applied, with their outcomes).
pub async fn cancel(batches: &dyn BatchStore, id: &BatchId, now: OffsetDateTime) -> Result<Batch, BatchError> {
    for _ in 0..5 {
        let mut batch = batches.get_batch(id).await.map_err(|e| not_found(e, id))?;
        if !batch.status.is_active() {
            return Err(BatchError::InvalidState(format!(
                "the batch is {}; only a queued or running batch can be cancelled",
                batch.status.as_str()
            )));
        }
        batch.status = BatchStatus::Cancelled;
        batch.finished_at = Some(now);
        batch.version += 1;
        batch.updated_at = now;
        match batches.update_batch(&batch).await {
            Ok(()) => return Ok(batch),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(BatchError::InvalidState("the batch kept changing; try again".into()))
}

fn not_found(e: StoreError, id: &BatchId) -> BatchError {
    match e {
        StoreError::NotFound => BatchError::NotFound(format!("batch {id} not found")),
        other => other.into(),
    }
}

/// Rolls an ended batch back as a new batch: every item it applied gets its previous values
/// back — if it is still as the batch left it; an item changed since is reported
/// (`skipped_conflict`), never clobbered. The original becomes `rolled_back` when the rollback ends.
pub async fn rollback(
    batches: &dyn BatchStore,
    queue: &dyn Queue,
    submitter: &Submitter,
    id: &BatchId,
    rollback_id: BatchId,
    now: OffsetDateTime,
) -> Result<Batch, BatchError> {
    let mut original = batches.get_batch(id).await.map_err(|e| not_found(e, id))?;
    if !submitter.admin && submitter.model_id.as_ref() != Some(&original.model_id) {
        return Err(BatchError::NotFound(format!("batch {id} not found")));
    }
    if original.status.is_active()
        || original.dry_run
        || original.rolled_back_by.is_some()
        || matches!(original.status, BatchStatus::Cancelled | BatchStatus::RolledBack)
        || matches!(original.operation, BatchOperation::Rollback { .. })
    {
        return Err(BatchError::InvalidState(format!(
            "only a batch that ended and changed media can be rolled back, once; this one is {}{}",
            original.status.as_str(),
            if original.dry_run { " (a dry run)" } else { "" }
        )));
    }
    let mut media = Vec::new();
    let mut seqs = Vec::new();
    let mut cursor = None;
    loop {
        let page = batches.list_items(id, Some(ItemOutcome::Applied), 100, cursor).await?;
        for item in page.items {
            media.push(item.media_id);
            seqs.push(item.seq);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if matches!(original.operation, BatchOperation::RemoveFromGallery { .. }) {
        // Put back last what was taken out first: each item's place was recorded with the
        // earlier ones already out, so the reverse order restores the gallery's order.
        media.reverse();
        seqs.reverse();
    }
    let request = BatchRequest {
        model_id: original.model_id.clone(),
        operation: BatchOperation::Rollback { of: *id },
        selection: Selection::Items(media.clone()),
        dry_run: false,
    };
    let mut rollback = new_batch(rollback_id, &request, submitter, media.len(), now);
    rollback.rollback_of = Some(*id);
    original.rolled_back_by = Some(rollback_id);
    original.version += 1;
    original.updated_at = now;
    batches.update_batch(&original).await.map_err(|e| match e {
        StoreError::VersionConflict { .. } => BatchError::InvalidState("the batch changed meanwhile; try again".into()),
        other => other.into(),
    })?;
    if media.is_empty() {
        rollback.status = BatchStatus::Completed;
        original.status = BatchStatus::RolledBack;
        original.version += 1;
        batches.update_batch(&original).await?;
    }
    write_and_enqueue(batches, queue, &rollback, &chunks_of(rollback_id, &media, &seqs)).await?;
    Ok(rollback)
}

/// Whether a listing status selects the trash (a `restore` batch's filter does).
pub fn selects_trash(filter: &MediaQuery) -> bool {
    filter.status == Some(MediaStatus::Deleted)
}
