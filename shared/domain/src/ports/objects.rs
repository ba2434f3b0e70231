//! The object store: originals, derivatives and (later) published documents, by key.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::StoreResult;
use crate::ids::ObjectKey;

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

/// Presigned requests: what a client may do against the store itself, without our credentials.
#[async_trait]
pub trait Presigner: Send + Sync {
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

/// Objects by key. Every object store presigns too; a use case that only presigns names
/// [`Presigner`].
#[async_trait]
pub trait ObjectStore: Presigner {
    async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo>;
    /// The whole object, refusing (with `Invalid`) objects larger than `max_bytes`.
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)>;
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo>;
    /// Deleting an absent key succeeds, as in S3.
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()>;
    /// Keys under `prefix` in lexicographic order, at most `limit` a page.
    async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage>;
}
