//! Deleting a media is recoverable: it goes to the trash (gone for readers at once), comes back
//! with [`restore`] within the grace period, and after it the trash sweep ([`sweep_trash`])
//! deletes the record, leaving a tombstone from which the ingest processor purges its objects.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::MediaError;
use crate::galleries::republish::{self, Reason};
use crate::ids::{MediaId, ModelId};
use crate::media::MediaRecord;
use crate::messages::MediaCommand;
use crate::ports::{Fingerprint, FingerprintStore, MediaStore, Queue, StoreError, TombstoneStore, bounds};

/// Moves the media to the trash (if still at version `expected`, when named) and returns it as
/// stored: status `deleted`, restorable until `now + grace` ([`MediaRecord::move_to_trash`]).
/// The record loses its tag, gallery and category index entries in the same write, so every
/// listing and gallery drops it at once; its fingerprint goes too, so it is nobody's likely
/// duplicate. Nothing else is touched: a restore brings it all back. The galleries it is in are
/// asked to republish without it ([`republish::request`]), and with it again after a restore.
#[allow(clippy::too_many_arguments)]
pub async fn delete<S: MediaStore + FingerprintStore + ?Sized>(
    store: &S,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    expected: Option<u64>,
    actor: &str,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<MediaRecord, MediaError> {
    let mut record = super::read_live(store, model, media).await?;
    if let Some(expected) = expected.filter(|v| *v != record.version) {
        return Err(MediaError::stale(record.version, expected));
    }
    let before = record.clone();
    record.move_to_trash(actor, now, grace)?;
    store.update_media(&record).await.map_err(MediaError::writing)?;
    republish::request(queue, Some(&before), &record, Reason::Delete).await;
    // After the write: a failure here leaves a likely-duplicate hint behind (the sweep's delete
    // removes it at the latest), never a media half deleted.
    if let Err(e) = store.remove_fingerprint(model, media).await {
        tracing::warn!(error = %e, "a trashed media's fingerprint was not removed");
    }
    tracing::info!(purge_after = ?record.purge_after(), "media moved to the trash");
    Ok(record)
}

/// Brings a media back from the trash within its grace period (conditional on `expected`, when
/// named) and returns it as stored ([`MediaRecord::restore_from_trash`]). Not in the trash (never
/// deleted, or already purged): `NotFound`; past its grace period: `InvalidState`.
pub async fn restore<S: MediaStore + FingerprintStore + ?Sized>(
    store: &S,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    expected: Option<u64>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<MediaRecord, MediaError> {
    let mut record = store.get_media(model, media).await.map_err(MediaError::reading(*media))?;
    if !record.is_trashed() {
        return Err(MediaError::NotFound(format!("media {media} is not in the trash")));
    }
    if let Some(expected) = expected.filter(|v| *v != record.version) {
        return Err(MediaError::stale(record.version, expected));
    }
    record.restore_from_trash(actor, now)?;
    // The fingerprint first (idempotent): if the write then fails, a hint is left for a media
    // still in the trash, never a restored media without its fingerprint.
    if let Some(phash) = record.source.as_ref().and_then(|s| s.phash.clone()) {
        match store.put_fingerprint(model, &Fingerprint { media_id: *media, phash }).await {
            Ok(()) => {}
            // The model's fingerprints are full: duplicate detection is lost, not the media.
            Err(StoreError::Invalid(e)) => tracing::warn!(error = %e, "fingerprint not recorded"),
            Err(e) => return Err(MediaError::Store(e)),
        }
    }
    store.update_media(&record).await.map_err(MediaError::writing)?;
    republish::request(queue, None, &record, Reason::Restore).await;
    tracing::info!(status = record.status.as_str(), "media restored from the trash");
    Ok(record)
}

/// What one trash sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Media whose grace period had passed: record deleted (a tombstone left) and purge queued.
    pub purged: Vec<(ModelId, MediaId)>,
    /// Media the sweep could not purge this time (logged; the next sweep tries again).
    pub failed: usize,
}

/// One sweep of the trash: for each media (of any model) whose `purge_after` has passed, at most
/// `limit` (1..=100), what a delete did before the trash existed — the `purge` command is queued
/// to the ingest queue (delayed by `purge_delay`, longer than a sweep takes, so the purge runs
/// after the tombstone is written), then the record, its entries and fingerprint are deleted
/// leaving a tombstone, conditionally on the version read. A media restored meanwhile is left
/// alone (its purge then finds no tombstone and does nothing). A failure to list is an error; a
/// failure on one media is counted and logged, and the next sweep tries it again.
pub async fn sweep_trash<S: MediaStore + TombstoneStore + ?Sized>(
    store: &S,
    queue: &dyn Queue,
    now: OffsetDateTime,
    limit: usize,
    purge_delay: Duration,
) -> Result<SweepReport, MediaError> {
    let limit = bounds::page_size(limit).map_err(MediaError::Store)?;
    let mut report = SweepReport::default();
    for record in store.list_trash_due(now, limit).await.map_err(MediaError::Store)? {
        // The index may lag a restore: act only on what the record itself says.
        if record.purge_after().is_none_or(|at| at > now) {
            continue;
        }
        let (model, media) = (record.model_id.clone(), record.media_id);
        let command = MediaCommand::Purge { model_id: model.clone(), media_id: media };
        if let Err(e) = command.enqueue(queue, purge_delay).await {
            tracing::warn!(model_id = %model, media_id = %media, error = %e, "trash sweep: purge not queued");
            report.failed += 1;
            continue;
        }
        match store.delete_media(&record).await {
            Ok(()) => report.purged.push((model, media)),
            // Restored, or swept by another sweep, since the listing: nothing to do here.
            Err(StoreError::VersionConflict { .. } | StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(model_id = %model, media_id = %media, error = %e, "trash sweep: not deleted");
                report.failed += 1;
            }
        }
    }
    if !report.purged.is_empty() {
        tracing::info!(purged = report.purged.len(), "trash sweep: media past their grace period deleted");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaStatus;
    use crate::media::fakes::{Fakes, processed_record};

    const GRACE: Duration = Duration::from_secs(600);

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn a_delete_moves_the_media_to_the_trash_and_nothing_else() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        let trashed = run(delete(&fakes, &fakes, model, media, Some(1), "alice", now, GRACE)).unwrap();
        assert_eq!(fakes.calls(), ["get", "update", "remove_fingerprint"]);
        assert_eq!(fakes.stored(), Some(trashed.clone()));
        assert_eq!((trashed.status, trashed.version), (MediaStatus::Deleted, 2));
        let trash = trashed.trashed.as_ref().unwrap();
        assert_eq!((trash.previous_status, trash.purge_after), (MediaStatus::PendingReview, now + GRACE));
        assert!(fakes.sent.lock().unwrap().is_empty(), "no purge before the grace period ends");
        assert!(fakes.tombstone.lock().unwrap().is_none());

        // Gone for every use case but restore: a second delete, an edit, a review are 404.
        let again = run(delete(&fakes, &fakes, model, media, None, "alice", now, GRACE)).unwrap_err();
        assert!(matches!(again, MediaError::NotFound(_)));
        let patch = crate::library::MediaPatch { caption: Some(Some("x".into())), ..Default::default() };
        let edit = run(crate::media::edit(&fakes, &fakes, model, media, 2, patch, "a", now)).unwrap_err();
        assert!(matches!(edit, MediaError::NotFound(_)));
    }

    #[test]
    fn a_stale_or_absent_media_is_not_deleted() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let now = OffsetDateTime::now_utc();
        let err =
            run(delete(&fakes, &fakes, &record.model_id, &record.media_id, Some(7), "a", now, GRACE)).unwrap_err();
        assert!(matches!(err, MediaError::VersionConflict { current_version: Some(1), .. }));
        assert_eq!(fakes.stored(), Some(record.clone()));
        let err = run(delete(&fakes, &fakes, &record.model_id, &MediaId::new(), None, "a", now, GRACE)).unwrap_err();
        assert!(matches!(err, MediaError::NotFound(_)));
    }

    #[test]
    fn a_restore_within_the_grace_period_brings_everything_back() {
        let mut record = processed_record();
        record.source.as_mut().unwrap().phash = Some("00000000000000ff".into());
        let fakes = Fakes::holding(record.clone());
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        let not_trashed = run(restore(&fakes, &fakes, model, media, None, "bob", now)).unwrap_err();
        assert!(matches!(not_trashed, MediaError::NotFound(_)));

        run(delete(&fakes, &fakes, model, media, None, "alice", now, GRACE)).unwrap();
        let stale = run(restore(&fakes, &fakes, model, media, Some(1), "bob", now)).unwrap_err();
        assert!(matches!(stale, MediaError::VersionConflict { current_version: Some(2), .. }));
        fakes.calls.lock().unwrap().clear();
        let restored = run(restore(&fakes, &fakes, model, media, Some(2), "bob", now + GRACE / 2)).unwrap();
        assert_eq!(fakes.calls(), ["get", "put_fingerprint", "update"]);
        assert_eq!((restored.status, restored.version, restored.trashed.as_ref()), (record.status, 3, None));
        assert_eq!((&restored.derivatives, &restored.metadata), (&record.derivatives, &record.metadata));
        assert_eq!(restored.history[0].action, "restored");
    }

    #[test]
    fn past_the_grace_period_a_restore_is_refused() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        let trashed = run(delete(&fakes, &fakes, model, media, None, "alice", now, GRACE)).unwrap();
        let late = run(restore(&fakes, &fakes, model, media, None, "bob", now + GRACE)).unwrap_err();
        assert!(matches!(late, MediaError::InvalidState(_)));
        assert_eq!(fakes.stored(), Some(trashed));
    }

    #[test]
    fn the_sweep_queues_the_purge_then_deletes_what_is_due_and_only_that() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        run(delete(&fakes, &fakes, model, media, None, "alice", now, GRACE)).unwrap();
        let delay = Duration::from_secs(60);

        // Not due yet.
        let early = run(sweep_trash(&fakes, &fakes, now, 10, delay)).unwrap();
        assert_eq!(early, SweepReport::default());
        assert!(fakes.stored().is_some());

        fakes.calls.lock().unwrap().clear();
        let report = run(sweep_trash(&fakes, &fakes, now + GRACE, 10, delay)).unwrap();
        assert_eq!(report.purged, [(model.clone(), *media)]);
        assert_eq!(fakes.calls(), ["list_trash_due", "send", "delete"]);
        let purge = MediaCommand::Purge { model_id: model.clone(), media_id: *media }.to_json();
        assert_eq!(*fakes.sent.lock().unwrap(), [(purge, delay)]);
        assert!(fakes.stored().is_none());
        assert_eq!(fakes.tombstone.lock().unwrap().as_ref().map(|t| t.status), Some(MediaStatus::Deleted));
        let err = run(restore(&fakes, &fakes, model, media, None, "bob", now + GRACE)).unwrap_err();
        assert!(matches!(err, MediaError::NotFound(_)), "purged: nothing to restore");
    }

    #[test]
    fn a_queue_outage_leaves_the_media_in_the_trash_for_the_next_sweep() {
        let record = processed_record();
        let fakes = Fakes { queue_down: true, ..Fakes::holding(record.clone()) };
        let now = OffsetDateTime::now_utc();
        let trashed = run(delete(&fakes, &fakes, &record.model_id, &record.media_id, None, "a", now, GRACE)).unwrap();
        let report = run(sweep_trash(&fakes, &fakes, now + GRACE, 10, Duration::ZERO)).unwrap();
        assert_eq!((report.purged.len(), report.failed), (0, 1));
        assert_eq!(fakes.stored(), Some(trashed), "nothing deleted without its purge queued");
        assert!(matches!(run(sweep_trash(&fakes, &fakes, now, 0, Duration::ZERO)), Err(MediaError::Store(_))));
    }
}
