//! Republishing: when something a published gallery shows changes (an edit, a review, a delete or
//! restore, a new image version, a batch, a change of the gallery itself), the gallery is
//! published again and its CDN paths invalidated, through the publish queue, within one queue hop.
//!
//! Two halves:
//! - [`request`] and [`request_for`]: what the use cases that change media or galleries call
//!   after their write. They put one [`RepublishMessage`] per gallery the record links to
//!   (before or after the change: a rejection takes links off) on [`QueueName::PUBLISH`]. Best
//!   effort: the change stands if the queue is down (logged at error level; the next change, or a
//!   publish, brings the document up to date).
//! - [`refresh`]: what the publish queue's handler calls once per gallery and message batch
//!   (several messages for one gallery coalesce into one call). It publishes the gallery if its
//!   document would change ([`publish_if_changed`](super::publish_if_changed)) and says which CDN
//!   paths to invalidate, as one [`Invalidation`] whose caller reference names the gallery's
//!   published version and record version, so a redelivered message asks the CDN for the same
//!   invalidation again and invalidates nothing twice.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Gallery, GalleryError, PublishPorts, Slug, publish_if_changed};
use crate::ids::{GalleryId, ModelId};
use crate::media::MediaRecord;
use crate::ports::{CallerReference, CdnPath, Invalidation, Queue, QueueName, StoreResult};

/// The schema version of [`RepublishMessage`] this code writes and reads.
pub const MESSAGE_VERSION: u32 = 1;
/// Who the publish queue's handler publishes as (the version history's `by`).
pub const PUBLISHER_ACTOR: &str = "system:publisher";

/// Why a gallery is republished (for the log and the DLQ's reader). The handler does the same
/// whatever it says, except for [`Reason::Published`] (invalidate only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A media's metadata was edited (caption, alt text, credits, focal point, usage rights…).
    Edit,
    /// A media was reviewed (a rejection takes it out of the document).
    Review,
    /// A media went to the trash.
    Delete,
    /// A media came back from the trash.
    Restore,
    /// A media has a new current image version (a job's edit, a restored version).
    Version,
    /// A batch chunk changed media the gallery shows (one message per chunk and gallery).
    Batch,
    /// The gallery itself changed (order, sections, fields, visibility, slug) or was deleted.
    Gallery,
    /// Usage rights of a media it shows expired (the rights sweep).
    RightsExpired,
    /// A person published the gallery or rolled it back: its document is already what it
    /// should be, so only its paths are invalidated (a republish would undo a rollback).
    Published,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::Review => "review",
            Self::Delete => "delete",
            Self::Restore => "restore",
            Self::Version => "version",
            Self::Batch => "batch",
            Self::Gallery => "gallery",
            Self::RightsExpired => "rights_expired",
            Self::Published => "published",
        }
    }

    /// Whether the gallery is to be published again (every reason but [`Reason::Published`]).
    pub fn republishes(self) -> bool {
        self != Self::Published
    }
}

/// A publish-queue message (schema version 1, docs/messages.md):
/// `{"v":1,"model_id":"…","gallery_id":"…","reason":"edit"}`, with `previous_slug` when a change
/// of slug (or a delete) leaves a `/g/{slug}` path cached that the gallery no longer answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepublishMessage {
    pub v: u32,
    pub model_id: ModelId,
    pub gallery_id: GalleryId,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_slug: Option<Slug>,
}

impl RepublishMessage {
    /// The queue these messages travel on.
    pub const QUEUE: QueueName = QueueName::PUBLISH;

    pub fn new(model_id: ModelId, gallery_id: GalleryId, reason: Reason) -> Self {
        Self { v: MESSAGE_VERSION, model_id, gallery_id, reason, previous_slug: None }
    }

    /// Reads a body: JSON of this shape, no unknown fields, schema version 1. The error says
    /// what is wrong (for the log of a dead-lettered message).
    pub fn parse(body: &str) -> Result<Self, String> {
        let message: Self = serde_json::from_str(body).map_err(|e| format!("not a publish message: {e}"))?;
        if message.v != MESSAGE_VERSION {
            return Err(format!("unknown schema version {} (this publisher reads {MESSAGE_VERSION})", message.v));
        }
        Ok(message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a publish message always serialises")
    }

    pub async fn enqueue(&self, queue: &dyn Queue) -> StoreResult<String> {
        queue.send(&Self::QUEUE, &self.to_json(), Duration::ZERO).await
    }
}

/// The galleries a change of a media may show differently: those the record links to before
/// or after it (a rejection takes links off; a restore finds them as they were).
pub fn affected(before: Option<&MediaRecord>, after: &MediaRecord) -> BTreeSet<GalleryId> {
    before.into_iter().flat_map(|r| r.gallery_ids()).chain(after.gallery_ids()).cloned().collect()
}

/// Asks for every gallery in `galleries` of `model` to be republished, one message each.
/// Best effort: a send that fails is logged at error level and the rest are still sent. Returns
/// how many were sent.
pub async fn request_for<'a>(
    queue: &dyn Queue,
    model: &ModelId,
    galleries: impl IntoIterator<Item = &'a GalleryId>,
    reason: Reason,
) -> usize {
    let distinct: BTreeSet<&GalleryId> = galleries.into_iter().collect();
    let mut sent = 0;
    for gallery in distinct {
        let message = RepublishMessage::new(model.clone(), gallery.clone(), reason);
        match message.enqueue(queue).await {
            Ok(_) => sent += 1,
            Err(e) => tracing::error!(
                gallery_id = %gallery, reason = reason.as_str(), error = %e,
                "could not ask for a gallery to be republished: it shows the change at its next publish"
            ),
        }
    }
    sent
}

/// After a person changed, published, rolled back or deleted gallery `before` (now `after`,
/// `None` once deleted): asks for it to be republished (or, for a publish or rollback,
/// `Reason::Published`, only invalidated) when it had been published, naming its old slug
/// when that no longer answers. Nothing for a gallery never published.
pub async fn request_after_gallery_change(
    queue: &dyn Queue,
    before: &Gallery,
    after: Option<&Gallery>,
    reason: Reason,
) -> bool {
    let was_published = before.publication.is_some() || after.is_some_and(|g| g.publication.is_some());
    if !was_published {
        return false;
    }
    let mut message = RepublishMessage::new(before.model_id.clone(), before.gallery_id.clone(), reason);
    if after.is_none_or(|g| g.slug != before.slug) {
        message.previous_slug = Some(before.slug.clone());
    }
    match message.enqueue(queue).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(
                gallery_id = %before.gallery_id, error = %e,
                "could not ask for a changed gallery to be republished: the CDN serves its old copy until it expires"
            );
            false
        }
    }
}

/// Asks for the galleries a media's change may affect ([`affected`]) to be republished. Called
/// by the media use cases after their write.
pub async fn request(queue: &dyn Queue, before: Option<&MediaRecord>, after: &MediaRecord, reason: Reason) -> usize {
    let galleries = affected(before, after);
    if galleries.is_empty() {
        return 0;
    }
    request_for(queue, &after.model_id, &galleries, reason).await
}

/// The CDN paths a gallery is served under: its JSON document and its page, under `slug` and
/// under each slug it had (a renamed or deleted gallery's old page must go too).
pub fn cdn_paths<'a>(gallery: &GalleryId, slugs: impl IntoIterator<Item = &'a Slug>) -> Vec<CdnPath> {
    let mut paths = vec![CdnPath::parse(&format!("/v1/public/galleries/{gallery}")).expect("gallery ids are URL-safe")];
    paths.extend(slugs.into_iter().map(|s| CdnPath::parse(&format!("/g/{s}")).expect("slugs are URL-safe")));
    paths
}

/// What [`refresh`] did to one gallery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing public to change: the gallery was never published (or is another model's, or is
    /// gone and no slug of it is known).
    Nothing,
    /// The CDN must drop these paths: after a publish (`published` is the new version's number)
    /// or when only what the routes answer changed (hidden, renamed, deleted, or a document that
    /// came out the same: `published` is `None`).
    Invalidate { invalidation: Invalidation, published: Option<u32>, gallery: Option<Box<Gallery>> },
}

fn reference(raw: String) -> Result<CallerReference, GalleryError> {
    CallerReference::parse(&raw).map_err(|e| GalleryError::Store(e.into()))
}

fn invalidation(reference: CallerReference, paths: Vec<CdnPath>) -> Result<Invalidation, GalleryError> {
    Invalidation::new(reference, paths).map_err(|e| GalleryError::Store(e.into()))
}

/// Brings gallery `id`'s published document up to date and says what to invalidate:
/// - gone: its old pages, when a message named a slug it had (`previous_slugs`), else nothing;
/// - never published: nothing;
/// - private: nothing is published (the public routes refuse it), but its paths are invalidated
///   so the CDN stops serving what it cached while it was public;
/// - otherwise: published if its document would change (and `republish` asks for it), and its
///   paths invalidated.
///
/// The invalidation's caller reference is `gallery-{id}-v{current published version}-g{gallery
/// version}-{hash of the paths}`: the same for a redelivered message (whose publish then finds
/// nothing changed), new for every change.
pub async fn refresh(
    ports: PublishPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    previous_slugs: &BTreeSet<Slug>,
    republish: bool,
    media_base: &str,
    now: OffsetDateTime,
) -> Result<Refresh, GalleryError> {
    let gallery = match super::get(ports.galleries, model, id).await {
        Ok(g) => g,
        Err(GalleryError::NotFound(_)) if previous_slugs.is_empty() => return Ok(Refresh::Nothing),
        Err(GalleryError::NotFound(_)) => {
            let slugs: Vec<&str> = previous_slugs.iter().map(Slug::as_str).collect();
            let reference = reference(format!("gallery-{id}-gone-{}", short_hash(&slugs.join(","))))?;
            let invalidation = invalidation(reference, cdn_paths(id, previous_slugs))?;
            return Ok(Refresh::Invalidate { invalidation, published: None, gallery: None });
        }
        Err(e) => return Err(e),
    };
    if gallery.publication.is_none() {
        return Ok(Refresh::Nothing);
    }
    let (gallery, published) = if republish && gallery.visibility.is_readable_publicly() {
        let (gallery, new) = publish_if_changed(ports, model, id, PUBLISHER_ACTOR, media_base, now).await?;
        let version = gallery.publication.as_ref().map(|p| p.current);
        (gallery, version.filter(|_| new))
    } else {
        (gallery, None)
    };
    let current = gallery.publication.as_ref().map_or(0, |p| p.current);
    let slugs: BTreeSet<&Slug> = previous_slugs.iter().chain(std::iter::once(&gallery.slug)).collect();
    let paths = cdn_paths(id, slugs);
    // The paths' hash too: the same version asked with another set of paths (a message naming a
    // previous slug) is another change set, never a reused reference.
    let names: Vec<&str> = paths.iter().map(CdnPath::as_str).collect();
    let reference =
        reference(format!("gallery-{id}-v{current}-g{}-{}", gallery.version, short_hash(&names.join(","))))?;
    let invalidation = invalidation(reference, paths)?;
    Ok(Refresh::Invalidate { invalidation, published, gallery: Some(Box::new(gallery)) })
}

/// 16 hex digits of SHA-256: a short, stable name for a set of slugs in a caller reference.
fn short_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
