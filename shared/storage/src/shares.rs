//! What both share-link adapters agree on: the listings their cursors are bound to.

use phoenix_domain::{GalleryId, ModelId, ShareLinkId};

/// A model's links (one gallery's when given).
pub(crate) fn links_listing(model: &ModelId, gallery: Option<&GalleryId>) -> String {
    format!("share-links|{}|{}", model.as_str(), gallery.map(GalleryId::as_str).unwrap_or_default())
}

/// A link's accesses.
pub(crate) fn accesses_listing(id: &ShareLinkId) -> String {
    format!("share-accesses|{id}")
}
