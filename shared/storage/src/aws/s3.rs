//! [`ObjectStore`] and its [`Presigner`] on an S3 bucket.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use phoenix_domain::ObjectKey;
use phoenix_domain::ports::{
    ListPage, ObjectInfo, ObjectStore, PresignedRequest, Presigner, PutOptions, StoreError, StoreResult,
};
use time::OffsetDateTime;

use super::classify;

/// S3 allows at most 1,000 keys a page.
const MAX_LIST_PAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ObjectStore {
    /// A store on `bucket`. `force_path_style` addresses the bucket as `endpoint/bucket/key`
    /// instead of `bucket.endpoint/key`: emulators (moto) need it.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>, force_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(force_path_style).build();
        Self::from_client(aws_sdk_s3::Client::from_conf(s3_config), bucket)
    }

    pub fn from_client(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn size_of(content_length: Option<i64>) -> u64 {
    content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn presign_config(expires_in: Duration) -> StoreResult<PresigningConfig> {
    PresigningConfig::expires_in(expires_in)
        .map_err(|e| StoreError::Invalid(format!("presigned request expiry {}s: {e}", expires_in.as_secs())))
}

fn expires_at(expires_in: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + expires_in
}

/// Presigned GETs are signed as of the start of the current window, so every read within it
/// hands out the same URL: browsers and CDNs cache the image once, and the API's ETags (which
/// cover the URLs) stay equal while nothing changed. Each URL is valid for at least the TTL asked.
const PRESIGN_GET_WINDOW: Duration = Duration::from_secs(300);

/// The window's start and the validity that reaches `expires_in` past `now` from it.
fn stable_window(now: std::time::SystemTime, expires_in: Duration) -> (std::time::SystemTime, Duration) {
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let into_window = Duration::from_secs(since_epoch.as_secs() % PRESIGN_GET_WINDOW.as_secs());
    (std::time::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()) - into_window, expires_in + PRESIGN_GET_WINDOW)
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo> {
        let size = body.len() as u64;
        let output = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(body))
            .set_content_type(options.content_type.clone())
            .set_cache_control(options.cache_control.clone())
            .send()
            .await
            .map_err(|e| classify("s3 PutObject", e))?;
        Ok(ObjectInfo {
            key: key.clone(),
            size,
            etag: unquote(output.e_tag()),
            content_type: options.content_type,
            cache_control: options.cache_control,
        })
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)> {
        let output =
            self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(|e| {
                match e.as_service_error() {
                    Some(se) if se.is_no_such_key() => StoreError::NotFound,
                    _ => classify("s3 GetObject", e),
                }
            })?;
        let declared = size_of(output.content_length());
        let too_large = |n: u64| StoreError::Invalid(format!("object is {n} bytes, over the limit of {max_bytes}"));
        if declared > max_bytes {
            // Dropping the body closes the connection without reading the object.
            return Err(too_large(declared));
        }
        let info = ObjectInfo {
            key: key.clone(),
            size: declared,
            etag: unquote(output.e_tag()),
            content_type: output.content_type().map(str::to_owned),
            cache_control: output.cache_control().map(str::to_owned),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context("s3 GetObject: reading the body")))?
            .into_bytes();
        let read = body.len() as u64;
        if read > max_bytes {
            return Err(too_large(read));
        }
        Ok((ObjectInfo { size: read, ..info }, body))
    }

    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo> {
        let output =
            self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(|e| {
                match e.as_service_error() {
                    Some(se) if se.is_not_found() => StoreError::NotFound,
                    _ => classify("s3 HeadObject", e),
                }
            })?;
        Ok(ObjectInfo {
            key: key.clone(),
            size: size_of(output.content_length()),
            etag: unquote(output.e_tag()),
            content_type: output.content_type().map(str::to_owned),
            cache_control: output.cache_control().map(str::to_owned),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| classify("s3 DeleteObject", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage> {
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(limit as i32)
            .set_continuation_token(cursor)
            .send()
            .await
            .map_err(|e| classify("s3 ListObjectsV2", e))?;
        let keys = output
            .contents()
            .iter()
            .filter_map(|object| object.key())
            .map(|raw| {
                ObjectKey::parse(raw).map_err(|e| {
                    StoreError::internal(anyhow::anyhow!("s3 ListObjectsV2: the bucket holds an invalid key: {e}"))
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if output.is_truncated().unwrap_or(false) {
            output.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { keys, next })
    }
}

#[async_trait]
impl Presigner for S3ObjectStore {
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest> {
        let length = i64::try_from(content_length)
            .map_err(|_| StoreError::Invalid(format!("content length {content_length} is too large")))?;
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(length)
            .presigned(presign_config(expires_in)?)
            .await
            .map_err(|e| classify("s3 PutObject (presign)", e))?;
        let mut headers = signed_headers(presigned.uri(), presigned.headers());
        headers.insert("Content-Type".to_owned(), content_type.to_owned());
        headers.insert("Content-Length".to_owned(), content_length.to_string());
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers,
            expires_at: expires_at(expires_in),
        })
    }

    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> StoreResult<PresignedRequest> {
        let (start, validity) = stable_window(std::time::SystemTime::now(), expires_in);
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(validity)
            .build()
            .map_err(|e| StoreError::Invalid(format!("presigned request expiry {}s: {e}", validity.as_secs())))?;
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .presigned(config)
            .await
            .map_err(|e| classify("s3 GetObject (presign)", e))?;
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers: signed_headers(presigned.uri(), presigned.headers()),
            expires_at: OffsetDateTime::from(start) + validity,
        })
    }
}

/// The headers of a presigned request that the client must send, less `Host` (the URL carries
/// it, and browsers refuse to set it) and the two we set in canonical case ourselves.
/// The headers a client must send with a presigned request: those the signature covers
/// (`X-Amz-SignedHeaders`), less the ones every HTTP client sets itself. Others the SDK adds to
/// the request it would send — in Lambda, recursion detection's `x-amzn-trace-id` — are not
/// part of the contract and would only confuse a browser.
fn signed_headers<'a>(uri: &str, raw: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    let signed: Vec<String> = url_query(uri)
        .find(|(name, _)| name.eq_ignore_ascii_case("X-Amz-SignedHeaders"))
        .map(|(_, value)| value.split(';').map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    raw.filter(|(name, _)| {
        let name = name.to_ascii_lowercase();
        signed.contains(&name) && !["host", "content-type", "content-length"].contains(&name.as_str())
    })
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// The query parameters of a URI, percent-decoded.
fn url_query(uri: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        Some((decode(name), decode(value)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signed_headers_are_handed_to_the_client() {
        let uri = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-crc32&X-Amz-Signature=ab";
        let sent = [
            ("host", "b.s3.amazonaws.com"),
            ("content-type", "image/jpeg"),
            ("content-length", "10"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
        ];
        let headers = signed_headers(uri, sent.into_iter());
        assert_eq!(headers.into_iter().collect::<Vec<_>>(), [("x-amz-checksum-crc32".into(), "AAAAAA==".into())]);
        assert!(signed_headers("https://b/k", sent.into_iter()).is_empty(), "nothing is signed without the list");
    }

    fn offline_store() -> S3ObjectStore {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .build();
        S3ObjectStore::from_client(aws_sdk_s3::Client::from_conf(config), "bucket")
    }

    #[tokio::test]
    async fn presigned_gets_are_stable_within_a_window_and_valid_for_the_ttl() {
        let store = offline_store();
        let key = ObjectKey::parse("derived/m/x/small-v1.webp").unwrap();
        let ttl = Duration::from_secs(3600);
        let a = store.presign_get(&key, ttl).await.unwrap();
        let b = store.presign_get(&key, ttl).await.unwrap();
        // Two reads straddle a window edge at most once in a blue moon; then the third agrees.
        let same = a.url == b.url || b.url == store.presign_get(&key, ttl).await.unwrap().url;
        assert!(same, "{} vs {}", a.url, b.url);
        assert!(a.expires_at >= OffsetDateTime::now_utc() + ttl - Duration::from_secs(1));
        assert!(a.expires_at <= OffsetDateTime::now_utc() + ttl + PRESIGN_GET_WINDOW);
    }

    #[test]
    fn windows_start_on_their_boundary() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_123);
        let (start, validity) = stable_window(now, Duration::from_secs(60));
        assert_eq!(start, std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        assert_eq!(validity, Duration::from_secs(360));
    }
}
