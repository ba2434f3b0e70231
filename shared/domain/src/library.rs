//! The media library's rules: what an edit may change, how moderation moves a record, which
//! media look alike. Pure functions over a record; the use cases in [`crate::media`] read, apply
//! one of these, and write conditionally.

use time::OffsetDateTime;

use crate::ids::{Category, GalleryId, MediaId, Tag};
use crate::media::{Credit, FocalPoint, MAX_TAGS, MediaRecord, MediaStatus, Review, ReviewDecision, Violation};

pub const MAX_CAPTION_CHARS: usize = 2000;
pub const MAX_ALT_TEXT_CHARS: usize = 1000;
pub const MAX_CREDITS: usize = 20;
pub const MAX_CREDIT_ROLE_CHARS: usize = 64;
pub const MAX_CREDIT_NAME_CHARS: usize = 200;
pub const MAX_VIOLATIONS: usize = 20;
pub const MAX_VIOLATION_CODE_CHARS: usize = 64;
pub const MAX_NOTE_CHARS: usize = 1000;

/// A refused change: the record is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// The request itself is wrong (a field out of bounds).
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but the media is not in a state where it applies.
    #[error("{0}")]
    InvalidState(String),
}

/// Changes to the editable fields. `None`: leave as is; `Some(None)`: clear.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPatch {
    pub caption: Option<Option<String>>,
    pub alt_text: Option<Option<String>>,
    pub category: Option<Option<Category>>,
    pub tags: Option<Vec<Tag>>,
    pub credits: Option<Vec<Credit>>,
    pub focal_point: Option<Option<FocalPoint>>,
    pub usage_rights_expires_at: Option<Option<OffsetDateTime>>,
}

impl MediaPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What an applied patch changed, in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub fields: Vec<&'static str>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn contains(&self, field: &str) -> bool {
        self.fields.contains(&field)
    }
}

fn text(field: &str, value: Option<String>, max_chars: usize) -> Result<Option<String>, LibraryError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.chars().count() > max_chars {
        return Err(LibraryError::Invalid(format!("{field} must be at most {max_chars} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(LibraryError::Invalid(format!("{field} must not contain control characters")));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String, LibraryError> {
    match text(field, Some(value.to_owned()), max_chars)? {
        Some(v) => Ok(v),
        None => Err(LibraryError::Invalid(format!("{field} must not be empty"))),
    }
}

fn check_focal_point(point: FocalPoint) -> Result<FocalPoint, LibraryError> {
    let inside = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
    if inside(point.x) && inside(point.y) {
        Ok(point)
    } else {
        Err(LibraryError::Invalid("focal_point x and y must be fractions between 0 and 1".into()))
    }
}

/// Validates `patch` and applies it to `record` (in place, nothing else on failure). When
/// anything changed, the version is bumped, `updated_at` set and a history line added.
pub fn apply_patch(
    record: &mut MediaRecord,
    patch: MediaPatch,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Changes, LibraryError> {
    let mut next = record.metadata.clone();
    let mut focal_point = record.focal_point;
    if let Some(caption) = patch.caption {
        next.caption = text("caption", caption, MAX_CAPTION_CHARS)?;
    }
    if let Some(alt) = patch.alt_text {
        next.alt_text = text("alt_text", alt, MAX_ALT_TEXT_CHARS)?;
    }
    if let Some(category) = patch.category {
        next.category = category;
    }
    if let Some(tags) = patch.tags {
        let mut unique: Vec<Tag> = Vec::with_capacity(tags.len());
        for tag in tags {
            if !unique.contains(&tag) {
                unique.push(tag);
            }
        }
        if unique.len() > MAX_TAGS {
            return Err(LibraryError::Invalid(format!("at most {MAX_TAGS} distinct tags")));
        }
        next.tags = unique;
    }
    if let Some(credits) = patch.credits {
        if credits.len() > MAX_CREDITS {
            return Err(LibraryError::Invalid(format!("at most {MAX_CREDITS} credits")));
        }
        next.credits = credits
            .into_iter()
            .map(|c| {
                Ok(Credit {
                    role: required_text("credits[].role", &c.role, MAX_CREDIT_ROLE_CHARS)?,
                    name: required_text("credits[].name", &c.name, MAX_CREDIT_NAME_CHARS)?,
                })
            })
            .collect::<Result<_, LibraryError>>()?;
    }
    if let Some(point) = patch.focal_point {
        focal_point = point.map(check_focal_point).transpose()?;
    }
    if let Some(expiry) = patch.usage_rights_expires_at {
        next.usage_rights_expires_at = expiry;
    }

    let before = &record.metadata;
    let mut changes = Changes::default();
    let mut changed = |differs: bool, name: &'static str| {
        if differs {
            changes.fields.push(name);
        }
    };
    changed(before.caption != next.caption, "caption");
    changed(before.alt_text != next.alt_text, "alt_text");
    changed(before.category != next.category, "category");
    changed(before.tags != next.tags, "tags");
    changed(before.credits != next.credits, "credits");
    changed(record.focal_point != focal_point, "focal_point");
    changed(before.usage_rights_expires_at != next.usage_rights_expires_at, "usage_rights_expires_at");
    if changes.is_empty() {
        return Ok(changes);
    }
    record.metadata = next;
    record.focal_point = focal_point;
    record.version += 1;
    record.updated_at = now;
    record.record_history(now, actor, "edited", format!("changed {}", changes.fields.join(", ")));
    Ok(changes)
}

/// A moderation decision as a reviewer submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    pub decision: ReviewDecision,
    pub violations: Vec<Violation>,
    pub note: Option<String>,
}

/// What a review did besides moving the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewOutcome {
    /// Published galleries the media was taken out of (a rejection of a published media).
    pub withdrawn_from: Vec<GalleryId>,
}

/// Moves a record through moderation. Approve applies to `pending_review` and (a change of
/// mind) `rejected` media whose file was processed; reject applies to `pending_review`,
/// `rejected` (new violations) and `approved` media, and takes a rejected media out of every
/// published gallery (its links stay, unpublished: the galleries still hold it, and an approval
/// republishes them with it). Uploads still in flight cannot be reviewed.
pub fn apply_review(
    record: &mut MediaRecord,
    request: ReviewRequest,
    reviewer: &str,
    now: OffsetDateTime,
) -> Result<ReviewOutcome, LibraryError> {
    let note = text("note", request.note, MAX_NOTE_CHARS)?;
    if request.violations.len() > MAX_VIOLATIONS {
        return Err(LibraryError::Invalid(format!("at most {MAX_VIOLATIONS} violations")));
    }
    let violations = request
        .violations
        .into_iter()
        .map(|v| {
            let code = v.code.trim().to_ascii_lowercase();
            let well_formed = !code.is_empty()
                && code.len() <= MAX_VIOLATION_CODE_CHARS
                && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !well_formed {
                return Err(LibraryError::Invalid(format!(
                    "violation codes are 1 to {MAX_VIOLATION_CODE_CHARS} characters of a-z, 0-9, '-' or '_'"
                )));
            }
            Ok(Violation { code, severity: v.severity, note: text("violations[].note", v.note, MAX_NOTE_CHARS)? })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let status = record.status;
    let mut outcome = ReviewOutcome::default();
    match request.decision {
        ReviewDecision::Approve => {
            if !violations.is_empty() {
                return Err(LibraryError::Invalid("an approval carries no violations".into()));
            }
            if !matches!(status, MediaStatus::PendingReview | MediaStatus::Rejected) {
                return Err(LibraryError::InvalidState(format!(
                    "only pending_review or rejected media can be approved; this one is {}",
                    status.as_str()
                )));
            }
            if record.source.is_none() || record.derivatives.is_empty() {
                return Err(LibraryError::InvalidState(
                    "this upload was never processed into a photo (see `rejection`), so it cannot be approved".into(),
                ));
            }
            record.status = MediaStatus::Approved;
            record.record_history(now, reviewer, "approved", note.clone().unwrap_or_else(|| "approved".into()));
        }
        ReviewDecision::Reject => {
            if violations.is_empty() {
                return Err(LibraryError::Invalid("a rejection names at least one violation".into()));
            }
            if !matches!(status, MediaStatus::PendingReview | MediaStatus::Rejected | MediaStatus::Approved) {
                return Err(LibraryError::InvalidState(format!(
                    "media that is {} cannot be reviewed until it is processed",
                    status.as_str()
                )));
            }
            // The galleries keep holding it (they leave it out of their documents while it is
            // not approved), so its links stay, unpublished: an approval finds them again.
            for link in record.galleries.iter_mut().filter(|g| g.published) {
                link.published = false;
                outcome.withdrawn_from.push(link.gallery_id.clone());
            }
            record.status = MediaStatus::Rejected;
            let codes: Vec<&str> = violations.iter().map(|v| v.code.as_str()).collect();
            let mut summary = format!("rejected: {}", codes.join(", "));
            if !outcome.withdrawn_from.is_empty() {
                let ids: Vec<&str> = outcome.withdrawn_from.iter().map(GalleryId::as_str).collect();
                summary.push_str(&format!("; withdrawn from published galleries {}", ids.join(", ")));
            }
            record.record_history(now, reviewer, "rejected", summary);
        }
    }
    record.review =
        Some(Review { decision: request.decision, reviewer: reviewer.to_owned(), at: now, note, violations });
    record.version += 1;
    record.updated_at = now;
    Ok(outcome)
}

/// Perceptual hashes at most this many bits apart are reported as likely duplicates (the same
/// photo re-encoded, resized or lightly edited; different photos sit 25+ bits apart).
pub const LIKELY_DUPLICATE_DISTANCE: u32 = 10;

/// Other media of the model whose fingerprint is within [`LIKELY_DUPLICATE_DISTANCE`] of
/// `record`'s, nearest first.
pub fn likely_duplicates(record: &MediaRecord, fingerprints: &[crate::ports::Fingerprint]) -> Vec<(MediaId, u32)> {
    let Some(own) =
        record.source.as_ref().and_then(|s| s.phash.as_deref()).and_then(|h| u64::from_str_radix(h, 16).ok())
    else {
        return Vec::new();
    };
    let mut found: Vec<(MediaId, u32)> = fingerprints
        .iter()
        .filter(|f| f.media_id != record.media_id)
        .filter_map(|f| u64::from_str_radix(&f.phash, 16).ok().map(|h| (f.media_id, (h ^ own).count_ones())))
        .filter(|(_, distance)| *distance <= LIKELY_DUPLICATE_DISTANCE)
        .collect();
    found.sort_by_key(|(id, distance)| (*distance, *id));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{GalleryLink, Severity};

    fn record(status: MediaStatus) -> MediaRecord {
        let mut r = crate::media::fakes::uploaded_record();
        r.status = status;
        r
    }

    fn processed(status: MediaStatus) -> MediaRecord {
        let mut r = crate::media::fakes::processed_record();
        r.status = status;
        r
    }

    fn violation(code: &str) -> Violation {
        Violation { code: code.into(), severity: Severity::High, note: None }
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_records_it() {
        let mut r = record(MediaStatus::PendingReview);
        let now = OffsetDateTime::now_utc();
        let patch = MediaPatch {
            caption: Some(Some("  On set  ".into())),
            tags: Some(vec![Tag::parse("b").unwrap(), Tag::parse("a").unwrap(), Tag::parse("B").unwrap()]),
            ..MediaPatch::default()
        };
        let changes = apply_patch(&mut r, patch, "editor", now).unwrap();
        assert_eq!(changes.fields, ["caption", "tags"]);
        assert_eq!(r.metadata.caption.as_deref(), Some("On set"));
        assert_eq!(r.metadata.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(r.version, 2);
        assert_eq!(r.history[0].action, "edited");
        assert_eq!(r.history[0].summary, "changed caption, tags");

        // The same values again: nothing to write.
        let again = MediaPatch { caption: Some(Some("On set".into())), ..MediaPatch::default() };
        assert!(apply_patch(&mut r, again, "editor", now).unwrap().is_empty());
        assert_eq!(r.version, 2);

        // Clearing.
        let clear = MediaPatch { caption: Some(None), ..MediaPatch::default() };
        assert_eq!(apply_patch(&mut r, clear, "editor", now).unwrap().fields, ["caption"]);
        assert_eq!(r.metadata.caption, None);
    }

    #[test]
    fn a_bad_patch_leaves_the_record_alone() {
        let mut r = record(MediaStatus::PendingReview);
        let before = r.clone();
        let now = OffsetDateTime::now_utc();
        let bad = [
            MediaPatch { caption: Some(Some("x".repeat(MAX_CAPTION_CHARS + 1))), ..Default::default() },
            MediaPatch { alt_text: Some(Some("a\u{7}b".into())), ..Default::default() },
            MediaPatch {
                tags: Some((0..=MAX_TAGS).map(|i| Tag::parse(&format!("t{i}")).unwrap()).collect()),
                ..Default::default()
            },
            MediaPatch { credits: Some(vec![Credit { role: " ".into(), name: "n".into() }]), ..Default::default() },
            MediaPatch { focal_point: Some(Some(FocalPoint { x: 1.5, y: 0.5 })), ..Default::default() },
            MediaPatch { focal_point: Some(Some(FocalPoint { x: f32::NAN, y: 0.5 })), ..Default::default() },
            MediaPatch {
                caption: Some(Some("fine".into())),
                tags: Some(vec![]),
                credits: Some(vec![Credit { role: "r".into(), name: "".into() }]),
                ..Default::default()
            },
        ];
        for patch in bad {
            assert!(matches!(apply_patch(&mut r, patch.clone(), "e", now), Err(LibraryError::Invalid(_))), "{patch:?}");
            assert_eq!(r, before);
        }
    }

    #[test]
    fn moderation_moves_only_reviewable_media() {
        let now = OffsetDateTime::now_utc();
        let approve = ReviewRequest { decision: ReviewDecision::Approve, violations: vec![], note: None };
        let reject =
            ReviewRequest { decision: ReviewDecision::Reject, violations: vec![violation("Blurry")], note: None };

        let mut r = processed(MediaStatus::PendingReview);
        apply_review(&mut r, approve.clone(), "boss", now).unwrap();
        assert_eq!((r.status, r.version), (MediaStatus::Approved, 2));
        assert_eq!(r.review.as_ref().unwrap().reviewer, "boss");
        // Approving twice is a state error, not a silent success.
        assert!(matches!(apply_review(&mut r, approve.clone(), "boss", now), Err(LibraryError::InvalidState(_))));

        for status in [MediaStatus::Uploading, MediaStatus::Processing] {
            let mut r = processed(status);
            assert!(matches!(apply_review(&mut r, approve.clone(), "b", now), Err(LibraryError::InvalidState(_))));
            assert!(matches!(apply_review(&mut r, reject.clone(), "b", now), Err(LibraryError::InvalidState(_))));
        }
        // A file the processor refused stays refused.
        let mut refused = record(MediaStatus::Rejected);
        assert!(matches!(apply_review(&mut refused, approve.clone(), "b", now), Err(LibraryError::InvalidState(_))));
        // A rejection needs a reason; an approval takes none.
        let mut r = processed(MediaStatus::PendingReview);
        let bare = ReviewRequest { decision: ReviewDecision::Reject, violations: vec![], note: None };
        assert!(matches!(apply_review(&mut r, bare, "b", now), Err(LibraryError::Invalid(_))));
        let odd = ReviewRequest { decision: ReviewDecision::Approve, violations: vec![violation("x")], note: None };
        assert!(matches!(apply_review(&mut r, odd, "b", now), Err(LibraryError::Invalid(_))));
        let bad_code =
            ReviewRequest { decision: ReviewDecision::Reject, violations: vec![violation("a b")], note: None };
        assert!(matches!(apply_review(&mut r, bad_code, "b", now), Err(LibraryError::Invalid(_))));
        assert_eq!(r.version, 1);
    }

    #[test]
    fn rejecting_a_published_media_withdraws_it_from_published_galleries() {
        let now = OffsetDateTime::now_utc();
        let mut r = processed(MediaStatus::Approved);
        r.galleries = vec![
            GalleryLink { gallery_id: GalleryId::parse("pub").unwrap(), published: true },
            GalleryLink { gallery_id: GalleryId::parse("draft").unwrap(), published: false },
        ];
        let reject = ReviewRequest {
            decision: ReviewDecision::Reject,
            violations: vec![violation("rights")],
            note: Some("no release".into()),
        };
        let outcome = apply_review(&mut r, reject, "boss", now).unwrap();
        assert_eq!(outcome.withdrawn_from, [GalleryId::parse("pub").unwrap()]);
        assert_eq!(r.galleries.len(), 2, "still a member of both");
        assert!(r.galleries.iter().all(|g| !g.published), "shown by neither");
        assert_eq!(r.status, MediaStatus::Rejected);
        assert_eq!(r.review.as_ref().unwrap().violations[0].code, "rights");
        assert!(r.history[0].summary.contains("withdrawn from published galleries pub"));
    }

    #[test]
    fn duplicates_are_the_near_fingerprints_nearest_first() {
        let mut r = processed(MediaStatus::Approved);
        r.source.as_mut().unwrap().phash = Some("00000000000000ff".into());
        let (near, nearer, far) = (MediaId::new(), MediaId::new(), MediaId::new());
        let prints = [
            crate::ports::Fingerprint { media_id: r.media_id, phash: "00000000000000ff".into() },
            crate::ports::Fingerprint { media_id: near, phash: "0000000000000000".into() },
            crate::ports::Fingerprint { media_id: nearer, phash: "00000000000000fe".into() },
            crate::ports::Fingerprint { media_id: far, phash: "ffffffffffff0000".into() },
        ];
        assert_eq!(likely_duplicates(&r, &prints), vec![(nearer, 1), (near, 8)]);
        r.source.as_mut().unwrap().phash = None;
        assert!(likely_duplicates(&r, &prints).is_empty());
    }

    #[test]
    fn history_is_capped_newest_first() {
        let mut r = record(MediaStatus::PendingReview);
        let now = OffsetDateTime::now_utc();
        for i in 0..(crate::media::HISTORY_CAP + 10) {
            r.record_history(now, "a", "edited", format!("{i}"));
        }
        assert_eq!(r.history.len(), crate::media::HISTORY_CAP);
        assert_eq!(r.history[0].summary, format!("{}", crate::media::HISTORY_CAP + 9));
    }
}
