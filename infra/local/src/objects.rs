//! The local stand-in for S3's HTTP face: presigned PUTs and GETs under `/_objects/`, verified
//! and refused as S3 refuses them (with S3's error XML, naming the header that differs from the
//! signed one, and timing out a body that stops short of its `Content-Length`), and public
//! derivative GETs under `/derived/` with the cache headers the CDN will use. Both answer CORS
//! with the bucket's rules (`phoenix_http::cors::CorsPolicy::bucket`, the template's `CorsRules`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use phoenix_domain::ObjectKey;
use phoenix_domain::ports::{ObjectStore, PutOptions, StoreError};
use phoenix_http::cors::{AllowedOrigin, CorsPolicy};
use phoenix_storage::local::{LocalObjectStore, PresignError};
use time::OffsetDateTime;

/// How long an upload's body may stall (no byte arriving) before it is refused with S3's
/// `RequestTimeout`; S3 gives up on an idle upload after about 20 seconds.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The object endpoint: where objects live, the largest upload a URL can be signed for, the
/// bucket's CORS rules, and how long a stalled upload body is waited for.
#[derive(Clone)]
pub struct ObjectEndpoint {
    pub store: LocalObjectStore,
    pub max_upload_bytes: u64,
    pub cors: CorsPolicy,
    pub body_idle_timeout: Duration,
}

impl ObjectEndpoint {
    /// The endpoint as S3 behaves, for pages from `allowed_origin`.
    pub fn new(store: LocalObjectStore, max_upload_bytes: u64, allowed_origin: AllowedOrigin) -> Self {
        Self { store, max_upload_bytes, cors: CorsPolicy::bucket(allowed_origin), body_idle_timeout: BODY_IDLE_TIMEOUT }
    }

    pub fn router(self) -> Router {
        let cors = self.cors.layer();
        Router::new()
            .route("/_objects/{*key}", get(presigned_get).put(presigned_put))
            .route("/derived/{*rest}", get(public_derivative))
            .layer(cors)
            .with_state(self)
    }
}

/// Escapes text for an XML element.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An S3-style XML error; `extra` are further elements, already XML.
fn s3_error_with(status: StatusCode, code: &str, message: &str, extra: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>{extra}</Error>",
        xml(message)
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    s3_error_with(status, code, message, "")
}

/// The refusal; a header that differs from the signed one is named, with both values.
fn presign_error(e: PresignError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    let extra = match &e {
        PresignError::SignedHeadersDiffer(mismatches) => mismatches
            .iter()
            .map(|m| {
                let received = m.received.as_deref().map(|r| format!("<Received>{}</Received>", xml(r)));
                format!(
                    "<HeaderMismatch><Header>{}</Header><Signed>{}</Signed>{}</HeaderMismatch>",
                    m.header,
                    xml(&m.signed),
                    received.unwrap_or_default()
                )
            })
            .collect(),
        _ => String::new(),
    };
    s3_error_with(status, e.code(), &e.to_string(), &extra)
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound => s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist."),
        other => {
            tracing::error!(error = %other, "object store failed");
            s3_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Please reduce your request rate.")
        }
    }
}

fn bad_key() -> Response {
    s3_error(StatusCode::BAD_REQUEST, "InvalidArgument", "Invalid object key")
}

/// `x-amz-*` headers of the request: S3 refuses a presigned request carrying any it was not
/// signed with, and a locally presigned URL signs none.
fn unsigned_amz_headers(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> =
        headers.keys().map(|n| n.as_str().to_owned()).filter(|n| n.starts_with("x-amz-")).collect();
    names.dedup();
    names
}

async fn presigned_put(
    State(endpoint): State<ObjectEndpoint>,
    Path(raw_key): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(key) = ObjectKey::parse(&raw_key) else {
        return bad_key();
    };
    let Some(length) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    else {
        return s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        );
    };
    let unsigned = unsigned_amz_headers(&headers);
    if !unsigned.is_empty() {
        return s3_error_with(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("There were headers present in the request which were not signed: {}", unsigned.join(", ")),
            &format!("<HeadersNotSigned>{}</HeadersNotSigned>", xml(&unsigned.join(", "))),
        );
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Err(e) =
        endpoint.store.verify_presigned("PUT", &key, &query, content_type, Some(length), OffsetDateTime::now_utc())
    {
        return presign_error(e);
    }
    if length > endpoint.max_upload_bytes {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        );
    }
    let bytes = match read_body(body, length, endpoint.body_idle_timeout).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    let options = PutOptions { content_type: content_type.map(str::to_owned), cache_control: None };
    match endpoint.store.put(&key, bytes, options).await {
        Ok(info) => (StatusCode::OK, [(header::ETAG, format!("\"{}\"", info.etag))]).into_response(),
        Err(e) => store_error(e),
    }
}

/// The whole body of `length` bytes, as S3 reads it: a body that stops short (the client closed
/// the connection) is `IncompleteBody`, one that stalls for `idle` is `RequestTimeout`.
async fn read_body(mut body: Body, length: u64, idle: Duration) -> Result<Bytes, Response> {
    let incomplete = || {
        s3_error(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        )
    };
    let mut bytes = BytesMut::with_capacity(length as usize);
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(idle, next).await {
            Err(_) => {
                return Err(s3_error(
                    StatusCode::BAD_REQUEST,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the timeout \
                     period. Idle connections will be closed.",
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(incomplete()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (bytes.len() + data.len()) as u64 > length {
                        return Err(presign_error(PresignError::BadContentLength));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
    if bytes.len() as u64 != length {
        return Err(incomplete());
    }
    Ok(bytes.freeze())
}

async fn presigned_get(
    State(endpoint): State<ObjectEndpoint>,
    Path(raw_key): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Ok(key) = ObjectKey::parse(&raw_key) else {
        return bad_key();
    };
    if let Err(e) = endpoint.store.verify_presigned("GET", &key, &query, None, None, OffsetDateTime::now_utc()) {
        return presign_error(e);
    }
    serve(&endpoint.store, &key, &headers, None).await
}

async fn public_derivative(
    State(endpoint): State<ObjectEndpoint>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(key) = phoenix_domain::keys::derived_from_path(&rest) else {
        return bad_key();
    };
    serve(&endpoint.store, &key, &headers, Some(phoenix_domain::keys::DERIVATIVE_CACHE_CONTROL)).await
}

async fn serve(
    store: &LocalObjectStore,
    key: &ObjectKey,
    headers: &HeaderMap,
    cache_control: Option<&str>,
) -> Response {
    let head = match store.head(key).await {
        Ok(h) => h,
        Err(e) => return store_error(e),
    };
    let etag = format!("\"{}\"", head.etag);
    let cache_control =
        head.cache_control.clone().or(cache_control.map(str::to_owned)).unwrap_or_else(|| "private, no-store".into());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)])
            .into_response();
    }
    let (info, bytes) = match store.get(key, u64::MAX).await {
        Ok(found) => found,
        Err(e) => return store_error(e),
    };
    let content_type = info.content_type.unwrap_or_else(|| "application/octet-stream".into());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache_control)
        // Never let a browser sniff an upload into something executable.
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use phoenix_domain::ports::Presigner;

    use super::*;

    /// A folder of its own under the system's temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("phoenix-objects-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn key() -> ObjectKey {
        ObjectKey::parse("originals/model-a/01HZX3K6Q2V5W8Y9ZABCDEFGHJ").unwrap()
    }

    /// The endpoint on a port of its own, with a URL signed for a 1000-byte JPEG (its path and
    /// query), and how long it waits for a stalled body.
    async fn serve_endpoint(scratch: &Scratch, idle: Duration) -> (SocketAddr, String, LocalObjectStore) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = LocalObjectStore::open(&scratch.0, format!("http://{addr}"), b"test-key".to_vec()).unwrap();
        let mut endpoint = ObjectEndpoint::new(store.clone(), 1024 * 1024, AllowedOrigin::Any);
        endpoint.body_idle_timeout = idle;
        let presigned = store.presign_put(&key(), "image/jpeg", 1000, Duration::from_secs(60)).await.unwrap();
        let uri = presigned.url[presigned.url.find("/_objects/").unwrap()..].to_owned();
        tokio::spawn(async move { axum::serve(listener, endpoint.router()).await });
        (addr, uri, store)
    }

    /// A raw HTTP client: the PUT's head declaring 1000 bytes, then only 400 of them; then it
    /// either waits (`close` false) or closes its side, and reads the answer (up to 10 s).
    fn short_put(addr: SocketAddr, uri: &str, close: bool) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head =
            format!("PUT {uri} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[7; 400]).unwrap();
        if close {
            stream.shutdown(Shutdown::Write).unwrap();
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("</Error>") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn code(answer: &str) -> Option<&str> {
        let start = answer.find("<Code>")? + "<Code>".len();
        Some(&answer[start..start + answer[start..].find("</Code>")?])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_body_times_out_as_s3() {
        let scratch = Scratch::new();
        let (addr, uri, store) = serve_endpoint(&scratch, Duration::from_millis(400)).await;
        let started = Instant::now();
        let answer = tokio::task::spawn_blocking(move || short_put(addr, &uri, false)).await.unwrap();
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert_eq!(code(&answer), Some("RequestTimeout"), "{answer}");
        assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(5), "answered after {took:?}");
        assert!(matches!(store.head(&key()).await, Err(StoreError::NotFound)), "nothing is stored");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_cut_short_is_incomplete() {
        let scratch = Scratch::new();
        let (addr, uri, store) = serve_endpoint(&scratch, BODY_IDLE_TIMEOUT).await;
        let started = Instant::now();
        let answer = tokio::task::spawn_blocking(move || short_put(addr, &uri, true)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert_eq!(code(&answer), Some("IncompleteBody"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5), "answered at once, not after the idle timeout");
        assert!(matches!(store.head(&key()).await, Err(StoreError::NotFound)), "nothing is stored");
    }
}
