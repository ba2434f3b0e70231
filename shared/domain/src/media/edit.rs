//! Editing a media's metadata: conditional on the version read, and crops follow a moved focal point.

use std::time::Duration;

use time::OffsetDateTime;

use super::MediaError;
use crate::galleries::republish::{self, Reason};
use crate::ids::{MediaId, ModelId};
use crate::library::{Changes, MediaPatch, apply_patch};
use crate::media::MediaRecord;
use crate::messages::MediaCommand;
use crate::ports::{MediaStore, Queue};

#[derive(Debug, Clone)]
pub struct EditOutcome {
    /// The record as stored now (unchanged when the patch changed nothing).
    pub record: MediaRecord,
    pub changes: Changes,
}

/// Applies `patch` to the media if it is still at version `expected`. Nothing is written when
/// nothing changes. When the focal point moved on a processed media, its crops are queued for
/// regeneration; the edit stands even if the queue is down (the crops then wait for the next
/// regeneration). The galleries the media is in are asked to republish
/// ([`republish::request`]).
#[allow(clippy::too_many_arguments)]
pub async fn edit(
    store: &dyn MediaStore,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    expected: u64,
    patch: MediaPatch,
    actor: &str,
    now: OffsetDateTime,
) -> Result<EditOutcome, MediaError> {
    if patch.is_empty() {
        return Err(MediaError::Invalid("name at least one field to change".into()));
    }
    let mut record = super::read_live(store, model, media).await?;
    if record.version != expected {
        return Err(MediaError::stale(record.version, expected));
    }
    let before = record.clone();
    let changes = apply_patch(&mut record, patch, actor, now)?;
    if !changes.is_empty() {
        store.update_media(&record).await.map_err(MediaError::writing)?;
        tracing::info!(fields = ?changes.fields, version = record.version, "media edited");
        republish::request(queue, Some(&before), &record, Reason::Edit).await;
        if changes.contains("focal_point") && record.source.is_some() {
            let command = MediaCommand::Regenerate {
                model_id: model.clone(),
                media_id: *media,
                presets: Vec::new(),
                crops: true,
            };
            if let Err(e) = command.enqueue(queue, Duration::ZERO).await {
                tracing::error!(error = %format!("{e:#}"), "could not queue the crop regeneration");
            }
        }
    }
    Ok(EditOutcome { record, changes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::FocalPoint;
    use crate::media::fakes::{Fakes, processed_record};

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn caption(text: &str) -> MediaPatch {
        MediaPatch { caption: Some(Some(text.into())), ..MediaPatch::default() }
    }

    #[test]
    fn an_edit_is_written_on_the_version_read_and_only_then() {
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        let outcome = run(edit(&fakes, &fakes, model, media, 1, caption("hi"), "u", now)).unwrap();
        assert_eq!(outcome.changes.fields, ["caption"]);
        assert_eq!(fakes.stored().unwrap().version, 2);
        assert!(fakes.sent.lock().unwrap().is_empty(), "no crops to redo");

        let stale = run(edit(&fakes, &fakes, model, media, 1, caption("again"), "u", now)).unwrap_err();
        assert!(matches!(stale, MediaError::VersionConflict { current_version: Some(2), .. }));
        let empty = run(edit(&fakes, &fakes, model, media, 2, MediaPatch::default(), "u", now)).unwrap_err();
        assert!(matches!(empty, MediaError::Invalid(_)));
        let same = run(edit(&fakes, &fakes, model, media, 2, caption("hi"), "u", now)).unwrap();
        assert!(same.changes.is_empty());
        assert_eq!(
            fakes.calls().iter().filter(|c| *c == "update").count(),
            1,
            "an edit that changes nothing writes nothing"
        );
    }

    #[test]
    fn moving_the_focal_point_queues_the_crops_and_a_queue_outage_keeps_the_edit() {
        let record = processed_record();
        let patch = || MediaPatch { focal_point: Some(Some(FocalPoint { x: 0.2, y: 0.8 })), ..MediaPatch::default() };
        let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
        let fakes = Fakes::holding(record.clone());
        run(edit(&fakes, &fakes, model, media, 1, patch(), "u", now)).unwrap();
        let command =
            MediaCommand::Regenerate { model_id: model.clone(), media_id: *media, presets: vec![], crops: true };
        assert_eq!(*fakes.sent.lock().unwrap(), [(command.to_json(), Duration::ZERO)]);
        assert_eq!(fakes.calls(), ["get", "update", "send"]);

        let down = Fakes { queue_down: true, ..Fakes::holding(record.clone()) };
        let outcome = run(edit(&down, &down, model, media, 1, patch(), "u", now)).unwrap();
        assert_eq!(outcome.record.version, 2);
        assert_eq!(down.stored().unwrap().focal_point, Some(FocalPoint { x: 0.2, y: 0.8 }));
    }
}
