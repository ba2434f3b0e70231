//! What the processor does when an object arrives for a media: the rules of claims and of "one
//! upload per URL", as pure functions over the record, and the record changes they lead to.
//!
//! - A media not judged yet (`uploading`, `processing`, or `rejected` without a verdict on a file)
//!   takes the object: the stored object is claimed and processed. While it is not judged, a newer
//!   object under its key supersedes the one claimed (the same upload, retried).
//! - A live claim of another delivery on the same object keeps this delivery off: it must come
//!   back later (a transient failure), never be acknowledged as done. A claim whose lease lapsed,
//!   or one taken by an earlier delivery of the same message (so that delivery is gone), is
//!   taken over.
//! - A media judged from an object (processed, or its file rejected) is done with that object, and
//!   any other object at its key is refused: an upload URL is for one upload
//!   (docs/decisions/0006-one-upload-per-url.md).

use std::time::Duration;

use time::OffsetDateTime;

use super::{Claim, MediaRecord, MediaStatus, Rejection};

/// What a delivery does with the object version `etag` of a media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Not judged yet: claim the stored object and process it.
    Process,
    /// This object version was judged already (processed or rejected): nothing to do.
    Done,
    /// Another delivery holds a live claim on this object version until `until`: come back later.
    Busy { until: OffsetDateTime },
    /// The media was judged from another object: this later object is refused and removed.
    Refuse,
    /// The media is in the trash: nothing is processed or removed (a restore brings it back as it
    /// was; after the grace period the sweep purges every object it owns).
    Trashed,
}

/// Decides what a delivery of message `holder` (its queue message id, when known) does with the
/// object version `etag` of `record` at `now`.
pub fn arrival(record: &MediaRecord, etag: &str, holder: Option<&str>, now: OffsetDateTime) -> Arrival {
    match record.status {
        MediaStatus::Uploading => Arrival::Process,
        MediaStatus::Processing => match &record.claim {
            Some(claim) if claim.etag == etag && claim.excludes(holder, now) => Arrival::Busy { until: claim.until },
            // Lapsed, held by an earlier delivery of this message, or a newer object replaced
            // the one claimed before the media was judged.
            _ => Arrival::Process,
        },
        MediaStatus::PendingReview | MediaStatus::Approved | MediaStatus::Rejected => match record.judged_etag() {
            Some(judged) if judged == etag => Arrival::Done,
            Some(_) => Arrival::Refuse,
            // Rejected without a verdict on any file (`processing_failed`): a new attempt.
            None => Arrival::Process,
        },
        MediaStatus::Deleted => Arrival::Trashed,
    }
}

impl MediaRecord {
    /// The object version this media was judged from: the processed source, or the file the
    /// processor rejected (its claim is kept for that). `None` while nothing was judged.
    pub fn judged_etag(&self) -> Option<&str> {
        match (&self.source, self.status) {
            (Some(source), _) => Some(&source.etag),
            (None, MediaStatus::Rejected) => self.claim.as_ref().map(|c| c.etag.as_str()),
            _ => None,
        }
    }

    /// Claims the object version `etag` for the delivery of message `holder`, for `lease`.
    pub fn take_claim(&mut self, etag: &str, holder: Option<&str>, now: OffsetDateTime, lease: Duration) {
        self.status = MediaStatus::Processing;
        self.claim = Some(Claim { etag: etag.to_owned(), until: now + lease, holder: holder.map(str::to_owned) });
    }

    /// The processor gave up without judging the file: every delivery the queue allows but the
    /// last crashed, timed out or failed. The media is `rejected` with `processing_failed` rather
    /// than left `processing`; the claim is dropped, so that a later delivery of the same object
    /// (a redrive from the dead-letter queue) processes it afresh.
    pub fn give_up_processing(&mut self, deliveries: u32, now: OffsetDateTime, actor: &str) {
        let message = format!(
            "processing did not finish in {deliveries} deliveries (the processor crashed, timed out or could \
             not reach its stores); the file was not judged. An operator can retry it from the dead-letter queue."
        );
        self.status = MediaStatus::Rejected;
        self.claim = None;
        self.expires_at = None;
        self.source = None;
        self.rejection = Some(Rejection { code: "processing_failed".into(), message: message.clone() });
        self.record_history(now, actor, "processing_failed", message);
    }

    /// A later object (`etag`) arrived for a judged media and is refused: the record keeps its
    /// status, review and derivatives, and says what happened. Returns false when this refusal is
    /// already recorded (a retried delivery).
    pub fn note_refused_upload(&mut self, etag: &str, now: OffsetDateTime, actor: &str) -> bool {
        let marker = format!("(ETag {etag})");
        if self.history.iter().any(|h| h.action == "upload_refused" && h.summary.contains(&marker)) {
            return false;
        }
        let summary = format!(
            "a later upload {marker} was refused and removed: an upload URL is for one upload, so the media \
             keeps what was judged from the first; its original is no longer stored"
        );
        self.record_history(now, actor, "upload_refused", summary);
        true
    }

    /// The claimed original is gone from the store: the media goes back to `uploading` (a new
    /// upload URL can bring the bytes) instead of staying `processing`.
    pub fn release_missing_original(&mut self, now: OffsetDateTime, actor: &str) {
        self.status = MediaStatus::Uploading;
        self.claim = None;
        self.record_history(now, actor, "original_missing", "the uploaded original is gone; upload it again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MediaId, ModelId};
    use crate::media::fakes::processed_record;

    const LEASE: Duration = Duration::from_secs(120);

    fn uploading() -> MediaRecord {
        let now = OffsetDateTime::now_utc();
        let (model, media) = (ModelId::parse("m1").unwrap(), MediaId::new());
        MediaRecord::new_upload(model, media, "a.jpg".into(), "image/jpeg".into(), 10, now, None)
    }

    #[test]
    fn an_unjudged_media_takes_the_object() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(arrival(&uploading(), "e1", Some("m"), now), Arrival::Process);
        let mut failed = uploading();
        failed.give_up_processing(5, now, "system");
        assert_eq!(failed.status, MediaStatus::Rejected);
        assert_eq!(failed.rejection.as_ref().unwrap().code, "processing_failed");
        assert_eq!(arrival(&failed, "e1", None, now), Arrival::Process, "a redrive retries it");
    }

    #[test]
    fn a_live_claim_of_another_delivery_sends_the_message_back_never_done() {
        let now = OffsetDateTime::now_utc();
        let mut record = uploading();
        record.take_claim("e1", Some("msg-a"), now, LEASE);
        let busy = arrival(&record, "e1", Some("msg-b"), now);
        assert_eq!(busy, Arrival::Busy { until: now + LEASE });
        assert_eq!(arrival(&record, "e1", None, now), busy, "an unknown delivery cannot be told apart");
        // The same message delivered again: its earlier delivery is gone, so it takes over at once.
        assert_eq!(arrival(&record, "e1", Some("msg-a"), now), Arrival::Process);
        // Past the lease anyone takes over.
        assert_eq!(arrival(&record, "e1", Some("msg-b"), now + LEASE), Arrival::Process);
        // A newer object before the media was judged supersedes the claimed one.
        assert_eq!(arrival(&record, "e2", Some("msg-b"), now), Arrival::Process);
    }

    #[test]
    fn a_judged_media_refuses_any_other_object() {
        let now = OffsetDateTime::now_utc();
        let mut processed = processed_record();
        let etag = processed.source.as_ref().unwrap().etag.clone();
        for status in [MediaStatus::PendingReview, MediaStatus::Approved, MediaStatus::Rejected] {
            processed.status = status;
            assert_eq!(arrival(&processed, &etag, None, now), Arrival::Done);
            assert_eq!(arrival(&processed, "other", None, now), Arrival::Refuse);
        }
        // A rejected file is judged too: known by its claim.
        let mut bad = uploading();
        bad.take_claim("bad", None, now, LEASE);
        bad.status = MediaStatus::Rejected;
        assert_eq!(arrival(&bad, "bad", None, now), Arrival::Done);
        assert_eq!(arrival(&bad, "good", None, now), Arrival::Refuse);
    }

    #[test]
    fn a_refusal_is_recorded_once_and_changes_nothing_else() {
        let now = OffsetDateTime::now_utc();
        let mut record = processed_record();
        let before = record.clone();
        assert!(record.note_refused_upload("x1", now, "system"));
        assert!(!record.note_refused_upload("x1", now, "system"), "a retried delivery records nothing");
        assert!(record.note_refused_upload("x2", now, "system"));
        assert_eq!(record.history.len(), 2);
        record.history.clear();
        assert_eq!(record, before);
    }

    #[test]
    fn a_missing_original_makes_the_media_uploadable_again() {
        let now = OffsetDateTime::now_utc();
        let mut record = uploading();
        record.take_claim("e1", Some("m"), now, LEASE);
        record.release_missing_original(now, "system");
        assert_eq!(record.status, MediaStatus::Uploading);
        assert!(record.claim.is_none());
        assert_eq!(record.history[0].action, "original_missing");
    }

    #[test]
    fn the_content_type_follows_the_sniffed_format() {
        let now = OffsetDateTime::now_utc();
        let mut record = uploading();
        record.content_type = "image/png".into();
        assert!(record.follow_sniffed_type("image/jpeg", now, "system"));
        assert_eq!(record.content_type, "image/jpeg");
        assert_eq!(record.history[0].action, "content_type_corrected");
        assert_eq!(record.history[0].summary, "declared image/png, the bytes are image/jpeg");
        assert!(!record.follow_sniffed_type("image/jpeg", now, "system"), "nothing to correct");
        assert_eq!(record.history.len(), 1);
    }
}
