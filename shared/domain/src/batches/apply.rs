//! One operation on one record: the same rules a single request applies
//! ([`crate::library::apply_review`], [`crate::library::apply_patch`], the trash), with the
//! record's values before, for the undo log. Pure: the worker reads, calls this, and writes the
//! record and the outcome together.

use time::OffsetDateTime;

use super::{BatchOperation, ItemOutcome, UndoValues};
use crate::library::{self, LibraryError, MediaPatch, ReviewRequest};
use crate::media::{MediaRecord, MediaStatus, ReviewDecision};

/// What applying an operation to a record came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The record was changed (its version bumped): write it with the outcome.
    Changed { before: UndoValues },
    /// The record already had the values asked for: applied, nothing to write.
    AlreadySo { before: UndoValues },
    /// Not applied, with the outcome and why.
    Skipped(ItemOutcome, String),
}

impl UndoValues {
    /// The values of `record` a batch may change.
    pub fn of(record: &MediaRecord) -> Self {
        Self {
            status: record.status,
            review: record.review.clone(),
            category: record.metadata.category.clone(),
            tags: record.metadata.tags.clone(),
            usage_rights_expires_at: record.metadata.usage_rights_expires_at,
            trashed: record.trashed.clone(),
            gallery: None,
        }
    }

    /// Puts these values back on `record` (a rollback), with a history line; the version is bumped.
    pub fn restore_onto(&self, record: &mut MediaRecord, actor: &str, now: OffsetDateTime) {
        // Undoing a delete: the upload expiry the trash held comes back with the record.
        if self.trashed.is_none()
            && let Some(trash) = &record.trashed
        {
            record.expires_at = trash.expires_at;
        }
        record.status = self.status;
        record.review = self.review.clone();
        record.metadata.category = self.category.clone();
        record.metadata.tags = self.tags.clone();
        record.metadata.usage_rights_expires_at = self.usage_rights_expires_at;
        record.trashed = self.trashed.clone();
        record.version += 1;
        record.updated_at = now;
        record.record_history(now, actor, "rolled_back", "a batch's change was rolled back");
    }
}

/// Who applies a batch, and when.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext<'a> {
    pub actor: &'a str,
    pub admin: bool,
    pub now: OffsetDateTime,
    /// How long a deleted media stays restorable.
    pub trash_grace: std::time::Duration,
}

fn library_skip(e: LibraryError) -> Applied {
    match e {
        LibraryError::InvalidState(m) => Applied::Skipped(ItemOutcome::SkippedInvalidState, m),
        // Parameters are checked at submission; what is left is about this item (20 tags).
        LibraryError::Invalid(m) => Applied::Skipped(ItemOutcome::SkippedInvalidState, m),
    }
}

fn patched(record: &mut MediaRecord, patch: MediaPatch, ctx: &ApplyContext<'_>, before: UndoValues) -> Applied {
    match library::apply_patch(record, patch, ctx.actor, ctx.now) {
        Ok(changes) if changes.is_empty() => Applied::AlreadySo { before },
        Ok(_) => Applied::Changed { before },
        Err(e) => library_skip(e),
    }
}

/// Applies `operation` to `record` (in place; left as it was unless `Changed`). A rollback is
/// not applied here: its values come from the item it undoes ([`UndoValues::restore_onto`]).
pub fn apply_to(record: &mut MediaRecord, operation: &BatchOperation, ctx: &ApplyContext<'_>) -> Applied {
    if operation.admin_only() && !ctx.admin {
        return Applied::Skipped(ItemOutcome::SkippedNotAllowed, "reviews are for admins".into());
    }
    let trashed = record.status == MediaStatus::Deleted;
    if trashed && !matches!(operation, BatchOperation::Restore) {
        return Applied::Skipped(ItemOutcome::SkippedNotFound, "the media is in the trash".into());
    }
    let before = UndoValues::of(record);
    match operation {
        BatchOperation::Approve { note } | BatchOperation::Reject { note, .. } => {
            let (decision, violations) = match operation {
                BatchOperation::Reject { violations, .. } => (ReviewDecision::Reject, violations.clone()),
                _ => (ReviewDecision::Approve, Vec::new()),
            };
            let request = ReviewRequest { decision, violations, note: note.clone() };
            if decision == ReviewDecision::Approve && record.status == MediaStatus::Approved {
                return Applied::AlreadySo { before };
            }
            match library::apply_review(record, request, ctx.actor, ctx.now) {
                Ok(_) => Applied::Changed { before },
                Err(e) => library_skip(e),
            }
        }
        BatchOperation::Categorize { category } => {
            patched(record, MediaPatch { category: Some(category.clone()), ..MediaPatch::default() }, ctx, before)
        }
        BatchOperation::Tag { add, remove } => {
            let mut tags: Vec<_> = record.metadata.tags.iter().filter(|t| !remove.contains(t)).cloned().collect();
            tags.extend(add.iter().filter(|t| !remove.contains(t)).cloned());
            patched(record, MediaPatch { tags: Some(tags), ..MediaPatch::default() }, ctx, before)
        }
        BatchOperation::SetUsageRights { expires_at } => patched(
            record,
            MediaPatch { usage_rights_expires_at: Some(*expires_at), ..MediaPatch::default() },
            ctx,
            before,
        ),
        BatchOperation::Delete => match record.move_to_trash(ctx.actor, ctx.now, ctx.trash_grace) {
            Ok(()) => Applied::Changed { before },
            Err(e) => Applied::Skipped(ItemOutcome::SkippedInvalidState, e.to_string()),
        },
        BatchOperation::Restore => {
            if !trashed {
                return Applied::Skipped(ItemOutcome::SkippedInvalidState, "the media is not in the trash".into());
            }
            match record.restore_from_trash(ctx.actor, ctx.now) {
                Ok(()) => Applied::Changed { before },
                Err(e) => Applied::Skipped(ItemOutcome::SkippedInvalidState, e.to_string()),
            }
        }
        // Membership is the gallery's: a chunk applies these with its gallery write (`gallery.rs`).
        BatchOperation::AddToGallery { .. } | BatchOperation::RemoveFromGallery { .. } => Applied::Skipped(
            ItemOutcome::Failed,
            "a gallery batch is applied with its gallery, not record by record".into(),
        ),
        BatchOperation::Rollback { .. } => {
            Applied::Skipped(ItemOutcome::Failed, "a rollback applies the values of the item it undoes".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Tag;
    use crate::media::fakes::processed_record;

    fn ctx(admin: bool) -> ApplyContext<'static> {
        ApplyContext {
            actor: "u1",
            admin,
            now: OffsetDateTime::now_utc(),
            trash_grace: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn each_operation_uses_the_single_item_rules_and_keeps_the_values_before() {
        let mut record = processed_record();
        let original = record.clone();
        let tag = |t: &str| Tag::parse(t).unwrap();
        let op = BatchOperation::Tag { add: vec![tag("beach"), tag("ss27")], remove: vec![] };
        let Applied::Changed { before } = apply_to(&mut record, &op, &ctx(false)) else { panic!("not applied") };
        assert_eq!(before, UndoValues::of(&original));
        assert_eq!(record.metadata.tags, [tag("beach"), tag("ss27")]);
        assert_eq!(record.version, original.version + 1);
        // Applying it again changes nothing: applied, no write.
        assert!(matches!(apply_to(&mut record, &op, &ctx(false)), Applied::AlreadySo { .. }));

        // A model's batch may not review; an admin's may; a second approval is already so.
        let approve = BatchOperation::Approve { note: None };
        assert!(matches!(
            apply_to(&mut record, &approve, &ctx(false)),
            Applied::Skipped(ItemOutcome::SkippedNotAllowed, _)
        ));
        assert!(matches!(apply_to(&mut record, &approve, &ctx(true)), Applied::Changed { .. }));
        assert_eq!(record.status, MediaStatus::Approved);
        assert!(matches!(apply_to(&mut record, &approve, &ctx(true)), Applied::AlreadySo { .. }));

        // An upload still in flight cannot be approved.
        let mut uploading = crate::media::fakes::uploaded_record();
        assert!(matches!(
            apply_to(&mut uploading, &approve, &ctx(true)),
            Applied::Skipped(ItemOutcome::SkippedInvalidState, _)
        ));
    }

    #[test]
    fn undo_values_put_back_exactly_what_a_batch_changed() {
        let mut record = processed_record();
        let before_batch = record.clone();
        let op = BatchOperation::Categorize { category: Some(crate::ids::Category::parse("runway").unwrap()) };
        let Applied::Changed { before } = apply_to(&mut record, &op, &ctx(false)) else { panic!() };
        before.restore_onto(&mut record, "u1", OffsetDateTime::now_utc());
        assert_eq!(UndoValues::of(&record), UndoValues::of(&before_batch));
        assert_eq!(record.version, before_batch.version + 2);
    }
}
