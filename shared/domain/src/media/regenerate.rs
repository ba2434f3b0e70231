//! Asking for fresh derivatives: the processor does the work from the ingest queue.

use std::time::Duration;

use super::MediaError;
use crate::ids::{MediaId, ModelId};
use crate::messages::MediaCommand;
use crate::ports::{MediaStore, Queue};

/// Queues a regeneration of a processed media's derivatives: stale presets always, `presets`
/// even if current, and every cover crop when `crops`. A media without a processed source has
/// nothing to regenerate from.
pub async fn regenerate(
    store: &dyn MediaStore,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    presets: Vec<String>,
    crops: bool,
) -> Result<(), MediaError> {
    let record = super::read_live(store, model, media).await?;
    if record.source.is_none() {
        return Err(MediaError::InvalidState(format!(
            "media {media} is {} and has no processed source to regenerate from",
            record.status.as_str()
        )));
    }
    MediaCommand::Regenerate { model_id: model.clone(), media_id: *media, presets, crops }
        .enqueue(queue, Duration::ZERO)
        .await
        .map_err(MediaError::Store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaStatus;
    use crate::media::fakes::{Fakes, processed_record};

    #[test]
    fn only_a_processed_media_can_be_regenerated() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        rt.block_on(regenerate(&fakes, &fakes, &record.model_id, &record.media_id, vec!["small".into()], false))
            .unwrap();
        assert_eq!(fakes.sent.lock().unwrap().len(), 1);

        let mut uploading = record.clone();
        uploading.status = MediaStatus::Uploading;
        uploading.source = None;
        let fakes = Fakes::holding(uploading);
        let err = rt.block_on(regenerate(&fakes, &fakes, &record.model_id, &record.media_id, vec![], true));
        assert!(matches!(err, Err(MediaError::InvalidState(_))));
        assert!(fakes.sent.lock().unwrap().is_empty());
    }
}
