//! The media records' gallery links, kept in step with the galleries that hold them.
//!
//! The gallery is the source of truth for membership and order; a record's `galleries` is an
//! index of it. Every change here is a conditional write of the record on the version read,
//! read again and retried on a conflict (someone edited the media meanwhile), so a link change
//! never clobbers an edit. The ordering rule ([`super`]): links are added before the gallery
//! write that adds their media, and removed after the gallery write that removes them, so a crash
//! in between leaves a stale link (harmless: the gallery does not show that media, and the next
//! publish removes it), never a member without its link.

use futures::StreamExt;
use time::OffsetDateTime;

use crate::ids::{GalleryId, MediaId, ModelId};
use crate::media::{GalleryLink, MAX_GALLERIES, MediaRecord, MediaStatus};
use crate::ports::{MediaStore, StoreError};

/// Record writes in flight at once (a publish or a large insert touches up to 2,000 records).
pub const LINK_CONCURRENCY: usize = 8;
/// Reads and conditional writes of one record before a conflict is reported.
const ATTEMPTS: usize = 4;

/// Why a media could not be linked.
#[derive(Debug)]
pub enum LinkError {
    /// The media cannot join a gallery (the message says why).
    Refused(String),
    Store(StoreError),
}

/// What a link change does to a record: `Ok(true)` changed it (write), `Ok(false)` nothing to
/// do, `Err` refused.
type Change<'a> = dyn Fn(&mut MediaRecord) -> Result<bool, String> + Send + Sync + 'a;

/// Reads the record, applies `change`, writes it conditionally; on a version conflict reads
/// it again and retries. An absent record is `NotFound`.
async fn change_record(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &MediaId,
    change: &Change<'_>,
    now: OffsetDateTime,
) -> Result<(), LinkError> {
    for attempt in 1..=ATTEMPTS {
        let mut record = store.get_media(model, media).await.map_err(LinkError::Store)?;
        if !change(&mut record).map_err(LinkError::Refused)? {
            return Ok(());
        }
        record.version += 1;
        record.updated_at = now;
        match store.update_media(&record).await {
            Ok(()) => return Ok(()),
            Err(StoreError::VersionConflict { .. }) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(LinkError::Store(e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// The rule of a new link, on the record in memory (the version untouched): `Ok(true)` linked
/// (with a history line), `Ok(false)` already linked, `Err` refused, saying why: only an
/// approved media, not in the trash, with room for another link. A gallery batch applies the
/// same rule ([`crate::batches`]).
pub fn add_link(
    record: &mut MediaRecord,
    gallery: &GalleryId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<bool, String> {
    let media = record.media_id;
    if record.gallery_ids().any(|g| g == gallery) {
        return Ok(false);
    }
    if record.status != MediaStatus::Approved {
        return Err(format!("media {media} is {}, and only approved media join galleries", record.status.as_str()));
    }
    if record.galleries.len() >= MAX_GALLERIES {
        return Err(format!("media {media} is already in {MAX_GALLERIES} galleries, the most a media may be in"));
    }
    record.galleries.push(GalleryLink { gallery_id: gallery.clone(), published: false });
    record.record_history(now, actor, "added_to_gallery", format!("added to gallery {gallery}"));
    Ok(true)
}

/// Links `media` to `gallery` (unpublished): only an approved media, not in the trash, with
/// room for another link. Already linked: nothing to do.
pub async fn link(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &MediaId,
    gallery: &GalleryId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), LinkError> {
    let change = |record: &mut MediaRecord| add_link(record, gallery, actor, now);
    match change_record(store, model, media, &change, now).await {
        Err(LinkError::Store(StoreError::NotFound)) => Err(LinkError::Refused(format!("media {media} not found"))),
        other => other,
    }
}

/// Takes `gallery`'s link off `media`'s record. An absent record or link: nothing to do.
pub async fn unlink(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &MediaId,
    gallery: &GalleryId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let change = |record: &mut MediaRecord| {
        let before = record.galleries.len();
        record.galleries.retain(|g| &g.gallery_id != gallery);
        if record.galleries.len() == before {
            return Ok(false);
        }
        record.record_history(now, actor, "removed_from_gallery", format!("removed from gallery {gallery}"));
        Ok(true)
    };
    match change_record(store, model, media, &change, now).await {
        Ok(()) | Err(LinkError::Store(StoreError::NotFound)) => Ok(()),
        Err(LinkError::Store(e)) => Err(e),
        Err(LinkError::Refused(m)) => Err(StoreError::internal(anyhow::anyhow!("unlink refused: {m}"))),
    }
}

/// Sets the link's `published` flag (writing a missing link of a member: the gallery is the
/// source of truth). Refused or absent: nothing to do.
pub async fn mark_published(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &MediaId,
    gallery: &GalleryId,
    published: bool,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let change = |record: &mut MediaRecord| {
        if let Some(link) = record.galleries.iter_mut().find(|g| &g.gallery_id == gallery) {
            if link.published == published {
                return Ok(false);
            }
            link.published = published;
            return Ok(true);
        }
        if record.is_trashed() || record.galleries.len() >= MAX_GALLERIES {
            return Ok(false);
        }
        record.galleries.push(GalleryLink { gallery_id: gallery.clone(), published });
        Ok(true)
    };
    match change_record(store, model, media, &change, now).await {
        Ok(()) | Err(LinkError::Store(StoreError::NotFound)) | Err(LinkError::Refused(_)) => Ok(()),
        Err(LinkError::Store(e)) => Err(e),
    }
}

/// Links every media in `media` ([`LINK_CONCURRENCY`] at once). On the first refusal or failure
/// the links this call made are taken back (best effort) and the error returned, with every
/// refused media.
pub async fn link_all(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &[MediaId],
    gallery: &GalleryId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), (Vec<MediaId>, LinkError)> {
    let outcomes: Vec<(MediaId, Result<(), LinkError>)> = futures::stream::iter(media.iter().copied())
        .map(|m| async move { (m, link(store, model, &m, gallery, actor, now).await) })
        .buffer_unordered(LINK_CONCURRENCY)
        .collect()
        .await;
    let (linked, failed): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, r)| r.is_ok());
    if failed.is_empty() {
        return Ok(());
    }
    let linked: Vec<MediaId> = linked.into_iter().map(|(m, _)| m).collect();
    unlink_all(store, model, &linked, gallery, actor, now).await;
    let refused: Vec<MediaId> =
        failed.iter().filter(|(_, r)| matches!(r, Err(LinkError::Refused(_)))).map(|(m, _)| *m).collect();
    // A store failure outranks refusals: the caller retries it; refusals it must fix.
    let error = failed
        .into_iter()
        .map(|(_, r)| r.expect_err("failed"))
        .reduce(|a, b| if matches!(a, LinkError::Store(_)) { a } else { b })
        .expect("at least one failed");
    Err((refused, error))
}

/// Takes `gallery`'s links off every media in `media` ([`LINK_CONCURRENCY`] at once), best
/// effort: a failure is logged and leaves a stale link, which the next publish removes.
pub async fn unlink_all(
    store: &dyn MediaStore,
    model: &ModelId,
    media: &[MediaId],
    gallery: &GalleryId,
    actor: &str,
    now: OffsetDateTime,
) {
    futures::stream::iter(media.iter().copied())
        .map(|m| async move {
            if let Err(e) = unlink(store, model, &m, gallery, actor, now).await {
                tracing::warn!(media_id = %m, gallery_id = %gallery, error = %e, "stale gallery link left");
            }
        })
        .buffer_unordered(LINK_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}
