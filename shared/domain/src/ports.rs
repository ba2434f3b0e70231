//! The three ports the domain talks to. Each has a `local` and an `aws` adapter in
//! `phoenix-storage`, and one conformance suite that both must pass.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{MediaId, ModelId, ObjectKey};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaQuery {
    pub status: Option<MediaStatus>,
    /// At most this many items (1..=100).
    pub limit: usize,
    /// Opaque, from a previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Creates a record; `AlreadyExists` if one with the same ids exists.
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// The record, or `NotFound` (also for records past `expires_at`).
    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord>;
    /// Replaces the record if the stored version is `record.version - 1`; otherwise
    /// `VersionConflict` (or `NotFound`). Callers bump the version before writing.
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()>;
    /// A model's media, newest first, optionally of one status.
    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>>;
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
