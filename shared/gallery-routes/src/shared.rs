//! `GET /s/{token}`: a share link opened, without auth. While the link is active it shows its
//! gallery — the current published version (publishing a private gallery does not make it
//! public; it makes the version its links show), or, for a gallery never published, the gallery
//! rendered as a publish would render it now — with every media that may not be shown *at this
//! moment* left out (its usage rights expired, rejected, in the trash), so a link is never valid
//! past the rights of what it shows, whatever the sweep has done yet. HTML for people, JSON by
//! `Accept`. Expired or revoked: 410; anything else (malformed, tampered, unknown, a key since
//! removed): 404; both the bare error. Every answer is `private, no-store`: never cached, by the
//! CDN or the browser. Every opening is recorded before the gallery is sent.

use std::collections::HashSet;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, USER_AGENT, VARY};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use phoenix_domain::galleries::publish::{is_publishable, read_document, read_members, render};
use phoenix_domain::galleries::{Gallery, PublishedDocument, PublishedItem};
use phoenix_domain::shares::{self, ShareError, ShareLink};
use phoenix_domain::{MediaId, StoreError};
use phoenix_http::lambda::SourceIp;
use phoenix_http::{ApiError, ApiPath, ErrorBody};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::error::GalleryApiError;
use crate::page::{PageOptions, download_url, render_with};
use crate::state::{ClientAddressSource, GalleryState};
use crate::views::PublishedDocumentView;

/// What every answer of `/s/{token}` carries.
pub const SHARED_CACHE_CONTROL: &str = "private, no-store";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// The link's token, as its URL gives it
    #[param(max_length = 200)]
    pub token: String,
}

/// A photo's download, when the link allows downloads: its largest rendition (never the original).
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedDownload {
    pub media_id: String,
    pub url: String,
}

/// A share link's gallery as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedGalleryView {
    /// When the link stops working
    pub expires_at: String,
    pub allow_download: bool,
    /// The gallery as a published document shows it, less what may not be shown now
    #[schema(value_type = PublishedDocumentView)]
    pub gallery: PublishedDocument,
    /// One per photo when `allow_download`; empty otherwise
    pub downloads: Vec<SharedDownload>,
}

/// The gallery shown by a share link at `now`: see the module.
async fn shared_document(
    state: &GalleryState,
    link: &ShareLink,
    now: OffsetDateTime,
) -> Result<PublishedDocument, GalleryApiError> {
    let gallery = match state.ports.metadata.get_gallery(&link.gallery_id).await {
        Ok(g) if g.model_id == link.model_id => g,
        // The gallery was deleted: its links ended with it.
        Ok(_) | Err(StoreError::NotFound) => return Err(GalleryApiError::Gone),
        Err(e) => return Err(e.into()),
    };
    let current = gallery.publication.as_ref().map(|p| p.current).filter(|c| *c > 0);
    let Some(version) = current else {
        let members: Vec<MediaId> = gallery.items().copied().collect();
        let records = read_members(state.ports.metadata.as_ref(), &gallery.model_id, &members).await?;
        return Ok(render(&gallery, &records, 0, &state.config.media_base, now));
    };
    let body = match read_document(state.ports.objects.as_ref(), &gallery.gallery_id, version).await {
        Ok(body) => body,
        Err(StoreError::NotFound) => return Err(GalleryApiError::Gone),
        Err(e) => return Err(e.into()),
    };
    let mut document: PublishedDocument = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("gallery {}: a stored document: {e}", gallery.gallery_id)))?;
    drop_unshowable(state, &gallery, &mut document, now).await?;
    Ok(document)
}

/// Leaves out of `document` every item whose media may not be shown at `now`.
async fn drop_unshowable(
    state: &GalleryState,
    gallery: &Gallery,
    document: &mut PublishedDocument,
    now: OffsetDateTime,
) -> Result<(), GalleryApiError> {
    let shown: Vec<MediaId> = document.sections.iter().flat_map(|s| s.items.iter().map(|i| i.media_id)).collect();
    let records = read_members(state.ports.metadata.as_ref(), &gallery.model_id, &shown).await?;
    let allowed: HashSet<MediaId> = records.values().filter(|r| is_publishable(r, now)).map(|r| r.media_id).collect();
    let keep = |item: &PublishedItem| allowed.contains(&item.media_id);
    for section in &mut document.sections {
        section.items.retain(keep);
    }
    if document.cover.as_ref().is_some_and(|c| !keep(c)) {
        document.cover = None;
    }
    document.item_count = u32::try_from(document.sections.iter().map(|s| s.items.len()).sum::<usize>()).unwrap_or(0);
    Ok(())
}

/// The visitor's address, by the configured source; never `X-Forwarded-For`.
pub fn client_address(source: ClientAddressSource, headers: &HeaderMap, extensions: &Extensions) -> String {
    if source == ClientAddressSource::CloudFrontViewer {
        // `203.0.113.7:46532` or `2001:db8::1:46532`: the address is all before the last colon.
        let viewer = headers.get("cloudfront-viewer-address").and_then(|v| v.to_str().ok());
        if let Some((ip, _port)) = viewer.and_then(|v| v.trim().rsplit_once(':')).filter(|(ip, _)| !ip.is_empty()) {
            return ip.to_owned();
        }
    }
    if let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        return peer.ip().to_string();
    }
    if let Some(SourceIp(ip)) = extensions.get::<SourceIp>() {
        return ip.clone();
    }
    "unknown".to_owned()
}

/// JSON when the client names `application/json` before (or without) `text/html`.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let json = accept.find("application/json");
    let html = accept.find("text/html");
    match (json, html) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        _ => false,
    }
}

fn private(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(SHARED_CACHE_CONTROL));
    h.insert(VARY, HeaderValue::from_static("Accept"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    response
}

/// Opens a share link: the gallery as an HTML page, or as JSON when `Accept` asks for
/// `application/json`. No auth: the token is the credential. Never cached.
#[utoipa::path(
    get,
    path = "/s/{token}",
    tag = "public",
    params(
        TokenPath,
        ("Accept" = Option<String>, Header, description = "`application/json` for JSON; otherwise the HTML page"),
    ),
    responses(
        (status = 200, description = "The gallery while the link is valid (`Cache-Control: private, no-store`)", content(
            (SharedGalleryView = "application/json"),
            (String = "text/html"),
        )),
        (status = 404, description = "No such link (malformed, tampered, unknown): `not_found`", body = ErrorBody),
        (status = 410, description = "The link expired or was revoked: `gone`", body = ErrorBody),
    )
)]
pub async fn open_shared(
    State(state): State<GalleryState>,
    headers: HeaderMap,
    extensions: Extensions,
    ApiPath(path): ApiPath<TokenPath>,
) -> Response {
    private(match serve(&state, &headers, &extensions, &path.token).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    })
}

async fn serve(
    state: &GalleryState,
    headers: &HeaderMap,
    extensions: &Extensions,
    token: &str,
) -> Result<Response, GalleryApiError> {
    let Some(keys) = state.config.share_keys.as_ref() else { return Err(ShareError::NotFound.into()) };
    let now = OffsetDateTime::now_utc();
    let store = state.ports.metadata.as_ref();
    let link = shares::open_link(store, keys, token, now).await?;
    let document = shared_document(state, &link, now).await?;
    let address = client_address(state.config.client_address, headers, extensions);
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    shares::record_access(store, keys, &link, &address, user_agent, now).await?;
    if wants_json(headers) {
        let downloads = if link.allow_download {
            document
                .sections
                .iter()
                .flat_map(|s| s.items.iter())
                .map(|i| SharedDownload { media_id: i.media_id.to_string(), url: download_url(i).to_owned() })
                .collect()
        } else {
            Vec::new()
        };
        let view = SharedGalleryView {
            expires_at: link.expires_at.format(&Rfc3339).unwrap_or_default(),
            allow_download: link.allow_download,
            gallery: document,
            downloads,
        };
        return Ok(Json(view).into_response());
    }
    let html = render_with(&document, PageOptions { shared: true, downloads: link.allow_download }).into_string();
    let mut response = (StatusCode::OK, html).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_never_comes_from_x_forwarded_for() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.9"));
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        assert_eq!(client_address(ClientAddressSource::Peer, &headers, &extensions), "127.0.0.1");
        headers.insert("cloudfront-viewer-address", HeaderValue::from_static("2001:db8::7:46532"));
        assert_eq!(client_address(ClientAddressSource::Peer, &headers, &extensions), "127.0.0.1", "not trusted");
        assert_eq!(client_address(ClientAddressSource::CloudFrontViewer, &headers, &extensions), "2001:db8::7");
        let mut lambda = Extensions::new();
        lambda.insert(SourceIp("203.0.113.5".into()));
        assert_eq!(client_address(ClientAddressSource::CloudFrontViewer, &HeaderMap::new(), &lambda), "203.0.113.5");
    }

    #[test]
    fn json_only_when_asked_before_html() {
        let with = |accept: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_static(accept));
            wants_json(&h)
        };
        assert!(with("application/json"));
        assert!(!with("text/html,application/xhtml+xml,application/json;q=0.9"));
        assert!(!with("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
