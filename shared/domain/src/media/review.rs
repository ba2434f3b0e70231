//! Moderation: approve or reject, conditional on the version reviewed when one is named.

use time::OffsetDateTime;

use super::MediaError;
use crate::galleries::republish::{self, Reason};
use crate::ids::{MediaId, ModelId};
use crate::library::{ReviewOutcome, ReviewRequest, apply_review};
use crate::media::MediaRecord;
use crate::ports::{MediaStore, Queue};

/// Applies a reviewer's decision ([`apply_review`] says which moves are allowed). Only the
/// agency's reviewers may call this; callers check that before. The galleries the media was in
/// (a rejection takes it out of them) are asked to republish ([`republish::request`]).
#[allow(clippy::too_many_arguments)]
pub async fn review(
    store: &dyn MediaStore,
    queue: &dyn Queue,
    model: &ModelId,
    media: &MediaId,
    expected: Option<u64>,
    request: ReviewRequest,
    reviewer: &str,
    now: OffsetDateTime,
) -> Result<(MediaRecord, ReviewOutcome), MediaError> {
    let mut record = super::read_live(store, model, media).await?;
    if let Some(expected) = expected.filter(|v| *v != record.version) {
        return Err(MediaError::stale(record.version, expected));
    }
    let before = record.clone();
    let outcome = apply_review(&mut record, request, reviewer, now)?;
    store.update_media(&record).await.map_err(MediaError::writing)?;
    republish::request(queue, Some(&before), &record, Reason::Review).await;
    tracing::info!(status = record.status.as_str(), withdrawn_from = ?outcome.withdrawn_from, "media reviewed");
    Ok((record, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fakes::{Fakes, processed_record};
    use crate::media::{MediaStatus, ReviewDecision};

    #[test]
    fn a_review_moves_the_stored_record_and_refuses_a_stale_version() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let record = processed_record();
        let fakes = Fakes::holding(record.clone());
        let approve = || ReviewRequest { decision: ReviewDecision::Approve, violations: vec![], note: None };
        let now = OffsetDateTime::now_utc();
        let stale =
            rt.block_on(review(&fakes, &fakes, &record.model_id, &record.media_id, Some(3), approve(), "r", now));
        assert!(matches!(stale, Err(MediaError::VersionConflict { current_version: Some(1), .. })));
        let (reviewed, _) = rt
            .block_on(review(&fakes, &fakes, &record.model_id, &record.media_id, Some(1), approve(), "r", now))
            .unwrap();
        assert_eq!(reviewed.status, MediaStatus::Approved);
        assert_eq!(fakes.stored(), Some(reviewed));
    }
}
