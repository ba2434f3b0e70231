//! The trash's rules: what moving a media to the trash and back does to its record. Pure; the
//! use cases in [`super::delete`] (and batches) read, apply one of these, and write conditionally.

use std::time::Duration;

use time::OffsetDateTime;

use super::{MediaRecord, MediaStatus, Trash};
use crate::library::LibraryError;

impl MediaRecord {
    /// Moves the media to the trash: status `deleted`, the status it had kept in
    /// [`MediaRecord::trashed`] with who deleted it, when, and when it may be purged (`now +
    /// grace`). Its expiry (an upload still waiting for its bytes) is suspended meanwhile, so
    /// only the trash sweep ends it. Bumps the version and adds a history line; a media already
    /// in the trash is refused.
    pub fn move_to_trash(&mut self, actor: &str, now: OffsetDateTime, grace: Duration) -> Result<(), LibraryError> {
        if self.is_trashed() {
            return Err(LibraryError::InvalidState("the media is in the trash already".into()));
        }
        let purge_after = now + grace;
        self.trashed = Some(Trash {
            previous_status: self.status,
            deleted_at: now,
            deleted_by: actor.to_owned(),
            purge_after,
            expires_at: self.expires_at.take(),
        });
        self.status = MediaStatus::Deleted;
        self.version += 1;
        self.updated_at = now;
        let until = purge_after.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        self.record_history(now, actor, "deleted", format!("moved to the trash; restorable until {until}"));
        Ok(())
    }

    /// Takes the media out of the trash, within its grace period: the status it had (a media that
    /// was being processed comes back `uploading`, as its processing was dropped at the delete:
    /// a new upload URL brings the bytes again), its expiry, everything else as it was. Bumps the
    /// version and adds a history line. Not in the trash, or past `purge_after` (the sweep is
    /// purging it): `InvalidState`.
    pub fn restore_from_trash(&mut self, actor: &str, now: OffsetDateTime) -> Result<(), LibraryError> {
        let Some(trash) = self.trashed.clone().filter(|_| self.is_trashed()) else {
            return Err(LibraryError::InvalidState("the media is not in the trash".into()));
        };
        if now >= trash.purge_after {
            let at = trash.purge_after.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            return Err(LibraryError::InvalidState(format!(
                "the grace period ended at {at}: the media is being purged and can no longer be restored"
            )));
        }
        let mut summary = format!("restored from the trash as {}", trash.previous_status.as_str());
        self.status = match trash.previous_status {
            MediaStatus::Processing => {
                self.claim = None;
                summary = "restored from the trash as uploading (its processing was dropped): upload again".into();
                MediaStatus::Uploading
            }
            // A record is never trashed twice; should one say so, it comes back as uploaded.
            MediaStatus::Deleted => MediaStatus::Uploading,
            other => other,
        };
        self.expires_at = trash.expires_at;
        self.trashed = None;
        self.version += 1;
        self.updated_at = now;
        self.record_history(now, actor, "restored", summary);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fakes::{processed_record, uploaded_record};

    const GRACE: Duration = Duration::from_secs(3600);

    #[test]
    fn the_trash_keeps_what_a_restore_puts_back() {
        let now = OffsetDateTime::now_utc();
        let mut record = processed_record();
        record.status = MediaStatus::Approved;
        let before = record.clone();
        record.move_to_trash("alice", now, GRACE).unwrap();
        assert_eq!((record.status, record.version), (MediaStatus::Deleted, 2));
        let trash = record.trashed.clone().unwrap();
        assert_eq!(trash.previous_status, MediaStatus::Approved);
        assert_eq!((trash.deleted_by.as_str(), trash.deleted_at, trash.purge_after), ("alice", now, now + GRACE));
        assert_eq!(record.purge_after(), Some(now + GRACE));
        assert_eq!(record.history[0].action, "deleted");
        assert!(matches!(record.move_to_trash("alice", now, GRACE), Err(LibraryError::InvalidState(_))));

        record.restore_from_trash("bob", now + GRACE / 2).unwrap();
        assert_eq!((record.status, record.version, record.trashed.as_ref()), (MediaStatus::Approved, 3, None));
        assert_eq!(record.history[0].action, "restored");
        assert_eq!((record.derivatives.clone(), record.metadata.clone()), (before.derivatives, before.metadata));
        assert_eq!(record.purge_after(), None);
        assert!(matches!(record.restore_from_trash("bob", now), Err(LibraryError::InvalidState(_))));
    }

    #[test]
    fn past_the_grace_period_nothing_comes_back() {
        let now = OffsetDateTime::now_utc();
        let mut record = processed_record();
        record.move_to_trash("a", now, GRACE).unwrap();
        let trashed = record.clone();
        assert!(matches!(record.restore_from_trash("a", now + GRACE), Err(LibraryError::InvalidState(_))));
        assert_eq!(record, trashed);
    }

    #[test]
    fn an_upload_keeps_its_expiry_for_after_the_trash_and_processing_is_dropped() {
        let now = OffsetDateTime::now_utc();
        let mut record = uploaded_record();
        record.expires_at = Some(now + Duration::from_secs(60));
        record.move_to_trash("a", now, GRACE).unwrap();
        assert_eq!(record.expires_at, None, "only the sweep ends a trashed media");
        record.restore_from_trash("a", now).unwrap();
        assert_eq!((record.status, record.expires_at), (MediaStatus::Uploading, Some(now + Duration::from_secs(60))));

        let mut processing = uploaded_record();
        processing.status = MediaStatus::Processing;
        processing.claim = Some(crate::media::Claim { etag: "e".into(), until: now, holder: None });
        processing.move_to_trash("a", now, GRACE).unwrap();
        processing.restore_from_trash("a", now).unwrap();
        assert_eq!((processing.status, processing.claim), (MediaStatus::Uploading, None));
    }
}
