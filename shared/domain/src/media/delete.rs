//! Deleting a media: gone at once, its objects purged later from its tombstone.

use std::time::Duration;

use super::MediaError;
use crate::ids::{MediaId, ModelId};
use crate::media::MediaRecord;
use crate::messages::MediaCommand;
use crate::ports::{MediaStore, Queue, TombstoneStore};

/// Deletes the media (if still at version `expected`, when named) and returns the record as it
/// was. The purge is queued first, delayed by `purge_delay`: if the delete then fails, the purge
/// finds the record alive and does nothing; if it succeeds, nothing is lost even if this process
/// dies at once.
pub async fn delete<S: MediaStore + TombstoneStore + ?Sized>(
    store: &S,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    expected: Option<u64>,
    purge_delay: Duration,
) -> Result<MediaRecord, MediaError> {
    let record = store.get_media(model, media).await.map_err(MediaError::reading(*media))?;
    if let Some(expected) = expected.filter(|v| *v != record.version) {
        return Err(MediaError::stale(record.version, expected));
    }
    MediaCommand::Purge { model_id: model.clone(), media_id: *media }
        .enqueue(queue, purge_delay)
        .await
        .map_err(MediaError::Store)?;
    store.delete_media(&record).await.map_err(MediaError::writing)?;
    tracing::info!(galleries = record.galleries.len(), "media deleted; purge queued");
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fakes::{Fakes, processed_record};

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn the_purge_is_queued_delayed_before_the_record_is_deleted() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let delay = Duration::from_secs(60);
        let deleted = run(delete(&fakes, &fakes, &record.model_id, &record.media_id, Some(1), delay)).unwrap();
        assert_eq!(deleted, record);
        assert_eq!(fakes.calls(), ["get", "send", "delete"]);
        let sent = fakes.sent.lock().unwrap().clone();
        assert_eq!(
            sent,
            [(MediaCommand::Purge { model_id: record.model_id, media_id: record.media_id }.to_json(), delay)]
        );
        assert!(fakes.stored().is_none() && fakes.tombstone.lock().unwrap().is_some());
    }

    #[test]
    fn nothing_is_deleted_when_the_purge_cannot_be_queued_or_the_version_is_stale() {
        let record = processed_record();
        let down = Fakes { queue_down: true, ..Fakes::holding(record.clone()) };
        let err = run(delete(&down, &down, &record.model_id, &record.media_id, None, Duration::ZERO)).unwrap_err();
        assert!(matches!(err, MediaError::Store(e) if e.is_transient()));
        assert_eq!(down.stored(), Some(record.clone()));

        let fakes = Fakes::holding(record.clone());
        let err = run(delete(&fakes, &fakes, &record.model_id, &record.media_id, Some(7), Duration::ZERO)).unwrap_err();
        assert!(matches!(err, MediaError::VersionConflict { current_version: Some(1), .. }));
        assert_eq!(fakes.calls(), ["get"]);
        let missing = MediaId::new();
        let err = run(delete(&fakes, &fakes, &record.model_id, &missing, None, Duration::ZERO)).unwrap_err();
        assert!(matches!(err, MediaError::NotFound(_)));
    }
}
