//! What the API sends and accepts, as types: the OpenAPI document is generated from these, so the
//! spec cannot drift from the responses.

use std::collections::BTreeMap;

use phoenix_domain::MediaRecord;
use phoenix_domain::ports::PresignedRequest;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadBody {
    /// The file's name as the user knows it: a plain name, no path.
    #[schema(example = "IMG_0042.jpg", min_length = 1, max_length = 255)]
    pub filename: String,
    /// `image/jpeg`, `image/png` or `image/webp`; the upload is bound to it.
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    /// Exact length of the file; the upload is bound to it.
    #[schema(example = 4_412_328, minimum = 1)]
    pub bytes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresignedRequestView {
    #[schema(example = "PUT")]
    pub method: String,
    pub url: String,
    /// Send exactly these headers with the request.
    pub headers: BTreeMap<String, String>,
    #[schema(example = "2026-11-24T09:30:00Z")]
    pub expires_at: String,
}

impl From<PresignedRequest> for PresignedRequestView {
    fn from(p: PresignedRequest) -> Self {
        Self { method: p.method, url: p.url, headers: p.headers, expires_at: rfc3339(p.expires_at) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadCreated {
    #[schema(example = "01jd3k6v2q8m3y7x9t0b5n4c2a")]
    pub media_id: String,
    #[schema(example = "uploading")]
    pub status: String,
    pub upload: PresignedRequestView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DerivativeView {
    #[schema(example = "medium")]
    pub preset: String,
    pub preset_version: u32,
    #[schema(example = "webp")]
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Loadable by a browser: the CDN/local server, or a presigned GET.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GpsView {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// Sniffed from the bytes.
    #[schema(example = "jpeg")]
    pub format: String,
    /// Displayed dimensions (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub orientation: u16,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub lens: Option<String>,
    /// EXIF capture time, local to the camera (no zone).
    pub captured_at: Option<String>,
    pub artist: Option<String>,
    pub copyright: Option<String>,
    /// Only for admins, and only when the deployment keeps GPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceholderView {
    /// ThumbHash, base64.
    pub thumbhash: Option<String>,
    #[schema(example = "#a0b0c0")]
    pub dominant_color: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionView {
    #[schema(example = "too_many_pixels")]
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    pub media_id: String,
    pub model_id: String,
    /// `uploading`, `processing`, `pending_review`, `approved` or `rejected`.
    #[schema(example = "pending_review")]
    pub status: String,
    pub filename: String,
    pub content_type: String,
    pub declared_bytes: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every change.
    pub version: u64,
    pub derivatives: Vec<DerivativeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<PlaceholderView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<RejectionView>,
}

impl MediaView {
    /// The public shape of a record (no storage keys, claims or hashes); `urls` are the
    /// derivatives' links in order, `show_gps` whether the caller may see a kept GPS position.
    pub fn new(record: &MediaRecord, urls: Vec<String>, show_gps: bool) -> Self {
        let derivatives = record
            .derivatives
            .iter()
            .zip(urls)
            .map(|(d, url)| DerivativeView {
                preset: d.preset.clone(),
                preset_version: d.preset_version,
                format: d.format.clone(),
                width: d.width,
                height: d.height,
                bytes: d.bytes,
                url,
            })
            .collect();
        let source = record.source.as_ref().map(|s| SourceView {
            format: s.format.clone(),
            width: s.width,
            height: s.height,
            bytes: s.bytes,
            orientation: s.orientation,
            camera_make: s.camera_make.clone(),
            camera_model: s.camera_model.clone(),
            lens: s.lens.clone(),
            captured_at: s.captured_at.clone(),
            artist: s.artist.clone(),
            copyright: s.copyright.clone(),
            gps: s.gps.filter(|_| show_gps).map(|g| GpsView { latitude: g.latitude, longitude: g.longitude }),
        });
        let placeholder = record
            .source
            .as_ref()
            .map(|s| PlaceholderView { thumbhash: s.placeholder.clone(), dominant_color: s.dominant_color.clone() });
        Self {
            media_id: record.media_id.to_string(),
            model_id: record.model_id.to_string(),
            status: record.status.as_str().to_owned(),
            filename: record.filename.clone(),
            content_type: record.content_type.clone(),
            declared_bytes: record.declared_bytes,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            version: record.version,
            derivatives,
            source,
            placeholder,
            rejection: record
                .rejection
                .as_ref()
                .map(|r| RejectionView { code: r.code.clone(), message: r.message.clone() }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaPage {
    pub items: Vec<MediaView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_request`, `malformed_json`, `invalid_id`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `version_conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `unavailable`, `internal`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// For people.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}
