//! The three ports the domain talks to. Each has a `local` and an `aws` adapter in
//! `phoenix-storage`, and one conformance suite that both must pass.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{Category, GalleryId, MediaId, ModelId, ObjectKey, Tag};
use crate::media::{MediaRecord, MediaStatus};

/// Errors every port reports. `Unavailable` is transient (retry later); the rest are final.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("version conflict: the stored version is {current:?}")]
    VersionConflict { current: Option<u64> },
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    #[error("store unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
}

impl StoreError {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

// ---------------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
    /// The store's entity tag, without quotes.
    pub etag: String,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// A request the client makes itself, against the store, without our credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    /// Headers the client must send exactly as given.
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<ObjectKey>,
    /// Pass back to get the next page; `None` at the end.
    pub next: Option<String>,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo>;
    /// The whole object, refusing (with `Invalid`) objects larger than `max_bytes`.
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)>;
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo>;
    /// Deleting an absent key succeeds, as in S3.
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()>;
    /// Keys under `prefix` in lexicographic order, at most `limit` a page.
    async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage>;
    /// A PUT the client can make once, bound to this content type and exact length, until `expires_in`.
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest>;
    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> StoreResult<PresignedRequest>;
}

// ---------------------------------------------------------------------------------------------
// Metadata store
// ---------------------------------------------------------------------------------------------

/// Which of a model's media to list. Every filter is served by an index (no scans): the most
/// selective one present picks the index (gallery, then tag, category, status, else all of the
/// model's media), the creation range bounds its sort key, and the other filters are applied to
/// what that range holds, so a page may come back short with a `next_cursor` to follow.
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

    /// Whether a record passes every filter (adapters use it for the filters their index does
    /// not cover, and tests use it as the definition).
    pub fn matches(&self, record: &MediaRecord) -> bool {
        let created_ms = u64::try_from(record.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        self.status.is_none_or(|s| record.status == s)
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

#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Creates a record; `AlreadyExists` if one with the same ids exists.
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// The record, or `NotFound` (also for records past `expires_at`).
    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord>;
    /// The record and every fingerprint of its model, in one round trip.
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)>;
    /// The records that exist (and are not expired) among `keys` (at most 100, no repeats), in
    /// no particular order, in one round trip.
    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>>;
    /// Replaces the record if the stored version is `record.version - 1`; otherwise
    /// `VersionConflict` (or `NotFound`). Callers bump the version before writing. The record's
    /// index entries (tags, galleries) change with it, atomically.
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// A model's media matching `query`, newest first.
    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>>;
    /// Removes the record (if its stored version is still `record.version`), its index entries
    /// and its fingerprint, atomically, and leaves a tombstone holding the record so that its
    /// objects can be removed later. Afterwards the media is `NotFound`.
    async fn delete_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// The tombstone a delete left, if it is still there.
    async fn get_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>>;
    /// Forgets a tombstone (its objects are gone). Removing an absent tombstone succeeds.
    async fn remove_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<()>;
    /// Records (or replaces) a media's fingerprint. Idempotent.
    async fn put_fingerprint(&self, model: &ModelId, fingerprint: &Fingerprint) -> StoreResult<()>;
    /// Forgets a media's fingerprint. Removing an absent one succeeds.
    async fn remove_fingerprint(&self, model: &ModelId, media: &MediaId) -> StoreResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

/// A logical queue name (`ingest`, `jobs-high`, ...); adapters map it to a real queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(pub &'static str);

impl QueueName {
    pub const INGEST: QueueName = QueueName("ingest");
    pub const INGEST_DLQ: QueueName = QueueName("ingest-dlq");
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
    pub sent_at: OffsetDateTime,
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: &QueueName, body: &str, delay: Duration) -> StoreResult<String>;
    /// Up to `max` visible messages, each hidden for `visibility` from now. Messages received more
    /// than the queue's max-receive count move to its dead-letter queue instead.
    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>>;
    /// Acknowledges a message: it is never delivered again.
    async fn delete(&self, queue: &QueueName, receipt: &str) -> StoreResult<()>;
    /// Makes a received message visible again after `visibility` (zero: at once).
    async fn change_visibility(&self, queue: &QueueName, receipt: &str, visibility: Duration) -> StoreResult<()>;
    /// Approximate number of messages waiting (visible and in flight).
    async fn depth(&self, queue: &QueueName) -> StoreResult<u64>;
}
