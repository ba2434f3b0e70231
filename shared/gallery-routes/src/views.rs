//! What the gallery routes take and show: request bodies, the gallery as its owner sees it, and
//! the published document's shape (served as stored; documented here for the OpenAPI document,
//! a test keeps the two in step).

use phoenix_domain::galleries::{Gallery, Operation, PublishedVersion};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A section of a new gallery.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionBody {
    /// 1 to 40 characters of a-z, 0-9, '-' or '_', unique in the gallery
    #[schema(example = "backstage")]
    pub section_id: String,
    #[schema(example = "Backstage")]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGalleryBody {
    /// 1 to 200 characters
    #[schema(example = "Summer 2027")]
    pub title: String,
    /// 3 to 80 characters of a-z, 0-9 and '-' (upper case folded), unique per deployment: the page is `/g/{slug}`
    #[schema(example = "ada-summer-2027")]
    pub slug: String,
    /// At most 5,000 characters
    pub description: Option<String>,
    /// `private` (the default), `unlisted` or `public`
    #[schema(example = "public")]
    pub visibility: Option<String>,
    /// The sections in order (at most 50); one, `main`, when absent
    pub sections: Option<Vec<SectionBody>>,
}

/// One PATCH: operations applied in order, all or nothing, under `If-Match`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchGalleryBody {
    /// 1 to 100 operations
    pub operations: Vec<Operation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SectionView {
    pub section_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Media ids, in order
    pub items: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedVersionView {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub published_at: OffsetDateTime,
    /// Who published it (the caller's subject)
    pub published_by: String,
    /// Items the document shows
    pub items: u32,
}

impl From<&PublishedVersion> for PublishedVersionView {
    fn from(v: &PublishedVersion) -> Self {
        Self { version: v.version, published_at: v.at, published_by: v.by.clone(), items: v.items }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicationView {
    /// The version the public reads
    pub current_version: u32,
    /// The highest version made; the next publish is this + 1
    pub latest_version: u32,
    /// The versions a rollback may go back through, oldest first (at most 20)
    pub versions: Vec<PublishedVersionView>,
    /// The public page (`/g/{slug}`), while the gallery is not private
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// The public document (`/v1/public/galleries/{gallery_id}`), while the gallery is not private
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GalleryView {
    pub gallery_id: String,
    pub model_id: String,
    pub title: String,
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `private`, `unlisted` or `public`
    pub visibility: String,
    /// The cover's media id
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover: Option<String>,
    pub sections: Vec<SectionView>,
    pub item_count: usize,
    /// Send it back as `If-Match` (or use the ETag)
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Absent until the first publish
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publication: Option<PublicationView>,
}

impl GalleryView {
    pub fn new(g: &Gallery) -> Self {
        let public = g.visibility.is_readable_publicly();
        Self {
            gallery_id: g.gallery_id.to_string(),
            model_id: g.model_id.to_string(),
            title: g.title.clone(),
            slug: g.slug.to_string(),
            description: g.description.clone(),
            visibility: g.visibility.as_str().to_owned(),
            cover: g.cover.map(|c| c.to_string()),
            sections: g
                .sections
                .iter()
                .map(|s| SectionView {
                    section_id: s.section_id.to_string(),
                    title: s.title.clone(),
                    items: s.items.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            item_count: g.item_count(),
            version: g.version,
            created_at: g.created_at,
            updated_at: g.updated_at,
            publication: g.publication.as_ref().map(|p| PublicationView {
                current_version: p.current,
                latest_version: p.latest,
                versions: p.history.iter().map(PublishedVersionView::from).collect(),
                page: public.then(|| format!("/g/{}", g.slug)),
                document: public.then(|| format!("/v1/public/galleries/{}", g.gallery_id)),
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GalleryPage {
    pub items: Vec<GalleryView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One rendition.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedSourceView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// A format's renditions, narrowest first (a `<source type srcset>`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedSourceSetView {
    /// `webp` or `jpeg`
    pub format: String,
    pub content_type: String,
    pub srcset: Vec<PublishedSourceView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedItemView {
    pub media_id: String,
    pub caption: Option<String>,
    pub alt_text: Option<String>,
    #[serde(default)]
    pub credits: Vec<PublishedCreditView>,
    /// The photo's displayed size
    pub width: u32,
    pub height: u32,
    /// ThumbHash (base64)
    pub placeholder: Option<String>,
    /// A ~32 px rendition to show blurred until the image loads
    pub placeholder_url: Option<String>,
    /// `#rrggbb`
    pub dominant_color: Option<String>,
    /// WebP first, then JPEG
    pub sources: Vec<PublishedSourceSetView>,
    /// A mid-sized JPEG for `<img src>`
    pub fallback: PublishedSourceView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedCreditView {
    pub role: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedSectionView {
    pub section_id: String,
    pub title: Option<String>,
    pub items: Vec<PublishedItemView>,
}

/// A published version of a gallery, as stored (immutable).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedDocumentView {
    pub gallery_id: String,
    /// The published version's number
    pub version: u32,
    pub published_at: String,
    pub title: String,
    pub slug: String,
    pub description: Option<String>,
    pub cover: Option<PublishedItemView>,
    pub sections: Vec<PublishedSectionView>,
    pub item_count: u32,
}
