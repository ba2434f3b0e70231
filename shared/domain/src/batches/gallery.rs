//! Gallery membership batches: `add_to_gallery`, `remove_from_gallery` and their rollbacks.
//!
//! The gallery is the source of truth for membership and order, and the records' links are its
//! index ([`crate::galleries::links`]). A chunk changes them in the order a single `PATCH` does,
//! with one gallery write per chunk:
//! - **joining** (`add_to_gallery`, the rollback of a removal): each item's link is written with
//!   its outcome (one conditional write of the record on the version read, the rule of
//!   [`add_link`]), then the gallery takes every item of the chunk that the stored outcomes say
//!   joined, in one write conditional on its version (re-read and retried on a conflict);
//! - **leaving** (`remove_from_gallery`, the rollback of an addition): each item's outcome is
//!   written first, with its place in the gallery (the undo log), then the gallery lets go of
//!   the items the stored outcomes say left, in one conditional write, then their links come off
//!   ([`unlink_all`]).
//!
//! The gallery write carries the chunk's mark (`{batch_id}:{chunk}`, [`Gallery::batch_marks`]),
//! so a redelivered chunk finds its change made and never makes it twice, and, because the
//! gallery's change is worked out from the stored outcomes, a delivery that died between the
//! item writes and the gallery write is completed by the next one. At most 2,000 items: a join
//! that finds the gallery full is `skipped_invalid_state`.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::chunk::{item, read_records};
use super::{
    Batch, BatchChunk, BatchItem, BatchOperation, CHUNK_SIZE, GalleryMembership, GalleryPlace, ItemOutcome, UndoValues,
};
use crate::galleries::links::{LinkError, add_link, link, unlink_all};
use crate::galleries::ops::{Operation, apply, take_items};
use crate::galleries::{Gallery, MAX_BATCH_MARKS, MAX_ITEMS};
use crate::ids::{BatchId, GalleryId, MediaId};
use crate::media::MediaRecord;
use crate::ports::{BatchStore, GalleryStore, ItemWrite, MediaStore, StoreError, StoreResult};

/// Gallery writes of one chunk before it gives up for this delivery (the message comes back).
const GALLERY_ATTEMPTS: usize = 8;

/// What a gallery batch does to its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Add,
    Remove,
    /// Takes out what an `add_to_gallery` batch put in.
    UndoAdd {
        of: BatchId,
    },
    /// Puts back, in its place, what a `remove_from_gallery` batch took out.
    UndoRemove {
        of: BatchId,
    },
}

impl Kind {
    fn joins(&self) -> bool {
        matches!(self, Self::Add | Self::UndoRemove { .. })
    }
}

/// A gallery batch's gallery and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Membership {
    pub gallery: GalleryId,
    pub kind: Kind,
}

/// Whether `batch` changes gallery membership (a rollback: whether the batch it undoes did).
pub(super) async fn membership(batches: &dyn BatchStore, batch: &Batch) -> StoreResult<Option<Membership>> {
    Ok(match &batch.operation {
        BatchOperation::AddToGallery { gallery_id } => {
            Some(Membership { gallery: gallery_id.clone(), kind: Kind::Add })
        }
        BatchOperation::RemoveFromGallery { gallery_id } => {
            Some(Membership { gallery: gallery_id.clone(), kind: Kind::Remove })
        }
        BatchOperation::Rollback { of } => match batches.get_batch(of).await {
            Ok(original) => match original.operation {
                BatchOperation::AddToGallery { gallery_id } => {
                    Some(Membership { gallery: gallery_id, kind: Kind::UndoAdd { of: *of } })
                }
                BatchOperation::RemoveFromGallery { gallery_id } => {
                    Some(Membership { gallery: gallery_id, kind: Kind::UndoRemove { of: *of } })
                }
                _ => None,
            },
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    })
}

/// The ports a gallery chunk uses.
#[derive(Clone, Copy)]
pub(super) struct Ports<'a> {
    pub batches: &'a dyn BatchStore,
    pub media: &'a dyn MediaStore,
    pub galleries: &'a dyn GalleryStore,
}

fn mark(batch: &Batch, chunk: &BatchChunk) -> String {
    format!("{}:{}", batch.batch_id, chunk.chunk)
}

fn place_of(gallery: &Gallery, media: &MediaId) -> Option<GalleryPlace> {
    gallery.sections.iter().find_map(|s| {
        let position = s.items.iter().position(|m| m == media)?;
        Some(GalleryPlace { section_id: s.section_id.clone(), position: position as u32 })
    })
}

/// The gallery as this model's batch may change it (another model's is absent, as in the API).
async fn read_gallery(ports: Ports<'_>, batch: &Batch, id: &GalleryId) -> StoreResult<Option<Gallery>> {
    match ports.galleries.get_gallery(id).await {
        Ok(g) if g.model_id == batch.model_id => Ok(Some(g)),
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a stored outcome is one of the chunk's joins (`joins`) or leaves: applied, not a
/// prediction, and not in (joins) or in (leaves) the gallery before.
fn moved(item: &BatchItem, joins: bool) -> bool {
    item.outcome == ItemOutcome::Applied
        && !item.predicted
        && item.before.as_ref().and_then(|b| b.gallery.as_ref()).is_some_and(|g| g.place.is_none() == joins)
}

/// The per-item decisions of one delivery.
struct Decider<'a> {
    batch: &'a Batch,
    membership: &'a Membership,
    /// The gallery as this delivery sees it, the chunk's earlier leaves taken out.
    work: Option<Gallery>,
    /// Joins the gallery still has room for.
    room: usize,
    now: OffsetDateTime,
}

impl Decider<'_> {
    fn skip(&self, seq: u32, media: MediaId, outcome: ItemOutcome, message: String) -> ItemWrite {
        ItemWrite { record: None, item: item(self.batch, seq, media, outcome, Some(message)) }
    }

    fn applied(&self, seq: u32, media: MediaId, before: UndoValues, version: u64) -> BatchItem {
        let mut it = item(self.batch, seq, media, ItemOutcome::Applied, None);
        it.before = Some(before);
        it.written_version = Some(version);
        // The chunk asks for the gallery's republish from its stored outcomes, as every batch does.
        if !self.batch.dry_run {
            it.galleries = vec![self.membership.gallery.clone()];
        }
        it
    }

    /// What item `seq` comes to; `original` is the item a rollback undoes.
    fn decide(
        &mut self,
        seq: u32,
        media: MediaId,
        record: Option<MediaRecord>,
        original: Option<&BatchItem>,
    ) -> ItemWrite {
        use ItemOutcome::*;
        let gallery_id = self.membership.gallery.clone();
        let Some(work) = &self.work else {
            return self.skip(seq, media, SkippedNotFound, format!("no gallery {gallery_id} of this model"));
        };
        // What the batch a rollback undoes did to the item.
        let original_membership = original.and_then(|o| o.before.as_ref()).and_then(|b| b.gallery.as_ref());
        let was = original_membership.map(|g| g.place.clone());
        let was_cover = original_membership.is_some_and(|g| g.cover);
        let contained = work.contains(&media);
        let record = record.filter(|r| !r.is_trashed());
        match &self.membership.kind {
            Kind::Add | Kind::UndoRemove { .. } => {
                let restore_to = match (&self.membership.kind, was) {
                    (Kind::Add, _) => None,
                    (_, Some(Some(place))) => Some(place),
                    _ => {
                        return self.skip(seq, media, SkippedInvalidState, "the batch did not change this item".into());
                    }
                };
                if contained && restore_to.is_some() {
                    return self.skip(
                        seq,
                        media,
                        SkippedConflict,
                        "back in the gallery since the batch: left as it is".into(),
                    );
                }
                let Some(record) = record else {
                    return self.skip(seq, media, SkippedNotFound, "no such media (or it is in the trash)".into());
                };
                let mut before = UndoValues::of(&record);
                if contained {
                    before.gallery = Some(GalleryMembership {
                        gallery_id,
                        place: place_of(work, &media),
                        restore_to: None,
                        cover: false,
                    });
                    return ItemWrite { record: None, item: self.applied(seq, media, before, record.version) };
                }
                let mut linked = record;
                let changed = match add_link(&mut linked, &gallery_id, &self.batch.submitted_by, self.now) {
                    Ok(changed) => changed,
                    Err(message) => return self.skip(seq, media, SkippedNotAllowed, message),
                };
                if self.room == 0 {
                    return self.skip(
                        seq,
                        media,
                        SkippedInvalidState,
                        format!("the gallery is full: it holds at most {MAX_ITEMS} items"),
                    );
                }
                self.room -= 1;
                if changed {
                    linked.version += 1;
                    linked.updated_at = self.now;
                }
                let cover = restore_to.is_some() && was_cover;
                before.gallery = Some(GalleryMembership { gallery_id, place: None, restore_to, cover });
                let it = self.applied(seq, media, before, linked.version);
                ItemWrite { record: (changed && !self.batch.dry_run).then_some(linked), item: it }
            }
            Kind::Remove | Kind::UndoAdd { .. } => {
                if matches!(self.membership.kind, Kind::UndoAdd { .. }) && !matches!(was, Some(None)) {
                    let message = "in the gallery before the batch (or not added by it): left there";
                    return self.skip(seq, media, SkippedInvalidState, message.into());
                }
                if !contained {
                    return match self.membership.kind {
                        Kind::Remove => self.skip(seq, media, SkippedInvalidState, "not in the gallery".into()),
                        _ => self.skip(seq, media, SkippedConflict, "taken out of the gallery since the batch".into()),
                    };
                }
                let Some(record) = record else {
                    return self.skip(seq, media, SkippedNotFound, "no such media (or it is in the trash)".into());
                };
                let place = place_of(work, &media);
                let cover = work.cover == Some(media);
                if let Some(work) = self.work.as_mut() {
                    take_items(work, &[media]);
                }
                let mut before = UndoValues::of(&record);
                before.gallery = Some(GalleryMembership { gallery_id, place, restore_to: None, cover });
                ItemWrite { record: None, item: self.applied(seq, media, before, record.version) }
            }
        }
    }
}

/// Applies a gallery batch's chunk: the pending items' outcomes (and joins' links), then the
/// gallery's one write, then the leaves' unlinks. The applied outcomes name the gallery, so the
/// caller asks for its republish after this (on every delivery, as for any batch).
pub(super) async fn apply_chunk(
    ports: Ports<'_>,
    batch: &Batch,
    chunk: &BatchChunk,
    membership: &Membership,
    pending: &[(u32, MediaId)],
    done: &HashMap<u32, BatchItem>,
) -> StoreResult<()> {
    let now = OffsetDateTime::now_utc();
    let joins = membership.kind.joins();
    let gallery = read_gallery(ports, batch, &membership.gallery).await?;
    if !pending.is_empty() {
        let mut work = gallery.clone();
        let mut owed = 0;
        if let Some(g) = work.as_mut()
            && !g.batch_marks.contains(&mark(batch, chunk))
        {
            let mut earlier: Vec<&BatchItem> = done.values().filter(|i| moved(i, joins)).collect();
            earlier.sort_by_key(|i| i.seq);
            for i in earlier {
                if joins {
                    owed += usize::from(!g.contains(&i.media_id));
                } else {
                    take_items(g, &[i.media_id]);
                }
            }
        }
        let room = work.as_ref().map_or(0, |g| MAX_ITEMS.saturating_sub(g.item_count() + owed));
        let mut decider = Decider { batch, membership, work, room, now };
        write_items(ports, &mut decider, chunk, pending).await?;
    }
    if batch.dry_run {
        return Ok(());
    }
    let first = chunk.chunk * CHUNK_SIZE as u32;
    let mut moved_items: Vec<BatchItem> = ports
        .batches
        .get_items(&batch.batch_id, first, first + chunk.media_ids.len() as u32)
        .await?
        .into_iter()
        .filter(|i| moved(i, joins))
        .collect();
    moved_items.sort_by_key(|i| i.seq);
    if moved_items.is_empty() {
        return Ok(());
    }
    write_gallery(ports, batch, chunk, membership, &moved_items, now).await
}

/// Decides and writes the pending items; a join whose record changed between the read and the
/// write is read again and decided once more, then reported.
async fn write_items(
    ports: Ports<'_>,
    decider: &mut Decider<'_>,
    chunk: &BatchChunk,
    pending: &[(u32, MediaId)],
) -> StoreResult<()> {
    let batch = decider.batch;
    let ids: Vec<MediaId> = pending.iter().map(|(_, m)| *m).collect();
    let records = read_records(ports.media, batch, &ids).await?;
    let mut originals = HashMap::new();
    if let Kind::UndoAdd { of } | Kind::UndoRemove { of } = &decider.membership.kind {
        let first = chunk.chunk * CHUNK_SIZE as u32;
        for (seq, _) in pending {
            let origin = chunk.origin_seqs.get((seq - first) as usize).copied().unwrap_or(*seq);
            match ports.batches.get_item(of, origin).await {
                Ok(original) => drop(originals.insert(*seq, original)),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut round: Vec<(u32, MediaId, Option<MediaRecord>)> =
        pending.iter().map(|(seq, m)| (*seq, *m, records.get(m).cloned())).collect();
    for attempt in 0..2 {
        let writes: Vec<ItemWrite> =
            round.iter().map(|(seq, m, r)| decider.decide(*seq, *m, r.clone(), originals.get(seq))).collect();
        let results = ports.batches.write_items(&writes).await;
        let mut again = Vec::new();
        for (write, result) in writes.into_iter().zip(results) {
            let (seq, media) = (write.item.seq, write.item.media_id);
            let settle = match result {
                Ok(()) | Err(StoreError::AlreadyExists) => None,
                Err(StoreError::VersionConflict { .. }) if attempt == 0 => {
                    // Its room is taken again when it is decided again.
                    decider.room += usize::from(write.item.outcome == ItemOutcome::Applied);
                    again.push((seq, media, ports.media.get_media(&batch.model_id, &media).await.ok()));
                    None
                }
                Err(StoreError::VersionConflict { .. }) => {
                    Some((ItemOutcome::SkippedConflict, "the media kept changing while the batch applied".to_owned()))
                }
                Err(StoreError::NotFound) => Some((ItemOutcome::SkippedNotFound, "deleted meanwhile".to_owned())),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => Some((ItemOutcome::Failed, e.to_string())),
            };
            if let Some((outcome, message)) = settle {
                let it = item(batch, seq, media, outcome, Some(message));
                super::chunk::settle_one(ports.batches, ItemWrite { record: None, item: it }).await?;
            }
        }
        if again.is_empty() {
            break;
        }
        round = again;
    }
    Ok(())
}

/// After the gallery took the chunk's joins: a publish that ran between their links and the
/// gallery write saw links of media the gallery did not hold yet and took them off as stale
/// (its crash repair, [`crate::galleries::publish`]); such a member gets its link back. One read
/// of the chunk's records; a link only where one is missing.
async fn relink(
    ports: Ports<'_>,
    batch: &Batch,
    id: &GalleryId,
    gallery: &Gallery,
    media: &[MediaId],
    now: OffsetDateTime,
) -> StoreResult<()> {
    let members: Vec<MediaId> = media.iter().filter(|m| gallery.contains(m)).copied().collect();
    let records = read_records(ports.media, batch, &members).await?;
    for m in &members {
        if records.get(m).is_some_and(|r| r.gallery_ids().any(|g| g == id)) {
            continue;
        }
        if let Err(e) = link(ports.media, &batch.model_id, m, id, &batch.submitted_by, now).await {
            let e = match e {
                LinkError::Refused(m) => m,
                LinkError::Store(e) => e.to_string(),
            };
            tracing::warn!(media_id = %m, gallery_id = %id, error = %e, "a member's lost link was not written back: the next publish repairs it");
        }
    }
    Ok(())
}

/// Joins the gallery has no room for after all: their links come off, then their outcomes say
/// so (in that order: a delivery that dies in between finds them still applied, and does both
/// again).
async fn turn_away(
    ports: Ports<'_>,
    batch: &Batch,
    gallery: &GalleryId,
    items: &[&BatchItem],
    now: OffsetDateTime,
) -> StoreResult<()> {
    let media: Vec<MediaId> = items.iter().map(|i| i.media_id).collect();
    unlink_all(ports.media, &batch.model_id, &media, gallery, batch.submitted_by.as_str(), now).await;
    for it in items {
        let skipped = BatchItem {
            outcome: ItemOutcome::SkippedInvalidState,
            message: Some(format!("the gallery filled up while the batch ran: it holds at most {MAX_ITEMS} items")),
            before: None,
            written_version: None,
            galleries: Vec::new(),
            ..(*it).clone()
        };
        match ports.batches.revise_item(&skipped, ItemOutcome::Applied).await {
            // Already revised by an earlier delivery.
            Ok(()) | Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The chunk's one gallery write, with its mark, conditional on the version read and retried
/// on a conflict; then the leaves' links come off. A gallery deleted meanwhile takes the joins'
/// links back.
async fn write_gallery(
    ports: Ports<'_>,
    batch: &Batch,
    chunk: &BatchChunk,
    membership: &Membership,
    moved_items: &[BatchItem],
    now: OffsetDateTime,
) -> StoreResult<()> {
    let joins = membership.kind.joins();
    let media: Vec<MediaId> = moved_items.iter().map(|i| i.media_id).collect();
    let actor = batch.submitted_by.as_str();
    let this = mark(batch, chunk);
    // Joins that found the gallery full, reported as such (not joined on a later attempt).
    let mut turned_away: HashSet<MediaId> = HashSet::new();
    for _ in 0..GALLERY_ATTEMPTS {
        let Some(mut gallery) = read_gallery(ports, batch, &membership.gallery).await? else {
            if joins {
                tracing::warn!(gallery_id = %membership.gallery, batch_id = %batch.batch_id, "the gallery went while a batch added to it: its links are taken back");
                unlink_all(ports.media, &batch.model_id, &media, &membership.gallery, actor, now).await;
            }
            return Ok(());
        };
        if !gallery.batch_marks.contains(&this) {
            if joins {
                let mut overflow = Vec::new();
                let missing: Vec<&BatchItem> = moved_items
                    .iter()
                    .filter(|i| !gallery.contains(&i.media_id) && !turned_away.contains(&i.media_id))
                    .collect();
                for it in missing {
                    if gallery.item_count() >= MAX_ITEMS {
                        overflow.push(it);
                        continue;
                    }
                    let restore_to =
                        it.before.as_ref().and_then(|b| b.gallery.as_ref()).and_then(|g| g.restore_to.clone());
                    let (section_id, position) = match restore_to {
                        Some(place) => match gallery.section(&place.section_id) {
                            Some(s) => {
                                (Some(place.section_id.clone()), Some((place.position as usize).min(s.items.len())))
                            }
                            None => (None, None),
                        },
                        None => (None, None),
                    };
                    let op = Operation::InsertItems { media_ids: vec![it.media_id], section_id, position };
                    apply(&mut gallery, vec![op]).map_err(|e| StoreError::internal(anyhow::anyhow!("{e}")))?;
                    let cover = it.before.as_ref().and_then(|b| b.gallery.as_ref()).is_some_and(|g| g.cover);
                    if cover && gallery.cover.is_none() {
                        gallery.cover = Some(it.media_id);
                    }
                }
                if !overflow.is_empty() {
                    // Only when a person filled the gallery between this chunk's read and its write.
                    tracing::warn!(gallery_id = %membership.gallery, items = overflow.len(), "the gallery filled up while a batch added to it: links taken back");
                    turn_away(ports, batch, &membership.gallery, &overflow, now).await?;
                    turned_away.extend(overflow.iter().map(|i| i.media_id));
                }
            } else {
                let present: Vec<MediaId> = media.iter().filter(|m| gallery.contains(m)).copied().collect();
                if !present.is_empty() {
                    apply(&mut gallery, vec![Operation::RemoveItems { media_ids: present }])
                        .map_err(|e| StoreError::internal(anyhow::anyhow!("{e}")))?;
                }
            }
            gallery.batch_marks.push(this.clone());
            let excess = gallery.batch_marks.len().saturating_sub(MAX_BATCH_MARKS);
            gallery.batch_marks.drain(..excess);
            gallery.version += 1;
            gallery.updated_at = now;
            let slug = gallery.slug.clone();
            match ports.galleries.update_gallery(&gallery, &slug).await {
                Ok(()) => {}
                Err(StoreError::VersionConflict { .. }) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
        if joins {
            relink(ports, batch, &membership.gallery, &gallery, &media, now).await?;
        } else {
            let gone: Vec<MediaId> = media.iter().filter(|m| !gallery.contains(m)).copied().collect();
            unlink_all(ports.media, &batch.model_id, &gone, &membership.gallery, actor, now).await;
        }
        return Ok(());
    }
    Err(StoreError::unavailable(anyhow::anyhow!("the gallery kept changing while a batch chunk was applied")))
}

#[cfg(test)]
mod tests {
    use super::super::fakes::Mem;
    use super::super::{BatchPorts, BatchRequest, BatchStatus, ChunkReport, Selection, Submitter, process_chunk};
    use super::*;
    use crate::galleries::fakes::approved;
    use crate::galleries::{CreateGallery, Slug, Visibility};
    use crate::ids::ModelId;
    use crate::media::MediaStatus;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn model() -> ModelId {
        ModelId::parse("m1").unwrap()
    }

    fn admin() -> Submitter {
        Submitter { subject: "admin-1".into(), admin: true, model_id: None }
    }

    async fn new_gallery(mem: &Mem) -> GalleryId {
        let request = CreateGallery {
            title: "Summer".into(),
            slug: Slug::parse(&format!("g-{}", MediaId::new()).to_ascii_lowercase()).unwrap(),
            description: None,
            visibility: Visibility::Public,
            sections: vec![],
        };
        crate::galleries::create(mem, &model(), request, OffsetDateTime::now_utc()).await.unwrap().gallery_id
    }

    /// Submits, as an admin.
    async fn submit(mem: &Mem, operation: BatchOperation, items: Vec<MediaId>) -> Batch {
        let ports = BatchPorts { batches: mem, media: mem, galleries: mem, queue: mem };
        let request = BatchRequest { model_id: model(), operation, selection: Selection::Items(items), dry_run: false };
        let now = OffsetDateTime::now_utc();
        super::super::submit(ports, Default::default(), &admin(), request, BatchId::new(), now).await.unwrap()
    }

    /// Submits and applies every chunk once, in order.
    async fn run(mem: &Mem, operation: BatchOperation, items: Vec<MediaId>) -> Batch {
        let batch = submit(mem, operation, items).await;
        apply_all(mem, &batch).await
    }

    async fn apply_all(mem: &Mem, batch: &Batch) -> Batch {
        for chunk in 0..batch.chunks {
            let grace = Duration::from_secs(60);
            let report = process_chunk(mem, mem, mem, mem, &batch.batch_id, chunk, grace).await.unwrap();
            assert!(matches!(report, ChunkReport::Done { .. }), "{report:?}");
        }
        mem.get_batch(&batch.batch_id).await.unwrap()
    }

    async fn roll_back(mem: &Mem, batch: &Batch) -> Batch {
        let undo =
            super::super::rollback(mem, mem, &admin(), &batch.batch_id, BatchId::new(), OffsetDateTime::now_utc())
                .await
                .unwrap();
        apply_all(mem, &undo).await
    }

    fn outcomes(mem: &Mem, batch: &Batch) -> Vec<ItemOutcome> {
        mem.items(&batch.batch_id).iter().map(|i| i.outcome).collect()
    }

    fn linked(mem: &Mem, media: &MediaId, gallery: &GalleryId) -> bool {
        mem.lib.media(media).gallery_ids().any(|g| g == gallery)
    }

    use std::time::Duration;

    #[test]
    fn an_add_batch_links_then_fills_the_gallery_in_order_once_per_chunk_and_republishes_it() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let mut media: Vec<MediaId> = (0..150).map(|_| mem.lib.add(approved())).collect();
            mem.lib.set_status(&media[3], MediaStatus::PendingReview);
            media.push(MediaId::new()); // absent
            let batch = run(&mem, BatchOperation::AddToGallery { gallery_id: g.clone() }, media.clone()).await;
            assert_eq!(batch.status, BatchStatus::CompletedWithErrors);
            assert_eq!(
                (batch.counts.applied, batch.counts.skipped_not_allowed, batch.counts.skipped_not_found),
                (149, 1, 1)
            );
            let gallery = mem.lib.gallery(&g);
            let expected: Vec<MediaId> =
                media.iter().take(150).enumerate().filter(|(i, _)| *i != 3).map(|(_, m)| *m).collect();
            assert_eq!(gallery.sections[0].items, expected, "the batch's order");
            assert_eq!(gallery.version, 3, "one gallery write per chunk");
            assert!(expected.iter().all(|m| linked(&mem, m, &g)));
            assert!(!linked(&mem, &media[3], &g));
            let republished = mem.sent.lock().unwrap().iter().filter(|b| b.contains(g.as_str())).count();
            assert_eq!(republished, 2, "once per chunk");

            // A redelivered chunk finds its outcomes and its mark: nothing changes.
            process_chunk(&mem, &mem, &mem, &mem, &batch.batch_id, 0, Duration::from_secs(60)).await.unwrap();
            assert_eq!(mem.lib.gallery(&g), gallery);
        })
    }

    #[test]
    fn a_field_batch_whose_republish_requests_were_lost_asks_again_when_delivered_again() {
        use std::sync::atomic::Ordering;
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let members: Vec<MediaId> = (0..3).map(|_| mem.lib.add(approved())).collect();
            run(&mem, BatchOperation::AddToGallery { gallery_id: g.clone() }, members.clone()).await;
            let outsider = mem.lib.add(approved());
            let mut items = members.clone();
            items.push(outsider);
            let violation =
                crate::media::Violation { code: "off-brief".into(), severity: crate::media::Severity::Low, note: None };
            let batch = submit(&mem, BatchOperation::Reject { violations: vec![violation], note: None }, items).await;
            mem.sent.lock().unwrap().clear();

            // The chunk's writes land; its republish request cannot be sent: the delivery fails
            // before the chunk is counted.
            mem.refuse_sends.store(true, Ordering::SeqCst);
            let grace = Duration::from_secs(60);
            let failed = process_chunk(&mem, &mem, &mem, &mem, &batch.batch_id, 0, grace).await;
            assert!(failed.is_err_and(|e| e.is_transient()));
            assert_eq!(outcomes(&mem, &batch), vec![ItemOutcome::Applied; 4]);
            assert_eq!(mem.get_batch(&batch.batch_id).await.unwrap().chunks_done, 0);

            // Delivered again: nothing is left to apply, and the gallery is still asked for.
            mem.refuse_sends.store(false, Ordering::SeqCst);
            let report = process_chunk(&mem, &mem, &mem, &mem, &batch.batch_id, 0, grace).await.unwrap();
            assert!(matches!(report, ChunkReport::Done { ended: true, .. }), "{report:?}");
            let sent = mem.sent.lock().unwrap().clone();
            assert_eq!(sent.len(), 1, "one request for the one gallery: {sent:?}");
            assert!(sent[0].contains(g.as_str()));
            let stored = mem.items(&batch.batch_id);
            assert!(stored[..3].iter().all(|i| i.galleries == [g.clone()]), "{stored:?}");
            assert!(stored[3].galleries.is_empty(), "the outsider shows in no gallery");
        })
    }

    #[test]
    fn a_delivery_that_died_before_the_gallery_write_is_completed_by_the_next() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let media: Vec<MediaId> = (0..5).map(|_| mem.lib.add(approved())).collect();
            let ports = BatchPorts { batches: &mem, media: &mem, galleries: &mem, queue: &mem };
            let request = BatchRequest {
                model_id: model(),
                operation: BatchOperation::AddToGallery { gallery_id: g.clone() },
                selection: Selection::Items(media.clone()),
                dry_run: false,
            };
            let batch = super::super::submit(
                ports,
                Default::default(),
                &admin(),
                request,
                BatchId::new(),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            let before = mem.lib.gallery(&g);
            process_chunk(&mem, &mem, &mem, &mem, &batch.batch_id, 0, Duration::from_secs(60)).await.unwrap();
            // Undo the gallery write as if the delivery had died before it (links and outcomes stay).
            let mut died = before.clone();
            died.version = mem.lib.gallery(&g).version + 1;
            mem.lib.update_gallery(&died, &died.slug).await.unwrap();
            // The batch is done, but the message comes back (it was never acknowledged).
            let mut b = mem.get_batch(&batch.batch_id).await.unwrap();
            b.status = BatchStatus::Running;
            b.version += 1;
            mem.update_batch(&b).await.unwrap();
            process_chunk(&mem, &mem, &mem, &mem, &batch.batch_id, 0, Duration::from_secs(60)).await.unwrap();
            assert_eq!(mem.lib.gallery(&g).sections[0].items, media);
            assert_eq!(outcomes(&mem, &batch), vec![ItemOutcome::Applied; 5], "no second outcome");
        })
    }

    #[test]
    fn remove_then_roll_back_puts_items_back_in_their_places_and_undoing_an_add_empties_the_gallery() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let media: Vec<MediaId> = (0..30).map(|_| mem.lib.add(approved())).collect();
            let add = run(&mem, BatchOperation::AddToGallery { gallery_id: g.clone() }, media.clone()).await;
            let full = mem.lib.gallery(&g).sections[0].items.clone();
            let cover = vec![Operation::SetFields {
                title: None,
                slug: None,
                description: None,
                visibility: None,
                cover: Some(Some(media[7])),
            }];
            let version = mem.lib.gallery(&g).version;
            crate::galleries::patch(mem.lib.ports(), &model(), &g, version, cover, "u", OffsetDateTime::now_utc())
                .await
                .unwrap();
            let leaving: Vec<MediaId> = [0, 1, 7, 8, 15, 29].iter().map(|i| media[*i]).collect();
            let mut asked = leaving.clone();
            asked.push(mem.lib.add(approved())); // not in the gallery
            let remove = run(&mem, BatchOperation::RemoveFromGallery { gallery_id: g.clone() }, asked).await;
            assert_eq!((remove.counts.applied, remove.counts.skipped_invalid_state), (6, 1));
            let after = mem.lib.gallery(&g);
            assert_eq!(after.item_count(), 24);
            assert!(leaving.iter().all(|m| !after.contains(m) && !linked(&mem, m, &g)));
            assert_eq!(after.cover, None, "the cover left with its media");

            let undo = roll_back(&mem, &remove).await;
            assert_eq!(undo.counts.applied, 6);
            assert_eq!(mem.lib.gallery(&g).sections[0].items, full, "every item back in its place");
            assert_eq!(mem.lib.gallery(&g).cover, Some(media[7]), "and the cover back");
            assert!(media.iter().all(|m| linked(&mem, m, &g)));
            assert_eq!(mem.get_batch(&remove.batch_id).await.unwrap().status, BatchStatus::RolledBack);

            // An item taken out by a person since the add is reported, not touched again.
            let patched = crate::galleries::patch(
                mem.lib.ports(),
                &model(),
                &g,
                mem.lib.gallery(&g).version,
                vec![Operation::RemoveItems { media_ids: vec![media[2]] }],
                "u",
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            assert!(!patched.contains(&media[2]));
            let undo = roll_back(&mem, &add).await;
            assert_eq!((undo.counts.applied, undo.counts.skipped_conflict), (29, 1));
            assert_eq!(mem.lib.gallery(&g).item_count(), 0);
            assert!(media.iter().all(|m| !linked(&mem, m, &g)));
        })
    }

    #[test]
    fn joins_a_person_left_no_room_for_are_reported_skipped_not_applied() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let filler = MAX_ITEMS - 5;
            mem.lib
                .edit_gallery(&g, |gallery| gallery.sections[0].items = (0..filler).map(|_| MediaId::new()).collect());
            let media: Vec<MediaId> = (0..5).map(|_| mem.lib.add(approved())).collect();
            // Between the chunk's item writes and its gallery write, a person adds three.
            let filled = g.clone();
            *mem.after_item_writes.lock().unwrap() = Some(Box::new(move |lib: &crate::galleries::fakes::Fakes| {
                lib.edit_gallery(&filled, |gallery| gallery.sections[0].items.extend((0..3).map(|_| MediaId::new())));
            }));
            let batch = run(&mem, BatchOperation::AddToGallery { gallery_id: g.clone() }, media.clone()).await;
            let gallery = mem.lib.gallery(&g);
            assert_eq!(gallery.item_count(), MAX_ITEMS);
            assert_eq!((batch.counts.applied, batch.counts.skipped_invalid_state), (2, 3), "{:?}", batch.counts);
            for item in mem.items(&batch.batch_id) {
                let (joined, is_linked) = (gallery.contains(&item.media_id), linked(&mem, &item.media_id, &g));
                match item.outcome {
                    ItemOutcome::Applied => assert!(joined && is_linked, "{item:?}"),
                    ItemOutcome::SkippedInvalidState => {
                        assert!(!joined && !is_linked && item.before.is_none(), "{item:?}");
                        assert!(item.message.as_deref().unwrap_or_default().contains("filled up"));
                    }
                    other => panic!("{other:?}"),
                }
            }
        })
    }

    #[test]
    fn past_two_thousand_items_each_item_is_reported() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let mut gallery = mem.lib.gallery(&g);
            gallery.sections[0].items = (0..MAX_ITEMS - 2).map(|_| MediaId::new()).collect();
            gallery.version += 1;
            mem.lib.update_gallery(&gallery, &gallery.slug).await.unwrap();
            let media: Vec<MediaId> = (0..5).map(|_| mem.lib.add(approved())).collect();
            let batch = run(&mem, BatchOperation::AddToGallery { gallery_id: g.clone() }, media.clone()).await;
            use ItemOutcome::*;
            assert_eq!(
                outcomes(&mem, &batch),
                vec![Applied, Applied, SkippedInvalidState, SkippedInvalidState, SkippedInvalidState]
            );
            assert_eq!(mem.lib.gallery(&g).item_count(), MAX_ITEMS);
            assert!(!linked(&mem, &media[4], &g), "no link for what did not join");
        })
    }

    #[test]
    fn another_models_gallery_is_refused_at_submission() {
        rt().block_on(async {
            let mem = Mem::default();
            let g = new_gallery(&mem).await;
            let ports = BatchPorts { batches: &mem, media: &mem, galleries: &mem, queue: &mem };
            let request = BatchRequest {
                model_id: ModelId::parse("m2").unwrap(),
                operation: BatchOperation::AddToGallery { gallery_id: g },
                selection: Selection::Items(vec![MediaId::new()]),
                dry_run: false,
            };
            let refused = super::super::submit(ports, Default::default(), &admin(), request, BatchId::new(), OffsetDateTime::now_utc()).await;
            assert!(matches!(refused, Err(super::super::BatchError::Invalid { ref field, .. }) if field == "params.gallery_id"), "{refused:?}");
        })
    }
}
