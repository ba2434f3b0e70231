//! Batches: the batch record, its chunks (the selection snapshot) and its per-item outcomes.

use async_trait::async_trait;

use super::{Page, StoreResult};
use crate::batches::{Batch, BatchChunk, BatchItem, BatchStatus, ItemOutcome};
use crate::ids::{BatchId, ModelId};
use crate::media::MediaRecord;

/// Which batches to list, newest first: a model's, or every model's (admins, the stats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchQuery {
    pub model: Option<ModelId>,
    /// At most this many (1..=100).
    pub limit: usize,
    pub cursor: Option<String>,
}

impl BatchQuery {
    /// The listing a cursor is bound to.
    pub fn listing(&self) -> String {
        format!("batches|{}", self.model.as_ref().map(ModelId::as_str).unwrap_or_default())
    }
}

/// One item's write: the record's new version (when the operation changed it) and the outcome,
/// which commit together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    /// Written if the stored version is `record.version - 1` (else `VersionConflict`, and the
    /// outcome is not written either).
    pub record: Option<MediaRecord>,
    /// Written only if the item has no outcome yet (else `AlreadyExists`: a redelivered chunk).
    pub item: BatchItem,
}

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Writes a new batch and its chunks; `AlreadyExists` if the batch exists.
    async fn create_batch(&self, batch: &Batch, chunks: &[BatchChunk]) -> StoreResult<()>;
    /// `NotFound` also past its `expires_at`.
    async fn get_batch(&self, id: &BatchId) -> StoreResult<Batch>;
    /// Replaces the batch if the stored version is `batch.version - 1`, else `VersionConflict`.
    async fn update_batch(&self, batch: &Batch) -> StoreResult<()>;
    async fn get_chunk(&self, id: &BatchId, chunk: u32) -> StoreResult<BatchChunk>;
    /// Records a chunk's counts (idempotent: the counts come from its outcome records).
    async fn put_chunk_counts(&self, chunk: &BatchChunk) -> StoreResult<()>;
    /// Every chunk of a batch, in order.
    async fn list_chunks(&self, id: &BatchId) -> StoreResult<Vec<BatchChunk>>;
    /// The outcomes already recorded for items `from..to` of a batch.
    async fn get_items(&self, id: &BatchId, from: u32, to: u32) -> StoreResult<Vec<BatchItem>>;
    /// One item, by its place.
    async fn get_item(&self, id: &BatchId, seq: u32) -> StoreResult<BatchItem>;
    /// Each write atomically on its own (the record with its index entries, and its outcome);
    /// one result per write, in order. Adapters may group them for speed, never merge their fates.
    async fn write_items(&self, writes: &[ItemWrite]) -> Vec<StoreResult<()>>;
    /// Replaces an item's outcome with `item` if the stored one is `from` (else
    /// `VersionConflict`; `NotFound` if the item has none): the one change an outcome allows, when
    /// an applied item turns out not to have been applied after all (its gallery filled up).
    async fn revise_item(&self, item: &BatchItem, from: ItemOutcome) -> StoreResult<()>;
    /// A batch's items in order, optionally only those with `outcome`; pages may come back short
    /// with a cursor to follow.
    async fn list_items(
        &self,
        id: &BatchId,
        outcome: Option<ItemOutcome>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<BatchItem>>;
    /// Newest first.
    async fn list_batches(&self, query: &BatchQuery) -> StoreResult<Page<Batch>>;
    /// Batches in `status` (every model's when `model` is `None`).
    async fn count_batches(&self, model: Option<&ModelId>, status: BatchStatus) -> StoreResult<u64>;
}
