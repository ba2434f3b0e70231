//! Objects as files under `{root}/data/{key}`, with their metadata in `{root}/meta/{key}.json`.
//! Presigned URLs point at the local server's object endpoint and are HMAC-signed; the server
//! verifies them with [`LocalObjectStore::verify_presigned`] and refuses what S3 would refuse.
//! A put under a watched prefix sends an S3-shaped `ObjectCreated:Put` notification to a queue,
//! as the bucket notification does in AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use phoenix_domain::ObjectKey;
use phoenix_domain::ports::{
    ListPage, ObjectInfo, ObjectStore, PresignedRequest, Presigner, PutOptions, Queue, QueueName, StoreError,
    StoreResult,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type HmacSha256 = Hmac<Sha256>;

/// Query parameters of a locally presigned URL.
pub const EXPIRES_PARAM: &str = "X-Phoenix-Expires";
pub const SIGNATURE_PARAM: &str = "X-Phoenix-Signature";
/// The header values a URL was signed for, in the clear (the client is told them anyway): what
/// lets a refusal say which header differs, once the signature proves them authentic.
pub const SIGNED_CONTENT_TYPE_PARAM: &str = "X-Phoenix-Signed-Content-Type";
pub const SIGNED_CONTENT_LENGTH_PARAM: &str = "X-Phoenix-Signed-Content-Length";

/// Characters S3 leaves unencoded in notification keys, plus `/` which it keeps.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Where a put under `prefix` is announced.
#[derive(Clone)]
pub struct Notification {
    pub prefix: String,
    pub queue: Arc<dyn Queue>,
    pub queue_name: QueueName,
}

#[derive(Clone)]
pub struct LocalObjectStore {
    root: PathBuf,
    base_url: String,
    signing_key: Arc<Vec<u8>>,
    notification: Option<Notification>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    size: u64,
    etag: String,
    content_type: Option<String>,
    cache_control: Option<String>,
}

/// Why a presigned request is refused, with the status and code S3 answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("Request has expired")]
    Expired,
    #[error("The request signature we calculated does not match the signature you provided")]
    SignatureDoesNotMatch,
    #[error("Query-string authentication requires the {EXPIRES_PARAM} and {SIGNATURE_PARAM} parameters")]
    MissingParameters,
    #[error("Your proposed upload exceeds or falls short of the signed Content-Length")]
    BadContentLength,
    /// The URL is intact but the request's headers are not the ones it was signed for (S3 says
    /// `SignatureDoesNotMatch` and shows the request it computed; this names the headers).
    #[error(
        "The request signature we calculated does not match the signature you provided: {}",
        describe_mismatches(.0)
    )]
    SignedHeadersDiffer(Vec<HeaderMismatch>),
}

/// A header of a presigned request that differs from the value its URL was signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMismatch {
    /// As HTTP spells it: `Content-Type`, `Content-Length`.
    pub header: &'static str,
    pub signed: String,
    /// What the request sent, if anything.
    pub received: Option<String>,
}

fn describe_mismatches(mismatches: &[HeaderMismatch]) -> String {
    let each = mismatches.iter().map(|m| match &m.received {
        Some(received) => format!("{} is {received:?} but the URL was signed for {:?}", m.header, m.signed),
        None => format!("no {} was sent but the URL was signed for {:?}", m.header, m.signed),
    });
    each.collect::<Vec<_>>().join("; ")
}

impl PresignError {
    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired | Self::MissingParameters => "AccessDenied",
            Self::SignatureDoesNotMatch | Self::SignedHeadersDiffer(_) => "SignatureDoesNotMatch",
            Self::BadContentLength => "BadDigest",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::BadContentLength => 400,
            _ => 403,
        }
    }
}

impl LocalObjectStore {
    /// Opens (creating) the store under `root`; presigned URLs start with `base_url`.
    pub fn open(root: &Path, base_url: String, signing_key: Vec<u8>) -> anyhow::Result<Self> {
        for sub in ["data", "meta", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        Ok(Self {
            root: root.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            signing_key: Arc::new(signing_key),
            notification: None,
        })
    }

    pub fn with_notification(mut self, notification: Notification) -> Self {
        self.notification = Some(notification);
        self
    }

    fn data_path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join("data").join(key.as_str())
    }

    fn meta_path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join("meta").join(format!("{}.json", key.as_str()))
    }

    /// The path of an object's URL at the local server, relative to its base URL.
    pub fn url_path(key: &ObjectKey) -> String {
        format!("/_objects/{}", utf8_percent_encode(key.as_str(), KEY_ENCODE))
    }

    fn string_to_sign(
        method: &str,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        expires: i64,
    ) -> String {
        let length = content_length.map(|n| n.to_string()).unwrap_or_default();
        format!("{method}\n{}\n{content_type}\n{length}\n{expires}", key.as_str())
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    fn presign(
        &self,
        method: &str,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        expires_in: Duration,
    ) -> PresignedRequest {
        let expires_at = OffsetDateTime::now_utc() + expires_in;
        let expires = expires_at.unix_timestamp();
        let signature = hex::encode(
            self.mac(&Self::string_to_sign(method, key, content_type, content_length, expires)).finalize().into_bytes(),
        );
        let mut headers = BTreeMap::new();
        if !content_type.is_empty() {
            headers.insert("Content-Type".to_owned(), content_type.to_owned());
        }
        if let Some(n) = content_length {
            headers.insert("Content-Length".to_owned(), n.to_string());
        }
        let mut signed = String::new();
        if !content_type.is_empty() {
            let encoded = utf8_percent_encode(content_type, NON_ALPHANUMERIC);
            signed.push_str(&format!("&{SIGNED_CONTENT_TYPE_PARAM}={encoded}"));
        }
        if let Some(n) = content_length {
            signed.push_str(&format!("&{SIGNED_CONTENT_LENGTH_PARAM}={n}"));
        }
        PresignedRequest {
            method: method.to_owned(),
            url: format!(
                "{}{}?{EXPIRES_PARAM}={expires}{signed}&{SIGNATURE_PARAM}={signature}",
                self.base_url,
                Self::url_path(key)
            ),
            headers,
            expires_at,
        }
    }

    /// Checks a request against its presigned URL, as S3 does: the signature covers the method,
    /// key, content type, content length and expiry, so changing any of them is refused.
    pub fn verify_presigned(
        &self,
        method: &str,
        key: &ObjectKey,
        query: &BTreeMap<String, String>,
        content_type: Option<&str>,
        content_length: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<(), PresignError> {
        let (Some(expires), Some(signature)) = (query.get(EXPIRES_PARAM), query.get(SIGNATURE_PARAM)) else {
            return Err(PresignError::MissingParameters);
        };
        let expires: i64 = expires.parse().map_err(|_| PresignError::MissingParameters)?;
        let signature = hex::decode(signature).map_err(|_| PresignError::SignatureDoesNotMatch)?;
        let payload = Self::string_to_sign(method, key, content_type.unwrap_or_default(), content_length, expires);
        if self.mac(&payload).verify_slice(&signature).is_err() {
            // Name the headers that differ only when the signature covers the values the URL
            // states (the URL is intact); an altered URL gets the plain refusal.
            let differ = Stated::from_query(query)
                .filter(|stated| {
                    let signed =
                        Self::string_to_sign(method, key, &stated.content_type, stated.content_length, expires);
                    self.mac(&signed).verify_slice(&signature).is_ok()
                })
                .map(|stated| stated.differences(content_type, content_length))
                .filter(|differ| !differ.is_empty());
            return Err(differ.map_or(PresignError::SignatureDoesNotMatch, PresignError::SignedHeadersDiffer));
        }
        if now.unix_timestamp() >= expires {
            return Err(PresignError::Expired);
        }
        Ok(())
    }

    fn read_meta(&self, key: &ObjectKey) -> StoreResult<Meta> {
        match std::fs::read(self.meta_path(key)) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map_err(|e| StoreError::internal(anyhow::anyhow!("corrupt metadata of {key}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    fn info(key: &ObjectKey, meta: Meta) -> ObjectInfo {
        ObjectInfo {
            key: key.clone(),
            size: meta.size,
            etag: meta.etag,
            content_type: meta.content_type,
            cache_control: meta.cache_control,
        }
    }

    /// Writes `bytes` to `dest` atomically: readers see the old file or the new one, never half.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = self.root.join("tmp").join(ulid::Ulid::new().to_string());
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dest)
    }

    async fn notify(&self, info: &ObjectInfo) -> StoreResult<()> {
        let Some(n) = &self.notification else { return Ok(()) };
        if !info.key.as_str().starts_with(&n.prefix) {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        let event = serde_json::json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "local",
                "eventTime": now.format(&Rfc3339).unwrap_or_default(),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "local"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": ulid::Ulid::new().to_string(), "x-amz-id-2": "local"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ingest",
                    "bucket": {"name": "local", "ownerIdentity": {"principalId": "local"}, "arn": "arn:aws:s3:::local"},
                    "object": {
                        "key": utf8_percent_encode(info.key.as_str(), KEY_ENCODE).to_string(),
                        "size": info.size,
                        "eTag": info.etag,
                        "sequencer": format!("{:016X}", now.unix_timestamp_nanos()),
                    }
                }
            }]
        });
        n.queue.send(&n.queue_name, &event.to_string(), Duration::ZERO).await.map(|_| ())
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::unavailable(e)
}

/// A blocking task that did not finish: it panicked (a bug) or the runtime is shutting down.
fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::internal(e)
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo> {
        let this = self.clone();
        let key2 = key.clone();
        let info = tokio::task::spawn_blocking(move || -> StoreResult<ObjectInfo> {
            let meta = Meta {
                size: body.len() as u64,
                etag: hex::encode(Md5::digest(&body)),
                content_type: options.content_type,
                cache_control: options.cache_control,
            };
            // Data first, then metadata: an object is visible only once both are complete.
            this.write_atomic(&this.data_path(&key2), &body).map_err(io_err)?;
            let meta_json = serde_json::to_vec(&meta).map_err(StoreError::internal)?;
            this.write_atomic(&this.meta_path(&key2), &meta_json).map_err(io_err)?;
            Ok(Self::info(&key2, meta))
        })
        .await
        .map_err(join_err)??;
        self.notify(&info).await?;
        Ok(info)
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let meta = this.read_meta(&key)?;
            if meta.size > max_bytes {
                return Err(StoreError::Invalid(format!(
                    "object {key} is {} bytes, over the {max_bytes} bytes asked for",
                    meta.size
                )));
            }
            let bytes = std::fs::read(this.data_path(&key)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound,
                _ => io_err(e),
            })?;
            Ok((Self::info(&key, meta), Bytes::from(bytes)))
        })
        .await
        .map_err(join_err)?
    }

    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || this.read_meta(&key).map(|m| Self::info(&key, m)))
            .await
            .map_err(join_err)?
    }

    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            // Metadata first: once it is gone the object no longer exists for readers.
            for path in [this.meta_path(&key), this.data_path(&key)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            Ok(())
        })
        .await
        .map_err(join_err)?
    }

    async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage> {
        let meta_root = self.root.join("meta");
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            collect_keys(&meta_root, &meta_root, &mut keys).map_err(io_err)?;
            keys.sort();
            let mut page: Vec<ObjectKey> = keys
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .filter(|k| cursor.as_ref().is_none_or(|c| k.as_str() > c.as_str()))
                .take(limit.max(1) + 1)
                .filter_map(|k| ObjectKey::parse(&k).ok())
                .collect();
            let next = if page.len() > limit.max(1) {
                page.truncate(limit.max(1));
                page.last().map(|k| k.to_string())
            } else {
                None
            };
            Ok(ListPage { keys: page, next })
        })
        .await
        .map_err(join_err)?
    }
}

#[async_trait]
impl Presigner for LocalObjectStore {
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest> {
        Ok(self.presign("PUT", key, content_type, Some(content_length), expires_in))
    }

    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> StoreResult<PresignedRequest> {
        Ok(self.presign("GET", key, "", None, expires_in))
    }
}

/// The header values a presigned URL states it was signed for.
struct Stated {
    content_type: String,
    content_length: Option<u64>,
}

impl Stated {
    fn from_query(query: &BTreeMap<String, String>) -> Option<Self> {
        let content_type = query.get(SIGNED_CONTENT_TYPE_PARAM).cloned().unwrap_or_default();
        let content_length = match query.get(SIGNED_CONTENT_LENGTH_PARAM) {
            Some(n) => Some(n.parse::<u64>().ok()?),
            None => None,
        };
        Some(Self { content_type, content_length })
    }

    /// The request's headers that differ from the stated values.
    fn differences(&self, content_type: Option<&str>, content_length: Option<u64>) -> Vec<HeaderMismatch> {
        let mut differ = Vec::new();
        if content_type.unwrap_or_default() != self.content_type {
            let received = content_type.map(str::to_owned);
            differ.push(HeaderMismatch { header: "Content-Type", signed: self.content_type.clone(), received });
        }
        if content_length != self.content_length {
            let (signed, received) =
                (self.content_length.map(|n| n.to_string()), content_length.map(|n| n.to_string()));
            differ.push(HeaderMismatch { header: "Content-Length", signed: signed.unwrap_or_default(), received });
        }
        differ
    }
}

fn collect_keys(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_keys(root, &path, out)?;
        } else if let Some(key) = path.strip_prefix(root).ok().and_then(|p| p.to_str()?.strip_suffix(".json")) {
            out.push(key.to_owned());
        }
    }
    Ok(())
}
