//! What the API sends and accepts, as types: the OpenAPI document is generated from these, so the
//! spec cannot drift from the responses.

use std::collections::BTreeMap;

use phoenix_domain::media::ImageVersion;
use phoenix_domain::ports::PresignedRequest;
use phoenix_domain::{Derivative, MediaRecord};
use serde::{Deserialize, Deserializer, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Tells an absent field (`None`: leave as is) from an explicit `null` (`Some(None)`: clear).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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

/// A media waiting for its bytes and the presigned PUT that brings them: the answer to creating
/// an upload (201) and to asking for a fresh upload URL (200).
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

impl DerivativeView {
    /// A derivative as clients see it (no storage key), with its link
    /// ([`DerivativeLinks::url`](crate::DerivativeLinks::url)).
    pub fn new(d: &Derivative, url: String) -> Self {
        Self {
            preset: d.preset.clone(),
            preset_version: d.preset_version,
            format: d.format.clone(),
            width: d.width,
            height: d.height,
            bytes: d.bytes,
            url,
        }
    }
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FocalPointView {
    /// Fraction of the displayed width, 0 to 1.
    #[schema(example = 0.5, minimum = 0, maximum = 1)]
    pub x: f32,
    /// Fraction of the displayed height, 0 to 1.
    #[schema(example = 0.33, minimum = 0, maximum = 1)]
    pub y: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditView {
    #[schema(example = "photographer", max_length = 64)]
    pub role: String,
    #[schema(example = "Ada Lovelace", max_length = 200)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GalleryLinkView {
    pub gallery_id: String,
    pub published: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViolationView {
    /// a-z, 0-9, '-' or '_' (folded to lower case).
    #[schema(example = "missing_model_release", max_length = 64)]
    pub code: String,
    /// `low`, `medium`, `high` or `critical`.
    #[schema(example = "high")]
    pub severity: SeverityView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityView {
    Low,
    Medium,
    High,
    Critical,
}

impl From<phoenix_domain::Severity> for SeverityView {
    fn from(s: phoenix_domain::Severity) -> Self {
        use phoenix_domain::Severity as S;
        match s {
            S::Low => Self::Low,
            S::Medium => Self::Medium,
            S::High => Self::High,
            S::Critical => Self::Critical,
        }
    }
}

impl From<SeverityView> for phoenix_domain::Severity {
    fn from(s: SeverityView) -> Self {
        match s {
            SeverityView::Low => Self::Low,
            SeverityView::Medium => Self::Medium,
            SeverityView::High => Self::High,
            SeverityView::Critical => Self::Critical,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    /// `approve` or `reject`.
    #[schema(example = "reject")]
    pub decision: String,
    /// The reviewer's subject.
    pub reviewer: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryView {
    pub at: String,
    /// `system` or the caller's subject.
    pub actor: String,
    #[schema(example = "edited")]
    pub action: String,
    #[schema(example = "changed caption, tags")]
    pub summary: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateView {
    pub media_id: String,
    /// Bits by which the perceptual hashes differ (0 = the same picture).
    pub distance: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    pub media_id: String,
    pub model_id: String,
    /// `uploading`, `processing`, `pending_review`, `approved` or `rejected`; `deleted` only in the
    /// trash's listing (`?status=deleted`).
    #[schema(example = "pending_review")]
    pub status: String,
    pub filename: String,
    pub content_type: String,
    pub declared_bytes: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every change; send it back (or the `ETag`) to edit.
    pub version: u64,
    /// The current image version: 1 is the upload; each edit job (crop, rotate, flip, watermark)
    /// or restore makes a new one (`GET …/versions`).
    #[schema(example = 1, minimum = 1)]
    pub image_version: u32,
    /// While `uploading`: when the latest upload URL expires. After that, ask for a new one with
    /// `POST …/media/{media_id}/upload-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-24T09:30:00Z")]
    pub upload_expires_at: Option<String>,
    /// In the trash: when it was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-24T09:30:00Z")]
    pub deleted_at: Option<String>,
    /// In the trash: restorable (`POST …/restore`) until this instant, purged after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-01T09:30:00Z")]
    pub purge_after: Option<String>,
    pub derivatives: Vec<DerivativeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<PlaceholderView>,
    /// Why the processor refused the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<RejectionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub credits: Vec<CreditView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_point: Option<FocalPointView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_rights_expires_at: Option<String>,
    pub galleries: Vec<GalleryLinkView>,
    /// The latest moderation decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewView>,
    /// The reasons of the latest rejection by a reviewer.
    pub violations: Vec<ViolationView>,
    /// Processing and edit history, newest first (capped); only on a single-media GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntryView>>,
    /// Other media of this model that look like the same photo, nearest first; only on a
    /// single-media GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_duplicates: Option<Vec<DuplicateView>>,
}

impl MediaView {
    /// The public shape of a record (no storage keys, claims or hashes); `urls` are the
    /// derivatives' links in order, `show_gps` whether the caller may see a kept GPS position.
    pub fn new(record: &MediaRecord, urls: Vec<String>, show_gps: bool) -> Self {
        let derivatives = record.derivatives.iter().zip(urls).map(|(d, url)| DerivativeView::new(d, url)).collect();
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
        let meta = &record.metadata;
        let review = record.review.as_ref();
        let decision = |d: phoenix_domain::ReviewDecision| match d {
            phoenix_domain::ReviewDecision::Approve => "approve",
            phoenix_domain::ReviewDecision::Reject => "reject",
        };
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
            image_version: record.image_version,
            upload_expires_at: record
                .upload_expires_at
                .filter(|_| record.status == phoenix_domain::MediaStatus::Uploading)
                .map(rfc3339),
            deleted_at: record.trashed.as_ref().filter(|_| record.is_trashed()).map(|t| rfc3339(t.deleted_at)),
            purge_after: record.purge_after().map(rfc3339),
            derivatives,
            source,
            placeholder,
            rejection: record
                .rejection
                .as_ref()
                .map(|r| RejectionView { code: r.code.clone(), message: r.message.clone() }),
            caption: meta.caption.clone(),
            alt_text: meta.alt_text.clone(),
            category: meta.category.as_ref().map(|c| c.to_string()),
            tags: meta.tags.iter().map(|t| t.to_string()).collect(),
            credits: meta.credits.iter().map(|c| CreditView { role: c.role.clone(), name: c.name.clone() }).collect(),
            focal_point: record.focal_point.map(|f| FocalPointView { x: f.x, y: f.y }),
            usage_rights_expires_at: meta.usage_rights_expires_at.map(rfc3339),
            galleries: record
                .galleries
                .iter()
                .map(|g| GalleryLinkView { gallery_id: g.gallery_id.to_string(), published: g.published })
                .collect(),
            review: review.map(|r| ReviewView {
                decision: decision(r.decision).to_owned(),
                reviewer: r.reviewer.clone(),
                at: rfc3339(r.at),
                note: r.note.clone(),
            }),
            violations: review
                .filter(|_| record.status == phoenix_domain::MediaStatus::Rejected)
                .map(|r| {
                    r.violations
                        .iter()
                        .map(|v| ViolationView {
                            code: v.code.clone(),
                            severity: v.severity.into(),
                            note: v.note.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            history: None,
            likely_duplicates: None,
        }
    }

    /// Adds what only a single-media GET shows.
    pub fn with_detail(mut self, record: &MediaRecord, duplicates: Vec<(phoenix_domain::MediaId, u32)>) -> Self {
        self.history = Some(
            record
                .history
                .iter()
                .map(|h| HistoryEntryView {
                    at: rfc3339(h.at),
                    actor: h.actor.clone(),
                    action: h.action.clone(),
                    summary: h.summary.clone(),
                })
                .collect(),
        );
        self.likely_duplicates = Some(
            duplicates.into_iter().map(|(id, distance)| DuplicateView { media_id: id.to_string(), distance }).collect(),
        );
        self
    }
}

/// A `PATCH`: only the fields present change; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaPatchBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub caption: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub alt_text: Option<Option<String>>,
    /// a-z, 0-9, '-' or '_' (folded to lower case), at most 40 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "editorial")]
    pub category: Option<Option<String>>,
    /// Replaces the tags: at most 20 distinct (repeats count once), each like a category;
    /// `[]` or `null` removes them all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["beach", "ss-2027"]))]
    pub tags: Option<Option<Vec<String>>>,
    /// Replaces the credits (at most 20); `[]` or `null` removes them all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<CreditView>>)]
    pub credits: Option<Option<Vec<CreditView>>>,
    /// Moving it rebuilds the cover crops.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<FocalPointView>)]
    pub focal_point: Option<Option<FocalPointView>>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "2028-06-30T00:00:00Z")]
    pub usage_rights_expires_at: Option<Option<String>>,
    /// The version the edit is based on, when no `If-Match` header is sent.
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionView {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    pub decision: DecisionView,
    /// Required (1 to 20) to reject; none to approve.
    #[serde(default)]
    pub violations: Vec<ViolationView>,
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    /// Optional: the version reviewed (or send `If-Match`).
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaKeyView {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    #[schema(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub media_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchGetBody {
    /// 1 to 100 pairs; repeats are answered once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<MediaKeyView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchGetResult {
    /// In the order asked.
    pub items: Vec<MediaView>,
    /// Pairs that do not exist or that the caller may not see.
    pub missing: Vec<MediaKeyView>,
}

/// A list item: the media, or (with `fields`) only some of its fields.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ListItem {
    Whole(Box<MediaView>),
    Fields(serde_json::Map<String, serde_json::Value>),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaPage {
    /// Whole media, or with `fields` only the fields named (and `media_id`).
    #[schema(value_type = Vec<MediaView>)]
    pub items: Vec<ListItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a version's source is: its displayed size, format and bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSourceView {
    pub width: u32,
    pub height: u32,
    #[schema(example = "jpeg")]
    pub format: String,
    pub bytes: u64,
}

/// The watermark a version's derivatives carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionWatermarkView {
    #[schema(example = "agency-logo")]
    pub profile: String,
    /// The presets whose derivatives carry it.
    pub presets: Vec<String>,
}

/// How a version came to be.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOriginView {
    /// `crop`, `rotate`, `flip`, `watermark` or `restore` (the upload, version 1, has no origin).
    #[schema(example = "rotate")]
    pub operation: String,
    #[schema(example = "rotated 90°")]
    pub summary: String,
    /// The job that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub at: String,
}

/// One image version of a media: its own source and derivatives.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub number: u32,
    /// Whether the media shows this version now.
    pub current: bool,
    pub source: VersionSourceView,
    pub derivatives: Vec<DerivativeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<VersionWatermarkView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<VersionOriginView>,
}

impl VersionView {
    /// `urls` are the version's derivatives' links, in order.
    pub fn new(version: &ImageVersion, current: u32, urls: Vec<String>) -> Self {
        Self {
            number: version.number,
            current: version.number == current,
            source: VersionSourceView {
                width: version.source.width,
                height: version.source.height,
                format: version.source.format.clone(),
                bytes: version.source.bytes,
            },
            derivatives: version.derivatives.iter().zip(urls).map(|(d, url)| DerivativeView::new(d, url)).collect(),
            watermark: version
                .watermark
                .as_ref()
                .map(|w| VersionWatermarkView { profile: w.profile.to_string(), presets: w.presets.clone() }),
            origin: version.origin.as_ref().map(|o| VersionOriginView {
                operation: o.operation.clone(),
                summary: o.summary.clone(),
                job_id: o.job_id.map(|j| j.to_string()),
                at: rfc3339(o.at),
            }),
        }
    }
}

/// A media's image versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsView {
    /// The number of the version the media shows now (its `image_version`).
    pub current: u32,
    /// Newest first; empty until the media is processed. At most 10: past that the oldest edit
    /// is dropped (the upload, version 1, is always kept).
    pub items: Vec<VersionView>,
}
