//! Publishing: a gallery rendered into an immutable, versioned document in the object store
//! (`published/galleries/{gallery_id}/v{n}.json`), and a small pointer
//! (`published/galleries/{gallery_id}/current.json`) naming the version the public reads, so a
//! publish (or a rollback) switches what the public sees in one object write.
//!
//! The gallery record is the authority on which version is current (`publication.current`); the
//! pointer is its copy for the public read path. Every publish, rollback, and change of visibility
//! or slug writes the record first (conditionally), then the pointer from it; a pointer write
//! that fails is repaired by the next of them. Numbers are reserved in the record before the
//! document is written, so two publishes never write one key.
//!
//! A document shows only what may be public: per item its caption, alt text, credits, displayed
//! size, `srcset` entries per format (WebP and JPEG) from the width presets, the placeholder and
//! the dominant colour. Never GPS, moderation data, original or source keys, history, and never a
//! media that is not approved, is in the trash, or whose usage rights have expired.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use time::OffsetDateTime;

use super::links::{LINK_CONCURRENCY, mark_published, unlink_all};
use super::manage::{GalleryPorts, get};
use super::{Gallery, GalleryError, MAX_PUBLISHED_HISTORY, Publication, PublishedVersion, Slug, Visibility};
use crate::ids::{GalleryId, MediaId, ModelId, ObjectKey};
use crate::keys;
use crate::media::{Credit, Derivative, MediaRecord, MediaStatus};
use crate::ports::{MediaQuery, MediaStore, ObjectStore, PutOptions, StoreError, StoreResult, bounds};

/// What the public routes answer with: a minute in browsers, a day in the CDN, served stale
/// while revalidating (10 minutes) or when the origin fails (a day).
pub const PUBLIC_CACHE_CONTROL: &str =
    "public, max-age=60, s-maxage=86400, stale-while-revalidate=600, stale-if-error=86400";
/// The largest document read back (2,000 items at ~1.5 KB each is ~3 MB).
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;
const MAX_POINTER_BYTES: u64 = 64 * 1024;
/// Derivatives narrower than this are placeholders, not sources (`tiny`, 32 px).
const MIN_SOURCE_WIDTH: u32 = 64;
/// The formats a document offers, in the order a browser should try them.
const FORMATS: [(&str, &str); 2] = [("webp", "image/webp"), ("jpeg", "image/jpeg")];

/// One rendition a browser may pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// A format's renditions, narrowest first (a `<source type srcset>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSet {
    /// `webp` or `jpeg`.
    pub format: String,
    /// The MIME type, for `<source type>`.
    pub content_type: String,
    pub srcset: Vec<Source>,
}

impl SourceSet {
    /// The `srcset` attribute: `url 320w, url 640w, …`.
    pub fn attribute(&self) -> String {
        self.srcset.iter().map(|s| format!("{} {}w", s.url, s.width)).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedItem {
    pub media_id: MediaId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<Credit>,
    /// The photo's displayed size (after orientation).
    pub width: u32,
    pub height: u32,
    /// ThumbHash (base64), for clients that draw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// A tiny rendition (≈ 32 px wide) to show blurred until the image loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder_url: Option<String>,
    /// `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_color: Option<String>,
    /// WebP first, then JPEG.
    pub sources: Vec<SourceSet>,
    /// The `<img src>`: a mid-sized JPEG every browser shows.
    pub fallback: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedSection {
    pub section_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub items: Vec<PublishedItem>,
}

/// The published document, as stored and as `GET /v1/public/galleries/{gallery_id}` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedDocument {
    pub gallery_id: GalleryId,
    /// The published version's number.
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    pub title: String,
    pub slug: Slug,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<PublishedItem>,
    pub sections: Vec<PublishedSection>,
    pub item_count: u32,
}

/// The small object naming the version the public reads, with what the public routes check
/// (visibility, slug) so that they read nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub gallery_id: GalleryId,
    pub slug: Slug,
    pub visibility: Visibility,
    pub version: u32,
    /// SHA-256 (hex) of the document's bytes.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
}

/// The ports publishing uses (the same as the gallery use cases').
pub type PublishPorts<'a> = GalleryPorts<'a>;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The member records that exist, by id, read in batch gets of 100 (a few at once).
pub async fn read_members(
    store: &dyn MediaStore,
    model: &ModelId,
    members: &[MediaId],
) -> Result<HashMap<MediaId, MediaRecord>, StoreError> {
    let chunks: Vec<Vec<(ModelId, MediaId)>> = members
        .chunks(bounds::MAX_BATCH_GET)
        .map(|chunk| chunk.iter().map(|m| (model.clone(), *m)).collect())
        .collect();
    let pages: Vec<StoreResult<Vec<MediaRecord>>> = futures::stream::iter(chunks)
        .map(|keys| async move { store.batch_get_media(&keys).await })
        .buffered(4)
        .collect()
        .await;
    let mut found = HashMap::with_capacity(members.len());
    for page in pages {
        for record in page? {
            found.insert(record.media_id, record);
        }
    }
    Ok(found)
}

/// Whether `record` may be shown publicly at `now`: approved (so not in the trash), processed,
/// and within its usage rights.
pub fn is_publishable(record: &MediaRecord, now: OffsetDateTime) -> bool {
    record.status == MediaStatus::Approved
        && record.source.is_some()
        && record.metadata.usage_rights_expires_at.is_none_or(|until| until > now)
}

fn url(base: &str, key: &ObjectKey) -> String {
    format!("{}/{key}", base.trim_end_matches('/'))
}

/// Renditions with the photo's own aspect ratio (the `width` presets; `cover` crops are left
/// out), per format, narrowest first, one per width.
fn source_sets(record: &MediaRecord, width: u32, height: u32, base: &str) -> Vec<SourceSet> {
    let same_aspect = |d: &Derivative| {
        // Cross-multiplied, within 2 % (rounding of small renditions).
        let (a, b) = (u64::from(d.width) * u64::from(height), u64::from(d.height) * u64::from(width));
        a.abs_diff(b) * 50 <= a.max(b)
    };
    FORMATS
        .iter()
        .filter_map(|(format, content_type)| {
            let mut renditions: Vec<&Derivative> = record
                .derivatives
                .iter()
                .filter(|d| d.format == *format && d.width >= MIN_SOURCE_WIDTH && same_aspect(d))
                .collect();
            renditions.sort_by_key(|d| d.width);
            renditions.dedup_by_key(|d| d.width);
            (!renditions.is_empty()).then(|| SourceSet {
                format: (*format).to_owned(),
                content_type: (*content_type).to_owned(),
                srcset: renditions
                    .into_iter()
                    .map(|d| Source { url: url(base, &d.key), width: d.width, height: d.height })
                    .collect(),
            })
        })
        .collect()
}

/// The public view of one media, or `None` when it has no web renditions.
pub fn published_item(record: &MediaRecord, base: &str) -> Option<PublishedItem> {
    let source = record.source.as_ref()?;
    let sources = source_sets(record, source.width, source.height, base);
    let jpeg = sources.iter().find(|s| s.format == "jpeg").or_else(|| sources.first())?;
    // The rendition nearest 1,000 px wide: sharp enough alone, small enough to load fast.
    let fallback = jpeg.srcset.iter().min_by_key(|s| s.width.abs_diff(1000))?.clone();
    let placeholder_url = record
        .derivatives
        .iter()
        .filter(|d| d.format == "jpeg" && d.width < MIN_SOURCE_WIDTH)
        .min_by_key(|d| d.width)
        .map(|d| url(base, &d.key));
    Some(PublishedItem {
        media_id: record.media_id,
        caption: record.metadata.caption.clone(),
        alt_text: record.metadata.alt_text.clone(),
        credits: record.metadata.credits.clone(),
        width: source.width,
        height: source.height,
        placeholder: source.placeholder.clone(),
        placeholder_url,
        dominant_color: source.dominant_color.clone(),
        sources,
        fallback,
    })
}

/// The document of `gallery` as version `version`: its sections with the members that may be
/// shown at `now`, in order. Derivative URLs are `{media_base}/{key}`.
pub fn render(
    gallery: &Gallery,
    records: &HashMap<MediaId, MediaRecord>,
    version: u32,
    media_base: &str,
    now: OffsetDateTime,
) -> PublishedDocument {
    let shown =
        |id: &MediaId| records.get(id).filter(|r| is_publishable(r, now)).and_then(|r| published_item(r, media_base));
    let sections: Vec<PublishedSection> = gallery
        .sections
        .iter()
        .map(|s| PublishedSection {
            section_id: s.section_id.to_string(),
            title: s.title.clone(),
            items: s.items.iter().filter_map(shown).collect(),
        })
        .collect();
    let item_count = u32::try_from(sections.iter().map(|s| s.items.len()).sum::<usize>()).unwrap_or(u32::MAX);
    PublishedDocument {
        gallery_id: gallery.gallery_id.clone(),
        version,
        published_at: now,
        title: gallery.title.clone(),
        slug: gallery.slug.clone(),
        description: gallery.description.clone(),
        cover: gallery.cover.as_ref().and_then(shown),
        sections,
        item_count,
    }
}

/// The earliest usage-rights expiry of the media `document` shows (each later than its publish,
/// or it would not show them).
pub fn rights_expiry(document: &PublishedDocument, records: &HashMap<MediaId, MediaRecord>) -> Option<OffsetDateTime> {
    document
        .cover
        .iter()
        .chain(document.sections.iter().flat_map(|s| s.items.iter()))
        .filter_map(|item| records.get(&item.media_id)?.metadata.usage_rights_expires_at)
        .min()
}

fn pointer_of(gallery: &Gallery) -> Option<Pointer> {
    let publication = gallery.publication.as_ref()?;
    let current = publication.current_version()?;
    Some(Pointer {
        gallery_id: gallery.gallery_id.clone(),
        slug: gallery.slug.clone(),
        visibility: gallery.visibility,
        version: current.version,
        sha256: current.sha256.clone(),
        published_at: current.at,
    })
}

/// Writes the pointer the gallery's record says (nothing if it was never published).
pub async fn write_pointer(objects: &dyn ObjectStore, gallery: &Gallery) -> Result<(), GalleryError> {
    let Some(pointer) = pointer_of(gallery) else { return Ok(()) };
    let body = serde_json::to_vec(&pointer).map_err(|e| GalleryError::Store(StoreError::internal(e)))?;
    let options = PutOptions { content_type: Some("application/json".into()), cache_control: Some("no-cache".into()) };
    objects.put(&keys::published_pointer(&gallery.gallery_id), Bytes::from(body), options).await?;
    Ok(())
}

/// The pointer of a gallery, if it has one.
pub async fn read_pointer(objects: &dyn ObjectStore, id: &GalleryId) -> StoreResult<Option<Pointer>> {
    match objects.get(&keys::published_pointer(id), MAX_POINTER_BYTES).await {
        Ok((_, body)) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| StoreError::internal(anyhow::anyhow!("gallery {id}: the pointer does not decode: {e}"))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stored bytes of a published version.
pub async fn read_document(objects: &dyn ObjectStore, id: &GalleryId, version: u32) -> StoreResult<Bytes> {
    objects.get(&keys::published_document(id, version), MAX_DOCUMENT_BYTES).await.map(|(_, body)| body)
}

/// What the public reads of gallery `id`: its pointer and document, when it is published and
/// not private. (The public routes cache documents by version and call [`read_pointer`] and
/// [`read_document`] themselves.)
pub async fn read_published(objects: &dyn ObjectStore, id: &GalleryId) -> StoreResult<Option<(Pointer, Bytes)>> {
    let Some(pointer) = read_pointer(objects, id).await?.filter(|p| p.visibility.is_readable_publicly()) else {
        return Ok(None);
    };
    let body = read_document(objects, id, pointer.version).await?;
    Ok(Some((pointer, body)))
}

/// Removes a gallery's pointer (first: the public routes stop at once) and every version.
pub async fn remove_published(objects: &dyn ObjectStore, id: &GalleryId) -> Result<(), GalleryError> {
    objects.delete(&keys::published_pointer(id)).await?;
    let prefix = keys::published_prefix(id);
    let mut cursor = None;
    loop {
        let page = objects.list(&prefix, cursor, 1000).await?;
        for key in &page.keys {
            objects.delete(key).await?;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Publishes gallery `id` of `model`: renders its document as the next version, reserves the
/// number in the gallery (conditional on the version read: a concurrent change is a conflict),
/// stores the document, moves the pointer, then repairs the members' links (see the module).
/// Callable from a request or, later, from the publish queue's handler.
pub async fn publish(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    actor: &str,
    media_base: &str,
    now: OffsetDateTime,
) -> Result<Gallery, GalleryError> {
    publish_inner(ports, model, id, actor, media_base, now, false).await.map(|(gallery, _)| gallery)
}

/// As [`publish`], but only when the document would differ from the current one in more than
/// its number and time: an unchanged gallery is returned as it is, with `false` (no version
/// made, nothing written). What the publish queue's handler calls, so that a redelivered
/// message, or a change the document does not show (a tag), makes no new version.
pub async fn publish_if_changed(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    actor: &str,
    media_base: &str,
    now: OffsetDateTime,
) -> Result<(Gallery, bool), GalleryError> {
    publish_inner(ports, model, id, actor, media_base, now, true).await
}

/// Whether the current published version of `gallery` is `document` but for its number and
/// time. An unreadable current document counts as different (it is replaced).
async fn same_as_current(objects: &dyn ObjectStore, gallery: &Gallery, document: &PublishedDocument) -> bool {
    let Some(current) = gallery.publication.as_ref().map(|p| p.current).filter(|c| *c > 0) else { return false };
    let Ok(body) = read_document(objects, &gallery.gallery_id, current).await else { return false };
    let Ok(mut stored) = serde_json::from_slice::<PublishedDocument>(&body) else { return false };
    stored.version = document.version;
    stored.published_at = document.published_at;
    &stored == document
}

async fn publish_inner(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    actor: &str,
    media_base: &str,
    now: OffsetDateTime,
    only_if_changed: bool,
) -> Result<(Gallery, bool), GalleryError> {
    let mut gallery = get(ports.galleries, model, id).await?;
    let members: Vec<MediaId> = gallery.items().copied().collect();
    let records = read_members(ports.media, model, &members).await?;
    let version = gallery.publication.as_ref().map_or(0, |p| p.latest) + 1;
    let document = render(&gallery, &records, version, media_base, now);
    let rights_expire_at = rights_expiry(&document, &records);
    // A new usage-rights date changes no byte of the document but moves the gallery's due date
    // for the rights sweep, which only a new version records.
    if only_if_changed
        && gallery.rights_due_at() == rights_expire_at
        && same_as_current(ports.objects, &gallery, &document).await
    {
        tracing::info!(gallery_id = %id, "gallery unchanged: not published again");
        return Ok((gallery, false));
    }
    let body = serde_json::to_vec(&document).map_err(|e| GalleryError::Store(StoreError::internal(e)))?;
    let sha256 = sha256_hex(&body);

    let entry = PublishedVersion {
        version,
        at: now,
        by: actor.to_owned(),
        items: document.item_count,
        sha256,
        rights_expire_at,
    };
    let mut publication =
        gallery.publication.take().unwrap_or(Publication { current: 0, latest: 0, history: Vec::new() });
    publication.history.push(entry);
    let dropped: Vec<u32> = if publication.history.len() > MAX_PUBLISHED_HISTORY {
        let excess = publication.history.len() - MAX_PUBLISHED_HISTORY;
        publication.history.drain(..excess).map(|v| v.version).collect()
    } else {
        Vec::new()
    };
    publication.current = version;
    publication.latest = version;
    let slug = gallery.slug.clone();
    gallery.publication = Some(publication);
    gallery.version += 1;
    gallery.updated_at = now;
    ports.galleries.update_gallery(&gallery, &slug).await.map_err(GalleryError::writing)?;

    let options = PutOptions {
        content_type: Some("application/json".into()),
        cache_control: Some(keys::DERIVATIVE_CACHE_CONTROL.into()),
    };
    ports.objects.put(&keys::published_document(id, version), Bytes::from(body), options).await?;
    write_pointer(ports.objects, &gallery).await?;
    for old in dropped {
        if let Err(e) = ports.objects.delete(&keys::published_document(id, old)).await {
            tracing::warn!(gallery_id = %id, version = old, error = %e, "an old published version was left");
        }
    }
    // A later publish or rollback may have moved the record meanwhile: the pointer follows it.
    let latest = ports.galleries.get_gallery(id).await.map_err(GalleryError::reading(id))?;
    if latest.publication.as_ref().map(|p| p.current) != Some(version) {
        write_pointer(ports.objects, &latest).await?;
    }

    let shown: BTreeSet<MediaId> = document.sections.iter().flat_map(|s| s.items.iter().map(|i| i.media_id)).collect();
    repair_links(ports, model, id, &members, &records, &shown, actor, now).await;
    tracing::info!(gallery_id = %id, version, items = document.item_count, "gallery published");
    Ok((gallery, true))
}

/// Brings the members' links in line with the gallery after a publish, best effort (a failure
/// leaves what the next publish repairs): each member linked, `published` when the document
/// shows it; links of records the gallery does not hold (a crash between a membership write and
/// its link write) removed. A member whose record, as this publish read it (`records`), already
/// has the right link is not read again.
#[allow(clippy::too_many_arguments)]
async fn repair_links(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    members: &[MediaId],
    records: &HashMap<MediaId, MediaRecord>,
    shown: &BTreeSet<MediaId>,
    actor: &str,
    now: OffsetDateTime,
) {
    let linked_right = |m: &MediaId| {
        records
            .get(m)
            .is_some_and(|r| r.galleries.iter().any(|l| &l.gallery_id == id && l.published == shown.contains(m)))
    };
    futures::stream::iter(members.iter().copied().filter(|m| !linked_right(m)))
        .map(|m| async move {
            if let Err(e) = mark_published(ports.media, model, &m, id, shown.contains(&m), now).await {
                tracing::warn!(media_id = %m, gallery_id = %id, error = %e, "a gallery link was left as it was");
            }
        })
        .buffer_unordered(LINK_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let member_set: BTreeSet<&MediaId> = members.iter().collect();
    let mut query = MediaQuery { gallery: Some(id.clone()), ..MediaQuery::new(*bounds::PAGE_SIZE.end()) };
    let mut stale = Vec::new();
    loop {
        match ports.media.list_media(model, &query).await {
            Ok(page) => {
                // A link written moments ago may be an insert in flight (links first, then the
                // gallery: a batch chunk, a PATCH); only links older than that are stale.
                let settled = now - STALE_LINK_AGE;
                stale.extend(
                    page.items
                        .iter()
                        .filter(|r| r.updated_at < settled && !member_set.contains(&r.media_id))
                        .map(|r| r.media_id),
                );
                match page.next_cursor {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            Err(e) => {
                tracing::warn!(gallery_id = %id, error = %e, "stale gallery links not looked for");
                break;
            }
        }
    }
    unlink_all(ports.media, model, &stale, id, actor, now).await;
}

/// How long a link of a media its gallery does not hold is taken for an insert in flight (its
/// links are written before the gallery) rather than left by a crash between the two writes: a
/// record changed more recently keeps its link until a later publish.
const STALE_LINK_AGE: time::Duration = time::Duration::minutes(15);

/// Goes back to the published version before the current one (the pointer moves; the record
/// says so). `InvalidState` when there is none.
pub async fn rollback(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    expected: Option<u64>,
    now: OffsetDateTime,
) -> Result<Gallery, GalleryError> {
    let mut gallery = get(ports.galleries, model, id).await?;
    if let Some(expected) = expected.filter(|v| *v != gallery.version) {
        return Err(GalleryError::stale(gallery.version, expected));
    }
    let Some(publication) = gallery.publication.as_mut() else {
        return Err(GalleryError::InvalidState(format!("gallery {id} was never published")));
    };
    let place = publication.history.iter().position(|v| v.version == publication.current).unwrap_or(0);
    if place == 0 {
        return Err(GalleryError::InvalidState(format!(
            "gallery {id} has no published version before {} to roll back to",
            publication.current
        )));
    }
    let target = publication.history[place - 1].version;
    publication.current = target;
    let slug = gallery.slug.clone();
    gallery.version += 1;
    gallery.updated_at = now;
    ports.galleries.update_gallery(&gallery, &slug).await.map_err(GalleryError::writing)?;
    write_pointer(ports.objects, &gallery).await?;
    tracing::info!(gallery_id = %id, version = target, "gallery publication rolled back");
    Ok(gallery)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::galleries::fakes::{Fakes, approved};
    use crate::galleries::{CreateGallery, Operation, create, patch};
    use crate::media::{GalleryLink, GpsPosition, Review, ReviewDecision, Severity, Violation};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn ops(value: serde_json::Value) -> Vec<Operation> {
        serde_json::from_value(value).unwrap()
    }

    /// A gallery of `media` (all added while approved), published or not.
    fn gallery_of(rt: &tokio::runtime::Runtime, fakes: &Fakes, media: &[MediaId]) -> Gallery {
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let request = CreateGallery {
            title: "Summer".into(),
            slug: Slug::parse("summer").unwrap(),
            description: Some("Beach days".into()),
            visibility: Visibility::Public,
            sections: vec![],
        };
        let g = rt.block_on(create(fakes, &model, request, now)).unwrap();
        rt.block_on(patch(
            fakes.ports(),
            &model,
            &g.gallery_id,
            1,
            ops(json!([{"op": "insert_items", "media_ids": media}])),
            "u",
            now,
        ))
        .unwrap()
    }

    #[test]
    fn a_document_shows_only_public_fields_of_publishable_media() {
        let rt = rt();
        let fakes = Fakes::default();
        let mut secret = approved();
        secret.metadata.caption = Some("On the beach".into());
        secret.source.as_mut().unwrap().gps = Some(GpsPosition { latitude: 48.85, longitude: 2.35 });
        secret.review = Some(Review {
            decision: ReviewDecision::Approve,
            reviewer: "reviewer-7".into(),
            at: OffsetDateTime::now_utc(),
            note: Some("moderation note".into()),
            violations: vec![Violation { code: "x".into(), severity: Severity::Low, note: None }],
        });
        secret.record_history(OffsetDateTime::now_utc(), "someone", "edited", "history line");
        let shown = fakes.add(secret);
        let expired = {
            let mut r = approved();
            r.metadata.usage_rights_expires_at = Some(OffsetDateTime::now_utc() - time::Duration::hours(1));
            fakes.add(r)
        };
        let later_rejected = fakes.add(approved());
        let g = gallery_of(&rt, &fakes, &[shown, expired, later_rejected]);
        fakes.set_status(&later_rejected, MediaStatus::Rejected);

        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let published =
            rt.block_on(publish(fakes.ports(), &model, &g.gallery_id, "u", "https://cdn.example", now)).unwrap();
        assert_eq!(published.publication.as_ref().unwrap().current, 1);
        let (pointer, body) = rt.block_on(read_published(&fakes, &g.gallery_id)).unwrap().unwrap();
        assert_eq!(pointer.version, 1);
        let text = String::from_utf8(body.to_vec()).unwrap();
        for never in ["48.85", "reviewer-7", "moderation note", "history line", "originals/", "approved"] {
            assert!(!text.contains(never), "{never} in {text}");
        }
        let doc: PublishedDocument = serde_json::from_str(&text).unwrap();
        let ids: Vec<MediaId> = doc.sections[0].items.iter().map(|i| i.media_id).collect();
        assert_eq!(ids, vec![shown], "expired rights and rejected media are left out");
        let item = &doc.sections[0].items[0];
        assert_eq!(item.caption.as_deref(), Some("On the beach"));
        let formats: Vec<&str> = item.sources.iter().map(|s| s.format.as_str()).collect();
        assert_eq!(formats, ["webp", "jpeg"]);
        assert_eq!(
            item.sources[0].attribute(),
            format!(
                "https://cdn.example/derived/m1/{shown}/small.webp 320w, https://cdn.example/derived/m1/{shown}/medium.webp 640w"
            )
        );
        assert_eq!(item.fallback.width, 640);
        assert!(item.placeholder_url.as_deref().unwrap().ends_with("tiny.jpg"));
        // The repair: shown media are marked published, the rejected one not.
        assert_eq!(
            fakes.media(&shown).galleries,
            vec![GalleryLink { gallery_id: g.gallery_id.clone(), published: true }]
        );
        assert_eq!(
            fakes.media(&later_rejected).galleries,
            vec![GalleryLink { gallery_id: g.gallery_id.clone(), published: false }]
        );
    }

    #[test]
    fn publishing_again_makes_a_new_version_and_rollback_goes_back() {
        let rt = rt();
        let fakes = Fakes::default();
        let (a, b) = (fakes.add(approved()), fakes.add(approved()));
        let g = gallery_of(&rt, &fakes, &[a]);
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let id = g.gallery_id.clone();
        let none = rt.block_on(rollback(fakes.ports(), &model, &id, None, now));
        assert!(matches!(none, Err(GalleryError::InvalidState(_))), "{none:?}");
        let v1 = rt.block_on(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();
        let first = fakes.object(&keys::published_document(&id, 1)).unwrap();
        rt.block_on(patch(
            fakes.ports(),
            &model,
            &id,
            v1.version,
            ops(json!([{"op": "insert_items", "media_ids": [b], "position": 0}])),
            "u",
            now,
        ))
        .unwrap();
        rt.block_on(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();
        assert_eq!(fakes.object(&keys::published_document(&id, 1)).unwrap(), first, "version 1 is immutable");
        let (pointer, body) = rt.block_on(read_published(&fakes, &id)).unwrap().unwrap();
        assert_eq!(pointer.version, 2);
        let doc: PublishedDocument = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc.sections[0].items.iter().map(|i| i.media_id).collect::<Vec<_>>(), vec![b, a]);

        let rolled = rt.block_on(rollback(fakes.ports(), &model, &id, None, now)).unwrap();
        assert_eq!(rolled.publication.as_ref().unwrap().current, 1);
        let (pointer, body) = rt.block_on(read_published(&fakes, &id)).unwrap().unwrap();
        assert_eq!((pointer.version, body), (1, first));
        // The next publish takes a new number: 3, never 2 again.
        let v3 = rt.block_on(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();
        assert_eq!(v3.publication.unwrap().current, 3);
    }

    #[test]
    fn a_private_gallery_is_not_read_publicly_and_a_delete_removes_its_documents() {
        let rt = rt();
        let fakes = Fakes::default();
        let a = fakes.add(approved());
        let g = gallery_of(&rt, &fakes, &[a]);
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let id = g.gallery_id.clone();
        let published = rt.block_on(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();
        assert!(rt.block_on(read_published(&fakes, &id)).unwrap().is_some());
        let private = rt
            .block_on(patch(
                fakes.ports(),
                &model,
                &id,
                published.version,
                ops(json!([{"op": "set_fields", "visibility": "private"}])),
                "u",
                now,
            ))
            .unwrap();
        assert!(rt.block_on(read_published(&fakes, &id)).unwrap().is_none(), "private at once");
        rt.block_on(crate::galleries::delete(fakes.ports(), &model, &id, Some(private.version), "u", now)).unwrap();
        assert!(fakes.objects_under(&keys::published_prefix(&id)).is_empty());
    }

    #[test]
    fn a_publish_removes_stale_links_and_restores_withdrawn_ones() {
        let rt = rt();
        let fakes = Fakes::default();
        let (a, stray) = (fakes.add(approved()), fakes.add(approved()));
        let g = gallery_of(&rt, &fakes, &[a]);
        let id = g.gallery_id.clone();
        // A crash between a link write and its gallery write left a link on `stray`; a
        // rejection (since reverted) withdrew `a`'s.
        fakes.edit(&stray, |r| r.galleries.push(GalleryLink { gallery_id: id.clone(), published: false }));
        fakes.edit(&a, |r| r.galleries.clear());
        let model = ModelId::parse("m1").unwrap();
        // A link written moments ago may be an insert in flight: kept until it is older.
        let now = OffsetDateTime::now_utc();
        rt.block_on(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();
        assert_eq!(fakes.media(&stray).galleries.len(), 1, "a fresh link is left alone");
        let later = now + STALE_LINK_AGE + time::Duration::seconds(1);
        rt.block_on(publish(fakes.ports(), &model, &id, "u", "", later)).unwrap();
        assert_eq!(fakes.media(&stray).galleries, vec![]);
        assert_eq!(fakes.media(&a).galleries, vec![GalleryLink { gallery_id: id, published: true }]);
    }
}
