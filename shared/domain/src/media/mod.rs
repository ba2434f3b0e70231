//! The media record and its lifecycle.

pub mod arrival;
mod delete;
mod edit;
mod error;
#[cfg(test)]
pub(crate) mod fakes;
mod regenerate;
mod review;
mod trash;
pub mod upload;
mod versions;

pub use arrival::{Arrival, arrival};
pub use delete::{SweepReport, delete, restore, sweep_trash};
pub use edit::{EditOutcome, edit};
pub use error::MediaError;
pub use regenerate::regenerate;
pub use review::review;
pub use upload::{UploadError, UploadRequest, create_upload, renew_upload};
pub use versions::{
    AppliedWatermark, ImageVersion, MAX_VERSIONS, NewVersion, RestoreRequest, VersionOrigin, restore_version,
};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{Category, GalleryId, MediaId, ModelId, ObjectKey, Tag};
use crate::ports::MediaStore;

/// The media a use case acts on: absent, expired and trashed media are all `NotFound` (a
/// trashed media is gone for readers, edits, reviews and jobs; only [`restore`] and the trash
/// sweep act on it).
pub async fn read_live<S: MediaStore + ?Sized>(
    store: &S,
    model: &ModelId,
    media: &MediaId,
) -> Result<MediaRecord, MediaError> {
    let record = store.get_media(model, media).await.map_err(MediaError::reading(*media))?;
    unless_trashed(record)
}

/// `record` as readers see it: `NotFound` when it is in the trash.
pub fn unless_trashed(record: MediaRecord) -> Result<MediaRecord, MediaError> {
    if record.is_trashed() {
        return Err(MediaError::NotFound(format!("media {} not found (it is in the trash)", record.media_id)));
    }
    Ok(record)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// The record exists and a presigned upload was handed out; no bytes have been processed.
    Uploading,
    /// A processor has claimed the uploaded object and is making derivatives.
    Processing,
    PendingReview,
    Approved,
    Rejected,
    /// In the trash: hidden from every reader and listing (but the trash's), restorable until
    /// its `purge_after` ([`MediaRecord::trashed`] keeps the status it had).
    Deleted,
}

impl MediaStatus {
    pub const ALL: [MediaStatus; 6] =
        [Self::Uploading, Self::Processing, Self::PendingReview, Self::Approved, Self::Rejected, Self::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Processing => "processing",
            Self::PendingReview => "pending_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What the processor learnt about the uploaded original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The object's ETag when it was processed: a replayed event for the same ETag does no work.
    pub etag: String,
    pub bytes: u64,
    /// Sniffed from the bytes, never taken from the name or the declared type.
    pub format: String,
    /// Display dimensions, after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// The EXIF orientation (1..=8) that was applied.
    pub orientation: u16,
    /// SHA-256 of the original bytes, hex.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
    /// Kept only when the deployment opts in (`PHOENIX_KEEP_GPS`); shown to admins only, never public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsPosition>,
    /// ThumbHash of the photo (base64): a placeholder a client can render before any derivative loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_color: Option<String>,
    /// 64-bit perceptual hash (hex), for finding likely duplicates within a portfolio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsPosition {
    pub latitude: f64,
    pub longitude: f64,
}

impl Eq for GpsPosition {}

/// Where a crop centres, as fractions of the displayed width and height.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FocalPoint {
    pub x: f32,
    pub y: f32,
}

impl Eq for FocalPoint {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivative {
    pub preset: String,
    /// The preset's version when this was made: older than the configured one means stale.
    #[serde(default)]
    pub preset_version: u32,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub key: ObjectKey,
    /// Provenance: the original's ETag this was made from, and every operation applied.
    #[serde(default)]
    pub source_etag: String,
    #[serde(default)]
    pub operations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable, machine-readable reason, e.g. `unsupported_format`, `too_many_pixels`, or
    /// `processing_failed` when the processor gave up without judging the file.
    pub code: String,
    pub message: String,
}

/// What people say about a photo; edited with `PATCH`, validated by [`crate::library`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<Credit>,
    /// After this instant the agency may no longer use the photo.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub usage_rights_expires_at: Option<OffsetDateTime>,
}

/// Who made the photo what it is: `{role: "photographer", name: "Ada Lovelace"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub role: String,
    pub name: String,
}

/// A media's place in a gallery. Rejecting a media takes it out of the published ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalleryLink {
    pub gallery_id: GalleryId,
    pub published: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One reason a reviewer gave for rejecting: `{code: "nudity", severity: "high", note}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub code: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The latest moderation decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub decision: ReviewDecision,
    /// The reviewer's subject (`sub` claim).
    pub reviewer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// One line of a media's processing and edit history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `system` for the processor, else the caller's subject.
    pub actor: String,
    /// `uploaded`, `upload_url_renewed`, `processed`, `content_type_corrected`, `rejected_file`,
    /// `processing_failed`, `upload_refused`, `original_missing`, `regenerated`, `edited`,
    /// `approved`, `rejected`.
    pub action: String,
    pub summary: String,
}

/// A delivery's hold on one object version of a media while it processes it: the lease that
/// keeps a duplicate delivery from repeating the work. It expires into something (STYLE 15): past
/// `until`, or on a new delivery of the message that took it (its holder died or overran), the next
/// delivery takes over; a delivery that meets a live claim of another is a transient failure that
/// comes back later, never acknowledged as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The object version (the original's ETag) claimed; after a rejection, the version judged.
    pub etag: String,
    /// The lease's end: the claim time plus the time one delivery may take
    /// ([`crate::Limits::processing_lease`]).
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// The queue message whose delivery holds the claim (SQS keeps a message's id across
    /// receives): a later delivery of the same message means this one is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

impl Claim {
    /// Whether the claim still keeps `holder`'s delivery off this object version at `now`: it is
    /// live, and held by another message (or by one that cannot be told apart).
    pub fn excludes(&self, holder: Option<&str>, now: OffsetDateTime) -> bool {
        let same_message = matches!((self.holder.as_deref(), holder), (Some(a), Some(b)) if a == b);
        self.until > now && !same_message
    }
}

/// Why and until when a media is in the trash (its status is `deleted`): a restore within the
/// grace period brings back `previous_status`; after `purge_after` the trash sweep purges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trash {
    /// The status it had when it was deleted.
    pub previous_status: MediaStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
    /// The caller's subject.
    pub deleted_by: String,
    /// The end of the grace period: restorable before, purged after.
    #[serde(with = "time::serde::rfc3339")]
    pub purge_after: OffsetDateTime,
    /// The record's `expires_at` (an upload still waiting for its bytes), suspended while it is
    /// in the trash so that only the sweep ends it; a restore puts it back.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub model_id: ModelId,
    pub media_id: MediaId,
    pub status: MediaStatus,
    pub filename: String,
    pub content_type: String,
    pub declared_bytes: u64,
    pub original_key: ObjectKey,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Incremented by every write; writes are conditional on the version they read.
    pub version: u64,
    /// Set while a record may still be abandoned (an upload never made): stores treat a record
    /// past this instant as absent, and DynamoDB's TTL removes it eventually.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the latest presigned upload URL handed out for this media expires (set by
    /// [`create_upload`] and [`renew_upload`]); shown while the media is `uploading`.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub upload_expires_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceInfo>,
    #[serde(default)]
    pub derivatives: Vec<Derivative>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// Centre for cover crops; the photo's centre when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal_point: Option<FocalPoint>,
    #[serde(default)]
    pub metadata: MediaMetadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub galleries: Vec<GalleryLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// Newest first, at most [`HISTORY_CAP`] entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// The current image version's number: 1 is the upload; each edit or restore adds one.
    #[serde(default = "first_version")]
    pub image_version: u32,
    /// The current version's source when an edit made it (else the original is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_source_key: Option<crate::ids::ObjectKey>,
    /// The watermark the current version's derivatives carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<AppliedWatermark>,
    /// How the current version was made (absent for the upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_origin: Option<VersionOrigin>,
    /// Earlier versions, oldest first, at most [`MAX_VERSIONS`] - 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_versions: Vec<ImageVersion>,
    /// Set while the media is in the trash (status `deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed: Option<Trash>,
}

fn first_version() -> u32 {
    1
}

/// History is for "what happened lately": older lines fall off so a record stays small
/// (DynamoDB items are at most 400 KB).
pub const HISTORY_CAP: usize = 50;
/// A media carries at most this many tags ...
pub const MAX_TAGS: usize = 20;
/// ... and belongs to at most this many galleries: each is an index entry written with the
/// record in one transaction, and a transaction holds at most 100 items.
pub const MAX_GALLERIES: usize = 25;

impl MediaRecord {
    /// A fresh record in `uploading`, created at `now`.
    pub fn new_upload(
        model_id: ModelId,
        media_id: MediaId,
        filename: String,
        content_type: String,
        declared_bytes: u64,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        let original_key = crate::keys::original(&model_id, &media_id);
        Self {
            model_id,
            media_id,
            status: MediaStatus::Uploading,
            filename,
            content_type,
            declared_bytes,
            original_key,
            created_at: now,
            updated_at: now,
            version: 1,
            expires_at,
            upload_expires_at: None,
            claim: None,
            source: None,
            derivatives: Vec::new(),
            rejection: None,
            focal_point: None,
            metadata: MediaMetadata::default(),
            galleries: Vec::new(),
            review: None,
            history: Vec::new(),
            image_version: 1,
            image_source_key: None,
            watermark: None,
            version_origin: None,
            earlier_versions: Vec::new(),
            trashed: None,
        }
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Whether the media is in the trash: gone for readers and for every use case but
    /// [`restore`] and the trash sweep.
    pub fn is_trashed(&self) -> bool {
        self.status == MediaStatus::Deleted
    }

    /// When the trash sweep may purge it (`None` unless it is in the trash).
    pub fn purge_after(&self) -> Option<OffsetDateTime> {
        self.trashed.as_ref().filter(|_| self.is_trashed()).map(|t| t.purge_after)
    }

    /// Adds a history line at the front, dropping the oldest past [`HISTORY_CAP`].
    pub fn record_history(&mut self, at: OffsetDateTime, actor: &str, action: &str, summary: impl Into<String>) {
        self.history.insert(
            0,
            HistoryEntry { at, actor: actor.to_owned(), action: action.to_owned(), summary: summary.into() },
        );
        self.history.truncate(HISTORY_CAP);
    }

    /// Makes the declared content type follow the type sniffed from the bytes (`sniffed`, a MIME
    /// type such as `image/jpeg`), with a history line; a media never shows one type next to a
    /// source of another. Returns whether it changed.
    pub fn follow_sniffed_type(&mut self, sniffed: &str, at: OffsetDateTime, actor: &str) -> bool {
        if self.content_type.eq_ignore_ascii_case(sniffed) {
            return false;
        }
        let summary = format!("declared {}, the bytes are {sniffed}", self.content_type);
        self.content_type = sniffed.to_owned();
        self.record_history(at, actor, "content_type_corrected", summary);
        true
    }

    /// The ids of the galleries this media is in.
    pub fn gallery_ids(&self) -> impl Iterator<Item = &GalleryId> {
        self.galleries.iter().map(|g| &g.gallery_id)
    }
}
