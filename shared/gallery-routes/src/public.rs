//! The public reads of published galleries, without auth: the stored document as JSON and as an
//! HTML page. Each request reads the gallery's small pointer (the version the public sees, its
//! visibility and slug) from the object store, which the local runtime answers from memory
//! (decision 0012); the document of that version is served from memory when this instance has it
//! (documents are immutable, so a version's bytes never change), else read from the object store
//! once and kept. Private, unpublished and unknown galleries are all a plain 404.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use phoenix_domain::galleries::publish::{read_document, read_pointer};
use phoenix_domain::galleries::{PUBLIC_CACHE_CONTROL, Pointer, PublishedDocument, Slug};
use phoenix_domain::{GalleryId, StoreError};
use phoenix_http::conditional::none_match;
use phoenix_http::{ApiError, ApiPath, ErrorBody};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};

use crate::error::GalleryApiError;
use crate::state::GalleryState;
use crate::views::PublishedDocumentView;

/// Galleries whose documents one instance keeps (the least recently published go first).
const CACHED_GALLERIES: usize = 1_000;

/// How one public route has answered since start-up.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// 200s served from the in-memory copy of the stored document.
    hits: AtomicU64,
    /// 200s that read the document from the object store (and, for the page, rendered it).
    renders: AtomicU64,
    /// 304s.
    not_modified: AtomicU64,
}

/// A route's counts, for `GET /v1/cache/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CacheStats {
    pub route: String,
    pub hits: u64,
    pub renders: u64,
    pub not_modified: u64,
    /// (hits + 304s) / all answers; 0 before the first.
    pub hit_ratio: f64,
}

impl RouteStats {
    fn snapshot(&self, route: &str) -> CacheStats {
        let (hits, renders, not_modified) = (
            self.hits.load(Ordering::Relaxed),
            self.renders.load(Ordering::Relaxed),
            self.not_modified.load(Ordering::Relaxed),
        );
        let all = hits + renders + not_modified;
        let hit_ratio = if all == 0 { 0.0 } else { (hits + not_modified) as f64 / all as f64 };
        CacheStats { route: route.to_owned(), hits, renders, not_modified, hit_ratio }
    }
}

/// One published version as served: the stored JSON, and the page rendered from it on first
/// request, each with its compressed forms.
struct Served {
    version: u32,
    json: Representations,
    page: OnceLock<Result<Representations, String>>,
}

/// A body with its strong ETag, and its gzip and brotli forms, each made once on first demand
/// (a version's bytes never change): a compressing client (a browser, the CDN) gets them without
/// compressing the same bytes on every request. Each form has an ETag of its own.
struct Representations {
    identity: Bytes,
    etag: String,
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
}

/// The encodings offered, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }

    /// The best encoding `Accept-Encoding` allows (its q-values; `*` counts for the others).
    fn negotiate(headers: &HeaderMap) -> Self {
        let mut weights: Vec<(String, f32)> = Vec::new();
        for value in headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
            for part in value.split(',') {
                let mut pieces = part.split(';');
                let name = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
                let q = pieces
                    .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .next()
                    .unwrap_or(1.0);
                if !name.is_empty() {
                    weights.push((name, q));
                }
            }
        }
        let weight = |token: &str| {
            weights
                .iter()
                .find(|(name, _)| name == token)
                .or_else(|| weights.iter().find(|(name, _)| name == "*"))
                .map(|(_, q)| *q)
        };
        // The highest weight wins; on a tie, the smaller body (brotli, then gzip). Identity is
        // acceptable unless refused, and is what is left when everything else is.
        let mut best = (Self::Identity, 0.0_f32);
        for encoding in [Self::Brotli, Self::Gzip, Self::Identity] {
            let q = match encoding {
                Self::Identity => weight("identity").unwrap_or(0.001),
                _ => weight(encoding.token()).unwrap_or(0.0),
            };
            if q > best.1 {
                best = (encoding, q);
            }
        }
        best.0
    }
}

impl Representations {
    fn new(identity: Bytes, etag: String) -> Self {
        Self { identity, etag, gzip: OnceLock::new(), brotli: OnceLock::new() }
    }

    /// The body and ETag of `encoding`.
    fn get(&self, encoding: Encoding) -> (Bytes, String) {
        use std::io::Write;
        let tagged = |body: &Bytes| {
            let etag = format!("{}-{}\"", self.etag.trim_end_matches('"'), encoding.token());
            (body.clone(), etag)
        };
        match encoding {
            Encoding::Identity => (self.identity.clone(), self.etag.clone()),
            Encoding::Gzip => tagged(self.gzip.get_or_init(|| {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(&self.identity);
                Bytes::from(encoder.finish().unwrap_or_default())
            })),
            Encoding::Brotli => tagged(self.brotli.get_or_init(|| {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams { quality: 6, ..Default::default() };
                let _ = brotli::BrotliCompress(&mut &self.identity[..], &mut out, &params);
                Bytes::from(out)
            })),
        }
    }
}

/// The public routes' memory: each gallery's current document by version, the galleries that
/// slugs named, and their counts.
#[derive(Default)]
pub struct PublicCache {
    documents: Mutex<HashMap<GalleryId, Arc<Served>>>,
    /// The gallery each slug was last found to name. Only a hint: the gallery's pointer (which
    /// carries its slug) confirms it on every read, and a slug whose gallery's pointer no longer
    /// names it is looked up again.
    slugs: Mutex<HashMap<Slug, GalleryId>>,
    document_route: RouteStats,
    page_route: RouteStats,
}

impl PublicCache {
    /// The counts of both public routes.
    pub fn stats(&self) -> Vec<CacheStats> {
        vec![self.document_route.snapshot("/v1/public/galleries/{gallery_id}"), self.page_route.snapshot("/g/{slug}")]
    }

    /// Drops what this instance keeps of a gallery (deleted).
    pub fn forget(&self, id: &GalleryId) {
        self.documents.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    fn slug_hint(&self, slug: &Slug) -> Option<GalleryId> {
        self.slugs.lock().unwrap_or_else(|p| p.into_inner()).get(slug).cloned()
    }

    fn remember_slug(&self, slug: &Slug, id: &GalleryId) {
        let mut slugs = self.slugs.lock().unwrap_or_else(|p| p.into_inner());
        if slugs.len() >= CACHED_GALLERIES && !slugs.contains_key(slug) {
            slugs.clear();
        }
        slugs.insert(slug.clone(), id.clone());
    }

    fn forget_slug(&self, slug: &Slug) {
        self.slugs.lock().unwrap_or_else(|p| p.into_inner()).remove(slug);
    }

    fn cached(&self, id: &GalleryId, version: u32) -> Option<Arc<Served>> {
        let documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        documents.get(id).filter(|s| s.version == version).cloned()
    }

    fn keep(&self, id: &GalleryId, served: Arc<Served>) {
        let mut documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        if documents.len() >= CACHED_GALLERIES && !documents.contains_key(id) {
            // Full: forget the oldest-versioned entry (cheap, and rare past the working set).
            if let Some(oldest) = documents.iter().min_by_key(|(_, s)| s.version).map(|(k, _)| k.clone()) {
                documents.remove(&oldest);
            }
        }
        documents.insert(id.clone(), served);
    }
}

fn strong_etag(version: u32, kind: &str, body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    format!("\"{version}-{kind}{}\"", hex::encode(&digest[..8]))
}

fn not_found() -> GalleryApiError {
    ApiError::NotFound("no published gallery here".into()).into()
}

/// The pointer of gallery `id` if the public may read it.
async fn public_pointer(state: &GalleryState, id: &GalleryId) -> Result<Pointer, GalleryApiError> {
    let pointer = read_pointer(state.ports.objects.as_ref(), id).await?;
    pointer.filter(|p| p.visibility.is_readable_publicly()).ok_or_else(not_found)
}

/// The pointer of the gallery `slug` names, if the public may read it: through the gallery the
/// slug named last time when its pointer still carries the slug, else looked up.
async fn public_pointer_by_slug(state: &GalleryState, slug: &Slug) -> Result<Pointer, GalleryApiError> {
    let cache = &state.ports.cache;
    if let Some(id) = cache.slug_hint(slug) {
        match public_pointer(state, &id).await {
            Ok(pointer) if &pointer.slug == slug => return Ok(pointer),
            // Renamed, made private, unpublished or deleted: the slug may name another gallery now.
            Ok(_) | Err(GalleryApiError::Api(ApiError::NotFound(_))) => cache.forget_slug(slug),
            Err(e) => return Err(e),
        }
    }
    let id = match state.ports.metadata.gallery_id_by_slug(slug).await {
        Ok(id) => id,
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let pointer = public_pointer(state, &id).await?;
    if &pointer.slug != slug {
        return Err(not_found());
    }
    cache.remember_slug(slug, &id);
    Ok(pointer)
}

/// The served form of the pointer's version: from memory (`true`), or read from the store.
async fn served(state: &GalleryState, pointer: &Pointer) -> Result<(Arc<Served>, bool), GalleryApiError> {
    let cache = &state.ports.cache;
    if let Some(served) = cache.cached(&pointer.gallery_id, pointer.version) {
        return Ok((served, true));
    }
    let json = match read_document(state.ports.objects.as_ref(), &pointer.gallery_id, pointer.version).await {
        Ok(body) => body,
        // The pointer names a version whose write failed: nothing to show until it is mended.
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let etag = strong_etag(pointer.version, "j", &json);
    let served =
        Arc::new(Served { version: pointer.version, json: Representations::new(json, etag), page: OnceLock::new() });
    cache.keep(&pointer.gallery_id, served.clone());
    Ok((served, false))
}

/// 304 or 200 with the public cache headers, in the encoding the client prefers.
fn respond(headers: &HeaderMap, body: &Representations, content_type: &'static str) -> Response {
    let encoding = Encoding::negotiate(headers);
    let (bytes, etag) = body.get(encoding);
    let status_and_body =
        if none_match(headers, &etag) { (StatusCode::NOT_MODIFIED, Bytes::new()) } else { (StatusCode::OK, bytes) };
    let mut response = status_and_body.into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE_CONTROL));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, value);
    }
    if response.status() == StatusCode::OK {
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if encoding != Encoding::Identity {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
        }
    }
    response
}

fn count(stats: &RouteStats, response: &Response, from_memory: bool) {
    let counter = match (response.status(), from_memory) {
        (StatusCode::NOT_MODIFIED, _) => &stats.not_modified,
        (_, true) => &stats.hits,
        (_, false) => &stats.renders,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PublicGalleryPath {
    /// The gallery id
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub gallery_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SlugPath {
    /// The gallery's slug
    #[param(pattern = "^[a-z0-9][a-z0-9-]{1,78}[a-z0-9]$")]
    pub slug: String,
}

/// A published public or unlisted gallery as JSON (its current version, as stored). No auth.
#[utoipa::path(
    get,
    path = "/v1/public/galleries/{gallery_id}",
    tag = "public",
    params(
        PublicGalleryPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = PublishedDocumentView, headers(
            ("ETag" = String, description = "Strong; changes with every published version"),
            ("Cache-Control" = String, description = "`public, max-age=60, s-maxage=86400, stale-while-revalidate=600, stale-if-error=86400`"),
        )),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 404, description = "No published gallery here (unknown, unpublished or private: the same answer)", body = ErrorBody),
    )
)]
pub async fn public_document(
    State(state): State<GalleryState>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<PublicGalleryPath>,
) -> Result<Response, GalleryApiError> {
    let id = GalleryId::parse(&path.gallery_id).map_err(|_| not_found())?;
    let pointer = public_pointer(&state, &id).await?;
    let (served, from_memory) = served(&state, &pointer).await?;
    let response = respond(&headers, &served.json, "application/json");
    count(&state.ports.cache.document_route, &response, from_memory);
    Ok(response)
}

/// A published public or unlisted gallery as an HTML page for people: a responsive grid of
/// `<picture>`s (WebP and JPEG `srcset`s, `sizes`, lazy loading), the dominant colour and a
/// blurred placeholder until each image loads, captions, credits and alt text; no JavaScript.
/// No auth.
#[utoipa::path(
    get,
    path = "/g/{slug}",
    tag = "public",
    params(
        SlugPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String, headers(
            ("ETag" = String, description = "Strong; changes with every published version"),
            ("Cache-Control" = String, description = "`public, max-age=60, s-maxage=86400, stale-while-revalidate=600, stale-if-error=86400`"),
        )),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 404, description = "No published gallery here (unknown, unpublished or private: the same answer)", body = ErrorBody),
    )
)]
pub async fn public_page(
    State(state): State<GalleryState>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<SlugPath>,
) -> Result<Response, GalleryApiError> {
    let slug = Slug::parse(&path.slug).map_err(|_| not_found())?;
    if slug.as_str() != path.slug {
        // One spelling per page: `/g/Summer` is not `/g/summer`'s page (caches key on the path).
        return Err(not_found());
    }
    let pointer = public_pointer_by_slug(&state, &slug).await?;
    let (served, mut from_memory) = served(&state, &pointer).await?;
    let page = served.page.get_or_init(|| {
        from_memory = false;
        let document: PublishedDocument = serde_json::from_slice(&served.json.identity)
            .map_err(|e| format!("a stored document does not decode: {e}"))?;
        let html = Bytes::from(crate::page::render(&document).into_string());
        let etag = strong_etag(served.version, "h", &html);
        Ok(Representations::new(html, etag))
    });
    let page = page.as_ref().map_err(|e| ApiError::Unexpected(anyhow::anyhow!("{e}")))?;
    let response = respond(&headers, page, "text/html; charset=utf-8");
    count(&state.ports.cache.page_route, &response, from_memory);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape_is_the_stored_one() {
        // A document as the domain writes it decodes as the view the OpenAPI document shows
        // (which refuses unknown fields), so the two cannot drift apart.
        let json = serde_json::json!({
            "gallery_id": "g1", "version": 2, "published_at": "2027-01-01T00:00:00Z", "title": "T", "slug": "abc",
            "sections": [{"section_id": "main", "items": [{
                "media_id": "01jd3k6v2q8m3y7x9t0b5n4c2a", "caption": "c", "credits": [{"role": "r", "name": "n"}],
                "width": 10, "height": 5, "dominant_color": "#000000",
                "sources": [{"format": "webp", "content_type": "image/webp", "srcset": [{"url": "/u", "width": 10, "height": 5}]}],
                "fallback": {"url": "/u", "width": 10, "height": 5}
            }]}],
            "item_count": 1
        });
        let document: PublishedDocument = serde_json::from_value(json).unwrap();
        let stored = serde_json::to_vec(&document).unwrap();
        serde_json::from_slice::<PublishedDocumentView>(&stored).expect("the view reads a stored document");
    }

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_encoding_follows_accept_encoding_and_its_weights() {
        let cases = [
            ("", Encoding::Identity),
            ("gzip, deflate, br, zstd", Encoding::Brotli),
            ("gzip", Encoding::Gzip),
            ("br;q=0.5, gzip;q=0.9", Encoding::Gzip),
            ("br;q=0, gzip;q=0", Encoding::Identity),
            ("*", Encoding::Brotli),
            ("identity", Encoding::Identity),
            ("GZIP;q=1.0", Encoding::Gzip),
        ];
        for (header, expected) in cases {
            let headers = if header.is_empty() { HeaderMap::new() } else { accepting(header) };
            assert_eq!(Encoding::negotiate(&headers), expected, "{header:?}");
        }
    }

    #[test]
    fn each_form_decodes_to_the_body_and_has_an_etag_of_its_own() {
        use std::io::Read;
        let body = Bytes::from("<p>gallery</p>".repeat(500));
        let forms = Representations::new(body.clone(), "\"3-habc\"".into());
        let (gzip, gzip_etag) = forms.get(Encoding::Gzip);
        let (brotli, brotli_etag) = forms.get(Encoding::Brotli);
        let (identity, identity_etag) = forms.get(Encoding::Identity);
        assert_eq!(identity, body);
        assert_eq!(
            (identity_etag.as_str(), gzip_etag.as_str(), brotli_etag.as_str()),
            ("\"3-habc\"", "\"3-habc-gzip\"", "\"3-habc-br\"")
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..]).read_to_end(&mut unzipped).unwrap();
        let mut unbrotlied = Vec::new();
        brotli::BrotliDecompress(&mut &brotli[..], &mut unbrotlied).unwrap();
        assert_eq!((unzipped.as_slice(), unbrotlied.as_slice()), (&body[..], &body[..]));
        assert!(gzip.len() < body.len() / 10 && brotli.len() < body.len() / 10);

        // A revalidation of the compressed form it holds is a 304, with the same Vary.
        let mut headers = accepting("br");
        headers.insert(axum::http::header::IF_NONE_MATCH, HeaderValue::from_str(&brotli_etag).unwrap());
        let response = respond(&headers, &forms, "text/html");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[VARY], "accept-encoding");
        let response = respond(&accepting("gzip"), &forms, "text/html");
        assert_eq!(
            (response.status(), &response.headers()[CONTENT_ENCODING]),
            (StatusCode::OK, &HeaderValue::from_static("gzip"))
        );
    }
}
