//! Applying one chunk of a batch: each item read, changed by the batch's operation and written
//! together with its outcome; items that already have an outcome (a redelivered chunk) are left
//! alone; the chunk's counts are counted from the stored outcomes, so they are exact however
//! often the chunk is delivered.

use std::collections::{BTreeSet, HashMap};

use time::OffsetDateTime;

use super::apply::{Applied, ApplyContext, apply_to};
use super::gallery;
use super::{Batch, BatchChunk, BatchItem, BatchOperation, BatchStatus, CHUNK_SIZE, ItemOutcome, OutcomeCounts};
use crate::galleries::republish::{self, Reason};
use crate::ids::{GalleryId, MediaId};
use crate::media::MediaRecord;
use crate::ports::{
    BatchStore, Fingerprint, GalleryStore, ItemWrite, LibraryStore, MediaStore, Queue, StoreError, StoreResult,
};

/// What handling a chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkReport {
    /// The chunk's items have their outcomes (these counts); `batch` as tallied after it, and
    /// `ended` when this chunk was the last to be counted.
    Done { counts: OutcomeCounts, batch: Box<Batch>, ended: bool },
    /// The batch was cancelled (or ended) before this chunk: nothing applied.
    Skipped(BatchStatus),
}

/// Applies chunk `chunk` of batch `id`. Transient store failures are returned (the message is
/// delivered again and picks up where this one stopped). After the chunk's writes, every
/// gallery a changed record links to (before or after its change, kept with each outcome) is
/// asked to republish, once per chunk ([`republish::request_for`]), not once per item; every
/// delivery asks for all of the chunk's, so one that died after its writes loses none, and a
/// request that could not be sent fails the delivery. A gallery batch (and its rollback)
/// changes its gallery with one write per chunk and republishes that gallery
/// ([`super::gallery`]).
pub async fn process_chunk(
    batches: &dyn BatchStore,
    media: &dyn LibraryStore,
    galleries: &dyn GalleryStore,
    queue: &dyn Queue,
    id: &crate::ids::BatchId,
    chunk: u32,
    trash_grace: std::time::Duration,
) -> StoreResult<ChunkReport> {
    let mut batch = batches.get_batch(id).await?;
    if !batch.status.is_active() {
        return Ok(ChunkReport::Skipped(batch.status));
    }
    if batch.status == BatchStatus::Queued {
        batch = start(batches, batch).await?;
        if !batch.status.is_active() {
            return Ok(ChunkReport::Skipped(batch.status));
        }
    }
    let mut snapshot = batches.get_chunk(id, chunk).await?;
    let first = chunk * CHUNK_SIZE as u32;
    let done: HashMap<u32, BatchItem> = batches
        .get_items(id, first, first + snapshot.media_ids.len() as u32)
        .await?
        .into_iter()
        .map(|i| (i.seq, i))
        .collect();
    let pending: Vec<(u32, MediaId)> = snapshot
        .media_ids
        .iter()
        .enumerate()
        .map(|(i, m)| (first + i as u32, *m))
        .filter(|(seq, _)| !done.contains_key(seq))
        .collect();
    if let Some(membership) = gallery::membership(batches, &batch).await? {
        // Also with nothing pending: a delivery that died before the gallery write left it to us.
        let ports = gallery::Ports { batches, media, galleries };
        gallery::apply_chunk(ports, &batch, &snapshot, &membership, &pending, &done).await?;
    } else if !pending.is_empty() {
        apply_items(batches, media, &batch, &snapshot, &pending, trash_grace).await?;
    }
    let stored = batches.get_items(id, first, first + snapshot.media_ids.len() as u32).await?;
    if !batch.dry_run {
        // From the stored outcomes, not this delivery's writes: a redelivery asks again for what
        // a delivery that died after its writes never asked (the publisher drops what changed
        // nothing).
        ask_republish(queue, &batch, stored.iter().flat_map(|i| &i.galleries).collect()).await?;
    }
    let mut counts = OutcomeCounts::default();
    for item in &stored {
        counts.add(item.outcome);
    }
    snapshot.counts = Some(counts);
    batches.put_chunk_counts(&snapshot).await?;
    let (batch, ended) = tally(batches, id).await?;
    Ok(ChunkReport::Done { counts, batch: Box::new(batch), ended })
}

/// Asks each of `galleries` to republish. A send that failed fails the delivery before the
/// chunk is counted: its redelivery asks again.
async fn ask_republish(queue: &dyn Queue, batch: &Batch, galleries: BTreeSet<&GalleryId>) -> StoreResult<()> {
    let wanted = galleries.len();
    let sent = republish::request_for(queue, &batch.model_id, galleries, Reason::Batch).await;
    if sent < wanted {
        return Err(StoreError::unavailable(anyhow::anyhow!(
            "{} of {wanted} republish requests were not sent; the chunk is delivered again",
            wanted - sent
        )));
    }
    Ok(())
}

async fn start(batches: &dyn BatchStore, mut batch: Batch) -> StoreResult<Batch> {
    for _ in 0..5 {
        if batch.status != BatchStatus::Queued {
            return Ok(batch);
        }
        let now = OffsetDateTime::now_utc();
        batch.status = BatchStatus::Running;
        batch.started_at.get_or_insert(now);
        batch.version += 1;
        batch.updated_at = now;
        match batches.update_batch(&batch).await {
            Ok(()) => return Ok(batch),
            Err(StoreError::VersionConflict { .. }) => batch = batches.get_batch(&batch.batch_id).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(batch)
}

/// Sums the chunks' counts onto the batch; when every chunk is counted, the batch ends (and a
/// rollback marks the batch it undid `rolled_back`). Returns the batch as it now stands, and
/// whether this call ended it.
pub async fn tally(batches: &dyn BatchStore, id: &crate::ids::BatchId) -> StoreResult<(Batch, bool)> {
    for _ in 0..8 {
        let mut batch = batches.get_batch(id).await?;
        let chunks = batches.list_chunks(id).await?;
        let counted: Vec<OutcomeCounts> = chunks.iter().filter_map(|c| c.counts).collect();
        let counts = counted.iter().fold(OutcomeCounts::default(), |a, c| a.sum(c));
        let all = counted.len() as u32 == batch.chunks;
        if batch.counts == counts && batch.chunks_done == counted.len() as u32 && !(all && batch.status.is_active()) {
            return Ok((batch, false));
        }
        let now = OffsetDateTime::now_utc();
        batch.counts = counts;
        batch.chunks_done = counted.len() as u32;
        let ending = all && batch.status.is_active();
        if ending {
            batch.status = batch.final_status();
            batch.finished_at = Some(now);
        }
        batch.version += 1;
        batch.updated_at = now;
        match batches.update_batch(&batch).await {
            Ok(()) if ending => {
                if let BatchOperation::Rollback { of } = &batch.operation {
                    mark_rolled_back(batches, of).await?;
                }
                return Ok((batch, true));
            }
            Ok(()) => return Ok((batch, false)),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::unavailable(anyhow::anyhow!("the batch kept changing while it was tallied")))
}

async fn mark_rolled_back(batches: &dyn BatchStore, of: &crate::ids::BatchId) -> StoreResult<()> {
    for _ in 0..5 {
        let mut original = batches.get_batch(of).await?;
        if original.status == BatchStatus::RolledBack {
            return Ok(());
        }
        original.status = BatchStatus::RolledBack;
        original.version += 1;
        original.updated_at = OffsetDateTime::now_utc();
        match batches.update_batch(&original).await {
            Err(StoreError::VersionConflict { .. }) => continue,
            other => return other,
        }
    }
    Ok(())
}

pub(super) fn item(
    batch: &Batch,
    seq: u32,
    media: MediaId,
    outcome: ItemOutcome,
    message: Option<String>,
) -> BatchItem {
    BatchItem {
        batch_id: batch.batch_id,
        seq,
        model_id: batch.model_id.clone(),
        media_id: media,
        outcome,
        message,
        before: None,
        written_version: None,
        predicted: batch.dry_run,
        galleries: Vec::new(),
        at: OffsetDateTime::now_utc(),
    }
}

/// The chunk being applied, with what every item's decision needs.
struct Run<'a> {
    batches: &'a dyn BatchStore,
    batch: &'a Batch,
    chunk: &'a BatchChunk,
    trash_grace: std::time::Duration,
}

/// What item `seq` (`media`) comes to against `record` (its current state, `None` when absent).
async fn decide(run: &Run<'_>, seq: u32, media: MediaId, record: Option<MediaRecord>) -> StoreResult<ItemWrite> {
    let Run { batches, batch, chunk, trash_grace } = *run;
    let index = (seq - chunk.chunk * CHUNK_SIZE as u32) as usize;
    let Some(mut record) = record else {
        return Ok(ItemWrite {
            record: None,
            item: item(batch, seq, media, ItemOutcome::SkippedNotFound, Some("no such media".into())),
        });
    };
    let linked_before: BTreeSet<GalleryId> = record.gallery_ids().cloned().collect();
    let now = OffsetDateTime::now_utc();
    let ctx = ApplyContext { actor: &batch.submitted_by, admin: batch.submitted_as_admin, now, trash_grace };
    let applied = match &batch.operation {
        BatchOperation::Rollback { of } => {
            let origin = chunk.origin_seqs.get(index).copied().unwrap_or(seq);
            let original = batches.get_item(of, origin).await?;
            match (original.before, original.written_version) {
                (Some(before), Some(written)) if written == record.version => {
                    let undo = super::UndoValues::of(&record);
                    before.restore_onto(&mut record, &batch.submitted_by, now);
                    Applied::Changed { before: undo }
                }
                (Some(_), Some(_)) => Applied::Skipped(
                    ItemOutcome::SkippedConflict,
                    "changed since the batch: left as it is, not clobbered".into(),
                ),
                _ => Applied::Skipped(ItemOutcome::SkippedInvalidState, "the batch did not change this item".into()),
            }
        }
        operation => apply_to(&mut record, operation, &ctx),
    };
    let mut it = item(batch, seq, media, ItemOutcome::Applied, None);
    Ok(match applied {
        Applied::Changed { before } => {
            it.before = Some(before);
            it.written_version = Some(record.version);
            if !batch.dry_run {
                it.galleries = linked_before
                    .into_iter()
                    .chain(record.gallery_ids().cloned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
            }
            ItemWrite { record: (!batch.dry_run).then_some(record), item: it }
        }
        Applied::AlreadySo { before } => {
            it.before = Some(before);
            it.written_version = Some(record.version);
            ItemWrite { record: None, item: it }
        }
        Applied::Skipped(outcome, message) => {
            it.outcome = outcome;
            it.message = Some(message);
            ItemWrite { record: None, item: it }
        }
    })
}

pub(super) async fn read_records(
    media: &dyn MediaStore,
    batch: &Batch,
    ids: &[MediaId],
) -> StoreResult<HashMap<MediaId, MediaRecord>> {
    let mut out = HashMap::new();
    for part in ids.chunks(crate::ports::bounds::MAX_BATCH_GET) {
        let keys: Vec<_> = part.iter().map(|m| (batch.model_id.clone(), *m)).collect();
        for record in media.batch_get_media(&keys).await? {
            out.insert(record.media_id, record);
        }
    }
    Ok(out)
}

async fn apply_items(
    batches: &dyn BatchStore,
    media: &dyn LibraryStore,
    batch: &Batch,
    chunk: &BatchChunk,
    pending: &[(u32, MediaId)],
    trash_grace: std::time::Duration,
) -> StoreResult<()> {
    let run = Run { batches, batch, chunk, trash_grace };
    let ids: Vec<MediaId> = pending.iter().map(|(_, m)| *m).collect();
    let records = read_records(media, batch, &ids).await?;
    let mut writes = Vec::with_capacity(pending.len());
    for (seq, id) in pending {
        writes.push(decide(&run, *seq, *id, records.get(id).cloned()).await?);
    }
    let results = batches.write_items(&writes).await;
    // A conflict (someone wrote the record between our read and write) is read again and tried
    // once more; a second conflict is reported, never forced.
    let mut retry = Vec::new();
    for (write, result) in writes.into_iter().zip(results) {
        match result {
            Ok(()) => follow_trash(media, &write).await,
            Err(StoreError::AlreadyExists) => {}
            Err(StoreError::VersionConflict { .. }) => retry.push(write.item),
            Err(StoreError::NotFound) => {
                let it = item(
                    batch,
                    write.item.seq,
                    write.item.media_id,
                    ItemOutcome::SkippedNotFound,
                    Some("deleted meanwhile".into()),
                );
                settle_one(batches, ItemWrite { record: None, item: it }).await?;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let it = item(batch, write.item.seq, write.item.media_id, ItemOutcome::Failed, Some(e.to_string()));
                settle_one(batches, ItemWrite { record: None, item: it }).await?;
            }
        }
    }
    for failed in retry {
        let fresh = media.get_media(&batch.model_id, &failed.media_id).await.ok();
        let write = decide(&run, failed.seq, failed.media_id, fresh.clone()).await?;
        let seq = write.item.seq;
        match batches.write_items(std::slice::from_ref(&write)).await.pop().unwrap_or(Ok(())) {
            Ok(()) => follow_trash(media, &write).await,
            Err(StoreError::AlreadyExists) => {}
            Err(StoreError::VersionConflict { .. }) => {
                let it = item(
                    batch,
                    seq,
                    failed.media_id,
                    ItemOutcome::SkippedConflict,
                    Some("the media kept changing while the batch applied".into()),
                );
                settle_one(batches, ItemWrite { record: None, item: it }).await?;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let it = item(batch, seq, failed.media_id, ItemOutcome::Failed, Some(e.to_string()));
                settle_one(batches, ItemWrite { record: None, item: it }).await?;
            }
        }
    }
    Ok(())
}

/// A media that went into the trash (or came back) loses (or gets back) its fingerprint, as a
/// single delete or restore does, so it is nobody's likely duplicate while it is trashed. Best
/// effort: a fingerprint is a hint.
async fn follow_trash(media: &dyn LibraryStore, write: &ItemWrite) {
    let (Some(record), Some(before)) = (&write.record, &write.item.before) else { return };
    let (was, is) = (before.status == crate::media::MediaStatus::Deleted, record.is_trashed());
    let result = match (was, is) {
        (false, true) => media.remove_fingerprint(&record.model_id, &record.media_id).await,
        (true, false) => match record.source.as_ref().and_then(|s| s.phash.clone()) {
            Some(phash) => {
                media.put_fingerprint(&record.model_id, &Fingerprint { media_id: record.media_id, phash }).await
            }
            None => Ok(()),
        },
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, media_id = %record.media_id, "a batch-trashed (or restored) media's fingerprint was not updated");
    }
}

pub(super) async fn settle_one(batches: &dyn BatchStore, write: ItemWrite) -> StoreResult<()> {
    match batches.write_items(std::slice::from_ref(&write)).await.pop().unwrap_or(Ok(())) {
        Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}
