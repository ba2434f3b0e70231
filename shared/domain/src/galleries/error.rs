//! What the gallery use cases report: the cases a caller can act on, each a variant.

use crate::ids::{GalleryId, MediaId};
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// One field of the request is wrong (`field` names it: `operations[2].media_ids`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The gallery is not at the version the caller read, or changed meanwhile.
    #[error("{message}")]
    VersionConflict { message: String, current_version: Option<u64> },
    /// Another gallery of the deployment has this slug.
    #[error("the slug {0:?} is taken by another gallery")]
    SlugTaken(String),
    /// Media that cannot be added: not approved (or in the trash, or absent, or another model's).
    #[error("{message}")]
    MediaNotAddable { message: String, media_ids: Vec<MediaId> },
    /// The request is fine but the gallery's state does not allow it (nothing to roll back to).
    #[error("{0}")]
    InvalidState(String),
    #[error(transparent)]
    Store(StoreError),
}

impl GalleryError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    pub(crate) fn not_found(id: &GalleryId) -> Self {
        Self::NotFound(format!("gallery {id} not found"))
    }

    pub(crate) fn stale(current: u64, expected: u64) -> Self {
        Self::VersionConflict {
            message: format!("the gallery is at version {current}, not {expected}; read it again and retry"),
            current_version: Some(current),
        }
    }

    /// A store error from reading gallery `id`.
    pub(crate) fn reading(id: &GalleryId) -> impl FnOnce(StoreError) -> Self + '_ {
        move |e| match e {
            StoreError::NotFound => Self::not_found(id),
            other => Self::Store(other),
        }
    }

    /// A store error from a conditional write of a gallery read moments ago.
    pub(crate) fn writing(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { current } => Self::VersionConflict {
                message: "the gallery changed while this request was applied; read it again and retry".into(),
                current_version: current,
            },
            StoreError::NotFound => Self::NotFound("the gallery was deleted meanwhile".into()),
            other => Self::Store(other),
        }
    }
}

impl From<StoreError> for GalleryError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
