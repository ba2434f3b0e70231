//! An in-memory batch store over the galleries' fakes (records and galleries), with the
//! adapters' semantics: an item's record change and its outcome commit together or not at all,
//! a second outcome for an item is `AlreadyExists` (tests only).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Batch, BatchChunk, BatchItem, BatchStatus, ItemOutcome};
use crate::galleries::fakes::Fakes;
use crate::galleries::{Gallery, Slug};
use crate::ids::{BatchId, GalleryId, MediaId, ModelId};
use crate::media::MediaRecord;
use crate::ports::{
    BatchQuery, BatchStore, Fingerprint, FingerprintStore, GalleryStore, ItemWrite, MediaQuery, MediaStore, Page,
    Queue, QueueName, QueueStats, ReceivedMessage, StoreError, StoreResult, TombstoneStore,
};

#[derive(Default)]
pub struct Mem {
    pub lib: Fakes,
    batches: Mutex<BTreeMap<BatchId, Batch>>,
    chunks: Mutex<BTreeMap<(BatchId, u32), BatchChunk>>,
    items: Mutex<BTreeMap<(BatchId, u32), BatchItem>>,
    pub sent: Mutex<Vec<String>>,
    /// While set, every send fails (a queue that is unavailable).
    pub refuse_sends: std::sync::atomic::AtomicBool,
    /// Runs once, after the next item writes (what a person does meanwhile).
    #[allow(clippy::type_complexity)]
    pub after_item_writes: Mutex<Option<Box<dyn FnOnce(&Fakes) + Send>>>,
}

impl Mem {
    pub fn items(&self, id: &BatchId) -> Vec<BatchItem> {
        self.items.lock().unwrap().values().filter(|i| &i.batch_id == id).cloned().collect()
    }
}

#[async_trait]
impl BatchStore for Mem {
    async fn create_batch(&self, batch: &Batch, chunks: &[BatchChunk]) -> StoreResult<()> {
        if self.batches.lock().unwrap().insert(batch.batch_id, batch.clone()).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let mut stored = self.chunks.lock().unwrap();
        for c in chunks {
            stored.insert((c.batch_id, c.chunk), c.clone());
        }
        Ok(())
    }
    async fn get_batch(&self, id: &BatchId) -> StoreResult<Batch> {
        self.batches.lock().unwrap().get(id).cloned().ok_or(StoreError::NotFound)
    }
    async fn update_batch(&self, batch: &Batch) -> StoreResult<()> {
        let mut batches = self.batches.lock().unwrap();
        let current = batches.get(&batch.batch_id).map(|b| b.version).ok_or(StoreError::NotFound)?;
        if current + 1 != batch.version {
            return Err(StoreError::VersionConflict { current: Some(current) });
        }
        batches.insert(batch.batch_id, batch.clone());
        Ok(())
    }
    async fn get_chunk(&self, id: &BatchId, chunk: u32) -> StoreResult<BatchChunk> {
        self.chunks.lock().unwrap().get(&(*id, chunk)).cloned().ok_or(StoreError::NotFound)
    }
    async fn put_chunk_counts(&self, chunk: &BatchChunk) -> StoreResult<()> {
        self.chunks.lock().unwrap().insert((chunk.batch_id, chunk.chunk), chunk.clone());
        Ok(())
    }
    async fn list_chunks(&self, id: &BatchId) -> StoreResult<Vec<BatchChunk>> {
        Ok(self.chunks.lock().unwrap().values().filter(|c| &c.batch_id == id).cloned().collect())
    }
    async fn get_items(&self, id: &BatchId, from: u32, to: u32) -> StoreResult<Vec<BatchItem>> {
        Ok(self.items.lock().unwrap().range((*id, from)..(*id, to)).map(|(_, i)| i.clone()).collect())
    }
    async fn get_item(&self, id: &BatchId, seq: u32) -> StoreResult<BatchItem> {
        self.items.lock().unwrap().get(&(*id, seq)).cloned().ok_or(StoreError::NotFound)
    }
    async fn write_items(&self, writes: &[ItemWrite]) -> Vec<StoreResult<()>> {
        let mut out = Vec::new();
        for w in writes {
            let key = (w.item.batch_id, w.item.seq);
            if self.items.lock().unwrap().contains_key(&key) {
                out.push(Err(StoreError::AlreadyExists));
                continue;
            }
            if let Some(record) = &w.record
                && let Err(e) = self.lib.update_media(record).await
            {
                out.push(Err(e));
                continue;
            }
            self.items.lock().unwrap().insert(key, w.item.clone());
            out.push(Ok(()));
        }
        let meanwhile = self.after_item_writes.lock().unwrap().take();
        if let Some(meanwhile) = meanwhile {
            meanwhile(&self.lib);
        }
        out
    }
    async fn revise_item(&self, item: &BatchItem, from: ItemOutcome) -> StoreResult<()> {
        let mut items = self.items.lock().unwrap();
        let stored = items.get_mut(&(item.batch_id, item.seq)).ok_or(StoreError::NotFound)?;
        if stored.outcome != from {
            return Err(StoreError::VersionConflict { current: None });
        }
        *stored = item.clone();
        Ok(())
    }
    async fn list_items(
        &self,
        id: &BatchId,
        outcome: Option<ItemOutcome>,
        _: usize,
        _: Option<String>,
    ) -> StoreResult<Page<BatchItem>> {
        let items = self.items(id).into_iter().filter(|i| outcome.is_none_or(|o| i.outcome == o)).collect();
        Ok(Page { items, next_cursor: None })
    }
    async fn list_batches(&self, _: &BatchQuery) -> StoreResult<Page<Batch>> {
        unreachable!("not listed in these tests")
    }
    async fn count_batches(&self, model: Option<&ModelId>, status: BatchStatus) -> StoreResult<u64> {
        let batches = self.batches.lock().unwrap();
        Ok(batches.values().filter(|b| b.status == status && model.is_none_or(|m| &b.model_id == m)).count() as u64)
    }
}

#[async_trait]
impl MediaStore for Mem {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.lib.create_media(record).await
    }
    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        self.lib.get_media(model, media).await
    }
    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        self.lib.batch_get_media(keys).await
    }
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.lib.update_media(record).await
    }
    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        self.lib.list_media(model, query).await
    }
    async fn list_trash_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>> {
        self.lib.list_trash_due(now, limit).await
    }
}

#[async_trait]
impl FingerprintStore for Mem {
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        Ok((self.lib.get_media(model, media).await?, vec![]))
    }
    async fn put_fingerprint(&self, _: &ModelId, _: &Fingerprint) -> StoreResult<()> {
        Ok(())
    }
    async fn remove_fingerprint(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl TombstoneStore for Mem {
    async fn delete_media(&self, _: &MediaRecord) -> StoreResult<()> {
        unreachable!("batches trash, never delete")
    }
    async fn get_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<Option<MediaRecord>> {
        Ok(None)
    }
    async fn remove_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl GalleryStore for Mem {
    async fn create_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        self.lib.create_gallery(gallery).await
    }
    async fn get_gallery(&self, id: &GalleryId) -> StoreResult<Gallery> {
        self.lib.get_gallery(id).await
    }
    async fn gallery_id_by_slug(&self, slug: &Slug) -> StoreResult<GalleryId> {
        self.lib.gallery_id_by_slug(slug).await
    }
    async fn update_gallery(&self, gallery: &Gallery, previous_slug: &Slug) -> StoreResult<()> {
        self.lib.update_gallery(gallery, previous_slug).await
    }
    async fn delete_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        self.lib.delete_gallery(gallery).await
    }
    async fn list_galleries(
        &self,
        model: &ModelId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<Gallery>> {
        self.lib.list_galleries(model, limit, cursor).await
    }
    async fn galleries_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<Gallery>> {
        self.lib.galleries_due(now, limit).await
    }
}

#[async_trait]
impl Queue for Mem {
    async fn send(&self, _: &QueueName, body: &str, _: Duration) -> StoreResult<String> {
        if self.refuse_sends.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::unavailable(anyhow::anyhow!("the queue is unavailable")));
        }
        self.sent.lock().unwrap().push(body.to_owned());
        Ok("m".into())
    }
    async fn receive(&self, _: &QueueName, _: usize, _: Duration, _: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        unreachable!("only sent to")
    }
    async fn delete(&self, _: &QueueName, _: &str) -> StoreResult<()> {
        unreachable!("only sent to")
    }
    async fn change_visibility(&self, _: &QueueName, _: &str, _: Duration) -> StoreResult<()> {
        unreachable!("only sent to")
    }
    async fn depth(&self, _: &QueueName) -> StoreResult<u64> {
        unreachable!("only sent to")
    }
    async fn stats(&self, _: &QueueName) -> StoreResult<QueueStats> {
        unreachable!("only sent to")
    }
}
