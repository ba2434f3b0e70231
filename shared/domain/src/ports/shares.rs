//! Share links and their access log.

use async_trait::async_trait;

use super::{Page, StoreResult};
use crate::ids::{GalleryId, ModelId, ShareLinkId};
use crate::shares::{ShareAccess, ShareLink};

#[async_trait]
pub trait ShareLinkStore: Send + Sync {
    /// Writes a new link; `AlreadyExists` if its id is taken.
    async fn create_link(&self, link: &ShareLink) -> StoreResult<()>;
    /// `NotFound` also past its [`ShareLink::retained_until`].
    async fn get_link(&self, id: &ShareLinkId) -> StoreResult<ShareLink>;
    /// Replaces the link if the stored version is `link.version - 1`, else `VersionConflict`.
    async fn update_link(&self, link: &ShareLink) -> StoreResult<()>;
    /// A model's retained links, newest first; only one gallery's when `gallery` is given.
    async fn list_links(
        &self,
        model: &ModelId,
        gallery: Option<&GalleryId>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareLink>>;
    /// Appends an opening of `link` (kept as long as the link is).
    async fn record_access(&self, link: &ShareLink, access: &ShareAccess) -> StoreResult<()>;
    /// A link's accesses, newest first.
    async fn list_accesses(
        &self,
        id: &ShareLinkId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareAccess>>;
}
