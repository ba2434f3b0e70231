//! Galleries: the gallery record (sections and items in order, publication pointer) and its slug,
//! unique per deployment. Published documents live in the object store, not here.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Page, StoreResult};
use crate::galleries::{Gallery, Slug};
use crate::ids::{GalleryId, ModelId};

#[async_trait]
pub trait GalleryStore: Send + Sync {
    /// Writes a new gallery and claims its slug, atomically; `AlreadyExists` if the id or the
    /// slug is taken.
    async fn create_gallery(&self, gallery: &Gallery) -> StoreResult<()>;
    /// `NotFound` if absent.
    async fn get_gallery(&self, id: &GalleryId) -> StoreResult<Gallery>;
    /// The id of the gallery holding `slug`, or `NotFound`.
    async fn gallery_id_by_slug(&self, slug: &Slug) -> StoreResult<GalleryId>;
    /// Replaces the gallery if the stored version is `gallery.version - 1` (else
    /// `VersionConflict`, or `NotFound`). When its slug is not `previous_slug` (the stored one),
    /// the new slug is claimed and the old one freed in the same write; `AlreadyExists` if another
    /// gallery holds the new slug.
    async fn update_gallery(&self, gallery: &Gallery, previous_slug: &Slug) -> StoreResult<()>;
    /// Removes the gallery and frees its slug if the stored version is `gallery.version` (else
    /// `VersionConflict`, or `NotFound`).
    async fn delete_gallery(&self, gallery: &Gallery) -> StoreResult<()>;
    /// A model's galleries, newest first; `limit` within
    /// [`bounds::PAGE_SIZE`](super::bounds::PAGE_SIZE) and a cursor of this listing, else `Invalid`.
    async fn list_galleries(&self, model: &ModelId, limit: usize, cursor: Option<String>)
    -> StoreResult<Page<Gallery>>;
    /// Galleries of every model whose current published version shows a media whose usage rights
    /// expire at or before `now` ([`Gallery::rights_due_at`]), earliest first, at most `limit`
    /// (1..=100, else `Invalid`): what the rights sweep republishes. Served by an index of the
    /// galleries that have such a date only; it may lag a write briefly (DynamoDB's GSIs are
    /// eventually consistent), so callers re-read and write conditionally.
    async fn galleries_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<Gallery>>;
}

/// The listing a gallery cursor is bound to.
pub fn galleries_listing(model: &ModelId) -> String {
    format!("galleries|{model}")
}
