//! The media library's stores: records, fingerprints and tombstones, each a small trait.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::ids::{Category, GalleryId, MediaId, ModelId, Tag};
use crate::media::{MediaRecord, MediaStatus};

/// Which of a model's media to list. Every filter is served by an index (no scans): the most
/// selective one present picks the index (gallery, then tag, category, status, else all of the
/// model's media), the creation range bounds its sort key, and the other filters are applied to
/// what that range holds, so a page may come back short with a `next_cursor` to follow.
///
/// Media in the trash (status `deleted`) are in no listing but the trash's: `status: deleted`,
/// optionally with a creation range. They have no tag, gallery or category index entries, so
/// the trash with any of those filters is `Invalid` ([`MediaQuery::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaQuery {
    pub status: Option<MediaStatus>,
    pub category: Option<Category>,
    pub tag: Option<Tag>,
    pub gallery: Option<GalleryId>,
    /// Created at or after this instant.
    pub created_from: Option<OffsetDateTime>,
    /// Created strictly before this instant.
    pub created_before: Option<OffsetDateTime>,
    /// At most this many items (1..=100).
    pub limit: usize,
    /// Opaque, from a previous page of the same listing.
    pub cursor: Option<String>,
}

/// Which index serves a [`MediaQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListIndex {
    Gallery,
    Tag,
    Category,
    Status,
    All,
}

impl MediaQuery {
    pub fn new(limit: usize) -> Self {
        Self { limit, ..Self::default() }
    }

    pub fn index(&self) -> ListIndex {
        if self.gallery.is_some() {
            ListIndex::Gallery
        } else if self.tag.is_some() {
            ListIndex::Tag
        } else if self.category.is_some() {
            ListIndex::Category
        } else if self.status.is_some() {
            ListIndex::Status
        } else {
            ListIndex::All
        }
    }

    /// Everything that defines the listing except the page: a cursor is only valid for the
    /// listing it came from, so adapters bind cursors to this.
    pub fn listing(&self, model: &ModelId) -> String {
        let instant = |t: Option<OffsetDateTime>| t.map(|t| t.unix_timestamp_nanos().to_string()).unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            model,
            self.status.map(MediaStatus::as_str).unwrap_or_default(),
            self.category.as_ref().map(Category::as_str).unwrap_or_default(),
            self.tag.as_ref().map(Tag::as_str).unwrap_or_default(),
            self.gallery.as_ref().map(GalleryId::as_str).unwrap_or_default(),
            instant(self.created_from),
            instant(self.created_before),
        )
    }

    /// The creation range as inclusive unix-millisecond bounds (records keep millisecond
    /// precision), or `None` when it is empty.
    pub fn created_ms_range(&self) -> Option<(u64, u64)> {
        let ceil_ms = |t: OffsetDateTime| {
            let nanos = t.unix_timestamp_nanos().max(0);
            u64::try_from((nanos + 999_999) / 1_000_000).unwrap_or(u64::MAX)
        };
        let low = self.created_from.map(ceil_ms).unwrap_or(0);
        // Ids hold 48-bit timestamps.
        let high = self.created_before.map(|t| ceil_ms(t).saturating_sub(1)).unwrap_or((1 << 48) - 1);
        (low <= high).then_some((low, high))
    }

    /// Whether this listing is the trash's (`status: deleted`).
    pub fn is_trash(&self) -> bool {
        self.status == Some(MediaStatus::Deleted)
    }

    /// Refuses a listing no index serves: the trash filtered by category, tag or gallery.
    pub fn check(&self) -> StoreResult<()> {
        if self.is_trash() && (self.category.is_some() || self.tag.is_some() || self.gallery.is_some()) {
            return Err(super::StoreError::Invalid(
                "the trash (status deleted) is listed by creation time only, without category, tag or gallery".into(),
            ));
        }
        Ok(())
    }

    /// Whether a record passes every filter (adapters use it for the filters their index does
    /// not cover, and tests use it as the definition). A trashed record passes only the trash's.
    pub fn matches(&self, record: &MediaRecord) -> bool {
        let created_ms = u64::try_from(record.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let status = match self.status {
            Some(s) => record.status == s,
            None => !record.is_trashed(),
        };
        status
            && self.category.as_ref().is_none_or(|c| record.metadata.category.as_ref() == Some(c))
            && self.tag.as_ref().is_none_or(|t| record.metadata.tags.contains(t))
            && self.gallery.as_ref().is_none_or(|g| record.gallery_ids().any(|id| id == g))
            && self.created_ms_range().is_some_and(|(low, high)| (low..=high).contains(&created_ms))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A processed media's perceptual hash, kept per model to find likely duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub media_id: MediaId,
    /// 64-bit pHash, 16 hex digits.
    pub phash: String,
}

/// Media records: the aggregate every use case reads and writes conditionally.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Creates a record; `AlreadyExists` if one with the same ids exists.
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// The record, or `NotFound` (also for records past `expires_at`). A record in the trash is
    /// returned as it is (status `deleted`): readers treat it as absent
    /// ([`crate::media::read_live`]), restore and the trash sweep act on it.
    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord>;
    /// The records that exist (and are not expired) among `keys` (1 to
    /// [`bounds::MAX_BATCH_GET`](super::bounds::MAX_BATCH_GET), no repeats, else `Invalid`), in
    /// no particular order, in one round trip. Trashed records are returned too (callers hide them).
    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>>;
    /// Replaces the record if the stored version is `record.version - 1`; otherwise
    /// `VersionConflict` (or `NotFound`). Callers bump the version before writing. The record's
    /// index entries (tags, galleries) change with it, atomically.
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// A model's media matching `query` ([`MediaQuery::matches`]), newest first: trashed media
    /// only in the trash's listing. `query.limit` outside
    /// [`bounds::PAGE_SIZE`](super::bounds::PAGE_SIZE), a cursor of another listing or a query
    /// [`MediaQuery::check`] refuses is `Invalid`.
    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>>;
    /// Trashed media of every model whose `purge_after` is at or before `now`, earliest first
    /// (then by model and media id), at most `limit` (1..=100, else `Invalid`): what the trash
    /// sweep purges. Served by an index of trashed records only; it may lag a write briefly
    /// (DynamoDB's GSIs are eventually consistent), so callers write conditionally on the version.
    async fn list_trash_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>>;
}

/// Perceptual hashes per model, to find likely duplicates.
#[async_trait]
pub trait FingerprintStore: Send + Sync {
    /// The record and every fingerprint of its model, in one round trip.
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)>;
    /// Records (or replaces) a media's fingerprint. Idempotent.
    async fn put_fingerprint(&self, model: &ModelId, fingerprint: &Fingerprint) -> StoreResult<()>;
    /// Forgets a media's fingerprint. Removing an absent one succeeds.
    async fn remove_fingerprint(&self, model: &ModelId, media: &MediaId) -> StoreResult<()>;
}

/// Deletion: a record leaves and a tombstone stays until its objects are purged.
#[async_trait]
pub trait TombstoneStore: Send + Sync {
    /// Removes the record (if its stored version is still `record.version`), its index entries
    /// and its fingerprint, atomically, and leaves a tombstone holding the record so that its
    /// objects can be removed later. Afterwards the media is `NotFound`.
    async fn delete_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// The tombstone a delete left, if it is still there.
    async fn get_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>>;
    /// Forgets a tombstone (its objects are gone). Removing an absent tombstone succeeds.
    async fn remove_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<()>;
}

/// What the media library keeps (records, fingerprints, tombstones), for wiring the upload
/// processor, which needs nothing else. Adapters implement the small traits and get this for free.
pub trait LibraryStore: MediaStore + FingerprintStore + TombstoneStore {}

impl<T: MediaStore + FingerprintStore + TombstoneStore + ?Sized> LibraryStore for T {}

/// Everything the metadata store keeps, for wiring: the library, jobs, batches, idempotency keys,
/// galleries and their share links. Use cases name the small traits they use.
pub trait MetadataStore:
    LibraryStore
    + super::JobStore
    + super::IdempotencyStore
    + super::BatchStore
    + super::GalleryStore
    + super::ShareLinkStore
{
}

impl<
    T: LibraryStore
        + super::JobStore
        + super::IdempotencyStore
        + super::BatchStore
        + super::GalleryStore
        + super::ShareLinkStore
        + ?Sized,
> MetadataStore for T
{
}
